//! The encode layer on caller-owned buffers: values and gradients agree with
//! the slice API and the twin, and every misuse of a buffer is a typed error
//! naming it.

use crate::common::device::{buffer_with, expect_misuse, read, read_all};
use crate::common::upstream::upstream_items;
use crate::common::{assert_close_all, close, ctx, rng, uniform};
use wgpu_loss::{
    cpu, BufferView, DeviceInputs, DeviceTensor, DeviceUpstream, Error, GradViews, Inputs, Loss,
    Pointwise, Reduction, Tensor, Upstream,
};

const S: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE;

/// A buffer of `usage` holding `data`.
fn buffer(data: &[f32], usage: wgpu::BufferUsages) -> wgpu::Buffer {
    buffer_with(ctx(), data, 0, usage)
}

#[test]
fn views_at_offsets_inside_larger_buffers() {
    // Predictions at element 64 of a larger buffer, targets at 128, output at 64.
    let n = 1000;
    let mut host = vec![9.0f32; 64 + n + 7];
    let mut targets = vec![-9.0f32; 128 + n];
    for i in 0..n {
        host[64 + i] = (i as f32 * 0.37).sin();
        targets[128 + i] = (i as f32 * 0.11).cos();
    }
    let x = buffer(&host, S);
    let y = buffer(&targets, S);
    let out = buffer(&[0.0; 128], S | wgpu::BufferUsages::COPY_SRC);
    let shape = [n];
    let inputs = DeviceInputs::new(DeviceTensor::new(BufferView::new(&x, 256, n), &shape))
        .target(DeviceTensor::new(BufferView::new(&y, 512, n), &shape));
    let ev = ctx()
        .evaluator(
            &Loss::Pointwise(Pointwise::Huber { delta: 0.5 }),
            Reduction::Mean,
            &inputs,
        )
        .unwrap();
    let mut encoder = ctx().device().create_command_encoder(&Default::default());
    ev.encode(&mut encoder, &inputs, BufferView::new(&out, 256, 3))
        .unwrap();
    let got = read(ctx(), encoder, &out, 128);
    let host_inputs = wgpu_loss::Inputs::new(wgpu_loss::Tensor::new(&host[64..64 + n], &shape))
        .target(wgpu_loss::Tensor::new(&targets[128..], &shape));
    let want = wgpu_loss::cpu::evaluate(
        &Loss::Pointwise(Pointwise::Huber { delta: 0.5 }),
        Reduction::Mean,
        &host_inputs,
    )
    .unwrap();
    assert!(
        close(got[64] as f64, want.value, 1e-6),
        "{} vs {}",
        got[64],
        want.value
    );
    assert_eq!(got[66], n as f32, "the denominator follows the value");
    assert_eq!(got[0], 0.0, "nothing is written outside the output view");
}

