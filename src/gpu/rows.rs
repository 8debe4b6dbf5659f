//! Host side of `shaders/rows.wgsl` (and `shaders/rows_subgroup.wgsl`): the
//! softmax-row losses in several variants, each a different way of laying
//! rows onto invocations, and the schedule of one shape for one of them.
//!
//! # Variants
//!
//! Every variant computes a row through the same online log-sum-exp (the
//! `State` of rows.wgsl, flags instead of infinities), so they agree to
//! rounding; they differ in who walks a row:
//!
//! | variant | a row is walked by | for |
//! |---|---|---|
//! | `row-thread` | one thread | short rows; strided (K-dim) rows, where neighbouring threads read neighbouring addresses |
//! | `nll-rows` | one thread, [`NLL_ROWS`] rows each | nll, which reads one logit per row |
//! | `row-subgroup` | one subgroup, several rows per workgroup | rows of hundreds to thousands of classes on a GPU with subgroups |
//! | `row-group-shared` | a slice of [`lanes`] invocations, merged in workgroup memory | the same without subgroups |
//! | `row-workgroup` | one workgroup | long rows, many of them |
//! | `row-split` | several workgroups, merged by a second pass | few rows of huge vocabularies (4 × 262 144) |
//!
//! Eligibility is about correctness first: llvmpipe ends any invocation after
//! 65 535 loop iterations in total, so a variant is offered only where each
//! invocation loops at most [`LOOP_BUDGET`] times ([`iterations`]; the
//! subgroup variant for every subgroup size wgpu allows, 4 to 128), and
//! `row-subgroup` only with [`Caps::subgroups`]. The best-guess order (see
//! [`variants`]) is for when nothing was timed.

use bytemuck::{Pod, Zeroable};

use super::plan::{
    aligned, finalize, grid, ignore_i32, total, Caps, Dispatch, Role, Schedule, Slice, Wrt,
    OFFSET_ALIGN, WG,
};
use crate::context::{Kernel, ROWS, ROWS_SUBGROUP};
use crate::error::{Error, Result};
use crate::inputs::RowsPlan;
use crate::loss::{Reduction, Rows};

/// How a softmax-row kernel lays rows onto invocations (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RowsVariant {
    Thread,
    NllRows,
    Subgroup,
    GroupShared,
    Workgroup,
    Split,
}

impl RowsVariant {
    pub(crate) const ALL: &'static [RowsVariant] = &[
        RowsVariant::Thread,
        RowsVariant::NllRows,
        RowsVariant::Subgroup,
        RowsVariant::GroupShared,
        RowsVariant::Workgroup,
        RowsVariant::Split,
    ];

    /// user-facing, kebab-case, unique across families (e.g. "row-subgroup")
    pub(crate) fn name(self) -> &'static str {
        match self {
            RowsVariant::Thread => "row-thread",
            RowsVariant::NllRows => "nll-rows",
            RowsVariant::Subgroup => "row-subgroup",
            RowsVariant::GroupShared => "row-group-shared",
            RowsVariant::Workgroup => "row-workgroup",
            RowsVariant::Split => "row-split",
        }
    }
}

/// Loop iterations an invocation may run: half of the 65 535 after which
/// llvmpipe silently ends it, leaving room for the reductions' short loops.
pub(crate) const LOOP_BUDGET: usize = 32_768;

/// Rows per thread of `nll-rows` (`NLL_ROWS` in rows.wgsl).
pub(crate) const NLL_ROWS: usize = 8;

/// Rows per workgroup of `row-subgroup`: 32 subgroups of lavapipe's 8 lanes
/// take one row each, NVIDIA's 8 warps four each, AMD's 4 waves of 64 eight.
pub(crate) const SUBGROUP_ROWS: usize = 32;

/// The subgroup sizes wgpu may report (`wgpu::MINIMUM_SUBGROUP_MIN_SIZE` to
/// `MAXIMUM_SUBGROUP_MAX_SIZE`): `row-subgroup` must stay within the loop
/// budget at each.
const SUBGROUP_SIZES: [usize; 6] = [4, 8, 16, 32, 64, 128];

/// Invocations per row of `row-group-shared` at most: 32 neighbouring lanes
/// read 128 contiguous bytes.
const MAX_LANES: usize = 32;

