//! Upstream gradients as autograd passes them, shared by the GPU gradient
//! tests of the elementwise, softmax-row and pair losses.

use wgpu_loss::{Loss, Pointwise, Reduction, Upstream};

use super::{rng, uniform};

/// Each plain reduction with an upstream as autograd passes it: `none` with
/// a scalar and with one value per item, `mean` with an upstream as large as
/// its divisor (so that its gradients are O(1) and the absolute tolerance
/// hides no error), `sum`.
pub fn calls(per_item: &[f32]) -> Vec<(Reduction, Upstream<'_>)> {
    let n = per_item.len().max(1) as f32;
    vec![
        (Reduction::None, Upstream::Scalar(1.5)),
        (Reduction::None, Upstream::Items(per_item)),
        (Reduction::Mean, Upstream::Scalar(0.75 * n)),
        (Reduction::Sum, Upstream::Scalar(-1.25)),
    ]
}

/// `calls`, and for kl_div `batchmean` with an upstream as large as the batch.
pub fn calls_for<'a>(
    loss: &Loss,
    per_item: &'a [f32],
    batch: usize,
) -> Vec<(Reduction, Upstream<'a>)> {
    let mut calls = calls(per_item);
    if matches!(loss, Loss::Pointwise(Pointwise::KlDiv { .. })) {
        calls.push((
            Reduction::BatchMean,
            Upstream::Scalar(2.0 * batch.max(1) as f32),
        ));
    }
    calls
}

/// One upstream value per item, some of them 0.
pub fn upstream_items(n: usize, seed: u64) -> Vec<f32> {
    let mut u = uniform(&mut rng(seed), n, -2.0, 2.0);
    for v in u.iter_mut().step_by(13) {
        *v = 0.0;
    }
    u
}

/// How an upstream is given, for messages.
pub fn kind(up: &Upstream<'_>) -> &'static str {
    match up {
        Upstream::Items(_) => "items",
        Upstream::Scalar(_) => "scalar",
    }
}
