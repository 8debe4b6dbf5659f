//! Host side of `shaders/dice.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::evaluator::{aligned, units_per_slice, Dispatch, Role, Schedule, Slice, OFFSET_ALIGN};
use super::{grid, ignore_i32, WG};
use crate::context::DICE;
use crate::error::{Error, Result};
use crate::inputs::DicePlan;
use crate::loss::{DiceMode, Loss, Reduction};

/// Pixels per thread: must match ITEMS in shaders/dice.wgsl.
const ITEMS: usize = 8;

/// Must be kept in sync with `Params` in shaders/dice.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct DiceParams {
    pixels: u32,
    classes: u32,
    inner: u32,
    groups_x: u32,
    groups: u32,
    class_target: u32,
    activation: u32,
    has_ignore: u32,
    ignore: f32,
    ignore_class: i32,
    smoothing: f32,
    eps: f32,
    log_loss: u32,
    mean: u32,
    write_items: u32,
    skip: u32,
    target_skip: u32,
    partial_base: u32,
    _pad: [u32; 2],
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
pub(super) fn schedule(
    loss: &Loss,
    reduction: Reduction,
    plan: &DicePlan,
    limit: usize,
) -> Result<Schedule> {
    let Loss::Dice {
        mode,
        from_logits,
        smooth,
        eps,
        ignore_index,
        log_loss,
    } = loss
    else {
        unreachable!("not dice")
    };
    // Multiclass targets are class indices of shape (N, inner), the others
    // floats of the input's shape.
    let class_target = *mode == DiceMode::Multiclass;
    let activation = match (from_logits, mode) {
        (false, _) => 0,
        (true, DiceMode::Multiclass) => 2,
        (true, _) => 1,
    };
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
        _pad: [0; 2],
    };
    let mut dispatches = Vec::new();
    let mut groups = 0;
    let mut first = 0;
    while first < plan.batch && entry > 0 {
        let entries = step.min(plan.batch - first);
        let pixels = entries * inner;
        let (groups_x, groups_y) = grid(pixels.div_ceil(WG * ITEMS));
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
            ..params
        };
        dispatches.push(Dispatch {
            kernel: &DICE,
            entry: "main",
            constants: vec![],
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings: vec![
                aligned(Role::Input, first * entry, entries * entry),
                aligned(Role::Target, target_start, target_len),
                Slice::whole(Role::Scratch),
            ],
            groups: (groups_x, groups_y),
        });
        groups += groups_x as usize * groups_y as usize;
        first += entries;
    }
    params.groups = groups as u32;
    // `finish` reads the partials through binding 0; binding 1 is unused.
    dispatches.push(Dispatch {
        kernel: &DICE,
        entry: "finish",
        constants: vec![],
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![
            Slice::whole(Role::Scratch),
            Slice::whole(Role::Absent),
            Slice::whole(Role::Output),
        ],
        groups: (1, 1),
    });
    Ok(Schedule {
        dispatches,
        scratch: 4 * groups * classes,
        owned: vec![],
        output_len: if reduction == Reduction::None {
            classes
        } else {
            1
        },
    })
}
