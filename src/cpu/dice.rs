//! CPU twin of `shaders/dice.wgsl`: smp's DiceLoss, summed over batch and
//! pixels together, per class.

use crate::inputs::{DicePlan, Inputs, Target};
use crate::loss::Dice;
use crate::loss::DiceMode;

use super::pointwise::{sigmoid, sign};

/// Pixel (n, s) of every class: (probability, target, mask), the target
/// already masked, the probability not (smp multiplies it by the mask later).
fn pixel(inputs: &Inputs<'_>, plan: &DicePlan, n: usize, s: usize) -> Vec<[f64; 3]> {
    let loss = &plan.loss;
    let Dice {
        mode,
        from_logits,
        ignore_index,
        ..
    } = loss;
    let (c, inner) = (plan.classes, plan.inner);
    let x = inputs.input.data;
    let at = |k: usize| (n * c + k) * inner + s;
    let probs: Vec<f64> = if !from_logits {
        (0..c).map(|k| x.get(at(k)) as f64).collect()
    } else if *mode == DiceMode::Multiclass {
        let z: Vec<f64> = (0..c).map(|k| x.get(at(k)) as f64).collect();
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let total: f64 = e.iter().sum();
        e.iter().map(|v| v / total).collect()
    } else {
        (0..c).map(|k| sigmoid(x.get(at(k)) as f64)).collect()
    };
    (0..c)
        .map(|k| {
            let (t, keep) = match inputs.target {
                Some(Target::Class { data, .. }) => {
                    let y = data[n * inner + s];
                    let keep = Some(y) != *ignore_index;
                    ((keep && y == k as i64) as u8 as f64, keep)
                }
                Some(Target::Float(t)) => {
                    let y = t.data.get(at(k));
                    (y as f64, ignore_index.is_none_or(|i| y != i as f32))
                }
                None => unreachable!("validated by plan"),
            };
            let mask = keep as u8 as f64;
            [probs[k], t * mask, mask]
        })
        .collect()
}

/// Per-class sums (Σp, Σt, Σ|p − t|) after masking ignored pixels.
pub fn sums(inputs: &Inputs<'_>, plan: &DicePlan) -> Vec<[f64; 3]> {
    let _loss = &plan.loss;
    let mut out = vec![[0.0f64; 3]; plan.classes];
    for n in 0..plan.batch {
        for s in 0..plan.inner {
            for (k, [prob, t, mask]) in pixel(inputs, plan, n, s).into_iter().enumerate() {
                // smp multiplies by the mask: a NaN prediction stays NaN.
                let p = prob * mask;
                out[k][0] += p;
                out[k][1] += t;
                out[k][2] += (p - t).abs();
            }
        }
    }
    out
}

fn clamp_min(v: f64, lo: f64) -> f64 {
    if v < lo {
        lo
    } else {
        v
    }
}

/// smp's rule for one class: L1 soft intersection, eps clamp on the
/// cardinality, and 0 for a class absent from the whole batch. As in smp the
/// clamps keep NaN and the absent-class zero is a product (NaN · 0 = NaN).
pub fn dice(sp: f64, st: f64, d: f64, smooth: f64, eps: f64, log_loss: bool) -> f64 {
    let inter = (sp + st - d) / 2.0;
    let fp = sp - inter;
    let fneg = st - inter;
    let card = clamp_min(inter + 0.5 * fp + 0.5 * fneg + smooth, eps);
    let score = (inter + smooth) / card;
    let l = if log_loss {
        -clamp_min(score, eps).ln()
    } else {
        1.0 - score
    };
    l * (st > 0.0) as u8 as f64
}

