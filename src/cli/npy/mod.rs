//! A small, strict `.npy` reader and an atomic writer.
//!
//! Reads C-order arrays of float16 (as `f16`), float32/float64 (as `f32`)
//! and of the integer and bool types (as `i64`), either byte order. Everything in the header is
//! checked against the file length before anything is allocated, so a
//! malformed or hostile file gives an [`NpyError`], never a panic or a huge
//! allocation.
//!
//! `array`: what a file gives, and the errors; `header`: the preamble and
//! the header's literal, validated; `read`: whole files read or parsed;
//! `mapped`: files mapped instead; `write`: files written; `out`: files
//! written a part at a time through a map.

mod array;
mod header;
mod mapped;
mod out;
mod read;
#[cfg(test)]
mod tests;
mod write;

pub use array::{Array, Data, NpyError};
pub use mapped::{release, Mapped};
pub use out::{Layout, OutFile};
pub use read::{parse, read};
pub use write::{write_f32, write_i64, write_layout};
