//! f16 and bf16 tensors: every loss and every variant of its family against
//! the float64 twin over the upcast values, mixed dtypes, slices beyond one
//! binding, non-finite and subnormal halves, streaming, and device tensors
//! that declare their dtype.

use crate::common::device::{buffer_with, encoder, read_all, small_binding_ctx, STORAGE};
use crate::common::{check_grad_on, check_on, ctx, rng, uniform};
use wgpu_loss::cli::synthetic::{batch, Values};
use wgpu_loss::{
    bf16, cpu, f16, variant_names, with_forced_variant, BufferView, DType, DeviceInputs,
    DeviceTensor, Error, Inputs, Loss, Reduction, Tensor, Upstream, CATALOG,
};

const HALVES: [DType; 2] = [DType::F16, DType::Bf16];

/// Every catalog loss with its float tensors in f16 and in bf16, on every
/// variant that can run it: values, items and gradients against the twin
/// on the same (upcast) values. 1027 values: not a whole number of words
/// of halves nor of workgroups.
#[test]
fn every_loss_and_variant_reads_halves_as_the_twin_does() {
    let ctx = ctx();
    for entry in CATALOG {
        let loss = (entry.default)();
        let b = batch(&loss, 1027, 7);
        for dtype in HALVES {
            let cast = b.cast(dtype);
            let inputs = cast.inputs();
            assert_eq!(inputs.input.dtype(), dtype);
            for reduction in [Reduction::Mean, Reduction::None] {
                for v in variant_names(ctx, &loss, reduction, &inputs).unwrap() {
                    let what = format!("{} {} {} {v}", entry.name, dtype.name(), reduction.name());
                    with_forced_variant(v, || {
                        check_on(ctx, &what, &loss, reduction, &inputs, 1e-6);
                        check_grad_on(ctx, &what, &loss, reduction, &inputs, Upstream::Scalar(0.5));
                    })
                    .unwrap();
                }
            }
        }
    }
}

/// The kernels read the halves themselves: rounding the f32 batch to the
/// dtype changes the result as the twin says it does (a kernel reading
/// the bytes as f32, or upcasting wrongly, would not match both).
#[test]
fn halves_differ_from_their_f32_source_as_the_twin_says() {
    let loss = Loss::from_name("mse").unwrap();
    let b = batch(&loss, 4099, 3);
    let from_f32 = ctx().evaluate(&loss, Reduction::None, &b.inputs()).unwrap();
    let from_f32 = from_f32.items.unwrap();
    for dtype in HALVES {
        let cast = b.cast(dtype);
        let got = ctx()
            .evaluate(&loss, Reduction::None, &cast.inputs())
            .unwrap();
        let want = cpu::evaluate(&loss, Reduction::None, &cast.inputs()).unwrap();
        let got = got.items.unwrap();
        let mut rounded = 0;
        for (i, ((g, w), f)) in got.iter().zip(&want.items).zip(&from_f32).enumerate() {
            let g = *g as f64;
            assert!(
                (g - w).abs() <= 1e-6 * w.abs() + 1e-12,
                "{dtype:?} item {i}: {g} vs {w}"
            );
            if (g - *f as f64).abs() > 1e-5 * w.abs() {
                rounded += 1;
            }
        }
        assert!(
            rounded > 4099 / 4,
            "{dtype:?}: only {rounded} items moved by the rounding"
        );
    }
}

fn halves(values: &[f32], dtype: DType) -> Values {
    Values::cast(values, dtype)
}

