//! The softmax-row losses (cross_entropy, nll, softmax_focal;
//! shaders/rows.wgsl, src/cpu/rows.rs): values and gradients on the GPU
//! against the float64 twin at awkward row counts, with class weights,
//! ignore_index, label smoothing, probability targets, K-dim inputs, extreme
//! logits, class counts up to 70 000, slices beyond one binding and caller
//! buffers; then the twin's gradients against finite differences and
//! PyTorch's conventions.

use crate::common::device::{
    buffer, buffer_with, encoder, read, read_all, small_binding_ctx, STORAGE,
};
use crate::common::finite::{self as fd, Case};
use crate::common::upstream::{calls, kind, upstream_items};
use crate::common::*;
use rand::Rng;
use std::collections::BTreeSet;
use wgpu_loss::cpu::rows::log_softmax;
use wgpu_loss::{
    cpu, BufferView, Context, DeviceInputs, DeviceTensor, DeviceUpstream, Error, GradViews, Inputs,
    Loss, Reduction, Rows, Tensor, Upstream, Value,
};
use wgpu_loss::{variant_names, with_forced_variant};

const IGNORE: i64 = -100;

fn ce(ignore_index: i64, label_smoothing: f32) -> Loss {
    Loss::Rows(Rows::CrossEntropy {
        ignore_index,
        label_smoothing,
    })
}

fn focal(gamma: f32, ignore_index: i64) -> Loss {
    Loss::Rows(Rows::SoftmaxFocal {
        gamma,
        ignore_index,
    })
}

/// Every row loss of the catalog with its defaults, and the given ignore_index.
fn losses(ignore_index: i64) -> Vec<Loss> {
    Loss::names()
        .filter_map(Loss::from_name)
        .filter(|l| matches!(l, Loss::Rows(_)))
        .map(|mut l| {
            l.set("ignore_index", Value::Int(ignore_index)).unwrap();
            l
        })
        .collect()
}

/// Random class targets in [0, C), every `ignored`-th one replaced by `ignore`.
fn classes(seed: u64, n: usize, c: usize, ignored: usize, ignore: i64) -> Vec<i64> {
    let mut r = rng(seed);
    (0..n)
        .map(|i| {
            if ignored > 0 && i % ignored == 3 % ignored {
                ignore
            } else {
                r.random_range(0..c as i64)
            }
        })
        .collect()
}

/// Class weights in [0.5, 3) with class 1 (when there is one) weighted 0.
fn class_weight(seed: u64, c: usize) -> Vec<f32> {
    let mut w = uniform(&mut rng(seed), c, 0.5, 3.0);
    if c > 1 {
        w[1] = 0.0;
    }
    w
}

/// Probability targets of `shape` (class dim 1, or 0 for 1-D input): each row
/// a random distribution, some rows one-hot.
fn prob_targets(seed: u64, shape: &[usize]) -> Vec<f32> {
    let mut r = rng(seed);
    let n: usize = shape.iter().product();
    let (c, inner) = if shape.len() == 1 {
        (shape[0], 1)
    } else {
        (shape[1], shape[2..].iter().product())
    };
    let mut t = uniform(&mut r, n, 0.0, 1.0);
    if c == 0 {
        return t;
    }
    for row in 0..n / c {
        let (b, s) = (row / inner, row % inner);
        let at = |k: usize| (b * c + k) * inner + s;
        if row % 5 == 0 {
            let hot = r.random_range(0..c);
            for k in 0..c {
                t[at(k)] = (k == hot) as u8 as f32;
            }
        } else {
            let total: f32 = (0..c).map(|k| t[at(k)]).sum();
            for k in 0..c {
                t[at(k)] /= total;
            }
        }
    }
    t
}

/// Checks `loss` on every reduction, with and without the class weight.
fn check_all(what: &str, loss: &Loss, inputs: &Inputs<'_>, weight: &[f32]) {
    let shape = [weight.len()];
    for red in REDUCTIONS {
        check(&format!("{what} {loss:?} {red:?}"), loss, red, inputs);
        check(
            &format!("{what} {loss:?} weighted {red:?}"),
            loss,
            red,
            &inputs.weight(Tensor::new(weight, &shape)),
        );
    }
}

/// An output buffer of `values` f32 (at least 4).
fn output(ctx: &Context, values: usize) -> wgpu::Buffer {
    buffer(ctx, &vec![0.0f32; values.max(4)])
}

/// The losses of the gradient tests: the three with their defaults, and
/// smoothing and other γ.
fn gradient_losses() -> Vec<Loss> {
    losses(IGNORE)
        .into_iter()
        .chain([ce(IGNORE, 0.1), focal(0.5, IGNORE), focal(0.0, IGNORE)])
        .collect()
}

/// The gradients of every row loss and reduction on `(N, C, d..)` logits,
/// with and without a class weight, and of cross_entropy on probability
/// targets.
fn check_rows(ctx: &Context, shape: &[usize], seed: u64) {
    let n: usize = shape.iter().product();
    let c = shape[1];
    let mut items = vec![shape[0]];
    items.extend_from_slice(&shape[2..]);
    let rows: usize = items.iter().product();
    let x = uniform(&mut rng(seed), n, -6.0, 6.0);
    let y = classes(seed + 1, rows, c, 7, IGNORE);
    let w = class_weight(seed + 2, c);
    let ws = [c];
    let u = upstream_items(rows, seed + 3);
    let inputs = Inputs::new(Tensor::new(&x, shape)).classes(&y, &items);
    let weighted = inputs.weight(Tensor::new(&w, &ws));
    for loss in gradient_losses() {
        for (red, up) in calls(&u) {
            let what = format!("{shape:?} {loss:?} {red:?}");
            check_grad_on(ctx, &what, &loss, red, &inputs, up);
            check_grad_on(ctx, &format!("{what} weighted"), &loss, red, &weighted, up);
        }
    }
    let t = prob_targets(seed + 4, shape);
    let probs = Inputs::new(Tensor::new(&x, shape)).target(Tensor::new(&t, shape));
    for loss in [ce(IGNORE, 0.0), ce(IGNORE, 0.1)] {
        for (red, up) in calls(&u) {
            let what = format!("{shape:?} {loss:?} probabilities {red:?}");
            check_grad_on(ctx, &what, &loss, red, &probs, up);
            let weighted = probs.weight(Tensor::new(&w, &ws));
            check_grad_on(ctx, &format!("{what} weighted"), &loss, red, &weighted, up);
        }
    }
}

#[test]
fn every_row_loss_matches_the_reference_at_awkward_row_counts() {
    let c = 7;
    for (k, &n) in [1usize, 255, 256, 257, 65_537].iter().enumerate() {
        let seed = 10 * k as u64;
        let x = uniform(&mut rng(seed), n * c, -6.0, 6.0);
        let y = classes(seed + 1, n, c, 13, IGNORE);
        let w = class_weight(seed + 2, c);
        let (shape, items) = ([n, c], [n]);
        let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
        for loss in losses(IGNORE) {
            check_all(&format!("n={n}"), &loss, &inputs, &w);
        }
        for loss in [
            ce(IGNORE, 0.1),
            ce(IGNORE, 1.0),
            focal(0.5, IGNORE),
            focal(0.0, IGNORE),
        ] {
            check_all(&format!("n={n}"), &loss, &inputs, &w);
        }
        let t = prob_targets(seed + 3, &shape);
        let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&t, &shape));
        for loss in [ce(IGNORE, 0.0), ce(IGNORE, 0.1)] {
            check_all(&format!("n={n} probabilities"), &loss, &inputs, &w);
        }
    }
}

#[test]
fn a_million_logits() {
    let (n, c) = (2000, 500);
    let x = uniform(&mut rng(1), n * c, -10.0, 10.0);
    let y = classes(2, n, c, 17, IGNORE);
    let w = class_weight(3, c);
    let (shape, items) = ([n, c], [n]);
    let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
    for loss in [
        ce(IGNORE, 0.0),
        Loss::Rows(Rows::Nll {
            ignore_index: IGNORE,
        }),
        focal(2.0, IGNORE),
        ce(IGNORE, 0.1),
    ] {
        check_all("2000x500", &loss, &inputs, &w);
    }
    let t = prob_targets(4, &shape);
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&t, &shape));
    check_all("2000x500 probabilities", &ce(IGNORE, 0.0), &inputs, &w);
    check_all("2000x500 probabilities", &ce(IGNORE, 0.2), &inputs, &w);
}

