//! One batch split across several adapters.
//!
//! The batch is cut along its natural unit (see [`Chunks`]) into one share
//! per context, as even as the unit allows; each share is streamed through
//! its own device on its own thread, and the shares' partials are merged in
//! f64, in batch order, into what one call over the whole batch gives (a
//! weighted mean over all the weights, `ignore_index` rows ignored across
//! shares, Dice's empty-class rule on the merged per-class sums). `none`
//! items are concatenated in batch order. [`rate`] and [`weighted`] share a
//! batch by each adapter's measured speed instead.

use std::ops::Range;
use std::time::Instant;

use crate::chunks::Chunks;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::gpu::stream::Acc;
use crate::gpu::Evaluation;
use crate::inputs::Inputs;
use crate::loss::{Loss, Reduction};

/// One adapter's part of a split evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Share {
    /// [`Context::adapter_name`] of the adapter that evaluated it.
    pub adapter: String,
    /// The units of the batch it held (see [`Chunks::units`]).
    pub units: Range<usize>,
    /// Wall-clock milliseconds from cutting the share to its merged result.
    pub ms: f64,
}

/// The result of [`evaluate`] and how the batch was shared.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub evaluation: Evaluation,
    /// In batch order; fewer than the contexts when the batch has fewer units.
    pub shares: Vec<Share>,
}

/// The batch cut into at most `parts` chunks of whole units, as even as the
/// unit allows (chunks of a pointwise loss whose broadcast repeats along the
/// trailing dims hold whole periods).
pub fn cut<'a>(
    parts: usize,
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'a>,
) -> Result<Chunks<'a>> {
    let parts = parts.max(1);
    let units = Chunks::new(loss, reduction, inputs, usize::MAX)?.units();
    let per_unit = (inputs.input.data.len() / units.max(1)).max(1);
    let chunks = Chunks::new(
        loss,
        reduction,
        inputs,
        units.div_ceil(parts).max(1) * per_unit,
    )?;
    if chunks.len() <= parts {
        return Ok(chunks);
    }
    // Rounding down to whole periods made more chunks than parts: widen them.
    let step = chunks.units_per_chunk() * chunks.len().div_ceil(parts);
    Chunks::new(loss, reduction, inputs, step * per_unit)
}

/// Evaluates one call with its batch split across `contexts` (see
/// [`Context::all`]): share k of [`cut`] runs on context k in its own thread,
/// streamed through that device in chunks its bindings hold. An error names
/// the first failing share in batch order; a GPU error names its adapter.
pub fn evaluate(
    contexts: &[Context],
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'_>,
) -> Result<Split> {
    if contexts.is_empty() {
        return Err(Error::NoAdapter(
            "no context to split the batch across".into(),
        ));
    }
    let cut = cut(contexts.len(), loss, reduction, inputs)?;
    let results: Vec<Result<(Acc, Share)>> = std::thread::scope(|s| {
        let handles: Vec<_> = contexts
            .iter()
            .take(cut.len())
            .enumerate()
            .map(|(k, ctx)| {
                let cut = &cut;
                s.spawn(move || share(ctx, cut, k))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut merged: Option<Acc> = None;
    let mut shares = Vec::with_capacity(results.len());
    for result in results {
        let (acc, share) = result?;
        match &mut merged {
            Some(m) => m.absorb(acc)?,
            None => merged = Some(acc),
        }
        shares.push(share);
    }
    let merged = merged.expect("a cut holds at least one chunk");
    Ok(Split {
        evaluation: merged.finish(&cut)?,
        shares,
    })
}

/// Share `k` of `cut`, streamed through `ctx`.
fn share(ctx: &Context, cut: &Chunks<'_>, k: usize) -> Result<(Acc, Share)> {
    let start = Instant::now();
    let chunk = cut.chunk(k)?;
    let inputs = chunk.inputs();
    let chunks = Chunks::new(
        cut.loss(),
        cut.reduction(),
        &inputs,
        ctx.max_binding_elements(),
    )?;
    let name = ctx.adapter_name();
    let acc = ctx.stream_share(&chunks).map_err(|e| match e {
        Error::Gpu { context, source } => Error::Gpu {
            context: format!("{name}: {context}"),
            source,
        },
        Error::DeviceLost(m) => Error::DeviceLost(format!("{name}: {m}")),
        Error::OutOfMemory(m) => Error::OutOfMemory(format!("{name}: {m}")),
        e => e,
    })?;
    Ok((
        acc,
        Share {
            adapter: name,
            units: chunk.units.clone(),
            ms: start.elapsed().as_secs_f64() * 1e3,
        },
    ))
}

/// Input values per second that `ctx` evaluates `loss` at on `probe` (a
/// small part of the batch): the partial is computed once to build the
/// pipelines, then timed once. What [`weighted`] shares a batch by.
pub fn rate(ctx: &Context, loss: &Loss, probe: &Inputs<'_>) -> Result<f64> {
    ctx.partial(loss, probe)?;
    let start = Instant::now();
    ctx.partial(loss, probe)?;
    let s = start.elapsed().as_secs_f64().max(1e-9);
    Ok(probe.input.data.len().max(1) as f64 / s)
}

/// `units` units cut into one range per weight, in order, each as near its
/// weight's share as multiples of `quantum` allow (the last range ends at
/// `units`); a weight that is not a positive finite number gets nothing,
/// and where none is, the ranges are even.
pub fn weighted(weights: &[f64], units: usize, quantum: usize) -> Vec<Range<usize>> {
    let quantum = quantum.max(1);
    let usable = |w: f64| w.is_finite() && w > 0.0;
    let mut w: Vec<f64> = weights
        .iter()
        .map(|&w| if usable(w) { w } else { 0.0 })
        .collect();
    if w.iter().all(|&v| v == 0.0) {
        w = vec![1.0; weights.len()];
    }
    let total: f64 = w.iter().sum();
    let mut out = Vec::with_capacity(w.len());
    let (mut start, mut cum) = (0usize, 0.0f64);
    for (k, v) in w.iter().enumerate() {
        cum += v;
        let end = if k + 1 == w.len() {
            units
        } else {
            let at = units as f64 * cum / total;
            ((at / quantum as f64).round() as usize * quantum).clamp(start, units)
        };
        out.push(start..end);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::weighted;

    #[test]
    fn weighted_ranges_cover_the_batch_in_order() {
        assert_eq!(weighted(&[3.0, 1.0], 100, 1), vec![0..75, 75..100]);
        assert_eq!(weighted(&[1.0, 1.0, 1.0], 10, 4), vec![0..4, 4..8, 8..10]);
        assert_eq!(
            weighted(&[0.0, f64::NAN, 2.0], 9, 1),
            vec![0..0, 0..0, 0..9]
        );
        assert_eq!(weighted(&[0.0, 0.0], 5, 1), vec![0..3, 3..5]);
        assert_eq!(weighted(&[1.0, 1e-9], 7, 1), vec![0..7, 7..7]);
        assert_eq!(weighted(&[1.0], 0, 1), vec![0..0]);
    }
}
