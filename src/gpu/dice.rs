//! Host side of `shaders/dice.wgsl`: dice in two variants of its first pass,
//! and the schedule of one shape for one of them.
//!
//! # Variants
//!
//! Both write the same per-(workgroup, class) partials, which the same
//! `finish` and `gradient` passes read; they differ in how the first pass
//! walks the input:
//!
//! | variant | an invocation | for |
//! |---|---|---|
//! | `dice-class-groups` | takes [`ITEMS`] pixels and walks their classes, `inner` values apart | every shape; softmax, which needs all classes of a pixel at once; many classes |
//! | `dice-coalesced` | takes values in memory order (grid-stride), adding each to its class's sums | sigmoid or probabilities over at most [`COALESCED_CLASSES`] classes: neighbouring invocations read neighbouring values even where `inner` is small |
//! | `dice-pixels` | takes a run of pixels (as many as the adapter's workgroup count leaves, up to [`MAX_PIXELS`]), loads each pixel's classes once and keeps every class's sums in registers; its backward likewise | at most [`PIXEL_CLASSES`] classes, compiled for the class count: one read of the logits where `dice-class-groups` reads a softmax's three times, one target read per pixel |

use crate::loss::Dice;
use bytemuck::{Pod, Zeroable};

use super::plan::{
    aligned, grid, ignore_i32, units_per_slice, Caps, Dispatch, Role, Schedule, Slice, Wrt,
    OFFSET_ALIGN, WG,
};
use crate::context::DICE;
use crate::error::{Error, Result};
use crate::inputs::DicePlan;
use crate::loss::{DiceMode, Reduction};

/// Pixels per thread: `ITEMS` in shaders/dice.wgsl (checked by the test
/// gpu::contract::shared_constants_match_the_shaders).
pub(super) const ITEMS: usize = 8;

/// Classes `dice-coalesced` keeps sums of per invocation at most:
/// `COALESCED_CLASSES` in shaders/dice.wgsl (checked by the test
/// gpu::contract::shared_constants_match_the_shaders).
pub(crate) const COALESCED_CLASSES: usize = 16;

/// Values per invocation of `dice-coalesced`: enough to amortise its C
/// reductions, few enough for llvmpipe's loop limit.
const COALESCED_ITEMS: usize = 32;

/// Classes `dice-pixels` compiles for at most: `PIXEL_CLASSES` in
/// shaders/dice.wgsl (checked by the test
/// gpu::contract::shared_constants_match_the_shaders).
pub(crate) const PIXEL_CLASSES: usize = 16;

/// Pixels per invocation of `dice-pixels`, at least (a GPU's share) and at
/// most: a CPU adapter wants few workgroups, each of which ends in one
/// reduction per class (on lavapipe 2^22 pixels of 4 classes took 40–45 ms
/// forward with up to 512 per invocation, 57–68 ms with up to 64).
/// The shader sums them in blocks of 64 (`PIXEL_BLOCK`), which bounds the
/// rounding of an invocation's sums.
const MIN_PIXELS: usize = 8;
const MAX_PIXELS: usize = 512;

/// How dice's first pass walks the input (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DiceVariant {
    ClassGroups,
    Coalesced,
    Pixels,
}

impl DiceVariant {
    pub(crate) const ALL: &'static [DiceVariant] = &[
        DiceVariant::ClassGroups,
        DiceVariant::Coalesced,
        DiceVariant::Pixels,
    ];

    /// user-facing, kebab-case, unique across families
    pub(crate) fn name(self) -> &'static str {
        match self {
            DiceVariant::ClassGroups => "dice-class-groups",
            DiceVariant::Coalesced => "dice-coalesced",
            DiceVariant::Pixels => "dice-pixels",
        }
    }

    /// The first pass's entry point.
    fn entry(self) -> &'static str {
        match self {
            DiceVariant::ClassGroups => "main",
            DiceVariant::Coalesced => "coalesced",
            DiceVariant::Pixels => "pixels",
        }
    }

    /// The backward pass's entry point.
    fn gradient_entry(self) -> &'static str {
        match self {
            DiceVariant::ClassGroups | DiceVariant::Coalesced => "gradient",
            DiceVariant::Pixels => "pixels_gradient",
        }
    }
}

