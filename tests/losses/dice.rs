//! smp's DiceLoss (shaders/dice.wgsl, src/cpu/dice.rs): values and gradients
//! on the GPU against the float64 twin (smp + autograd) in every mode, from
//! logits or probabilities, at awkward pixel counts, with smoothing,
//! log_loss, ignored pixels, absent classes and degenerate targets, exact 0/1
//! probabilities (the sign(0) ties of Σ|p − t|), the eps clamps, slices
//! beyond one binding and caller buffers; then the twin's gradients against
//! finite differences and smp's conventions.

use crate::common::device::*;
use crate::common::dice_data::*;
use crate::common::finite::{self as fd, Case, GAP};
use crate::common::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use wgpu_loss::inputs::{plan, Geometry};
use wgpu_loss::{
    cpu, variant_names, with_forced_variant, BufferView, Context, DeviceInputs, DeviceTensor,
    DeviceUpstream, Dice, DiceMode, Error, GradViews, Inputs, Loss, Reduction, Tensor, Upstream,
};

/// A binary target of 16 pixels, every third 1.
fn binary_target() -> Vec<f32> {
    (0..16).map(|i| (i % 3 == 0) as u8 as f32).collect()
}

/// Logits whose sigmoids round to the 0/1 target `t` in f32.
fn saturated_logits(t: &[f32]) -> Vec<f32> {
    t.iter()
        .enumerate()
        .map(|(i, v)| if *v == 1.0 { 9.0 + i as f32 } else { -100.0 })
        .collect()
}

/// Tiny probabilities against a tiny soft target: their cardinality is below
/// the eps of `tiny_eps_losses`.
fn tiny() -> Inputs<'static> {
    static X: [f32; 4] = [1e-9, 2e-9, 0.0, 1e-9];
    static T: [f32; 4] = [1e-9, 0.0, 3e-9, 0.0];
    Inputs::new(Tensor::new(&X, &[1, 1, 4])).target(Tensor::new(&T, &[1, 1, 4]))
}

/// Binary dice of probabilities, without and with log_loss, with the eps of
/// smp, a large one and none.
fn tiny_eps_losses() -> Vec<Loss> {
    let mut losses = vec![];
    for eps in [1e-7f32, 1e-3, 0.0] {
        for log_loss in [false, true] {
            losses.push(Loss::Dice(Dice {
                mode: DiceMode::Binary,
                from_logits: false,
                smooth: 0.0,
                eps,
                ignore_index: None,
                log_loss,
            }));
        }
    }
    losses
}

/// Checks `loss` on input `shape` (N, C, ...) with fresh seeded data, every reduction.
fn check_shape(what: &str, loss: &Loss, shape: &[usize], seed: u64, absent: bool) {
    let data = DiceData::new(loss, shape, seed, absent);
    let inputs = data.inputs();
    for red in REDUCTIONS {
        check(
            &format!("{what} {loss:?} {shape:?} {red:?}"),
            loss,
            red,
            &inputs,
        );
    }
}

/// Each reduction with an upstream as autograd passes it, `none` with a
/// scalar and with one value per class. The upstreams are scaled by the pixel
/// count: a dice gradient per element is O(1 / pixels), and the absolute
/// tolerance must not hide errors.
fn calls(classes: usize, pixels: usize, seed: u64) -> Vec<(Reduction, Upstream<'static>)> {
    let scale = pixels.max(1) as f32;
    let mut per_class = uniform(&mut rng(seed), classes, -2.0, 2.0);
    for v in per_class.iter_mut().step_by(3).skip(1) {
        *v = 0.0;
    }
    let per_class: &'static [f32] = per_class
        .iter()
        .map(|v| v * scale)
        .collect::<Vec<_>>()
        .leak();
    vec![
        (Reduction::None, Upstream::Scalar(1.5 * scale)),
        (Reduction::None, Upstream::Items(per_class)),
        (
            Reduction::Mean,
            Upstream::Scalar(0.75 * scale * classes as f32),
        ),
        (Reduction::Sum, Upstream::Scalar(-1.25 * scale)),
    ]
}

/// Checks the gradients of `loss` on input `shape` (N, C, ...) with fresh
/// seeded data, for every call of `calls`.
fn check_shape_grad(what: &str, loss: &Loss, shape: &[usize], seed: u64, absent: bool) {
    let data = DiceData::new(loss, shape, seed, absent);
    let inputs = data.inputs();
    let n: usize = shape.iter().product();
    let pixels = n / shape[1].max(1);
    for (red, up) in calls(shape[1], pixels, seed) {
        let kind = match up {
            Upstream::Items(_) => "per class",
            Upstream::Scalar(_) => "scalar",
        };
        check_grad(
            &format!("{what} {loss:?} {shape:?} {red:?} {kind}"),
            loss,
            red,
            &inputs,
            up,
        );
    }
}

fn class_count(mode: DiceMode) -> usize {
    if mode == DiceMode::Binary {
        1
    } else {
        3
    }
}

