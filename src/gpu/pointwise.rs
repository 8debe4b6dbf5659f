//! Host side of `shaders/pointwise.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::evaluator::{chunk_len, finalize, Dispatch, Role, Schedule, Slice, OFFSET_ALIGN};
use super::{grid, WG};
use crate::context::POINTWISE;
use crate::error::{Error, Result};
use crate::inputs::{Broadcast, PointPlan};
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
    base: u32,
    partial_base: u32,
    w_sliced: u32,
    a_sliced: u32,
    p: [f32; 4],
    per_thread: u32,
    _pad: [u32; 3],
}

/// The shader's LOSS override constant and scalar parameters for each loss.
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

/// How a broadcast tensor is bound: whole (indexed by the global element) or,
/// when it is as long as the input and longer than a binding, sliced with it.
fn bind_broadcast(
    loss: &Loss,
    name: &'static str,
    role: Role,
    b: Option<&Broadcast<'_>>,
    n: usize,
    limit: usize,
) -> Result<(Role, bool)> {
    match b {
        None => Ok((Role::Absent, false)),
        Some(b) if b.len <= limit => Ok((role, false)),
        Some(b) if b.inner == 1 && b.len == n => Ok((role, true)),
        Some(b) => Err(Error::TooLarge {
            loss: loss.name(),
            name,
            len: b.len,
            limit,
        }),
    }
}

pub(super) fn schedule(
    loss: &Loss,
    reduction: Reduction,
    plan: &PointPlan<'_>,
    limit: usize,
    groups_wanted: usize,
) -> Result<Schedule> {
    let (id, p) = loss_id(loss);
    let q = plan.per_target;
    // Slices hold whole groups of Q quantiles and start 256-byte aligned, in
    // the input and in the target alike.
    let step = chunk_len(limit.min(u32::MAX as usize / 2), OFFSET_ALIGN * q);
    let (w_role, w_sliced) = bind_broadcast(
        loss,
        "weight",
        Role::Weight,
        plan.weight.as_ref(),
        plan.n,
        limit,
    )?;
    let aux_role = if matches!(loss, Loss::Quantile { .. }) {
        Role::Owned(0)
    } else {
        Role::PosWeight
    };
    let (a_role, a_sliced) = bind_broadcast(
        loss,
        "pos_weight",
        aux_role,
        plan.aux.as_ref(),
        plan.n,
        limit,
    )?;
    let items = reduction == Reduction::None;
    let mut dispatches = Vec::new();
    let mut partials = 0;
    let mut base = 0;
    while base < plan.n {
        let len = step.min(plan.n - base);
        let items_per_thread = per_thread(len, groups_wanted);
        let (groups_x, groups_y) = grid(len.div_ceil(WG * items_per_thread));
        let params = PointParams {
            n: len as u32,
            per_target: q as u32,
            w_inner: plan.weight.as_ref().map_or(1, |w| w.inner as u32),
            w_len: plan.weight.as_ref().map_or(0, |w| w.len as u32),
            a_inner: plan.aux.as_ref().map_or(1, |a| a.inner as u32),
            a_len: plan.aux.as_ref().map_or(0, |a| a.len as u32),
            write_items: items as u32,
            groups_x,
            base: base as u32,
            partial_base: partials as u32,
            w_sliced: w_sliced as u32,
            a_sliced: a_sliced as u32,
            p,
            per_thread: items_per_thread as u32,
            _pad: [0; 3],
        };
        let sliced = |role: Role, yes: bool| {
            if yes {
                Slice::range(role, base, len)
            } else {
                Slice::whole(role)
            }
        };
        let out = if items {
            Slice::range(Role::Output, base, len)
        } else {
            Slice::whole(Role::Scratch)
        };
        dispatches.push(Dispatch {
            kernel: &POINTWISE,
            entry: "main",
            constants: vec![("LOSS", id as f64)],
            params: bytemuck::bytes_of(&params).to_vec(),
            bindings: vec![
                Slice::range(Role::Input, base, len),
                Slice::range(Role::Target, base / q, len.div_ceil(q)),
                sliced(w_role, w_sliced),
                sliced(a_role, a_sliced),
                out,
            ],
            groups: (groups_x, groups_y),
        });
        partials += groups_x as usize * groups_y as usize;
        base += len;
    }
    let owned = match (loss, &plan.aux) {
        (Loss::Quantile { .. }, Some(a)) => vec![a.data.to_vec()],
        _ => vec![],
    };
    if items {
        return Ok(Schedule {
            dispatches,
            scratch: 0,
            owned,
            output_len: plan.n,
        });
    }
    dispatches.push(finalize(partials, reduction, plan.batch));
    Ok(Schedule {
        dispatches,
        scratch: 2 * partials,
        owned,
        output_len: 1,
    })
}