#[test]
fn ignore_index_may_be_a_valid_class() {
    let (n, c) = (300, 4);
    let x = uniform(&mut rng(5), n * c, -3.0, 3.0);
    // Class 0 is both a target and ignore_index.
    let y = classes(6, n, c, 0, 0);
    let w = class_weight(7, c);
    let (shape, items) = ([n, c], [n]);
    let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
    for loss in [
        ce(0, 0.0),
        Loss::Rows(Rows::Nll { ignore_index: 0 }),
        focal(2.0, 0),
        ce(0, 0.1),
        ce(0, 1.0),
    ] {
        check_all("ignore_index=0", &loss, &inputs, &w);
    }
}

#[test]
fn k_dim_inputs() {
    for shape in [vec![3usize, 5, 7, 11], vec![2, 3, 4], vec![4, 6, 1, 9]] {
        let n: usize = shape.iter().product();
        let c = shape[1];
        let mut items = vec![shape[0]];
        items.extend_from_slice(&shape[2..]);
        let rows: usize = items.iter().product();
        let x = uniform(&mut rng(8), n, -5.0, 5.0);
        let y = classes(9, rows, c, 7, IGNORE);
        let w = class_weight(10, c);
        let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
        for loss in losses(IGNORE)
            .into_iter()
            .chain([ce(IGNORE, 0.1), ce(IGNORE, 1.0)])
        {
            check_all(&format!("{shape:?}"), &loss, &inputs, &w);
        }
        let t = prob_targets(11, &shape);
        let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&t, &shape));
        for loss in [ce(IGNORE, 0.0), ce(IGNORE, 0.1)] {
            check_all(&format!("{shape:?} probabilities"), &loss, &inputs, &w);
        }
    }
}

#[test]
fn one_dim_input_and_a_single_class() {
    // Input (C) with a scalar target.
    let x = [0.5f32, -1.0, 2.0, 0.0, 1.5];
    let w = class_weight(12, 5);
    for y in [0i64, 2, 4, IGNORE] {
        let inputs = Inputs::new(Tensor::new(&x, &[5])).classes(std::slice::from_ref(&y), &[]);
        for loss in losses(IGNORE).into_iter().chain([ce(IGNORE, 0.1)]) {
            check_all(&format!("(C) y={y}"), &loss, &inputs, &w);
        }
    }
    let t = [0.1f32, 0.2, 0.3, 0.0, 0.4];
    let inputs = Inputs::new(Tensor::new(&x, &[5])).target(Tensor::new(&t, &[5]));
    check_all("(C) probabilities", &ce(IGNORE, 0.0), &inputs, &w);
    check_all("(C) probabilities", &ce(IGNORE, 0.3), &inputs, &w);

    // C = 1: the softmax is 1, so cross_entropy is 0 (or NaN/inf at -inf).
    let x = [3.0f32, -2.0, 0.0, 100.0, -100.0, 7.5];
    let y = [0i64, 0, IGNORE, 0, 0, 0];
    let w = [2.0f32];
    let inputs = Inputs::new(Tensor::new(&x, &[6, 1])).classes(&y, &[6]);
    for loss in losses(IGNORE)
        .into_iter()
        .chain([ce(IGNORE, 0.1), ce(IGNORE, 1.0)])
    {
        check_all("C=1", &loss, &inputs, &w);
    }
    let t = [1.0f32, 0.5, 0.0, 2.0, 1.0, 0.25];
    let inputs = Inputs::new(Tensor::new(&x, &[6, 1])).target(Tensor::new(&t, &[6, 1]));
    check_all("C=1 probabilities", &ce(IGNORE, 0.0), &inputs, &w);
}

#[test]
fn extreme_and_infinite_logits() {
    let ninf = f32::NEG_INFINITY;
    let c = 4;
    #[rustfmt::skip]
    let x = [
        100.0, -100.0, 0.0, 1.0,
        -100.0, 100.0, 100.0, -100.0,
        100.0, 100.0, 100.0, 100.0,
        ninf, 1.0, 2.0, ninf,
        ninf, 1.0, 2.0, ninf,
        ninf, ninf, ninf, ninf,
        ninf, 3.0, ninf, ninf,
        1.0, 1.0 + 1e-6, 30.0, -30.0,
        50.0, 0.0, 0.0, 0.0,
    ];
    let rows = x.len() / c;
    // Targets: the dominant class, a far-off class, the -inf class (row 4).
    let y = [0i64, 3, 2, 2, 0, 1, 1, 2, 0];
    let (shape, items) = ([rows, c], [rows]);
    let w = [1.0f32, 2.0, 0.5, 3.0];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
    let extra = [
        ce(IGNORE, 0.1),
        ce(IGNORE, 1.0),
        focal(0.0, IGNORE),
        focal(0.5, IGNORE),
        focal(3.0, IGNORE),
    ];
    for loss in losses(IGNORE).into_iter().chain(extra.clone()) {
        check_all("extremes", &loss, &inputs, &w);
    }
    // A zero weight on a -inf class: 0 * inf is NaN with smoothing, as in the reference.
    let w0 = [0.0f32, 2.0, 0.5, 3.0];
    for red in REDUCTIONS {
        let i = inputs.weight(Tensor::new(&w0, &[4]));
        check(
            &format!("-inf at zero weight {red:?}"),
            &ce(IGNORE, 0.1),
            red,
            &i,
        );
    }
    // Probability targets: 0 at a -inf logit gives NaN (0 * inf), as in the reference.
    #[rustfmt::skip]
    let t = [
        1.0, 0.0, 0.0, 0.0,
        0.0, 0.5, 0.5, 0.0,
        0.25, 0.25, 0.25, 0.25,
        0.0, 0.5, 0.5, 0.0,
        0.0, 0.0, 1.0, 0.0,
        0.25, 0.25, 0.25, 0.25,
        0.1, 0.9, 0.0, 0.0,
        0.0, 0.0, 1.0, 0.0,
        1.0, 0.0, 0.0, 0.0,
    ];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&t, &shape));
    for loss in [ce(IGNORE, 0.0), ce(IGNORE, 0.1)] {
        check_all("extremes probabilities", &loss, &inputs, &w);
    }
    // The finite rows alone, so that a reduced value is checked as a number.
    let (finite, shape) = (3 * c, [3, c]);
    let inputs =
        Inputs::new(Tensor::new(&x[..finite], &shape)).target(Tensor::new(&t[..finite], &shape));
    check_all("±100 probabilities", &ce(IGNORE, 0.1), &inputs, &w);
    let inputs = Inputs::new(Tensor::new(&x[..finite], &shape)).classes(&y[..3], &[3]);
    for loss in losses(IGNORE).into_iter().chain(extra) {
        check_all("±100", &loss, &inputs, &w);
    }
}

#[test]
fn plain_cross_entropy_stays_finite_next_to_minus_inf() {
    // docs/semantics.md, cross_entropy: logits [-inf, 1, 2], target 2 → 0.3132617; inf with ε = 0.1.
    let x = [f32::NEG_INFINITY, 1.0, 2.0];
    let y = [2i64];
    let inputs = Inputs::new(Tensor::new(&x, &[1, 3])).classes(&y, &[1]);
    let plain = ctx()
        .evaluate(&ce(IGNORE, 0.0), Reduction::Mean, &inputs)
        .unwrap();
    assert!((plain.value - 0.3132617).abs() < 1e-6, "{}", plain.value);
    let smooth = ctx()
        .evaluate(&ce(IGNORE, 0.1), Reduction::Mean, &inputs)
        .unwrap();
    assert_eq!(smooth.value, f64::INFINITY);
}

