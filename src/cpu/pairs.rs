//! CPU twin of `shaders/pairs.wgsl`: cosine_embedding and triplet_margin over
//! rows of `(N, D)`.

use std::borrow::Cow;

use crate::inputs::{Floats, Inputs, PairsPlan, Target};
use crate::loss::Pairs;

use super::pointwise::sign;
use super::reference::ReferenceGradients;

/// PyTorch's `EPSILON` added to each squared norm: a float constant.
pub const COSINE_EPSILON: f64 = 1e-12_f32 as f64;

/// (x1·x2, ‖x1‖² + ε, ‖x2‖² + ε). Sums beyond the f32 range become infinite,
/// as they do in the reference's f32 arithmetic (x = 1e20 gives NaN there, not 1).
fn cosine_sums(a: &[f32], b: &[f32]) -> (f64, f64, f64) {
    let f32_range = |s: f64| {
        if s.abs() > f32::MAX as f64 {
            s.signum() * f64::INFINITY
        } else {
            s
        }
    };
    let dot = f32_range(a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum());
    let m1 = f32_range(a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>()) + COSINE_EPSILON;
    let m2 = f32_range(b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>()) + COSINE_EPSILON;
    (dot, m1, m2)
}

/// CosineEmbeddingLoss's own cosine: 1e-12 is added to each squared norm.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (dot, m1, m2) = cosine_sums(a, b);
    dot / (m1.sqrt() * m2.sqrt())
}

pub fn cosine_embedding(a: &[f32], b: &[f32], label: f64, margin: f64) -> f64 {
    let cos = cosine(a, b);
    if label == 1.0 {
        1.0 - cos
    } else if label == -1.0 {
        let v = cos - margin;
        if v < 0.0 {
            0.0
        } else {
            v
        }
    } else {
        0.0
    }
}

/// (d/dx1, d/dx2) of one pair's loss times `g`. The hinge of dissimilar pairs
/// passes no gradient at exactly cos = margin; labels other than ±1 none.
pub fn cosine_embedding_grad(
    a: &[f32],
    b: &[f32],
    label: f64,
    margin: f64,
    g: f64,
) -> (Vec<f64>, Vec<f64>) {
    let (dot, m1, m2) = cosine_sums(a, b);
    let den = m1.sqrt() * m2.sqrt();
    let cos = dot / den;
    let dl = if label == 1.0 {
        -g
    } else if label == -1.0 && cos - margin > 0.0 {
        g
    } else {
        0.0
    };
    // ∂cos/∂x1 = x2/√(m1 m2) − cos·x1/m1, and symmetrically for x2.
    let ga = a
        .iter()
        .zip(b)
        .map(|(x, y)| dl * (*y as f64 / den - cos * *x as f64 / m1))
        .collect();
    let gb = a
        .iter()
        .zip(b)
        .map(|(x, y)| dl * (*x as f64 / den - cos * *y as f64 / m2))
        .collect();
    (ga, gb)
}

/// a − b + eps, eps added to the difference as in `pairwise_distance`.
fn difference(a: &[f32], b: &[f32], eps: f64) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(x, y)| *x as f64 - *y as f64 + eps)
        .collect()
}

fn norm(v: &[f64], p: f64) -> f64 {
    let v = v.iter().map(|d| d.abs());
    if p.is_infinite() {
        // NaN-propagating, as torch's max norm.
        v.fold(0.0, |m, d| if d.is_nan() || d > m { d } else { m })
    } else if p == 1.0 {
        v.sum()
    } else if p == 2.0 {
        v.map(|d| d * d).sum::<f64>().sqrt()
    } else {
        v.map(|d| d.powf(p)).sum::<f64>().powf(1.0 / p)
    }
}

/// ∇‖v‖_p as torch's `norm_backward`: sign(v)·|v|^(p−1)/‖v‖^(p−1); 0 at the
/// zero vector, and for p < 1 also at zero components; p = inf splits the
/// gradient evenly among the components of largest magnitude.
fn norm_grad(v: &[f64], norm: f64, p: f64) -> Vec<f64> {
    if p.is_infinite() {
        let at_max = |d: f64| d.abs() == norm || d.is_nan();
        let count = v.iter().filter(|d| at_max(**d)).count() as f64;
        return v
            .iter()
            .map(|d| if at_max(*d) { sign(*d) / count } else { 0.0 })
            .collect();
    }
    if p == 1.0 {
        return v.iter().map(|d| sign(*d)).collect();
    }
    if norm == 0.0 {
        return vec![0.0; v.len()];
    }
    if p == 2.0 {
        return v.iter().map(|d| d / norm).collect();
    }
    let scale = norm.powf(p - 1.0);
    v.iter()
        .map(|d| {
            if *d == 0.0 {
                0.0
            } else {
                sign(*d) * d.abs().powf(p - 1.0) / scale
            }
        })
        .collect()
}

/// ‖a − b + eps‖_p.
pub fn distance(a: &[f32], b: &[f32], p: f64, eps: f64) -> f64 {
    norm(&difference(a, b, eps), p)
}

pub fn triplet_margin(
    a: &[f32],
    pos: &[f32],
    neg: &[f32],
    margin: f64,
    p: f64,
    eps: f64,
    swap: bool,
) -> f64 {
    let d_ap = distance(a, pos, p, eps);
    let mut d_an = distance(a, neg, p, eps);
    if swap {
        // torch.min propagates NaN; f64::min would drop it.
        let d_pn = distance(pos, neg, p, eps);
        if d_pn.is_nan() || d_pn < d_an {
            d_an = d_pn;
        }
    }
    let v = margin + d_ap - d_an;
    if v < 0.0 {
        0.0
    } else {
        v
    }
}

