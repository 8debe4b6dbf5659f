//! GPU against the float64 CPU twin for the elementwise losses, on seeded
//! random data at awkward sizes and on extreme values.

mod common;

use common::points::{data, losses};
use common::*;
use wgpu_loss::Pointwise;
use wgpu_loss::{Inputs, Loss, Reduction, Tensor};

#[test]
fn every_pointwise_loss_matches_the_reference_at_awkward_sizes() {
    for loss in losses() {
        for (k, &n) in SIZES.iter().enumerate() {
            let (x, y) = data(&loss, n, 7 * k as u64 + 1);
            let shape = [n];
            let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
            let mut reductions = REDUCTIONS.to_vec();
            if matches!(loss, Loss::Pointwise(Pointwise::KlDiv { .. })) {
                reductions.push(Reduction::BatchMean);
            }
            for red in reductions {
                check(&format!("{loss:?} n={n} {red:?}"), &loss, red, &inputs);
            }
        }
    }
}

#[test]
fn weights_and_pos_weights_broadcast() {
    let mut r = rng(11);
    let shape = [37, 5, 9];
    let n = 37 * 5 * 9;
    let x = uniform(&mut r, n, -5.0, 5.0);
    let y: Vec<f32> = (0..n).map(|i| (i % 3 == 0) as u8 as f32).collect();
    let probs: Vec<f32> = x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    let mut full = uniform(&mut r, n, 0.0, 2.0);
    full[3] = 0.0;
    let per_class = uniform(&mut r, 5, 0.5, 3.0);
    let cases: [(&[f32], &[usize]); 4] = [
        (&full, &shape),
        (&per_class, &[5, 1]),
        (&per_class[..1], &[1]),
        (&full[..9], &[9]),
    ];
    for (w, ws) in cases {
        for loss in [
            Loss::Pointwise(Pointwise::Mse),
            Loss::Pointwise(Pointwise::L1),
            Loss::Pointwise(Pointwise::Huber { delta: 0.5 }),
            Loss::Pointwise(Pointwise::Bce),
            Loss::Pointwise(Pointwise::BceWithLogits),
        ] {
            let x = if loss == Loss::Pointwise(Pointwise::Bce) {
                &probs
            } else {
                &x
            };
            let base = Inputs::new(Tensor::new(x, &shape)).target(Tensor::new(&y, &shape));
            for red in REDUCTIONS {
                check(
                    &format!("{loss:?} weight {ws:?} {red:?}"),
                    &loss,
                    red,
                    &base.weight(Tensor::new(w, ws)),
                );
            }
            if loss == Loss::Pointwise(Pointwise::BceWithLogits) {
                for red in REDUCTIONS {
                    let i = base
                        .pos_weight(Tensor::new(w, ws))
                        .weight(Tensor::new(&full, &shape));
                    check(
                        &format!("{loss:?} pos_weight {ws:?} {red:?}"),
                        &loss,
                        red,
                        &i,
                    );
                }
            }
        }
    }
    // A shape whose non-1 dims are not contiguous is expanded on the host.
    let w = uniform(&mut r, 37 * 9, 0.0, 1.0);
    let inputs = Inputs::new(Tensor::new(&x, &shape))
        .target(Tensor::new(&y, &shape))
        .weight(Tensor::new(&w, &[37, 1, 9]));
    check(
        "mse weight [37,1,9]",
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::Mean,
        &inputs,
    );
}

#[test]
fn quantile_list_reads_one_target_per_row_of_quantiles() {
    let mut r = rng(5);
    let q = vec![0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98];
    for rows in [1, 300, 40_001] {
        let x = uniform(&mut r, rows * q.len(), -2.0, 2.0);
        let y = uniform(&mut r, rows, -2.0, 2.0);
        let (xs, ys) = ([rows, q.len()], [rows]);
        let inputs = Inputs::new(Tensor::new(&x, &xs)).target(Tensor::new(&y, &ys));
        for red in REDUCTIONS {
            check(
                &format!("quantile rows={rows} {red:?}"),
                &Loss::Pointwise(Pointwise::Quantile {
                    quantiles: Some(q.clone()),
                }),
                red,
                &inputs,
            );
        }
    }
}

