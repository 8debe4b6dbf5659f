//! Every loss on the GPU against its float64 CPU twin and against PyTorch.

#[path = "../common/mod.rs"]
mod common;

mod dice;
mod fixtures;
mod gradients;
mod gradients_dice;
mod gradients_gpu;
mod gradients_pairs;
mod nonfinite;
mod pairs;
mod pointwise;
mod properties;
mod rows;
