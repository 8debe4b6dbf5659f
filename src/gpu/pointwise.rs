//! Host side of `shaders/pointwise.wgsl` (with `pointwise_scalar.wgsl` and
//! `pointwise_vec4.wgsl`): the elementwise losses in two variants, and the
//! schedule of one shape for one of them.
//!
//! # Variants
//!
//! Both map each element through the same per-element math (pointwise.wgsl)
//! and reduce the same way, so they agree to the rounding of their sums;
//! they differ in how an invocation loads:
//!
//! | variant | an invocation loads | for |
//! |---|---|---|
//! | `point-scalar` | one f32 of each tensor, a team of 32 neighbouring invocations walking a run of its own | every shape: broadcast weights, `pos_weight` or variance, quantile lists |
//! | `point-vec4` | four elements of each element-aligned tensor (a `vec4<f32>`, or 8 bytes of f16/bf16), a team of 8 neighbouring invocations walking a run of its own | tensors without broadcasts, all f32 or all half: on lavapipe a vector load instead of a gather, on a GPU a quarter of the load instructions |
//!
//! `point-vec4` is eligible where every tensor it reads is as long as the
//! input (see [`variants`]); the last `n % 4` elements of a slice go to a
//! `point-scalar` dispatch of their own.

use crate::loss::Pointwise;
use bytemuck::Zeroable;

use super::plan::{
    chunk_len, finalize, grid, scratch_pass, total, Caps, Dispatch, PointParams, Role, Schedule,
    Slice, Wrt, OFFSET_ALIGN, WG,
};
use crate::context::{POINTWISE, POINTWISE_VEC4, POINTWISE_VEC4_HALF};
use crate::error::{Error, Result};
use crate::inputs::{Broadcast, PointPlan, Widths};
use crate::loss::Reduction;

/// How an elementwise kernel loads its elements (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PointVariant {
    Scalar,
    Vec4,
}

impl PointVariant {
    pub(crate) const ALL: &'static [PointVariant] = &[PointVariant::Scalar, PointVariant::Vec4];

    /// user-facing, kebab-case, unique across families
    pub(crate) fn name(self) -> &'static str {
        match self {
            PointVariant::Scalar => "point-scalar",
            PointVariant::Vec4 => "point-vec4",
        }
    }
}

/// Whether a broadcast tensor can be read as vectors: absent, or one value
/// per element of the input.
fn element_aligned(b: Option<&Broadcast<'_>>, n: usize) -> bool {
    b.is_none_or(|b| b.inner == 1 && b.len == n)
}

/// The variants that can evaluate this shape, the best guess first.
/// `point-vec4` reads every tensor as vectors, so it needs each target to
/// serve one element, the weight and aux tensor to be absent or as long as
/// the input, and one width for all (f32, or f16/bf16); where it fits it goes first: it loads the same bytes in a
/// quarter of the instructions on any adapter. `point-scalar` fits every
/// shape, so the list is never empty.
pub(crate) fn variants(plan: &PointPlan, _caps: &Caps) -> Vec<PointVariant> {
    let vec4 = plan.per_target == 1
        && plan.widths != Widths::Mixed
        && element_aligned(plan.weight.as_ref(), plan.n)
        && element_aligned(plan.aux.as_ref(), plan.n);
    if vec4 {
        vec![PointVariant::Vec4, PointVariant::Scalar]
    } else {
        vec![PointVariant::Scalar]
    }
}

/// Elements per thread of the weight pre-pass: `ITEMS` in
/// shaders/pointwise.wgsl (checked by the test
/// gpu::contract::shared_constants_match_the_shaders).
pub(super) const ITEMS: usize = 8;
/// Elements per thread of the map pass, at least: enough to keep the threads
/// busy between workgroup reductions.
const MIN_ITEMS: usize = 8;
/// And at most: each thread sums its items in runs of 32 (`RUN` in
/// shaders/pointwise.wgsl) and the runs in a running total, so this bounds
/// its rounding error (32 + 16 roundings) before the workgroup sum. Only a CPU
/// adapter, which wants few workgroups (`Context::groups_wanted`), or a GPU
/// beyond 2^28 elements reaches it.
const MAX_ITEMS: usize = 512;