#[test]
fn every_mode_matches_the_reference_at_awkward_pixel_counts() {
    for (k, &pixels) in [1usize, 255, 256, 257, 65_537].iter().enumerate() {
        for mode in DiceMode::ALL {
            for from_logits in [true, false] {
                let base = dice(mode, from_logits, 0.0, None, false);
                let shape = match mode {
                    DiceMode::Binary => vec![1, 1, pixels],
                    _ => vec![1, 3, pixels],
                };
                let seed = 10 * k as u64 + from_logits as u64;
                check_shape("plain", &base, &shape, seed, false);
                check_shape(
                    "smooth 1",
                    &dice(mode, from_logits, 1.0, None, false),
                    &shape,
                    seed,
                    false,
                );
                check_shape(
                    "log_loss",
                    &dice(mode, from_logits, 0.0, None, true),
                    &shape,
                    seed,
                    false,
                );
                check_shape(
                    "ignore 255",
                    &dice(mode, from_logits, 0.0, Some(255), false),
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
        let mc = dice(DiceMode::Multiclass, from_logits, 0.0, None, false);
        check_shape("1M", &mc, &[4, 4, 256, 256], 1, false);
        check_shape(
            "1M ignore 255 log_loss",
            &dice(DiceMode::Multiclass, from_logits, 1.0, Some(255), true),
            &[4, 4, 256, 256],
            2,
            false,
        );
        check_shape(
            "1M",
            &dice(DiceMode::Multilabel, from_logits, 0.0, None, false),
            &[4, 4, 256, 256],
            3,
            false,
        );
        check_shape(
            "1M",
            &dice(DiceMode::Binary, from_logits, 0.0, None, false),
            &[16, 1, 256, 256],
            4,
            false,
        );
    }
}

#[test]
fn batches_and_spatial_dims() {
    for mode in DiceMode::ALL {
        for from_logits in [true, false] {
            let base = dice(mode, from_logits, 0.0, None, false);
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
    let loss = dice(DiceMode::Multiclass, true, 0.0, None, false);
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
            dice(DiceMode::Binary, from_logits, 0.0, None, false),
            dice(DiceMode::Binary, from_logits, 1.0, None, true),
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
    let t = binary_target();
    let inputs = Inputs::new(Tensor::new(&t, &shape)).target(Tensor::new(&t, &shape));
    for log_loss in [false, true] {
        let loss = dice(DiceMode::Binary, false, 0.0, None, log_loss);
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
        let loss = dice(DiceMode::Binary, false, 0.0, None, log_loss);
        for red in REDUCTIONS {
            check(&format!("all wrong {loss:?} {red:?}"), &loss, red, &inputs);
        }
    }
    // Saturated logits: the losses of nearly perfect predictions are tiny
    // differences 1 − dice, which must not cancel.
    let x = saturated_logits(&t);
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&t, &shape));
    for log_loss in [false, true] {
        let loss = dice(DiceMode::Binary, true, 0.0, None, log_loss);
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
            &dice(DiceMode::Multiclass, true, 0.0, None, false),
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
            &dice(DiceMode::Binary, true, 0.0, Some(255), false),
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
            &dice(DiceMode::Multiclass, true, 0.0, Some(255), false),
            red,
            &inputs,
        );
    }
}

#[test]
fn eps_clamps_the_cardinality() {
    // The cardinality is below eps, so the clamp decides the value.
    for loss in tiny_eps_losses() {
        for red in REDUCTIONS {
            check(&format!("{loss:?} {red:?}"), &loss, red, &tiny());
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
            &dice(DiceMode::Multiclass, true, 0.0, Some(big), false),
            red,
            &inputs,
        );
        check(
            &format!("ignore -1 {red:?}"),
            &dice(DiceMode::Multiclass, true, 0.0, Some(-1), false),
            red,
            &inputs_minus_one(&x),
        );
    }
    // No pixels at all: every class is absent.
    for mode in DiceMode::ALL {
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
                &dice(mode, true, 0.0, None, false),
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

/// The twin's per-class sums (Σp, Σt, Σ|p − t|) and losses of a host call.
fn reference(loss: &Loss, inputs: &Inputs<'_>) -> (Vec<[f64; 3]>, Vec<f64>) {
    let Loss::Dice(Dice {
        smooth,
        eps,
        log_loss,
        ..
    }) = *loss
    else {
        unreachable!()
    };
    let p = plan(loss, Reduction::Mean, inputs).expect("valid");
    let Geometry::Dice(d) = &p.geometry else {
        unreachable!()
    };
    let sums = cpu::dice::sums(inputs, d);
    let per_class = sums
        .iter()
        .map(|s| cpu::dice::dice(s[0], s[1], s[2], smooth as f64, eps as f64, log_loss))
        .collect();
    (sums, per_class)
}

/// Encodes `loss` on device buffers holding `x` and the i32 classes `y`, and
/// checks for each of `reductions` the value and, in an output view with room
/// for them, Σ loss, C and each class's (Σp, Σt, Σ|p − t|) against the twin
/// on `host` (the same data with i64 classes).
fn check_device(
    ctx: &Context,
    what: &str,
    loss: &Loss,
    reductions: &[Reduction],
    (x, shape): (&[f32], &[usize]),
    y: &[i32],
    host: &Inputs<'_>,
) {
    let c = shape[1];
    let mut target_shape = vec![shape[0]];
    target_shape.extend_from_slice(&shape[2..]);
    let (bx, by) = (buffer(ctx, x), buffer(ctx, y));
    let inputs =
        DeviceInputs::new(DeviceTensor::new(BufferView::new(&bx, 0, x.len()), shape)).classes(
            DeviceTensor::new(BufferView::new(&by, 0, y.len()), &target_shape),
        );
    let (sums, per_class) = reference(loss, host);
    let total: f64 = per_class.iter().sum();
    for &red in reductions {
        let ev = ctx.evaluator(loss, red, &inputs).expect("evaluator");
        let len = if red == Reduction::None { c } else { 3 + 3 * c };
        let out = buffer(ctx, &vec![f32::NAN; len]);
        let mut enc = encoder(ctx);
        ev.encode(&mut enc, &inputs, BufferView::new(&out, 0, len))
            .expect("encode");
        let got = read(ctx, enc, &out, len);
        if red == Reduction::None {
            for (k, (g, w)) in got.iter().zip(&per_class).enumerate() {
                assert!(
                    close(*g as f64, *w, 1e-6),
                    "{what}: class {k}: gpu {g} vs {w}"
                );
            }
            continue;
        }
        let want = match red {
            Reduction::Mean => total / c as f64,
            _ => total,
        };
        let (v, t) = (got[0] as f64, got[1] as f64);
        assert!(close(v, want, 1e-6), "{what} {red:?}: gpu {v} vs {want}");
        assert!(close(t, total, 1e-6), "{what}: Σ loss: gpu {t} vs {total}");
        assert_eq!(got[2], c as f32, "{what}: class count");
        for (k, s) in sums.iter().enumerate() {
            // Each sum is within f32 rounding of its largest part.
            let scale = s.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (j, name) in ["Σp", "Σt", "Σ|p − t|"].iter().enumerate() {
                let g = got[3 + 3 * k + j] as f64;
                assert!(
                    (g - s[j]).abs() <= 1e-5 * scale + 1e-6,
                    "{what}: class {k} {name}: gpu {g} vs {}",
                    s[j]
                );
            }
        }
    }
}

/// More values than one storage binding holds, 64 entries fitting one: the
/// batch is cut into aligned slices of whole entries, one dispatch each, all
/// meeting in `finish`; the per-class sums come out exact.
#[test]
fn multiclass_longer_than_one_binding() {
    let loss = dice(DiceMode::Multiclass, true, 0.0, Some(255), false);
    let shape = [130, 4, 65_536];
    let n: usize = shape.iter().product();
    assert!(n > ctx().max_binding_elements());
    let mut r = rng(40);
    let x = predictions(&mut r, n, true);
    let yc = classes(&mut r, n / 4, 4, true, false);
    let host = Inputs::new(Tensor::new(&x, &shape)).classes(&yc, &[130, 65_536]);
    let y: Vec<i32> = yc.iter().map(|&v| v as i32).collect();
    check_device(
        ctx(),
        "multiclass beyond a binding",
        &loss,
        &[Reduction::Mean, Reduction::None],
        (&x, &shape),
        &y,
        &host,
    );
    let prepared = ctx().prepare(&loss, Reduction::Sum, &host).unwrap();
    assert_eq!(prepared.dispatches(), 3, "two slices and the finish pass");
}

/// On a context with small bindings: slices of 64 entries and more (aligned),
/// slices of fewer (starting up to 63 values into their bindings), each
/// target kind, every reduction, and the per-class sums of all slices.
#[test]
fn slices_on_small_bindings() {
    let small = small_ctx();
    let limit = small.max_binding_elements();
    let mut r = rng(41);
    for (mode, shape, ignore) in [
        (DiceMode::Multiclass, [50, 3, 1000], Some(255)),
        (DiceMode::Multiclass, [700, 2, 100], None),
        (DiceMode::Multilabel, [40, 2, 1999], Some(255)),
        (DiceMode::Multilabel, [700, 2, 100], None),
        (DiceMode::Binary, [9, 1, 20_011], None),
    ] {
        let n: usize = shape.iter().product();
        assert!(n > limit, "{shape:?} fits one binding");
        for from_logits in [true, false] {
            let loss = dice(mode, from_logits, 0.0, ignore, false);
            let x = predictions(&mut r, n, from_logits);
            let what = format!("{loss:?} {shape:?}");
            if mode == DiceMode::Multiclass {
                let yc = classes(&mut r, n / shape[1], shape[1], ignore.is_some(), false);
                let target_shape = [shape[0], shape[2]];
                let host = Inputs::new(Tensor::new(&x, &shape)).classes(&yc, &target_shape);
                for red in REDUCTIONS {
                    check_on(small, &format!("{what} {red:?}"), &loss, red, &host, 1e-6);
                }
                let y: Vec<i32> = yc.iter().map(|&v| v as i32).collect();
                check_device(small, &what, &loss, &REDUCTIONS, (&x, &shape), &y, &host);
            } else {
                let y = masks(&mut r, n, ignore.is_some());
                let host = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
                for red in REDUCTIONS {
                    check_on(small, &format!("{what} {red:?}"), &loss, red, &host, 1e-6);
                }
            }
        }
    }
}

/// One evaluator, two encodes into one encoder on different buffers: each
/// output matches the twin on its own data.
#[test]
fn an_evaluator_encodes_twice() {
    let loss = dice(DiceMode::Multiclass, true, 0.5, Some(255), false);
    let shape = [3, 4, 100];
    let mut r = rng(42);
    let data: Vec<(Vec<f32>, Vec<i64>)> = (0..2)
        .map(|_| {
            (
                predictions(&mut r, 1200, true),
                classes(&mut r, 300, 4, true, true),
            )
        })
        .collect();
    let bufs: Vec<_> = data
        .iter()
        .map(|(x, y)| {
            let y: Vec<i32> = y.iter().map(|&v| v as i32).collect();
            (buffer(ctx(), x), buffer(ctx(), &y))
        })
        .collect();
    let device = |k: usize| {
        DeviceInputs::new(DeviceTensor::new(
            BufferView::new(&bufs[k].0, 0, 1200),
            &shape,
        ))
        .classes(DeviceTensor::new(
            BufferView::new(&bufs[k].1, 0, 300),
            &[3, 100],
        ))
    };
    let ev = ctx().evaluator(&loss, Reduction::Mean, &device(0)).unwrap();
    assert_eq!(ev.output_len(), 1);
    // Two 256-byte-aligned views of one buffer, each with room for the sums.
    let out = buffer(ctx(), &[f32::NAN; 64 + 15]);
    let mut enc = encoder(ctx());
    for k in 0..2 {
        ev.encode(
            &mut enc,
            &device(k),
            BufferView::new(&out, 256 * k as u64, 15),
        )
        .unwrap();
    }
    let got = read(ctx(), enc, &out, 64 + 15);
    for (k, (x, y)) in data.iter().enumerate() {
        let host = Inputs::new(Tensor::new(x, &shape)).classes(y, &[3, 100]);
        let want = cpu::evaluate(&loss, Reduction::Mean, &host).unwrap().value;
        let (_, per_class) = reference(&loss, &host);
        let g = &got[64 * k..64 * k + 15];
        assert!(
            close(g[0] as f64, want, 1e-6),
            "encode {k}: {} vs {want}",
            g[0]
        );
        let total: f64 = per_class.iter().sum();
        assert!(close(g[1] as f64, total, 1e-6), "encode {k}: Σ loss");
        assert_eq!(g[2], 4.0);
    }
    // A view too small for the sums gets the value alone.
    let small = buffer(ctx(), &[f32::NAN; 4]);
    let mut enc = encoder(ctx());
    ev.encode(&mut enc, &device(1), BufferView::new(&small, 0, 4))
        .unwrap();
    let got = read(ctx(), enc, &small, 4);
    assert!(
        got[0].is_finite() && got[1..].iter().all(|v| v.is_nan()),
        "{got:?}"
    );
}

/// The extended output of a sum and of an all-ignored batch on device
/// buffers, and the per-class sums of float targets.
#[test]
fn per_class_sums_match_the_twin() {
    let loss = dice(DiceMode::Multiclass, false, 0.0, Some(-1), true);
    let shape = [2, 5, 257];
    let mut r = rng(43);
    let x = uniform(&mut r, 2 * 5 * 257, 0.0, 1.0);
    let yc: Vec<i64> = (0..514)
        .map(|i| if i % 7 == 0 { -1 } else { r.random_range(0..4) })
        .collect();
    let host = Inputs::new(Tensor::new(&x, &shape)).classes(&yc, &[2, 257]);
    let y: Vec<i32> = yc.iter().map(|&v| v as i32).collect();
    let all = REDUCTIONS;
    check_device(ctx(), "sums", &loss, &all, (&x, &shape), &y, &host);
    let ignored = vec![-1i64; 514];
    let host = Inputs::new(Tensor::new(&x, &shape)).classes(&ignored, &[2, 257]);
    check_device(
        ctx(),
        "all ignored",
        &loss,
        &all,
        (&x, &shape),
        &[-1; 514],
        &host,
    );
}

/// Class indices on the device are not checked by the host: one out of
/// [0, C) that is not the ignore value gives NaN, never a plausible loss.
#[test]
fn a_class_index_out_of_range_gives_nan() {
    let shape = [2, 3, 5];
    let mut r = rng(44);
    let x = predictions(&mut r, 30, true);
    let bx = buffer(ctx(), &x);
    let run = |loss: &Loss, red: Reduction, y: &[i32]| -> Vec<f32> {
        let by = buffer(ctx(), y);
        let inputs = DeviceInputs::new(DeviceTensor::new(BufferView::new(&bx, 0, 30), &shape))
            .classes(DeviceTensor::new(BufferView::new(&by, 0, 10), &[2, 5]));
        let ev = ctx().evaluator(loss, red, &inputs).unwrap();
        let len = if red == Reduction::None { 3 } else { 12 };
        let out = buffer(ctx(), &vec![0.0f32; len]);
        let mut enc = encoder(ctx());
        ev.encode(&mut enc, &inputs, BufferView::new(&out, 0, len))
            .unwrap();
        read(ctx(), enc, &out, len)
    };
    let good = [0, 1, 2, 255, 1, 0, 2, 2, 1, 0];
    // Every variant: each carries the kinds of a bad index its own way.
    let host_y: Vec<i64> = good.iter().map(|&v| (v % 255) as i64).collect();
    let host = Inputs::new(Tensor::new(&x, &shape)).classes(&host_y, &[2, 5]);
    let softmax = dice(DiceMode::Multiclass, true, 0.0, None, false);
    let variants = variant_names(ctx(), &softmax, Reduction::Mean, &host).unwrap();
    assert!(variants.len() > 1, "{variants:?}");
    for v in variants {
        with_forced_variant(v, || {
            for ignore in [None, Some(255)] {
                let loss = dice(DiceMode::Multiclass, true, 0.0, ignore, false);
                for bad in [3, 7, -1, -4, i32::MIN, i32::MAX, 255] {
                    let mut y = good;
                    y[6] = bad;
                    if ignore.is_none() {
                        y[3] = 0;
                    }
                    let ignored = ignore == Some(bad as i64);
                    for red in REDUCTIONS {
                        let got = run(&loss, red, &y);
                        if ignored {
                            assert!(
                                got.iter().all(|v| v.is_finite()),
                                "{v} {bad} ignored: {got:?}"
                            );
                            continue;
                        }
                        // The losses, and Σt and Σ|p − t| of every class (Σp stays).
                        let nan: Vec<usize> = match red {
                            Reduction::None => vec![0, 1, 2],
                            _ => vec![0, 1, 4, 5, 7, 8, 10, 11],
                        };
                        assert!(
                            nan.iter().all(|&i| got[i].is_nan()),
                            "{v} class {bad} {red:?}: {got:?}"
                        );
                    }
                }
            }
        })
        .unwrap();
    }
    // The ignore value itself, as the host maps it (i32::MIN beyond i32).
    let big = 1i64 << 40;
    let loss = dice(DiceMode::Multiclass, true, 0.0, Some(big), false);
    let mut y = good;
    y[3] = i32::MIN;
    let yc: Vec<i64> = y
        .iter()
        .map(|&v| if v == i32::MIN { big } else { v as i64 })
        .collect();
    let host = Inputs::new(Tensor::new(&x, &shape)).classes(&yc, &[2, 5]);
    let want = cpu::evaluate(&loss, Reduction::Mean, &host).unwrap().value;
    let got = run(&loss, Reduction::Mean, &y)[0] as f64;
    assert!(close(got, want, 1e-6), "{got} vs {want}");
}

/// A batch entry is never cut (softmax needs all its classes): one longer
/// than a binding cannot be evaluated. Only shapes are read, so tiny buffers do.
#[test]
fn an_entry_longer_than_a_binding_is_too_large() {
    let limit = ctx().max_binding_elements();
    let tiny = buffer(ctx(), &[0.0f32; 4]);
    let view = BufferView::new(&tiny, 0, 4);
    let loss = dice(DiceMode::Multilabel, true, 0.0, None, false);
    for (shape, ok) in [
        ([2, 2, limit / 2], false),
        ([1, 2, limit / 2], true),
        ([3, 1, limit / 64 + 1], true),
    ] {
        let inputs = DeviceInputs::new(DeviceTensor::new(view, &shape))
            .target(DeviceTensor::new(view, &shape));
        match ctx().evaluator(&loss, Reduction::Mean, &inputs) {
            Err(Error::TooLarge { .. }) => assert!(!ok, "{shape:?}"),
            Ok(_) => assert!(ok, "{shape:?}"),
            Err(e) => panic!("{shape:?}: {e}"),
        }
    }
    // The host path says so too.
    let small = small_ctx();
    let entry = small.max_binding_elements() / 2 + 1;
    let x = vec![0.5f32; 4 * entry];
    let shape = [2, 2, entry];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&x, &shape));
    let loss = dice(DiceMode::Multilabel, false, 0.0, None, false);
    match small.evaluate(&loss, Reduction::Mean, &inputs) {
        Err(Error::TooLarge { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_mode_gradient_at_awkward_pixel_counts() {
    for mode in DiceMode::ALL {
        for from_logits in [true, false] {
            let loss = dice(mode, from_logits, 0.0, None, false);
            let c = class_count(mode);
            for (k, pixels) in [1, 255, 256, 257, 65_537].into_iter().enumerate() {
                // Batches of several entries where the count allows.
                let shape = if pixels % 4 == 0 {
                    [4, c, pixels / 4]
                } else {
                    [1, c, pixels]
                };
                check_shape_grad("pixels", &loss, &shape, 10 * k as u64 + 1, false);
            }
        }
    }
}

#[test]
fn smoothing_log_loss_ignore_index_and_absent_classes() {
    let mut seed = 100;
    for mode in DiceMode::ALL {
        for from_logits in [true, false] {
            for (smooth, ignore, log) in [
                (1.0, None, false),
                (0.0, None, true),
                (1.0, Some(255), true),
                (0.0, Some(255), false),
            ] {
                let loss = dice(mode, from_logits, smooth, ignore, log);
                let c = class_count(mode);
                seed += 1;
                check_shape_grad("options", &loss, &[3, c, 7, 11], seed, false);
                if mode == DiceMode::Multiclass {
                    check_shape_grad("absent class", &loss, &[2, 4, 50], seed, true);
                }
            }
        }
    }
}

#[test]
fn absent_classes_and_all_ignored_pixels_pass_no_gradient() {
    let mut r = rng(12);
    let x = uniform(&mut r, 2 * 4 * 50, -3.0, 3.0);
    let y: Vec<i64> = (0..100).map(|i| (i % 3) as i64).collect();
    let inputs = Inputs::new(Tensor::new(&x, &[2, 4, 50])).classes(&y, &[2, 50]);
    // Probabilities: class 3 is absent, so its inputs get exactly 0.
    let probs: Vec<f32> = x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    let prob_inputs = Inputs::new(Tensor::new(&probs, &[2, 4, 50])).classes(&y, &[2, 50]);
    let loss = dice(DiceMode::Multiclass, false, 0.0, None, false);
    let g = check_grad(
        "absent class",
        &loss,
        Reduction::Mean,
        &prob_inputs,
        Upstream::Scalar(400.0),
    );
    for n in 0..2 {
        assert!(g.input[(n * 4 + 3) * 50..(n * 4 + 4) * 50]
            .iter()
            .all(|v| *v == 0.0));
    }
    // From logits the softmax still spreads the other classes' gradients.
    let loss = dice(DiceMode::Multiclass, true, 0.0, None, true);
    for (red, up) in calls(4, 100, 3) {
        check_grad(
            &format!("absent class logits {red:?}"),
            &loss,
            red,
            &inputs,
            up,
        );
    }
    // Every pixel ignored: every gradient 0.
    let y = [255i64; 16];
    let x = predictions(&mut r, 48, true);
    let inputs = Inputs::new(Tensor::new(&x, &[2, 3, 8])).classes(&y, &[2, 8]);
    let loss = dice(DiceMode::Multiclass, true, 0.0, Some(255), false);
    for (red, up) in calls(3, 16, 4) {
        let g = check_grad(&format!("all ignored {red:?}"), &loss, red, &inputs, up);
        assert!(g.input.iter().all(|v| *v == 0.0), "{red:?}: {:?}", g.input);
    }
    // All-zero binary target: loss 0, gradient 0.
    let zeros = [0.0f32; 16];
    let x = predictions(&mut r, 16, false);
    let inputs = Inputs::new(Tensor::new(&x, &[2, 1, 8])).target(Tensor::new(&zeros, &[2, 1, 8]));
    let loss = dice(DiceMode::Binary, false, 1.0, None, true);
    let g = check_grad(
        "zero target",
        &loss,
        Reduction::Sum,
        &inputs,
        Upstream::Scalar(1.0),
    );
    assert!(g.input.iter().all(|v| *v == 0.0));
}

/// Exact 0/1 probabilities equal to the target take sign(0) = 0 in
/// d|p − t|/dp; f32-saturated sigmoids do the same on the GPU.
#[test]
fn exact_probabilities_take_the_sign_zero_branch() {
    let shape = [2, 1, 8];
    let t = binary_target();
    // smp's example: p = [1, 0, .5, .5], t = [1, 0, 1, 0].
    let p = [1.0f32, 0.0, 0.5, 0.5];
    let tt = [1.0f32, 0.0, 1.0, 0.0];
    let small = Inputs::new(Tensor::new(&p, &[1, 1, 4])).target(Tensor::new(&tt, &[1, 1, 4]));
    let loss = dice(DiceMode::Binary, false, 0.0, None, false);
    let g = check_grad(
        "smp ties",
        &loss,
        Reduction::Mean,
        &small,
        Upstream::Scalar(1.0),
    );
    let want = [-0.0625f32, -0.0625, -0.3125, 0.1875];
    for (g, w) in g.input.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{:?} vs {want:?}", g);
    }
    let mixed: Vec<f32> = t
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 4 == 1 { 0.25 } else { *v })
        .collect();
    let wrong: Vec<f32> = t.iter().map(|v| 1.0 - v).collect();
    for (name, x) in [("perfect", &t), ("mixed", &mixed), ("all wrong", &wrong)] {
        let inputs = Inputs::new(Tensor::new(x, &shape)).target(Tensor::new(&t, &shape));
        for log in [false, true] {
            let loss = dice(DiceMode::Binary, false, 0.0, None, log);
            for (red, up) in calls(1, 16, 5) {
                check_grad(
                    &format!("{name} log {log} {red:?}"),
                    &loss,
                    red,
                    &inputs,
                    up,
                );
            }
        }
    }
    // One-hot multiclass probabilities, exact.
    let y: Vec<i64> = (0..16).map(|i| i % 3).collect();
    let onehot: Vec<f32> = (0..48)
        .map(|j| ((j / 16) as i64 == y[j % 16]) as u8 as f32)
        .collect();
    let inputs = Inputs::new(Tensor::new(&onehot, &[1, 3, 16])).classes(&y, &[1, 16]);
    for (red, up) in calls(3, 16, 6) {
        let loss = dice(DiceMode::Multiclass, false, 0.0, None, false);
        check_grad(&format!("one-hot {red:?}"), &loss, red, &inputs, up);
    }
    // Saturated logits: σ(x) rounds to 1 in f32, as in PyTorch's f32.
    let x = saturated_logits(&t);
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&t, &shape));
    for log in [false, true] {
        let loss = dice(DiceMode::Binary, true, 0.0, None, log);
        for (red, up) in calls(1, 16, 7) {
            check_grad(
                &format!("saturated log {log} {red:?}"),
                &loss,
                red,
                &inputs,
                up,
            );
        }
    }
    let x: Vec<f32> = (0..48)
        .map(|i| if i % 5 == 0 { 100.0 } else { -100.0 })
        .collect();
    let inputs = Inputs::new(Tensor::new(&x, &[1, 3, 16])).classes(&y, &[1, 16]);
    for (red, up) in calls(3, 16, 8) {
        let loss = dice(DiceMode::Multiclass, true, 0.0, None, false);
        check_grad(&format!("logits ±100 {red:?}"), &loss, red, &inputs, up);
    }
}

/// The cardinality below eps (its clamp active: no gradient through it) and
/// log_loss's clamp of a dice below eps (no gradient at all).
#[test]
fn the_eps_clamps() {
    for loss in tiny_eps_losses() {
        for (red, up) in calls(1, 4, 9) {
            check_grad(&format!("{loss:?} {red:?}"), &loss, red, &tiny(), up);
        }
    }
    // A poor prediction with a large eps: log_loss clamps dice at eps.
    let mut r = rng(21);
    let p = uniform(&mut r, 60, 0.0, 0.2);
    let y: Vec<f32> = (0..60).map(|i| (i % 2) as f32).collect();
    let inputs = Inputs::new(Tensor::new(&p, &[1, 3, 20])).target(Tensor::new(&y, &[1, 3, 20]));
    for eps in [0.5f32, 1e-7] {
        let loss = Loss::Dice(Dice {
            mode: DiceMode::Multilabel,
            from_logits: false,
            smooth: 0.0,
            eps,
            ignore_index: None,
            log_loss: true,
        });
        for (red, up) in calls(3, 20, 10) {
            let g = check_grad(
                &format!("log clamp eps {eps} {red:?}"),
                &loss,
                red,
                &inputs,
                up,
            );
            if eps == 0.5 {
                assert!(g.input.iter().all(|v| *v == 0.0), "clamped: {:?}", g.input);
            }
        }
    }
}

/// On a context with small bindings: slices of 64 entries and more (aligned)
/// and of fewer (starting inside their bindings); each slice's gradient
/// lands at its offsets.
#[test]
fn gradients_in_slices_on_small_bindings() {
    let small = small_ctx();
    let limit = small.max_binding_elements();
    let mut r = rng(41);
    for (mode, shape, ignore) in [
        (DiceMode::Multiclass, [700, 2, 100], None),
        (DiceMode::Multiclass, [50, 3, 1000], Some(255)),
        (DiceMode::Multilabel, [40, 2, 1999], Some(255)),
    ] {
        let n: usize = shape.iter().product();
        assert!(n > limit, "{shape:?} fits one binding");
        for from_logits in [true, false] {
            let loss = dice(mode, from_logits, 0.5, ignore, false);
            let x = predictions(&mut r, n, from_logits);
            let pixels = n / shape[1];
            let target_shape = [shape[0], shape[2]];
            let (yc, y);
            let inputs = if mode == DiceMode::Multiclass {
                yc = classes(&mut r, pixels, shape[1], ignore.is_some(), false);
                Inputs::new(Tensor::new(&x, &shape)).classes(&yc, &target_shape)
            } else {
                y = masks(&mut r, n, ignore.is_some());
                Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape))
            };
            for (red, up) in calls(shape[1], pixels, 11) {
                let what = format!("{loss:?} {shape:?} {red:?}");
                check_grad_on(small, &what, &loss, red, &inputs, up);
            }
        }
    }
}

