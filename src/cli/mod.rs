//! What the `wgpu-loss` binary is made of besides the losses: its command
//! line and the checks `eval` makes before it opens a GPU, `.npy` and
//! `.safetensors` files,
//! seeded synthetic batches, the benchmark. Compiled with the `cli` feature
//! (on by default) and hidden from the documentation: it is not part of the
//! library's API and changes with the binary.

pub mod agree;
pub mod args;
pub mod bench;
pub mod check;
mod fail;
pub mod npy;
pub mod safetensors;
pub mod source;
pub mod synthetic;

use clap::Parser;

use args::{Cli, Command};
use check::{load, reference, Request};
pub use fail::Fail;

/// Everything `wgpu-loss eval` does with `args` (the program name first)
/// before it opens a GPU: parsing, the checks of [`Request::new`], reading
/// the input files and the CPU reference. Other commands only parse.
/// The error is the message the CLI would print; tests/fuzz.rs drives this.
pub fn check_args(args: &[String]) -> Result<(), String> {
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    let Command::Eval(a) = cli.command else {
        return Ok(());
    };
    let check = || -> Result<(), Fail> {
        let r = Request::new(&a)?;
        let loaded = load(&r.loss, &r.files)?;
        reference(&r.loss, r.reduction, &loaded.inputs(), !r.grads.is_empty())?;
        Ok(())
    };
    check().map_err(Fail::message)
}
