//! Host side of `shaders/pairs.wgsl` and its two drivers: lanes of a
//! workgroup per row (`pairs_lanes.wgsl`: pair-thread, pair-packed,
//! pair-workgroup) and a subgroup per row (`pairs_subgroup.wgsl`).

use crate::loss::Pairs;
use bytemuck::{Pod, Zeroable};

use super::plan::{
    aligned, finalize, grid, units_per_slice, Caps, Dispatch, Role, Schedule, Slice, Wrt,
    OFFSET_ALIGN, WG,
};
use crate::context::{PAIRS, PAIRS_SUBGROUP};
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
    pub(super) margin: f32,
    pub(super) p: f32,
    pub(super) eps: f32,
    pub(super) skip: u32,
    pub(super) row_skip: u32,
    pub(super) partial_base: u32,
    pub(super) divisor: f32,
    pub(super) cos_eps: f32,
    pub(super) lanes: u32,
    pub(super) _pad: [u32; 2],
}

/// How the pair kernels spread a row over invocations.
///
/// Eligibility (`variants`) keeps each variant to the rows it is for, and to
/// what it runs right: llvmpipe ends an invocation after 65 535 loop
/// iterations in total, and a fused triplet call with a general p walks its
/// row three times, four where the row holds values beyond 2^126 or not
/// finite (each walk a 16th more for its blocks), so `Thread` and `Subgroup`
/// take rows only while those walks stay well below that (about a quarter).
/// `Workgroup` takes every row of at least `WORKGROUP_MIN_DIM` values (its
/// threads walk a 256th of the row each: right on llvmpipe for rows of up to
/// about 3.8 million values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PairsVariant {
    /// A thread walks a whole row: no reduction, but neighbouring threads
    /// read values a row apart (uncoalesced on a GPU, a gather on llvmpipe).
    Thread,
    /// `packed_lanes(dim)` neighbouring threads per row, 4 to 128 rows per
    /// workgroup, summed in shared memory: coalesced short rows.
    Packed,
    /// A workgroup per row, its threads striding over it, summed in shared
    /// memory: long rows, few of them.
    Workgroup,
    /// A subgroup per row, summed with subgroup operations (no barrier):
    /// needs `Features::SUBGROUP`.
    Subgroup,
}

impl PairsVariant {
    pub(crate) const ALL: &'static [PairsVariant] = &[
        PairsVariant::Thread,
        PairsVariant::Packed,
        PairsVariant::Workgroup,
        PairsVariant::Subgroup,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            PairsVariant::Thread => "pair-thread",
            PairsVariant::Packed => "pair-packed",
            PairsVariant::Workgroup => "pair-workgroup",
            PairsVariant::Subgroup => "pair-subgroup",
        }
    }
}

/// Rows a thread may walk alone: four walks (a fused triplet with a general
/// p) of 4096 values stay near a quarter of llvmpipe's 65 535 iterations.
pub(crate) const THREAD_MAX_DIM: usize = 4096;
/// Rows a subgroup may take: at the smallest subgroup size WebGPU allows
/// (4), four walks of 16 384 / 4 values stay as far below.
pub(crate) const SUBGROUP_MAX_DIM: usize = 16_384;
/// Rows `Packed` takes: up to `WG / 4` lanes of 8 values.
pub(crate) const PACKED_MAX_DIM: usize = 2 * WG;
/// Rows `Workgroup` takes: 4 values a thread at least. Below, most of a
/// workgroup would wait at every barrier of its joins for nothing (on
/// llvmpipe, where a barrier switches between all 256 invocations, a
/// workgroup per row of 300 values ran 80 times slower than a thread per
/// row: BENCHMARKS.md, "Pair-loss variants").
pub(crate) const WORKGROUP_MIN_DIM: usize = 4 * WG;

