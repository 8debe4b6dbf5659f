//! GPU against the float64 CPU twin for smp's DiceLoss: every mode, from
//! logits or probabilities, at awkward pixel counts and on degenerate targets.

mod common;

use common::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use wgpu_loss::{DiceMode, Inputs, Loss, Reduction, Tensor};

const MODES: [DiceMode; 3] = [DiceMode::Binary, DiceMode::Multiclass, DiceMode::Multilabel];

fn dice(mode: DiceMode, from_logits: bool) -> Loss {
    Loss::Dice {
        mode,
        from_logits,
        smooth: 0.0,
        eps: 1e-7,
        ignore_index: None,
        log_loss: false,
    }
}

fn with(loss: &Loss, smooth: f32, ignore_index: Option<i64>, log_loss: bool) -> Loss {
    let Loss::Dice {
        mode,
        from_logits,
        eps,
        ..
    } = *loss
    else {
        unreachable!()
    };
    Loss::Dice {
        mode,
        from_logits,
        smooth,
        eps,
        ignore_index,
        log_loss,
    }
}

/// Logits in [-6, 6] with some ±100, or probabilities with some exact 0 and 1.
fn predictions(r: &mut ChaCha8Rng, n: usize, from_logits: bool) -> Vec<f32> {
    let mut x = if from_logits {
        uniform(r, n, -6.0, 6.0)
    } else {
        uniform(r, n, 0.0, 1.0)
    };
    for i in (0..n).step_by(53) {
        x[i] = match (from_logits, i % 2) {
            (true, 0) => 100.0,
            (true, _) => -100.0,
            (false, v) => v as f32,
        };
    }
    x
}

/// 0/1 masks with some soft values and, if asked, some ignored (255) pixels.
fn masks(r: &mut ChaCha8Rng, n: usize, ignore: bool) -> Vec<f32> {
    (0..n)
        .map(|i| {
            if ignore && i % 13 == 4 {
                255.0
            } else if i % 11 == 3 {
                r.random_range(0.0..1.0)
            } else {
                r.random_range(0..2) as f32
            }
        })
        .collect()
}

/// Class indices in [0, C) (the last class left out when `absent`), some 255.
fn classes(r: &mut ChaCha8Rng, n: usize, c: usize, ignore: bool, absent: bool) -> Vec<i64> {
    let top = if absent && c > 1 { c - 1 } else { c };
    (0..n)
        .map(|i| {
            if ignore && i % 13 == 4 {
                255
            } else {
                r.random_range(0..top) as i64
            }
        })
        .collect()
}

/// Checks `loss` on input `shape` (N, C, ...) with fresh seeded data, every reduction.
fn check_shape(what: &str, loss: &Loss, shape: &[usize], seed: u64, absent: bool) {
    let Loss::Dice {
        mode,
        from_logits,
        ignore_index,
        ..
    } = *loss
    else {
        unreachable!()
    };
    let mut r = rng(seed);
    let n: usize = shape.iter().product();
    let x = predictions(&mut r, n, from_logits);
    let ignore = ignore_index.is_some();
    let (y, yc);
    let mut target_shape = vec![shape[0]];
    target_shape.extend_from_slice(&shape[2..]);
    let inputs = if mode == DiceMode::Multiclass {
        yc = classes(&mut r, n / shape[1], shape[1], ignore, absent);
        Inputs::new(Tensor::new(&x, shape)).classes(&yc, &target_shape)
    } else {
        y = masks(&mut r, n, ignore);
        Inputs::new(Tensor::new(&x, shape)).target(Tensor::new(&y, shape))
    };
    for red in REDUCTIONS {
        check(
            &format!("{what} {loss:?} {shape:?} {red:?}"),
            loss,
            red,
            &inputs,
        );
    }
}

#[test]
fn every_mode_matches_the_reference_at_awkward_pixel_counts() {
    for (k, &pixels) in [1usize, 255, 256, 257, 65_537].iter().enumerate() {
        for mode in MODES {
            for from_logits in [true, false] {
                let base = dice(mode, from_logits);
                let shape = match mode {
                    DiceMode::Binary => vec![1, 1, pixels],
                    _ => vec![1, 3, pixels],
                };
                let seed = 10 * k as u64 + from_logits as u64;
                check_shape("plain", &base, &shape, seed, false);
                check_shape(
                    "smooth 1",
                    &with(&base, 1.0, None, false),
                    &shape,
                    seed,
                    false,
                );
                check_shape(
                    "log_loss",
                    &with(&base, 0.0, None, true),
                    &shape,
                    seed,
                    false,
                );
                check_shape(
                    "ignore 255",
                    &with(&base, 0.0, Some(255), false),
                    &shape,
                    seed,
                    false,
                );
            }
        }
    }
}

