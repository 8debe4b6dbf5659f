//! Gradients on the GPU against the float64 backward (`cpu::gradient`): every
//! element of every gradient within 1e-4 relative + 1e-6 absolute, for each
//! reduction and both kinds of upstream, at awkward sizes and extreme values,
//! for the elementwise and the softmax-row losses; then the encode-level call
//! on caller buffers and its typed errors.

use crate::common::points::{data, losses};
use crate::common::*;
use rand::Rng;
use wgpu::util::DeviceExt;
use wgpu_loss::{
    cpu, BufferView, DeviceInputs, DeviceTensor, DeviceUpstream, Error, GradViews, Inputs, Loss,
    Reduction, Tensor, Upstream,
};
use wgpu_loss::{Pointwise, Rows};

/// Every reduction the loss has, each with an upstream as autograd passes it:
/// `none` with a scalar and with one value per item. The means get an upstream
/// as large as their divisor, so that their gradients are O(1) and the
/// absolute tolerance does not hide errors.
fn calls(loss: &Loss, per_item: &[f32], batch: usize) -> Vec<(Reduction, Upstream<'static>)> {
    let n = per_item.len().max(1) as f32;
    let per_item: &'static [f32] = per_item.to_vec().leak();
    let mut calls = vec![
        (Reduction::None, Upstream::Scalar(1.5)),
        (Reduction::None, Upstream::Items(per_item)),
        (Reduction::Mean, Upstream::Scalar(0.75 * n)),
        (Reduction::Sum, Upstream::Scalar(-1.25)),
    ];
    if matches!(loss, Loss::Pointwise(Pointwise::KlDiv { .. })) {
        calls.push((
            Reduction::BatchMean,
            Upstream::Scalar(2.0 * batch.max(1) as f32),
        ));
    }
    calls
}

/// One upstream value per item, some of them 0.
fn upstream_items(n: usize, seed: u64) -> Vec<f32> {
    let mut u = uniform(&mut rng(seed), n, -2.0, 2.0);
    for v in u.iter_mut().step_by(13) {
        *v = 0.0;
    }
    u
}

