#![doc = include_str!("../README.md")]

pub mod bench;
mod context;
pub mod cpu;
mod error;
mod gpu;
pub mod inputs;
mod loss;
pub mod npy;
pub mod synthetic;

pub use context::Context;
pub use error::{Error, Result};
pub use gpu::{Evaluation, Prepared};
pub use inputs::{Inputs, Target, Tensor};
pub use loss::{DiceMode, Loss, Reduction};
