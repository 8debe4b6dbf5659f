//! NaN and infinities in the data propagate as the references propagate them.
//!
//! tests/fixtures/nonfinite_cases.json (scripts/make_nonfinite_fixtures.py)
//! holds what PyTorch (torchvision, smp) gives for NaN and ±inf predictions,
//! targets and weights of every loss. The CPU twin must give the same NaN,
//! the same infinity or a value within float64 rounding of every item, value
//! and gradient; the GPU the same NaN or infinity, and finite values within
//! 1e-4 relative + 1e-6 absolute.

use crate::common::cases::{expected, load, loss_of, num, reduction_of, tight, CaseTensors};
use crate::common::{close, ctx};
use wgpu_loss::{cpu, DiceMode, Error, Inputs, Loss, Reduction, Tensor, Upstream};
use wgpu_loss::{Dice, Pairs, Pointwise, Rows};

fn show(v: &[f64]) -> String {
    format!("{v:?}")
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
        match ctx().evaluate(&loss, reduction, &inputs) {
            Err(e) => failures.push(format!("{name}: gpu error {e}")),
            Ok(g) => {
                if !close(g.value, want, 1e-6) {
                    failures.push(format!("{name}: gpu value {} vs torch {want}", g.value));
                }
                if let (Some(items), Some(w)) = (&g.items, &want_items) {
                    if items
                        .iter()
                        .zip(w)
                        .any(|(g, w)| !close(*g as f64, *w, 1e-6))
                    {
                        failures.push(format!("{name}: gpu items {items:?} vs torch {w:?}"));
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
