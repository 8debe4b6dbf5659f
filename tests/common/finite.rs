//! The float64 CPU gradients (`cpu::gradient`) against central finite
//! differences of the CPU forward, and the exact-value checks of PyTorch
//! autograd's conventions, for the loss modules' gradient tests.
//!
//! The forward reads f32 tensors, so the differences perturb f32 values:
//! data lie on a 2^-18 grid below 16 in magnitude, where x ± h and x ± 2h
//! (h = 2^-12) are exact, and the five-point stencil's error (h^4) is far
//! below the 1e-6 tolerance. Points stay at least `GAP` away from kinks.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use wgpu_loss::{cpu, Inputs, Loss, Pairs, Pointwise, Reduction, Tensor, TensorName, Upstream};

use super::{rng, ByName};

pub const H: f64 = 1.0 / 4096.0;
/// How far points stay from kinks and hinges.
pub const GAP: f64 = 0.05;

/// The owned tensors of one call.
#[derive(Clone)]
pub struct Case {
    pub loss: Loss,
    floats: Vec<(&'static str, Vec<f32>, Vec<usize>)>,
    classes: Option<(Vec<i64>, Vec<usize>)>,
}

impl Case {
    pub fn new(loss: Loss) -> Self {
        Case {
            loss,
            floats: vec![],
            classes: None,
        }
    }

    /// A 1-D input and target of an elementwise loss.
    pub fn flat(loss: Loss, x: &[f32], y: &[f32]) -> Self {
        Case::new(loss)
            .with("input", x.to_vec(), &[x.len()])
            .with("target", y.to_vec(), &[y.len()])
    }

    pub fn with(mut self, name: &'static str, data: Vec<f32>, shape: &[usize]) -> Self {
        self.floats.push((name, data, shape.to_vec()));
        self
    }

    pub fn classes(mut self, data: Vec<i64>, shape: &[usize]) -> Self {
        self.classes = Some((data, shape.to_vec()));
        self
    }

    pub fn get(&self, name: &str) -> Option<Tensor<'_>> {
        self.floats
            .iter()
            .find(|t| t.0 == name)
            .map(|t| Tensor::new(&t.1, &t.2))
    }

    pub fn data_mut(&mut self, name: &str) -> &mut Vec<f32> {
        &mut self.floats.iter_mut().find(|t| t.0 == name).unwrap().1
    }

    pub fn inputs(&self) -> Inputs<'_> {
        let mut inputs = Inputs::new(self.get("input").expect("an input"));
        match &self.classes {
            Some((data, shape)) => inputs = inputs.classes(data, shape),
            None => inputs.target = self.get("target").map(wgpu_loss::Target::Float),
        }
        for name in TensorName::ALL {
            if name == TensorName::Input || name == TensorName::Target {
                continue;
            }
            if let Some(t) = self.get(name.name()) {
                inputs = inputs.with(name, t);
            }
        }
        inputs
    }

    /// The tensors with a gradient, and where `Gradients` keeps it.
    pub fn differentiable(&self) -> Vec<&'static str> {
        match self.loss {
            Loss::Pairs(Pairs::CosineEmbedding { .. }) => vec!["input", "target"],
            Loss::Pairs(Pairs::TripletMargin { .. }) => vec!["input", "positive", "negative"],
            _ => vec!["input"],
        }
    }
}

/// On the 2^-18 grid.
pub fn grid(v: f64) -> f32 {
    assert!(v.abs() < 15.0, "{v} is off the finite-difference grid");
    ((v * 262_144.0).round() / 262_144.0) as f32
}

/// A value in [lo, hi), off the grid.
pub fn draw(r: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    r.random_range(lo..hi)
}

/// `n` grid values in [lo, hi).
pub fn vals(r: &mut ChaCha8Rng, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    (0..n).map(|_| grid(draw(r, lo, hi))).collect()
}

/// A grid value in [lo, hi) for which `ok` holds.
pub fn draw_ok(r: &mut ChaCha8Rng, lo: f64, hi: f64, ok: impl Fn(f64) -> bool) -> f32 {
    loop {
        let v = grid(draw(r, lo, hi));
        if ok(v as f64) {
            return v;
        }
    }
}