#[test]
fn every_pointwise_gradient_matches_the_reference_at_awkward_sizes() {
    for loss in losses() {
        for (k, &n) in SIZES.iter().enumerate() {
            let (x, y) = data(&loss, n, 7 * k as u64 + 1);
            let shape = [n];
            let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
            for (red, up) in calls(&loss, &upstream_items(n, k as u64), n) {
                let kind = if matches!(up, Upstream::Items(_)) {
                    "items"
                } else {
                    "scalar"
                };
                check_grad(
                    &format!("{loss:?} n={n} {red:?} {kind}"),
                    &loss,
                    red,
                    &inputs,
                    up,
                );
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
    for i in (3..n).step_by(17) {
        full[i] = 0.0;
    }
    let mut per_class = uniform(&mut r, 5, 0.5, 3.0);
    per_class[2] = 0.0;
    let items = upstream_items(n, 3);
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
            let weighted = base.weight(Tensor::new(w, ws));
            for (red, up) in calls(&loss, &items, 37) {
                let what = format!("{loss:?} weight {ws:?} {red:?}");
                check_grad(&what, &loss, red, &weighted, up);
                if loss == Loss::Pointwise(Pointwise::BceWithLogits) {
                    let both = base
                        .pos_weight(Tensor::new(w, ws))
                        .weight(Tensor::new(&full, &shape));
                    check_grad(&format!("{what} pos_weight"), &loss, red, &both, up);
                    let alone = base.pos_weight(Tensor::new(w, ws));
                    check_grad(&format!("{what} pos_weight only"), &loss, red, &alone, up);
                }
            }
        }
    }
    // Non-adjacent broadcast dims are expanded on the host.
    let w = uniform(&mut r, 37 * 9, 0.0, 1.0);
    let inputs = Inputs::new(Tensor::new(&x, &shape))
        .target(Tensor::new(&y, &shape))
        .weight(Tensor::new(&w, &[37, 1, 9]));
    for loss in [
        Loss::Pointwise(Pointwise::Mse),
        Loss::Pointwise(Pointwise::L1),
    ] {
        check_grad(
            &format!("{loss:?} weight [37,1,9]"),
            &loss,
            Reduction::Mean,
            &inputs,
            Upstream::Scalar(1.0),
        );
    }
}

#[test]
fn weighted_means_over_zero_total_weight_are_nan() {
    // mean = Σw·l / Σw with Σw = 0: NaN value and NaN gradients, as in PyTorch.
    let x = [1.0f32, 2.0, -1.0];
    let y = [0.0f32, 0.0, 0.0];
    let w = [0.0f32; 3];
    let inputs = Inputs::new(Tensor::new(&x, &[3]))
        .target(Tensor::new(&y, &[3]))
        .weight(Tensor::new(&w, &[3]));
    for loss in [
        Loss::Pointwise(Pointwise::Mse),
        Loss::Pointwise(Pointwise::L1),
    ] {
        let g = check_grad(
            &format!("{loss:?} zero weight"),
            &loss,
            Reduction::Mean,
            &inputs,
            Upstream::Scalar(1.0),
        );
        assert!(g.input.iter().all(|v| v.is_nan()), "{:?}", g.input);
    }
}

#[test]
fn quantile_lists_and_ties() {
    let mut r = rng(5);
    let q = vec![0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98];
    let loss = Loss::Pointwise(Pointwise::Quantile {
        quantiles: Some(q.clone()),
    });
    for rows in [1, 300, 40_001] {
        let mut x = uniform(&mut r, rows * q.len(), -2.0, 2.0);
        let y = uniform(&mut r, rows, -2.0, 2.0);
        // Every third row predicts its target exactly: ties split ½/½.
        for row in (0..rows).step_by(3) {
            for k in 0..q.len() {
                x[row * q.len() + k] = y[row];
            }
        }
        let (xs, ys) = ([rows, q.len()], [rows]);
        let inputs = Inputs::new(Tensor::new(&x, &xs)).target(Tensor::new(&y, &ys));
        for (red, up) in calls(&loss, &upstream_items(rows * q.len(), 9), rows) {
            check_grad(
                &format!("quantile rows={rows} {red:?}"),
                &loss,
                red,
                &inputs,
                up,
            );
        }
    }
    // q = 0.5 at a tie: 0.5 − q = 0; at q = 0.1 it is 0.4.
    let loss = Loss::Pointwise(Pointwise::Quantile {
        quantiles: Some(vec![0.1, 0.5]),
    });
    let inputs = Inputs::new(Tensor::new(&[1.0, 1.0], &[1, 2])).target(Tensor::new(&[1.0], &[1]));
    let g = check_grad("tie", &loss, Reduction::Sum, &inputs, Upstream::Scalar(1.0));
    assert_eq!(g.input, vec![0.4, 0.0]);
}

#[test]
fn extreme_values() {
    let shape = [8];
    // Logits at ±100 and ±1e4, huge and tiny differences.
    let x = [100.0f32, -100.0, 1e4, -1e4, 0.0, 30.0, -30.0, 1e-30];
    let y = [0.0f32, 1.0, 0.0, 1.0, 0.5, 1.0, 0.0, 1.0];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    let items = upstream_items(8, 1);
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
        Loss::Pointwise(Pointwise::SigmoidFocal {
            alpha: -1.0,
            gamma: 0.0,
        }),
        Loss::Pointwise(Pointwise::SigmoidFocal {
            alpha: 0.5,
            gamma: 1.0,
        }),
        Loss::Pointwise(Pointwise::Mse),
        Loss::Pointwise(Pointwise::L1),
        Loss::Pointwise(Pointwise::LogCosh),
        Loss::Pointwise(Pointwise::Huber { delta: 2.0 }),
        Loss::Pointwise(Pointwise::SmoothL1 { beta: 0.0 }),
    ] {
        for (red, up) in calls(&loss, &items, 8) {
            check_grad(
                &format!("{loss:?} extremes {red:?}"),
                &loss,
                red,
                &inputs,
                up,
            );
        }
    }
    // Saturated sigmoids, where torch's focal backward meets 0·∞ for 0 < γ < 1:
    // NaN exactly where the float64 reference saturates (past ±36.7 and ±37.4).
    let x = [
        16.0f32, 17.0, 30.0, 36.7, 36.8, 40.0, 100.0, -37.4, -37.5, -40.0, -100.0, 40.0,
    ];
    let y = [
        1.0f32, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.3,
    ];
    let inputs = Inputs::new(Tensor::new(&x, &[12])).target(Tensor::new(&y, &[12]));
    for gamma in [0.5, 0.0, 1.0, 1.5, 2.0] {
        let loss = Loss::Pointwise(Pointwise::SigmoidFocal { alpha: 0.25, gamma });
        let g = check_grad(
            &format!("saturated γ={gamma}"),
            &loss,
            Reduction::Sum,
            &inputs,
            Upstream::Scalar(1.0),
        );
        let nans = g.input.iter().filter(|v| v.is_nan()).count();
        assert_eq!(nans, if gamma == 0.5 { 6 } else { 0 }, "{:?}", g.input);
    }
    // Probabilities of exactly 0 and 1: PyTorch's backward gives ≈ ±1e12.
    let p = [0.0f32, 1.0, 0.0, 1.0, 1e-30, 1.0 - 1e-7, 0.5, 1e-45];
    let t = [0.0f32, 1.0, 1.0, 0.0, 1.0, 0.0, 0.3, 1.0];
    let inputs = Inputs::new(Tensor::new(&p, &shape)).target(Tensor::new(&t, &shape));
    for (red, up) in calls(&Loss::Pointwise(Pointwise::Bce), &items, 8) {
        check_grad(
            &format!("bce clamp {red:?}"),
            &Loss::Pointwise(Pointwise::Bce),
            red,
            &inputs,
            up,
        );
    }
    let g = check_grad(
        "bce at 0 and 1",
        &Loss::Pointwise(Pointwise::Bce),
        Reduction::Sum,
        &inputs,
        Upstream::Scalar(1.0),
    );
    assert_eq!(&g.input[..2], &[0.0, 0.0], "x == y at 0 and 1");
    assert!(
        (g.input[2] as f64 + 1.0000000040e12).abs() < 1e6,
        "{}",
        g.input[2]
    );
    assert!(
        (g.input[3] as f64 - 1.0000000040e12).abs() < 1e6,
        "{}",
        g.input[3]
    );
    // KL: a zero target at a −inf log-probability has a NaN value but gradient −0.
    let lx = [f32::NEG_INFINITY, -1.0, -0.5, f32::NEG_INFINITY];
    let ly = [0.0f32, 0.25, 0.75, 0.5];
    let inputs = Inputs::new(Tensor::new(&lx, &[4])).target(Tensor::new(&ly, &[4]));
    for log_target in [false, true] {
        let loss = Loss::Pointwise(Pointwise::KlDiv { log_target });
        for (red, up) in calls(&loss, &items[..4], 4) {
            check_grad(&format!("kl_div -inf {red:?}"), &loss, red, &inputs, up);
        }
    }
    // The kinks: |x − y| exactly delta / beta, and x == y.
    let x = [1.0f32, -1.0, 0.5, -0.5, 0.0];
    let y = [0.0f32; 5];
    let inputs = Inputs::new(Tensor::new(&x, &[5])).target(Tensor::new(&y, &[5]));
    for loss in [
        Loss::Pointwise(Pointwise::Huber { delta: 1.0 }),
        Loss::Pointwise(Pointwise::Huber { delta: 0.5 }),
        Loss::Pointwise(Pointwise::SmoothL1 { beta: 0.5 }),
        Loss::Pointwise(Pointwise::SmoothL1 { beta: 1.0 }),
        Loss::Pointwise(Pointwise::SmoothL1 { beta: 0.0 }),
        Loss::Pointwise(Pointwise::L1),
        Loss::Pointwise(Pointwise::Quantile { quantiles: None }),
    ] {
        check_grad(
            &format!("{loss:?} kinks"),
            &loss,
            Reduction::Sum,
            &inputs,
            Upstream::Scalar(1.0),
        );
    }
}

