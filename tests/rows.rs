//! GPU against the float64 CPU twin for the softmax-row losses
//! (cross_entropy, nll, softmax_focal): awkward row counts, class weights,
//! ignore_index, label smoothing, probability targets, K-dim inputs, extreme
//! logits, and class counts up to 70 000.

mod common;

use common::*;
use rand::Rng;
use wgpu_loss::cpu::rows::log_softmax;
use wgpu_loss::{Inputs, Loss, Reduction, Tensor};

const IGNORE: i64 = -100;

fn ce(ignore_index: i64, label_smoothing: f32) -> Loss {
    Loss::CrossEntropy {
        ignore_index,
        label_smoothing,
    }
}

fn focal(gamma: f32, ignore_index: i64) -> Loss {
    Loss::SoftmaxFocal {
        gamma,
        ignore_index,
    }
}

/// The three losses with default parameters, and the given ignore_index.
fn losses(ignore_index: i64) -> Vec<Loss> {
    vec![
        ce(ignore_index, 0.0),
        Loss::Nll { ignore_index },
        focal(2.0, ignore_index),
    ]
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
        Loss::Nll {
            ignore_index: IGNORE,
        },
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
        Loss::Nll { ignore_index: 0 },
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
    // LOSS_SEMANTICS §7: logits [-inf, 1, 2], target 2 → 0.3132617; inf with ε = 0.1.
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
        &Loss::Nll {
            ignore_index: IGNORE,
        },
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
    // Rows of at least 2048 contiguous classes take a workgroup each.
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
    // inner > 1: 16 383 classes is the longest row one thread walks alone;
    // from 16 384 on, and at 70 000, a workgroup shares each strided row.
    for (n, c, d) in [
        (2usize, 16_383usize, 3usize),
        (1, 16_384, 2),
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
