//! The float64 CPU gradients (`cpu::gradient`) against central finite
//! differences of the CPU forward, for every loss, reduction and parameter,
//! and PyTorch autograd's conventions where the loss has a kink.
//!
//! The forward reads f32 tensors, so the differences perturb f32 values:
//! data lie on a 2^-18 grid below 16 in magnitude, where x ± h and x ± 2h
//! (h = 2^-12) are exact, and the five-point stencil's error (h^4) is far
//! below the 1e-6 tolerance. Points stay at least 0.05 away from kinks.

use crate::common::rng;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use wgpu_loss::{cpu, DiceMode, Error, Inputs, Loss, Reduction, Tensor, Upstream};
use wgpu_loss::{Dice, Pairs, Pointwise, Rows};

const H: f64 = 1.0 / 4096.0;
const GAP: f64 = 0.05;

/// The owned tensors of one call.
#[derive(Clone)]
struct Case {
    loss: Loss,
    floats: Vec<(&'static str, Vec<f32>, Vec<usize>)>,
    classes: Option<(Vec<i64>, Vec<usize>)>,
}

impl Case {
    fn new(loss: Loss) -> Self {
        Case {
            loss,
            floats: vec![],
            classes: None,
        }
    }

    fn with(mut self, name: &'static str, data: Vec<f32>, shape: &[usize]) -> Self {
        self.floats.push((name, data, shape.to_vec()));
        self
    }

    fn classes(mut self, data: Vec<i64>, shape: &[usize]) -> Self {
        self.classes = Some((data, shape.to_vec()));
        self
    }

    fn get(&self, name: &str) -> Option<Tensor<'_>> {
        self.floats
            .iter()
            .find(|t| t.0 == name)
            .map(|t| Tensor::new(&t.1, &t.2))
    }

    fn data_mut(&mut self, name: &str) -> &mut Vec<f32> {
        &mut self.floats.iter_mut().find(|t| t.0 == name).unwrap().1
    }

    fn inputs(&self) -> Inputs<'_> {
        let mut inputs = Inputs::new(self.get("input").expect("an input"));
        match &self.classes {
            Some((data, shape)) => inputs = inputs.classes(data, shape),
            None => inputs.target = self.get("target").map(wgpu_loss::Target::Float),
        }
        inputs.weight = self.get("weight");
        inputs.pos_weight = self.get("pos_weight");
        inputs.labels = self.get("labels");
        inputs.positive = self.get("positive");
        inputs.negative = self.get("negative");
        inputs
    }

    /// The tensors with a gradient, and where `Gradients` keeps it.
    fn differentiable(&self) -> Vec<&'static str> {
        match self.loss {
            Loss::Pairs(Pairs::CosineEmbedding { .. }) => vec!["input", "target"],
            Loss::Pairs(Pairs::TripletMargin { .. }) => vec!["input", "positive", "negative"],
            _ => vec!["input"],
        }
    }
}

fn pick(g: &cpu::ReferenceGradients, name: &str) -> Vec<f64> {
    match name {
        "input" => Some(g.input.clone()),
        "target" => g.target.clone(),
        "positive" => g.positive.clone(),
        "negative" => g.negative.clone(),
        _ => None,
    }
    .unwrap_or_else(|| panic!("no gradient for {name}"))
}

/// On the 2^-18 grid.
fn grid(v: f64) -> f32 {
    assert!(v.abs() < 15.0, "{v} is off the finite-difference grid");
    ((v * 262_144.0).round() / 262_144.0) as f32
}

fn draw(r: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    r.random_range(lo..hi)
}

/// `n` grid values in [lo, hi).
fn vals(r: &mut ChaCha8Rng, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    (0..n).map(|_| grid(draw(r, lo, hi))).collect()
}

/// A grid value in [lo, hi) for which `ok` holds.
fn draw_ok(r: &mut ChaCha8Rng, lo: f64, hi: f64, ok: impl Fn(f64) -> bool) -> f32 {
    loop {
        let v = grid(draw(r, lo, hi));
        if ok(v as f64) {
            return v;
        }
    }
}