/// Tensors of different dtypes in one call: half predictions with f32
/// targets, weights or pos_weight, and the reverse.
#[test]
fn mixed_dtypes() {
    let ctx = ctx();
    let mut r = rng(11);
    let n = 771;
    let x = uniform(&mut r, n, -3.0, 3.0);
    let y = uniform(&mut r, n, 0.0, 1.0);
    let shape = [n];
    for dtype in HALVES {
        let xh = halves(&x, dtype);
        let yh = halves(&y, dtype);
        for name in ["mse", "bce_with_logits", "smooth_l1"] {
            let loss = Loss::from_name(name).unwrap();
            for (xs, ys) in [
                (xh.floats(), Values::F32(y.clone())),
                (Values::F32(x.clone()).floats(), yh.clone()),
            ] {
                let inputs =
                    Inputs::new(Tensor::new(xs, &shape)).target(Tensor::new(ys.floats(), &shape));
                let what = format!("{name} {} mixed", dtype.name());
                check_grad_on(
                    ctx,
                    &what,
                    &loss,
                    Reduction::Mean,
                    &inputs,
                    Upstream::Scalar(1.0),
                );
            }
        }
        // bce_with_logits with a pos_weight per class in f32, half logits.
        let loss = Loss::from_name("bce_with_logits").unwrap();
        let (rows, c) = (257, 3);
        let shape2 = [rows, c];
        let xs = halves(&uniform(&mut r, rows * c, -4.0, 4.0), dtype);
        let ys = halves(&uniform(&mut r, rows * c, 0.0, 1.0), dtype);
        let pw = uniform(&mut r, c, 0.5, 2.0);
        let cs = [c];
        let inputs = Inputs::new(Tensor::new(xs.floats(), &shape2))
            .target(Tensor::new(ys.floats(), &shape2))
            .pos_weight(Tensor::new(&pw, &cs));
        check_grad_on(
            ctx,
            "pos_weight f32",
            &loss,
            Reduction::Sum,
            &inputs,
            Upstream::Scalar(1.0),
        );
        // cross_entropy: half logits, f32 class weights, int64 classes.
        let loss = Loss::from_name("cross_entropy").unwrap();
        let (rows, c) = (130, 37);
        let logits = halves(&uniform(&mut r, rows * c, -8.0, 8.0), dtype);
        let classes: Vec<i64> = (0..rows as i64).map(|k| (k * 7) % c as i64).collect();
        let w = uniform(&mut r, c, 0.1, 2.0);
        let (rs, cs) = ([rows], [c]);
        let shape3 = [rows, c];
        let inputs = Inputs::new(Tensor::new(logits.floats(), &shape3))
            .classes(&classes, &rs)
            .weight(Tensor::new(&w, &cs));
        for reduction in [Reduction::Mean, Reduction::None] {
            for v in variant_names(ctx, &loss, reduction, &inputs).unwrap() {
                let what = format!("cross_entropy {} f32 weight {v}", dtype.name());
                with_forced_variant(v, || {
                    check_grad_on(ctx, &what, &loss, reduction, &inputs, Upstream::Scalar(1.0));
                })
                .unwrap();
            }
        }
    }
}

/// Halves at the edges of their range: f16 subnormals (f32 normals once
/// upcast), the largest finite values, infinities and NaN, and bf16 values
/// beyond f16's range.
#[test]
fn subnormal_huge_and_nonfinite_halves() {
    let ctx = ctx();
    let special = [
        6e-8f32,
        -6e-8,
        1e-5,
        6.1e-5,
        65504.0,
        -65504.0,
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1.0,
        1e5,
        -1e-39,
    ];
    let n = 301;
    let x: Vec<f32> = (0..n).map(|k| special[k % special.len()]).collect();
    let y: Vec<f32> = (0..n)
        .map(|k| special[(k * 5 + 3) % special.len()])
        .collect();
    let shape = [n];
    for dtype in HALVES {
        let (xh, yh) = (halves(&x, dtype), halves(&y, dtype));
        let inputs =
            Inputs::new(Tensor::new(xh.floats(), &shape)).target(Tensor::new(yh.floats(), &shape));
        for name in ["mse", "l1", "huber", "log_cosh"] {
            let loss = Loss::from_name(name).unwrap();
            for reduction in [Reduction::None, Reduction::Sum] {
                for v in variant_names(ctx, &loss, reduction, &inputs).unwrap() {
                    let what = format!("{name} {} {} {v}", dtype.name(), reduction.name());
                    with_forced_variant(v, || {
                        check_on(ctx, &what, &loss, reduction, &inputs, 1e-6);
                    })
                    .unwrap();
                }
            }
        }
        // Subnormal f16 logits in a softmax row and a pair.
        let rows: Vec<f32> = (0..64).map(|k| special[k % 6]).collect();
        let logits = halves(&rows, dtype);
        let classes = [0i64, 3, 5, 1];
        let ce = Loss::from_name("cross_entropy").unwrap();
        let inputs = Inputs::new(Tensor::new(logits.floats(), &[4, 16])).classes(&classes, &[4]);
        check_grad_on(
            ctx,
            "ce subnormal",
            &ce,
            Reduction::Mean,
            &inputs,
            Upstream::Scalar(1.0),
        );
    }
}