#[test]
fn worked_examples_from_the_reference() {
    // torch: z = [[1,2,3],[1,1,1]], targets [2,0]; F.cross_entropy(z, y, ...).
    let z = [1.0f32, 2.0, 3.0, 1.0, 1.0, 1.0];
    let y = [2i64, 0];
    let w = [1.0f32, 2.0, 3.0];
    let base = Inputs::new(Tensor::new(&z, &[2, 3])).classes(&y, &[2]);
    let weighted = base.weight(Tensor::new(&w, &[3]));
    let value = |loss: &Loss, red, i: &Inputs<'_>| ctx().evaluate(loss, red, i).unwrap().value;
    let cases = [
        (value(&ce(IGNORE, 0.0), Reduction::Mean, &base), 0.7531091),
        (
            value(&ce(IGNORE, 0.0), Reduction::Sum, &weighted),
            2.3214302,
        ),
        (
            value(&ce(IGNORE, 0.0), Reduction::Mean, &weighted),
            0.5803575,
        ),
        (value(&ce(IGNORE, 0.1), Reduction::Mean, &base), 0.8031091),
        (
            value(&ce(IGNORE, 0.1), Reduction::Mean, &weighted),
            0.6309660,
        ),
        (
            value(
                &ce(IGNORE, 1.0),
                Reduction::Mean,
                &Inputs::new(Tensor::new(&z[..3], &[1, 3])).classes(&y[..1], &[1]),
            ),
            1.4076060,
        ),
    ];
    for (k, (got, want)) in cases.iter().enumerate() {
        assert!((got - want).abs() < 2e-6, "case {k}: {got} vs {want}");
    }
    // Probability targets: one-hot + weight divides by N, not Σw.
    let t = [0.0f32, 0.0, 1.0, 1.0, 0.0, 0.0];
    let probs = Inputs::new(Tensor::new(&z, &[2, 3]))
        .target(Tensor::new(&t, &[2, 3]))
        .weight(Tensor::new(&w, &[3]));
    let got = value(&ce(IGNORE, 0.0), Reduction::Mean, &probs);
    assert!((got - 1.1607151).abs() < 2e-6, "{got}");
    let soft = [0.2f32, 0.3, 0.5, 0.6, 0.2, 0.2];
    let got = value(
        &ce(IGNORE, 0.0),
        Reduction::Mean,
        &Inputs::new(Tensor::new(&z, &[2, 3])).target(Tensor::new(&soft, &[2, 3])),
    );
    assert!((got - 1.1031091).abs() < 2e-6, "{got}");
    // nll on the log-probabilities of the same rows, weighted → 0.5803575.
    let logp: Vec<f32> = z
        .chunks(3)
        .flat_map(|row| log_softmax(&row.iter().map(|v| *v as f64).collect::<Vec<_>>()))
        .map(|v| v as f32)
        .collect();
    let nll = Inputs::new(Tensor::new(&logp, &[2, 3]))
        .classes(&y, &[2])
        .weight(Tensor::new(&w, &[3]));
    let got = value(
        &Loss::Rows(Rows::Nll {
            ignore_index: IGNORE,
        }),
        Reduction::Mean,
        &nll,
    );
    assert!((got - 0.5803575).abs() < 2e-6, "{got}");
}

#[test]
fn focal_with_gamma_zero_is_cross_entropy() {
    let (n, c) = (257, 9);
    let x = uniform(&mut rng(13), n * c, -8.0, 8.0);
    let y = classes(14, n, c, 11, IGNORE);
    let w = class_weight(15, c);
    let (shape, items, ws) = ([n, c], [n], [c]);
    let inputs = Inputs::new(Tensor::new(&x, &shape))
        .classes(&y, &items)
        .weight(Tensor::new(&w, &ws));
    for red in REDUCTIONS {
        let a = ctx().evaluate(&focal(0.0, IGNORE), red, &inputs).unwrap();
        let b = ctx().evaluate(&ce(IGNORE, 0.0), red, &inputs).unwrap();
        assert_eq!(a.items, b.items, "{red:?}");
        assert!(
            close(a.value, b.value, 0.0),
            "{red:?}: {} vs {}",
            a.value,
            b.value
        );
    }
}

#[test]
fn focal_keeps_precision_when_the_target_dominates() {
    // p_t within 1e-3..1e-7 of 1: (1 - p_t)^γ comes from expm1, not 1 - p_t.
    let (n, c) = (64, 5);
    let mut x = vec![0.0f32; n * c];
    let y: Vec<i64> = (0..n as i64).map(|i| i % c as i64).collect();
    for r in 0..n {
        x[r * c + y[r] as usize] = 6.0 + 10.0 * r as f32 / n as f32;
    }
    let (shape, items) = ([n, c], [n]);
    let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
    for loss in [
        focal(2.0, IGNORE),
        focal(0.5, IGNORE),
        focal(4.0, IGNORE),
        ce(IGNORE, 0.0),
    ] {
        for red in REDUCTIONS {
            // No absolute slack: the items are far below 1e-6.
            check_tol(
                &format!("{loss:?} p_t ≈ 1 {red:?}"),
                &loss,
                red,
                &inputs,
                0.0,
            );
        }
    }
}

#[test]
fn all_rows_ignored_and_empty_batches() {
    let (n, c) = (300, 6);
    let x = uniform(&mut rng(16), n * c, -2.0, 2.0);
    let y = vec![IGNORE; n];
    let w = class_weight(17, c);
    let (shape, items) = ([n, c], [n]);
    let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
    for loss in losses(IGNORE).into_iter().chain([ce(IGNORE, 0.1)]) {
        check_all("all ignored", &loss, &inputs, &w);
        let mean = ctx().evaluate(&loss, Reduction::Mean, &inputs).unwrap();
        assert!(mean.value.is_nan(), "{loss:?}: mean {}", mean.value);
        assert_eq!(
            ctx()
                .evaluate(&loss, Reduction::Sum, &inputs)
                .unwrap()
                .value,
            0.0
        );
    }
    // Every selected weight zero: the mean is NaN as well.
    let y = vec![1i64; n];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
    for loss in losses(IGNORE) {
        check_all("zero weights", &loss, &inputs, &w);
    }
    // No rows at all.
    let empty = [0, c];
    let inputs = Inputs::new(Tensor::new(&[], &empty)).classes(&[], &[0]);
    for loss in losses(IGNORE) {
        check_all("empty", &loss, &inputs, &w);
    }
    let inputs = Inputs::new(Tensor::new(&[], &empty)).target(Tensor::new(&[], &empty));
    check_all("empty probabilities", &ce(IGNORE, 0.0), &inputs, &w);
    // Rows without classes: every index target is ignored; a probability row sums nothing.
    let (no_classes, items) = ([3, 0], [3]);
    let inputs = Inputs::new(Tensor::new(&[], &no_classes)).classes(&[IGNORE; 3], &items);
    for loss in losses(IGNORE) {
        check_all("C=0", &loss, &inputs, &[]);
    }
    let inputs = Inputs::new(Tensor::new(&[], &no_classes)).target(Tensor::new(&[], &no_classes));
    check_all("C=0 probabilities", &ce(IGNORE, 0.1), &inputs, &[]);
}

#[test]
fn wide_rows_of_contiguous_logits() {
    // Rows of at least 2048 contiguous classes take a workgroup each by
    // default, and a few rows of 70 000 are split across workgroups.
    for (n, c) in [(1usize, 2048usize), (257, 3001), (3, 70_000)] {
        let seed = c as u64;
        let mut x = uniform(&mut rng(seed), n * c, -12.0, 12.0);
        // A masked vocabulary in row 0, and a dominant logit in the last row.
        for k in (0..c).step_by(3) {
            x[k] = f32::NEG_INFINITY;
        }
        let mut y = classes(seed + 1, n, c, 5, IGNORE);
        if y[0] >= 0 && y[0] % 3 == 0 {
            y[0] = 1;
        }
        let last = (n - 1) * c;
        x[last + 17] = 40.0;
        if y[n - 1] >= 0 {
            y[n - 1] = 17;
        }
        let w = class_weight(seed + 2, c);
        let (shape, items) = ([n, c], [n]);
        let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
        for loss in losses(IGNORE)
            .into_iter()
            .chain([ce(IGNORE, 0.1), focal(0.5, IGNORE)])
        {
            check_all(&format!("wide {n}x{c}"), &loss, &inputs, &w);
        }
        // Without the -inf logits, probability targets.
        for k in (0..c).step_by(3) {
            x[k] = -3.0;
        }
        let t = prob_targets(seed + 3, &shape);
        let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&t, &shape));
        for loss in [ce(IGNORE, 0.0), ce(IGNORE, 0.1)] {
            check_all(&format!("wide {n}x{c} probabilities"), &loss, &inputs, &w);
        }
    }
}

#[test]
fn long_strided_rows() {
    // inner > 1: 16 256 classes is the longest row one thread walks alone
    // (a scan and a gradient walk within half of llvmpipe's loop limit); from
    // 16 257 on a workgroup shares each strided row, at 70 000 split rows.
    for (n, c, d) in [
        (2usize, 16_256usize, 3usize),
        (1, 16_257, 2),
        (2, 70_000, 3),
    ] {
        let seed = c as u64;
        let shape = [n, c, d];
        let x = uniform(&mut rng(seed), n * c * d, -12.0, 12.0);
        let y = classes(seed + 1, n * d, c, 4, IGNORE);
        let w = class_weight(seed + 2, c);
        let items = [n, d];
        let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
        for loss in losses(IGNORE).into_iter().chain([ce(IGNORE, 0.1)]) {
            check_all(&format!("{shape:?}"), &loss, &inputs, &w);
        }
        let t = prob_targets(seed + 3, &shape);
        let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&t, &shape));
        check_all(
            &format!("{shape:?} probabilities"),
            &ce(IGNORE, 0.1),
            &inputs,
            &w,
        );
    }
}