/// Classes per workgroup of `row-split` at least (16 per invocation); a row
/// of more than `WG` of them takes longer chunks, so that the second pass
/// merges at most `WG` states per row.
const SPLIT_CHUNK: usize = 4096;

/// Classes of the CHUNK-sized partial states in rows.wgsl's `scan_part`.
const SCAN_CHUNK: usize = 64;

/// A split row's state in `states`: m, r, a, b, flags (`STATE_LEN`).
const STATE_LEN: usize = 5;

/// Invocations per row of `row-group-shared`: a power of two, about one per
/// 8 classes, 4 to [`MAX_LANES`].
pub(crate) fn lanes(classes: usize) -> usize {
    classes.div_ceil(8).next_power_of_two().clamp(4, MAX_LANES)
}

/// (classes per workgroup, workgroups per row) of `row-split`.
pub(crate) fn split_chunks(classes: usize) -> (usize, usize) {
    let chunk = SPLIT_CHUNK.max(classes.div_ceil(WG).next_multiple_of(WG));
    (chunk, classes.div_ceil(chunk).max(1))
}

/// The loop iterations one invocation of `variant` runs on rows of this
/// shape: a scan and the gradient's walk over the classes it reads (and the
/// scan's merges every `SCAN_CHUNK`), for each row it takes.
pub(crate) fn iterations(variant: RowsVariant, plan: &RowsPlan) -> usize {
    let c = plan.classes;
    let walks = |n: usize| 2 * n + n / SCAN_CHUNK + 1;
    match variant {
        RowsVariant::Thread => walks(c),
        // No scan: the gradient's walk of each of its rows.
        RowsVariant::NllRows => NLL_ROWS * (c + 1),
        RowsVariant::Subgroup => SUBGROUP_SIZES
            .iter()
            .map(|&size| SUBGROUP_ROWS.div_ceil(WG / size) * walks(c.div_ceil(size)))
            .max()
            .unwrap_or(0),
        RowsVariant::GroupShared => walks(c.div_ceil(lanes(c))),
        RowsVariant::Workgroup => walks(c.div_ceil(WG)),
        RowsVariant::Split => walks(split_chunks(c).0.div_ceil(WG)),
    }
}

/// Whether `variant` computes rows of this shape right on any adapter that
/// has what it needs (`caps` aside).
fn fits(variant: RowsVariant, plan: &RowsPlan) -> bool {
    let shape = match variant {
        RowsVariant::NllRows => matches!(plan.loss, Rows::Nll { .. }),
        // A workgroup on a row of fewer classes than a quarter of its
        // invocations mostly idles (and pays for its barriers on a CPU).
        RowsVariant::Workgroup => plan.classes >= WG / 4,
        // At least two chunks: a row of one is `row-workgroup` with a pass more.
        RowsVariant::Split => plan.classes >= 2 * SPLIT_CHUNK,
        _ => true,
    };
    shape && iterations(variant, plan) <= LOOP_BUDGET
}

/// Eligible variants for this shape and adapter, the best guess first.
///
/// The order, for an adapter nothing was timed on, is by what a GPU needs
/// (see BENCHMARKS.md for what each costs on lavapipe):
/// - nll: `nll-rows`, then a thread per row: one logit per row is read, and
///   only the gradient walks the row;
/// - few rows of many classes (fewer rows than [`SPLIT_FEW_ROWS`] of at
///   least [`SPLIT_MIN_CLASSES`]): `row-split`, the only variant that gives
///   such a batch more workgroups than rows, then a workgroup per row;
/// - strided rows (inner > 1): a thread per row while it may walk the row,
///   since neighbouring rows are neighbouring addresses there (the lanes of
///   a shared row would read `inner` values apart), then a workgroup per row;
/// - contiguous rows: a thread per row below [`SHARED_MIN_CLASSES`] classes,
///   a subgroup (or a slice of a workgroup) per row below
///   [`WORKGROUP_MIN_CLASSES`], a workgroup per row beyond; the other ways
///   of sharing a row follow.
///
/// Never empty: `row-group-shared` fits rows of up to half a million
/// classes, `row-workgroup` from 64 to 4 million, and `row-split` any
/// longer.
pub(crate) fn variants(plan: &RowsPlan, caps: &Caps) -> Vec<RowsVariant> {
    use RowsVariant::*;
    let c = plan.classes;
    let order: &[RowsVariant] = if matches!(plan.loss, Rows::Nll { .. }) {
        &[NllRows, Thread, Subgroup, GroupShared, Workgroup, Split]
    } else if plan.rows < SPLIT_FEW_ROWS && c >= SPLIT_MIN_CLASSES {
        &[Split, Workgroup, Subgroup, GroupShared, Thread]
    } else if plan.inner > 1 {
        &[Thread, Workgroup, Split, Subgroup, GroupShared]
    } else if c < SHARED_MIN_CLASSES {
        &[Thread, Subgroup, GroupShared, Workgroup, Split]
    } else if c < WORKGROUP_MIN_CLASSES {
        &[Subgroup, GroupShared, Thread, Workgroup, Split]
    } else {
        &[Workgroup, Split, Subgroup, GroupShared, Thread]
    };
    order
        .iter()
        .copied()
        .filter(|&v| fits(v, plan) && (v != Subgroup || caps.subgroups))
        .collect()
}