/// Lanes per row of `Packed`: about 8 values each (a join per 8 values is
/// what a barrier-bound adapter can afford), a power of two from 2 to
/// `WG / 4`, so that a workgroup holds whole rows, 4 at least.
pub(crate) fn packed_lanes(dim: usize) -> usize {
    dim.div_ceil(8).next_power_of_two().clamp(2, WG / 4)
}

/// Eligible variants for this shape and adapter, the best guess first.
///
/// The guess serves calls too small to time (see `gpu::tune`), whose time is
/// mostly the launch, and orders the tuner's candidates: a thread per row
/// for rows of up to `PACKED_MAX_DIM` values (no join at all, and the
/// fastest on CPU adapters, where every join is a barrier), then a subgroup
/// per row while rows fit one, then a workgroup per row.
pub(crate) fn variants(plan: &PairsPlan, caps: &Caps) -> Vec<PairsVariant> {
    use PairsVariant::*;
    let dim = plan.dim;
    let order: &[PairsVariant] = if dim <= PACKED_MAX_DIM {
        &[Thread, Subgroup, Packed]
    } else {
        &[Subgroup, Thread, Workgroup]
    };
    order
        .iter()
        .copied()
        .filter(|v| match v {
            Thread => dim <= THREAD_MAX_DIM,
            Packed => dim <= PACKED_MAX_DIM,
            Workgroup => dim >= WORKGROUP_MIN_DIM,
            Subgroup => caps.subgroups && dim <= SUBGROUP_MAX_DIM,
        })
        .collect()
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
///
/// `variant` spreads each row over invocations; `Subgroup` sizes its grid
/// for subgroups of `subgroup_size` (the adapter's largest: with smaller
/// ones, some subgroups have no row).
pub(super) fn schedule(
    reduction: Reduction,
    plan: &PairsPlan,
    limit: usize,
    grad: bool,
    variant: PairsVariant,
    subgroup_size: usize,
) -> Result<Schedule> {
    let loss = &plan.loss;
    // The third binding holds cosine_embedding's labels (one per row) or
    // triplet_margin's negatives (rows like the others).
    let (second, third, labels, flag, swap, norm, margin, p, eps) = match loss {
        Pairs::CosineEmbedding { margin } => {
            let labels = if plan.labels {
                Role::Labels
            } else {
                Role::Absent
            };
            let flag = plan.labels as u32;
            (Wrt::Target, None, labels, flag, false, 0, *margin, 0.0, 0.0)
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
            0,
            *swap,
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
    let mut constants = vec![("LOSS", loss_id(loss) as f64), ("NORM", norm as f64)];
    if grad {
        constants.push(("GRAD", 1.0));
    }
    if swap {
        constants.push(("SWAP", 1.0));
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
    // Invocations per row (none for subgroups: the kernel reads their size)
    // and rows per workgroup.
    let (kernel, lanes, rows_per_group) = match variant {
        PairsVariant::Thread => (&PAIRS, 1, WG),
        PairsVariant::Packed => (&PAIRS, packed_lanes(dim), WG / packed_lanes(dim)),
        PairsVariant::Workgroup => (&PAIRS, WG, 1),
        PairsVariant::Subgroup => (&PAIRS_SUBGROUP, 0, WG / subgroup_size.clamp(1, WG)),
    };
    let mut dispatches = Vec::new();
    let mut partials = 0;
    let mut first = 0;
    while first < plan.rows {
        let rows = step.min(plan.rows - first);
        let (groups_x, groups_y) = grid(rows.div_ceil(rows_per_group));
        let params = PairsParams {
            rows: rows as u32,
            dim: dim as u32,
            write_items: items as u32,
            groups_x,
            flag,
            margin,
            p,
            eps,
            skip: (first * dim % OFFSET_ALIGN) as u32,
            row_skip: (first % OFFSET_ALIGN) as u32,
            partial_base: partials as u32,
            divisor,
            cos_eps: crate::cpu::pairs::COSINE_EPSILON as f32,
            lanes: lanes as u32,
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
            kernel,
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
