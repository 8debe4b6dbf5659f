//! CPU twin of `shaders/pairs.wgsl`: cosine_embedding and triplet_margin over
//! rows of `(N, D)`.

use crate::inputs::{Inputs, PairsPlan, Target};
use crate::loss::Loss;

/// CosineEmbeddingLoss's own cosine: 1e-12 is added to each squared norm.
/// Sums beyond the f32 range become infinite, as they do in the reference's
/// f32 arithmetic (x = 1e20 gives NaN there, not 1).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let f32_range = |s: f64| {
        if s.abs() > f32::MAX as f64 {
            s.signum() * f64::INFINITY
        } else {
            s
        }
    };
    let dot = f32_range(a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum());
    let m1 = f32_range(a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>()) + 1e-12;
    let m2 = f32_range(b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>()) + 1e-12;
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

/// ‖a − b + eps‖_p, eps added to the difference as in `pairwise_distance`.
pub fn distance(a: &[f32], b: &[f32], p: f64, eps: f64) -> f64 {
    let v = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64 + eps).abs());
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

/// (loss, 1) per row.
pub fn items(loss: &Loss, inputs: &Inputs<'_>, plan: &PairsPlan) -> Vec<(f64, f64)> {
    let d = plan.dim;
    let row = |t: &[f32], r: usize| -> Vec<f32> { t[r * d..(r + 1) * d].to_vec() };
    (0..plan.rows)
        .map(|r| {
            let a = row(inputs.input.data, r);
            let l = match loss {
                Loss::CosineEmbedding { margin } => {
                    let Some(Target::Float(b)) = inputs.target else {
                        unreachable!("validated by plan")
                    };
                    let label = inputs.labels.map_or(1.0, |l| l.data[r] as f64);
                    cosine_embedding(&a, &row(b.data, r), label, *margin as f64)
                }
                Loss::TripletMargin {
                    margin,
                    p,
                    eps,
                    swap,
                } => {
                    let pos = row(inputs.positive.expect("validated").data, r);
                    let neg = row(inputs.negative.expect("validated").data, r);
                    triplet_margin(
                        &a,
                        &pos,
                        &neg,
                        *margin as f64,
                        *p as f64,
                        *eps as f64,
                        *swap,
                    )
                }
                _ => unreachable!("not a pair loss"),
            };
            (l, 1.0)
        })
        .collect()
}