/// Rows below this many go to `row-split` when they are long (see [`variants`]).
const SPLIT_FEW_ROWS: usize = 64;
/// Rows at least this long go to `row-split` when there are few of them.
const SPLIT_MIN_CLASSES: usize = 65_536;
/// Contiguous rows at least this long are shared by several invocations.
const SHARED_MIN_CLASSES: usize = 64;
/// Contiguous rows at least this long get a workgroup each.
const WORKGROUP_MIN_CLASSES: usize = 2048;

fn not_eligible(plan: &RowsPlan, variant: RowsVariant) -> Error {
    Error::Param {
        loss: plan.loss.name(),
        name: "variant",
        expected: "a variant eligible for this shape and adapter",
        value: variant.name().to_string(),
    }
}

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
    pub(super) per_group: u32,
    pub(super) lanes: u32,
    pub(super) chunk: u32,
    pub(super) chunks: u32,
    pub(super) states_at: u32,
    pub(super) _pad: [u32; 3],
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

/// How a variant lays a slice's rows onto workgroups.
struct Layout {
    kernel: &'static Kernel,
    entry: &'static str,
    /// Rows per workgroup; 0 for the variants with workgroups per row.
    per_group: usize,
    lanes: usize,
    /// `row-split`'s classes per workgroup and workgroups per row.
    chunk: usize,
    chunks: usize,
}

impl Layout {
    fn of(variant: RowsVariant, plan: &RowsPlan) -> Layout {
        let layout = |kernel, entry, per_group| Layout {
            kernel,
            entry,
            per_group,
            lanes: 1,
            chunk: 0,
            chunks: 1,
        };
        match variant {
            RowsVariant::Thread => layout(&ROWS, "main", WG),
            RowsVariant::NllRows => layout(&ROWS, "nll_rows", NLL_ROWS * WG),
            RowsVariant::Subgroup => layout(&ROWS_SUBGROUP, "row_subgroup", SUBGROUP_ROWS),
            RowsVariant::GroupShared => {
                let lanes = lanes(plan.classes);
                Layout {
                    lanes,
                    ..layout(&ROWS, "group_shared", WG / lanes)
                }
            }
            RowsVariant::Workgroup => layout(&ROWS, "wide", 0),
            RowsVariant::Split => {
                let (chunk, chunks) = split_chunks(plan.classes);
                Layout {
                    chunk,
                    chunks,
                    ..layout(&ROWS, "split_finish", 0)
                }
            }
        }
    }

    /// Workgroups of the pass that writes the items or partials over `rows`.
    fn groups(&self, rows: usize, grad: bool) -> usize {
        match self.per_group {
            0 if grad => rows * self.chunks,
            0 => rows,
            n => rows.div_ceil(n),
        }
    }