/// Slices that start off the 256-byte grid in the logits, the targets and
/// the items: bound from the boundary before, with the skip as a parameter.
#[test]
fn small_bindings_cut_the_batch_into_slices() {
    let ctx = small_binding_ctx(4096);
    assert_eq!(ctx.max_binding_elements(), 4096);
    // (N, C, inner): plain rows, K-dim rows, rows of one batch entry per
    // slice, wide rows (C >= 2048) two per slice.
    for shape in [
        vec![3001usize, 7],
        vec![517, 5, 13],
        vec![9, 3, 1111],
        vec![7, 2048],
        vec![3, 2, 2001],
    ] {
        let n: usize = shape.iter().product();
        let c = shape[1];
        let mut items = vec![shape[0]];
        items.extend_from_slice(&shape[2..]);
        let rows: usize = items.iter().product();
        let x = uniform(&mut rng(30), n, -5.0, 5.0);
        let y = classes(31, rows, c, 7, IGNORE);
        let w = class_weight(32, c);
        let ws = [c];
        let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
        let weighted = inputs.weight(Tensor::new(&w, &ws));
        for loss in losses(IGNORE).into_iter().chain([ce(IGNORE, 0.1)]) {
            for red in REDUCTIONS {
                let what = format!("{shape:?} {loss:?} {red:?}");
                check_on(&ctx, &what, &loss, red, &inputs, 1e-6);
                check_on(
                    &ctx,
                    &format!("{what} weighted"),
                    &loss,
                    red,
                    &weighted,
                    1e-6,
                );
            }
        }
        let t = prob_targets(33, &shape);
        let inputs = Inputs::new(Tensor::new(&x, &shape))
            .target(Tensor::new(&t, &shape))
            .weight(Tensor::new(&w, &ws));
        for red in REDUCTIONS {
            let what = format!("{shape:?} probabilities {red:?}");
            check_on(&ctx, &what, &ce(IGNORE, 0.1), red, &inputs, 1e-6);
        }
    }
    // 4097 logits per batch entry fit no binding.
    let x = vec![0.0f32; 4097];
    let inputs = Inputs::new(Tensor::new(&x, &[1, 4097])).classes(&[0], &[1]);
    let err = ctx.evaluate(&ce(IGNORE, 0.0), Reduction::Mean, &inputs);
    assert!(matches!(err, Err(Error::TooLarge { .. })), "{err:?}");
}

/// 70 000 x 512 logits: more than one 2^25-value binding on lavapipe.
#[test]
fn logits_longer_than_one_binding() {
    let (n, c) = (70_000, 512);
    let x = uniform(&mut rng(40), n * c, -8.0, 8.0);
    let y = classes(41, n, c, 13, IGNORE);
    let w = class_weight(42, c);
    let (shape, items, ws) = ([n, c], [n], [c]);
    let inputs = Inputs::new(Tensor::new(&x, &shape))
        .classes(&y, &items)
        .weight(Tensor::new(&w, &ws));
    for red in REDUCTIONS {
        check(&format!("{n}x{c} {red:?}"), &ce(IGNORE, 0.0), red, &inputs);
    }
    let slices = (n * c).div_ceil(ctx().max_binding_elements());
    let prepared = ctx()
        .prepare(&ce(IGNORE, 0.0), Reduction::Mean, &inputs)
        .unwrap();
    assert_eq!(
        prepared.dispatches(),
        slices + 1,
        "slices and the finalize pass"
    );
}

/// K-dim logits (130, 4, 65 536), longer than a binding on lavapipe: each
/// batch entry's rows are strided by 65 536.
#[test]
fn k_dim_logits_longer_than_one_binding() {
    let shape = [130usize, 4, 65_536];
    let n: usize = shape.iter().product();
    let x = uniform(&mut rng(43), n, -4.0, 4.0);
    let items = [130usize, 65_536];
    let y = classes(44, 130 * 65_536, 4, 11, IGNORE);
    let w = class_weight(45, 4);
    let inputs = Inputs::new(Tensor::new(&x, &shape))
        .classes(&y, &items)
        .weight(Tensor::new(&w, &[4]));
    for red in [Reduction::Mean, Reduction::None] {
        check(
            &format!("{shape:?} {red:?}"),
            &ce(IGNORE, 0.0),
            red,
            &inputs,
        );
    }
}

/// One evaluator, two sets of buffers of the same shapes (the second at an
/// offset into larger buffers), both encoded before one submit.
#[test]
fn an_evaluator_serves_other_buffers_of_the_same_shapes() {
    let ctx = small_binding_ctx(4096);
    let (n, c) = (1500usize, 11usize);
    let (shape, items, ws) = ([n, c], [n], [c]);
    let data = |seed| {
        let x = uniform(&mut rng(seed), n * c, -6.0, 6.0);
        let y = classes(seed + 1, n, c, 9, IGNORE);
        (x, y)
    };
    let w = class_weight(50, c);
    let sets = [data(51), data(52)];
    let offsets = [0usize, 512];
    let bufs: Vec<_> = sets
        .iter()
        .zip(offsets)
        .map(|((x, y), at)| {
            let y: Vec<i32> = y.iter().map(|&v| v as i32).collect();
            (
                buffer_with(&ctx, x, at, STORAGE),
                buffer_with(&ctx, &y, at, STORAGE),
            )
        })
        .collect();
    let wbuf = buffer_with(&ctx, &w, 0, STORAGE);
    let device = |k: usize| {
        let (xb, yb) = &bufs[k];
        let at = offsets[k] as u64;
        DeviceInputs::new(DeviceTensor::new(BufferView::new(xb, at, n * c), &shape))
            .classes(DeviceTensor::new(BufferView::new(yb, at, n), &items))
            .weight(DeviceTensor::new(BufferView::new(&wbuf, 0, c), &ws))
    };
    for loss in losses(IGNORE) {
        for red in REDUCTIONS {
            let eval = ctx.evaluator(&loss, red, &device(0)).unwrap();
            let len = eval.output_len();
            let outs = [output(&ctx, len), output(&ctx, len)];
            let mut enc = encoder(&ctx);
            for (k, out) in outs.iter().enumerate() {
                eval.encode(&mut enc, &device(k), BufferView::whole(out))
                    .unwrap();
            }
            // The first read submits both encodes.
            let got = [
                read(&ctx, enc, &outs[0], len),
                read(&ctx, encoder(&ctx), &outs[1], len),
            ];
            for (k, (x, y)) in sets.iter().enumerate() {
                let inputs = Inputs::new(Tensor::new(x, &shape))
                    .classes(y, &items)
                    .weight(Tensor::new(&w, &ws));
                let want = cpu::evaluate(&loss, red, &inputs).unwrap();
                let want = if red == Reduction::None {
                    want.items
                } else {
                    vec![want.value]
                };
                for (i, (g, w)) in got[k].iter().zip(&want).enumerate() {
                    assert!(
                        close(*g as f64, *w, 1e-6),
                        "{loss:?} {red:?} set {k} value {i}: gpu {g} vs reference {w}"
                    );
                }
            }
        }
    }
}

