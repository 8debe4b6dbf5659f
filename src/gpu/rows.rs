//! Host side of `shaders/rows.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::{grid, Job, WG};
use crate::context::{Context, ROWS};
use crate::error::Result;
use crate::inputs::{Inputs, RowsPlan, Target};
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

fn ignore_index(loss: &Loss) -> i64 {
    match loss {
        Loss::CrossEntropy { ignore_index, .. }
        | Loss::Nll { ignore_index }
        | Loss::SoftmaxFocal { ignore_index, .. } => *ignore_index,
        _ => unreachable!("not a row loss"),
    }
}

pub(super) fn record(
    ctx: &Context,
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    plan: &RowsPlan,
) -> Result<Job> {
    let (id, eps, gamma) = loss_id(loss, plan.prob_target);
    let x = ctx.upload("input", inputs.input.data);
    let y = match inputs.target {
        Some(Target::Float(t)) => ctx.upload("target", t.data),
        Some(Target::Class { data, .. }) => {
            // Validated to be in [0, C) or ignore_index; -1 marks ignored rows
            // in the shader, so ignore_index itself never has to fit an i32.
            let ignore = ignore_index(loss);
            let classes: Vec<i32> = data
                .iter()
                .map(|&c| if c == ignore { -1 } else { c as i32 })
                .collect();
            ctx.upload("target", &classes)
        }
        None => unreachable!("validated by plan"),
    };
    let w = ctx.upload("weight", inputs.weight.map_or(&[][..], |w| w.data));
    let min = if plan.inner == 1 {
        WIDE_MIN_CLASSES
    } else {
        WIDE_MIN_CLASSES_STRIDED
    };
    let wide = plan.classes >= min && !matches!(loss, Loss::Nll { .. });
    let (entry, groups) = if wide {
        ("wide", plan.rows)
    } else {
        ("main", plan.rows.div_ceil(WG))
    };
    let (groups_x, groups_y) = grid(groups);
    let partials = if wide {
        plan.rows
    } else {
        groups_x as usize * groups_y as usize
    };
    let items = reduction == Reduction::None;
    let out = ctx.storage("rows out", if items { plan.rows } else { 2 * partials });
    let params = RowsParams {
        rows: plan.rows as u32,
        classes: plan.classes as u32,
        inner: plan.inner as u32,
        has_weight: inputs.weight.is_some() as u32,
        write_items: items as u32,
        groups_x,
        eps,
        gamma,
    };
    let map = (plan.rows > 0)
        .then(|| {
            let constants = [("LOSS", id as f64)];
            ctx.pass(
                &ROWS,
                entry,
                &constants,
                &[&x, &y, &w, &out],
                &params,
                (groups_x, groups_y),
            )
        })
        .transpose()?;
    ctx.map_then_finalize(map, out, plan.rows, partials, reduction, 1)
}
