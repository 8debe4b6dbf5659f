//! Host side of `shaders/rows.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::evaluator::{finalize, Dispatch, Role, Schedule, Slice, OFFSET_ALIGN};
use super::{grid, ignore_i32, ignore_index, WG};
use crate::context::ROWS;
use crate::error::{Error, Result};
use crate::inputs::RowsPlan;
use crate::loss::{Loss, Reduction};

/// Rows of at least this many contiguous classes (inner == 1) get a workgroup
/// each (`wide`); shorter rows get a thread each (`main`).
const WIDE_MIN_CLASSES: usize = 2048;

/// The same for strided rows (inner > 1), where one thread per row reads
/// coalesced across neighbouring rows and stays the better choice for longer.
/// Must stay well below 65 535: llvmpipe ends any invocation after that many
/// loop iterations in total.
const WIDE_MIN_CLASSES_STRIDED: usize = 16_384;

/// Must be kept in sync with `Params` in shaders/rows.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RowsParams {
    rows: u32,
    classes: u32,
    inner: u32,
    has_weight: u32,
    write_items: u32,
    groups_x: u32,
    eps: f32,
    gamma: f32,
    ignore: i32,
    x_skip: u32,
    t_skip: u32,
    o_skip: u32,
    partial_base: u32,
    _pad: [u32; 3],
}

/// The shader's LOSS override constant, label smoothing and gamma.
fn loss_id(loss: &Loss, prob_target: bool) -> (u32, f32, f32) {
    match loss {
        Loss::CrossEntropy {
            label_smoothing, ..
        } => (if prob_target { 1 } else { 0 }, *label_smoothing, 0.0),
        Loss::Nll { .. } => (2, 0.0, 0.0),
        Loss::SoftmaxFocal { gamma, .. } => (3, 0.0, *gamma),
        _ => unreachable!("not a row loss"),
    }
}

/// A binding of `len` values of `role` from element `at`: it starts at the
/// aligned element at or before `at`, and the skip says how far in `at` is.
fn aligned(role: Role, at: usize, len: usize) -> (Slice, u32) {
    let skip = at % OFFSET_ALIGN;
    (Slice::range(role, at - skip, skip + len), skip as u32)
}

/// Batch entries that fit a slice starting at entry `n0`: the logits, the
/// targets, the rows (and their items) each within `limit` once the
/// alignment skip is added.
fn entries_from(n0: usize, plan: &RowsPlan, batch: usize, limit: usize) -> usize {
    let logits = plan.classes * plan.inner;
    let targets = if plan.prob_target { logits } else { plan.inner };
    [logits, targets, plan.inner]
        .into_iter()
        .filter(|&per_entry| per_entry > 0)
        .map(|per_entry| limit.saturating_sub((n0 * per_entry) % OFFSET_ALIGN) / per_entry)
        .fold(batch - n0, usize::min)
}

/// Cuts the batch into slices of whole batch entries, one dispatch each (the
/// class weight is bound whole), with the partials of all slices in one
/// scratch and one finalize pass; `none` writes each slice's items in place.
/// A batch entry must fit one binding together with the up to 63 values
/// between its first logit and the 256-byte boundary before it.
pub(super) fn schedule(
    loss: &Loss,
    reduction: Reduction,
    plan: &RowsPlan,
    limit: usize,
) -> Result<Schedule> {
    let (id, eps, gamma) = loss_id(loss, plan.prob_target);
    // Indices within a slice stay far from u32 overflow.
    let limit = limit.min(u32::MAX as usize / 2);
    let min = if plan.inner == 1 {
        WIDE_MIN_CLASSES
    } else {
        WIDE_MIN_CLASSES_STRIDED
    };
    let wide = plan.classes >= min && !matches!(loss, Loss::Nll { .. });
    let entry = if wide { "wide" } else { "main" };
    let items = reduction == Reduction::None;
    let batch = plan.rows.checked_div(plan.inner).unwrap_or(0);
    let logits = plan.classes * plan.inner;
    let mut dispatches = Vec::new();
    let mut partials = 0;
    let mut n0 = 0;
    while n0 < batch {
        let b = entries_from(n0, plan, batch, limit);
        if b == 0 {
            return Err(Error::TooLarge {
                loss: loss.name(),
                name: "input",
                len: logits,
                limit,
            });
        }
        let rows = b * plan.inner;
        let r0 = n0 * plan.inner;
        let (x, x_skip) = aligned(Role::Input, n0 * logits, b * logits);
        let (t, t_skip) = if plan.prob_target {
            aligned(Role::Target, n0 * logits, b * logits)
        } else {
            aligned(Role::Target, r0, rows)
        };
        let (out, o_skip) = if items {
            aligned(Role::Output, r0, rows)
        } else {
            (Slice::whole(Role::Scratch), 0)
        };
        let groups = if wide { rows } else { rows.div_ceil(WG) };
        let (groups_x, groups_y) = grid(groups);
        let params = RowsParams {
            rows: rows as u32,
            classes: plan.classes as u32,
            inner: plan.inner as u32,
            has_weight: plan.weight as u32,
            write_items: items as u32,
            groups_x,
            eps,
            gamma,
            ignore: ignore_index(loss).map_or(i32::MIN, ignore_i32),
            x_skip,
            t_skip,
            o_skip,
            partial_base: partials as u32,
            _pad: [0; 3],
        };
        dispatches.push(Dispatch {
            kernel: &ROWS,
            entry,
            constants: vec![("LOSS", id as f64)],
            params: bytemuck::bytes_of(&params).to_vec(),
            bindings: vec![x, t, Slice::whole(Role::Weight), out],
            groups: (groups_x, groups_y),
        });
        partials += if wide {
            rows
        } else {
            groups_x as usize * groups_y as usize
        };
        n0 += b;
    }
    if items {
        return Ok(Schedule {
            dispatches,
            scratch: 0,
            owned: vec![],
            output_len: plan.rows,
        });
    }
    dispatches.push(finalize(partials, reduction, 1));
    Ok(Schedule {
        dispatches,
        scratch: 2 * partials,
        owned: vec![],
        output_len: 1,
    })
}