/// Caller buffers: a class index out of range (not the ignore value) makes
/// its pixel's gradients NaN; an ignored one passes 0.
#[test]
fn a_class_index_out_of_range_gives_nan_gradients() {
    let shape = [2, 3, 5];
    let mut r = rng(44);
    let x = predictions(&mut r, 30, true);
    let bx = buffer(ctx(), &x);
    let loss = dice(DiceMode::Multiclass, true, 0.0, Some(255), false);
    for (bad, nan) in [(3, true), (-1, true), (255, false)] {
        let mut y = [0i32, 1, 2, 1, 1, 0, 2, 2, 1, 0];
        y[6] = bad;
        let by = buffer(ctx(), &y);
        let inputs = DeviceInputs::new(DeviceTensor::new(BufferView::new(&bx, 0, 30), &shape))
            .classes(DeviceTensor::new(BufferView::new(&by, 0, 10), &[2, 5]));
        let ev = ctx()
            .grad_evaluator(&loss, Reduction::Mean, &inputs)
            .unwrap();
        let out = buffer(ctx(), &[0.0f32; 4]);
        let dx = buffer(ctx(), &[0.0f32; 30]);
        let mut enc = encoder(ctx());
        ev.encode_with_grad(
            &mut enc,
            &inputs,
            DeviceUpstream::Scalar(1.0),
            BufferView::new(&out, 0, 1),
            &GradViews::new(BufferView::new(&dx, 0, 30)),
        )
        .unwrap();
        let g = read(ctx(), enc, &dx, 30);
        // Pixel 6 is (n = 1, s = 1): elements (3 + c) * 5 + 1.
        let at: Vec<f32> = (0..3).map(|c| g[(3 + c) * 5 + 1]).collect();
        if nan {
            assert!(g.iter().all(|v| v.is_nan()), "class {bad}: {g:?}");
        } else {
            assert!(at.iter().all(|v| *v == 0.0), "ignored: {g:?}");
            assert!(g.iter().all(|v| v.is_finite()), "ignored: {g:?}");
        }
    }
}