/// The backward of [`dice`] for one class with upstream `g`, as autograd runs
/// through smp's expression: (d/dΣp, d/dΣ|p − t|). A clamp that is active
/// (below eps) passes no gradient: PyTorch's clamp_min passes it where its
/// argument is at or above the bound. An absent class gets 0.
pub fn dice_grad(
    sp: f64,
    st: f64,
    d: f64,
    smooth: f64,
    eps: f64,
    log_loss: bool,
    g: f64,
) -> (f64, f64) {
    let inter = (sp + st - d) / 2.0;
    let fp = sp - inter;
    let fneg = st - inter;
    let raw = inter + 0.5 * fp + 0.5 * fneg + smooth;
    let card = clamp_min(raw, eps);
    let score = (inter + smooth) / card;
    let gl = g * (st > 0.0) as u8 as f64;
    let gscore = if !log_loss {
        -gl
    } else if score >= eps {
        -gl / score
    } else {
        0.0
    };
    let gnum = gscore / card;
    let gcard = if raw >= eps {
        -gscore * (inter + smooth) / (card * card)
    } else {
        0.0
    };
    // The cardinality's own intersection term cancels against fp and fn.
    let ginter = gnum + gcard - 0.5 * gcard - 0.5 * gcard;
    (0.5 * gcard + 0.5 * ginter, -0.5 * ginter)
}

pub fn per_class(inputs: &Inputs<'_>, plan: &DicePlan) -> Vec<f64> {
    let loss = &plan.loss;
    let Dice {
        smooth,
        eps,
        log_loss,
        ..
    } = loss;
    sums(inputs, plan)
        .into_iter()
        .map(|[sp, st, d]| dice(sp, st, d, *smooth as f64, *eps as f64, *log_loss))
        .collect()
}

/// d/d(input) of the per-class losses weighted by `g[c]` (already scaled by
/// the reduction). Σ|p − t| has gradient sign(p − t), 0 at p == t; ignored
/// pixels get 0; with `from_logits` the chain goes on through the softmax
/// (multiclass) or each sigmoid.
pub fn gradient(inputs: &Inputs<'_>, plan: &DicePlan, g: &[f64]) -> Vec<f64> {
    let Dice {
        smooth,
        eps,
        log_loss,
        ..
    } = &plan.loss;
    let class_grads: Vec<(f64, f64)> = sums(inputs, plan)
        .into_iter()
        .zip(g)
        .map(|([sp, st, d], g)| dice_grad(sp, st, d, *smooth as f64, *eps as f64, *log_loss, *g))
        .collect();
    gradient_with(inputs, plan, &class_grads)
}

/// d/d(input) from each class's (d/dΣp, d/dΣ|p − t|): of these pixels'
/// own sums ([`gradient`]), or of a whole batch's that they are a part of.
pub fn gradient_with(inputs: &Inputs<'_>, plan: &DicePlan, class_grads: &[(f64, f64)]) -> Vec<f64> {
    let Dice {
        mode, from_logits, ..
    } = &plan.loss;
    let (c, inner) = (plan.classes, plan.inner);
    let x = inputs.input.data;
    let mut out = vec![0.0; x.len()];
    for n in 0..plan.batch {
        for s in 0..inner {
            let at = |k: usize| (n * c + k) * inner + s;
            let px = pixel(inputs, plan, n, s);
            let gprob: Vec<f64> = px
                .iter()
                .zip(class_grads)
                .map(|([prob, t, mask], (gsp, gd))| (gsp + gd * sign(prob * mask - t)) * mask)
                .collect();
            let gx: Vec<f64> = if !from_logits {
                gprob
            } else if *mode == DiceMode::Multiclass {
                // p = exp(log_softmax(z)).
                let glogp: Vec<f64> = gprob.iter().zip(&px).map(|(g, q)| g * q[0]).collect();
                let total: f64 = glogp.iter().sum();
                glogp
                    .iter()
                    .zip(&px)
                    .map(|(g, q)| g - q[0] * total)
                    .collect()
            } else {
                // p = exp(logsigmoid(z)): dp/dz = p·σ(−z).
                gprob
                    .iter()
                    .zip(&px)
                    .enumerate()
                    .map(|(k, (g, q))| g * q[0] * sigmoid(-(x.get(at(k)) as f64)))
                    .collect()
            };
            for (k, v) in gx.into_iter().enumerate() {
                out[at(k)] = v;
            }
        }
    }
    out
}
