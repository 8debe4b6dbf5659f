//! NaN and infinities in the data propagate as the references propagate them.
//!
//! tests/fixtures/nonfinite_cases.json (scripts/make_nonfinite_fixtures.py)
//! holds what PyTorch (torchvision, smp) gives for NaN and ±inf predictions,
//! targets and weights of every loss. The CPU twin must give the same NaN,
//! the same infinity or a value within float64 rounding of every item, value
//! and gradient; the GPU the same NaN or infinity, and finite values within
//! 1e-4 relative + 1e-6 absolute, for the value, the items and d/dinput,
//! through every softmax-row variant that fits a rows case.

use crate::common::cases::{expected, load, loss_of, num, reduction_of, tight, CaseTensors};
use crate::common::{close, ctx};
use wgpu_loss::{cpu, DiceMode, Error, Inputs, Loss, Reduction, Tensor, Upstream};
use wgpu_loss::{variant_names, with_forced_variant};
use wgpu_loss::{Dice, Pairs, Pointwise, Rows};

fn show(v: &[f64]) -> String {
    format!("{v:?}")
}

/// `f` with the softmax-row variant `v` forced, or as it is.
fn on_variant<R>(v: Option<&str>, f: impl FnOnce() -> R) -> R {
    match v {
        Some(v) => with_forced_variant(v, f).unwrap(),
        None => f(),
    }
}