/// Dispatches: per slice the forward's pass and the gradient pass, plus
/// `finish`.
#[test]
fn dispatch_counts() {
    let loss = dice(DiceMode::Multiclass, true, 0.0, None, false);
    let shape = [700, 2, 100];
    let x = vec![0.0f32; 140_000];
    let y = vec![0i32; 70_000];
    let small = small_ctx();
    let bx = buffer(small, &x);
    let by = buffer(small, &y);
    let inputs =
        DeviceInputs::new(DeviceTensor::new(BufferView::new(&bx, 0, x.len()), &shape)).classes(
            DeviceTensor::new(BufferView::new(&by, 0, y.len()), &[700, 100]),
        );
    let forward = small.evaluator(&loss, Reduction::Mean, &inputs).unwrap();
    let backward = small
        .grad_evaluator(&loss, Reduction::Mean, &inputs)
        .unwrap();
    let slices = forward.dispatches() - 1;
    assert!(slices > 1, "{slices} slices");
    assert_eq!(backward.dispatches(), 2 * slices + 1);
}

// The twin's gradients against finite differences and PyTorch's conventions.

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
                let case = Case::new(dice(
                    mode,
                    from_logits,
                    smooth,
                    ignore.then_some(255),
                    log_loss,
                ));
                let x_of = |r: &mut ChaCha8Rng, t: &[f32]| -> Vec<f32> {
                    if from_logits {
                        fd::vals(r, n, -3.0, 3.0)
                    } else {
                        // Probabilities away from their targets (the L1 kink).
                        t.iter()
                            .map(|t| fd::draw_ok(r, 0.02, 0.98, |p| (p - *t as f64).abs() >= GAP))
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
                        fd::vals(&mut r, n, 0.0, 1.0)
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
                checked += fd::check_all(&what, &case, 92);
            }
        }
    }
    assert!(checked > 3000, "{checked}");
}

