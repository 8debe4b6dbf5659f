//! CPU twin of `shaders/rows.wgsl`: cross_entropy, nll and softmax_focal over
//! input `(N, C, d1..dK)`, one row per (n, d1..dK).

use crate::inputs::{Inputs, RowsPlan, Target};
use crate::loss::Loss;

/// The logits of row `r`, gathered across the class stride.
pub fn row(inputs: &Inputs<'_>, plan: &RowsPlan, r: usize) -> Vec<f64> {
    let (n, s) = (r / plan.inner, r % plan.inner);
    (0..plan.classes)
        .map(|c| inputs.input.data[(n * plan.classes + c) * plan.inner + s] as f64)
        .collect()
}

pub fn log_softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    x.iter().map(|v| v - lse).collect()
}

/// (loss, denominator contribution) per row.
pub fn items(loss: &Loss, inputs: &Inputs<'_>, plan: &RowsPlan) -> Vec<(f64, f64)> {
    let c = plan.classes;
    let w = |k: usize| inputs.weight.map_or(1.0, |w| w.data[k] as f64);
    (0..plan.rows)
        .map(|r| {
            let x = row(inputs, plan, r);
            match (loss, inputs.target) {
                (
                    Loss::CrossEntropy {
                        label_smoothing, ..
                    },
                    Some(Target::Float(t)),
                ) => {
                    let eps = *label_smoothing as f64;
                    let logp = log_softmax(&x);
                    let (n, s) = (r / plan.inner, r % plan.inner);
                    let l = (0..c)
                        .map(|k| {
                            let tk = t.data[(n * c + k) * plan.inner + s] as f64;
                            let tk = tk * (1.0 - eps) + eps / c as f64;
                            -w(k) * tk * logp[k]
                        })
                        .sum();
                    (l, 1.0)
                }
                (_, Some(Target::Class { data, .. })) => {
                    let y = data[r];
                    let ignore = match loss {
                        Loss::CrossEntropy { ignore_index, .. }
                        | Loss::Nll { ignore_index }
                        | Loss::SoftmaxFocal { ignore_index, .. } => *ignore_index,
                        _ => unreachable!("not a row loss"),
                    };
                    if y == ignore {
                        return (0.0, 0.0);
                    }
                    let y = y as usize;
                    let wy = w(y);
                    match loss {
                        Loss::Nll { .. } => (-wy * x[y], wy),
                        Loss::CrossEntropy {
                            label_smoothing, ..
                        } => {
                            let eps = *label_smoothing as f64;
                            let logp = log_softmax(&x);
                            let nll = -wy * logp[y];
                            if eps > 0.0 {
                                let smooth: f64 = (0..c).map(|k| -w(k) * logp[k]).sum();
                                ((1.0 - eps) * nll + eps / c as f64 * smooth, wy)
                            } else {
                                (nll, wy)
                            }
                        }
                        Loss::SoftmaxFocal { gamma, .. } => {
                            let logp_t = log_softmax(&x)[y];
                            let u = -logp_t.exp_m1();
                            (wy * u.powf(*gamma as f64) * -logp_t, wy)
                        }
                        _ => unreachable!("not a row loss"),
                    }
                }
                _ => unreachable!("validated by plan"),
            }
        })
        .collect()
}
