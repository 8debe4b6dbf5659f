//! CPU twin of `shaders/pointwise.wgsl`.

use crate::inputs::{Inputs, PointPlan, Target};
use crate::loss::Loss;

pub fn mse(x: f64, y: f64) -> f64 {
    (x - y) * (x - y)
}

pub fn l1(x: f64, y: f64) -> f64 {
    (x - y).abs()
}

pub fn huber(x: f64, y: f64, delta: f64) -> f64 {
    let z = (x - y).abs();
    if z < delta {
        0.5 * z * z
    } else {
        delta * (z - 0.5 * delta)
    }
}

pub fn smooth_l1(x: f64, y: f64, beta: f64) -> f64 {
    let z = (x - y).abs();
    if z < beta {
        0.5 * z * z / beta
    } else {
        z - 0.5 * beta
    }
}

pub fn log_cosh(x: f64, y: f64) -> f64 {
    let a = (x - y).abs();
    a + (-2.0 * a).exp().ln_1p() - std::f64::consts::LN_2
}

pub fn quantile(x: f64, y: f64, q: f64) -> f64 {
    let e = y - x;
    ((q - 1.0) * e).max(q * e)
}

/// Each log is clamped at −100 before it is multiplied by the target.
pub fn bce(x: f64, y: f64) -> f64 {
    let lx = x.ln().max(-100.0);
    let l1x = (-x).ln_1p().max(-100.0);
    (y - 1.0) * l1x - y * lx
}

pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

pub fn bce_with_logits(x: f64, y: f64, pos_weight: f64) -> f64 {
    let lw = 1.0 + (pos_weight - 1.0) * y;
    (1.0 - y) * x + lw * softplus(-x)
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

pub fn sigmoid_focal(x: f64, y: f64, alpha: f64, gamma: f64) -> f64 {
    let ce = bce_with_logits(x, y, 1.0);
    let p = sigmoid(x);
    let p_t = p * y + (1.0 - p) * (1.0 - y);
    let mut l = ce * (1.0 - p_t).powf(gamma);
    if alpha >= 0.0 {
        l *= alpha * y + (1.0 - alpha) * (1.0 - y);
    }
    l
}

/// xlogy(y, y) − y·x, or exp(y)·(y − x) for log targets.
pub fn kl_div(x: f64, y: f64, log_target: bool) -> f64 {
    if log_target {
        y.exp() * (y - x)
    } else {
        let xlogy = if y == 0.0 { 0.0 } else { y * y.ln() };
        xlogy - y * x
    }
}

/// (loss, denominator contribution) per element.
pub fn items(loss: &Loss, inputs: &Inputs<'_>, plan: &PointPlan<'_>) -> Vec<(f64, f64)> {
    let Some(Target::Float(target)) = inputs.target else {
        unreachable!("validated by plan")
    };
    (0..plan.n)
        .map(|i| {
            let x = inputs.input.data[i] as f64;
            let y = target.data[i / plan.per_target] as f64;
            let w = plan.weight.as_ref().map_or(1.0, |w| w.at(i) as f64);
            let a = plan.aux.as_ref().map(|a| a.at(i) as f64);
            match loss {
                Loss::Mse => (w * mse(x, y), w),
                Loss::L1 => (w * l1(x, y), w),
                Loss::Huber { delta } => (w * huber(x, y, *delta as f64), 1.0),
                Loss::SmoothL1 { beta } => (smooth_l1(x, y, *beta as f64), 1.0),
                Loss::LogCosh => (log_cosh(x, y), 1.0),
                Loss::Quantile { .. } => (quantile(x, y, a.unwrap_or(0.5)), 1.0),
                Loss::Bce => (w * bce(x, y), 1.0),
                Loss::BceWithLogits => (w * bce_with_logits(x, y, a.unwrap_or(1.0)), 1.0),
                Loss::SigmoidFocal { alpha, gamma } => {
                    (sigmoid_focal(x, y, *alpha as f64, *gamma as f64), 1.0)
                }
                Loss::KlDiv { log_target } => (kl_div(x, y, *log_target), 1.0),
                _ => unreachable!("not a pointwise loss"),
            }
        })
        .collect()
}