#[test]
fn dice_conventions() {
    let probs = |x: &[f32], t: &[f32], log_loss: bool| {
        Case::new(dice(DiceMode::Binary, false, 0.0, None, log_loss))
            .with("input", x.to_vec(), &[1, 1, x.len()])
            .with("target", t.to_vec(), &[1, 1, t.len()])
    };
    // p == t at exact 0/1: sign(0) = 0, ∂I/∂p = ½ (✔ smp; docs/semantics.md, dice).
    let case = probs(&[1.0, 0.0, 0.5, 0.5], &[1.0, 0.0, 1.0, 0.0], false);
    fd::assert_vec(
        "tie",
        &fd::grad(&case, Reduction::Mean).1.input,
        &[-0.0625, -0.0625, -0.3125, 0.1875],
    );
    // The eps clamp on the cardinality is active: no gradient through it, only
    // through the intersection (✔ smp: −1/eps, −1/(2 eps) at p == t).
    let eps = 1e-7f32 as f64;
    let case = probs(&[1e-9, 0.0, 0.0], &[1e-8, 0.0, 0.0], false);
    fd::assert_vec(
        "clamp",
        &fd::grad(&case, Reduction::Mean).1.input,
        &[-1.0 / eps, -0.5 / eps, -0.5 / eps],
    );
    // log_loss with the score clamped at eps: no gradient at all (✔ smp).
    let case = probs(&[0.0, 0.0, 0.0], &[1e-8, 0.0, 0.0], true);
    fd::assert_vec(
        "log clamp",
        &fd::grad(&case, Reduction::Mean).1.input,
        &[0.0; 3],
    );
    // A class absent from the whole batch: loss 0, gradient 0 on its channel.
    let case = Case::new(dice(DiceMode::Multiclass, false, 0.0, None, false))
        .with(
            "input",
            vec![0.7, 0.2, 0.1, 0.6, 0.2, 0.7, 0.1, 0.2, 0.1, 0.1, 0.8, 0.2],
            &[1, 3, 4],
        )
        .classes(vec![0, 1, 0, 0], &[1, 4]);
    let (r, g) = fd::grad(&case, Reduction::Mean);
    assert_eq!(r.items[2], 0.0);
    fd::assert_vec("absent class", &g.input[8..], &[0.0; 4]);
    assert!(g.input[..8].iter().all(|v| *v != 0.0));
    // Ignored pixels get 0 in every class, also through the softmax.
    let case = Case::new(dice(DiceMode::Multiclass, true, 0.0, Some(255), false))
        .with(
            "input",
            vec![0.5, -1.0, 2.0, 0.3, 1.0, 0.0, -0.5, 0.2, 0.1],
            &[1, 3, 3],
        )
        .classes(vec![0, 255, 2], &[1, 3]);
    let g = fd::grad(&case, Reduction::Mean).1.input;
    fd::assert_vec("ignored pixel", &[g[1], g[4], g[7]], &[0.0; 3]);
}

