//! Bad input gets a typed error that names the problem, from the GPU path and
//! the CPU reference alike, and never a panic.

use crate::common::finite::Case;
use crate::common::{ctx, dice, rejects};
use wgpu_loss::{cpu, DiceMode, Error, Inputs, Loss, Reduction, Tensor, Upstream};
use wgpu_loss::{Dice, Pairs, Pointwise, Rows};

const X: [f32; 6] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];

fn pair<'a>(x: &'a [f32], xs: &'a [usize], y: &'a [f32], ys: &'a [usize]) -> Inputs<'a> {
    Inputs::new(Tensor::new(x, xs)).target(Tensor::new(y, ys))
}

#[test]
fn shapes_and_lengths() {
    let e = rejects(
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::Mean,
        &pair(&X, &[6], &X[..3], &[3]),
        &[],
    );
    assert!(matches!(e, Error::Shape { name: "target", .. }), "{e}");
    let e = rejects(
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::Mean,
        &pair(&X, &[7], &X, &[7]),
        &[],
    );
    assert!(
        matches!(
            e,
            Error::DataLength {
                name: "input",
                expected: 7,
                actual: 6,
                ..
            }
        ),
        "{e}"
    );
    let e = rejects(
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::Mean,
        &pair(&X, &[6], &X, &[6]).weight(Tensor::new(&X[..4], &[4])),
        &[],
    );
    assert!(matches!(e, Error::Shape { name: "weight", .. }), "{e}");
    let e = rejects(
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::Mean,
        &Inputs::new(Tensor::new(&X, &[6])),
        &[],
    );
    assert!(matches!(e, Error::Missing { name: "target", .. }), "{e}");
    let e = rejects(
        &Loss::Pointwise(Pointwise::LogCosh),
        Reduction::Mean,
        &pair(&X, &[6], &X, &[6]).weight(Tensor::new(&X, &[6])),
        &[],
    );
    assert!(matches!(e, Error::Unexpected { name: "weight", .. }), "{e}");
    let q = Loss::Pointwise(Pointwise::Quantile {
        quantiles: Some(vec![0.1, 0.9]),
    });
    let e = rejects(&q, Reduction::Mean, &pair(&X, &[2, 3], &X[..2], &[2]), &[]);
    assert!(matches!(e, Error::Shape { name: "target", .. }), "{e}");
    let t = Loss::from_name("triplet_margin").unwrap();
    let e = rejects(
        &t,
        Reduction::Mean,
        &Inputs::new(Tensor::new(&X, &[2, 3])).positive(Tensor::new(&X, &[2, 3])),
        &[],
    );
    assert!(
        matches!(
            e,
            Error::Missing {
                name: "negative",
                ..
            }
        ),
        "{e}"
    );
    let e = rejects(
        &t,
        Reduction::Mean,
        &Inputs::new(Tensor::new(&X, &[1, 2, 3])),
        &[],
    );
    assert!(matches!(e, Error::Shape { name: "input", .. }), "{e}");
}

#[test]
fn class_targets() {
    let ce = Loss::from_name("cross_entropy").unwrap();
    let x = Tensor::new(&X, &[2, 3]);
    let e = rejects(
        &ce,
        Reduction::Mean,
        &Inputs::new(x).classes(&[1, 3], &[2]),
        &[],
    );
    assert!(
        matches!(
            e,
            Error::ClassOutOfRange {
                index: 1,
                value: 3,
                classes: 3,
                ..
            }
        ),
        "{e}"
    );
    let e = rejects(
        &ce,
        Reduction::Mean,
        &Inputs::new(x).classes(&[-1, 0], &[2]),
        &[],
    );
    assert!(
        matches!(
            e,
            Error::ClassOutOfRange {
                index: 0,
                value: -1,
                ..
            }
        ),
        "{e}"
    );
    let e = rejects(
        &ce,
        Reduction::Mean,
        &Inputs::new(x).classes(&[0, 1, 2], &[3]),
        &[],
    );
    assert!(matches!(e, Error::Shape { name: "target", .. }), "{e}");
    let e = rejects(
        &ce,
        Reduction::Mean,
        &Inputs::new(x)
            .classes(&[0, 1], &[2])
            .weight(Tensor::new(&X[..2], &[2])),
        &[],
    );
    assert!(matches!(e, Error::Shape { name: "weight", .. }), "{e}");
    let e = rejects(
        &Loss::Rows(Rows::CrossEntropy {
            ignore_index: 0,
            label_smoothing: 0.0,
        }),
        Reduction::Mean,
        &Inputs::new(x).target(x),
        &[],
    );
    assert!(
        matches!(
            e,
            Error::Param {
                name: "ignore_index",
                ..
            }
        ),
        "{e}"
    );
    let e = rejects(
        &Loss::from_name("nll").unwrap(),
        Reduction::Mean,
        &Inputs::new(x).target(x),
        &[],
    );
    assert!(matches!(e, Error::Shape { name: "target", .. }), "{e}");
    let dice = Loss::from_name("dice").unwrap();
    let e = rejects(
        &dice,
        Reduction::Mean,
        &Inputs::new(Tensor::new(&X, &[1, 3, 2])).classes(&[0, 5], &[1, 2]),
        &[],
    );
    assert!(matches!(e, Error::ClassOutOfRange { value: 5, .. }), "{e}");
}

