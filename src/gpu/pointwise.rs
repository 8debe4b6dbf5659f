//! Host side of `shaders/pointwise.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::{grid, Divide, Job, WG};
use crate::context::{Context, POINTWISE};
use crate::error::Result;
use crate::inputs::{Inputs, PointPlan, Target};
use crate::loss::{Loss, Reduction};

/// Elements per thread, at least: enough to keep the threads busy between
/// workgroup reductions.
const MIN_ITEMS: usize = 8;
/// And at most: each thread sums its items in one running f32 sum, so this
/// bounds its rounding error (64 ulp) before the tree reduction.
const MAX_ITEMS: usize = 64;

/// Elements per thread for `n` elements: more than the minimum only where
/// that still leaves the adapter the workgroups it wants in flight, so that
/// large batches pay for fewer workgroup reductions and partials.
fn per_thread(n: usize, groups_wanted: usize) -> usize {
    n.div_ceil(WG * groups_wanted.max(1))
        .clamp(MIN_ITEMS, MAX_ITEMS)
}

/// Must be kept in sync with `Params` in shaders/pointwise.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PointParams {
    n: u32,
    per_target: u32,
    w_inner: u32,
    w_len: u32,
    a_inner: u32,
    a_len: u32,
    write_items: u32,
    groups_x: u32,
    p: [f32; 4],
    per_thread: u32,
    _pad: [u32; 3],
}

/// The shader's LOSS override constant for each loss.
fn loss_id(loss: &Loss) -> (u32, [f32; 4]) {
    match loss {
        Loss::Mse => (0, [0.0; 4]),
        Loss::L1 => (1, [0.0; 4]),
        Loss::Huber { delta } => (2, [*delta, 0.0, 0.0, 0.0]),
        Loss::SmoothL1 { beta } => (3, [*beta, 0.0, 0.0, 0.0]),
        Loss::LogCosh => (4, [0.0; 4]),
        Loss::Quantile { .. } => (5, [0.5, 0.0, 0.0, 0.0]),
        Loss::Bce => (6, [0.0; 4]),
        Loss::BceWithLogits => (7, [0.0; 4]),
        Loss::SigmoidFocal { alpha, gamma } => (8, [*alpha, *gamma, 0.0, 0.0]),
        Loss::KlDiv { log_target } => (9, [*log_target as u8 as f32, 0.0, 0.0, 0.0]),
        _ => unreachable!("not a pointwise loss"),
    }
}

pub(super) fn record(
    ctx: &Context,
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    plan: &PointPlan<'_>,
) -> Result<Job> {
    let Some(Target::Float(target)) = inputs.target else {
        unreachable!("validated by plan")
    };
    let (id, p) = loss_id(loss);
    let x = ctx.upload("input", inputs.input.data);
    let y = ctx.upload("target", target.data);
    let w = ctx.upload(
        "weight",
        plan.weight.as_ref().map_or(&[][..], |w| &w.data[..]),
    );
    let a = ctx.upload("aux", plan.aux.as_ref().map_or(&[][..], |a| &a.data[..]));
    let items_per_thread = per_thread(plan.n, ctx.groups_wanted());
    let (groups_x, groups_y) = grid(plan.n.div_ceil(WG * items_per_thread));
    let partials = groups_x as usize * groups_y as usize;
    let items = reduction == Reduction::None;
    let out = ctx.storage("pointwise out", if items { plan.n } else { 2 * partials });
    let params = PointParams {
        n: plan.n as u32,
        per_target: plan.per_target as u32,
        w_inner: plan.weight.as_ref().map_or(1, |w| w.inner as u32),
        w_len: plan.weight.as_ref().map_or(0, |w| w.len as u32),
        a_inner: plan.aux.as_ref().map_or(1, |a| a.inner as u32),
        a_len: plan.aux.as_ref().map_or(0, |a| a.len as u32),
        write_items: items as u32,
        groups_x,
        p,
        per_thread: items_per_thread as u32,
        _pad: [0; 3],
    };
    let mut passes = Vec::new();
    if plan.n > 0 {
        let constants = [("LOSS", id as f64)];
        passes.push(ctx.pass(
            &POINTWISE,
            "main",
            &constants,
            &[&x, &y, &w, &a, &out],
            &params,
            (groups_x, groups_y),
        )?);
    }
    if items {
        return Ok(Job {
            passes,
            output: out,
            output_len: plan.n,
        });
    }
    let divide = match reduction {
        Reduction::Sum => Divide::Not,
        Reduction::BatchMean => Divide::By(plan.batch as f32),
        _ => Divide::BySummedDenominator,
    };
    let count = if plan.n > 0 { partials } else { 0 };
    let (fin, result) = ctx.finalize(&out, count, divide)?;
    passes.push(fin);
    Ok(Job {
        passes,
        output: result,
        output_len: 4,
    })
}