// The variants of the first pass (`dice-class-groups`, `dice-coalesced`,
// `dice-pixels`):
// each forced on every mode at shapes around the workgroup and with few
// pixels per entry (inner = 1, where a pixel's classes are neighbours), with
// smoothing, log loss, ignored and absent classes, values and gradients, and
// in slices beyond one binding; `nonfinite.rs` runs its kinds through both.

/// Every reduction and every gradient call of `loss` on `inputs` through each
/// eligible variant on `ctx`; adds the variants it ran to `ran`.
fn check_dice_variants(
    ctx: &Context,
    what: &str,
    loss: &Loss,
    inputs: &Inputs<'_>,
    shape: &[usize],
    ran: &mut BTreeSet<&'static str>,
) {
    let n: usize = shape.iter().product();
    let pixels = n / shape[1].max(1);
    for v in variant_names(ctx, loss, Reduction::Mean, inputs).unwrap() {
        ran.insert(v);
        with_forced_variant(v, || {
            for red in REDUCTIONS {
                let what = format!("{what} {loss:?} {shape:?} {v} {red:?}");
                check_on(ctx, &what, loss, red, inputs, 1e-6);
            }
            for (red, up) in calls(shape[1], pixels, n as u64) {
                let what = format!("{what} {loss:?} {shape:?} {v} gradient {red:?}");
                check_grad_on(ctx, &what, loss, red, inputs, up);
            }
        })
        .unwrap();
    }
}