#[test]
fn empty_input_gives_nan_mean_and_an_empty_gradient() {
    let inputs = Inputs::new(Tensor::new(&[], &[0])).target(Tensor::new(&[], &[0]));
    for loss in losses() {
        for (red, up) in calls(&loss, &[], 0) {
            let g = check_grad(&format!("{loss:?} empty {red:?}"), &loss, red, &inputs, up);
            assert!(g.input.is_empty());
        }
    }
}

/// More elements than one storage binding holds: the gradient is written
/// slice by slice at each slice's offset.
#[test]
fn inputs_longer_than_one_binding() {
    let n = ctx().max_binding_elements() + 1000;
    let (x, y) = data(&Loss::Pointwise(Pointwise::Mse), n, 99);
    let w: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.25).collect();
    let shape = [n];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    check_grad(
        "mse beyond a binding",
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::Mean,
        &inputs,
        Upstream::Scalar(n as f32),
    );
    // A weight as long as the input: its pre-pass is sliced too. An upstream
    // of n keeps the gradients O(1).
    check_grad(
        "weighted mse beyond a binding",
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::Mean,
        &inputs.weight(Tensor::new(&w, &shape)),
        Upstream::Scalar(n as f32),
    );
    let u = upstream_items(n, 4);
    check_grad(
        "l1 none beyond a binding",
        &Loss::Pointwise(Pointwise::L1),
        Reduction::None,
        &inputs,
        Upstream::Items(&u),
    );
}