/// `y` plus an offset d in ±[lo, hi) with `ok(|d|)`: predictions away from kinks.
fn offset(r: &mut ChaCha8Rng, y: &[f32], lo: f64, hi: f64, ok: impl Fn(f64) -> bool) -> Vec<f32> {
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
fn objective(case: &Case, reduction: Reduction, upstream: Upstream<'_>) -> (f64, f64) {
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
fn check_fd(what: &str, case: &Case, reduction: Reduction, upstream: Upstream<'_>) -> usize {
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
        let analytic = pick(&grads, name);
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
fn check_all(what: &str, case: &Case, seed: u64) -> usize {
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

// ---------------------------------------------------------------- pointwise

fn regression_case(loss: Loss, seed: u64, weighted: bool, ok: impl Fn(f64) -> bool) -> Case {
    let mut r = rng(seed);
    let shape = [3, 4];
    let y = vals(&mut r, 12, -2.0, 2.0);
    let x = offset(&mut r, &y, GAP, 3.0, ok);
    let mut case = Case::new(loss)
        .with("input", x, &shape)
        .with("target", y, &shape);
    if weighted {
        case = case.with("weight", vals(&mut r, 12, 0.1, 2.0), &shape);
    }
    case
}

#[test]
fn regression_losses_match_finite_differences() {
    let mut checked = 0;
    let away_from = |k: f64| move |d: f64| (d - k).abs() >= GAP;
    for weighted in [false, true] {
        let w = if weighted { " weighted" } else { "" };
        checked += check_all(
            &format!("mse{w}"),
            &regression_case(Loss::Pointwise(Pointwise::Mse), 1, weighted, |_| true),
            11,
        );
        checked += check_all(
            &format!("l1{w}"),
            &regression_case(Loss::Pointwise(Pointwise::L1), 2, weighted, |_| true),
            12,
        );
        for delta in [1.0f32, 0.5, 2.0] {
            checked += check_all(
                &format!("huber δ={delta}{w}"),
                &regression_case(
                    Loss::Pointwise(Pointwise::Huber { delta }),
                    3,
                    weighted,
                    away_from(delta as f64),
                ),
                13,
            );
        }
    }
    for beta in [1.0f32, 0.5, 0.0] {
        checked += check_all(
            &format!("smooth_l1 β={beta}"),
            &regression_case(
                Loss::Pointwise(Pointwise::SmoothL1 { beta }),
                4,
                false,
                away_from(beta as f64),
            ),
            14,
        );
    }
    checked += check_all(
        "log_cosh",
        &regression_case(Loss::Pointwise(Pointwise::LogCosh), 5, false, |_| true),
        15,
    );
    // A weight broadcast from the last dim.
    let mut r = rng(6);
    let y = vals(&mut r, 12, -2.0, 2.0);
    let x = offset(&mut r, &y, GAP, 3.0, |_| true);
    let case = Case::new(Loss::Pointwise(Pointwise::Mse))
        .with("input", x, &[3, 4])
        .with("target", y, &[3, 4])
        .with("weight", vals(&mut r, 4, 0.1, 2.0), &[4]);
    checked += check_all("mse broadcast weight", &case, 16);
    assert!(checked >= 720, "{checked}");
}

#[test]
fn quantile_matches_finite_differences() {
    let mut checked = 0;
    // No list: q = 0.5 elementwise.
    checked += check_all(
        "quantile",
        &regression_case(
            Loss::Pointwise(Pointwise::Quantile { quantiles: None }),
            21,
            false,
            |_| true,
        ),
        31,
    );
    for (seed, q, lead) in [
        (22, vec![0.1f32, 0.5, 0.9], vec![4]),
        (23, vec![0.02, 0.1, 0.5, 0.9, 0.98], vec![2, 3]),
        (24, vec![0.0, 1.0], vec![5]),
        (25, vec![0.25], vec![3]),
    ] {
        let mut r = rng(seed);
        let nt: usize = lead.iter().product();
        let y = vals(&mut r, nt, -2.0, 2.0);
        let repeated: Vec<f32> = y
            .iter()
            .flat_map(|v| std::iter::repeat_n(*v, q.len()))
            .collect();
        let x = offset(&mut r, &repeated, GAP, 3.0, |_| true);
        let mut shape = lead.clone();
        shape.push(q.len());
        let case = Case::new(Loss::Pointwise(Pointwise::Quantile {
            quantiles: Some(q.clone()),
        }))
        .with("input", x, &shape)
        .with("target", y, &lead);
        checked += check_all(&format!("quantile {q:?}"), &case, seed + 10);
    }
    assert!(checked > 200, "{checked}");
}

#[test]
fn logit_and_probability_losses_match_finite_differences() {
    let mut checked = 0;
    let mut r = rng(41);
    // bce: probabilities away from 0 and 1, soft and hard targets.
    let x = vals(&mut r, 12, 0.1, 0.9);
    let mut y = vals(&mut r, 12, 0.0, 1.0);
    y[0] = 0.0;
    y[1] = 1.0;
    let bce = Case::new(Loss::Pointwise(Pointwise::Bce))
        .with("input", x.clone(), &[3, 4])
        .with("target", y.clone(), &[3, 4]);
    checked += check_all("bce", &bce, 51);
    let bce_w = bce.clone().with("weight", vals(&mut r, 4, 0.0, 2.0), &[4]);
    checked += check_all("bce weight", &bce_w, 52);

    let z = vals(&mut r, 24, -4.0, 4.0);
    let t = vals(&mut r, 24, 0.0, 1.0);
    let logits = Case::new(Loss::Pointwise(Pointwise::BceWithLogits))
        .with("input", z.clone(), &[2, 3, 2, 2])
        .with("target", t.clone(), &[2, 3, 2, 2]);
    checked += check_all("bce_with_logits", &logits, 53);
    let pw = logits
        .clone()
        .with("pos_weight", vals(&mut r, 3, 0.2, 3.0), &[3, 1, 1])
        .with("weight", vals(&mut r, 24, 0.1, 2.0), &[2, 3, 2, 2]);
    checked += check_all("bce_with_logits pos_weight (C,1,1) + weight", &pw, 54);
    let pw_last = Case::new(Loss::Pointwise(Pointwise::BceWithLogits))
        .with("input", z.clone(), &[6, 4])
        .with("target", t.clone(), &[6, 4])
        .with("pos_weight", vals(&mut r, 4, 0.2, 3.0), &[4]);
    checked += check_all("bce_with_logits pos_weight (C)", &pw_last, 55);

    let hard: Vec<f32> = (0..24).map(|_| r.random_range(0..2) as f32).collect();
    for (alpha, gamma, soft) in [
        (0.25f32, 2.0f32, false),
        (-1.0, 2.0, false),
        (0.25, 0.0, false),
        (0.25, 0.5, false),
        (0.5, 1.0, true),
        (0.75, 1.5, true),
    ] {
        let case = Case::new(Loss::Pointwise(Pointwise::SigmoidFocal { alpha, gamma }))
            .with("input", z.clone(), &[4, 6])
            .with(
                "target",
                if soft { t.clone() } else { hard.clone() },
                &[4, 6],
            );
        checked += check_all(&format!("sigmoid_focal α={alpha} γ={gamma}"), &case, 56);
    }

    for log_target in [false, true] {
        let x = vals(&mut r, 12, -3.0, 0.0);
        let mut y = if log_target {
            vals(&mut r, 12, -3.0, 0.5)
        } else {
            vals(&mut r, 12, 0.0, 1.0)
        };
        if !log_target {
            y[3] = 0.0;
        }
        let case = Case::new(Loss::Pointwise(Pointwise::KlDiv { log_target }))
            .with("input", x, &[3, 2, 2])
            .with("target", y, &[3, 2, 2]);
        checked += check_all(&format!("kl_div log_target={log_target}"), &case, 57);
    }
    assert!(checked > 1000, "{checked}");
}

// ---------------------------------------------------------------- rows

fn ce(ignore_index: i64, label_smoothing: f32) -> Loss {
    Loss::Rows(Rows::CrossEntropy {
        ignore_index,
        label_smoothing,
    })
}

#[test]
fn softmax_row_losses_match_finite_differences() {
    let mut checked = 0;
    let mut r = rng(61);
    let x = vals(&mut r, 20, -2.0, 2.0);
    let w = vals(&mut r, 4, 0.2, 3.0);
    let y = vec![0i64, 3, 1, 2, 3];
    let y_ignored = vec![0i64, -100, 1, 2, -100];
    let y_ignore0 = vec![0i64, 3, 1, 0, 3];
    let row_losses = [
        ce(-100, 0.0),
        ce(-100, 0.1),
        ce(-100, 1.0),
        Loss::Rows(Rows::Nll { ignore_index: -100 }),
        Loss::Rows(Rows::SoftmaxFocal {
            gamma: 2.0,
            ignore_index: -100,
        }),
        Loss::Rows(Rows::SoftmaxFocal {
            gamma: 0.0,
            ignore_index: -100,
        }),
        Loss::Rows(Rows::SoftmaxFocal {
            gamma: 0.5,
            ignore_index: -100,
        }),
    ];
    for loss in &row_losses {
        for weighted in [false, true] {
            for (targets, tag) in [(&y, ""), (&y_ignored, " ignored rows")] {
                let mut case = Case::new(loss.clone())
                    .with("input", x.clone(), &[5, 4])
                    .classes(targets.clone(), &[5]);
                if weighted {
                    case = case.with("weight", w.clone(), &[4]);
                }
                let what = format!("{loss:?} weighted={weighted}{tag}");
                checked += check_all(&what, &case, 62);
            }
        }
    }
    // ignore_index that is a valid class, with smoothing and weights.
    for loss in [
        ce(0, 0.2),
        Loss::Rows(Rows::Nll { ignore_index: 0 }),
        Loss::Rows(Rows::SoftmaxFocal {
            gamma: 2.0,
            ignore_index: 0,
        }),
    ] {
        let case = Case::new(loss.clone())
            .with("input", x.clone(), &[5, 4])
            .classes(y_ignore0.clone(), &[5])
            .with("weight", w.clone(), &[4]);
        checked += check_all(&format!("{loss:?} ignore class 0"), &case, 63);
    }
    // K-dim (N, C, d1, d2) with ignored pixels.
    let xk = vals(&mut r, 24, -2.0, 2.0);
    let yk = vec![0i64, 2, -100, 1, 1, 0, 2, -100];
    for loss in &row_losses {
        let case = Case::new(loss.clone())
            .with("input", xk.clone(), &[2, 3, 2, 2])
            .classes(yk.clone(), &[2, 2, 2])
            .with("weight", vals(&mut r, 3, 0.2, 3.0), &[3]);
        checked += check_all(&format!("{loss:?} K-dim"), &case, 64);
    }
    // Unbatched (C) with target ().
    for loss in &row_losses {
        let case = Case::new(loss.clone())
            .with("input", vals(&mut r, 5, -2.0, 2.0), &[5])
            .classes(vec![3], &[]);
        checked += check_all(&format!("{loss:?} unbatched"), &case, 65);
    }
    // Probability targets: soft rows, weights, smoothing, K-dim.
    for (smoothing, weighted, shape) in [
        (0.0f32, false, vec![5usize, 4]),
        (0.0, true, vec![5, 4]),
        (0.1, false, vec![5, 4]),
        (0.2, true, vec![5, 4]),
        (0.1, true, vec![2, 4, 3]),
    ] {
        let n: usize = shape.iter().product();
        let mut case = Case::new(ce(-100, smoothing))
            .with("input", vals(&mut r, n, -2.0, 2.0), &shape)
            .with("target", vals(&mut r, n, 0.0, 1.0), &shape);
        if weighted {
            case = case.with("weight", vals(&mut r, 4, 0.2, 3.0), &[4]);
        }
        let what =
            format!("cross_entropy prob targets ε={smoothing} weighted={weighted} {shape:?}");
        checked += check_all(&what, &case, 66);
    }
    assert!(checked > 2000, "{checked}");
}

// ---------------------------------------------------------------- pairs

/// `count` tensors of `rows` rows of `dim` grid values in [-1.5, 1.5), each
/// row set drawn until `ok` holds for it.
fn rows_where(
    r: &mut ChaCha8Rng,
    rows: usize,
    dim: usize,
    count: usize,
    ok: impl Fn(&[Vec<f32>]) -> bool,
) -> Vec<Vec<f32>> {
    let mut out = vec![vec![]; count];
    for _ in 0..rows {
        loop {
            let row: Vec<Vec<f32>> = (0..count).map(|_| vals(r, dim, -1.5, 1.5)).collect();
            if ok(&row) {
                for (o, v) in out.iter_mut().zip(row) {
                    o.extend(v);
                }
                break;
            }
        }
    }
    out
}

#[test]
fn cosine_embedding_matches_finite_differences() {
    let mut checked = 0;
    let mut r = rng(71);
    for (margin, labelled, shape) in [
        (0.0f32, true, vec![5usize, 4]),
        (0.2, true, vec![5, 4]),
        (-0.3, true, vec![5, 3]),
        (0.0, false, vec![4, 3]),
        (0.1, true, vec![6]),
    ] {
        let rows = if shape.len() == 2 { shape[0] } else { 1 };
        let dim = *shape.last().unwrap();
        let labels: Vec<f32> = (0..rows)
            .map(|i| if i % 3 == 1 { 1.0 } else { -1.0 })
            .collect();
        let m = margin as f64;
        let ab = (0..rows)
            .map(|i| {
                let label = if labelled { labels[i] } else { 1.0 };
                rows_where(&mut r, 1, dim, 2, |v| {
                    let cos = cpu::pairs::cosine(&v[0], &v[1]);
                    // Away from the hinge, and hinges on both sides of it.
                    label == 1.0 || (cos - m).abs() >= GAP
                })
            })
            .collect::<Vec<_>>();
        let a: Vec<f32> = ab.iter().flat_map(|v| v[0].clone()).collect();
        let b: Vec<f32> = ab.iter().flat_map(|v| v[1].clone()).collect();
        let mut case = Case::new(Loss::Pairs(Pairs::CosineEmbedding { margin }))
            .with("input", a, &shape)
            .with("target", b, &shape);
        if labelled {
            let lshape: Vec<usize> = shape[..shape.len() - 1].to_vec();
            case = case.with("labels", labels, &lshape);
        }
        let what = format!("cosine_embedding margin={margin} labels={labelled} {shape:?}");
        checked += check_all(&what, &case, 72);
    }
    assert!(checked > 500, "{checked}");
}

fn abs_sorted(v: &[f64]) -> Vec<f64> {
    let mut a: Vec<f64> = v.iter().map(|d| d.abs()).collect();
    a.sort_by(|x, y| y.partial_cmp(x).unwrap());
    a
}

#[test]
fn triplet_margin_matches_finite_differences() {
    let mut checked = 0;
    let mut r = rng(81);
    for (margin, p, swap, shape) in [
        (1.0f32, 2.0f32, false, vec![5usize, 3]),
        (0.5, 2.0, false, vec![5, 4]),
        (1.0, 2.0, true, vec![6, 3]),
        (1.0, 1.0, false, vec![5, 3]),
        (1.0, 1.0, true, vec![5, 3]),
        (1.0, 3.0, false, vec![4, 3]),
        (1.0, 3.0, true, vec![4, 3]),
        (1.0, 1.5, true, vec![4, 3]),
        (1.0, 0.5, false, vec![4, 3]),
        (1.0, f32::INFINITY, false, vec![5, 3]),
        (0.5, f32::INFINITY, true, vec![5, 3]),
        (1.0, 2.0, false, vec![5]),
    ] {
        let rows = if shape.len() == 2 { shape[0] } else { 1 };
        let dim = *shape.last().unwrap();
        let (m, pf, eps) = (margin as f64, p as f64, 1e-6f32 as f64);
        let apn = rows_where(&mut r, rows, dim, 3, |v| {
            let diff = |x: &[f32], y: &[f32]| -> Vec<f64> {
                x.iter()
                    .zip(y)
                    .map(|(x, y)| *x as f64 - *y as f64 + eps)
                    .collect()
            };
            let pairs = [diff(&v[0], &v[1]), diff(&v[0], &v[2]), diff(&v[1], &v[2])];
            // p = 1 and p < 1: no zero component; p = inf: one largest.
            let smooth_norms = pairs.iter().all(|d| {
                let s = abs_sorted(d);
                s[dim - 1] >= GAP && (!pf.is_infinite() || dim == 1 || s[0] - s[1] >= GAP)
            });
            let d_ap = cpu::pairs::distance(&v[0], &v[1], pf, eps);
            let d_an = cpu::pairs::distance(&v[0], &v[2], pf, eps);
            let d_pn = cpu::pairs::distance(&v[1], &v[2], pf, eps);
            let d_neg = if swap { d_an.min(d_pn) } else { d_an };
            smooth_norms && (m + d_ap - d_neg).abs() >= GAP && (!swap || (d_an - d_pn).abs() >= GAP)
        });
        let case = Case::new(Loss::Pairs(Pairs::TripletMargin {
            margin,
            p,
            eps: 1e-6,
            swap,
        }))
        .with("input", apn[0].clone(), &shape)
        .with("positive", apn[1].clone(), &shape)
        .with("negative", apn[2].clone(), &shape);
        let what = format!("triplet_margin margin={margin} p={p} swap={swap} {shape:?}");
        checked += check_all(&what, &case, 82);
    }
    assert!(checked >= 1900, "{checked}");
}

// ---------------------------------------------------------------- dice

fn dice(mode: DiceMode, from_logits: bool, smooth: f32, ignore: bool, log_loss: bool) -> Loss {
    Loss::Dice(Dice {
        mode,
        from_logits,
        smooth,
        eps: 1e-7,
        ignore_index: ignore.then_some(255),
        log_loss,
    })
}

#[test]
fn dice_matches_finite_differences() {
    let mut checked = 0;
    let mut r = rng(91);
    for mode in [DiceMode::Binary, DiceMode::Multiclass, DiceMode::Multilabel] {
        for from_logits in [true, false] {
            for (smooth, ignore, log_loss, soft) in [
                (0.0f32, false, false, false),
                (1.0, false, false, false),
                (0.0, true, false, false),
                (0.0, false, true, false),
                (0.5, true, true, false),
                (0.0, false, false, true),
            ] {
                if soft && mode == DiceMode::Multiclass {
                    continue;
                }
                let c = if mode == DiceMode::Binary { 1 } else { 3 };
                let shape = [2, c, 2, 3];
                let n = 12 * c;
                let case = Case::new(dice(mode, from_logits, smooth, ignore, log_loss));
                let x_of = |r: &mut ChaCha8Rng, t: &[f32]| -> Vec<f32> {
                    if from_logits {
                        vals(r, n, -3.0, 3.0)
                    } else {
                        // Probabilities away from their targets (the L1 kink).
                        t.iter()
                            .map(|t| draw_ok(r, 0.02, 0.98, |p| (p - *t as f64).abs() >= GAP))
                            .collect()
                    }
                };
                let case = if mode == DiceMode::Multiclass {
                    // Class 2 absent from the batch: its loss and gradient are 0.
                    let mut y: Vec<i64> = (0..12).map(|_| r.random_range(0..2)).collect();
                    if ignore {
                        y[3] = 255;
                        y[8] = 255;
                    }
                    let t: Vec<f32> = (0..n)
                        .map(|i| {
                            let (b, k, s) = (i / (c * 6), (i / 6) % c, i % 6);
                            (y[b * 6 + s] == k as i64) as u8 as f32
                        })
                        .collect();
                    let x = x_of(&mut r, &t);
                    case.with("input", x, &shape).classes(y, &[2, 2, 3])
                } else {
                    let mut t: Vec<f32> = if soft {
                        vals(&mut r, n, 0.0, 1.0)
                    } else {
                        (0..n).map(|_| r.random_range(0..2) as f32).collect()
                    };
                    if c == 3 {
                        // An empty channel.
                        for v in &mut t[12..18] {
                            *v = 0.0;
                        }
                    }
                    let x = x_of(&mut r, &t);
                    if ignore {
                        t[1] = 255.0;
                        t[n - 2] = 255.0;
                    }
                    case.with("input", x, &shape).with("target", t, &shape)
                };
                let what = format!(
                    "dice {} from_logits={from_logits} smooth={smooth} ignore={ignore} log={log_loss} soft={soft}",
                    mode.name()
                );
                checked += check_all(&what, &case, 92);
            }
        }
    }
    assert!(checked > 3000, "{checked}");
}

// ---------------------------------------------------------------- conventions

fn grad(case: &Case, reduction: Reduction) -> (cpu::Reference, cpu::ReferenceGradients) {
    cpu::gradient(&case.loss, reduction, &case.inputs(), Upstream::Scalar(1.0)).unwrap()
}

fn assert_vec(what: &str, got: &[f64], want: &[f64]) {
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

fn pointwise(loss: Loss, x: &[f32], y: &[f32]) -> Case {
    Case::new(loss)
        .with("input", x.to_vec(), &[x.len()])
        .with("target", y.to_vec(), &[y.len()])
}

#[test]
fn bce_backward_is_pytorchs_not_the_clamped_forwards() {
    // ✔ torch: (x − y)/max(x(1 − x), float(1e-12)) = ±1.0000000039958029e12.
    let big = 1.0 / (1e-12f32 as f64);
    let case = pointwise(
        Loss::Pointwise(Pointwise::Bce),
        &[0.0, 1.0, 0.0, 1.0, 0.5],
        &[1.0, 0.0, 0.0, 1.0, 0.5],
    );
    let (r, g) = grad(&case, Reduction::Sum);
    assert_vec("bce", &g.input, &[-big, big, 0.0, 0.0, 0.0]);
    assert!((g.input[0] + 1.0000000039958029e12).abs() < 1e-3);
    assert_eq!(r.items[0], 100.0, "the forward clamps the log at −100");
    // ✔ torch: x = 1e-7, y = 1 → −1e7 (below the clamp's reach).
    let case = pointwise(Loss::Pointwise(Pointwise::Bce), &[1e-7], &[1.0]);
    let want = (1e-7f32 as f64 - 1.0) / ((1.0 - 1e-7f32 as f64) * 1e-7f32 as f64);
    assert_vec("bce small", &grad(&case, Reduction::Sum).1.input, &[want]);
}

#[test]
fn kinks_of_the_regression_losses() {
    // |x − y| = 0: l1 and β = 0 smooth_l1 give 0; huber/smooth_l1 at |d| = δ, β
    // take the linear branch (✔ torch, LOSS_SEMANTICS §2–4).
    let x = [1.25, -0.75, 0.25, 3.0, 2.5, 0.0];
    let y = [0.75, -0.25, 0.25, 2.0, 3.0, -0.5];
    let l1 = grad(
        &pointwise(Loss::Pointwise(Pointwise::L1), &x, &y),
        Reduction::Sum,
    )
    .1
    .input;
    assert_vec("l1", &l1, &[1.0, -1.0, 0.0, 1.0, -1.0, 1.0]);
    let huber = grad(
        &pointwise(Loss::Pointwise(Pointwise::Huber { delta: 0.5 }), &x, &y),
        Reduction::Sum,
    );
    assert_vec("huber", &huber.1.input, &[0.5, -0.5, 0.0, 0.5, -0.5, 0.5]);
    let sl1 = grad(
        &pointwise(Loss::Pointwise(Pointwise::SmoothL1 { beta: 0.5 }), &x, &y),
        Reduction::Sum,
    );
    assert_vec("smooth_l1", &sl1.1.input, &[1.0, -1.0, 0.0, 1.0, -1.0, 1.0]);
    let sl0 = grad(
        &pointwise(
            Loss::Pointwise(Pointwise::SmoothL1 { beta: 0.0 }),
            &[1.0, 2.0],
            &[1.0, 1.0],
        ),
        Reduction::Sum,
    );
    assert_vec("smooth_l1 β=0", &sl0.1.input, &[0.0, 1.0]);
    let lc = grad(
        &pointwise(
            Loss::Pointwise(Pointwise::LogCosh),
            &[0.0, 1.0, -3.0],
            &[0.0; 3],
        ),
        Reduction::Sum,
    );
    assert_vec("log_cosh", &lc.1.input, &[0.0, 1f64.tanh(), (-3f64).tanh()]);
}

#[test]
fn quantile_tie_splits_the_gradient() {
    // torch.maximum at e = 0 gives each branch half: (1 − q)/2 − q/2 (✔ torch:
    // [0.4, 0, −0.4] for q = [0.1, 0.5, 0.9]).
    let q = vec![0.1f32, 0.5, 0.9];
    let case = Case::new(Loss::Pointwise(Pointwise::Quantile {
        quantiles: Some(q.clone()),
    }))
    .with("input", vec![10.0; 3], &[1, 3])
    .with("target", vec![10.0], &[1]);
    let want: Vec<f64> = q.iter().map(|q| 0.5 - *q as f64).collect();
    assert_vec("quantile tie", &grad(&case, Reduction::Sum).1.input, &want);
    assert!((want[0] - 0.4).abs() < 1e-7);
}

#[test]
fn hinges_at_exactly_zero_pass_no_gradient() {
    // ✔ torch 2.15: clamp_min(·, 0) has gradient 0 at 0.
    // triplet: a = [0,0], p = [1,0], n = [2,0], eps = 0 → 1 + 1 − 2 = 0.
    let case = Case::new(Loss::Pairs(Pairs::TripletMargin {
        margin: 1.0,
        p: 2.0,
        eps: 0.0,
        swap: false,
    }))
    .with("input", vec![0.0, 0.0], &[1, 2])
    .with("positive", vec![1.0, 0.0], &[1, 2])
    .with("negative", vec![2.0, 0.0], &[1, 2]);
    let (r, g) = grad(&case, Reduction::Sum);
    assert_eq!(r.value, 0.0);
    for v in [
        &g.input,
        g.positive.as_ref().unwrap(),
        g.negative.as_ref().unwrap(),
    ] {
        assert_vec("triplet hinge", v, &[0.0, 0.0]);
    }
    // cosine_embedding, label −1: cos = 0 = margin.
    let case = Case::new(Loss::Pairs(Pairs::CosineEmbedding { margin: 0.0 }))
        .with("input", vec![1.0, 0.0], &[1, 2])
        .with("target", vec![0.0, 1.0], &[1, 2])
        .with("labels", vec![-1.0], &[1]);
    let (r, g) = grad(&case, Reduction::Sum);
    assert_eq!(r.value, 0.0);
    assert_vec("cosine hinge x1", &g.input, &[0.0, 0.0]);
    assert_vec("cosine hinge x2", g.target.as_ref().unwrap(), &[0.0, 0.0]);
    // Labels other than ±1 give a silent 0.
    let case = Case::new(Loss::Pairs(Pairs::CosineEmbedding { margin: 0.0 }))
        .with("input", vec![1.0, 0.5], &[1, 2])
        .with("target", vec![0.25, 1.0], &[1, 2])
        .with("labels", vec![0.0], &[1]);
    assert_vec(
        "cosine label 0",
        &grad(&case, Reduction::Mean).1.input,
        &[0.0, 0.0],
    );
}

#[test]
fn cosine_embedding_zero_vectors() {
    // x1 = 0 against [1, 1], label 1: −x2/√(ε·m2) with ε the float 1e-12
    // (✔ torch: −707106.7825991004); both zero: cos = 0 and no gradient.
    let case = Case::new(Loss::Pairs(Pairs::CosineEmbedding { margin: 0.0 }))
        .with("input", vec![0.0, 0.0, 0.0, 0.0], &[2, 2])
        .with("target", vec![1.0, 1.0, 0.0, 0.0], &[2, 2]);
    let (r, g) = grad(&case, Reduction::None);
    assert_vec("items", &r.items, &[1.0, 1.0]);
    assert_vec(
        "x1",
        &g.input,
        &[-707106.7825991004, -707106.7825991004, 0.0, 0.0],
    );
    assert_vec("x2", g.target.as_ref().unwrap(), &[0.0; 4]);
}

fn triplet_case(margin: f32, p: f32, swap: bool, a: &[f32], pos: &[f32], neg: &[f32]) -> Case {
    Case::new(Loss::Pairs(Pairs::TripletMargin {
        margin,
        p,
        eps: 0.0,
        swap,
    }))
    .with("input", a.to_vec(), &[1, a.len()])
    .with("positive", pos.to_vec(), &[1, a.len()])
    .with("negative", neg.to_vec(), &[1, a.len()])
}

fn assert_triplet(what: &str, case: &Case, value: f64, want: [&[f64]; 3]) {
    let (r, g) = grad(case, Reduction::Sum);
    assert!((r.value - value).abs() < 1e-12, "{what}: {}", r.value);
    assert_vec(&format!("{what} d/da"), &g.input, want[0]);
    assert_vec(
        &format!("{what} d/dp"),
        g.positive.as_ref().unwrap(),
        want[1],
    );
    assert_vec(
        &format!("{what} d/dn"),
        g.negative.as_ref().unwrap(),
        want[2],
    );
}

#[test]
fn triplet_ties_split_the_gradient() {
    // swap with d(a, n) == d(p, n): torch.min gives each half (✔ torch).
    let s5 = 1.0 / 5f64.sqrt();
    let case = triplet_case(1.0, 2.0, true, &[0.0, 0.0], &[0.0, 1.0], &[1.0, 0.5]);
    assert_triplet(
        "swap tie",
        &case,
        0.8819660112501051,
        [
            &[s5, -1.0 + 0.5 * s5],
            &[s5, 1.0 - 0.5 * s5],
            &[-2.0 * s5, 0.0],
        ],
    );
    // p = inf with two largest components: half each (✔ torch).
    let case = triplet_case(
        5.0,
        f32::INFINITY,
        false,
        &[0.0, 0.0, 0.0],
        &[1.0, -1.0, 0.5],
        &[5.0, 0.0, 0.0],
    );
    assert_triplet(
        "inf tie",
        &case,
        1.0,
        [&[0.5, 0.5, 0.0], &[0.5, -0.5, 0.0], &[-1.0, 0.0, 0.0]],
    );
    // p < 1 at a zero component and p = 3 at the zero vector: 0 there (✔ torch).
    let case = triplet_case(5.0, 0.5, false, &[0.0, 0.0], &[0.0, 1.0], &[5.0, 0.0]);
    assert_triplet(
        "p=0.5 zero component",
        &case,
        1.0,
        [&[1.0, -1.0], &[0.0, 1.0], &[-1.0, 0.0]],
    );
    let case = triplet_case(5.0, 3.0, false, &[0.0, 0.0], &[0.0, 0.0], &[5.0, 0.0]);
    let (_, g) = grad(&case, Reduction::Sum);
    assert_vec(
        "p=3 zero vector d/dp",
        g.positive.as_ref().unwrap(),
        &[0.0, 0.0],
    );
    assert_vec(
        "p=3 zero vector d/dn",
        g.negative.as_ref().unwrap(),
        &[-1.0, 0.0],
    );
}

#[test]
fn means_over_nothing_and_over_zero_weight() {
    let z = vec![1.0, 2.0, 3.0, 1.0, 1.0, 1.0];
    // All rows ignored: NaN value, zero gradient (✔ torch, also with smoothing).
    for loss in [
        ce(-100, 0.0),
        ce(-100, 0.1),
        Loss::Rows(Rows::Nll { ignore_index: -100 }),
        Loss::Rows(Rows::SoftmaxFocal {
            gamma: 2.0,
            ignore_index: -100,
        }),
    ] {
        let case = Case::new(loss.clone())
            .with("input", z.clone(), &[2, 3])
            .classes(vec![-100, -100], &[2]);
        let (r, g) = grad(&case, Reduction::Mean);
        assert!(r.value.is_nan(), "{loss:?}");
        assert_vec(&format!("{loss:?} all ignored"), &g.input, &[0.0; 6]);
    }
    // Rows kept but their total weight 0: torch's g/0 meets the weights → NaN
    // (✔ torch: cross_entropy all NaN, nll NaN in the target column).
    let weight = vec![0.0, 1.0, 1.0];
    let zero_weight = |loss: Loss| {
        let case = Case::new(loss)
            .with("input", z.clone(), &[2, 3])
            .classes(vec![0, 0], &[2])
            .with("weight", weight.clone(), &[3]);
        grad(&case, Reduction::Mean)
    };
    let (r, g) = zero_weight(ce(-100, 0.0));
    assert!(r.value.is_nan());
    assert!(g.input.iter().all(|v| v.is_nan()), "{:?}", g.input);
    let (_, g) = zero_weight(ce(-100, 0.1));
    assert!(g.input.iter().all(|v| v.is_nan()), "{:?}", g.input);
    let (_, g) = zero_weight(Loss::Rows(Rows::Nll { ignore_index: -100 }));
    let nan = f64::NAN;
    assert_vec("nll zero weight", &g.input, &[nan, 0.0, 0.0, nan, 0.0, 0.0]);
    // softmax_focal defines that mean with a zero gradient.
    let (r, g) = zero_weight(Loss::Rows(Rows::SoftmaxFocal {
        gamma: 2.0,
        ignore_index: -100,
    }));
    assert!(r.value.is_nan());
    assert_vec("softmax_focal zero weight", &g.input, &[0.0; 6]);
    // Weighted mse/l1 with Σw = 0 (✔ torch: NaN gradients).
    for loss in [
        Loss::Pointwise(Pointwise::Mse),
        Loss::Pointwise(Pointwise::L1),
    ] {
        let case =
            pointwise(loss.clone(), &[1.0, 2.0], &[0.0, 0.0]).with("weight", vec![0.0, 0.0], &[2]);
        let (r, g) = grad(&case, Reduction::Mean);
        assert!(r.value.is_nan());
        assert!(
            g.input.iter().all(|v| v.is_nan()),
            "{loss:?}: {:?}",
            g.input
        );
    }
    // An empty input: NaN mean and an empty gradient.
    let case = pointwise(Loss::Pointwise(Pointwise::Mse), &[], &[]);
    let (r, g) = grad(&case, Reduction::Mean);
    assert!(r.value.is_nan());
    assert!(g.input.is_empty());
}

#[test]
fn dice_conventions() {
    let probs = |x: &[f32], t: &[f32], log_loss: bool| {
        Case::new(dice(DiceMode::Binary, false, 0.0, false, log_loss))
            .with("input", x.to_vec(), &[1, 1, x.len()])
            .with("target", t.to_vec(), &[1, 1, t.len()])
    };
    // p == t at exact 0/1: sign(0) = 0, ∂I/∂p = ½ (✔ smp, LOSS_SEMANTICS §14).
    let case = probs(&[1.0, 0.0, 0.5, 0.5], &[1.0, 0.0, 1.0, 0.0], false);
    assert_vec(
        "tie",
        &grad(&case, Reduction::Mean).1.input,
        &[-0.0625, -0.0625, -0.3125, 0.1875],
    );
    // The eps clamp on the cardinality is active: no gradient through it, only
    // through the intersection (✔ smp: −1/eps, −1/(2 eps) at p == t).
    let eps = 1e-7f32 as f64;
    let case = probs(&[1e-9, 0.0, 0.0], &[1e-8, 0.0, 0.0], false);
    assert_vec(
        "clamp",
        &grad(&case, Reduction::Mean).1.input,
        &[-1.0 / eps, -0.5 / eps, -0.5 / eps],
    );
    // log_loss with the score clamped at eps: no gradient at all (✔ smp).
    let case = probs(&[0.0, 0.0, 0.0], &[1e-8, 0.0, 0.0], true);
    assert_vec(
        "log clamp",
        &grad(&case, Reduction::Mean).1.input,
        &[0.0; 3],
    );
    // A class absent from the whole batch: loss 0, gradient 0 on its channel.
    let case = Case::new(dice(DiceMode::Multiclass, false, 0.0, false, false))
        .with(
            "input",
            vec![0.7, 0.2, 0.1, 0.6, 0.2, 0.7, 0.1, 0.2, 0.1, 0.1, 0.8, 0.2],
            &[1, 3, 4],
        )
        .classes(vec![0, 1, 0, 0], &[1, 4]);
    let (r, g) = grad(&case, Reduction::Mean);
    assert_eq!(r.items[2], 0.0);
    assert_vec("absent class", &g.input[8..], &[0.0; 4]);
    assert!(g.input[..8].iter().all(|v| *v != 0.0));
    // Ignored pixels get 0 in every class, also through the softmax.
    let case = Case::new(dice(DiceMode::Multiclass, true, 0.0, true, false))
        .with(
            "input",
            vec![0.5, -1.0, 2.0, 0.3, 1.0, 0.0, -0.5, 0.2, 0.1],
            &[1, 3, 3],
        )
        .classes(vec![0, 255, 2], &[1, 3]);
    let g = grad(&case, Reduction::Mean).1.input;
    assert_vec("ignored pixel", &[g[1], g[4], g[7]], &[0.0; 3]);
}

#[test]
fn saturated_focal_factors_follow_pytorch() {
    // 0 < γ < 1 at a saturated sigmoid: 0·∞ = NaN in torch's backward (§11a);
    // γ = 0: pow's backward is 0, the gradient is BCE's.
    let x = [40.0f32, -40.0];
    let y = [1.0f32, 0.0];
    let half = pointwise(
        Loss::Pointwise(Pointwise::SigmoidFocal {
            alpha: 0.25,
            gamma: 0.5,
        }),
        &x,
        &y,
    );
    assert!(grad(&half, Reduction::Sum)
        .1
        .input
        .iter()
        .all(|v| v.is_nan()));
    let zero = pointwise(
        Loss::Pointwise(Pointwise::SigmoidFocal {
            alpha: 0.25,
            gamma: 0.0,
        }),
        &x,
        &y,
    );
    // ✔ torch: [0, 3.1862656914686917e-18].
    assert_vec(
        "γ = 0",
        &grad(&zero, Reduction::Sum).1.input,
        &[0.0, 3.1862656914686917e-18],
    );
    // kl_div: y = 0 at x = −inf has gradient −0 while the value is NaN (✔ torch).
    let kl = pointwise(
        Loss::Pointwise(Pointwise::KlDiv { log_target: false }),
        &[f32::NEG_INFINITY, 0.0],
        &[0.0, 0.5],
    );
    let (r, g) = grad(&kl, Reduction::Sum);
    assert!(r.value.is_nan());
    assert_vec("kl", &g.input, &[0.0, -0.5]);
}

#[test]
fn upstream_items_scale_each_item() {
    let mut r = rng(101);
    let x = vals(&mut r, 6, -2.0, 2.0);
    let t = vals(&mut r, 6, -2.0, 2.0);
    let case = pointwise(Loss::Pointwise(Pointwise::LogCosh), &x, &t);
    let inputs = case.inputs();
    let u = [0.5f32, -1.0, 2.0, 0.0, 1.0, 3.0];
    let (_, g) = cpu::gradient(&case.loss, Reduction::None, &inputs, Upstream::Items(&u)).unwrap();
    let (_, one) =
        cpu::gradient(&case.loss, Reduction::None, &inputs, Upstream::Scalar(1.0)).unwrap();
    let want: Vec<f64> = one
        .input
        .iter()
        .zip(&u)
        .map(|(g, u)| g * *u as f64)
        .collect();
    assert_vec("items", &g.input, &want);
    // Mean and batchmean scale by 1/n and 1/N.
    let (_, m) =
        cpu::gradient(&case.loss, Reduction::Mean, &inputs, Upstream::Scalar(3.0)).unwrap();
    let want: Vec<f64> = one.input.iter().map(|g| g * 3.0 / 6.0).collect();
    assert_vec("mean", &m.input, &want);
    let kl = Case::new(Loss::Pointwise(Pointwise::KlDiv { log_target: false }))
        .with("input", x.clone(), &[3, 2])
        .with("target", vals(&mut r, 6, 0.0, 1.0), &[3, 2]);
    let (_, b) = cpu::gradient(
        &kl.loss,
        Reduction::BatchMean,
        &kl.inputs(),
        Upstream::Scalar(1.0),
    )
    .unwrap();
    let want: Vec<f64> = kl
        .get("target")
        .unwrap()
        .data
        .iter()
        .map(|y| -*y as f64 / 3.0)
        .collect();
    assert_vec("batchmean", &b.input, &want);
    // Only the pair losses fill the other fields.
    assert!(g.target.is_none() && g.positive.is_none() && g.negative.is_none());
}

#[test]
fn upstream_errors_are_typed() {
    let case = pointwise(
        Loss::Pointwise(Pointwise::Mse),
        &[1.0, 2.0, 3.0],
        &[0.0, 0.0, 0.0],
    );
    let inputs = case.inputs();
    let e = cpu::gradient(
        &case.loss,
        Reduction::Mean,
        &inputs,
        Upstream::Items(&[1.0; 3]),
    )
    .unwrap_err();
    assert_eq!(e, Error::UpstreamReduction { reduction: "mean" }, "{e}");
    let e = cpu::gradient(
        &case.loss,
        Reduction::None,
        &inputs,
        Upstream::Items(&[1.0; 2]),
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::UpstreamLength {
            expected: 3,
            actual: 2
        },
        "{e}"
    );
    // Dice's items are its classes; validation errors come first.
    let case = Case::new(dice(DiceMode::Multiclass, true, 0.0, false, false))
        .with("input", vec![0.0; 6], &[1, 3, 2])
        .classes(vec![0, 1], &[1, 2]);
    let e = cpu::gradient(
        &case.loss,
        Reduction::None,
        &case.inputs(),
        Upstream::Items(&[1.0; 2]),
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::UpstreamLength {
            expected: 3,
            actual: 2
        }
    );
    let bad = pointwise(Loss::Pointwise(Pointwise::Bce), &[1.5], &[0.0]);
    let e = cpu::gradient(
        &bad.loss,
        Reduction::None,
        &bad.inputs(),
        Upstream::Items(&[]),
    )
    .unwrap_err();
    assert!(matches!(e, Error::OutOfUnitRange { .. }), "{e}");
}