#[test]
fn every_dice_variant_at_awkward_shapes() {
    let mut ran = BTreeSet::new();
    // (N, C, inner): a pixel per entry, around the workgroup, the most
    // classes `dice-coalesced` and `dice-pixels` keep and one more, and runs
    // of more than 64 pixels per invocation (`dice-pixels` on a CPU adapter)
    // whose steps cross entries once in a while and several at a time.
    let shapes: [[usize; 3]; 9] = [
        [1, 3, 1],
        [7, 5, 1],
        [2, 3, 255],
        [1, 3, 257],
        [3, 16, 5],
        [2, 17, 3],
        [1, 2, 4099],
        [2, 2, 300_001],
        [20_000, 2, 3],
    ];
    for (k, shape) in shapes.iter().enumerate() {
        for mode in DiceMode::ALL {
            let shape = if mode == DiceMode::Binary {
                [shape[0], 1, shape[2] * shape[1]]
            } else {
                *shape
            };
            for (from_logits, smooth, ignore, log_loss) in [
                (true, 0.0, None, false),
                (false, 1.0, Some(255), true),
                (true, 0.5, Some(255), false),
            ] {
                let loss = dice(mode, from_logits, smooth, ignore, log_loss);
                let data = DiceData::new(&loss, &shape, 50 + k as u64, k % 2 == 1);
                check_dice_variants(ctx(), "", &loss, &data.inputs(), &shape, &mut ran);
            }
        }
    }
    assert_eq!(
        ran,
        BTreeSet::from(["dice-class-groups", "dice-coalesced", "dice-pixels"])
    );
}

