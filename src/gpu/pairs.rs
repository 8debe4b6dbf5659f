//! Host side of `shaders/pairs.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::{grid, Job, WG};
use crate::context::{Context, PAIRS};
use crate::error::Result;
use crate::inputs::{Inputs, PairsPlan, Target};
use crate::loss::{Loss, Reduction};

/// Must be kept in sync with `Params` in shaders/pairs.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PairsParams {
    rows: u32,
    dim: u32,
    write_items: u32,
    groups_x: u32,
    flag: u32,
    norm: u32,
    margin: f32,
    p: f32,
    eps: f32,
    _pad: [u32; 3],
}

/// The norm selector of the shader: 0 general p, 1, 2, 3 = inf.
fn norm_id(p: f32) -> u32 {
    if p == 1.0 {
        1
    } else if p == 2.0 {
        2
    } else if p.is_infinite() {
        3
    } else {
        0
    }
}

pub(super) fn record(
    ctx: &Context,
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    plan: &PairsPlan,
) -> Result<Job> {
    let (id, second, third, labels, flag, norm, margin, p, eps) = match loss {
        Loss::CosineEmbedding { margin } => {
            let Some(Target::Float(x2)) = inputs.target else {
                unreachable!("validated by plan")
            };
            let labels = inputs.labels.map_or(&[][..], |l| l.data);
            (
                0,
                x2.data,
                &[][..],
                labels,
                inputs.labels.is_some() as u32,
                0,
                *margin,
                0.0,
                0.0,
            )
        }
        Loss::TripletMargin {
            margin,
            p,
            eps,
            swap,
        } => {
            let pos = inputs.positive.expect("validated by plan").data;
            let neg = inputs.negative.expect("validated by plan").data;
            (
                1,
                pos,
                neg,
                &[][..],
                *swap as u32,
                norm_id(*p),
                *margin,
                *p,
                *eps,
            )
        }
        _ => unreachable!("not a pair loss"),
    };
    let x = ctx.upload("input", inputs.input.data);
    let b = ctx.upload("second", second);
    let c = ctx.upload("third", third);
    let l = ctx.upload("labels", labels);
    let (groups_x, groups_y) = grid(plan.rows.div_ceil(WG));
    let partials = groups_x as usize * groups_y as usize;
    let items = reduction == Reduction::None;
    let out = ctx.storage("pairs out", if items { plan.rows } else { 2 * partials });
    let params = PairsParams {
        rows: plan.rows as u32,
        dim: plan.dim as u32,
        write_items: items as u32,
        groups_x,
        flag,
        norm,
        margin,
        p,
        eps,
        _pad: [0; 3],
    };
    let map = (plan.rows > 0)
        .then(|| {
            let constants = [("LOSS", id as f64)];
            ctx.pass(
                &PAIRS,
                "main",
                &constants,
                &[&x, &b, &c, &l, &out],
                &params,
                (groups_x, groups_y),
            )
        })
        .transpose()?;
    ctx.map_then_finalize(map, out, plan.rows, partials, reduction, 1)
}