#[test]
fn nan_and_inf_follow_pytorch() {
    let cases = load("nonfinite_cases.json");
    assert!(cases.len() > 50, "the nonfinite case file lost its cases");
    let mut failures = vec![];
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let loss = loss_of(case);
        let reduction = reduction_of(case);
        let tensors = CaseTensors::of(case);
        let inputs = tensors.inputs(&loss);
        let (want, want_items) = expected(case);

        match cpu::evaluate(&loss, reduction, &inputs) {
            Err(e) => failures.push(format!("{name}: cpu error {e}")),
            Ok(r) => {
                if !tight(r.value, want) {
                    failures.push(format!("{name}: cpu value {} vs torch {want}", r.value));
                }
                if let Some(w) = &want_items {
                    if r.items.iter().zip(w).any(|(g, w)| !tight(*g, *w)) {
                        failures.push(format!(
                            "{name}: cpu items {} vs torch {}",
                            show(&r.items),
                            show(w)
                        ));
                    }
                }
            }
        }
        // log_cosh has no PyTorch module: the script's formula (a where() of
        // a series and the stable form) has a NaN autograd at ±inf, where the
        // twin gives the exact derivative tanh(±inf) = ±1 (keras's form agrees).
        let gradient = !matches!(loss, Loss::Pointwise(Pointwise::LogCosh));
        match cpu::gradient(&loss, reduction, &inputs, Upstream::Scalar(1.0)) {
            _ if !gradient => {}
            Err(e) => failures.push(format!("{name}: cpu gradient error {e}")),
            Ok((_, g)) => {
                let want: Vec<f64> = case["grads"]["input"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(num)
                    .collect();
                if g.input.len() != want.len()
                    || g.input.iter().zip(&want).any(|(g, w)| !tight(*g, *w))
                {
                    failures.push(format!(
                        "{name}: cpu d/dinput {} vs torch {}",
                        show(&g.input),
                        show(&want)
                    ));
                }
            }
        }
        // Every softmax-row variant that fits the case; the chosen kernel
        // elsewhere.
        let variants: Vec<Option<&str>> = match loss {
            Loss::Rows(_) => variant_names(ctx(), &loss, reduction, &inputs)
                .unwrap()
                .into_iter()
                .map(Some)
                .collect(),
            _ => vec![None],
        };
        assert!(!variants.is_empty(), "{name}: no variant fits");
        for v in variants {
            let tag = v.map_or(String::new(), |v| format!(" {v}"));
            if gradient {
                match on_variant(v, || {
                    ctx().evaluate_with_grad(&loss, reduction, &inputs, Upstream::Scalar(1.0))
                }) {
                    Err(e) => failures.push(format!("{name}{tag}: gpu gradient error {e}")),
                    Ok((_, g)) => {
                        let want: Vec<f64> = case["grads"]["input"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(num)
                            .collect();
                        if g.input.len() != want.len()
                            || g.input
                                .iter()
                                .zip(&want)
                                .any(|(g, w)| !close(*g as f64, *w, 1e-6))
                        {
                            failures.push(format!(
                                "{name}{tag}: gpu d/dinput {:?} vs torch {}",
                                g.input,
                                show(&want)
                            ));
                        }
                    }
                }
            }
            match on_variant(v, || ctx().evaluate(&loss, reduction, &inputs)) {
                Err(e) => failures.push(format!("{name}{tag}: gpu error {e}")),
                Ok(g) => {
                    if !close(g.value, want, 1e-6) {
                        failures.push(format!(
                            "{name}{tag}: gpu value {} vs torch {want}",
                            g.value
                        ));
                    }
                    if let (Some(items), Some(w)) = (&g.items, &want_items) {
                        if items
                            .iter()
                            .zip(w)
                            .any(|(g, w)| !close(*g as f64, *w, 1e-6))
                        {
                            failures
                                .push(format!("{name}{tag}: gpu items {items:?} vs torch {w:?}"));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements with PyTorch on non-finite data:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One NaN prediction makes every loss's `mean` NaN, on the GPU and the twin,
/// as in PyTorch (the case file holds the per-item values).
#[test]
fn a_nan_prediction_makes_every_mean_nan() {
    let x = [0.2f32, f32::NAN, 0.7, 0.4, 0.9, 0.1];
    let y = [0.0f32, 1.0, 1.0, 0.0, 1.0, 0.5];
    // nll reads only the target's entry: row 0 points at the NaN.
    let classes = [1i64, 0];
    let labels = [1.0f32, -1.0];
    let var = [1.0f32; 6];
    for name in Loss::names() {
        let mut loss = Loss::from_name(name).unwrap();
        let (xs, ys): (&[usize], &[usize]) = match &loss {
            Loss::Pairs(Pairs::CosineEmbedding { .. })
            | Loss::Pairs(Pairs::TripletMargin { .. }) => (&[2, 3], &[2, 3]),
            Loss::Rows(Rows::CrossEntropy { .. })
            | Loss::Rows(Rows::Nll { .. })
            | Loss::Rows(Rows::SoftmaxFocal { .. }) => (&[2, 3], &[2]),
            _ => (&[6], &[6]),
        };
        let mut inputs = Inputs::new(Tensor::new(&x, xs));
        inputs = match &mut loss {
            Loss::Rows(Rows::CrossEntropy { .. })
            | Loss::Rows(Rows::Nll { .. })
            | Loss::Rows(Rows::SoftmaxFocal { .. }) => inputs.classes(&classes, ys),
            Loss::Pairs(Pairs::TripletMargin { .. }) => inputs
                .positive(Tensor::new(&y, ys))
                .negative(Tensor::new(&y, ys)),
            Loss::Pairs(Pairs::CosineEmbedding { .. }) => inputs
                .target(Tensor::new(&y, ys))
                .labels(Tensor::new(&labels, &[2])),
            Loss::Dice(Dice { mode, .. }) => {
                *mode = DiceMode::Binary;
                inputs.target(Tensor::new(&y, ys))
            }
            Loss::Pointwise(Pointwise::GaussianNll { .. }) => inputs
                .target(Tensor::new(&y, ys))
                .var(Tensor::new(&var, ys)),
            _ => inputs.target(Tensor::new(&y, ys)),
        };
        if matches!(loss, Loss::Pointwise(Pointwise::Bce)) {
            // torch raises for an input outside [0, 1], NaN included.
            for e in [
                cpu::evaluate(&loss, Reduction::Mean, &inputs).unwrap_err(),
                ctx().evaluate(&loss, Reduction::Mean, &inputs).unwrap_err(),
            ] {
                assert!(
                    matches!(
                        e,
                        Error::OutOfUnitRange {
                            name: "input",
                            index: 1,
                            ..
                        }
                    ),
                    "{e}"
                );
            }
            continue;
        }
        let cpu = cpu::evaluate(&loss, Reduction::Mean, &inputs).unwrap();
        let gpu = ctx().evaluate(&loss, Reduction::Mean, &inputs).unwrap();
        assert!(cpu.value.is_nan(), "{name}: cpu mean {}", cpu.value);
        assert!(gpu.value.is_nan(), "{name}: gpu mean {}", gpu.value);
    }
}

/// bce rejects an infinite probability as torch does, naming the tensor.
#[test]
fn bce_rejects_non_finite_probabilities() {
    for (x, y, name) in [
        ([0.5f32, f32::INFINITY], [0.5f32, 0.5], "input"),
        ([0.5, 0.5], [f32::NEG_INFINITY, 0.5], "target"),
        ([0.5, 0.5], [0.5, f32::NAN], "target"),
    ] {
        let inputs = Inputs::new(Tensor::new(&x, &[2])).target(Tensor::new(&y, &[2]));
        let e = ctx()
            .evaluate(&Loss::Pointwise(Pointwise::Bce), Reduction::Sum, &inputs)
            .unwrap_err();
        assert!(
            matches!(e, Error::OutOfUnitRange { name: n, .. } if n == name),
            "{e}"
        );
        assert!(e.to_string().contains(name), "{e}");
    }
}

/// Values every pointwise argument takes in the grid: the non-finite kinds,
/// both zeros, and finite values on both sides of each branch. (No subnormal
/// or |x| = 200: their squares and exponentials underflow in f32 where the
/// twin's float64 does not, and a 0 times an infinity is NaN in one and not
/// in the other; PyTorch in float32 agrees with the GPU there.)
const GRID: [f32; 11] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    0.0,
    -0.0,
    0.5,
    1.0,
    -1.5,
    3.0,
    40.0,
    -40.0,
];

/// `what` agrees with `want` element by element: the same NaN, the same
/// infinity, or finite values within 1e-4 relative + 1e-6 absolute.
fn same_kinds(failures: &mut Vec<String>, what: &str, got: &[f32], want: &[f64], args: &[String]) {
    if got.len() != want.len() {
        failures.push(format!("{what}: {} values vs {}", got.len(), want.len()));
        return;
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if !close(*g as f64, *w, 1e-6) {
            failures.push(format!("{what}[{i}] at {}: gpu {g} vs {w}", args[i]));
        }
    }
}

/// The pointwise losses of the grid, with the parameters that change which
/// non-finite results they give.
fn grid_losses() -> Vec<Loss> {
    let focal = |alpha, gamma| Loss::Pointwise(Pointwise::SigmoidFocal { alpha, gamma });
    // eps = 1.5 puts x + eps at exactly 0 for x = -1.5 (ln 0 = -inf); the
    // default 1e-8 vanishes in f32 next to x = 1, where the twin keeps it.
    let poisson = |log_input, full| {
        Loss::Pointwise(Pointwise::PoissonNll {
            log_input,
            full,
            eps: 1.5,
        })
    };
    vec![
        Loss::Pointwise(Pointwise::Mse),
        Loss::Pointwise(Pointwise::L1),
        Loss::Pointwise(Pointwise::Huber { delta: 1.0 }),
        Loss::Pointwise(Pointwise::SmoothL1 { beta: 1.0 }),
        Loss::Pointwise(Pointwise::SmoothL1 { beta: 0.0 }),
        Loss::Pointwise(Pointwise::LogCosh),
        Loss::Pointwise(Pointwise::Quantile { quantiles: None }),
        Loss::Pointwise(Pointwise::Quantile {
            quantiles: Some(vec![0.0, 0.3, 1.0]),
        }),
        Loss::Pointwise(Pointwise::Bce),
        Loss::Pointwise(Pointwise::BceWithLogits),
        focal(0.25, 2.0),
        focal(-1.0, 0.0),
        focal(0.25, 0.5),
        focal(0.25, 1.0),
        focal(-1.0, 1.5),
        Loss::Pointwise(Pointwise::KlDiv { log_target: false }),
        Loss::Pointwise(Pointwise::KlDiv { log_target: true }),
        poisson(true, false),
        poisson(false, true),
        Loss::Pointwise(Pointwise::GaussianNll {
            full: true,
            eps: 1e-6,
        }),
    ]
}

/// The grid of one loss: every (x, y, third) of its value lists, the third
/// being its weight, pos_weight, variance (or nothing), and a label of each
/// input element.
struct Grid {
    x: Vec<f32>,
    y: Vec<f32>,
    third: Vec<f32>,
    x_shape: Vec<usize>,
    args: Vec<String>,
}

fn grid_of(p: &Pointwise, thirds: &[f32]) -> Grid {
    // bce takes probabilities only.
    let values: Vec<f32> = match p {
        Pointwise::Bce => vec![0.0, -0.0, 1e-30, 0.25, 0.5, 1.0 - 1e-7, 1.0],
        _ => GRID.to_vec(),
    };
    let q = match p {
        Pointwise::Quantile { quantiles: Some(q) } => q.len(),
        _ => 1,
    };
    let (mut x, mut y, mut third, mut args) = (vec![], vec![], vec![], vec![]);
    for &a in thirds {
        for &vy in &values {
            for &vx in &values {
                y.push(vy);
                third.push(a);
                for k in 0..q {
                    x.push(vx);
                    args.push(format!("x {vx:e} y {vy:e} third {a:e} q#{k}"));
                }
            }
        }
    }
    let n = y.len();
    let x_shape = if q > 1 { vec![n, q] } else { vec![n] };
    Grid {
        x,
        y,
        third,
        x_shape,
        args,
    }
}

/// Every pointwise loss on every pair of grid values (and every grid weight,
/// pos_weight or variance where it takes one), against the twin: items,
/// value and gradient, for `none` with a unit and a mixed upstream and for
/// `mean` and `sum`; weighted means also over weights that sum to 0. The
/// kernels classify non-finite arguments from their bits and build NaN and
/// infinities only where they store a result; this pins down that every kind
/// still comes out where the reference's does.
#[test]
fn pointwise_kinds_follow_the_twin_on_a_grid() {
    use wgpu_loss::{variant_names, with_forced_variant};
    let mut failures = vec![];
    for loss in &grid_losses() {
        let Loss::Pointwise(p) = loss else {
            unreachable!()
        };
        let nonfinite = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        // Each list of third values, the last summing to 0 for a weight.
        let thirds: Vec<Vec<f32>> = match p {
            Pointwise::Mse | Pointwise::L1 | Pointwise::Huber { .. } | Pointwise::Bce => {
                vec![
                    [1.0, 0.0, -2.0, 0.5]
                        .iter()
                        .chain(&nonfinite)
                        .copied()
                        .collect(),
                    vec![1.0, -1.0],
                ]
            }
            Pointwise::BceWithLogits => {
                vec![[1.0, 0.0, -2.0, 0.5]
                    .iter()
                    .chain(&nonfinite)
                    .copied()
                    .collect()]
            }
            // The host rejects negative variances.
            Pointwise::GaussianNll { .. } => vec![vec![1.0, 0.0, 2.5, f32::NAN, f32::INFINITY]],
            _ => vec![vec![1.0]],
        };
        for third in &thirds {
            let g = grid_of(p, third);
            let y_shape = [g.y.len()];
            let mut inputs =
                Inputs::new(Tensor::new(&g.x, &g.x_shape)).target(Tensor::new(&g.y, &y_shape));
            let t = Tensor::new(&g.third, &y_shape);
            match p {
                Pointwise::Mse | Pointwise::L1 | Pointwise::Huber { .. } | Pointwise::Bce => {
                    inputs = inputs.weight(t)
                }
                Pointwise::BceWithLogits => inputs = inputs.pos_weight(t),
                Pointwise::GaussianNll { .. } => inputs = inputs.var(t),
                _ => {}
            }
            // Finite upstreams only here: an infinite one turns a gradient
            // that float64 resolves and float32 rounds to 0 into ±inf against
            // NaN. `nonfinite_upstreams_scale_as_ieee` covers those.
            let per_item: Vec<f32> = (0..g.x.len())
                .map(|i| [1.0, -0.5, 2.0, 0.0][i % 4])
                .collect();
            let calls = [
                (Reduction::None, Upstream::Scalar(1.0)),
                (Reduction::None, Upstream::Items(&per_item)),
                (Reduction::Mean, Upstream::Scalar(1.0)),
                (Reduction::Sum, Upstream::Scalar(-2.0)),
            ];
            // A sum's rounding scales with its terms (the weights that sum
            // to 0 leave little of them).
            let terms: f64 = cpu::evaluate(loss, Reduction::None, &inputs)
                .unwrap()
                .items
                .iter()
                .filter(|v| v.is_finite())
                .map(|v| v.abs())
                .sum();
            // Through every variant that fits (point-vec4 where the third is
            // as long as the input, and one target serves one element).
            for v in variant_names(ctx(), loss, Reduction::Mean, &inputs).unwrap() {
                with_forced_variant(v, || {
                    for &(reduction, up) in &calls {
                        let what = format!(
                            "{loss:?} {v} {reduction:?} {}",
                            crate::common::upstream::kind(&up)
                        );
                        let (want, want_g) = cpu::gradient(loss, reduction, &inputs, up)
                            .unwrap_or_else(|e| panic!("{what}: cpu {e}"));
                        let (got, got_g) = ctx()
                            .evaluate_with_grad(loss, reduction, &inputs, up)
                            .unwrap_or_else(|e| panic!("{what}: gpu {e}"));
                        if let Some(items) = &got.items {
                            same_kinds(
                                &mut failures,
                                &format!("{what} items"),
                                items,
                                &want.items,
                                &g.args,
                            );
                        }
                        if reduction != Reduction::None
                            && !close(got.value, want.value, 1e-6 + 1e-6 * terms)
                        {
                            failures.push(format!(
                                "{what} value: gpu {} vs twin {}",
                                got.value, want.value
                            ));
                        }
                        let what = format!("{what} d/dinput");
                        same_kinds(&mut failures, &what, &got_g.input, &want_g.input, &g.args);
                    }
                })
                .unwrap();
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements with the twin:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A NaN or infinite upstream scales each gradient of the unit upstream as
/// IEEE multiplication does: NaN, ±inf, and NaN against a 0.
#[test]
fn nonfinite_upstreams_scale_as_ieee() {
    let up = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.0, -3.0];
    let mut failures = vec![];
    for loss in &grid_losses() {
        let Loss::Pointwise(p) = loss else {
            unreachable!()
        };
        let g = grid_of(p, &[1.0]);
        let y_shape = [g.y.len()];
        let inputs = Inputs::new(Tensor::new(&g.x, &g.x_shape)).target(Tensor::new(&g.y, &y_shape));
        let inputs = match p {
            Pointwise::GaussianNll { .. } => inputs.var(Tensor::new(&g.third, &y_shape)),
            _ => inputs,
        };
        let per_item: Vec<f32> = (0..g.x.len()).map(|i| up[i % up.len()]).collect();
        let (_, unit) = ctx()
            .evaluate_with_grad(loss, Reduction::None, &inputs, Upstream::Scalar(1.0))
            .unwrap();
        let (_, scaled) = ctx()
            .evaluate_with_grad(loss, Reduction::None, &inputs, Upstream::Items(&per_item))
            .unwrap();
        let want: Vec<f64> = unit
            .input
            .iter()
            .zip(&per_item)
            .map(|(g, u)| *g as f64 * *u as f64)
            .collect();
        same_kinds(
            &mut failures,
            &format!("{loss:?}"),
            &scaled.input,
            &want,
            &g.args,
        );
    }
    assert!(
        failures.is_empty(),
        "{} gradients scaled otherwise:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// dice with NaN and infinite logits, probabilities and float targets (one
/// kind at one place per call, and a pixel of -inf logits), in every mode,
/// with and without logits, smoothing, log loss and ignored pixels, against
/// the twin: items, value and d/dinput. The kernels sum the finite parts of
/// each class and carry the kinds of the others to the per-class rule.
#[test]
fn dice_kinds_follow_the_twin() {
    use crate::common::dice;
    use wgpu_loss::{variant_names, with_forced_variant};
    let (n, inner) = (2usize, 5usize);
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
    let mut failures = vec![];
    let mut calls = 0;
    for mode in [DiceMode::Binary, DiceMode::Multilabel, DiceMode::Multiclass] {
        let c = if mode == DiceMode::Binary { 1 } else { 3 };
        let len = n * c * inner;
        let shape = [n, c, inner];
        for (from_logits, smooth, ignore, log_loss) in [
            (true, 0.0, None, false),
            (false, 0.0, None, false),
            (true, 1.0, Some(1), true),
            (false, 0.5, None, true),
        ] {
            let loss = dice(mode, from_logits, smooth, ignore, log_loss);
            let base: Vec<f32> = (0..len)
                .map(|i| {
                    let u = ((i * 37 + 11) % 19) as f32 / 19.0;
                    if from_logits {
                        6.0 * u - 3.0
                    } else {
                        u
                    }
                })
                .collect();
            let float_targets: Vec<f32> =
                (0..len).map(|i| ((i * 7) % 3 == 0) as u8 as f32).collect();
            let classes: Vec<i64> = (0..n * inner).map(|i| (i % c) as i64).collect();
            // (input, float targets) of each call.
            let mut variants = vec![];
            for (k, &v) in specials.iter().enumerate() {
                for at in [k, len / 2 + k + 1] {
                    let mut x = base.clone();
                    x[at] = v;
                    variants.push((x, float_targets.clone()));
                    if mode != DiceMode::Multiclass {
                        let mut t = float_targets.clone();
                        t[at] = v;
                        variants.push((base.clone(), t));
                    }
                }
            }
            // Every class of pixel 0 at -inf.
            let mut x = base.clone();
            for k in 0..c {
                x[k * inner] = f32::NEG_INFINITY;
            }
            variants.push((x, float_targets.clone()));
            let ys = [n, inner];
            for (x, t) in &variants {
                let inputs = Inputs::new(Tensor::new(x, &shape));
                let inputs = if mode == DiceMode::Multiclass {
                    inputs.classes(&classes, &ys)
                } else {
                    inputs.target(Tensor::new(t, &shape))
                };
                let args: Vec<String> =
                    (0..len).map(|i| format!("x {} t {}", x[i], t[i])).collect();
                // Through every variant of the first pass that fits.
                for v in variant_names(ctx(), &loss, Reduction::Mean, &inputs).unwrap() {
                    with_forced_variant(v, || {
                        for reduction in [Reduction::None, Reduction::Mean] {
                            let what = format!("{loss:?} {v} {reduction:?} x {x:?} t {t:?}");
                            let up = Upstream::Scalar(1.0);
                            let (want, want_g) = cpu::gradient(&loss, reduction, &inputs, up)
                                .unwrap_or_else(|e| panic!("{what}: cpu {e}"));
                            let (got, got_g) = ctx()
                                .evaluate_with_grad(&loss, reduction, &inputs, up)
                                .unwrap_or_else(|e| panic!("{what}: gpu {e}"));
                            calls += 1;
                            if let Some(items) = &got.items {
                                let labels: Vec<String> =
                                    (0..items.len()).map(|k| format!("class {k}")).collect();
                                same_kinds(
                                    &mut failures,
                                    &format!("{what} items"),
                                    items,
                                    &want.items,
                                    &labels,
                                );
                            }
                            if !close(got.value, want.value, 1e-6) {
                                failures.push(format!(
                                    "{what} value: gpu {} vs twin {}",
                                    got.value, want.value
                                ));
                            }
                            same_kinds(
                                &mut failures,
                                &format!("{what} d/dinput"),
                                &got_g.input,
                                &want_g.input,
                                &args,
                            );
                        }
                    })
                    .unwrap();
                }
            }
        }
    }
    assert!(calls > 100, "only {calls} calls");
    assert!(
        failures.is_empty(),
        "{} disagreements with the twin:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Subnormal arguments, which hardware that flushes them to zero would see
/// as 0: the kernels test zeros and signs from the bits (`is_zero`,
/// `sign_diff`, `present`) and take a subnormal 1 - p_t of the focal gradient
/// as the 0 the reference's 1 - p_t is (it cannot resolve one), so that on
/// IEEE hardware like this one they give the twin's answers: sign(x - y) = ±1
/// for a subnormal difference, x log(x) at a subnormal target meeting x =
/// -inf, the focal gradient's NaN at u = 0 for 0 < gamma < 1.
#[test]
fn subnormal_arguments_follow_the_twin() {
    let tiny = [1e-40f32, -1e-40, 5e-45, 1.5e-39, 0.0];
    let focal = |alpha, gamma| Loss::Pointwise(Pointwise::SigmoidFocal { alpha, gamma });
    let mut failures = vec![];
    let cases: Vec<(Loss, Vec<f32>, Vec<f32>)> = vec![
        (
            Loss::Pointwise(Pointwise::L1),
            tiny.to_vec(),
            vec![0.0, 1e-40, -5e-45, 1.4e-39, -0.0],
        ),
        (
            Loss::Pointwise(Pointwise::SmoothL1 { beta: 0.0 }),
            tiny.to_vec(),
            vec![0.0, 1e-40, -5e-45, 1.4e-39, -0.0],
        ),
        (
            Loss::Pointwise(Pointwise::KlDiv { log_target: false }),
            vec![
                f32::NEG_INFINITY,
                f32::INFINITY,
                -2.0,
                0.5,
                f32::NEG_INFINITY,
            ],
            vec![1e-40, 1e-40, 5e-45, 1.5e-39, 0.0],
        ),
        (
            Loss::Pointwise(Pointwise::Bce),
            vec![1e-40, 5e-45, 1.5e-39, 1e-40, 0.0],
            vec![0.0, 1.0, 0.5, 1e-40, 1e-40],
        ),
        (
            focal(0.25, 0.5),
            vec![-200.0, -150.0, -110.0, -200.0, -104.0],
            vec![1e-40, 1.5e-39, 5e-45, 0.0, 1e-40],
        ),
        (
            focal(-1.0, 1.5),
            vec![-200.0, -150.0, -110.0, -200.0, -104.0],
            vec![1e-40, 1.5e-39, 5e-45, 0.0, 1e-40],
        ),
    ];
    for (loss, x, y) in &cases {
        let shape = [x.len()];
        let inputs = Inputs::new(Tensor::new(x, &shape)).target(Tensor::new(y, &shape));
        let args: Vec<String> = x
            .iter()
            .zip(y)
            .map(|(x, y)| format!("x {x:e} y {y:e}"))
            .collect();
        let up = Upstream::Scalar(1.0);
        let (want, want_g) = cpu::gradient(loss, Reduction::None, &inputs, up).unwrap();
        let (got, got_g) = ctx()
            .evaluate_with_grad(loss, Reduction::None, &inputs, up)
            .unwrap();
        let what = format!("{loss:?}");
        same_kinds(
            &mut failures,
            &format!("{what} items"),
            got.items.as_ref().unwrap(),
            &want.items,
            &args,
        );
        same_kinds(
            &mut failures,
            &format!("{what} d/dinput"),
            &got_g.input,
            &want_g.input,
            &args,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