#[test]
fn every_dice_variant_in_slices_beyond_one_binding() {
    let small = small_ctx();
    let limit = small.max_binding_elements();
    let mut ran = BTreeSet::new();
    for (mode, shape, ignore) in [
        (DiceMode::Multiclass, [50, 3, 1000], Some(255)),
        (DiceMode::Multilabel, [40, 2, 1999], Some(255)),
        (DiceMode::Binary, [9, 1, 20_011], None),
        (DiceMode::Multilabel, [30_011, 3, 1], None),
    ] {
        let n: usize = shape.iter().product();
        assert!(n > limit, "{shape:?} fits one binding");
        for from_logits in [true, false] {
            let loss = dice(mode, from_logits, 0.5, ignore, false);
            let data = DiceData::new(&loss, &shape, n as u64, false);
            check_dice_variants(small, "sliced", &loss, &data.inputs(), &shape, &mut ran);
        }
    }
    assert_eq!(
        ran,
        BTreeSet::from(["dice-class-groups", "dice-coalesced", "dice-pixels"])
    );
}

/// Every dice variant through GL (wgpu's GLES backend: GLSL from the same
/// WGSL), where the machine has it, on every mode, values and gradients.
#[test]
fn every_dice_variant_on_the_gl_backend() {
    let Some(gl) = gl_ctx() else {
        eprintln!("no GL adapter: the variants ran on Vulkan alone");
        return;
    };
    let mut ran = BTreeSet::new();
    for (k, shape) in [[2usize, 3, 257], [3, 4, 5000], [7, 2, 1]]
        .iter()
        .enumerate()
    {
        for mode in DiceMode::ALL {
            let shape = if mode == DiceMode::Binary {
                [shape[0], 1, shape[2] * shape[1]]
            } else {
                *shape
            };
            for (from_logits, smooth, ignore, log_loss) in
                [(true, 0.0, None, false), (false, 1.0, Some(255), true)]
            {
                let loss = dice(mode, from_logits, smooth, ignore, log_loss);
                let data = DiceData::new(&loss, &shape, 80 + k as u64, false);
                check_dice_variants(gl, "gl", &loss, &data.inputs(), &shape, &mut ran);
            }
        }
    }
    assert_eq!(
        ran,
        BTreeSet::from(["dice-class-groups", "dice-coalesced", "dice-pixels"])
    );
}

/// A softmax needs every class of a pixel at once, and `dice-coalesced`
/// keeps at most 16 classes: forcing it there is an error, not a wrong
/// answer.
#[test]
fn dice_coalesced_needs_no_softmax_and_few_classes() {
    let only = |loss: &Loss, shape: &[usize]| {
        let data = DiceData::new(loss, shape, 3, false);
        let inputs = data.inputs();
        let eligible = variant_names(ctx(), loss, Reduction::Mean, &inputs).unwrap();
        assert!(!eligible.contains(&"dice-coalesced"), "{loss:?} {shape:?}");
        let got = with_forced_variant("dice-coalesced", || {
            ctx().evaluate(loss, Reduction::Mean, &inputs)
        })
        .unwrap();
        assert!(matches!(got, Err(Error::Variant { .. })), "{got:?}");
    };
    only(
        &dice(DiceMode::Multiclass, true, 0.0, None, false),
        &[2, 3, 10],
    );
    only(
        &dice(DiceMode::Multilabel, true, 0.0, None, false),
        &[2, 17, 10],
    );
    assert!(with_forced_variant("dice-warp", || ()).is_err());
}
