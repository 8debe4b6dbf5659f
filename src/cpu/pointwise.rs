//! CPU twin of `shaders/pointwise.wgsl`.

use crate::inputs::{Inputs, PointPlan, Target};
use crate::loss::Pointwise;

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

/// torch.maximum of the two branches: NaN if either is (q = 0 or 1 times an
/// infinite error), where f64::max would return the other.
pub fn quantile(x: f64, y: f64, q: f64) -> f64 {
    let e = y - x;
    let (under, over) = ((q - 1.0) * e, q * e);
    if under.is_nan() || over.is_nan() {
        f64::NAN
    } else {
        under.max(over)
    }
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

/// At x = −inf PyTorch's form of it, (1 − y)·x + lw·(m + ln(e^−m + e^(−x−m)))
/// with m = max(−x, 0), is NaN for every y and pos_weight (−x − m = inf − inf),
/// where this one could be ±inf.
pub fn bce_with_logits(x: f64, y: f64, pos_weight: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return f64::NAN;
    }
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

/// The Stirling term `full` adds, y·ln y − y + ½·ln(2πy), only where y > 1
/// (NaN targets keep it, as PyTorch's masked_fill on `y <= 1` does).
pub fn stirling(y: f64) -> f64 {
    if y <= 1.0 {
        0.0
    } else {
        y * y.ln() - y + 0.5 * (2.0 * std::f64::consts::PI * y).ln()
    }
}

/// exp(x) − y·x for a log rate, x − y·ln(x + eps) for a rate.
pub fn poisson_nll(x: f64, y: f64, log_input: bool, full: bool, eps: f64) -> f64 {
    let l = if log_input {
        x.exp() - y * x
    } else {
        x - y * (x + eps).ln()
    };
    if full {
        l + stirling(y)
    } else {
        l
    }
}

/// The Stirling term does not depend on x.
pub fn poisson_nll_grad(x: f64, y: f64, log_input: bool, eps: f64) -> f64 {
    if log_input {
        x.exp() - y
    } else {
        1.0 - y / (x + eps)
    }
}

/// The variance clamped below at eps; a NaN variance stays NaN.
fn clamp_var(var: f64, eps: f64) -> f64 {
    if var < eps {
        eps
    } else {
        var
    }
}

/// ½·(ln v + (x − y)²/v), v = max(var, eps), plus ½·ln 2π with `full`.
pub fn gaussian_nll(x: f64, y: f64, var: f64, full: bool, eps: f64) -> f64 {
    let v = clamp_var(var, eps);
    let l = 0.5 * (v.ln() + (x - y) * (x - y) / v);
    if full {
        l + 0.5 * (2.0 * std::f64::consts::PI).ln()
    } else {
        l
    }
}

/// The clamp of the variance has no gradient: (x − y)/v.
pub fn gaussian_nll_grad(x: f64, y: f64, var: f64, eps: f64) -> f64 {
    (x - y) / clamp_var(var, eps)
}

/// PyTorch's `EPSILON` in the BCE backward: a float constant, 9.99999996e-13.
pub const BCE_EPSILON: f64 = 1e-12_f32 as f64;

/// sign(v) with sign(±0) = 0 and sign(NaN) = 0, as torch's `sign`/`sgn`.
pub fn sign(v: f64) -> f64 {
    if v == 0.0 || v.is_nan() {
        0.0
    } else {
        v.signum()
    }
}

pub fn mse_grad(x: f64, y: f64) -> f64 {
    2.0 * (x - y)
}

/// 0 at x == y (abs has gradient 0 at 0).
pub fn l1_grad(x: f64, y: f64) -> f64 {
    sign(x - y)
}

/// |x − y| == delta takes the linear branch: ±delta.
pub fn huber_grad(x: f64, y: f64, delta: f64) -> f64 {
    let d = x - y;
    if d <= -delta {
        -delta
    } else if d >= delta {
        delta
    } else {
        d
    }
}

/// beta = 0 is l1_loss; |x − y| == beta takes the linear branch: ±1.
pub fn smooth_l1_grad(x: f64, y: f64, beta: f64) -> f64 {
    let d = x - y;
    if beta == 0.0 {
        sign(d)
    } else if d <= -beta {
        -1.0
    } else if d >= beta {
        1.0
    } else {
        d / beta
    }
}

pub fn log_cosh_grad(x: f64, y: f64) -> f64 {
    (x - y).tanh()
}

/// torch.maximum of the two branches: at e = 0 each gets half the gradient,
/// (1 − q)/2 − q/2; a NaN passes the whole gradient to both.
pub fn quantile_grad(x: f64, y: f64, q: f64) -> f64 {
    let e = y - x;
    let (under, over) = ((q - 1.0) * e, q * e);
    if under > over {
        1.0 - q
    } else if over > under {
        -q
    } else if under == over {
        0.5 - q
    } else {
        1.0 - 2.0 * q
    }
}

/// PyTorch's backward, not the derivative of the clamped forward: up to
/// ±1/BCE_EPSILON at x ∈ {0, 1}, and 0 at x == y.
pub fn bce_grad(x: f64, y: f64) -> f64 {
    let d = (1.0 - x) * x;
    (x - y) / if d < BCE_EPSILON { BCE_EPSILON } else { d }
}

/// (pw·y + 1 − y)·σ(x) − pw·y, or σ(x) − y without pos_weight.
pub fn bce_with_logits_grad(x: f64, y: f64, pos_weight: Option<f64>) -> f64 {
    match pos_weight {
        Some(pw) => {
            let t = pw * y;
            (t + 1.0 - y) * sigmoid(x) - t
        }
        None => sigmoid(x) - y,
    }
}

/// The chain through torchvision's expression: ce' · u^γ + ce · γu^(γ−1) · u',
/// u = 1 − p_t. With γ = 0 the second term is 0 (pow's backward at exponent 0);
/// with 0 < γ < 1 at a saturated p (u = 0) it is NaN, as in PyTorch.
pub fn sigmoid_focal_grad(x: f64, y: f64, alpha: f64, gamma: f64) -> f64 {
    let p = sigmoid(x);
    let ce = bce_with_logits(x, y, 1.0);
    let u = 1.0 - (p * y + (1.0 - p) * (1.0 - y));
    let du = (1.0 - 2.0 * y) * (p * (1.0 - p));
    let dfocal = if gamma == 0.0 {
        0.0
    } else {
        gamma * u.powf(gamma - 1.0)
    };
    // pow's backward at γ = 0 is exactly 0, even against an infinite ce.
    let focal_term = if gamma == 0.0 { 0.0 } else { ce * dfocal * du };
    let g = (p - y) * u.powf(gamma) + focal_term;
    if alpha >= 0.0 {
        g * (alpha * y + (1.0 - alpha) * (1.0 - y))
    } else {
        g
    }
}

/// −y, or −exp(y) for log targets.
pub fn kl_div_grad(y: f64, log_target: bool) -> f64 {
    if log_target {
        -y.exp()
    } else {
        -y
    }
}

/// d/dx of every element's loss times its upstream `g[i]` (already scaled
/// by the reduction).
pub fn gradient(inputs: &Inputs<'_>, plan: &PointPlan<'_>, g: &[f64]) -> Vec<f64> {
    let loss = &plan.loss;
    let Some(Target::Float(target)) = inputs.target else {
        unreachable!("validated by plan")
    };
    (0..plan.n)
        .map(|i| {
            let x = inputs.input.data.get(i) as f64;
            let y = target.data.get(i / plan.per_target) as f64;
            let w = plan.weight.as_ref().map_or(1.0, |w| w.at(i) as f64);
            let a = plan.aux.as_ref().map(|a| a.at(i) as f64);
            // The upstream meets the weight first: g/0 · 0 is NaN as in PyTorch.
            let gw = g[i] * w;
            match loss {
                Pointwise::Mse => gw * mse_grad(x, y),
                Pointwise::L1 => gw * l1_grad(x, y),
                Pointwise::Huber { delta } => gw * huber_grad(x, y, *delta as f64),
                Pointwise::SmoothL1 { beta } => g[i] * smooth_l1_grad(x, y, *beta as f64),
                Pointwise::LogCosh => g[i] * log_cosh_grad(x, y),
                Pointwise::Quantile { .. } => g[i] * quantile_grad(x, y, a.unwrap_or(0.5)),
                Pointwise::Bce => gw * bce_grad(x, y),
                Pointwise::BceWithLogits => gw * bce_with_logits_grad(x, y, a),
                Pointwise::SigmoidFocal { alpha, gamma } => {
                    g[i] * sigmoid_focal_grad(x, y, *alpha as f64, *gamma as f64)
                }
                Pointwise::KlDiv { log_target } => g[i] * kl_div_grad(y, *log_target),
                Pointwise::PoissonNll { log_input, eps, .. } => {
                    g[i] * poisson_nll_grad(x, y, *log_input, *eps as f64)
                }
                Pointwise::GaussianNll { eps, .. } => {
                    g[i] * gaussian_nll_grad(x, y, a.unwrap_or(1.0), *eps as f64)
                }
            }
        })
        .collect()
}

/// (loss, denominator contribution) per element.
pub fn items(inputs: &Inputs<'_>, plan: &PointPlan<'_>) -> Vec<(f64, f64)> {
    let loss = &plan.loss;
    let Some(Target::Float(target)) = inputs.target else {
        unreachable!("validated by plan")
    };
    (0..plan.n)
        .map(|i| {
            let x = inputs.input.data.get(i) as f64;
            let y = target.data.get(i / plan.per_target) as f64;
            let w = plan.weight.as_ref().map_or(1.0, |w| w.at(i) as f64);
            let a = plan.aux.as_ref().map(|a| a.at(i) as f64);
            match loss {
                Pointwise::Mse => (w * mse(x, y), w),
                Pointwise::L1 => (w * l1(x, y), w),
                Pointwise::Huber { delta } => (w * huber(x, y, *delta as f64), 1.0),
                Pointwise::SmoothL1 { beta } => (smooth_l1(x, y, *beta as f64), 1.0),
                Pointwise::LogCosh => (log_cosh(x, y), 1.0),
                Pointwise::Quantile { .. } => (quantile(x, y, a.unwrap_or(0.5)), 1.0),
                Pointwise::Bce => (w * bce(x, y), 1.0),
                Pointwise::BceWithLogits => (w * bce_with_logits(x, y, a.unwrap_or(1.0)), 1.0),
                Pointwise::SigmoidFocal { alpha, gamma } => {
                    (sigmoid_focal(x, y, *alpha as f64, *gamma as f64), 1.0)
                }
                Pointwise::KlDiv { log_target } => (kl_div(x, y, *log_target), 1.0),
                Pointwise::PoissonNll {
                    log_input,
                    full,
                    eps,
                } => (poisson_nll(x, y, *log_input, *full, *eps as f64), 1.0),
                Pointwise::GaussianNll { full, eps } => {
                    let var = a.unwrap_or(1.0);
                    (gaussian_nll(x, y, var, *full, *eps as f64), 1.0)
                }
            }
        })
        .collect()
}
