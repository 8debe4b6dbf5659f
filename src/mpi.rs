//! Partials combined across the ranks of an MPI job (feature `mpi`, over the
//! system's MPI through the `mpi` crate).
//!
//! Each rank evaluates its part of a batch into a [`Partial`]; [`all_reduce`]
//! adds the parts' sums on every rank with one `MPI_Allreduce` of f64 values
//! ([`Partial::to_sums`]: the loss sum, the denominator, the batch size and,
//! for Dice, each class's sums), so that every rank then holds what one call
//! over the whole batch gives ([`Partial::value`]) and can scale its part's
//! gradients by it ([`crate::Context::gradient_of_part`]). A program that
//! already uses MPI passes its own communicator.
//!
//! ```no_run
//! use mpi::traits::*;
//! use wgpu_loss::{cpu, Inputs, Loss, Reduction, Tensor};
//!
//! let universe = mpi::initialize().unwrap();
//! let world = universe.world();
//! let loss = Loss::from_name("mse").unwrap();
//! // This rank's part of the batch.
//! let (x, y) = (vec![world.rank() as f32; 4], vec![0.0f32; 4]);
//! let inputs = Inputs::new(Tensor::new(&x, &[4])).target(Tensor::new(&y, &[4]));
//! let part = cpu::partial(&loss, &inputs)?;
//! let whole = wgpu_loss::mpi::all_reduce(&world, &part)?;
//! let mean = whole.value(&loss, Reduction::Mean)?; // the same on every rank
//! # Ok::<(), wgpu_loss::Error>(())
//! ```

use ::mpi::collective::SystemOperation;
use ::mpi::traits::*;

use crate::error::{Error, Result};
use crate::partial::Partial;

/// Merges every rank's `partial` into the whole batch's, returned on every
/// rank: the sums of all ranks' [`Partial::to_sums`], in f64. Every rank must
/// pass a partial of the same loss (and, for Dice, class count): a small
/// all-reduce compares them first, so a mismatch is an [`Error::Partial`] on
/// every rank rather than a hang or a wrong sum. A collective call: every
/// rank of `comm` must make it.
pub fn all_reduce<C: Communicator>(comm: &C, partial: &Partial) -> Result<Partial> {
    let mut out = all_reduce_all(comm, std::slice::from_ref(partial))?;
    Ok(out.remove(0))
}

/// [`all_reduce`] of several partials (of any losses, in the same order on
/// every rank) in one `MPI_Allreduce`: a GPU's and its reference's, say.
pub fn all_reduce_all<C: Communicator>(comm: &C, partials: &[Partial]) -> Result<Vec<Partial>> {
    let local: Vec<f64> = partials.iter().flat_map(Partial::to_sums).collect();
    // The layout every rank sends: its length and a hash of the losses and
    // class counts, compared through MAX of (v, -v).
    let mut shape = 0xcbf2_9ce4_8422_2325u64;
    for p in partials {
        for b in p.loss.bytes().chain(p.to_sums().len().to_le_bytes()) {
            shape = (shape ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    // Shifted so that negating it cannot overflow.
    let shape = (shape >> 1) as i64;
    let mine = [local.len() as i64, -(local.len() as i64), shape, -shape];
    let mut all = [0i64; 4];
    comm.all_reduce_into(&mine[..], &mut all[..], SystemOperation::max());
    if all[0] != -all[1] || all[2] != -all[3] {
        return Err(Error::Partial(format!(
            "the ranks' partials differ in loss or class count (between {} and {} sums)",
            -all[1], all[0]
        )));
    }
    let mut sums = vec![0.0f64; local.len()];
    if !local.is_empty() {
        comm.all_reduce_into(&local[..], &mut sums[..], SystemOperation::sum());
    }
    let mut out = Vec::with_capacity(partials.len());
    let mut at = 0;
    for p in partials {
        let len = p.to_sums().len();
        let s = &sums[at..at + len];
        at += len;
        let batch = s[2];
        if !(batch >= 0.0 && batch.fract() == 0.0 && batch < 2f64.powi(53)) {
            return Err(Error::Partial(format!(
                "{}: the ranks' batches add up to {batch}",
                p.loss
            )));
        }
        out.push(Partial {
            loss: p.loss.clone(),
            sum: s[0],
            denom: s[1],
            batch: batch as u64,
            classes: p
                .classes
                .as_ref()
                .map(|_| s[3..].chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()),
        });
    }
    Ok(out)
}
