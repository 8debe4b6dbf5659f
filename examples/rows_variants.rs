//! Times every softmax-row kernel variant eligible for a shape (cross_entropy,
//! mean over class targets, forward and fused value-and-gradient calls) next
//! to the copy kernel over the same bytes, in one run on one adapter: the
//! numbers behind BENCHMARKS.md's softmax-row section.
//!
//! Run: `cargo run --release --example rows_variants -- 16384x1000 4x262144`
//! (shapes as ROWSxCLASSES; `--runs N` timed runs per variant, median;
//! `--loss nll` or `--loss softmax_focal` for another row loss).

use wgpu_loss::cli::bench::{gbps, median, Bench};
use wgpu_loss::{rows_variants, with_rows_variant, Context, Inputs, Loss, Reduction, Rows, Tensor};
use wgpu_loss::{Prepared, Upstream};

fn main() -> wgpu_loss::Result<()> {
    let mut runs = 3;
    let mut loss = Loss::from_name("cross_entropy").expect("a catalog loss");
    let mut shapes = vec![];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N");
        } else if a == "--loss" {
            let name = args.next().expect("--loss NAME");
            loss = Loss::from_name(&name).expect("a catalog loss");
        } else {
            let (r, c) = a.split_once('x').expect("ROWSxCLASSES");
            shapes.push((r.parse::<usize>().unwrap(), c.parse::<usize>().unwrap()));
        }
    }
    let ctx = Context::new()?;
    let mut bench = Bench::new(&ctx);
    let timing = if bench.timestamps() {
        "timestamps"
    } else {
        "wall"
    };
    println!(
        "{}, adapter: {} ({timing}), median of {runs} runs",
        loss.name(),
        ctx.adapter_name()
    );
    println!("shape          call     variant           ms       GB/s   copy GB/s  eff");
    for (rows, c) in shapes {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (rows * c) as u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let x: Vec<f32> = (0..rows * c)
            .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 * 12.0 - 6.0)
            .collect();
        let y: Vec<i64> = (0..rows).map(|_| (next() % c as u64) as i64).collect();
        let (shape, items) = ([rows, c], [rows]);
        let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
        // Logits (one per row for nll) and class indices read; the fused
        // call also writes a gradient as large as the logits.
        let logits_read = if matches!(loss, Loss::Rows(Rows::Nll { .. })) {
            rows
        } else {
            rows * c
        };
        let read = 4 * logits_read + 4 * rows;
        for (call, bytes) in [("forward", read), ("fused", read + 4 * rows * c)] {
            let copy = bench.copy_gbps(bytes)?;
            for v in rows_variants(&ctx, &loss, Reduction::Mean, &inputs)? {
                let prepared: Prepared<'_> = with_rows_variant(v, || {
                    if call == "fused" {
                        ctx.prepare_with_grad(
                            &loss,
                            Reduction::Mean,
                            &inputs,
                            Upstream::Scalar(1.0),
                        )
                    } else {
                        ctx.prepare(&loss, Reduction::Mean, &inputs)
                    }
                })??;
                prepared.run()?;
                let mut ms = vec![];
                for _ in 0..runs {
                    let t = std::time::Instant::now();
                    let (_, gpu) = prepared.run_timed()?;
                    ms.push(gpu.unwrap_or(t.elapsed().as_secs_f64() * 1e3));
                }
                let ms = median(&ms);
                let g = gbps(bytes, ms);
                println!(
                    "{:<14} {call:<8} {v:<17} {ms:>8.2} {g:>8.2} {copy:>9.2}  {:.2}",
                    format!("{rows}x{c}"),
                    g / copy
                );
            }
        }
    }
    Ok(())
}
