//! Host side of `shaders/rows.wgsl`.

use crate::loss::Rows;
use bytemuck::{Pod, Zeroable};

use super::plan::{
    aligned, finalize, grid, ignore_i32, total, Dispatch, Role, Schedule, Slice, Wrt, OFFSET_ALIGN,
    WG,
};
use crate::context::ROWS;
use crate::error::{Error, Result};
use crate::inputs::RowsPlan;
use crate::loss::Reduction;

/// Rows of at least this many contiguous classes (inner == 1) get a workgroup
/// each (`wide`); shorter rows get a thread each (`main`).
const WIDE_MIN_CLASSES: usize = 2048;

/// The same for strided rows (inner > 1), where one thread per row reads
/// coalesced across neighbouring rows and stays the better choice for longer.
/// Must stay well below 65 535: llvmpipe ends any invocation after that many
/// loop iterations in total.
const WIDE_MIN_CLASSES_STRIDED: usize = 16_384;

/// `Params` of shaders/rows.wgsl; the test
/// gpu::contract::params_match_the_shaders checks that they agree.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct RowsParams {
    pub(super) rows: u32,
    pub(super) classes: u32,
    pub(super) inner: u32,
    pub(super) has_weight: u32,
    pub(super) write_items: u32,
    pub(super) groups_x: u32,
    pub(super) eps: f32,
    pub(super) gamma: f32,
    pub(super) ignore: i32,
    pub(super) x_skip: u32,
    pub(super) t_skip: u32,
    pub(super) o_skip: u32,
    pub(super) partial_base: u32,
    pub(super) scale_mode: u32,
    pub(super) d_at: u32,
    pub(super) divisor: f32,
}

/// The shader's LOSS override constant, label smoothing and gamma. The id is
/// the shader's `const <NAME>`, `<NAME>_PROB` for probability targets (the
/// test gpu::contract::loss_ids_match_the_shaders checks it).
pub(super) fn loss_id(loss: &Rows, prob_target: bool) -> (u32, f32, f32) {
    match loss {
        Rows::CrossEntropy {
            label_smoothing, ..
        } => (if prob_target { 1 } else { 0 }, *label_smoothing, 0.0),
        Rows::Nll { .. } => (2, 0.0, 0.0),
        Rows::SoftmaxFocal { gamma, .. } => (3, 0.0, *gamma),
    }
}