/// A context whose bindings hold 1024 f32 (2048 halves): halves are cut into
/// slices that start on 256-byte boundaries, a word of two halves never
/// split between two slices' reads.
#[test]
fn halves_beyond_one_binding() {
    let small = small_binding_ctx(1024);
    let mut r = rng(5);
    for dtype in HALVES {
        let n = 9001;
        let x = halves(&uniform(&mut r, n, -2.0, 2.0), dtype);
        let y = halves(&uniform(&mut r, n, 0.0, 1.0), dtype);
        let shape = [n];
        let inputs =
            Inputs::new(Tensor::new(x.floats(), &shape)).target(Tensor::new(y.floats(), &shape));
        for name in ["mse", "bce_with_logits"] {
            let loss = Loss::from_name(name).unwrap();
            for reduction in [Reduction::None, Reduction::Mean] {
                for v in variant_names(&small, &loss, reduction, &inputs).unwrap() {
                    let what = format!("{name} {} sliced {v}", dtype.name());
                    with_forced_variant(v, || {
                        check_grad_on(
                            &small,
                            &what,
                            &loss,
                            reduction,
                            &inputs,
                            Upstream::Scalar(1.0),
                        );
                    })
                    .unwrap();
                }
            }
        }
        // Rows of 33 logits (odd: rows straddle words) over many slices.
        let (rows, c) = (301, 33);
        let logits = halves(&uniform(&mut r, rows * c, -5.0, 5.0), dtype);
        let classes: Vec<i64> = (0..rows as i64).map(|k| k % c as i64).collect();
        let shape = [rows, c];
        let rs = [rows];
        let inputs = Inputs::new(Tensor::new(logits.floats(), &shape)).classes(&classes, &rs);
        let loss = Loss::from_name("cross_entropy").unwrap();
        for v in variant_names(&small, &loss, Reduction::Sum, &inputs).unwrap() {
            let what = format!("cross_entropy {} sliced {v}", dtype.name());
            with_forced_variant(v, || {
                check_grad_on(
                    &small,
                    &what,
                    &loss,
                    Reduction::Sum,
                    &inputs,
                    Upstream::Scalar(1.0),
                );
            })
            .unwrap();
        }
        // Pairs of odd width.
        let (rows, d) = (250, 37);
        let a = halves(&uniform(&mut r, rows * d, -1.0, 1.0), dtype);
        let p = halves(&uniform(&mut r, rows * d, -1.0, 1.0), dtype);
        let q = halves(&uniform(&mut r, rows * d, -1.0, 1.0), dtype);
        let shape = [rows, d];
        let inputs = Inputs::new(Tensor::new(a.floats(), &shape))
            .positive(Tensor::new(p.floats(), &shape))
            .negative(Tensor::new(q.floats(), &shape));
        let loss = Loss::from_name("triplet_margin").unwrap();
        check_grad_on(
            &small,
            "triplet sliced",
            &loss,
            Reduction::Mean,
            &inputs,
            Upstream::Scalar(1.0),
        );
    }
}