#[test]
fn extreme_values() {
    let shape = [8];
    // Logits at ±100 and ±1e4, huge and tiny differences.
    let x = [100.0f32, -100.0, 1e4, -1e4, 0.0, 30.0, -30.0, 1e-30];
    let y = [0.0f32, 1.0, 0.0, 1.0, 0.5, 1.0, 0.0, 1.0];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    for loss in [
        Loss::Pointwise(Pointwise::BceWithLogits),
        Loss::Pointwise(Pointwise::SigmoidFocal {
            alpha: 0.25,
            gamma: 2.0,
        }),
        Loss::Pointwise(Pointwise::SigmoidFocal {
            alpha: 0.25,
            gamma: 0.5,
        }),
        Loss::Pointwise(Pointwise::Mse),
        Loss::Pointwise(Pointwise::LogCosh),
        Loss::Pointwise(Pointwise::Huber { delta: 2.0 }),
    ] {
        for red in REDUCTIONS {
            check(&format!("{loss:?} extremes {red:?}"), &loss, red, &inputs);
        }
    }
    // Probabilities of exactly 0 and 1 against hard and soft targets.
    let p = [0.0f32, 1.0, 0.0, 1.0, 1e-30, 1.0 - 1e-7, 0.5, 1e-45];
    let t = [0.0f32, 1.0, 1.0, 0.0, 1.0, 0.0, 0.3, 1.0];
    let inputs = Inputs::new(Tensor::new(&p, &shape)).target(Tensor::new(&t, &shape));
    for red in REDUCTIONS {
        check(
            &format!("bce clamp {red:?}"),
            &Loss::Pointwise(Pointwise::Bce),
            red,
            &inputs,
        );
    }
    // KL: zero targets with a −inf log-probability give NaN, as in the reference.
    let lx = [f32::NEG_INFINITY, -1.0, -0.5, f32::NEG_INFINITY];
    let ly = [0.0f32, 0.25, 0.75, 0.5];
    let inputs = Inputs::new(Tensor::new(&lx, &[4])).target(Tensor::new(&ly, &[4]));
    for red in REDUCTIONS {
        check(
            &format!("kl_div -inf {red:?}"),
            &Loss::Pointwise(Pointwise::KlDiv { log_target: false }),
            red,
            &inputs,
        );
    }
    // Boundaries of Huber and SmoothL1: |x − y| exactly delta / beta.
    let x = [1.0f32, -1.0, 0.5, -0.5, 0.0];
    let y = [0.0f32, 0.0, 0.0, 0.0, 0.0];
    let inputs = Inputs::new(Tensor::new(&x, &[5])).target(Tensor::new(&y, &[5]));
    for loss in [
        Loss::Pointwise(Pointwise::Huber { delta: 1.0 }),
        Loss::Pointwise(Pointwise::Huber { delta: 0.5 }),
        Loss::Pointwise(Pointwise::SmoothL1 { beta: 0.5 }),
        Loss::Pointwise(Pointwise::SmoothL1 { beta: 1.0 }),
    ] {
        check(
            &format!("{loss:?} boundary"),
            &loss,
            Reduction::None,
            &inputs,
        );
    }
}

#[test]
fn empty_input_gives_nan_mean_and_zero_sum() {
    let inputs = Inputs::new(Tensor::new(&[], &[0])).target(Tensor::new(&[], &[0]));
    for loss in losses() {
        for red in REDUCTIONS {
            check(&format!("{loss:?} empty {red:?}"), &loss, red, &inputs);
        }
    }
}

/// More elements than one storage binding holds: the input is bound in
/// 256-byte-aligned slices, one dispatch each, and the partials of all slices
/// meet in one finalize pass.
#[test]
fn inputs_longer_than_one_binding() {
    let n = ctx().max_binding_elements() + 1000;
    let (x, y) = data(&Loss::Pointwise(Pointwise::Mse), n, 99);
    let w: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.25).collect();
    let shape = [n];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    for red in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        check(
            &format!("mse n={n} {red:?}"),
            &Loss::Pointwise(Pointwise::Mse),
            red,
            &inputs,
        );
    }
    // A weight as long as the input is sliced with it.
    check(
        "weighted mse beyond a binding",
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::Mean,
        &inputs.weight(Tensor::new(&w, &shape)),
    );
    let prepared = ctx()
        .prepare(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &inputs)
        .unwrap();
    assert_eq!(prepared.dispatches(), 3, "two slices and the finalize pass");
}

/// Subnormal probabilities: ln p is between -87.3 and -100 there, above the
/// clamp. The kernel's ln reads a subnormal's value from its bits; hardware
/// that flushes subnormals to zero would otherwise take ln 0 and give the
/// clamped 100 (or the plain log's answer for a flushed input).
#[test]
fn subnormal_bce_inputs() {
    let p = [
        1e-40f32,
        3e-39,
        1.1e-38,
        2e-42,
        f32::from_bits(0x0040_0000),
        f32::from_bits(0x0000_0001),
        1e-41,
        5e-39,
    ];
    let t = [1.0f32, 1.0, 0.7, 1.0, 0.5, 1.0, 0.25, 1.0];
    let shape = [8];
    let inputs = Inputs::new(Tensor::new(&p, &shape)).target(Tensor::new(&t, &shape));
    for red in REDUCTIONS {
        check(
            &format!("bce subnormal {red:?}"),
            &Loss::Pointwise(Pointwise::Bce),
            red,
            &inputs,
        );
    }
}
