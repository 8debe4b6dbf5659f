//! Data for the elementwise losses, shared by their forward and gradient tests.

use rand::Rng;
use wgpu_loss::{Inputs, Loss, Pointwise, Tensor};

use super::{rng, uniform};

/// Seeded data of `n` elements for an elementwise loss: input and target in
/// the loss's domain and, for gaussian_nll, a variance of the input's shape.
pub struct Points {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub var: Option<Vec<f32>>,
    shape: [usize; 1],
}

impl Points {
    pub fn new(loss: &Loss, n: usize, seed: u64) -> Self {
        let (x, y) = data(loss, n, seed);
        let gaussian = matches!(loss, Loss::Pointwise(Pointwise::GaussianNll { .. }));
        Points {
            x,
            y,
            var: gaussian.then(|| variance(n, seed)),
            shape: [n],
        }
    }

    pub fn inputs(&self) -> Inputs<'_> {
        let inputs = Inputs::new(Tensor::new(&self.x, &self.shape))
            .target(Tensor::new(&self.y, &self.shape));
        match &self.var {
            Some(v) => inputs.var(Tensor::new(v, &self.shape)),
            None => inputs,
        }
    }
}

/// Variances of gaussian_nll: some 0 and some below eps (the clamp decides),
/// some exactly its default eps, a few huge, the rest of the order of 1.
pub fn variance(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed.wrapping_add(1 << 32));
    (0..n)
        .map(|i| match i % 11 {
            0 => 0.0,
            1 => 1e-8,
            2 => 1e-6,
            3 if i % 3 == 0 => 1e30,
            _ => r.random_range(0.05..4.0),
        })
        .collect()
}

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
        Loss::Pointwise(Pointwise::PoissonNll { log_input, .. }) => {
            // Counts: zeros, small ones, large ones, and fractional ones at
            // most 1 and above (`full` adds its Stirling term above 1 only).
            let y: Vec<f32> = (0..n)
                .map(|i| match i % 7 {
                    0 => 0.0,
                    1 => r.random_range(0.0..1.0),
                    2 => r.random_range(20..200) as f32,
                    3 => r.random_range(1.0..4.0),
                    _ => r.random_range(0..6) as f32,
                })
                .collect();
            // Rates below 1 and log rates below 0 against the counts, where
            // the loss adds its terms: where they cancel f32 keeps them to a
            // few ulps (see `poisson_nll_near_its_optimum` and
            // `poisson_nll_where_x_plus_eps_rounds`). Up to 6 and e^4 against
            // no count.
            let top = |y: f32, top: f32| if y == 0.0 { top } else { 0.0 };
            let mut x: Vec<f32> = if *log_input {
                y.iter()
                    .map(|y| r.random_range(-4.0..top(*y, 4.0)))
                    .collect()
            } else {
                y.iter()
                    .map(|y| r.random_range(0.0..1.0 + top(*y, 5.0)))
                    .collect()
            };
            if *log_input {
                // Some far out.
                for i in (0..n).step_by(97) {
                    x[i] = if i % 2 == 0 { 20.0 } else { -20.0 };
                }
            } else {
                // Some exactly 0 or below eps: there the log reads eps.
                for i in (0..n).step_by(13) {
                    x[i] = if i % 2 == 0 { 0.0 } else { 1e-9 };
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

/// Every elementwise loss of the catalog with its defaults, and other
/// parameters where they take other branches of the kernel.
pub fn losses() -> Vec<Loss> {
    let defaults = Loss::names()
        .filter_map(Loss::from_name)
        .filter(|l| matches!(l, Loss::Pointwise(_)));
    let others = [
        Pointwise::Huber { delta: 0.3 },
        Pointwise::SmoothL1 { beta: 0.0 },
        Pointwise::SigmoidFocal {
            alpha: -1.0,
            gamma: 0.5,
        },
        Pointwise::KlDiv { log_target: true },
        Pointwise::PoissonNll {
            log_input: false,
            full: false,
            eps: 1e-8,
        },
        Pointwise::PoissonNll {
            log_input: true,
            full: true,
            eps: 1e-8,
        },
        Pointwise::GaussianNll {
            full: true,
            eps: 1e-6,
        },
    ];
    defaults.chain(others.map(Loss::Pointwise)).collect()
}
