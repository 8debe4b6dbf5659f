//! The CPU twin of every kernel: plain loops in float64, written for clarity.
//! It is the reference the GPU results are tested against, and the CLI's
//! `cpu_reference`; it is not a fallback.
//!
//! One file per shader: `pointwise.rs` ↔ `shaders/pointwise.wgsl`, and so on.
//! Next to each forward twin sits its gradient, PyTorch autograd's backward of
//! the same expression (conventions in docs/semantics.md and on each function).

pub mod dice;
pub mod pairs;
pub mod pointwise;
mod reference;
pub mod rows;

pub use reference::{Reference, ReferenceGradients};

use crate::error::Result;
use crate::inputs::{plan, Geometry, Inputs, Plan, Upstream};
use crate::loss::Rows;
use crate::loss::{Loss, Reduction};
use crate::partial::Partial;

/// Per-item (loss, denominator) pairs, reduced as the finalize pass does.
/// Also returns what `mean` divides by.
fn reduce(
    items: Vec<(f64, f64)>,
    reduction: Reduction,
    batch: usize,
    items_shape: Vec<usize>,
) -> (Reference, f64) {
    let sum: f64 = items.iter().map(|v| v.0).sum();
    let denom: f64 = items.iter().map(|v| v.1).sum();
    let value = match reduction {
        Reduction::None | Reduction::Sum => sum,
        Reduction::Mean => sum / denom,
        Reduction::BatchMean => sum / batch as f64,
    };
    let reference = Reference {
        value,
        items: items.into_iter().map(|v| v.0).collect(),
        items_shape,
    };
    (reference, denom)
}

fn forward(reduction: Reduction, inputs: &Inputs<'_>, plan: &Plan<'_>) -> (Reference, f64) {
    let shape = plan.items_shape.clone();
    match &plan.geometry {
        Geometry::Point(p) => reduce(pointwise::items(inputs, p), reduction, p.batch, shape),
        Geometry::Rows(r) => reduce(rows::items(inputs, r), reduction, 1, shape),
        Geometry::Pairs(p) => reduce(pairs::items(inputs, p), reduction, 1, shape),
        // smp's mean over classes: every class counts, absent ones as 0.
        Geometry::Dice(d) => reduce(
            dice::per_class(inputs, d)
                .into_iter()
                .map(|l| (l, 1.0))
                .collect(),
            reduction,
            1,
            shape,
        ),
    }
}

/// Evaluates `loss` on the CPU after the same validation as the GPU path.
pub fn evaluate(loss: &Loss, reduction: Reduction, inputs: &Inputs<'_>) -> Result<Reference> {
    let plan = plan(loss, reduction, inputs)?;
    Ok(forward(reduction, inputs, &plan).0)
}

/// The value and the gradients of `loss` as PyTorch autograd gives them,
/// for the upstream gradient `upstream` (see [`Upstream`]).
///
/// The reduction scales each item's gradient: `mean` by 1/Σ of the forward's
/// denominators (Σw for weighted mse/l1, `Σ w[y]` over non-ignored rows for
/// class-index cross_entropy/nll/softmax_focal, the class count for dice, the
/// item count otherwise), `batchmean` by 1/N, `sum` by 1. Ignored rows and
/// pixels get exactly 0, so an all-ignored mean has a NaN value and a zero
/// gradient. A zero total weight over rows that are not ignored gives NaN
/// gradients there, as in PyTorch (g/0 times a weight of 0), except for
/// softmax_focal, whose mean over a zero weight is defined with a zero gradient.
pub fn gradient(
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    upstream: Upstream<'_>,
) -> Result<(Reference, ReferenceGradients)> {
    let plan = plan(loss, reduction, inputs)?;
    upstream.check(reduction, plan.items())?;
    let (reference, denom) = forward(reduction, inputs, &plan);
    let n = reference.items.len();
    let g: Vec<f64> = match upstream {
        Upstream::Items(g) => g.iter().map(|v| *v as f64).collect(),
        Upstream::Scalar(g) => {
            let g = g as f64;
            let scaled = match (reduction, &plan.geometry) {
                (Reduction::None | Reduction::Sum, _) => g,
                (Reduction::Mean, Geometry::Rows(r))
                    if denom == 0.0 && matches!(r.loss, Rows::SoftmaxFocal { .. }) =>
                {
                    0.0
                }
                (Reduction::Mean, _) => g / denom,
                // `validate` allows batchmean for kl_div alone, an elementwise loss.
                (Reduction::BatchMean, Geometry::Point(p)) => g / p.batch as f64,
                (Reduction::BatchMean, _) => g,
            };
            vec![scaled; n]
        }
    };
    Ok((reference, family_gradients(inputs, &plan, &g)))
}

