//! The CPU twin of every kernel: plain loops in float64, written for clarity.
//! It is the reference the GPU results are tested against, and the CLI's
//! `cpu_reference`; it is not a fallback.
//!
//! One file per shader: `pointwise.rs` ↔ `shaders/pointwise.wgsl`, and so on.

pub mod dice;
pub mod pairs;
pub mod pointwise;
pub mod rows;

use crate::error::Result;
use crate::inputs::{plan, Geometry, Inputs};
use crate::loss::{Loss, Reduction};
use crate::partial::Partial;

/// A loss evaluated in float64.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// The reduced value; for `none`, the sum of the items.
    pub value: f64,
    /// Per-item losses in `items_shape` (always computed).
    pub items: Vec<f64>,
    pub items_shape: Vec<usize>,
}

/// Per-item (loss, denominator) pairs, reduced as the finalize pass does.
fn reduce(
    items: Vec<(f64, f64)>,
    reduction: Reduction,
    batch: usize,
    items_shape: Vec<usize>,
) -> Reference {
    let sum: f64 = items.iter().map(|v| v.0).sum();
    let denom: f64 = items.iter().map(|v| v.1).sum();
    let value = match reduction {
        Reduction::None | Reduction::Sum => sum,
        Reduction::Mean => sum / denom,
        Reduction::BatchMean => sum / batch as f64,
    };
    Reference {
        value,
        items: items.into_iter().map(|v| v.0).collect(),
        items_shape,
    }
}

/// Evaluates `loss` on the CPU after the same validation as the GPU path.
pub fn evaluate(loss: &Loss, reduction: Reduction, inputs: &Inputs<'_>) -> Result<Reference> {
    let plan = plan(loss, reduction, inputs)?;
    let shape = plan.items_shape.clone();
    Ok(match &plan.geometry {
        Geometry::Point(p) => reduce(pointwise::items(loss, inputs, p), reduction, p.batch, shape),
        Geometry::Rows(r) => reduce(rows::items(loss, inputs, r), reduction, 1, shape),
        Geometry::Pairs(p) => reduce(pairs::items(loss, inputs, p), reduction, 1, shape),
        Geometry::Dice(d) => {
            let per_class = dice::per_class(loss, inputs, d);
            let c = per_class.len() as f64;
            let mut r = reduce(
                per_class.into_iter().map(|l| (l, 1.0)).collect(),
                reduction,
                1,
                shape,
            );
            if reduction == Reduction::Mean {
                r.value = r.items.iter().sum::<f64>() / c;
            }
            r
        }
    })
}

/// The float64 twin of `Context::partial`: the sums that a reduced loss
/// merges over parts of a batch (see [`Partial`]).
pub fn partial(loss: &Loss, inputs: &Inputs<'_>) -> Result<Partial> {
    let plan = plan(loss, Reduction::Sum, inputs)?;
    let mut out = Partial::empty(loss, 0);
    out.batch = inputs.input.shape.first().map_or(1, |&n| n as u64);
    let items = match &plan.geometry {
        Geometry::Point(p) => pointwise::items(loss, inputs, p),
        Geometry::Rows(r) => rows::items(loss, inputs, r),
        Geometry::Pairs(p) => pairs::items(loss, inputs, p),
        Geometry::Dice(d) => {
            out.classes = Some(dice::sums(loss, inputs, d));
            return Ok(out);
        }
    };
    out.sum = items.iter().map(|v| v.0).sum();
    out.denom = items.iter().map(|v| v.1).sum();
    Ok(out)
}
