//! Dice gradients on the GPU against the float64 backward (`cpu::gradient`,
//! smp + autograd): every mode, from logits or probabilities, each reduction
//! with scalar and per-class upstreams, awkward pixel counts, smoothing,
//! log_loss, ignored pixels, absent classes, exact 0/1 probabilities (the
//! sign(0) ties of Σ|p − t|), the eps clamps, slices beyond one binding, and
//! a class index out of range on caller buffers.

use crate::common::device::*;
use crate::common::dice_data::*;
use crate::common::*;
use wgpu_loss::Dice;
use wgpu_loss::{
    BufferView, DeviceInputs, DeviceTensor, DeviceUpstream, DiceMode, GradViews, Inputs, Loss,
    Reduction, Tensor, Upstream,
};

const MODES: [DiceMode; 3] = [DiceMode::Binary, DiceMode::Multiclass, DiceMode::Multilabel];

fn dice(mode: DiceMode, from_logits: bool, smooth: f32, ignore: Option<i64>, log: bool) -> Loss {
    Loss::Dice(Dice {
        mode,
        from_logits,
        smooth,
        eps: 1e-7,
        ignore_index: ignore,
        log_loss: log,
    })
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
fn check_shape(what: &str, loss: &Loss, shape: &[usize], seed: u64, absent: bool) {
    let Loss::Dice(Dice {
        mode,
        from_logits,
        ignore_index,
        ..
    }) = *loss
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
    let pixels = n / shape[1].max(1);
    for (red, up) in calls(shape[1], pixels, seed) {
        let kind = if matches!(up, Upstream::Items(_)) {
            "per class"
        } else {
            "scalar"
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
fn every_mode_at_awkward_pixel_counts() {
    for mode in MODES {
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
                check_shape("pixels", &loss, &shape, 10 * k as u64 + 1, false);
            }
        }
    }
}

#[test]
fn smoothing_log_loss_ignore_index_and_absent_classes() {
    let mut seed = 100;
    for mode in MODES {
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
                check_shape("options", &loss, &[3, c, 7, 11], seed, false);
                if mode == DiceMode::Multiclass {
                    check_shape("absent class", &loss, &[2, 4, 50], seed, true);
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
    let t: Vec<f32> = (0..16).map(|i| (i % 3 == 0) as u8 as f32).collect();
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
    let x: Vec<f32> = t
        .iter()
        .enumerate()
        .map(|(i, v)| if *v == 1.0 { 9.0 + i as f32 } else { -100.0 })
        .collect();
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
    let x = [1e-9f32, 2e-9, 0.0, 1e-9];
    let t = [1e-9f32, 0.0, 3e-9, 0.0];
    let inputs = Inputs::new(Tensor::new(&x, &[1, 1, 4])).target(Tensor::new(&t, &[1, 1, 4]));
    for eps in [1e-7f32, 1e-3, 0.0] {
        for log_loss in [false, true] {
            let loss = Loss::Dice(Dice {
                mode: DiceMode::Binary,
                from_logits: false,
                smooth: 0.0,
                eps,
                ignore_index: None,
                log_loss,
            });
            for (red, up) in calls(1, 4, 9) {
                check_grad(
                    &format!("eps {eps} log {log_loss} {red:?}"),
                    &loss,
                    red,
                    &inputs,
                    up,
                );
            }
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
fn slices_on_small_bindings() {
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
