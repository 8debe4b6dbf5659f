//! The command line. Its clap types are the library's
//! (`wgpu_loss::cli::args`), which `check_args` parses too; here clap's
//! errors become the CLI's one-line message, and `bench`'s flags become
//! what it runs. `eval`'s flags are checked by `wgpu_loss::cli::check`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use wgpu_loss::cli::args::{loss_names, BenchArgs, Cli};
use wgpu_loss::cli::bench;
use wgpu_loss::cli::Fail;
use wgpu_loss::{DType, Loss, Reduction};

/// The parsed command line, or the exit code once help, the version or a
/// one-line error was printed.
pub fn parse() -> Result<Cli, ExitCode> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(
                e.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return Err(ExitCode::from(e.exit_code() as u8));
            }
            // clap's message is the first paragraph; usage and tips follow.
            let text = e.render().to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = message.join(" ");
            let message = message.trim_start_matches("error: ");
            let _ = writeln!(
                std::io::stderr(),
                "error: {message} (see `wgpu-loss --help`)"
            );
            Err(ExitCode::from(2))
        }
    }
}

/// What `wgpu-loss bench` runs: its flags, checked.
pub struct BenchPlan {
    pub losses: Vec<Loss>,
    pub reduction: Reduction,
    pub sizes: Vec<usize>,
    /// "forward" and/or "fused", in that order.
    pub calls: Vec<&'static str>,
    pub repeats: bench::Repeats,
    /// Every variant that can run each call, not only the tuner's choice.
    pub all_variants: bool,
    /// The dtypes of the float inputs, each timed in turn.
    pub dtypes: Vec<DType>,
}

/// "65536", "2^16" or "1e6" as a count.
fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    if let Some((b, e)) = s.split_once('^') {
        return b.parse::<usize>().ok()?.checked_pow(e.parse().ok()?);
    }
    s.parse::<usize>().ok().or_else(|| {
        let f = s.parse::<f64>().ok()?;
        (f >= 0.0 && f.fract() == 0.0 && f < 1e15).then_some(f as usize)
    })
}

impl BenchPlan {
    pub fn new(a: &BenchArgs) -> Result<BenchPlan, Fail> {
        let names = if a.loss.is_empty() {
            Loss::names().map(|s| s.to_string()).collect()
        } else {
            a.loss.clone()
        };
        let losses = names
            .iter()
            .map(|name| {
                Loss::from_name(name.trim()).ok_or_else(|| {
                    Fail::Usage(format!(
                        "--loss: unknown loss `{name}` (one of: {})",
                        loss_names()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let reduction = Reduction::from_name(&a.reduction).ok_or_else(|| {
            Fail::Usage(format!(
                "unknown reduction `{}` (use none, mean, sum or batchmean)",
                a.reduction
            ))
        })?;
        let sizes = if a.sizes.is_empty() {
            bench::default_sizes()
        } else {
            a.sizes
                .iter()
                .map(|s| {
                    parse_size(s).filter(|n| *n > 0).ok_or_else(|| {
                        Fail::Usage(format!("--sizes: `{s}` is not a positive count"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        if a.seconds.is_nan() || a.seconds < 0.0 || a.min_runs == 0 || a.max_runs < a.min_runs {
            return Err(Fail::Usage(
                "need --seconds >= 0 and 1 <= --min-runs <= --max-runs".into(),
            ));
        }
        let mut fused = false;
        let mut forward = a.calls.is_empty();
        for call in &a.calls {
            match call.trim() {
                "forward" => forward = true,
                "fused" => fused = true,
                other => {
                    return Err(Fail::Usage(format!(
                        "--calls: unknown call `{other}` (use forward, fused)"
                    )))
                }
            }
        }
        fused |= a.calls.is_empty();
        let calls = [("forward", forward), ("fused", fused)]
            .into_iter()
            .filter(|c| c.1)
            .map(|c| c.0)
            .collect();
        let dtypes = if a.dtype.is_empty() {
            vec![DType::F32]
        } else {
            a.dtype
                .iter()
                .map(|d| {
                    DType::parse(d.trim()).ok_or_else(|| {
                        Fail::Usage(format!("--dtype: unknown dtype `{d}` (use f32, f16, bf16)"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(BenchPlan {
            losses,
            reduction,
            sizes,
            calls,
            dtypes,
            repeats: bench::Repeats {
                min_runs: a.min_runs,
                max_runs: a.max_runs,
                target_s: a.seconds,
            },
            all_variants: a.variants == "all",
        })
    }
}