/// Streaming cuts half tensors into chunks (odd-sized ones too); both it and
/// the one call give the twin's value.
#[test]
fn streamed_halves_match_one_call() {
    let mut r = rng(9);
    let n = 10_001;
    for dtype in HALVES {
        let x = halves(&uniform(&mut r, n, -2.0, 2.0), dtype);
        let y = halves(&uniform(&mut r, n, -2.0, 2.0), dtype);
        let shape = [n];
        let inputs =
            Inputs::new(Tensor::new(x.floats(), &shape)).target(Tensor::new(y.floats(), &shape));
        let loss = Loss::from_name("huber").unwrap();
        let whole = ctx()
            .evaluate(&loss, Reduction::Mean, &inputs)
            .unwrap()
            .value;
        let streamed = ctx()
            .evaluate_streamed(&loss, Reduction::Mean, &inputs, 999, &mut |_, _| {})
            .unwrap()
            .value;
        let want = cpu::evaluate(&loss, Reduction::Mean, &inputs)
            .unwrap()
            .value;
        for (what, got) in [("one call", whole), ("streamed", streamed)] {
            assert!(
                (got - want).abs() <= 1e-6 * want.abs(),
                "{dtype:?} {what}: {got} vs the twin's {want}"
            );
        }
    }
}

/// Device tensors declare their dtype: halves from a 256-byte offset are
/// read as such; an evaluator built for one dtype refuses another; class
/// indices cannot be half; a view's last word must be in the buffer.
#[test]
fn device_tensors_declare_their_dtype() {
    let ctx = ctx();
    let loss = Loss::from_name("mse").unwrap();
    let n = 513;
    let shape = [n];
    let mut r = rng(2);
    let x: Vec<f16> = uniform(&mut r, n, -1.0, 1.0)
        .into_iter()
        .map(f16::from_f32)
        .collect();
    let y: Vec<bf16> = uniform(&mut r, n, -1.0, 1.0)
        .into_iter()
        .map(bf16::from_f32)
        .collect();
    let bx = buffer_with(ctx, &x, 256, STORAGE);
    let by = buffer_with(ctx, &y, 0, STORAGE);
    let out = buffer_with(ctx, &[0f32; 4], 0, STORAGE | wgpu::BufferUsages::COPY_SRC);
    let tx = DeviceTensor::new(BufferView::new(&bx, 256, n), &shape).with_dtype(DType::F16);
    let ty = DeviceTensor::new(BufferView::new(&by, 0, n), &shape).with_dtype(DType::Bf16);
    let inputs = DeviceInputs::new(tx).target(ty);
    let ev = ctx.evaluator(&loss, Reduction::Sum, &inputs).unwrap();
    let mut enc = encoder(ctx);
    ev.encode(&mut enc, &inputs, BufferView::whole(&out))
        .unwrap();
    let got = read_all(ctx, enc, &out)[0] as f64;
    let host = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    let want = cpu::evaluate(&loss, Reduction::Sum, &host).unwrap().value;
    assert!((got - want).abs() <= 1e-5 * want.abs(), "{got} vs {want}");

    // The same buffers read as f32: not what the evaluator was built for.
    let half_shape = [n / 2];
    let as_f32 = DeviceInputs::new(DeviceTensor::new(
        BufferView::new(&bx, 256, n / 2),
        &half_shape,
    ))
    .target(DeviceTensor::new(
        BufferView::new(&by, 0, n / 2),
        &half_shape,
    ));
    let ev32 = ctx.evaluator(&loss, Reduction::Sum, &as_f32).unwrap();
    let mut enc = encoder(ctx);
    let wrong = DeviceInputs::new(
        DeviceTensor::new(BufferView::new(&bx, 256, n / 2), &half_shape).with_dtype(DType::F16),
    )
    .target(DeviceTensor::new(
        BufferView::new(&by, 0, n / 2),
        &half_shape,
    ));
    match ev32.encode(&mut enc, &wrong, BufferView::whole(&out)) {
        Err(Error::Buffer {
            name: "input",
            problem,
        }) => {
            assert!(
                problem.contains("f16") && problem.contains("f32"),
                "{problem}"
            )
        }
        other => panic!("expected a dtype error, got {other:?}"),
    }

    // The last word of 513 halves ends 2 bytes past them: a buffer of
    // exactly 1026 bytes is too small.
    let exact = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 1026,
        usage: STORAGE,
        mapped_at_creation: false,
    });
    let short = DeviceInputs::new(
        DeviceTensor::new(BufferView::new(&exact, 0, n), &shape).with_dtype(DType::F16),
    )
    .target(ty);
    match ctx.evaluator(&loss, Reduction::Sum, &short).and_then(|e| {
        let mut enc = encoder(ctx);
        e.encode(&mut enc, &short, BufferView::whole(&out))
    }) {
        Err(Error::Buffer {
            name: "input",
            problem,
        }) => {
            assert!(problem.contains("4-byte words"), "{problem}")
        }
        other => panic!("expected a bounds error, got {other:?}"),
    }

    // Class indices are i32.
    let ce = Loss::from_name("cross_entropy").unwrap();
    let logits = buffer_with(ctx, &[0f32; 6], 0, STORAGE);
    let classes = buffer_with(ctx, &[0i32, 1], 0, STORAGE);
    let bad = DeviceInputs::new(DeviceTensor::new(BufferView::new(&logits, 0, 6), &[2, 3]))
        .classes(DeviceTensor::new(BufferView::new(&classes, 0, 2), &[2]).with_dtype(DType::F16));
    match ctx.evaluator(&ce, Reduction::Mean, &bad).and_then(|e| {
        let mut enc = encoder(ctx);
        e.encode(&mut enc, &bad, BufferView::whole(&out))
    }) {
        Err(Error::Buffer {
            name: "target",
            problem,
        }) => {
            assert!(problem.contains("i32"), "{problem}")
        }
        other => panic!("expected a class dtype error, got {other:?}"),
    }
}

