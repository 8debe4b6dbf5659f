//! `wgpu-loss bench`: each loss timed against a copy kernel's bandwidth over
//! the same bytes (`wgpu_loss::cli::bench` does the timing), as a table,
//! JSON lines or an SVG plot.

use std::io::Write;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wgpu_loss::cli::args::BenchArgs;
use wgpu_loss::cli::bench::{self, Bench};
use wgpu_loss::cli::Fail;
use wgpu_loss::Context;

use crate::args::BenchPlan;
use crate::say;

pub fn bench(a: &BenchArgs) -> Result<ExitCode, Fail> {
    let plan = BenchPlan::new(a)?;
    let (losses, sizes, calls) = (&plan.losses, &plan.sizes, &plan.calls);
    let reduction = plan.reduction;
    let ctx = Context::new()?;
    let mut b = Bench::new(&ctx);
    b.reduction = reduction;
    b.repeats = plan.repeats;
    let timing = if b.timestamps() {
        "GPU time from timestamp queries"
    } else {
        "no timestamp queries on this adapter: times are wall clock (submit to readback)"
    };
    let note = |line: String| {
        let _ = writeln!(std::io::stderr(), "{line}");
    };
    note(format!("adapter: {}; {timing}", ctx.adapter_name()));
    let bar = ProgressBar::with_draw_target(
        Some((losses.len() * sizes.len() * calls.len() * plan.dtypes.len()) as u64),
        ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut records = vec![];
    for (loss, &dtype) in losses
        .iter()
        .flat_map(|l| plan.dtypes.iter().map(move |d| (l, d)))
    {
        b.dtype = dtype;
        for &size in sizes {
            for &call in calls {
                bar.set_message(format!("{} {} {call} n={size}", loss.name(), dtype.name()));
                let fused = call == "fused";
                // `None`: the variant the tuner picks.
                let mut runs: Vec<_> = if plan.all_variants {
                    b.variant_runs(loss, size, fused)?
                        .into_iter()
                        .map(Some)
                        .collect()
                } else {
                    vec![]
                };
                if runs.is_empty() {
                    runs.push(None);
                }
                for variant in runs {
                    let outcome = if fused {
                        b.fused_as(loss, size, variant)
                    } else {
                        b.forward_as(loss, size, variant)
                    };
                    match outcome? {
                        bench::Outcome::Done(r) => {
                            if a.json {
                                bar.suspend(|| say(&serde_json::to_string(&r).unwrap_or_default()));
                            }
                            records.push(*r);
                        }
                        bench::Outcome::Skipped(why) => bar.suspend(|| {
                            note(format!(
                                "skipped {} {} {call} at {size}: {why}",
                                loss.name(),
                                dtype.name()
                            ))
                        }),
                    }
                }
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    if !a.json {
        say(&format!(
            "adapter: {} ({:?}); {timing}",
            ctx.adapter_name(),
            ctx.adapter_info().device_type
        ));
        say(&format!(
            "reduction {}, inputs on the device; forward: the value; fused: the value and every gradient (upstream 1, \
             gradients left on the device); efficiency = GB/s / copy-kernel GB/s over the same bytes; \
             rt ms = blocking call on {} elements (inputs on the device), eval ms = the same from host data; \
             /fwd = fused gpu ms / forward gpu ms of the same variant; variant: the kernel variant run \
             (forced: not the tuner's choice)",
            reduction.name(),
            bench::ROUNDTRIP_N
        ));
        print!("{}", bench::table(&records));
    }
    if let Some(path) = &a.plot {
        let title = format!(
            "wgpu-loss {} ({}), {}",
            calls.join(" and "),
            reduction.name(),
            ctx.adapter_name()
        );
        bench::plot_svg(&records, path, &title).map_err(Fail::Usage)?;
        note(format!("wrote {}", path.display()));
    }
    Ok(ExitCode::SUCCESS)
}
