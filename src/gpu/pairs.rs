//! Host side of `shaders/pairs.wgsl`.

use crate::loss::Pairs;
use bytemuck::{Pod, Zeroable};

use super::plan::{
    aligned, finalize, grid, units_per_slice, Dispatch, Role, Schedule, Slice, Wrt, OFFSET_ALIGN,
    WG,
};
use crate::context::PAIRS;
use crate::error::{Error, Result};
use crate::inputs::PairsPlan;
use crate::loss::Reduction;

/// `Params` of shaders/pairs.wgsl; the test
/// gpu::contract::params_match_the_shaders checks that they agree.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct PairsParams {
    pub(super) rows: u32,
    pub(super) dim: u32,
    pub(super) write_items: u32,
    pub(super) groups_x: u32,
    pub(super) flag: u32,
    pub(super) norm: u32,
    pub(super) margin: f32,
    pub(super) p: f32,
    pub(super) eps: f32,
    pub(super) skip: u32,
    pub(super) row_skip: u32,
    pub(super) partial_base: u32,
    pub(super) divisor: f32,
    pub(super) cos_eps: f32,
    pub(super) _pad: [u32; 2],
}

/// The shader's LOSS override constant: its `const <NAME>` (the test
/// gpu::contract::loss_ids_match_the_shaders checks it).
pub(super) fn loss_id(loss: &Pairs) -> u32 {
    match loss {
        Pairs::CosineEmbedding { .. } => 0,
        Pairs::TripletMargin { .. } => 1,
    }
}

/// The norm selector of the shader: 0 general p, 1, 2, 3 = inf (its `NORM_*`
/// constants, checked by the test gpu::contract::loss_ids_match_the_shaders).
pub(super) fn norm_id(p: f32) -> u32 {
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
///
/// With `grad` the same passes write the gradients of both (cosine) or all
/// three (triplet) tensors, bound like them: rows are independent, so the
/// upstream and the reduction's scale (1 / rows for mean) are known up front.
pub(super) fn schedule(
    reduction: Reduction,
    plan: &PairsPlan,
    limit: usize,
    grad: bool,
) -> Result<Schedule> {
    let loss = &plan.loss;
    // The third binding holds cosine_embedding's labels (one per row) or
    // triplet_margin's negatives (rows like the others).
    let (second, third, labels, flag, norm, margin, p, eps) = match loss {
        Pairs::CosineEmbedding { margin } => {
            let labels = if plan.labels {
                Role::Labels
            } else {
                Role::Absent
            };
            let flag = plan.labels as u32;
            (Wrt::Target, None, labels, flag, 0, *margin, 0.0, 0.0)
        }
        Pairs::TripletMargin {
            margin,
            p,
            eps,
            swap,
        } => (
            Wrt::Positive,
            Some(Wrt::Negative),
            Role::Absent,
            *swap as u32,
            norm_id(*p),
            *margin,
            *p,
            *eps,
        ),
    };
    let role = |w: Wrt| match w {
        Wrt::Input => Role::Input,
        Wrt::Target => Role::Target,
        Wrt::Positive => Role::Positive,
        Wrt::Negative => Role::Negative,
    };
    let divisor = match reduction {
        Reduction::Mean => plan.rows as f32,
        _ => 1.0,
    };
    let mut constants = vec![("LOSS", loss_id(loss) as f64)];
    if grad {
        constants.push(("GRAD", 1.0));
    }
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
            divisor,
            cos_eps: crate::cpu::pairs::COSINE_EPSILON as f32,
            _pad: [0; 2],
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
        let third_binding = match third {
            Some(w) => data(role(w)),
            None => per_row(labels),
        };
        let gradient = |w: Option<Wrt>| match w {
            Some(w) if grad => data(Role::Grad(w)),
            _ => Slice::whole(Role::Absent),
        };
        let upstream = match (grad, items) {
            (false, _) => Slice::whole(Role::Absent),
            (true, true) => per_row(Role::Upstream),
            (true, false) => Slice::whole(Role::Upstream),
        };
        dispatches.push(Dispatch {
            kernel: &PAIRS,
            entry: "main",
            constants: constants.clone(),
            params: bytemuck::bytes_of(&params).to_vec(),
            bindings: vec![
                data(Role::Input),
                data(role(second)),
                third_binding,
                upstream,
                out,
                gradient(Some(Wrt::Input)),
                gradient(Some(second)),
                gradient(third),
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