/// A class index outside [0, C) that is not ignore_index gives NaN for its
/// row (and the mean) rather than a read out of bounds; ignored rows stay 0.
#[test]
fn bad_class_indices_on_the_device_give_nan() {
    let ctx = ctx();
    // `main` (C = 3) and `wide` (C = 3000) rows.
    for c in [3usize, 3000] {
        let n = 6;
        let (shape, items, ws) = ([n, c], [n], [c]);
        let x = uniform(&mut rng(60), n * c, -3.0, 3.0);
        let w = class_weight(61, c);
        for ignore in [IGNORE, -1] {
            let y = [0i32, c as i32, ignore as i32, -2, 2, i32::MAX];
            let bad = [false, true, false, true, false, true];
            let (xb, yb, wb) = (
                buffer_with(ctx, &x, 0, STORAGE),
                buffer_with(ctx, &y, 0, STORAGE),
                buffer_with(ctx, &w, 0, STORAGE),
            );
            let device = DeviceInputs::new(DeviceTensor::new(BufferView::whole(&xb), &shape))
                .classes(DeviceTensor::new(BufferView::new(&yb, 0, n), &items))
                .weight(DeviceTensor::new(BufferView::new(&wb, 0, c), &ws));
            // The good rows as the reference sees them.
            let good: Vec<i64> = y
                .iter()
                .zip(bad)
                .map(|(&v, b)| if b { ignore } else { v as i64 })
                .collect();
            let host = Inputs::new(Tensor::new(&x, &shape))
                .classes(&good, &items)
                .weight(Tensor::new(&w, &ws));
            let losses = [
                ce(ignore, 0.0),
                ce(ignore, 0.1),
                Loss::Rows(Rows::Nll {
                    ignore_index: ignore,
                }),
                focal(2.0, ignore),
            ];
            for loss in losses {
                let want = cpu::evaluate(&loss, Reduction::None, &host).unwrap();
                for red in REDUCTIONS {
                    let eval = ctx.evaluator(&loss, red, &device).unwrap();
                    let out = output(ctx, eval.output_len());
                    let mut enc = encoder(ctx);
                    eval.encode(&mut enc, &device, BufferView::whole(&out))
                        .unwrap();
                    let got = &read(ctx, enc, &out, eval.output_len());
                    let what = format!("C={c} ignore={ignore} {loss:?} {red:?}");
                    if red != Reduction::None {
                        assert!(got[0].is_nan(), "{what}: {}", got[0]);
                        continue;
                    }
                    for (i, g) in got.iter().enumerate() {
                        if bad[i] {
                            assert!(g.is_nan(), "{what}: row {i}: {g}");
                        } else {
                            let w = want.items[i];
                            assert!(close(*g as f64, w, 1e-6), "{what}: row {i}: {g} vs {w}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn every_row_gradient_matches_the_reference() {
    // Thread-per-row at awkward row counts, K-dim rows, one-class rows, and
    // workgroup-per-row (`wide`) for 2048 contiguous and 16 384 strided classes.
    for (k, shape) in [
        vec![1usize, 5],
        vec![255, 7],
        vec![257, 3],
        vec![4099, 10],
        vec![6, 1],
        vec![5, 4, 3, 7],
        vec![3, 2048],
        vec![2, 16_384, 2],
    ]
    .into_iter()
    .enumerate()
    {
        check_rows(ctx(), &shape, 10 * k as u64);
    }
}

#[test]
fn row_gradients_in_slices_beyond_one_binding() {
    // Bindings of 4096 values: the batch is cut into slices that start off the
    // 256-byte grid; each slice writes its part of the gradient in place.
    let small = small_binding_ctx(4096);
    for (k, shape) in [vec![3001usize, 7], vec![517, 5, 13], vec![7, 2048]]
        .into_iter()
        .enumerate()
    {
        check_rows(&small, &shape, 100 + k as u64);
    }
}

#[test]
fn row_gradients_at_extreme_logits() {
    let ninf = f32::NEG_INFINITY;
    let c = 4;
    #[rustfmt::skip]
    let x = [
        100.0, -100.0, 0.0, 1.0,
        -100.0, 100.0, 100.0, -100.0,
        100.0, 100.0, 100.0, 100.0,
        ninf, 1.0, 2.0, ninf,
        1.0, 1.0 + 1e-6, 30.0, -30.0,
        50.0, 0.0, 0.0, 0.0,
        0.0, -40.0, -40.0, -40.0,
        20.0, -20.0, -20.0, -20.0,
        1000.0, 968.5, 900.0, 900.0,
        1.0, -30.5, -99.0, -99.0,
    ];
    let rows = x.len() / c;
    let y = [0i64, 3, 2, 2, 0, 0, 0, 0, 0, 0];
    let w = [1.0f32, 2.0, 0.5, 3.0];
    let (shape, items) = ([rows, c], [rows]);
    let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
    let weighted = inputs.weight(Tensor::new(&w, &[4]));
    for loss in gradient_losses()
        .into_iter()
        .chain([focal(3.0, IGNORE), focal(1.0, IGNORE)])
    {
        for (red, up) in calls(&upstream_items(rows, 7)) {
            let what = format!("extremes {loss:?} {red:?}");
            check_grad(&what, &loss, red, &inputs, up);
            check_grad(&format!("{what} weighted"), &loss, red, &weighted, up);
        }
    }
    // A dominating target saturates the float64 p_t: focal with 0 < γ < 1 is
    // NaN there (0·∞ in PyTorch's backward). Rows 8 and 9 have the same
    // 2e-14 share of the other classes: lse = m + 2e-14 rounds to m only at
    // m = 1000.
    let g = check_grad(
        "saturated focal",
        &focal(0.5, IGNORE),
        Reduction::Sum,
        &inputs,
        Upstream::Scalar(1.0),
    );
    let nan_rows: Vec<usize> = (0..rows)
        .filter(|r| g.input[r * c..(r + 1) * c].iter().any(|v| v.is_nan()))
        .collect();
    assert_eq!(nan_rows, vec![0, 5, 6, 7, 8]);
}

#[test]
fn row_means_over_nothing_and_over_zero_weight() {
    let z = [1.0f32, 2.0, 3.0, 1.0, 1.0, 1.0];
    // All rows ignored: NaN value and a zero gradient.
    let ignored = Inputs::new(Tensor::new(&z, &[2, 3])).classes(&[IGNORE, IGNORE], &[2]);
    for loss in gradient_losses() {
        let g = check_grad(
            &format!("{loss:?} all ignored"),
            &loss,
            Reduction::Mean,
            &ignored,
            Upstream::Scalar(1.0),
        );
        assert_eq!(g.input, vec![0.0; 6], "{loss:?}");
    }
    // Kept rows of total weight 0: NaN through g / 0, except focal's zero.
    let w = [0.0f32, 1.0, 1.0];
    let zero = Inputs::new(Tensor::new(&z, &[2, 3]))
        .classes(&[0, 0], &[2])
        .weight(Tensor::new(&w, &[3]));
    for loss in gradient_losses() {
        let g = check_grad(
            &format!("{loss:?} zero weight"),
            &loss,
            Reduction::Mean,
            &zero,
            Upstream::Scalar(1.0),
        );
        if matches!(loss, Loss::Rows(Rows::SoftmaxFocal { .. })) {
            assert_eq!(g.input, vec![0.0; 6]);
        } else {
            assert!(g.input.iter().any(|v| v.is_nan()), "{loss:?}");
        }
    }
    // An empty batch.
    let empty = Inputs::new(Tensor::new(&[], &[0, 3])).classes(&[], &[0]);
    for loss in gradient_losses() {
        for (red, up) in calls(&[]) {
            let g = check_grad(&format!("{loss:?} empty {red:?}"), &loss, red, &empty, up);
            assert!(g.input.is_empty());
        }
    }
}

#[test]
fn row_gradient_passes_and_bad_class_indices_on_the_device() {
    let (n, c) = (300, 5);
    let x = uniform(&mut rng(61), n * c, -3.0, 3.0);
    let mut y: Vec<i32> = (0..n as i32).map(|i| i % c as i32).collect();
    y[7] = 5;
    y[8] = -3;
    y[9] = IGNORE as i32;
    let (xb, yb) = (
        buffer_with(ctx(), &x, 0, STORAGE),
        buffer_with(ctx(), &y, 0, STORAGE),
    );
    let results = buffer(ctx(), &[0.0f32; 4096]);
    let (shape, items) = ([n, c], [n]);
    let inputs = DeviceInputs::new(DeviceTensor::new(BufferView::whole(&xb), &shape))
        .classes(DeviceTensor::new(BufferView::whole(&yb), &items));
    // Class-index mean: the denominator's pre-pass and its total, the fused
    // pass, the finalize; sum: the fused pass and the finalize; none: one.
    for (red, dispatches) in [
        (Reduction::Mean, 4),
        (Reduction::Sum, 2),
        (Reduction::None, 1),
    ] {
        let ev = ctx()
            .grad_evaluator(&ce(IGNORE, 0.1), red, &inputs)
            .unwrap();
        assert_eq!(ev.dispatches(), dispatches, "{red:?}");
        let mut encoder = ctx().device().create_command_encoder(&Default::default());
        let output = BufferView::new(&results, 0, ev.output_len());
        let grads = GradViews::new(BufferView::new(&results, 4 * 1024, n * c));
        ev.encode_with_grad(
            &mut encoder,
            &inputs,
            DeviceUpstream::Scalar(1.0),
            output,
            &grads,
        )
        .unwrap();
        let got = read_all(ctx(), encoder, &results);
        let row = |r: usize| &got[1024 + r * c..1024 + (r + 1) * c];
        // Indices out of range give NaN; ignored rows give 0.
        assert!(row(7).iter().chain(row(8)).all(|v| v.is_nan()), "{red:?}");
        assert!(row(9).iter().all(|v| *v == 0.0), "{red:?}");
        if red == Reduction::None {
            assert!(row(0).iter().all(|v| v.is_finite()));
        } else {
            assert!(got[0].is_nan(), "{red:?}: a bad index makes the value NaN");
        }
    }
}

// The twin's gradients against finite differences and PyTorch's conventions.

#[test]
fn softmax_row_losses_match_finite_differences() {
    let mut checked = 0;
    let mut r = rng(61);
    let x = fd::vals(&mut r, 20, -2.0, 2.0);
    let w = fd::vals(&mut r, 4, 0.2, 3.0);
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
                checked += fd::check_all(&what, &case, 62);
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
        checked += fd::check_all(&format!("{loss:?} ignore class 0"), &case, 63);
    }
    // K-dim (N, C, d1, d2) with ignored pixels.
    let xk = fd::vals(&mut r, 24, -2.0, 2.0);
    let yk = vec![0i64, 2, -100, 1, 1, 0, 2, -100];
    for loss in &row_losses {
        let case = Case::new(loss.clone())
            .with("input", xk.clone(), &[2, 3, 2, 2])
            .classes(yk.clone(), &[2, 2, 2])
            .with("weight", fd::vals(&mut r, 3, 0.2, 3.0), &[3]);
        checked += fd::check_all(&format!("{loss:?} K-dim"), &case, 64);
    }
    // Unbatched (C) with target ().
    for loss in &row_losses {
        let case = Case::new(loss.clone())
            .with("input", fd::vals(&mut r, 5, -2.0, 2.0), &[5])
            .classes(vec![3], &[]);
        checked += fd::check_all(&format!("{loss:?} unbatched"), &case, 65);
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
            .with("input", fd::vals(&mut r, n, -2.0, 2.0), &shape)
            .with("target", fd::vals(&mut r, n, 0.0, 1.0), &shape);
        if weighted {
            case = case.with("weight", fd::vals(&mut r, 4, 0.2, 3.0), &[4]);
        }
        let what =
            format!("cross_entropy prob targets ε={smoothing} weighted={weighted} {shape:?}");
        checked += fd::check_all(&what, &case, 66);
    }
    assert!(checked > 2000, "{checked}");
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
        let (r, g) = fd::grad(&case, Reduction::Mean);
        assert!(r.value.is_nan(), "{loss:?}");
        fd::assert_vec(&format!("{loss:?} all ignored"), &g.input, &[0.0; 6]);
    }
    // Rows kept but their total weight 0: torch's g/0 meets the weights → NaN
    // (✔ torch: cross_entropy all NaN, nll NaN in the target column).
    let weight = vec![0.0, 1.0, 1.0];
    let zero_weight = |loss: Loss| {
        let case = Case::new(loss)
            .with("input", z.clone(), &[2, 3])
            .classes(vec![0, 0], &[2])
            .with("weight", weight.clone(), &[3]);
        fd::grad(&case, Reduction::Mean)
    };
    let (r, g) = zero_weight(ce(-100, 0.0));
    assert!(r.value.is_nan());
    assert!(g.input.iter().all(|v| v.is_nan()), "{:?}", g.input);
    let (_, g) = zero_weight(ce(-100, 0.1));
    assert!(g.input.iter().all(|v| v.is_nan()), "{:?}", g.input);
    let (_, g) = zero_weight(Loss::Rows(Rows::Nll { ignore_index: -100 }));
    let nan = f64::NAN;
    fd::assert_vec("nll zero weight", &g.input, &[nan, 0.0, 0.0, nan, 0.0, 0.0]);
    // softmax_focal defines that mean with a zero gradient.
    let (r, g) = zero_weight(Loss::Rows(Rows::SoftmaxFocal {
        gamma: 2.0,
        ignore_index: -100,
    }));
    assert!(r.value.is_nan());
    fd::assert_vec("softmax_focal zero weight", &g.input, &[0.0; 6]);
}

// Every kernel variant (`RowsVariant` in src/gpu/rows.rs) against the twin:
// each test forces, in turn, every variant eligible for its shapes on the
// adapter at hand, so that the variants the best guess does not pick are
// checked as closely as the one it does.

/// The variants eligible for `loss` on these inputs' shapes on `ctx`.
fn eligible(ctx: &Context, loss: &Loss, inputs: &Inputs<'_>) -> Vec<&'static str> {
    variant_names(ctx, loss, Reduction::Mean, inputs).unwrap()
}

/// Whether `ctx`'s device runs subgroup operations (`row-subgroup` then).
fn has_subgroups(ctx: &Context) -> bool {
    ctx.device().features().contains(wgpu::Features::SUBGROUP)
}

/// Checks every reduction's value and items, and the gradient of every
/// reduction and upstream, of `loss` on `inputs` through each eligible
/// variant; adds the variants it ran to `ran`.
fn check_variants(
    ctx: &Context,
    what: &str,
    loss: &Loss,
    inputs: &Inputs<'_>,
    items: usize,
    ran: &mut BTreeSet<&'static str>,
) {
    let u = upstream_items(items, items as u64);
    for v in eligible(ctx, loss, inputs) {
        ran.insert(v);
        with_forced_variant(v, || {
            for red in REDUCTIONS {
                let what = format!("{what} {loss:?} {v} {red:?}");
                check_on(ctx, &what, loss, red, inputs, 1e-6);
            }
            for (red, up) in calls(&u) {
                let what = format!("{what} {loss:?} {v} gradient {red:?} {}", kind(&up));
                check_grad_on(ctx, &what, loss, red, inputs, up);
            }
        })
        .unwrap();
    }
}

/// The losses of the variant tests on class targets.
fn variant_losses() -> Vec<Loss> {
    vec![
        ce(IGNORE, 0.0),
        ce(IGNORE, 0.1),
        Loss::Rows(Rows::Nll {
            ignore_index: IGNORE,
        }),
        focal(2.0, IGNORE),
        focal(0.5, IGNORE),
    ]
}

/// Every variant on random `(N, C, d..)` logits: `losses` on class targets
/// (every 7th row ignored), and cross_entropy with and without smoothing on
/// probability targets; with class weights where `weighted`.
fn check_shape_variants(
    ctx: &Context,
    shape: &[usize],
    seed: u64,
    losses: &[Loss],
    weighted: bool,
    ran: &mut BTreeSet<&'static str>,
) {
    let n: usize = shape.iter().product();
    let c = shape[1];
    let mut items = vec![shape[0]];
    items.extend_from_slice(&shape[2..]);
    let rows: usize = items.iter().product();
    let x = uniform(&mut rng(seed), n, -8.0, 8.0);
    let y = classes(seed + 1, rows, c, 7, IGNORE);
    let w = class_weight(seed + 2, c);
    let ws = [c];
    let t = prob_targets(seed + 3, shape);
    let mut sets = vec![
        Inputs::new(Tensor::new(&x, shape)).classes(&y, &items),
        Inputs::new(Tensor::new(&x, shape)).target(Tensor::new(&t, shape)),
    ];
    if weighted {
        sets = sets
            .into_iter()
            .map(|i| i.weight(Tensor::new(&w, &ws)))
            .collect();
    }
    let what = format!("{shape:?} weighted={weighted}");
    for loss in losses {
        check_variants(ctx, &what, loss, &sets[0], rows, ran);
    }
    for loss in [ce(IGNORE, 0.0), ce(IGNORE, 0.1)] {
        let what = format!("{what} probabilities");
        check_variants(ctx, &what, &loss, &sets[1], rows, ran);
    }
}

#[test]
fn every_variant_at_awkward_class_counts() {
    let mut ran = BTreeSet::new();
    for (k, shape) in [
        vec![1000usize, 1],
        vec![1000, 2],
        vec![1000, 7],
        vec![3, 255],
        vec![257, 257],
        vec![3, 1000],
        vec![1, 4099],
        // K-dim rows (inner > 1).
        vec![3, 7, 5],
        vec![2, 257, 3],
    ]
    .into_iter()
    .enumerate()
    {
        let weighted = k % 2 == 0;
        check_shape_variants(
            ctx(),
            &shape,
            200 + 10 * k as u64,
            &variant_losses(),
            weighted,
            &mut ran,
        );
    }
    let mut want = vec![
        "nll-rows",
        "row-group-shared",
        "row-thread",
        "row-workgroup",
    ];
    if has_subgroups(ctx()) {
        want.push("row-subgroup");
    }
    want.sort_unstable();
    assert_eq!(ran.into_iter().collect::<Vec<_>>(), want);
}

#[test]
fn every_variant_beyond_the_loop_limit() {
    // 70 000 classes: no thread may walk the row alone (llvmpipe stops an
    // invocation after 65 535 loop iterations), and rows this long split.
    let mut ran = BTreeSet::new();
    for (k, shape) in [vec![2usize, 70_000], vec![1, 70_000, 2]]
        .into_iter()
        .enumerate()
    {
        check_shape_variants(
            ctx(),
            &shape,
            300 + 10 * k as u64,
            &variant_losses(),
            true,
            &mut ran,
        );
    }
    let ran: Vec<_> = ran.into_iter().collect();
    assert_eq!(ran, ["row-group-shared", "row-split", "row-workgroup"]);
    // Rows of 10^6 classes: only a workgroup per row, or split rows.
    let (n, c) = (2usize, 1_000_000usize);
    let x = uniform(&mut rng(320), n * c, -10.0, 10.0);
    let (shape, items, ws) = ([n, c], [n], [c]);
    let w = class_weight(321, c);
    let y = [999_999i64, 12_345];
    let inputs = Inputs::new(Tensor::new(&x, &shape))
        .classes(&y, &items)
        .weight(Tensor::new(&w, &ws));
    let loss = ce(IGNORE, 0.1);
    let variants = eligible(ctx(), &loss, &inputs);
    assert_eq!(variants, ["row-split", "row-workgroup"]);
    for v in variants {
        with_forced_variant(v, || {
            check_on(
                ctx(),
                &format!("{n}x{c} {v}"),
                &loss,
                Reduction::Mean,
                &inputs,
                1e-6,
            );
            let up = [0.5f32, -2.0];
            check_grad_on(
                ctx(),
                &format!("{n}x{c} {v}"),
                &loss,
                Reduction::None,
                &inputs,
                Upstream::Items(&up),
            );
        })
        .unwrap();
    }
}

/// Rows of `c` classes with extreme and non-finite logits, the special
/// logits spread over the row (so that a split row has them in different
/// chunks), and their class targets: the dominant class, a far-off one, a
/// -inf one, an ignored row; last, ignored rows whose log-softmax is NaN (a
/// NaN logit, a +inf one, every logit -inf), whose gradient is NaN but for
/// nll, as in PyTorch's backward.
fn extreme_rows(c: usize) -> (Vec<f32>, Vec<i64>, usize) {
    let mut rows: Vec<(Vec<f32>, i64)> = Vec::new();
    let mut r = rng(c as u64);
    let mut base = || uniform(&mut r, c, -3.0, 3.0);
    let (far, mid, last) = (c / 3, 2 * c / 3, c - 1);
    let t = |k: usize| k as i64;
    // ±1e4 logits, the target at either.
    let mut x = base();
    x[far] = 1e4;
    x[mid] = -1e4;
    rows.push((x.clone(), t(far)));
    rows.push((x, t(mid)));
    // A -inf logit away from the target, at the target, and every logit -inf.
    let mut x = base();
    x[mid] = f32::NEG_INFINITY;
    rows.push((x.clone(), t(last)));
    rows.push((x, t(mid)));
    rows.push((vec![f32::NEG_INFINITY; c], t(0)));
    // A NaN logit and a +inf logit: NaN rows, as in the reference.
    let mut x = base();
    x[mid] = f32::NAN;
    rows.push((x, t(far)));
    let mut x = base();
    x[last] = f32::INFINITY;
    rows.push((x, t(0)));
    // An ignored row, and a dominant target (p_t near 1).
    rows.push((base(), IGNORE));
    let mut x = base();
    x[last] = 40.0;
    rows.push((x, t(last)));
    let mut x = base();
    x[far] = f32::NAN;
    rows.push((x, IGNORE));
    let mut x = base();
    x[mid] = f32::INFINITY;
    rows.push((x, IGNORE));
    rows.push((vec![f32::NEG_INFINITY; c], IGNORE));
    let n = rows.len();
    let (x, y) = rows
        .into_iter()
        .fold((vec![], vec![]), |(mut x, mut y), (row, t)| {
            x.extend(row);
            y.push(t);
            (x, y)
        });
    (x, y, n)
}

#[test]
fn every_variant_at_extreme_and_non_finite_logits() {
    let mut ran = BTreeSet::new();
    for c in [1usize, 7, 300, 9000] {
        let (x, y, n) = extreme_rows(c);
        let mut w = class_weight(c as u64, c);
        w[0] = 0.0;
        let (shape, items, ws) = ([n, c], [n], [c]);
        let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
        let finite = [0usize, 1, 7, 8];
        let xf: Vec<f32> = finite
            .iter()
            .flat_map(|&r| x[r * c..(r + 1) * c].to_vec())
            .collect();
        let yf: Vec<i64> = finite.iter().map(|&r| y[r]).collect();
        let (fshape, fitems) = ([finite.len(), c], [finite.len()]);
        let finite = Inputs::new(Tensor::new(&xf, &fshape))
            .classes(&yf, &fitems)
            .weight(Tensor::new(&w, &ws));
        // gamma = 0 keeps a gradient at a -inf target logit (pow's backward
        // is 0 there), where other gammas meet 0 * inf.
        for loss in variant_losses().into_iter().chain([focal(0.0, IGNORE)]) {
            let what = format!("C={c} extremes");
            check_variants(ctx(), &what, &loss, &inputs, n, &mut ran);
            // Without the non-finite rows the reduced values are numbers.
            let what = format!("C={c} finite extremes weighted");
            check_variants(ctx(), &what, &loss, &finite, yf.len(), &mut ran);
        }
        // Probability targets on the same rows: NaN where 0 meets -inf.
        let t = prob_targets(c as u64 + 1, &shape);
        let probs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&t, &shape));
        for loss in [ce(IGNORE, 0.0), ce(IGNORE, 0.1)] {
            check_variants(
                ctx(),
                &format!("C={c} extremes probabilities"),
                &loss,
                &probs,
                n,
                &mut ran,
            );
        }
    }
    assert!(
        ran.contains("row-split") && ran.contains("row-thread"),
        "{ran:?}"
    );
}

/// Focal rows whose target dominates one other class by `gap` (the other
/// logits -inf): 1 - p_t from e^-20 down past f32's subnormals (gap 88 to
/// 103) and to 0 (gap 104), across the float64 reference's saturation at
/// e^-36.7 = 2^-53, where its u is 0 and u^(gamma - 1) is infinite for gamma
/// < 1 (NaN gradients) and 1 at gamma = 1. The kernels decide u = 0 from r
/// and from the bits of u, so that hardware that flushes subnormals to zero
/// would decide the same; here, every gamma through every variant, against
/// the twin.
#[test]
fn every_variant_at_focal_saturation() {
    let mut ran = BTreeSet::new();
    let gaps = [20.0f32, 36.0, 37.5, 60.0, 88.0, 95.0, 103.0, 104.0, 120.0];
    for c in [3usize, 300] {
        let (mut x, mut y) = (vec![], vec![]);
        for (k, &gap) in gaps.iter().enumerate() {
            for top in [0.0f32, 3.5] {
                let mut row = vec![f32::NEG_INFINITY; c];
                let (t, other) = ((k + 1) % c, (2 * k + 3 * c / 4) % c);
                row[t] = top;
                if other != t {
                    row[other] = top - gap;
                }
                x.extend(row);
                y.push(t as i64);
            }
        }
        let n = y.len();
        let (shape, items) = ([n, c], [n]);
        let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
        for gamma in [0.0, 0.5, 1.0, 1.5] {
            let what = format!("C={c} saturation");
            check_variants(ctx(), &what, &focal(gamma, IGNORE), &inputs, n, &mut ran);
        }
        // The float64 reference's u is 0 past gap 37 (e^-gap below 2^-53):
        // NaN gradients for 0 < gamma < 1. At gap 36, 1 + e^-36 rounds to
        // 1 + 2^-52, whose log (just below 2^-52) vanishes next to a top
        // logit of 3.5 (half an ulp is 2^-52) but not next to 0.
        let (_, g) = cpu::gradient(
            &focal(0.5, IGNORE),
            Reduction::Sum,
            &inputs,
            Upstream::Scalar(1.0),
        )
        .unwrap();
        let nan: Vec<bool> = (0..n)
            .map(|r| g.input[r * c..(r + 1) * c].iter().any(|v| v.is_nan()))
            .collect();
        let want: Vec<bool> = gaps
            .iter()
            .flat_map(|&g| [g > 37.0, g > 37.0 || g == 36.0])
            .collect();
        assert_eq!(nan, want, "C={c}");
    }
    assert!(ran.contains("row-workgroup"), "{ran:?}");
}

/// Class weights of +inf, NaN and -inf, at classes the rows target and at
/// classes they do not, and infinite upstreams: cross_entropy without
/// smoothing, nll and softmax_focal take only the target's weight, so the
/// others leave a row alone, and a non-finite one (or upstream) meets the
/// softmax's backward as in the twin: NaN for the target's own logit.
/// Through every variant, against the twin.
#[test]
fn every_variant_at_non_finite_class_weights_and_upstreams() {
    let mut ran = BTreeSet::new();
    for c in [4usize, 300] {
        let n = 13;
        let x = uniform(&mut rng(c as u64 + 5), n * c, -3.0, 3.0);
        // Four classes spread over the row: the non-finite weights sit at
        // the last three.
        let at = [0, c / 3, 2 * c / 3, c - 1];
        let every: Vec<i64> = (0..n)
            .map(|r| if r == 5 { IGNORE } else { at[r % 4] as i64 })
            .collect();
        let first = vec![0i64; n];
        let mut up = upstream_items(n, 3);
        up[1] = f32::INFINITY;
        up[2] = f32::NEG_INFINITY;
        up[6] = f32::NAN;
        let (shape, items, ws) = ([n, c], [n], [c]);
        for (k, v) in [(1, f32::INFINITY), (2, f32::NAN), (3, f32::NEG_INFINITY)] {
            let mut w = class_weight(c as u64, c);
            w[at[k]] = v;
            for y in [&every, &first] {
                let inputs = Inputs::new(Tensor::new(&x, &shape))
                    .classes(y, &items)
                    .weight(Tensor::new(&w, &ws));
                for loss in [
                    ce(IGNORE, 0.0),
                    Loss::Rows(Rows::Nll {
                        ignore_index: IGNORE,
                    }),
                    focal(2.0, IGNORE),
                    focal(0.0, IGNORE),
                ] {
                    for v in eligible(ctx(), &loss, &inputs) {
                        ran.insert(v);
                        with_forced_variant(v, || {
                            let what =
                                format!("C={c} w[{}]={} y={} {loss:?} {v}", at[k], w[at[k]], y[0]);
                            for red in REDUCTIONS {
                                check_on(
                                    ctx(),
                                    &format!("{what} {red:?}"),
                                    &loss,
                                    red,
                                    &inputs,
                                    1e-6,
                                );
                            }
                            let mut calls = calls(&up);
                            calls.push((Reduction::Sum, Upstream::Scalar(f32::INFINITY)));
                            for (red, u) in calls {
                                let what = format!("{what} gradient {red:?} {}", kind(&u));
                                check_grad_on(ctx(), &what, &loss, red, &inputs, u);
                            }
                        })
                        .unwrap();
                    }
                }
            }
        }
    }
    assert!(ran.contains("row-workgroup"), "{ran:?}");
}

#[test]
fn every_variant_with_every_row_ignored_or_weighted_zero() {
    let mut ran = BTreeSet::new();
    for (n, c) in [(300usize, 6usize), (5, 300), (2, 9000)] {
        let x = uniform(&mut rng(c as u64), n * c, -2.0, 2.0);
        let w = class_weight(7, c);
        let (shape, items, ws) = ([n, c], [n], [c]);
        let ignored = vec![IGNORE; n];
        // Class 1 has weight 0: a mean over zero weight.
        let zero = vec![1i64; n];
        for (y, all_ignored) in [(&ignored, true), (&zero, false)] {
            let inputs = Inputs::new(Tensor::new(&x, &shape))
                .classes(y, &items)
                .weight(Tensor::new(&w, &ws));
            for loss in variant_losses() {
                check_variants(
                    ctx(),
                    &format!("{n}x{c} {}", y[0]),
                    &loss,
                    &inputs,
                    n,
                    &mut ran,
                );
                // 0 / 0 (a zero weight meets smoothing's other classes otherwise).
                for v in eligible(ctx(), &loss, &inputs)
                    .into_iter()
                    .filter(|_| all_ignored)
                {
                    let mean = with_forced_variant(v, || {
                        ctx().evaluate(&loss, Reduction::Mean, &inputs).unwrap()
                    })
                    .unwrap();
                    assert!(mean.value.is_nan(), "{loss:?} {v}: mean {}", mean.value);
                }
            }
        }
    }
    assert!(ran.contains("row-split"), "{ran:?}");
}

#[test]
fn every_variant_in_slices_beyond_one_binding() {
    // Bindings of 20 000 values: slices that start off the 256-byte grid, a
    // split row's states reused by the next slice's scan.
    let small = small_binding_ctx(20_000);
    let mut ran = BTreeSet::new();
    for (k, shape) in [
        vec![3001usize, 7],
        vec![517, 5, 13],
        vec![41, 1000],
        vec![5, 9000],
    ]
    .into_iter()
    .enumerate()
    {
        let nll = Loss::Rows(Rows::Nll {
            ignore_index: IGNORE,
        });
        let losses = [ce(IGNORE, 0.1), nll, focal(2.0, IGNORE)];
        check_shape_variants(&small, &shape, 400 + 10 * k as u64, &losses, true, &mut ran);
    }
    for v in [
        "row-group-shared",
        "row-workgroup",
        "row-split",
        "row-thread",
        "nll-rows",
    ] {
        assert!(ran.contains(v), "{v} did not run: {ran:?}");
    }
    assert_eq!(ran.contains("row-subgroup"), has_subgroups(&small));
}

#[test]
fn a_forced_variant_must_fit_the_shape() {
    let x = vec![0.5f32; 70_000];
    let inputs = Inputs::new(Tensor::new(&x, &[1, 70_000])).classes(&[3], &[1]);
    let loss = ce(IGNORE, 0.0);
    let names = eligible(ctx(), &loss, &inputs);
    assert!(!names.contains(&"row-thread"), "{names:?}");
    // A thread would walk 70 000 classes: refused, not wrong.
    let err = with_forced_variant("row-thread", || {
        ctx().evaluate(&loss, Reduction::Mean, &inputs)
    })
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(err, Error::Variant { .. }) && err.to_string().contains("row-thread"),
        "{err}"
    );
    // nll-rows is nll's alone.
    let err = with_forced_variant("nll-rows", || {
        ctx().evaluate(&loss, Reduction::Mean, &inputs)
    })
    .unwrap()
    .unwrap_err();
    assert!(matches!(err, Error::Variant { .. }), "{err}");
    assert!(with_forced_variant("row-warp", || ()).is_err());
    // What is forced is what runs: a split row's scan pass comes first.
    let x = vec![0.5f32; 140_000];
    let two = Inputs::new(Tensor::new(&x, &[2, 70_000])).classes(&[3, 5], &[2]);
    for (v, passes) in [
        ("row-split", 3),
        ("row-workgroup", 2),
        ("row-group-shared", 2),
    ] {
        let prepared = with_forced_variant(v, || ctx().prepare(&loss, Reduction::Sum, &two))
            .unwrap()
            .unwrap();
        assert_eq!(prepared.dispatches(), passes, "{v}");
    }
    // The forcing ends with the closure.
    let ok = ctx().evaluate(&loss, Reduction::Mean, &inputs);
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn every_variant_on_the_gl_backend() {
    let Some(gl) = crate::common::device::gl_ctx() else {
        eprintln!("no GL adapter: the variants ran on Vulkan alone");
        return;
    };
    let nll = Loss::Rows(Rows::Nll {
        ignore_index: IGNORE,
    });
    let losses = [ce(IGNORE, 0.1), nll, focal(2.0, IGNORE)];
    let mut ran = BTreeSet::new();
    for (k, shape) in [
        vec![257usize, 7],
        vec![3, 1000],
        vec![2, 5, 3],
        vec![2, 9000],
    ]
    .into_iter()
    .enumerate()
    {
        check_shape_variants(
            gl,
            &shape,
            500 + 10 * k as u64,
            &losses,
            k % 2 == 0,
            &mut ran,
        );
    }
    for v in [
        "nll-rows",
        "row-group-shared",
        "row-workgroup",
        "row-split",
        "row-thread",
    ] {
        assert!(ran.contains(v), "{v} did not run on GL: {ran:?}");
    }
    assert_eq!(ran.contains("row-subgroup"), has_subgroups(gl));
}