#[test]
fn a_million_elements() {
    for from_logits in [true, false] {
        let mc = dice(DiceMode::Multiclass, from_logits);
        check_shape("1M", &mc, &[4, 4, 256, 256], 1, false);
        check_shape(
            "1M ignore 255 log_loss",
            &with(&mc, 1.0, Some(255), true),
            &[4, 4, 256, 256],
            2,
            false,
        );
        check_shape(
            "1M",
            &dice(DiceMode::Multilabel, from_logits),
            &[4, 4, 256, 256],
            3,
            false,
        );
        check_shape(
            "1M",
            &dice(DiceMode::Binary, from_logits),
            &[16, 1, 256, 256],
            4,
            false,
        );
    }
}

#[test]
fn batches_and_spatial_dims() {
    for mode in MODES {
        for from_logits in [true, false] {
            let base = dice(mode, from_logits);
            let c = if mode == DiceMode::Binary { 1 } else { 5 };
            check_shape("batch", &base, &[3, c, 7, 11], 5, false);
            check_shape("2-d", &base, &[6, c], 6, false);
            check_shape("absent class", &base, &[2, c, 33], 7, true);
        }
    }
}

#[test]
fn a_class_absent_from_the_whole_batch_counts_zero_in_the_mean() {
    let mut r = rng(12);
    let x = uniform(&mut r, 2 * 4 * 50, -3.0, 3.0);
    let y: Vec<i64> = (0..100).map(|i| (i % 3) as i64).collect();
    let inputs = Inputs::new(Tensor::new(&x, &[2, 4, 50])).classes(&y, &[2, 50]);
    let loss = dice(DiceMode::Multiclass, true);
    for red in REDUCTIONS {
        check(&format!("absent class {red:?}"), &loss, red, &inputs);
    }
    let got = ctx()
        .evaluate(&loss, Reduction::None, &inputs)
        .unwrap()
        .items
        .unwrap();
    assert_eq!(got[3], 0.0);
    let mean = ctx()
        .evaluate(&loss, Reduction::Mean, &inputs)
        .unwrap()
        .value;
    let sum: f64 = got.iter().map(|v| *v as f64).sum();
    assert!(
        (mean - sum / 4.0).abs() < 1e-6,
        "the absent class still counts in the mean"
    );
}

#[test]
fn degenerate_targets_and_predictions() {
    let shape = [2, 1, 8];
    // All-zero binary target: every loss is 0.
    let zeros = [0.0f32; 16];
    let mut r = rng(4);
    for from_logits in [true, false] {
        let x = predictions(&mut r, 16, from_logits);
        let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&zeros, &shape));
        for loss in [
            dice(DiceMode::Binary, from_logits),
            with(&dice(DiceMode::Binary, from_logits), 1.0, None, true),
        ] {
            for red in REDUCTIONS {
                check(
                    &format!("all-zero target {loss:?} {red:?}"),
                    &loss,
                    red,
                    &inputs,
                );
            }
            assert_eq!(
                ctx()
                    .evaluate(&loss, Reduction::Mean, &inputs)
                    .unwrap()
                    .value,
                0.0
            );
        }
    }
    // Exact 0/1 probabilities equal to the target: loss 0; log_loss 0.
    let t: Vec<f32> = (0..16).map(|i| (i % 3 == 0) as u8 as f32).collect();
    let inputs = Inputs::new(Tensor::new(&t, &shape)).target(Tensor::new(&t, &shape));
    for log_loss in [false, true] {
        let loss = with(&dice(DiceMode::Binary, false), 0.0, None, log_loss);
        assert_eq!(
            ctx()
                .evaluate(&loss, Reduction::Mean, &inputs)
                .unwrap()
                .value,
            0.0
        );
        check(
            &format!("perfect {loss:?}"),
            &loss,
            Reduction::None,
            &inputs,
        );
    }
    // Exactly wrong 0/1 probabilities: dice 0, log_loss clamps at eps.
    let wrong: Vec<f32> = t.iter().map(|v| 1.0 - v).collect();
    let inputs = Inputs::new(Tensor::new(&wrong, &shape)).target(Tensor::new(&t, &shape));
    for log_loss in [false, true] {
        let loss = with(&dice(DiceMode::Binary, false), 0.0, None, log_loss);
        for red in REDUCTIONS {
            check(&format!("all wrong {loss:?} {red:?}"), &loss, red, &inputs);
        }
    }
    // Saturated logits: the losses of nearly perfect predictions are tiny
    // differences 1 − dice, which must not cancel.
    let x: Vec<f32> = t
        .iter()
        .enumerate()
        .map(|(i, v)| if *v == 1.0 { 9.0 + i as f32 } else { -100.0 })
        .collect();
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&t, &shape));
    for log_loss in [false, true] {
        let loss = with(&dice(DiceMode::Binary, true), 0.0, None, log_loss);
        for red in REDUCTIONS {
            check(
                &format!("nearly perfect {loss:?} {red:?}"),
                &loss,
                red,
                &inputs,
            );
        }
    }
    // Multiclass logits of ±100.
    let x: Vec<f32> = (0..3 * 16)
        .map(|i| if i % 5 == 0 { 100.0 } else { -100.0 })
        .collect();
    let y: Vec<i64> = (0..16).map(|i| i % 3).collect();
    let inputs = Inputs::new(Tensor::new(&x, &[1, 3, 16])).classes(&y, &[1, 16]);
    for red in REDUCTIONS {
        check(
            &format!("logits ±100 {red:?}"),
            &dice(DiceMode::Multiclass, true),
            red,
            &inputs,
        );
    }
    // Binary targets with 255-valued pixels: ignored.
    let y: Vec<f32> = (0..16)
        .map(|i| {
            if i % 4 == 0 {
                255.0
            } else {
                (i % 3 == 0) as u8 as f32
            }
        })
        .collect();
    let x = predictions(&mut r, 16, true);
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    for red in REDUCTIONS {
        check(
            &format!("binary 255 {red:?}"),
            &with(&dice(DiceMode::Binary, true), 0.0, Some(255), false),
            red,
            &inputs,
        );
    }
    // Every pixel ignored: no class present, every loss 0.
    let y = [255i64; 16];
    let x = predictions(&mut r, 48, true);
    let inputs = Inputs::new(Tensor::new(&x, &[2, 3, 8])).classes(&y, &[2, 8]);
    for red in REDUCTIONS {
        check(
            &format!("all ignored {red:?}"),
            &with(&dice(DiceMode::Multiclass, true), 0.0, Some(255), false),
            red,
            &inputs,
        );
    }
}

