//! What the `wgpu-loss` binary is made of besides the losses: `.npy` files,
//! seeded synthetic batches, the benchmark. Compiled with the `cli` feature
//! (on by default) and hidden from the documentation: it is not part of the
//! library's API and changes with the binary.

pub mod bench;
pub mod npy;
pub mod synthetic;