/// `y` plus an offset d in ±[lo, hi) with `ok(|d|)`: predictions away from kinks.
pub fn offset(
    r: &mut ChaCha8Rng,
    y: &[f32],
    lo: f64,
    hi: f64,
    ok: impl Fn(f64) -> bool,
) -> Vec<f32> {
    y.iter()
        .map(|y| loop {
            let d = draw(r, lo, hi) * if r.random_bool(0.5) { 1.0 } else { -1.0 };
            let x = grid(*y as f64 + d);
            let d = (x as f64 - *y as f64).abs();
            if d >= lo && ok(d) {
                break x;
            }
        })
        .collect()
}

/// The scalar that `upstream` is the gradient of: g·value, or Σ u_i·item_i.
pub fn objective(case: &Case, reduction: Reduction, upstream: Upstream<'_>) -> (f64, f64) {
    let r = cpu::evaluate(&case.loss, reduction, &case.inputs()).unwrap();
    match upstream {
        Upstream::Scalar(g) => (g as f64 * r.value, r.items.iter().map(|v| v.abs()).sum()),
        Upstream::Items(u) => {
            let terms = u.iter().zip(&r.items).map(|(u, l)| *u as f64 * l);
            (terms.clone().sum(), terms.map(f64::abs).sum())
        }
    }
}

/// Checks every gradient component against the five-point central difference
/// of the forward; returns the number of components checked.
pub fn check_fd(what: &str, case: &Case, reduction: Reduction, upstream: Upstream<'_>) -> usize {
    let inputs = case.inputs();
    let (reference, grads) = cpu::gradient(&case.loss, reduction, &inputs, upstream)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let forward = cpu::evaluate(&case.loss, reduction, &inputs).unwrap();
    assert_eq!(reference, forward, "{what}: gradient's forward");
    assert!(
        reference.value.is_finite(),
        "{what}: value {}",
        reference.value
    );
    let (_, scale) = objective(case, reduction, upstream);
    let mut checked = 0;
    for name in case.differentiable() {
        let analytic = grads
            .named(name)
            .unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
        let len = case.get(name).unwrap().data.len();
        assert_eq!(analytic.len(), len, "{what}: d/d{name} length");
        for (j, a) in analytic.iter().enumerate() {
            let f = |step: f64| {
                let mut c = case.clone();
                let v = c.data_mut(name)[j] as f64 + step;
                assert_eq!(v as f32 as f64, v, "{what}: step off the grid");
                c.data_mut(name)[j] = v as f32;
                objective(&c, reduction, upstream).0
            };
            let fd = (8.0 * (f(H) - f(-H)) - (f(2.0 * H) - f(-2.0 * H))) / (12.0 * H);
            assert!(
                (*a - fd).abs() <= 1e-6 * fd.abs() + 1e-10 * (1.0 + scale),
                "{what}: d/d{name}[{j}] = {a}, finite difference {fd}"
            );
            checked += 1;
        }
    }
    checked
}

/// Every reduction the loss has, each with its own upstream: per-item
/// values for `none`, a scalar for the others.
pub fn check_all(what: &str, case: &Case, seed: u64) -> usize {
    let mut r = rng(seed);
    let items = cpu::evaluate(&case.loss, Reduction::None, &case.inputs())
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .items
        .len();
    let per_item = vals(&mut r, items, 0.25, 1.75);
    let mut reductions = vec![
        (Reduction::None, Upstream::Items(&per_item)),
        (Reduction::None, Upstream::Scalar(1.5)),
        (Reduction::Mean, Upstream::Scalar(0.75)),
        (Reduction::Sum, Upstream::Scalar(-1.25)),
    ];
    if matches!(case.loss, Loss::Pointwise(Pointwise::KlDiv { .. })) {
        reductions.push((Reduction::BatchMean, Upstream::Scalar(2.0)));
    }
    reductions
        .into_iter()
        .map(|(red, up)| check_fd(&format!("{what} {}", red.name()), case, red, up))
        .sum()
}

/// The twin's result and gradients at an upstream of 1.
pub fn grad(case: &Case, reduction: Reduction) -> (cpu::Reference, cpu::ReferenceGradients) {
    cpu::gradient(&case.loss, reduction, &case.inputs(), Upstream::Scalar(1.0)).unwrap()
}

/// Float64 gradients equal to float64 truth up to rounding; NaN where it is NaN.
pub fn assert_vec(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else {
            (g - w).abs() <= 1e-12 * w.abs() + 1e-15
        };
        assert!(ok, "{what}[{k}]: {g} vs {w}");
    }
}