fn buffer(data: &[f32], usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx()
        .device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(data),
            usage,
        })
}

fn read(buffer: &wgpu::Buffer, encoder: wgpu::CommandEncoder) -> Vec<f32> {
    let size = buffer.size();
    let staging = ctx().device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = encoder;
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
    ctx().queue().submit([encoder.finish()]);
    staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    ctx()
        .device()
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    let view = staging.slice(..).get_mapped_range().unwrap();
    bytemuck::cast_slice(&view).to_vec()
}

const S: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE;
const SC: wgpu::BufferUsages = S.union(wgpu::BufferUsages::COPY_SRC);

fn assert_close_all(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(close(*g as f64, *w, 1e-6), "{what}[{i}]: gpu {g} vs {w}");
    }
}

#[test]
fn caller_buffers_with_a_device_upstream() {
    // Inputs at element 64 of larger buffers; the output and the gradient
    // share one buffer at different offsets; the upstream lives on the device.
    let n = 1000;
    let mut r = rng(21);
    let x = uniform(&mut r, n, -3.0, 3.0);
    let y = uniform(&mut r, n, -3.0, 3.0);
    let w = uniform(&mut r, n, 0.0, 2.0);
    let pad = |v: &[f32]| [vec![7.0; 64], v.to_vec(), vec![7.0; 9]].concat();
    let (xb, yb, wb) = (
        buffer(&pad(&x), S),
        buffer(&pad(&y), S),
        buffer(&pad(&w), S),
    );
    let u = upstream_items(n, 5);
    let ub = buffer(&pad(&u), S);
    let results = buffer(&vec![-1.0; 3 * 1024], SC);
    let shape = [n];
    let t = |b, len| DeviceTensor::new(BufferView::new(b, 256, len), &shape);
    let inputs = DeviceInputs::new(t(&xb, n))
        .target(t(&yb, n))
        .weight(t(&wb, n));
    let host = Inputs::new(Tensor::new(&x, &shape))
        .target(Tensor::new(&y, &shape))
        .weight(Tensor::new(&w, &shape));
    let loss = Loss::Pointwise(Pointwise::Huber { delta: 0.7 });
    for (red, up) in [
        (
            Reduction::Mean,
            DeviceUpstream::Buffer(BufferView::new(&ub, 256, 1)),
        ),
        (Reduction::Sum, DeviceUpstream::Scalar(0.5)),
        (
            Reduction::None,
            DeviceUpstream::Buffer(BufferView::new(&ub, 256, n)),
        ),
        (Reduction::None, DeviceUpstream::Scalar(-2.0)),
    ] {
        let ev = ctx().grad_evaluator(&loss, red, &inputs).unwrap();
        assert!(ev.has_gradients());
        let mut encoder = ctx().device().create_command_encoder(&Default::default());
        let output = BufferView::new(&results, 4 * 1024, ev.output_len());
        let grads = GradViews::new(BufferView::new(&results, 4 * 2048, n));
        ev.encode_with_grad(&mut encoder, &inputs, up, output, &grads)
            .unwrap();
        let got = read(&results, encoder);
        let host_up = match up {
            DeviceUpstream::Scalar(g) => Upstream::Scalar(g),
            DeviceUpstream::Buffer(v) if v.len == 1 => Upstream::Scalar(u[0]),
            DeviceUpstream::Buffer(_) => Upstream::Items(&u),
        };
        let (want, want_g) = cpu::gradient(&loss, red, &host, host_up).unwrap();
        let what = format!("{red:?}");
        if red == Reduction::None {
            assert_close_all(&what, &got[1024..1024 + n], &want.items);
        } else {
            assert!(close(got[1024] as f64, want.value, 1e-6), "{what}");
        }
        assert_close_all(&what, &got[2048..2048 + n], &want_g.input);
        assert_eq!(got[0], -1.0, "nothing is written outside the views");
        assert_eq!(got[2048 + n], -1.0, "nothing is written past the gradient");
        // mean, sum: one fused pass and the finalize; none: the fused pass.
        let expected = if red == Reduction::None { 1 } else { 2 };
        assert_eq!(ev.dispatches(), expected, "{what}");
    }
    // A weighted mse mean adds its weight pre-pass: Σw, then Σ of the partials.
    let ev = ctx()
        .grad_evaluator(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &inputs)
        .unwrap();
    assert_eq!(ev.dispatches(), 4);
}