/// (d/da, d/dpos, d/dneg) of one triplet's loss times `g`. No gradient where
/// the hinge is at or below 0; with swap, torch.min gives the negative
/// distance's gradient to the smaller of d(a, n) and d(p, n), half to each
/// at a tie.
#[allow(clippy::too_many_arguments)]
pub fn triplet_margin_grad(
    a: &[f32],
    pos: &[f32],
    neg: &[f32],
    margin: f64,
    p: f64,
    eps: f64,
    swap: bool,
    g: f64,
) -> [Vec<f64>; 3] {
    let dim = a.len();
    let v_ap = difference(a, pos, eps);
    let v_an = difference(a, neg, eps);
    let v_pn = difference(pos, neg, eps);
    let (d_ap, d_an) = (norm(&v_ap, p), norm(&v_an, p));
    // Shares of the negative distance's gradient: (a, n) and (p, n).
    let (mut w_an, mut w_pn, mut d_neg) = (1.0, 0.0, d_an);
    if swap {
        let d_pn = norm(&v_pn, p);
        if d_pn.is_nan() || d_pn < d_an {
            (w_an, w_pn, d_neg) = (0.0, 1.0, d_pn);
        } else if d_pn == d_an {
            (w_an, w_pn) = (0.5, 0.5);
        }
    }
    // clamp_min passes no gradient at or below 0 (nor at NaN), but autograd
    // still multiplies that 0 into every distance's backward: 0 · NaN = NaN.
    let hinge = margin + d_ap - d_neg;
    let g = if hinge > 0.0 { g } else { 0.0 };
    let n_ap = norm_grad(&v_ap, d_ap, p);
    let n_an = norm_grad(&v_an, d_an, p);
    let n_pn = if swap {
        norm_grad(&v_pn, norm(&v_pn, p), p)
    } else {
        vec![0.0; dim]
    };
    let ga = (0..dim).map(|k| g * (n_ap[k] - w_an * n_an[k])).collect();
    let gp = (0..dim).map(|k| g * (-n_ap[k] - w_pn * n_pn[k])).collect();
    let gn = (0..dim)
        .map(|k| g * (w_an * n_an[k] + w_pn * n_pn[k]))
        .collect();
    [ga, gp, gn]
}

fn row(t: Floats<'_>, d: usize, r: usize) -> Cow<'_, [f32]> {
    t.slice(r * d..(r + 1) * d).to_f32()
}

/// (loss, 1) per row.
pub fn items(inputs: &Inputs<'_>, plan: &PairsPlan) -> Vec<(f64, f64)> {
    let loss = &plan.loss;
    let d = plan.dim;
    (0..plan.rows)
        .map(|r| {
            let a = &row(inputs.input.data, d, r);
            let l = match loss {
                Pairs::CosineEmbedding { margin } => {
                    let Some(Target::Float(b)) = inputs.target else {
                        unreachable!("validated by plan")
                    };
                    let label = inputs.labels.map_or(1.0, |l| l.data.get(r) as f64);
                    cosine_embedding(a, &row(b.data, d, r), label, *margin as f64)
                }
                Pairs::TripletMargin {
                    margin,
                    p,
                    eps,
                    swap,
                } => {
                    let pos = &row(inputs.positive.expect("validated").data, d, r);
                    let neg = &row(inputs.negative.expect("validated").data, d, r);
                    triplet_margin(a, pos, neg, *margin as f64, *p as f64, *eps as f64, *swap)
                }
            };
            (l, 1.0)
        })
        .collect()
}

/// The gradients of every row's loss times its upstream `g[r]` (already
/// scaled by the reduction): input and target for cosine_embedding; input
/// (anchor), positive and negative for triplet_margin.
pub fn gradient(inputs: &Inputs<'_>, plan: &PairsPlan, g: &[f64]) -> ReferenceGradients {
    let loss = &plan.loss;
    let d = plan.dim;
    let len = plan.rows * d;
    let (mut first, mut second, mut third) = (
        Vec::with_capacity(len),
        Vec::with_capacity(len),
        Vec::with_capacity(len),
    );
    for (r, gr) in g.iter().enumerate() {
        let a = &row(inputs.input.data, d, r);
        match loss {
            Pairs::CosineEmbedding { margin } => {
                let Some(Target::Float(b)) = inputs.target else {
                    unreachable!("validated by plan")
                };
                let label = inputs.labels.map_or(1.0, |l| l.data.get(r) as f64);
                let (ga, gb) =
                    cosine_embedding_grad(a, &row(b.data, d, r), label, *margin as f64, *gr);
                first.extend(ga);
                second.extend(gb);
            }
            Pairs::TripletMargin {
                margin,
                p,
                eps,
                swap,
            } => {
                let pos = &row(inputs.positive.expect("validated").data, d, r);
                let neg = &row(inputs.negative.expect("validated").data, d, r);
                let [ga, gp, gn] = triplet_margin_grad(
                    a,
                    pos,
                    neg,
                    *margin as f64,
                    *p as f64,
                    *eps as f64,
                    *swap,
                    *gr,
                );
                first.extend(ga);
                second.extend(gp);
                third.extend(gn);
            }
        }
    }
    match loss {
        Pairs::CosineEmbedding { .. } => ReferenceGradients {
            input: first,
            target: Some(second),
            positive: None,
            negative: None,
        },
        Pairs::TripletMargin { .. } => ReferenceGradients {
            input: first,
            target: None,
            positive: Some(second),
            negative: Some(third),
        },
    }
}