/// Elements per thread for `n` elements: more than the minimum only where
/// that still leaves the adapter the workgroups it wants in flight, so that
/// large batches pay for fewer workgroup reductions and partials.
fn per_thread(n: usize, groups_wanted: usize) -> usize {
    n.div_ceil(WG * groups_wanted.max(1))
        .clamp(MIN_ITEMS, MAX_ITEMS)
}

/// The shader's LOSS override constant and scalar parameters for each loss.
/// The id is the shader's `const <NAME>` (the test
/// gpu::contract::loss_ids_match_the_shaders checks it).
pub(super) fn loss_id(loss: &Pointwise) -> (u32, [f32; 4]) {
    match loss {
        Pointwise::Mse => (0, [0.0; 4]),
        Pointwise::L1 => (1, [0.0; 4]),
        Pointwise::Huber { delta } => (2, [*delta, 0.0, 0.0, 0.0]),
        Pointwise::SmoothL1 { beta } => (3, [*beta, 0.0, 0.0, 0.0]),
        Pointwise::LogCosh => (4, [0.0; 4]),
        Pointwise::Quantile { .. } => (5, [0.5, 0.0, 0.0, 0.0]),
        Pointwise::Bce => (6, [0.0; 4]),
        Pointwise::BceWithLogits => (7, [0.0; 4]),
        Pointwise::SigmoidFocal { alpha, gamma } => (8, [*alpha, *gamma, 0.0, 0.0]),
        Pointwise::KlDiv { log_target } => (9, [*log_target as u8 as f32, 0.0, 0.0, 0.0]),
        Pointwise::PoissonNll {
            log_input,
            full,
            eps,
        } => (10, [*log_input as u8 as f32, *full as u8 as f32, *eps, 0.0]),
        Pointwise::GaussianNll { full, eps } => (11, [*full as u8 as f32, *eps, 0.0, 0.0]),
    }
}

/// The shader's FLAG0 and FLAG1 pipeline constants: the switches among a
/// loss's parameters (the rest stay values in Params).
pub(super) fn flags(loss: &Pointwise) -> (bool, bool) {
    match loss {
        Pointwise::KlDiv { log_target } => (*log_target, false),
        Pointwise::PoissonNll {
            log_input, full, ..
        } => (*log_input, *full),
        Pointwise::GaussianNll { full, .. } => (*full, false),
        _ => (false, false),
    }
}