#[test]
fn every_gradient_buffer_misuse_is_a_typed_error() {
    let n = 100;
    let data = vec![0.5f32; 1024];
    let (xb, yb) = (buffer(&data, S), buffer(&data, S));
    let gb = buffer(&data, S);
    let out = buffer(&data, S);
    let uniform_buffer = buffer(&data, wgpu::BufferUsages::UNIFORM);
    let shape = [n];
    let t = |b, offset| DeviceTensor::new(BufferView::new(b, offset, n), &shape);
    let inputs = DeviceInputs::new(t(&xb, 0)).target(t(&yb, 0));
    let ev = ctx()
        .grad_evaluator(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &inputs)
        .unwrap();
    let output = BufferView::new(&out, 0, 1);
    let good = GradViews::new(BufferView::new(&gb, 0, n));
    let encode = |up: DeviceUpstream<'_>, output: BufferView<'_>, grads: &GradViews<'_>| {
        let mut encoder = ctx().device().create_command_encoder(&Default::default());
        ev.encode_with_grad(&mut encoder, &inputs, up, output, grads)
    };
    let one = DeviceUpstream::Scalar(1.0);
    assert!(encode(one, output, &good).is_ok());

    let expect = |r: wgpu_loss::Result<()>, name: &str, words: &str| {
        let e = r.expect_err("misuse accepted");
        let text = e.to_string();
        assert!(text.contains(name) && text.contains(words), "{text}");
        e
    };
    let grads = |b, offset, len| GradViews::new(BufferView::new(b, offset, len));
    let e = expect(
        encode(one, output, &grads(&uniform_buffer, 0, n)),
        "grad_input",
        "STORAGE",
    );
    assert!(matches!(
        e,
        Error::Buffer {
            name: "grad_input",
            ..
        }
    ));
    expect(
        encode(one, output, &grads(&gb, 4, n)),
        "grad_input",
        "multiple of 256",
    );
    expect(
        encode(one, output, &grads(&gb, 3840, n)),
        "grad_input",
        "exceeds its size",
    );
    expect(
        encode(one, output, &grads(&gb, 0, n - 1)),
        "grad_input",
        "needs 100",
    );
    // Aliasing: the output, an input, another gradient view.
    expect(
        encode(one, output, &grads(&out, 0, n)),
        "grad_input",
        "overlaps `output`",
    );
    expect(
        encode(one, output, &grads(&xb, 0, n)),
        "grad_input",
        "aliases `input`",
    );
    expect(
        encode(one, output, &grads(&yb, 1024, n)),
        "grad_input",
        "shares its buffer with `target`",
    );
    let up_view = BufferView::new(&gb, 2048, 1);
    expect(
        encode(DeviceUpstream::Buffer(up_view), output, &good),
        "grad_input",
        "shares its buffer with `upstream`",
    );
    // The output and a gradient may share a buffer at disjoint offsets.
    assert!(encode(one, BufferView::new(&gb, 1024, 1), &good).is_ok());
    // A gradient the loss does not have.
    expect(
        encode(one, output, &good.target(BufferView::new(&out, 1024, n))),
        "grad_target",
        "no gradient for `target`",
    );
    // The upstream: usage, and one value for a reduced loss.
    expect(
        encode(
            DeviceUpstream::Buffer(BufferView::new(&uniform_buffer, 0, 1)),
            output,
            &good,
        ),
        "upstream",
        "STORAGE",
    );
    let e = encode(
        DeviceUpstream::Buffer(BufferView::new(&out, 1024, 2)),
        output,
        &good,
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::UpstreamLength {
            expected: 1,
            actual: 2
        }
    );
    // `none`: one upstream value per item, and an output apart from the inputs.
    let none = ctx()
        .grad_evaluator(&Loss::Pointwise(Pointwise::Mse), Reduction::None, &inputs)
        .unwrap();
    let mut encoder = ctx().device().create_command_encoder(&Default::default());
    let e = none
        .encode_with_grad(
            &mut encoder,
            &inputs,
            DeviceUpstream::Buffer(BufferView::new(&out, 1024, n - 1)),
            BufferView::new(&out, 0, n),
            &good,
        )
        .unwrap_err();
    assert_eq!(
        e,
        Error::UpstreamLength {
            expected: n,
            actual: n - 1
        }
    );
    let e = none
        .encode_with_grad(
            &mut encoder,
            &inputs,
            one,
            BufferView::new(&xb, 1024, n),
            &good,
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::Buffer { name: "output", problem } if problem.contains("`input`")),
        "{e}"
    );
    // Forward and gradient evaluators are recorded by their own calls.
    expect(
        ev.encode(&mut encoder, &inputs, output),
        "grad_input",
        "encode_with_grad",
    );
    let forward = ctx()
        .evaluator(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &inputs)
        .unwrap();
    assert!(!forward.has_gradients());
    expect(
        forward.encode_with_grad(&mut encoder, &inputs, one, output, &good),
        "grad_input",
        "grad_evaluator",
    );
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

