//! Host side of `shaders/dice.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::{grid, Job, WG};
use crate::context::{Context, DICE};
use crate::error::Result;
use crate::inputs::{DicePlan, Inputs, Target};
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
    smoothing: f32,
    eps: f32,
    log_loss: u32,
    mean: u32,
    _pad: [u32; 3],
}

pub(super) fn record(
    ctx: &Context,
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    plan: &DicePlan,
) -> Result<Job> {
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
    let x = ctx.upload("input", inputs.input.data);
    let (y, class_target, has_ignore, ignore) = match inputs.target {
        // Validated classes lie in [0, C); ignored pixels become -1, whatever
        // the (i64) ignore_index.
        Some(Target::Class { data, .. }) => {
            let classes: Vec<i32> = data
                .iter()
                .map(|&v| {
                    if Some(v) == *ignore_index {
                        -1
                    } else {
                        v as i32
                    }
                })
                .collect();
            (ctx.upload("target", &classes), 1, 0, 0.0)
        }
        Some(Target::Float(t)) => (
            ctx.upload("target", t.data),
            0,
            ignore_index.is_some() as u32,
            ignore_index.map_or(0.0, |i| i as f32),
        ),
        None => unreachable!("validated by plan"),
    };
    let activation = match (from_logits, mode) {
        (false, _) => 0,
        (true, DiceMode::Multiclass) => 2,
        (true, _) => 1,
    };
    let pixels = plan.batch * plan.inner;
    let classes = plan.classes;
    let (groups_x, groups_y) = grid(pixels.div_ceil(WG * ITEMS));
    let groups = if pixels > 0 && classes > 0 {
        groups_x as usize * groups_y as usize
    } else {
        0
    };
    let partials = ctx.storage("dice partials", 4 * groups * classes);
    let result = ctx.storage("dice result", 4 + classes);
    let params = DiceParams {
        pixels: pixels as u32,
        classes: classes as u32,
        inner: plan.inner as u32,
        groups_x,
        groups: groups as u32,
        class_target,
        activation,
        has_ignore,
        ignore,
        smoothing: *smooth,
        eps: *eps,
        log_loss: *log_loss as u32,
        mean: (reduction == Reduction::Mean) as u32,
        _pad: [0; 3],
    };
    let mut passes = Vec::new();
    if groups > 0 {
        passes.push(ctx.pass(
            &DICE,
            "main",
            &[],
            &[&x, &y, &partials],
            &params,
            (groups_x, groups_y),
        )?);
    }
    // `finish` reads the partials through binding 0; binding 1 is unused.
    passes.push(ctx.pass(
        &DICE,
        "finish",
        &[],
        &[&partials, &y, &result],
        &params,
        (1, 1),
    )?);
    Ok(Job {
        passes,
        output: result,
        output_len: 4 + classes,
    })
}
