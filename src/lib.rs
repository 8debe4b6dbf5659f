//! Deep-learning loss functions evaluated on the GPU through wgpu, each checked
//! against a float64 CPU twin.
//!
//! ```no_run
//! use wgpu_loss::{Context, Inputs, Loss, Reduction, Tensor};
//! let ctx = Context::new()?;
//! let (x, y) = (vec![0.5f32, 1.5, 2.0], vec![1.0f32, 1.0, 1.0]);
//! let shape = [3];
//! let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
//! let out = ctx.evaluate(&Loss::Huber { delta: 1.0 }, Reduction::Mean, &inputs)?;
//! println!("{}", out.value);
//! # Ok::<(), wgpu_loss::Error>(())
//! ```

mod context;
pub mod cpu;
mod error;
mod gpu;
pub mod inputs;
mod loss;
pub mod synthetic;

pub use context::Context;
pub use error::{Error, Result};
pub use gpu::{Evaluation, Prepared};
pub use inputs::{Inputs, Target, Tensor};
pub use loss::{DiceMode, Loss, Reduction};