const IGNORE: i64 = -100;

fn ce(label_smoothing: f32) -> Loss {
    Loss::Rows(Rows::CrossEntropy {
        ignore_index: IGNORE,
        label_smoothing,
    })
}

fn focal(gamma: f32) -> Loss {
    Loss::Rows(Rows::SoftmaxFocal {
        gamma,
        ignore_index: IGNORE,
    })
}

fn row_losses() -> Vec<Loss> {
    vec![
        ce(0.0),
        ce(0.1),
        Loss::Rows(Rows::Nll {
            ignore_index: IGNORE,
        }),
        focal(2.0),
        focal(0.5),
        focal(0.0),
    ]
}

/// Class indices in [0, C), every 7th row ignored.
fn class_indices(seed: u64, rows: usize, c: usize) -> Vec<i64> {
    let mut r = rng(seed);
    (0..rows)
        .map(|i| {
            if i % 7 == 3 {
                IGNORE
            } else {
                r.random_range(0..c as i64)
            }
        })
        .collect()
}

/// A random distribution per row of `(N, C, inner)`, every 5th row one-hot.
fn distributions(seed: u64, n: usize, c: usize, inner: usize) -> Vec<f32> {
    let mut r = rng(seed);
    let mut t = uniform(&mut r, n * c * inner, 0.0, 1.0);
    for row in 0..n * inner {
        let at = |k: usize| ((row / inner) * c + k) * inner + row % inner;
        let hot = (row % 5 == 0).then(|| r.random_range(0..c));
        let total: f32 = (0..c).map(|k| t[at(k)]).sum();
        for k in 0..c {
            t[at(k)] = match hot {
                Some(h) => (k == h) as u8 as f32,
                None => t[at(k)] / total,
            };
        }
    }
    t
}

