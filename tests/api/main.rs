//! The API around the losses: caller buffers, errors and misuse, lost
//! devices, threads, prepared calls, streaming, splitting across adapters,
//! the tuner, and the examples.

#[path = "../common/mod.rs"]
mod common;

mod adapters;
mod buffers;
mod concurrency;
mod errors;
mod faults;
mod half;
mod misuse;
mod parts;
mod pipeline;
mod prepared;
mod reuse;
mod split;
mod stream;
mod train;
mod tune;