/// Runs `loss` with gradients on device copies of `host` (every float
/// tensor as `dtype`... or as given) and returns the gradient of each
/// differentiable tensor read back from views of `grad_dtype`, as f32 bits
/// widened from the halves, and the bytes after each view's last value.
fn device_grads(
    ctx: &wgpu_loss::Context,
    loss: &Loss,
    reduction: Reduction,
    host: &Inputs<'_>,
    grad_dtype: DType,
) -> Vec<(String, Vec<u16>, Vec<u8>)> {
    use wgpu_loss::{DeviceUpstream, GradViews, TensorName};
    let keep = |t: Tensor<'_>| buffer_with(ctx, t.data.bytes(), 0, STORAGE);
    let named: Vec<(TensorName, Tensor<'_>)> = TensorName::ALL
        .into_iter()
        .filter_map(|n| host.float(n).map(|t| (n, t)))
        .collect();
    let buffers: Vec<wgpu::Buffer> = named.iter().map(|(_, t)| keep(*t)).collect();
    let classes = match host.target {
        Some(wgpu_loss::Target::Class { data, .. }) => {
            let c: Vec<i32> = data.iter().map(|&c| c as i32).collect();
            Some(buffer_with(ctx, &c, 0, STORAGE))
        }
        _ => None,
    };
    let tensor = |k: usize| {
        let (_, t) = named[k];
        DeviceTensor::new(BufferView::new(&buffers[k], 0, t.data.len()), t.shape)
            .with_dtype(t.dtype())
    };
    let mut inputs = DeviceInputs::new(tensor(0));
    for (k, (name, _)) in named.iter().enumerate().skip(1) {
        inputs = inputs.with(*name, tensor(k));
    }
    if let (Some(c), Some(t)) = (&classes, host.target) {
        inputs = inputs.classes(DeviceTensor::new(
            BufferView::new(c, 0, t.shape().iter().product()),
            t.shape(),
        ));
    }
    let ev = ctx.grad_evaluator(loss, reduction, &inputs).unwrap();
    let grads_of: Vec<TensorName> = loss.entry().grads.to_vec();
    // Each view in a buffer of its own, filled with 0xAB past its values.
    let views: Vec<(TensorName, usize, wgpu::Buffer)> = grads_of
        .iter()
        .map(|&n| {
            let len = host.float(n).unwrap().data.len();
            let bytes = (len * grad_dtype.size()).next_multiple_of(4) + 16;
            let b = buffer_with(
                ctx,
                &vec![0xABu8; bytes],
                0,
                STORAGE | wgpu::BufferUsages::COPY_SRC,
            );
            (n, len, b)
        })
        .collect();
    let view = |n: TensorName| {
        views
            .iter()
            .find(|v| v.0 == n)
            .map(|(_, len, b)| BufferView::new(b, 0, *len))
    };
    let mut gv = GradViews::new(view(TensorName::Input).unwrap()).with_dtype(grad_dtype);
    gv.target = view(TensorName::Target);
    gv.positive = view(TensorName::Positive);
    gv.negative = view(TensorName::Negative);
    let out = buffer_with(ctx, &[0f32; 4], 0, STORAGE | wgpu::BufferUsages::COPY_SRC);
    let mut enc = encoder(ctx);
    ev.encode_with_grad(
        &mut enc,
        &inputs,
        DeviceUpstream::Scalar(1.0),
        BufferView::whole(&out),
        &gv,
    )
    .unwrap();
    ctx.queue().submit([enc.finish()]);
    views
        .iter()
        .map(|(n, len, b)| {
            let words = read_all(ctx, encoder(ctx), b);
            let bytes: Vec<u8> = bytemuck::cast_slice(&words).to_vec();
            let halves: Vec<u16> = bytes[..2 * len]
                .chunks(2)
                .map(|c| u16::from_ne_bytes([c[0], c[1]]))
                .collect();
            (n.name().to_string(), halves, bytes[2 * len..].to_vec())
        })
        .collect()
}

/// The half bits of `v` as the `half` crate rounds it (to nearest, ties to
/// even): what the pack pass must give.
fn half_bits(v: f32, dtype: DType) -> u16 {
    match dtype {
        DType::Bf16 => bf16::from_f32(v).to_bits(),
        _ => f16::from_f32(v).to_bits(),
    }
}

fn same_half(got: u16, want: u16, dtype: DType) -> bool {
    let nan = |b: u16| match dtype {
        DType::Bf16 => bf16::from_bits(b).is_nan(),
        _ => f16::from_bits(b).is_nan(),
    };
    got == want || (nan(got) && nan(want))
}

/// Gradients into views of halves: each value the f32 gradient the host API
/// gives, rounded once to nearest even, bit for bit, for a loss of every
/// family (three gradients for triplet_margin), odd lengths included; the
/// bytes after a view's last value are left as they were.
#[test]
fn gradients_into_views_of_halves_round_the_f32_gradient_once() {
    let ctx = ctx();
    for name in [
        "mse",
        "bce_with_logits",
        "cross_entropy",
        "triplet_margin",
        "cosine_embedding",
        "dice",
    ] {
        let loss = Loss::from_name(name).unwrap();
        let b = batch(&loss, 2049, 13);
        for dtype in HALVES {
            let cast = b.cast(dtype);
            let host = cast.inputs();
            let (_, want) = ctx
                .evaluate_with_grad(&loss, Reduction::Mean, &host, Upstream::Scalar(1.0))
                .unwrap();
            for (tensor, got, after) in device_grads(ctx, &loss, Reduction::Mean, &host, dtype) {
                let want = match tensor.as_str() {
                    "input" => &want.input,
                    "target" => want.target.as_ref().unwrap(),
                    "positive" => want.positive.as_ref().unwrap(),
                    _ => want.negative.as_ref().unwrap(),
                };
                assert_eq!(got.len(), want.len());
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    let w16 = half_bits(*w, dtype);
                    assert!(
                        same_half(*g, w16, dtype),
                        "{name} {dtype:?} d/d{tensor}[{i}]: {g:#06x} vs {w16:#06x} ({w})"
                    );
                }
                assert!(
                    after.iter().all(|&b| b == 0xAB),
                    "{name} {dtype:?} d/d{tensor}: wrote past its view"
                );
            }
        }
    }
}