    /// Partials that pass writes: one per workgroup of its grid, or one per
    /// row for the variants with workgroups per row.
    fn partials(&self, rows: usize, grad: bool) -> usize {
        if self.per_group == 0 {
            return rows;
        }
        let (x, y) = grid(self.groups(rows, grad));
        x as usize * y as usize
    }
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
///
/// `row-split` (cross_entropy and softmax_focal) runs a scan pass before each
/// slice's pass, writing each (row, chunk)'s state to the scratch after the
/// partials (from 0 for `none`), which the next slice's scan reuses.
pub(super) fn schedule(
    reduction: Reduction,
    plan: &RowsPlan,
    limit: usize,
    grad: bool,
    variant: RowsVariant,
) -> Result<Schedule> {
    if !fits(variant, plan) {
        return Err(not_eligible(plan, variant));
    }
    let loss = &plan.loss;
    let (id, eps, gamma) = loss_id(loss, plan.prob_target);
    // Indices within a slice stay far from u32 overflow.
    let limit = limit.min(u32::MAX as usize / 2);
    let layout = Layout::of(variant, plan);
    let scans = variant == RowsVariant::Split && !matches!(loss, Rows::Nll { .. });
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
    if eps > 0.0 {
        constants.push(("SMOOTHING", 1.0));
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
    let count = |f: &dyn Fn(usize) -> usize| -> usize {
        slices.iter().map(|&(_, b)| f(b * plan.inner)).sum()
    };
    let pre_groups = |rows: usize| grid(rows.div_ceil(WG));
    // Scratch: the (loss, denominator) partials, then the denominator
    // pre-pass's partials, one per workgroup, then their total at `d_at`,
    // then the split rows' states.
    let partials = count(&|rows| layout.partials(rows, grad));
    let d_at = 2 * partials
        + count(&|rows| {
            let (x, y) = pre_groups(rows);
            x as usize * y as usize
        });
    let mut scratch = if items {
        0
    } else if denominator {
        d_at + 1
    } else {
        2 * partials
    };
    let states_at = scratch;
    if scans {
        let most = slices
            .iter()
            .map(|&(_, b)| b * plan.inner)
            .max()
            .unwrap_or(0);
        scratch += most * layout.chunks * STATE_LEN;
    }
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
        let states = if scans {
            Slice::whole(Role::Scratch)
        } else {
            absent
        };
        let (groups_x, groups_y) = grid(layout.groups(rows, grad));
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
            per_group: layout.per_group as u32,
            lanes: layout.lanes as u32,
            chunk: layout.chunk as u32,
            chunks: layout.chunks as u32,
            states_at: states_at as u32,
            _pad: [0; 3],
        };
        let weight = Slice::whole(Role::Weight);
        if denominator {
            let (groups_x, groups_y) = pre_groups(rows);
            let params = RowsParams {
                groups_x,
                partial_base: pre_base as u32,
                ..params
            };
            let scratch = Slice::whole(Role::Scratch);
            pre.push(Dispatch {
                kernel: &ROWS,
                entry: "denominator",
                constants: vec![("LOSS", id as f64)],
                params: bytemuck::bytes_of(&params).to_vec(),
                bindings: vec![absent, t, weight, absent, scratch, absent, absent],
                groups: (groups_x, groups_y),
            });
            pre_base += groups_x as usize * groups_y as usize;
        }
        if scans {
            let (groups_x, groups_y) = grid(rows * layout.chunks);
            let params = RowsParams { groups_x, ..params };
            dispatches.push(Dispatch {
                kernel: &ROWS,
                entry: "split_scan",
                // With GRAD it also reads ignored rows, whose gradient needs
                // to know whether their log-softmax is NaN.
                constants: constants.clone(),
                params: bytemuck::bytes_of(&params).to_vec(),
                bindings: vec![x, t, weight, absent, absent, absent, states],
                groups: (groups_x, groups_y),
            });
        }
        dispatches.push(Dispatch {
            kernel: layout.kernel,
            entry: layout.entry,
            constants: constants.clone(),
            params: bytemuck::bytes_of(&params).to_vec(),
            bindings: vec![x, t, weight, upstream, out, dx, states],
            groups: (groups_x, groups_y),
        });
        partial_base += layout.partials(rows, grad);
    }
    if items {
        return Ok(Schedule {
            dispatches,
            scratch: scratch.next_multiple_of(2),
            owned: vec![],
            output_len: plan.rows,
        });
    }
    if !pre.is_empty() {
        pre.push(total(2 * partials, d_at - 2 * partials, d_at, 1.0));
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
