//! Data for the elementwise losses, shared by their forward and gradient tests.

use rand::Rng;
use wgpu_loss::Loss;
use wgpu_loss::Pointwise;

use super::{rng, uniform};

/// (input, target) drawn for the loss's domain.
pub fn data(loss: &Loss, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = rng(seed);
    match loss {
        Loss::Pointwise(Pointwise::Bce) => {
            let mut x = uniform(&mut r, n, 0.0, 1.0);
            let y: Vec<f32> = (0..n)
                .map(|i| {
                    if i % 3 == 0 {
                        r.random_range(0.0..1.0)
                    } else {
                        (i % 2) as f32
                    }
                })
                .collect();
            // Exact 0 and 1 probabilities exercise the −100 clamp.
            for i in (0..n).step_by(97) {
                x[i] = (i % 2) as f32;
            }
            (x, y)
        }
        Loss::Pointwise(Pointwise::BceWithLogits)
        | Loss::Pointwise(Pointwise::SigmoidFocal { .. }) => {
            let mut x = uniform(&mut r, n, -12.0, 12.0);
            for i in (0..n).step_by(89) {
                x[i] = if i % 2 == 0 { 100.0 } else { -100.0 };
            }
            let y: Vec<f32> = (0..n)
                .map(|i| {
                    if i % 5 == 0 {
                        r.random_range(0.0..1.0)
                    } else {
                        (i % 2) as f32
                    }
                })
                .collect();
            (x, y)
        }
        Loss::Pointwise(Pointwise::KlDiv { log_target }) => {
            // Rows of 7 log-probabilities against rows of probabilities (some exactly 0).
            let mut x = uniform(&mut r, n, -3.0, 3.0);
            let mut y = uniform(&mut r, n, -3.0, 3.0);
            for row in (0..n).step_by(7) {
                let end = (row + 7).min(n);
                let lse = |v: &[f32]| v.iter().map(|a| (*a as f64).exp()).sum::<f64>().ln() as f32;
                let (lx, ly) = (lse(&x[row..end]), lse(&y[row..end]));
                for i in row..end {
                    x[i] -= lx;
                    y[i] -= ly;
                    if !log_target {
                        y[i] = if i % 11 == 0 { 0.0 } else { y[i].exp() };
                    }
                }
            }
            (x, y)
        }
        _ => {
            let x = uniform(&mut r, n, -4.0, 4.0);
            // A mix of large and tiny errors: log_cosh's series and the Huber
            // branches both get exercised.
            let y: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    if i % 4 == 0 {
                        v + r.random_range(-1e-3..1e-3)
                    } else {
                        r.random_range(-4.0..4.0)
                    }
                })
                .collect();
            (x, y)
        }
    }
}

pub fn losses() -> Vec<Loss> {
    vec![
        Loss::Pointwise(Pointwise::Mse),
        Loss::Pointwise(Pointwise::L1),
        Loss::Pointwise(Pointwise::Huber { delta: 1.0 }),
        Loss::Pointwise(Pointwise::Huber { delta: 0.3 }),
        Loss::Pointwise(Pointwise::SmoothL1 { beta: 1.0 }),
        Loss::Pointwise(Pointwise::SmoothL1 { beta: 0.0 }),
        Loss::Pointwise(Pointwise::LogCosh),
        Loss::Pointwise(Pointwise::Quantile { quantiles: None }),
        Loss::Pointwise(Pointwise::Bce),
        Loss::Pointwise(Pointwise::BceWithLogits),
        Loss::Pointwise(Pointwise::SigmoidFocal {
            alpha: 0.25,
            gamma: 2.0,
        }),
        Loss::Pointwise(Pointwise::SigmoidFocal {
            alpha: -1.0,
            gamma: 0.5,
        }),
        Loss::Pointwise(Pointwise::KlDiv { log_target: false }),
        Loss::Pointwise(Pointwise::KlDiv { log_target: true }),
    ]
}