/// Class weights in [0.5, 3) with class 1 weighted 0.
fn class_weights(seed: u64, c: usize) -> Vec<f32> {
    let mut w = uniform(&mut rng(seed), c, 0.5, 3.0);
    if c > 1 {
        w[1] = 0.0;
    }
    w
}

/// Every row loss and reduction on `(N, C, d..)` logits, with and without a
/// class weight, and cross_entropy on probability targets.
fn check_rows(ctx: &wgpu_loss::Context, shape: &[usize], seed: u64) {
    let n: usize = shape.iter().product();
    let (c, inner) = (shape[1], shape[2..].iter().product::<usize>());
    let mut items = vec![shape[0]];
    items.extend_from_slice(&shape[2..]);
    let rows: usize = items.iter().product();
    let x = uniform(&mut rng(seed), n, -6.0, 6.0);
    let y = class_indices(seed + 1, rows, c);
    let w = class_weights(seed + 2, c);
    let ws = [c];
    let u = upstream_items(rows, seed + 3);
    let inputs = Inputs::new(Tensor::new(&x, shape)).classes(&y, &items);
    let weighted = inputs.weight(Tensor::new(&w, &ws));
    for loss in row_losses() {
        for (red, up) in calls(&loss, &u, 1) {
            let what = format!("{shape:?} {loss:?} {red:?}");
            check_grad_on(ctx, &what, &loss, red, &inputs, up);
            check_grad_on(ctx, &format!("{what} weighted"), &loss, red, &weighted, up);
        }
    }
    let t = distributions(seed + 4, shape[0], c, inner);
    let probs = Inputs::new(Tensor::new(&x, shape)).target(Tensor::new(&t, shape));
    for loss in [ce(0.0), ce(0.1)] {
        for (red, up) in calls(&loss, &u, 1) {
            let what = format!("{shape:?} {loss:?} probabilities {red:?}");
            check_grad_on(ctx, &what, &loss, red, &probs, up);
            let weighted = probs.weight(Tensor::new(&w, &ws));
            check_grad_on(ctx, &format!("{what} weighted"), &loss, red, &weighted, up);
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
    for loss in row_losses().into_iter().chain([focal(3.0), focal(1.0)]) {
        for (red, up) in calls(&loss, &upstream_items(rows, 7), 1) {
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
        &focal(0.5),
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
    for loss in row_losses() {
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
    for loss in row_losses() {
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
    for loss in row_losses() {
        for (red, up) in calls(&loss, &[], 1) {
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
    let (xb, yb) = (buffer(&x, S), buffer(bytemuck::cast_slice(&y), S));
    let results = buffer(&vec![0.0; 4096], SC);
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
        let ev = ctx().grad_evaluator(&ce(0.1), red, &inputs).unwrap();
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
        let got = read(&results, encoder);
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