/// `aligned`'s binding and how far into it element `at` is.
fn with_skip(role: Role, at: usize, len: usize) -> (Slice, u32) {
    (aligned(role, at, len), (at % OFFSET_ALIGN) as u32)
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
///
/// With `grad` the same passes write the gradient of the logits (bound like
/// them); a class-index `mean` first sums its denominator, Σ w[y] over the
/// rows not ignored, in a pre-pass over the targets.
pub(super) fn schedule(
    reduction: Reduction,
    plan: &RowsPlan,
    limit: usize,
    grad: bool,
) -> Result<Schedule> {
    let loss = &plan.loss;
    let (id, eps, gamma) = loss_id(loss, plan.prob_target);
    // Indices within a slice stay far from u32 overflow.
    let limit = limit.min(u32::MAX as usize / 2);
    let min = if plan.inner == 1 {
        WIDE_MIN_CLASSES
    } else {
        WIDE_MIN_CLASSES_STRIDED
    };
    let wide = plan.classes >= min && !matches!(loss, Rows::Nll { .. });
    let entry = if wide { "wide" } else { "main" };
    let items = reduction == Reduction::None;
    let batch = plan.rows.checked_div(plan.inner).unwrap_or(0);
    let logits = plan.classes * plan.inner;
    let denominator = grad && reduction == Reduction::Mean && !plan.prob_target;
    let (scale_mode, divisor) = match reduction {
        _ if !grad => (0, 0.0),
        Reduction::Mean if denominator => (2, 0.0),
        Reduction::Mean => (1, plan.rows as f32),
        _ => (0, 0.0),
    };
    let mut constants = vec![("LOSS", id as f64)];
    if grad {
        constants.push(("GRAD", 1.0));
    }
    let mut slices = Vec::new();
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
        slices.push((n0, b));
        n0 += b;
    }
    let groups = |rows: usize| grid(if wide { rows } else { rows.div_ceil(WG) });
    // `wide` writes a partial per row, `main` one per workgroup.
    let partials_of = |rows: usize| {
        let (x, y) = groups(rows);
        if wide {
            rows
        } else {
            x as usize * y as usize
        }
    };
    let count = |f: &dyn Fn(usize) -> usize| -> usize {
        slices.iter().map(|&(_, b)| f(b * plan.inner)).sum()
    };
    let pre_groups = |rows: usize| grid(rows.div_ceil(WG));
    // Scratch: the (loss, denominator) partials, then the denominator
    // pre-pass's partials, one per workgroup, then their total at `d_at`.
    let partials = count(&partials_of);
    let d_at = 2 * partials
        + count(&|rows| {
            let (x, y) = pre_groups(rows);
            x as usize * y as usize
        });
    let mut pre = Vec::new();
    let mut dispatches = Vec::new();
    let mut partial_base = 0;
    let mut pre_base = 2 * partials;
    for &(n0, b) in &slices {
        let rows = b * plan.inner;
        let r0 = n0 * plan.inner;
        let (x, x_skip) = with_skip(Role::Input, n0 * logits, b * logits);
        let (t, t_skip) = if plan.prob_target {
            with_skip(Role::Target, n0 * logits, b * logits)
        } else {
            with_skip(Role::Target, r0, rows)
        };
        let (out, o_skip) = if items {
            with_skip(Role::Output, r0, rows)
        } else {
            (Slice::whole(Role::Scratch), 0)
        };
        let absent = Slice::whole(Role::Absent);
        let dx = with_skip(Role::Grad(Wrt::Input), n0 * logits, b * logits).0;
        let (upstream, dx) = match (grad, items) {
            (false, _) => (absent, absent),
            (true, true) => (with_skip(Role::Upstream, r0, rows).0, dx),
            (true, false) => (Slice::whole(Role::Upstream), dx),
        };
        let (groups_x, groups_y) = groups(rows);
        let params = RowsParams {
            rows: rows as u32,
            classes: plan.classes as u32,
            inner: plan.inner as u32,
            has_weight: plan.weight as u32,
            write_items: items as u32,
            groups_x,
            eps,
            gamma,
            ignore: ignore_i32(loss.ignore_index()),
            x_skip,
            t_skip,
            o_skip,
            partial_base: partial_base as u32,
            scale_mode,
            d_at: d_at as u32,
            divisor,
        };
        if denominator {
            let (groups_x, groups_y) = pre_groups(rows);
            let params = RowsParams {
                groups_x,
                partial_base: pre_base as u32,
                ..params
            };
            let weight = Slice::whole(Role::Weight);
            let scratch = Slice::whole(Role::Scratch);
            pre.push(Dispatch {
                kernel: &ROWS,
                entry: "denominator",
                constants: vec![("LOSS", id as f64)],
                params: bytemuck::bytes_of(&params).to_vec(),
                bindings: vec![absent, t, weight, absent, scratch, absent],
                groups: (groups_x, groups_y),
            });
            pre_base += groups_x as usize * groups_y as usize;
        }
        dispatches.push(Dispatch {
            kernel: &ROWS,
            entry,
            constants: constants.clone(),
            params: bytemuck::bytes_of(&params).to_vec(),
            bindings: vec![x, t, Slice::whole(Role::Weight), upstream, out, dx],
            groups: (groups_x, groups_y),
        });
        partial_base += partials_of(rows);
    }
    if items {
        return Ok(Schedule {
            dispatches,
            scratch: 0,
            owned: vec![],
            output_len: plan.rows,
        });
    }
    let mut scratch = 2 * partials;
    if !pre.is_empty() {
        pre.push(total(2 * partials, d_at - 2 * partials, d_at, 1.0));
        scratch = d_at + 1;
    }
    pre.extend(dispatches);
    let mut dispatches = pre;
    dispatches.push(finalize(partials, reduction, 1));
    Ok(Schedule {
        dispatches,
        scratch: scratch.next_multiple_of(2),
        owned: vec![],
        output_len: 1,
    })
}