#[test]
fn every_buffer_misuse_is_a_typed_error() {
    let n = 100;
    let data = vec![0.5f32; 256];
    let good = buffer(&data, S);
    let uniform = buffer(&data, wgpu::BufferUsages::UNIFORM);
    let out = buffer(&[0.0; 64], S);
    let shape = [n];
    let t = |b, offset, len| DeviceTensor::new(BufferView::new(b, offset, len), &shape);
    let base = DeviceInputs::new(t(&good, 0, n)).target(t(&good, 0, n));
    let ev = ctx()
        .evaluator(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &base)
        .unwrap();
    let encode = |inputs: &DeviceInputs<'_>, output: BufferView<'_>| {
        let mut encoder = ctx().device().create_command_encoder(&Default::default());
        ev.encode(&mut encoder, inputs, output)
    };
    assert!(encode(&base, BufferView::whole(&out)).is_ok());

    let e = expect_misuse(
        encode(
            &DeviceInputs::new(t(&uniform, 0, n)).target(t(&good, 0, n)),
            BufferView::whole(&out),
        ),
        "input",
        "STORAGE",
    );
    assert!(matches!(e, Error::Buffer { name: "input", .. }));
    expect_misuse(
        encode(
            &DeviceInputs::new(t(&good, 4, n)).target(t(&good, 0, n)),
            BufferView::whole(&out),
        ),
        "input",
        "multiple of 256",
    );
    expect_misuse(
        encode(
            &DeviceInputs::new(t(&good, 0, n)).target(t(&good, 768, n)),
            BufferView::whole(&out),
        ),
        "target",
        "exceeds its size",
    );
    let e = expect_misuse(
        encode(
            &DeviceInputs::new(t(&good, 0, n - 1)).target(t(&good, 0, n)),
            BufferView::whole(&out),
        ),
        "input",
        "",
    );
    assert!(matches!(
        e,
        Error::DataLength {
            name: "input",
            expected: 100,
            actual: 99,
            ..
        }
    ));
    expect_misuse(
        encode(&base, BufferView::new(&out, 0, 0)),
        "output",
        "needs 1",
    );
    expect_misuse(
        encode(&base, BufferView::whole(&uniform)),
        "output",
        "STORAGE",
    );
    let other_shape = [n / 2, 2];
    let reshaped = DeviceInputs::new(DeviceTensor::new(
        BufferView::new(&good, 0, n),
        &other_shape,
    ))
    .target(DeviceTensor::new(
        BufferView::new(&good, 0, n),
        &other_shape,
    ));
    expect_misuse(
        encode(&reshaped, BufferView::whole(&out)),
        "input",
        "built for",
    );
    let classes = DeviceInputs::new(t(&good, 0, n)).classes(t(&good, 0, n));
    expect_misuse(
        encode(&classes, BufferView::whole(&out)),
        "target",
        "class indices",
    );
    // Building an evaluator checks the shapes against the loss.
    let bad = DeviceInputs::new(t(&good, 0, n))
        .target(DeviceTensor::new(BufferView::new(&good, 0, 50), &[50]));
    let e = ctx()
        .evaluator(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &bad)
        .err()
        .expect("a shape error");
    assert!(matches!(e, Error::Shape { name: "target", .. }), "{e}");
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
    let results = buffer(&vec![-1.0; 3 * 1024], S | wgpu::BufferUsages::COPY_SRC);
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
        let got = read_all(ctx(), encoder, &results);
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

    let grads = |b, offset, len| GradViews::new(BufferView::new(b, offset, len));
    let e = expect_misuse(
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
    expect_misuse(
        encode(one, output, &grads(&gb, 4, n)),
        "grad_input",
        "multiple of 256",
    );
    expect_misuse(
        encode(one, output, &grads(&gb, 3840, n)),
        "grad_input",
        "exceeds its size",
    );
    expect_misuse(
        encode(one, output, &grads(&gb, 0, n - 1)),
        "grad_input",
        "needs 100",
    );
    // Aliasing: the output, an input, another gradient view.
    expect_misuse(
        encode(one, output, &grads(&out, 0, n)),
        "grad_input",
        "overlaps `output`",
    );
    expect_misuse(
        encode(one, output, &grads(&xb, 0, n)),
        "grad_input",
        "aliases `input`",
    );
    expect_misuse(
        encode(one, output, &grads(&yb, 1024, n)),
        "grad_input",
        "shares its buffer with `target`",
    );
    let up_view = BufferView::new(&gb, 2048, 1);
    expect_misuse(
        encode(DeviceUpstream::Buffer(up_view), output, &good),
        "grad_input",
        "shares its buffer with `upstream`",
    );
    // The output and a gradient may share a buffer at disjoint offsets.
    assert!(encode(one, BufferView::new(&gb, 1024, 1), &good).is_ok());
    // A gradient the loss does not have.
    expect_misuse(
        encode(one, output, &good.target(BufferView::new(&out, 1024, n))),
        "grad_target",
        "no gradient for `target`",
    );
    // The upstream: usage, and one value for a reduced loss.
    expect_misuse(
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
    expect_misuse(
        ev.encode(&mut encoder, &inputs, output),
        "grad_input",
        "encode_with_grad",
    );
    let forward = ctx()
        .evaluator(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &inputs)
        .unwrap();
    assert!(!forward.has_gradients());
    expect_misuse(
        forward.encode_with_grad(&mut encoder, &inputs, one, output, &good),
        "grad_input",
        "grad_evaluator",
    );
}

/// A reduced call's output view may be longer than one storage binding:
/// the evaluator binds only what fits (it writes 3 values at most here),
/// rather than failing, or blaming another device.
#[test]
fn an_output_view_longer_than_a_binding() {
    let small = crate::common::device::small_binding_ctx(1024);
    let n = 3000;
    let shape = [n];
    let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let y: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
    let bx = buffer_with(&small, &x, 0, S);
    let by = buffer_with(&small, &y, 0, S);
    let out = buffer_with(
        &small,
        &vec![0f32; 5000],
        0,
        S | wgpu::BufferUsages::COPY_SRC,
    );
    let inputs = DeviceInputs::new(DeviceTensor::new(BufferView::new(&bx, 0, n), &shape))
        .target(DeviceTensor::new(BufferView::new(&by, 0, n), &shape));
    let loss = Loss::Pointwise(Pointwise::Mse);
    let ev = small.evaluator(&loss, Reduction::Mean, &inputs).unwrap();
    let mut enc = crate::common::device::encoder(&small);
    ev.encode(&mut enc, &inputs, BufferView::whole(&out))
        .unwrap();
    let got = read(&small, enc, &out, 3);
    let host = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    let want = cpu::evaluate(&loss, Reduction::Mean, &host).unwrap().value;
    assert!(close(got[0] as f64, want, 1e-6), "{} vs {want}", got[0]);
}