/// The rounding itself on the values where it is hard: ties to even, the
/// f16 overflow threshold, subnormals and the 2^-25 tie, signed zeros,
/// infinities and NaN. mse `none` with target 0 and upstream 1/2 per item
/// makes the gradient exactly x (2 (x - 0) / 2, below f32 overflow).
#[test]
fn packed_gradients_round_ties_to_even_and_keep_special_values() {
    use wgpu_loss::{DeviceUpstream, GradViews};
    let ctx = ctx();
    let p = |e: i32| 2f32.powi(e);
    let mut x = vec![
        1.0 + p(-11),
        1.0 + 3.0 * p(-11),
        1.0 + p(-8),
        1.0 + 3.0 * p(-8),
        65504.0,
        65519.0,
        65520.0,
        65536.0,
        1e6,
        p(-24),
        p(-25),
        p(-25) * 1.5,
        p(-26),
        3.0 * p(-26),
        p(-14),
        p(-14) - p(-24),
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -1.0 - p(-11),
        1.5e38,
        1e-40,
        -1.5e38,
    ];
    x.extend((0..100).map(|k| (k as f32 - 50.0) * 0.01337));
    let n = x.len();
    let shape = [n];
    let zeros = vec![0f32; n];
    let half_g = vec![0.5f32; n];
    let bx = buffer_with(ctx, &x, 0, STORAGE);
    let by = buffer_with(ctx, &zeros, 0, STORAGE);
    let bg = buffer_with(ctx, &half_g, 0, STORAGE);
    let inputs = DeviceInputs::new(DeviceTensor::new(BufferView::new(&bx, 0, n), &shape))
        .target(DeviceTensor::new(BufferView::new(&by, 0, n), &shape));
    let loss = Loss::from_name("mse").unwrap();
    let ev = ctx.grad_evaluator(&loss, Reduction::None, &inputs).unwrap();
    for dtype in HALVES {
        let gb = buffer_with(
            ctx,
            &vec![0u8; 4 * n],
            0,
            STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        let out = buffer_with(
            ctx,
            &vec![0f32; n],
            0,
            STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        let gv = GradViews::new(BufferView::new(&gb, 0, n)).with_dtype(dtype);
        let mut enc = encoder(ctx);
        let up = DeviceUpstream::Buffer(BufferView::new(&bg, 0, n));
        ev.encode_with_grad(&mut enc, &inputs, up, BufferView::whole(&out), &gv)
            .unwrap();
        ctx.queue().submit([enc.finish()]);
        let words = read_all(ctx, encoder(ctx), &gb);
        let halves: &[u16] = bytemuck::cast_slice(&words);
        for (i, v) in x.iter().enumerate() {
            let want = half_bits(*v, dtype);
            assert!(
                same_half(halves[i], want, dtype),
                "{dtype:?} {v:e}: {:#06x} vs {want:#06x}",
                halves[i]
            );
        }
    }
}

/// Packed gradients longer than one binding: the pack pass runs per slice,
/// each starting on a word of its own.
#[test]
fn packed_gradients_beyond_one_binding() {
    let small = small_binding_ctx(1024);
    let mut r = rng(21);
    let n = 5001;
    let shape = [n];
    for dtype in HALVES {
        let x = halves(&uniform(&mut r, n, -2.0, 2.0), dtype);
        let y = halves(&uniform(&mut r, n, -2.0, 2.0), dtype);
        let host =
            Inputs::new(Tensor::new(x.floats(), &shape)).target(Tensor::new(y.floats(), &shape));
        let loss = Loss::from_name("huber").unwrap();
        let (_, want) = small
            .evaluate_with_grad(&loss, Reduction::Sum, &host, Upstream::Scalar(1.0))
            .unwrap();
        let got = device_grads(&small, &loss, Reduction::Sum, &host, dtype);
        let (_, halves, after) = &got[0];
        for (i, (g, w)) in halves.iter().zip(&want.input).enumerate() {
            let w16 = half_bits(*w, dtype);
            assert!(
                same_half(*g, w16, dtype),
                "{dtype:?}[{i}]: {g:#06x} vs {w16:#06x}"
            );
        }
        assert!(after.iter().all(|&b| b == 0xAB));
    }
}
