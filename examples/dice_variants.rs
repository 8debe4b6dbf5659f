//! Times every dice first-pass variant eligible for a shape (multilabel dice
//! from logits against 0/1 masks, mean; forward and fused value-and-gradient
//! calls) next to the copy kernel over the same bytes, in one run on one
//! adapter: the numbers behind BENCHMARKS.md's dice-variant section.
//!
//! Run: `cargo run --release --example dice_variants -- 262144x4x1 4x4x65536`
//! (shapes as NxCxINNER; `--runs N` timed runs per variant, median).

use wgpu_loss::cli::bench::{gbps, median, Bench};
use wgpu_loss::{dice_variants, with_dice_variant, Context, Dice, DiceMode, Inputs, Loss};
use wgpu_loss::{Prepared, Upstream};
use wgpu_loss::{Reduction, Tensor};

fn main() -> wgpu_loss::Result<()> {
    let mut runs = 3;
    let Some(Loss::Dice(defaults)) = Loss::from_name("dice") else {
        unreachable!("dice is in the catalog")
    };
    let loss = Loss::Dice(Dice {
        mode: DiceMode::Multilabel,
        from_logits: true,
        ..defaults
    });
    let mut shapes = vec![];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N");
        } else {
            let dims: Vec<usize> = a
                .split('x')
                .map(|d| d.parse().expect("NxCxINNER"))
                .collect();
            assert_eq!(dims.len(), 3, "NxCxINNER");
            shapes.push(dims);
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
        "multilabel dice from logits, adapter: {} ({timing}), median of {runs} runs",
        ctx.adapter_name()
    );
    println!("shape            call     variant              ms       GB/s   copy GB/s  eff");
    for shape in shapes {
        let n: usize = shape.iter().product();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ n as u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let x: Vec<f32> = (0..n)
            .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 * 8.0 - 4.0)
            .collect();
        let y: Vec<f32> = (0..n).map(|_| (next() % 5 < 2) as u8 as f32).collect();
        let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
        // Input and target read; the fused call also writes the gradient.
        let read = 8 * n;
        for (call, bytes) in [("forward", read), ("fused", read + 4 * n)] {
            let copy = bench.copy_gbps(bytes)?;
            for v in dice_variants(&ctx, &loss, Reduction::Mean, &inputs)? {
                let prepared: Prepared<'_> = with_dice_variant(v, || {
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
                    "{:<16} {call:<8} {v:<20} {ms:>8.2} {g:>8.2} {copy:>9.2}  {:.2}",
                    format!("{}x{}x{}", shape[0], shape[1], shape[2]),
                    g / copy
                );
            }
        }
    }
    Ok(())
}
