//! `eval --adapters all` (one adapter per device) or `every` (each backend
//! apart): the files mapped, each adapter's speed measured on a small probe
//! of the batch, the batch cut into one share per adapter in proportion to
//! it, and each share streamed through its adapter on its own thread within
//! its part of the budget (as `streamed` streams a whole batch). The shares'
//! partials merge in batch order; gradients take a second pass, each share
//! on its adapter again.

use std::ops::Range;

use serde_json::{json, Value as JsonValue};
use wgpu_loss::cli::check::{Check, Request};
use wgpu_loss::cli::Fail;
use wgpu_loss::{split, AdapterFilter, Chunks, Context};

use crate::eval::{num, Outcome, Writes};
use crate::streamed::{Backward, Batch, Forward, Outs, Progress};
use wgpu_loss::cli::source::Sources;

/// Input values in the probe each adapter is timed on.
const PROBE_VALUES: usize = 1 << 18;

/// Runs `each(k, ctx, range)` for every non-empty share on its own thread;
/// the results in share order (`None` for an empty share).
fn on_each<T: Send>(
    contexts: &[Context],
    ranges: &[Range<usize>],
    each: impl Fn(&Context, Range<usize>) -> Result<T, Fail> + Sync,
) -> Result<Vec<Option<T>>, Fail> {
    let results: Vec<Option<Result<T, Fail>>> = std::thread::scope(|s| {
        let handles: Vec<_> = contexts
            .iter()
            .zip(ranges)
            .map(|(ctx, range)| {
                let each = &each;
                (!range.is_empty()).then(|| s.spawn(move || each(ctx, range.clone())))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))))
            .collect()
    });
    results.into_iter().map(|r| r.transpose()).collect()
}

pub fn run(r: &Request, every: bool) -> Result<Outcome, Fail> {
    let (loss, reduction) = (&r.loss, r.reduction);
    let sources = Sources::map(loss, &r.files)?;
    let inputs = sources.inputs();
    let whole = Chunks::new(loss, reduction, &inputs, usize::MAX)?;
    let filter = if every {
        AdapterFilter::EVERY
    } else {
        AdapterFilter::default()
    };
    let adapters = Context::all_with(filter)?;
    let skipped: JsonValue = adapters
        .skipped
        .iter()
        .map(|(info, why)| {
            json!({
                "name": info.name,
                "backend": format!("{:?}", info.backend),
                "reason": why.to_string(),
            })
        })
        .collect();
    let contexts = adapters.contexts;

    // Each adapter's speed on the same probe: the first units of the batch.
    let units = whole.units();
    let per_unit = (inputs.input.data.len() / units.max(1)).max(1);
    let q = whole.quantum();
    let probe_units = (PROBE_VALUES.div_ceil(per_unit).div_ceil(q) * q).min(units);
    let probe = whole.span(0..probe_units)?;
    let mut rates = Vec::with_capacity(contexts.len());
    for ctx in &contexts {
        rates.push(split::rate(ctx, loss, &probe.inputs())?);
    }
    let ranges = split::weighted(&rates, units, q);

    let outs = Outs::create(r, whole.items_shape(), &sources)?;
    let grad = !r.grads.is_empty();
    let progress = Progress::new(if grad { 2 } else { 1 } * units as u64);
    let batch = Batch {
        loss,
        reduction,
        check: r.check,
        sources: &sources,
        whole: &whole,
        budget: r.budget / contexts.len().max(1) as u64,
        outs: &outs,
        progress: &progress,
    };
    let start = std::time::Instant::now();
    let forwards: Vec<Option<Forward>> = on_each(&contexts, &ranges, |ctx, range| {
        let part = whole.span(range.clone())?;
        batch.forward(ctx, &part.inputs(), range.start)
    })?;
    let done: Vec<Forward> = forwards.iter().flatten().map(clone_forward).collect();
    let merged = batch.merge(&done)?;
    batch.dice_items(&merged)?;
    let mut backwards: Vec<Option<Backward>> = contexts.iter().map(|_| None).collect();
    let mut grad_diff = None;
    if grad {
        let reference = merged.cpu.as_ref().unwrap_or(&merged.gpu);
        backwards = on_each(&contexts, &ranges, |ctx, range| {
            let part = whole.span(range.clone())?;
            batch.backward(ctx, &part.inputs(), range.start, &merged.gpu, reference)
        })?;
        let mut check = wgpu_loss::cli::agree::GradCheck::default();
        for b in backwards.iter().flatten() {
            check.merge(&b.check);
        }
        check.verdict(loss.name()).map_err(Fail::Disagree)?;
        grad_diff = (r.check != Check::Off).then_some(check.max_abs_diff);
    }
    progress.finish();
    let gpu_ms = start.elapsed().as_secs_f64() * 1e3;
    let total_rate: f64 = rates.iter().sum();
    let shares: JsonValue = contexts
        .iter()
        .enumerate()
        .map(|(k, ctx)| {
            let f = forwards[k].as_ref();
            let b = backwards[k].as_ref();
            json!({
                "adapter": ctx.adapter_name(),
                "units": [ranges[k].start, ranges[k].end],
                "rate": num(rates[k]),
                "weight": num(rates[k] / total_rate),
                "chunks": f.map_or(0, |f| f.chunks) + b.map_or(0, |b| b.chunks),
                "ms": num(f.map_or(0.0, |f| f.ms) + b.map_or(0.0, |b| b.ms)),
            })
        })
        .collect();
    let chunks = done.iter().map(|f| f.chunks).sum();
    let mut sampled = (vec![], vec![]);
    for f in &done {
        sampled.0.extend(f.sampled.iter().cloned());
    }
    for b in backwards.iter().flatten() {
        sampled.1.extend(b.sampled.iter().cloned());
    }
    let names: Vec<String> = contexts.iter().map(Context::adapter_name).collect();
    Ok(Outcome {
        value: merged.value,
        cpu_value: merged.cpu_value,
        n: inputs.input.data.len(),
        items: batch.items_len(),
        items_shape: whole.items_shape().to_vec(),
        gpu_ms,
        adapter: contexts[0].adapter_info().clone(),
        adapter_name: names.join(" + "),
        chunks: Some(chunks),
        grad_diff,
        sampled,
        shares: Some(shares),
        skipped: Some(skipped),
        ranks: None,
        dtype: sources.dtype(wgpu_loss::TensorName::Input),
        writes: Writes::Mapped(outs),
    })
}

fn clone_forward(f: &Forward) -> Forward {
    Forward {
        gpu: f.gpu.clone(),
        cpu: f.cpu.clone(),
        abs: f.abs,
        sampled: f.sampled.clone(),
        chunks: f.chunks,
        ms: f.ms,
    }
}
