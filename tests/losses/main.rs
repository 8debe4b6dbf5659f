//! Every loss on the GPU against its float64 CPU twin and against PyTorch:
//! a module per family with its values and gradients, the PyTorch cases,
//! non-finite data, and the property tests.

#[path = "../common/mod.rs"]
mod common;

mod dice;
mod fixtures;
mod nonfinite;
mod pairs;
mod pointwise;
mod properties;
mod rows;