/// How a broadcast tensor is bound: whole (indexed by the global element) or,
/// when it is as long as the input and longer than a binding, sliced with it.
fn bind_broadcast(
    loss: &Pointwise,
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
    reduction: Reduction,
    plan: &PointPlan<'_>,
    limit: usize,
    grad: bool,
    groups_wanted: usize,
    variant: PointVariant,
) -> Result<Schedule> {
    let loss = &plan.loss;
    let vec4 = variant == PointVariant::Vec4;
    if vec4 && !variants(plan, &Caps::default()).contains(&variant) {
        return Err(Error::Param {
            loss: loss.name(),
            name: "variant",
            expected: "a variant eligible for this shape",
            value: variant.name().to_string(),
        });
    }
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
    // The aux binding: the quantile list (uploaded by the evaluator),
    // gaussian_nll's variance, or bce_with_logits's pos_weight.
    let (aux_name, aux_role) = match loss {
        Pointwise::Quantile { .. } => ("quantiles", Role::Owned(0)),
        Pointwise::GaussianNll { .. } => ("var", Role::Var),
        Pointwise::BceWithLogits => ("pos_weight", Role::PosWeight),
        // No aux tensor: plan.aux is None and the binding absent.
        Pointwise::Mse
        | Pointwise::L1
        | Pointwise::Huber { .. }
        | Pointwise::SmoothL1 { .. }
        | Pointwise::LogCosh
        | Pointwise::Bce
        | Pointwise::SigmoidFocal { .. }
        | Pointwise::KlDiv { .. }
        | Pointwise::PoissonNll { .. } => ("aux", Role::Absent),
    };
    let (a_role, a_sliced) =
        bind_broadcast(loss, aux_name, aux_role, plan.aux.as_ref(), plan.n, limit)?;
    let items = reduction == Reduction::None;
    // What `mean` divides the gradient by: Σw for weighted mse/l1, which a
    // pre-pass over the weight alone sums before the fused pass reads it.
    let weight_sum = grad
        && reduction == Reduction::Mean
        && matches!(loss, Pointwise::Mse | Pointwise::L1)
        && plan.weight.is_some();
    let (scale_mode, divisor) = match reduction {
        _ if !grad => (0, 0.0),
        Reduction::None | Reduction::Sum => (0, 0.0),
        Reduction::Mean if weight_sum => (2, 0.0),
        Reduction::Mean => (1, plan.n as f32),
        Reduction::BatchMean => (1, plan.batch as f32),
    };
    let common = PointParams {
        per_target: q as u32,
        w_inner: plan.weight.as_ref().map_or(1, |w| w.inner as u32),
        w_len: plan.weight.as_ref().map_or(0, |w| w.len as u32),
        a_inner: plan.aux.as_ref().map_or(1, |a| a.inner as u32),
        a_len: plan.aux.as_ref().map_or(0, |a| a.len as u32),
        w_sliced: w_sliced as u32,
        a_sliced: a_sliced as u32,
        p,
        scale_mode,
        divisor,
        ..PointParams::zeroed()
    };
    let slices: Vec<(usize, usize)> = (0..plan.n)
        .step_by(step.max(1))
        .map(|base| (base, step.min(plan.n - base)))
        .collect();
    let mut fused = Vec::new();
    let mut partials = 0;
    // Each dispatch: (entry, elements it binds, first element it maps).
    let mut parts: Vec<(&'static str, usize, usize, usize)> = Vec::new();
    for &(base, len) in &slices {
        let bulk = if vec4 { len - len % 4 } else { 0 };
        if bulk > 0 {
            parts.push(("main_vec4", base, bulk, 0));
        }
        if bulk < len {
            // The tail is bound from the slice's (aligned) start: a binding
            // cannot start at an arbitrary element.
            parts.push(("main", base, len, bulk));
        }
    }
    let mut entries = Vec::new();
    for &(entry, base, len, first) in &parts {
        // Vectors or elements per invocation: `point-vec4` keeps each running
        // sum to the same MAX_ITEMS elements as `point-scalar`.
        let (units, items_per_thread) = if entry == "main_vec4" {
            (len / 4, per_thread(len, groups_wanted) / 4)
        } else {
            (len - first, per_thread(len - first, groups_wanted))
        };
        let (groups_x, groups_y) = grid(units.div_ceil(WG * items_per_thread));
        let params = PointParams {
            n: len as u32,
            groups_x,
            per_thread: items_per_thread as u32,
            base: base as u32,
            partial_base: partials as u32,
            first: first as u32,
            ..common
        };
        let sliced = |role: Role, yes: bool| {
            if yes {
                Slice::range(role, base, len)
            } else {
                Slice::whole(role)
            }
        };
        let (out, upstream, grad_view) = match (items, grad) {
            (true, true) => (
                Slice::range(Role::Output, base, len),
                Slice::range(Role::Upstream, base, len),
                Slice::range(Role::Grad(Wrt::Input), base, len),
            ),
            (true, false) => (
                Slice::range(Role::Output, base, len),
                Slice::whole(Role::Absent),
                Slice::whole(Role::Absent),
            ),
            (false, true) => (
                Slice::whole(Role::Scratch),
                Slice::whole(Role::Upstream),
                Slice::range(Role::Grad(Wrt::Input), base, len),
            ),
            (false, false) => (
                Slice::whole(Role::Scratch),
                Slice::whole(Role::Absent),
                Slice::whole(Role::Absent),
            ),
        };
        let bindings = vec![
            Slice::range(Role::Input, base, len),
            Slice::range(Role::Target, base / q, len.div_ceil(q)),
            sliced(w_role, w_sliced),
            sliced(a_role, a_sliced),
            upstream,
            out,
            grad_view,
        ];
        fused.push((params, bindings, (groups_x, groups_y)));
        entries.push(entry);
        partials += groups_x as usize * groups_y as usize;
    }
    // Scratch: the fused pass's (loss, denominator) partials, then the
    // weight's partials, then Σw.
    let mut pre = Vec::new();
    let mut scratch = if items { 0 } else { 2 * partials };
    if weight_sum && plan.n > 0 {
        let w = plan.weight.as_ref().expect("weighted");
        let w_slices = if w_sliced {
            slices.clone()
        } else {
            vec![(0, w.len)]
        };
        let first = scratch;
        for (base, len) in w_slices {
            let (groups_x, groups_y) = grid(len.div_ceil(WG * ITEMS));
            let params = PointParams {
                n: len as u32,
                groups_x,
                partial_base: scratch as u32,
                ..common
            };
            let weight = if w_sliced {
                Slice::range(Role::Weight, base, len)
            } else {
                Slice::whole(Role::Weight)
            };
            pre.push(weight_pass(&params, weight, (groups_x, groups_y)));
            scratch += groups_x as usize * groups_y as usize;
        }
        // Each weight value stands for n / len elements.
        let repeat = (plan.n / w.len) as f32;
        pre.push(total(first, scratch - first, scratch, repeat));
        for (params, _, _) in &mut fused {
            params.d_at = scratch as u32;
        }
        scratch += 1;
    }
    let mut constants = vec![("LOSS", id as f64)];
    if grad {
        constants.push(("GRAD", 1.0));
    }
    // Whether a weight and an aux tensor are bound, as constants the
    // shader compiler folds (WEIGHT and AUX in pointwise.wgsl).
    if common.w_len != 0 {
        constants.push(("WEIGHT", 1.0));
    }
    if common.a_len != 0 {
        constants.push(("AUX", 1.0));
    }
    if items {
        constants.push(("WRITE_ITEMS", 1.0));
    }
    let (flag0, flag1) = flags(&plan.loss);
    if flag0 {
        constants.push(("FLAG0", 1.0));
    }
    if flag1 {
        constants.push(("FLAG1", 1.0));
    }
    let mut dispatches = pre;
    dispatches.extend(
        fused
            .into_iter()
            .zip(entries)
            .map(|((params, bindings, groups), entry)| Dispatch {
                kernel: match (entry, plan.widths) {
                    ("main_vec4", Widths::Half) => &POINTWISE_VEC4_HALF,
                    ("main_vec4", _) => &POINTWISE_VEC4,
                    _ => &POINTWISE,
                },
                entry,
                constants: constants.clone(),
                params: bytemuck::bytes_of(&params).to_vec(),
                bindings,
                groups,
            }),
    );
    // The quantile list is the one aux the evaluator uploads itself.
    let owned = match (aux_role, &plan.aux) {
        (Role::Owned(_), Some(a)) => vec![a.data.to_vec()],
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
        // An even count keeps the scratch a whole array of vec2 partials, a
        // multiple of 4 one of vec4s (`point-vec4` binds it so).
        scratch: scratch.next_multiple_of(if vec4 { 4 } else { 2 }),
        owned,
        output_len: 1,
    })
}

/// A pre-pass over the weight: it reads `weight` and writes the scratch.
fn weight_pass(params: &PointParams, weight: Slice, groups: (u32, u32)) -> Dispatch {
    scratch_pass("weight_sum", params, weight, groups)
}