/// The gradients of every item's loss times its upstream `g` (scaled by the
/// reduction already; Dice: one per class).
fn family_gradients(inputs: &Inputs<'_>, plan: &Plan<'_>, g: &[f64]) -> ReferenceGradients {
    let only_input = |input| ReferenceGradients {
        input,
        target: None,
        positive: None,
        negative: None,
    };
    match &plan.geometry {
        Geometry::Point(p) => only_input(pointwise::gradient(inputs, p, g)),
        Geometry::Rows(r) => only_input(rows::gradient(inputs, r, g)),
        Geometry::Pairs(p) => pairs::gradient(inputs, p, g),
        Geometry::Dice(d) => only_input(dice::gradient(inputs, d, g)),
    }
}

/// The gradient of a whole call's value (upstream `g`) with respect to one
/// part of its batch, from the part's values and the whole call's merged
/// sums `whole` (see [`Partial::item_upstream`] and
/// [`Partial::dice_coefficients`]); with the part's `none` items (none for
/// Dice, whose items are the classes). The parts' gradients, concatenated in
/// batch order, are the whole call's.
pub fn gradient_of_part(
    loss: &Loss,
    reduction: Reduction,
    part: &Inputs<'_>,
    whole: &Partial,
    g: f64,
) -> Result<(Vec<f64>, ReferenceGradients)> {
    let plan = plan(loss, Reduction::None, part)?;
    if let Geometry::Dice(d) = &plan.geometry {
        let coefficients = whole.dice_coefficients(loss, reduction, g)?;
        if coefficients.len() != d.classes {
            return Err(crate::Error::Partial(format!(
                "dice: the whole batch's partial holds {} classes, the part {}",
                coefficients.len(),
                d.classes
            )));
        }
        let input = dice::gradient_with(part, d, &coefficients);
        let grads = ReferenceGradients {
            input,
            target: None,
            positive: None,
            negative: None,
        };
        return Ok((vec![], grads));
    }
    let s = whole.item_upstream(loss, reduction, g)?;
    let (items, _) = forward(Reduction::None, part, &plan);
    let upstream = vec![s; items.items.len()];
    Ok((items.items, family_gradients(part, &plan, &upstream)))
}

/// [`partial`] with the part's per-item losses (`none`'s items, weighted
/// where the loss is; none for Dice): what a check of the part's items, or
/// of a value's rounding against the items' magnitudes, needs.
pub fn partial_with_items(loss: &Loss, inputs: &Inputs<'_>) -> Result<(Partial, Vec<f64>)> {
    let plan = plan(loss, Reduction::Sum, inputs)?;
    let mut out = Partial::empty(loss, 0);
    out.batch = inputs.input.shape.first().map_or(1, |&n| n as u64);
    let items = match &plan.geometry {
        Geometry::Point(p) => pointwise::items(inputs, p),
        Geometry::Rows(r) => rows::items(inputs, r),
        Geometry::Pairs(p) => pairs::items(inputs, p),
        Geometry::Dice(d) => {
            out.classes = Some(dice::sums(inputs, d));
            return Ok((out, vec![]));
        }
    };
    out.sum = items.iter().map(|v| v.0).sum();
    out.denom = items.iter().map(|v| v.1).sum();
    Ok((out, items.into_iter().map(|v| v.0).collect()))
}

/// The float64 twin of `Context::partial`: the sums that a reduced loss
/// merges over parts of a batch (see [`Partial`]).
pub fn partial(loss: &Loss, inputs: &Inputs<'_>) -> Result<Partial> {
    partial_with_items(loss, inputs).map(|p| p.0)
}