/// The variants that can evaluate this shape, the best guess first.
/// `dice-pixels` compiles for at most [`PIXEL_CLASSES`] classes and is the
/// best guess there: on lavapipe it took a fifth of `dice-class-groups`'
/// time forward and of its fused call (BENCHMARKS.md), and on a GPU it reads
/// each logit once where the other reads a softmax's three times.
/// `dice-coalesced` needs no softmax (a softmax reads every class of a pixel
/// together) and at most [`COALESCED_CLASSES`] classes; where it should win
/// on a GPU (a pixel's classes closer than a warp's width apart, `inner` <
/// 32) is for the autotuner to measure.
pub(crate) fn variants(plan: &DicePlan, _caps: &Caps) -> Vec<DiceVariant> {
    let softmax = activation_id(plan.loss.from_logits, plan.loss.mode) == 2;
    let mut v = Vec::new();
    if plan.classes <= PIXEL_CLASSES {
        v.push(DiceVariant::Pixels);
    }
    v.push(DiceVariant::ClassGroups);
    if !softmax && plan.classes <= COALESCED_CLASSES {
        v.push(DiceVariant::Coalesced);
    }
    v
}

fn not_eligible(plan: &DicePlan, variant: DiceVariant) -> Error {
    Error::Param {
        loss: plan.loss.name(),
        name: "variant",
        expected: "a variant eligible for this shape",
        value: variant.name().to_string(),
    }
}

/// `Params` of shaders/dice.wgsl; the test
/// gpu::contract::params_match_the_shaders checks that they agree.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct DiceParams {
    pub(super) pixels: u32,
    pub(super) classes: u32,
    pub(super) inner: u32,
    pub(super) groups_x: u32,
    pub(super) groups: u32,
    pub(super) class_target: u32,
    pub(super) activation: u32,
    pub(super) has_ignore: u32,
    pub(super) ignore: f32,
    pub(super) ignore_class: i32,
    pub(super) smoothing: f32,
    pub(super) eps: f32,
    pub(super) log_loss: u32,
    pub(super) mean: u32,
    pub(super) write_items: u32,
    pub(super) skip: u32,
    pub(super) target_skip: u32,
    pub(super) partial_base: u32,
    pub(super) grad: u32,
    pub(super) coef_at: u32,
    pub(super) per_thread: u32,
    pub(super) _pad: [u32; 3],
}

/// The shader's `activation`: 0 none (probabilities), 1 `SIGMOID`, 2
/// `SOFTMAX` over the classes (multiclass); the test
/// gpu::contract::loss_ids_match_the_shaders checks the constants.
pub(super) fn activation_id(from_logits: bool, mode: DiceMode) -> u32 {
    match (from_logits, mode) {
        (false, _) => 0,
        (true, DiceMode::Multiclass) => 2,
        (true, _) => 1,
    }
}

