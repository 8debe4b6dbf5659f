//! CPU twin of `shaders/dice.wgsl`: smp's DiceLoss, summed over batch and
//! pixels together, per class.

use crate::inputs::{DicePlan, Inputs, Target};
use crate::loss::{DiceMode, Loss};

use super::pointwise::sigmoid;

/// Per-class sums (Σp, Σt, Σ|p − t|) after masking ignored pixels.
pub fn sums(loss: &Loss, inputs: &Inputs<'_>, plan: &DicePlan) -> Vec<[f64; 3]> {
    let Loss::Dice {
        mode,
        from_logits,
        ignore_index,
        ..
    } = loss
    else {
        unreachable!("not dice")
    };
    let (c, inner) = (plan.classes, plan.inner);
    let x = inputs.input.data;
    let mut out = vec![[0.0f64; 3]; c];
    let mut probs = vec![0.0f64; c];
    for n in 0..plan.batch {
        for s in 0..inner {
            let at = |k: usize| (n * c + k) * inner + s;
            for (k, p) in probs.iter_mut().enumerate() {
                *p = x[at(k)] as f64;
            }
            if *from_logits && *mode == DiceMode::Multiclass {
                let m = probs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                probs.iter_mut().for_each(|p| *p = (*p - m).exp());
                let total: f64 = probs.iter().sum();
                probs.iter_mut().for_each(|p| *p /= total);
            } else if *from_logits {
                probs.iter_mut().for_each(|p| *p = sigmoid(*p));
            }
            for k in 0..c {
                let (t, keep) = match inputs.target {
                    Some(Target::Class { data, .. }) => {
                        let y = data[n * inner + s];
                        let keep = Some(y) != *ignore_index;
                        ((keep && y == k as i64) as u8 as f64, keep)
                    }
                    Some(Target::Float(t)) => {
                        let y = t.data[at(k)];
                        (y as f64, ignore_index.is_none_or(|i| y != i as f32))
                    }
                    None => unreachable!("validated by plan"),
                };
                // smp multiplies by the mask: a NaN prediction stays NaN.
                let mask = keep as u8 as f64;
                let (p, t) = (probs[k] * mask, t * mask);
                out[k][0] += p;
                out[k][1] += t;
                out[k][2] += (p - t).abs();
            }
        }
    }
    out
}

/// smp's rule for one class: L1 soft intersection, eps clamp on the
/// cardinality, and 0 for a class absent from the whole batch. As in smp the
/// clamps keep NaN and the absent-class zero is a product (NaN · 0 = NaN).
pub fn dice(sp: f64, st: f64, d: f64, smooth: f64, eps: f64, log_loss: bool) -> f64 {
    let clamp_min = |v: f64, lo: f64| if v < lo { lo } else { v };
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

pub fn per_class(loss: &Loss, inputs: &Inputs<'_>, plan: &DicePlan) -> Vec<f64> {
    let Loss::Dice {
        smooth,
        eps,
        log_loss,
        ..
    } = loss
    else {
        unreachable!("not dice")
    };
    sums(loss, inputs, plan)
        .into_iter()
        .map(|[sp, st, d]| dice(sp, st, d, *smooth as f64, *eps as f64, *log_loss))
        .collect()
}
