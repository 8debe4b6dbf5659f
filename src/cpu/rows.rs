//! CPU twin of `shaders/rows.wgsl`: cross_entropy, nll and softmax_focal over
//! input `(N, C, d1..dK)`, one row per (n, d1..dK).

use crate::inputs::{Inputs, RowsPlan, Target};
use crate::loss::Rows;

/// The logits of row `r`, gathered across the class stride.
pub fn row(inputs: &Inputs<'_>, plan: &RowsPlan, r: usize) -> Vec<f64> {
    let (n, s) = (r / plan.inner, r % plan.inner);
    (0..plan.classes)
        .map(|c| {
            inputs
                .input
                .data
                .get((n * plan.classes + c) * plan.inner + s) as f64
        })
        .collect()
}

pub fn log_softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    x.iter().map(|v| v - lse).collect()
}

/// (loss, denominator contribution) per row.
pub fn items(inputs: &Inputs<'_>, plan: &RowsPlan) -> Vec<(f64, f64)> {
    let loss = &plan.loss;
    let c = plan.classes;
    let w = |k: usize| inputs.weight.map_or(1.0, |w| w.data.get(k) as f64);
    (0..plan.rows)
        .map(|r| {
            let x = row(inputs, plan, r);
            match (loss, inputs.target) {
                (
                    Rows::CrossEntropy {
                        label_smoothing, ..
                    },
                    Some(Target::Float(t)),
                ) => {
                    let eps = *label_smoothing as f64;
                    let logp = log_softmax(&x);
                    let (n, s) = (r / plan.inner, r % plan.inner);
                    let l = (0..c)
                        .map(|k| {
                            let tk = t.data.get((n * c + k) * plan.inner + s) as f64;
                            let tk = tk * (1.0 - eps) + eps / c as f64;
                            -w(k) * tk * logp[k]
                        })
                        .sum();
                    (l, 1.0)
                }
                (_, Some(Target::Class { data, .. })) => {
                    let y = data[r];
                    let ignore = match loss {
                        Rows::CrossEntropy { ignore_index, .. }
                        | Rows::Nll { ignore_index }
                        | Rows::SoftmaxFocal { ignore_index, .. } => *ignore_index,
                    };
                    if y == ignore {
                        return (0.0, 0.0);
                    }
                    let y = y as usize;
                    let wy = w(y);
                    match loss {
                        Rows::Nll { .. } => (-wy * x[y], wy),
                        Rows::CrossEntropy {
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
                        Rows::SoftmaxFocal { gamma, .. } => {
                            let logp_t = log_softmax(&x)[y];
                            let u = -logp_t.exp_m1();
                            (wy * u.powf(*gamma as f64) * -logp_t, wy)
                        }
                    }
                }
                _ => unreachable!("validated by plan"),
            }
        })
        .collect()
}

/// log_softmax's backward: grad_logp − softmax · Σ grad_logp.
fn log_softmax_grad(logp: &[f64], grad_logp: &[f64]) -> Vec<f64> {
    let total: f64 = grad_logp.iter().sum();
    logp.iter()
        .zip(grad_logp)
        .map(|(lp, g)| g - lp.exp() * total)
        .collect()
}

/// d/d(logits) of every row's loss times its upstream `g[r]` (already scaled
/// by the reduction), scattered back into the input's layout. Ignored rows
/// get 0 (NaN where their softmax is NaN, autograd's 0 · NaN). The backward goes through d/d(log-probabilities) as autograd's
/// does, so that a zero total weight (g = inf) meets the weights and gives
/// NaN where PyTorch does.
pub fn gradient(inputs: &Inputs<'_>, plan: &RowsPlan, g: &[f64]) -> Vec<f64> {
    let loss = &plan.loss;
    let c = plan.classes;
    let w = |k: usize| inputs.weight.map_or(1.0, |w| w.data.get(k) as f64);
    let mut out = vec![0.0; inputs.input.data.len()];
    for r in 0..plan.rows {
        let (n, s) = (r / plan.inner, r % plan.inner);
        let at = |k: usize| (n * c + k) * plan.inner + s;
        let x = row(inputs, plan, r);
        let gr = g[r];
        let mut grad_logp = vec![0.0; c];
        match (loss, inputs.target) {
            (
                Rows::CrossEntropy {
                    label_smoothing, ..
                },
                Some(Target::Float(t)),
            ) => {
                let eps = *label_smoothing as f64;
                for (k, gl) in grad_logp.iter_mut().enumerate() {
                    let tk = t.data.get(at(k)) as f64;
                    let tk = tk * (1.0 - eps) + eps / c as f64;
                    *gl = -gr * w(k) * tk;
                }
            }
            (_, Some(Target::Class { data, .. })) => {
                let y = data[r];
                let ignore = match loss {
                    Rows::CrossEntropy { ignore_index, .. }
                    | Rows::Nll { ignore_index }
                    | Rows::SoftmaxFocal { ignore_index, .. } => *ignore_index,
                };
                // An ignored row's zero gradient still meets its softmax, as in
                // autograd: 0 · NaN where the row's softmax is NaN.
                if y == ignore {
                    if matches!(loss, Rows::Nll { .. }) {
                        continue;
                    }
                } else {
                    let y = y as usize;
                    match loss {
                        Rows::Nll { .. } => {
                            out[at(y)] = -w(y) * gr;
                            continue;
                        }
                        Rows::CrossEntropy {
                            label_smoothing, ..
                        } => {
                            let eps = *label_smoothing as f64;
                            grad_logp[y] = -w(y) * ((1.0 - eps) * gr);
                            if eps > 0.0 {
                                let smooth = gr * (eps / c as f64);
                                for (k, gl) in grad_logp.iter_mut().enumerate() {
                                    *gl -= w(k) * smooth;
                                }
                            }
                        }
                        Rows::SoftmaxFocal { gamma, .. } => {
                            // l = w[y]·u^γ·(−log p_t), u = 1 − p_t; pow's backward
                            // is 0 at γ = 0.
                            let gamma = *gamma as f64;
                            let logp_t = log_softmax(&x)[y];
                            let u = -logp_t.exp_m1();
                            let dfocal = if gamma == 0.0 {
                                0.0
                            } else {
                                gamma * u.powf(gamma - 1.0)
                            };
                            let dl = if gamma == 0.0 {
                                -1.0
                            } else {
                                -u.powf(gamma) + dfocal * logp_t.exp() * logp_t
                            };
                            grad_logp[y] = gr * w(y) * dl;
                        }
                    }
                }
            }
            _ => unreachable!("validated by plan"),
        }
        let gz = log_softmax_grad(&log_softmax(&x), &grad_logp);
        for (k, v) in gz.into_iter().enumerate() {
            out[at(k)] = v;
        }
    }
    out
}
