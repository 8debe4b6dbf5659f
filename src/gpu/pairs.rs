//! Host side of `shaders/pairs.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::evaluator::OFFSET_ALIGN;
use super::evaluator::{aligned, finalize, units_per_slice, Dispatch, Role, Schedule, Slice};
use super::{grid, WG};
use crate::context::PAIRS;
use crate::error::{Error, Result};
use crate::inputs::PairsPlan;
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
    skip: u32,
    row_skip: u32,
    partial_base: u32,
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

/// Slices of whole rows, one dispatch each (the same rows of every tensor),
/// then the finalize pass over all their partials; `none` writes each slice's
/// items at its first row. A row longer than a binding is `Error::TooLarge`.
pub(super) fn schedule(
    loss: &Loss,
    reduction: Reduction,
    plan: &PairsPlan,
    limit: usize,
) -> Result<Schedule> {
    let (id, second, third, labels, flag, norm, margin, p, eps) = match loss {
        Loss::CosineEmbedding { margin } => {
            let labels = if plan.labels {
                Role::Labels
            } else {
                Role::Absent
            };
            let flag = plan.labels as u32;
            let (second, third) = (Role::Target, Role::Absent);
            (0, second, third, labels, flag, 0, *margin, 0.0, 0.0)
        }
        Loss::TripletMargin {
            margin,
            p,
            eps,
            swap,
        } => {
            let (second, third) = (Role::Positive, Role::Negative);
            let flag = *swap as u32;
            (
                1,
                second,
                third,
                Role::Absent,
                flag,
                norm_id(*p),
                *margin,
                *p,
                *eps,
            )
        }
        _ => unreachable!("not a pair loss"),
    };
    let dim = plan.dim;
    let step = match units_per_slice(dim, plan.rows, limit) {
        Some(step) => step,
        None => {
            return Err(Error::TooLarge {
                loss: loss.name(),
                name: "input",
                len: plan.rows * dim,
                limit,
            })
        }
    };
    let items = reduction == Reduction::None;
    let mut dispatches = Vec::new();
    let mut partials = 0;
    let mut first = 0;
    while first < plan.rows {
        let rows = step.min(plan.rows - first);
        let (groups_x, groups_y) = grid(rows.div_ceil(WG));
        let params = PairsParams {
            rows: rows as u32,
            dim: dim as u32,
            write_items: items as u32,
            groups_x,
            flag,
            norm,
            margin,
            p,
            eps,
            skip: (first * dim % OFFSET_ALIGN) as u32,
            row_skip: (first % OFFSET_ALIGN) as u32,
            partial_base: partials as u32,
        };
        let data = |role: Role| match role {
            Role::Absent => Slice::whole(role),
            _ => aligned(role, first * dim, rows * dim),
        };
        let per_row = |role: Role| match role {
            Role::Absent => Slice::whole(role),
            _ => aligned(role, first, rows),
        };
        let out = if items {
            per_row(Role::Output)
        } else {
            Slice::whole(Role::Scratch)
        };
        dispatches.push(Dispatch {
            kernel: &PAIRS,
            entry: "main",
            constants: vec![("LOSS", id as f64)],
            params: bytemuck::bytes_of(&params).to_vec(),
            bindings: vec![
                data(Role::Input),
                data(second),
                data(third),
                per_row(labels),
                out,
            ],
            groups: (groups_x, groups_y),
        });
        partials += groups_x as usize * groups_y as usize;
        first += rows;
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
