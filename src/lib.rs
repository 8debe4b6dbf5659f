#![doc = include_str!("../README.md")]

mod adapters;
pub mod chunks;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
mod context;
pub mod cpu;
mod device;
mod error;
mod gpu;
mod gradients;
pub mod inputs;
mod loss;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod partial;
pub mod split;

pub use adapters::{AdapterFilter, SkipReason};
pub use chunks::{Chunk, Chunks};
pub use context::{Adapters, Context};
pub use device::{BufferView, DeviceInputs, DeviceTensor, DeviceUpstream, GradViews};
pub use error::{Error, GpuSource, Result};
pub use gpu::evaluator::Evaluator;
pub use gpu::stream::ChunkResult;
/// Test hooks: forcing and listing the kernel variants from inside calls.
#[doc(hidden)]
pub use gpu::variant::{variant_names, with_forced_variant};
pub use gpu::{Evaluation, Gradients, Prepared, TuneCache, Variant};
pub use gpu::{TUNE_MAX_ELEMENTS, TUNE_MIN_ELEMENTS};
pub use gradients::GradientsOf;
pub use inputs::{bf16, f16, DType, Floats, Inputs, Target, Tensor, Upstream};
pub use loss::{
    Dice, DiceMode, Domain, Entry, Loss, Need, Pairs, Param, Pointwise, Reduction, Rows,
    TargetKind, TensorName, Value, CATALOG,
};
pub use partial::Partial;