#[test]
fn eps_clamps_the_cardinality() {
    // Tiny probabilities against a tiny soft target: the cardinality is
    // below eps, so the clamp decides the value.
    let x = [1e-9f32, 2e-9, 0.0, 1e-9];
    let t = [1e-9f32, 0.0, 3e-9, 0.0];
    let inputs = Inputs::new(Tensor::new(&x, &[1, 1, 4])).target(Tensor::new(&t, &[1, 1, 4]));
    for eps in [1e-7f32, 1e-3, 0.0] {
        for log_loss in [false, true] {
            let loss = Loss::Dice {
                mode: DiceMode::Binary,
                from_logits: false,
                smooth: 0.0,
                eps,
                ignore_index: None,
                log_loss,
            };
            for red in REDUCTIONS {
                check(
                    &format!("eps {eps} log_loss {log_loss} {red:?}"),
                    &loss,
                    red,
                    &inputs,
                );
            }
        }
    }
}

#[test]
fn ignore_index_outside_i32_and_empty_batches() {
    let mut r = rng(8);
    let x = uniform(&mut r, 2 * 3 * 5, -2.0, 2.0);
    let big = 1i64 << 40;
    let y: Vec<i64> = (0..10)
        .map(|i| if i % 4 == 1 { big } else { i % 3 })
        .collect();
    let inputs = Inputs::new(Tensor::new(&x, &[2, 3, 5])).classes(&y, &[2, 5]);
    for red in REDUCTIONS {
        check(
            &format!("ignore 2^40 {red:?}"),
            &with(&dice(DiceMode::Multiclass, true), 0.0, Some(big), false),
            red,
            &inputs,
        );
        check(
            &format!("ignore -1 {red:?}"),
            &with(&dice(DiceMode::Multiclass, true), 0.0, Some(-1), false),
            red,
            &inputs_minus_one(&x),
        );
    }
    // No pixels at all: every class is absent.
    for mode in MODES {
        let c = if mode == DiceMode::Binary { 1 } else { 3 };
        let shape = [0, c, 4];
        let inputs = if mode == DiceMode::Multiclass {
            Inputs::new(Tensor::new(&[], &shape)).classes(&[], &[0, 4])
        } else {
            Inputs::new(Tensor::new(&[], &shape)).target(Tensor::new(&[], &shape))
        };
        for red in REDUCTIONS {
            check(
                &format!("empty {mode:?} {red:?}"),
                &dice(mode, true),
                red,
                &inputs,
            );
        }
    }
}

fn inputs_minus_one(x: &[f32]) -> Inputs<'_> {
    static Y: [i64; 10] = [0, -1, 2, 1, -1, 0, 0, 2, -1, 1];
    Inputs::new(Tensor::new(x, &[2, 3, 5])).classes(&Y, &[2, 5])
}