/// Pass 1 runs once per slice of whole batch entries (the same entries of the
/// input and the target), writing per-(group, class) partials at its
/// `partial_base`; `finish` sums them per class and applies smp's rule.
/// Softmax needs every class of a pixel, so an entry (C × inner values) is
/// never cut: one longer than a binding is `Error::TooLarge`.
///
/// Output of `finish`: for `none` the C per-class losses; otherwise
/// `[value]`, and where the output view holds 3 + 3C values `[value, Σ loss,
/// C]` followed by each class's (Σp, Σt, Σ|p − t|) after masking, before
/// smp's rule (what merging partial evaluations needs).
///
/// With `grad`, `finish` also turns the sums and the upstream into two
/// coefficients per class, stored after the partials, and a `gradient` pass
/// per slice (one thread per pixel) writes d/d input at the slice's offsets:
/// 2S + 1 dispatches for S slices. Each gradient pass reads every input value
/// once (thrice for softmax: max, normaliser, write) and the targets once.
pub(super) fn schedule(
    reduction: Reduction,
    plan: &DicePlan,
    limit: usize,
    grad: bool,
    groups_wanted: usize,
    variant: DiceVariant,
) -> Result<Schedule> {
    if !variants(plan, &Caps::default()).contains(&variant) {
        return Err(not_eligible(plan, variant));
    }
    let loss = &plan.loss;
    let Dice {
        mode,
        from_logits,
        smooth,
        eps,
        ignore_index,
        log_loss,
    } = loss;
    // Multiclass targets are class indices of shape (N, inner), the others
    // floats of the input's shape.
    let class_target = *mode == DiceMode::Multiclass;
    let activation = activation_id(*from_logits, *mode);
    let (classes, inner) = (plan.classes, plan.inner);
    let entry = classes * inner;
    let step = units_per_slice(entry, plan.batch, limit).ok_or(Error::TooLarge {
        loss: loss.name(),
        name: "input",
        len: plan.batch * entry,
        limit,
    })?;
    let mut params = DiceParams {
        pixels: 0,
        classes: classes as u32,
        inner: inner as u32,
        groups_x: 1,
        groups: 0,
        class_target: class_target as u32,
        activation,
        has_ignore: ignore_index.is_some() as u32,
        ignore: ignore_index.map_or(0.0, |i| i as f32),
        ignore_class: ignore_index.map_or(0, ignore_i32),
        smoothing: *smooth,
        eps: *eps,
        log_loss: *log_loss as u32,
        mean: (reduction == Reduction::Mean) as u32,
        write_items: (reduction == Reduction::None) as u32,
        skip: 0,
        target_skip: 0,
        partial_base: 0,
        grad: grad as u32,
        coef_at: 0,
        per_thread: 0,
        _pad: [0; 3],
    };
    // `dice-pixels` is compiled for the class count.
    let constants = match variant {
        DiceVariant::Pixels => vec![
            ("CLASSES", classes as f64),
            ("ACTIVATION", activation as f64),
            ("CLASS_TARGET", class_target as u8 as f64),
        ],
        _ => vec![],
    };
    let absent = Slice::whole(Role::Absent);
    let mut dispatches = Vec::new();
    let mut gradients = Vec::new();
    let mut groups = 0;
    let mut first = 0;
    while first < plan.batch && entry > 0 {
        let entries = step.min(plan.batch - first);
        let pixels = entries * inner;
        let per_thread = pixels
            .div_ceil(WG * groups_wanted.max(1))
            .clamp(MIN_PIXELS, MAX_PIXELS);
        let (groups_x, groups_y) = match variant {
            DiceVariant::ClassGroups => grid(pixels.div_ceil(WG * ITEMS)),
            DiceVariant::Coalesced => grid((pixels * classes).div_ceil(WG * COALESCED_ITEMS)),
            DiceVariant::Pixels => grid(pixels.div_ceil(WG * per_thread)),
        };
        let (target_start, target_len) = if class_target {
            (first * inner, pixels)
        } else {
            (first * entry, entries * entry)
        };
        let p = DiceParams {
            pixels: pixels as u32,
            groups_x,
            skip: (first * entry % OFFSET_ALIGN) as u32,
            target_skip: (target_start % OFFSET_ALIGN) as u32,
            partial_base: groups as u32,
            per_thread: per_thread as u32,
            ..params
        };
        let x = aligned(Role::Input, first * entry, entries * entry);
        let t = aligned(Role::Target, target_start, target_len);
        dispatches.push(Dispatch {
            kernel: &DICE,
            entry: variant.entry(),
            constants: constants.clone(),
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings: vec![x, t, absent, absent, Slice::whole(Role::Scratch)],
            groups: (groups_x, groups_y),
        });
        if grad {
            // Same slice, one pixel per thread (`per_thread` for
            // `dice-pixels`); `coef_at` is set below.
            let (gx, gy) = match variant {
                DiceVariant::Pixels => (groups_x, groups_y),
                _ => grid(pixels.div_ceil(WG)),
            };
            let dx = aligned(Role::Grad(Wrt::Input), first * entry, entries * entry);
            gradients.push((
                DiceParams { groups_x: gx, ..p },
                vec![x, t, Slice::whole(Role::Scratch), dx, absent],
                (gx, gy),
            ));
        }
        groups += groups_x as usize * groups_y as usize;
        first += entries;
    }
    let coef_at = 4 * groups * classes;
    params.groups = groups as u32;
    params.coef_at = coef_at as u32;
    let upstream = if grad {
        Slice::whole(Role::Upstream)
    } else {
        absent
    };
    dispatches.push(Dispatch {
        kernel: &DICE,
        entry: "finish",
        constants: vec![],
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![
            absent,
            absent,
            upstream,
            Slice::whole(Role::Output),
            Slice::whole(Role::Scratch),
        ],
        groups: (1, 1),
    });
    for (p, bindings, groups) in gradients {
        let p = DiceParams {
            coef_at: coef_at as u32,
            ..p
        };
        dispatches.push(Dispatch {
            kernel: &DICE,
            entry: variant.gradient_entry(),
            constants: constants.clone(),
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings,
            groups,
        });
    }
    Ok(Schedule {
        dispatches,
        scratch: coef_at + if grad { 2 * classes } else { 0 },
        owned: vec![],
        output_len: if reduction == Reduction::None {
            classes
        } else {
            1
        },
    })
}