#[test]
fn parameters_outside_their_domain() {
    let xy = pair(&X, &[6], &X, &[6]);
    let cases = [
        (Loss::Pointwise(Pointwise::Huber { delta: 0.0 }), "delta"),
        (
            Loss::Pointwise(Pointwise::Huber { delta: f32::NAN }),
            "delta",
        ),
        (Loss::Pointwise(Pointwise::SmoothL1 { beta: -1.0 }), "beta"),
        (
            Loss::Pointwise(Pointwise::Quantile {
                quantiles: Some(vec![0.5, 1.5]),
            }),
            "quantiles",
        ),
        (
            Loss::Pointwise(Pointwise::Quantile {
                quantiles: Some(vec![]),
            }),
            "quantiles",
        ),
        (
            Loss::Pointwise(Pointwise::SigmoidFocal {
                alpha: 0.25,
                gamma: -1.0,
            }),
            "gamma",
        ),
        (
            Loss::Pointwise(Pointwise::SigmoidFocal {
                alpha: f32::NAN,
                gamma: 2.0,
            }),
            "alpha",
        ),
        (
            Loss::Pointwise(Pointwise::PoissonNll {
                log_input: false,
                full: false,
                eps: -1e-8,
            }),
            "eps",
        ),
        (
            Loss::Pointwise(Pointwise::GaussianNll {
                full: false,
                eps: 0.0,
            }),
            "eps",
        ),
        (
            Loss::Rows(Rows::CrossEntropy {
                ignore_index: -100,
                label_smoothing: 1.5,
            }),
            "label_smoothing",
        ),
        (
            Loss::Rows(Rows::SoftmaxFocal {
                gamma: f32::NAN,
                ignore_index: -100,
            }),
            "gamma",
        ),
        (
            Loss::Pairs(Pairs::CosineEmbedding { margin: f32::NAN }),
            "margin",
        ),
        (
            Loss::Pairs(Pairs::TripletMargin {
                margin: 0.0,
                p: 2.0,
                eps: 1e-6,
                swap: false,
            }),
            "margin",
        ),
        (
            Loss::Pairs(Pairs::TripletMargin {
                margin: 1.0,
                p: 0.0,
                eps: 1e-6,
                swap: false,
            }),
            "p",
        ),
        (
            Loss::Pairs(Pairs::TripletMargin {
                margin: 1.0,
                p: 2.0,
                eps: -1.0,
                swap: false,
            }),
            "eps",
        ),
        (
            Loss::Dice(Dice {
                mode: DiceMode::Binary,
                from_logits: true,
                smooth: -1.0,
                eps: 1e-7,
                ignore_index: None,
                log_loss: false,
            }),
            "smooth",
        ),
    ];
    for (loss, param) in cases {
        let e = rejects(&loss, Reduction::Mean, &xy, &[]);
        assert!(
            matches!(e, Error::Param { name, .. } if name == param),
            "{loss:?}: {e}"
        );
    }
    let e = rejects(
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::BatchMean,
        &xy,
        &[],
    );
    assert!(
        matches!(
            e,
            Error::Reduction {
                reduction: "batchmean",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn probabilities_outside_the_unit_interval() {
    let bad = [0.5f32, 1.5, f32::NAN];
    for (x, y, name, index) in [
        (&bad[..2], &X[..2], "input", 1),
        (&X[..2], &bad[..2], "target", 1),
        (&bad[1..], &X[..2], "input", 0),
    ] {
        let e = rejects(
            &Loss::Pointwise(Pointwise::Bce),
            Reduction::Mean,
            &pair(x, &[2], y, &[2]),
            &[],
        );
        assert!(
            matches!(e, Error::OutOfUnitRange { name: n, index: i, .. } if n == name && i == index),
            "{e}"
        );
    }
}

#[test]
fn an_empty_tensor_cannot_declare_a_huge_class_count() {
    let dice = Loss::from_name("dice").unwrap();
    let e = rejects(
        &dice,
        Reduction::Mean,
        &Inputs::new(Tensor::new(&[], &[0, 1 << 40])).classes(&[], &[0]),
        &[],
    );
    assert!(matches!(e, Error::Shape { name: "input", .. }), "{e}");
}

#[test]
fn slice_api_errors_are_typed() {
    let x = [0.5f32; 3];
    let inputs = Inputs::new(Tensor::new(&x, &[3])).target(Tensor::new(&x, &[3]));
    let e = ctx()
        .evaluate_with_grad(
            &Loss::Pointwise(Pointwise::Mse),
            Reduction::Mean,
            &inputs,
            Upstream::Items(&x),
        )
        .unwrap_err();
    assert_eq!(e, Error::UpstreamReduction { reduction: "mean" });
    let e = ctx()
        .evaluate_with_grad(
            &Loss::Pointwise(Pointwise::Mse),
            Reduction::None,
            &inputs,
            Upstream::Items(&x[..2]),
        )
        .unwrap_err();
    assert_eq!(
        e,
        Error::UpstreamLength {
            expected: 3,
            actual: 2
        }
    );
}

/// The same from the twin's backward.
#[test]
fn upstream_errors_are_typed() {
    let case = Case::flat(
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
    let case = Case::new(dice(DiceMode::Multiclass, true, 0.0, None, false))
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
    let bad = Case::flat(Loss::Pointwise(Pointwise::Bce), &[1.5], &[0.0]);
    let e = cpu::gradient(
        &bad.loss,
        Reduction::None,
        &bad.inputs(),
        Upstream::Items(&[]),
    )
    .unwrap_err();
    assert!(matches!(e, Error::OutOfUnitRange { .. }), "{e}");
}
