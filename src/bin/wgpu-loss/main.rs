//! `wgpu-loss`: evaluates a loss on `.npy` files on the GPU and on the float64
//! CPU reference. Only parsing, `.npy` I/O and printing live here; the losses
//! are the library's, and so are the command line's types and the checks
//! `eval` makes before it opens a GPU (`wgpu_loss::cli`).
//!
//! `args`: the command line; `eval`: `wgpu-loss eval`, with `sources` (the
//! files mapped) and `streamed` (a batch, or a part of it, in chunks) for
//! files over the budget, `split` across adapters and `mpi` across ranks;
//! `demo`, `bench`: those commands.

mod args;
mod bench;
mod demo;
mod eval;
#[cfg(feature = "mpi")]
mod mpi;
mod split;
mod streamed;

use std::io::Write;
use std::process::ExitCode;

use wgpu_loss::cli::args::Command;
use wgpu_loss::cli::Fail;
use wgpu_loss::Context;

/// Writes a line to stdout; a closed pipe is not worth a panic.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn main() -> ExitCode {
    let cli = match args::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Eval(args) => eval::eval(&args),
        Command::Demo { dir } => demo::demo(dir),
        Command::Adapters => adapters(),
        Command::Bench(args) => bench::bench(&args),
    };
    match result {
        Ok(code) => code,
        Err(fail) => {
            let code = fail.code();
            let msg = fail.message();
            let _ = writeln!(std::io::stderr(), "error: {msg}");
            ExitCode::from(code)
        }
    }
}

fn adapters() -> Result<ExitCode, Fail> {
    let adapters = Context::adapters();
    if adapters.is_empty() {
        return Err(wgpu_loss::Error::NoAdapter(
            "wgpu found no Vulkan, Metal, DX12 or GL adapter".into(),
        )
        .into());
    }
    let wanted = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .map(|s| s.to_lowercase());
    let mut picked = false;
    for (i, adapter) in adapters.iter().enumerate() {
        let info = adapter.get_info();
        let chosen = !picked
            && wanted
                .as_ref()
                .is_none_or(|w| info.name.to_lowercase().contains(w));
        picked |= chosen;
        let driver = if info.driver.is_empty() {
            String::new()
        } else {
            format!(", driver {}", info.driver)
        };
        say(&format!(
            "{i}: {} ({:?}, {:?}{driver}){}",
            info.name,
            info.backend,
            info.device_type,
            if chosen { "  <- used" } else { "" }
        ));
    }
    if !picked {
        say("none matches WGPU_ADAPTER_NAME; set it to part of one of the names above");
    }
    Ok(ExitCode::SUCCESS)
}
