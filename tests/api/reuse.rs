//! Repeated small calls reuse what they made on their first run: a prepared
//! call (forward or fused) and an evaluator encoding on the same caller
//! buffers create no buffer, bind group or query set after it, and their
//! results stay right.
//!
//! Each test opens its own context, so that the other tests of the binary,
//! running at the same time, do not move its counter.

use crate::common::close;
use crate::common::device::{buffer, encoder, read};
use wgpu_loss::cli::synthetic;
use wgpu_loss::{
    cpu, BufferView, Context, DeviceInputs, DeviceTensor, DeviceUpstream, GradViews, Loss,
    Reduction, Upstream,
};

fn own_ctx() -> Context {
    Context::new().expect("a wgpu adapter (install mesa-vulkan-drivers)")
}

const RUNS: usize = 5;

#[test]
fn prepared_calls_on_1000_elements_allocate_nothing_after_the_first_run() {
    let ctx = own_ctx();
    for name in ["mse", "cross_entropy"] {
        let loss = Loss::from_name(name).unwrap();
        let batch = synthetic::batch(&loss, 1000, 3);
        let inputs = batch.inputs();
        assert_eq!(inputs.input.data.len(), 1000, "{name}");
        for reduction in [Reduction::Mean, Reduction::None] {
            let what = format!("{name} {}", reduction.name());
            let want = cpu::evaluate(&loss, reduction, &inputs).unwrap();
            let check = |got: &wgpu_loss::Evaluation, how: &str| {
                assert!(
                    close(got.value, want.value, 1e-6),
                    "{what} {how}: {} vs {}",
                    got.value,
                    want.value
                );
                if let Some(items) = &got.items {
                    for (i, (g, w)) in items.iter().zip(&want.items).enumerate() {
                        assert!(close(*g as f64, *w, 1e-6), "{what} {how}: item {i}");
                    }
                }
            };

            let prepared = ctx.prepare(&loss, reduction, &inputs).unwrap();
            check(&prepared.run().unwrap(), "first run");
            // The first timed run makes the timestamp queries, where there are any.
            check(&prepared.run_timed().unwrap().0, "first timed run");
            let before = ctx.gpu_objects_created();
            let submits = ctx.submits();
            for _ in 0..RUNS {
                check(&prepared.run().unwrap(), "run");
                check(&prepared.run_timed().unwrap().0, "timed run");
            }
            assert_eq!(ctx.gpu_objects_created(), before, "{what}: a run allocated");
            assert_eq!(
                ctx.submits(),
                submits + 2 * RUNS,
                "{what}: one submit a run"
            );

            // The fused call: the value alone, and with every gradient.
            let one = Upstream::Scalar(1.0);
            let (want_value, want_grads) = cpu::gradient(&loss, reduction, &inputs, one).unwrap();
            let fused = ctx
                .prepare_with_grad(&loss, reduction, &inputs, one)
                .unwrap();
            let check_fused = |how: &str| {
                let (value, grads) = fused.run_with_grad().unwrap();
                assert!(
                    close(value.value, want_value.value, 1e-6),
                    "{what} fused {how}: {} vs {}",
                    value.value,
                    want_value.value
                );
                assert_eq!(grads.input.len(), want_grads.input.len());
                for (i, (g, w)) in grads.input.iter().zip(&want_grads.input).enumerate() {
                    assert!(close(*g as f64, *w, 1e-6), "{what} fused {how}: d/dx {i}");
                }
            };
            check_fused("first run");
            check(&fused.run().unwrap(), "fused first value");
            check(&fused.run_timed().unwrap().0, "fused first timed");
            let before = ctx.gpu_objects_created();
            for _ in 0..RUNS {
                check_fused("run");
                check(&fused.run().unwrap(), "fused value");
                check(&fused.run_timed().unwrap().0, "fused timed");
            }
            assert_eq!(
                ctx.gpu_objects_created(),
                before,
                "{what}: a fused run allocated"
            );
        }
    }
}

/// An evaluator's encodes on caller buffers: the same views again create
/// nothing, new ones create bind groups, and the stream's pattern (two sets
/// of buffers in turn) settles into creating nothing.
#[test]
fn encodes_on_the_same_buffers_allocate_nothing_after_the_first() {
    let ctx = own_ctx();
    let loss = Loss::from_name("mse").unwrap();
    let batch = synthetic::batch(&loss, 1000, 4);
    let host = batch.inputs();
    let shape = [1000];
    let want = cpu::evaluate(&loss, Reduction::Mean, &host).unwrap().value;
    let x = host.input.data;
    let y = match host.target {
        Some(wgpu_loss::Target::Float(t)) => t.data,
        _ => panic!("mse has a float target"),
    };
    // Two sets of buffers holding the same data.
    let sets: Vec<[wgpu::Buffer; 3]> = (0..2)
        .map(|_| {
            [
                buffer(&ctx, &x.to_f32()),
                buffer(&ctx, &y.to_f32()),
                buffer(&ctx, &[0f32; 4]),
            ]
        })
        .collect();
    fn device<'a>(s: &'a [wgpu::Buffer; 3], shape: &'a [usize]) -> DeviceInputs<'a> {
        DeviceInputs::new(DeviceTensor::new(BufferView::new(&s[0], 0, 1000), shape))
            .target(DeviceTensor::new(BufferView::new(&s[1], 0, 1000), shape))
    }
    let evaluator = ctx
        .evaluator(&loss, Reduction::Mean, &device(&sets[0], &shape))
        .unwrap();
    let run = |s: &[wgpu::Buffer; 3]| {
        let mut enc = encoder(&ctx);
        evaluator
            .encode(&mut enc, &device(s, &shape), BufferView::new(&s[2], 0, 1))
            .unwrap();
        let got = read(&ctx, enc, &s[2], 1)[0] as f64;
        assert!(close(got, want, 1e-6), "{got} vs {want}");
    };

    run(&sets[0]);
    let once = ctx.gpu_objects_created();
    run(&sets[0]);
    run(&sets[0]);
    assert_eq!(ctx.gpu_objects_created(), once, "the same buffers rebound");
    run(&sets[1]);
    assert!(
        ctx.gpu_objects_created() > once,
        "new buffers need new bind groups"
    );
    let both = ctx.gpu_objects_created();
    for k in 0..6 {
        run(&sets[k % 2]);
    }
    assert_eq!(ctx.gpu_objects_created(), both, "two sets in turn rebound");
}

/// A scalar upstream lives in a buffer the evaluator keeps per value: the
/// same value again allocates nothing, and two encodes with different values
/// submitted together each keep their own.
#[test]
fn scalar_upstreams_are_kept_per_value() {
    let ctx = own_ctx();
    let loss = Loss::from_name("mse").unwrap();
    let batch = synthetic::batch(&loss, 1000, 5);
    let host = batch.inputs();
    let shape = [1000];
    let x = host.input.data;
    let y = match host.target {
        Some(wgpu_loss::Target::Float(t)) => t.data,
        _ => panic!("mse has a float target"),
    };
    let (bx, by) = (buffer(&ctx, &x.to_f32()), buffer(&ctx, &y.to_f32()));
    let device = DeviceInputs::new(DeviceTensor::new(BufferView::new(&bx, 0, 1000), &shape))
        .target(DeviceTensor::new(BufferView::new(&by, 0, 1000), &shape));
    let evaluator = ctx.grad_evaluator(&loss, Reduction::Sum, &device).unwrap();
    let (outputs, grads): (Vec<_>, Vec<_>) = (0..2)
        .map(|_| (buffer(&ctx, &[0f32; 4]), buffer(&ctx, &[0f32; 1000])))
        .unzip();
    let encode = |enc: &mut wgpu::CommandEncoder, k: usize, g: f32| {
        evaluator
            .encode_with_grad(
                enc,
                &device,
                DeviceUpstream::Scalar(g),
                BufferView::new(&outputs[k], 0, 1),
                &GradViews::new(BufferView::new(&grads[k], 0, 1000)),
            )
            .unwrap();
    };
    let check = |got: &[f32], g: f32| {
        let (_, want) = cpu::gradient(&loss, Reduction::Sum, &host, Upstream::Scalar(g)).unwrap();
        for (i, (a, b)) in got.iter().zip(&want.input).enumerate() {
            assert!(close(*a as f64, *b, 1e-6), "g = {g}: d/dx {i}: {a} vs {b}");
        }
    };

    let mut enc = encoder(&ctx);
    encode(&mut enc, 0, 1.0);
    check(&read(&ctx, enc, &grads[0], 1000), 1.0);
    let once = ctx.gpu_objects_created();
    for _ in 0..3 {
        let mut enc = encoder(&ctx);
        encode(&mut enc, 0, 1.0);
        check(&read(&ctx, enc, &grads[0], 1000), 1.0);
    }
    assert_eq!(
        ctx.gpu_objects_created(),
        once,
        "the same scalar reallocated"
    );

    // Both encodes are recorded before either is submitted.
    let mut first = encoder(&ctx);
    encode(&mut first, 0, 2.0);
    let mut second = encoder(&ctx);
    encode(&mut second, 1, -3.0);
    ctx.queue().submit([first.finish()]);
    check(&read(&ctx, second, &grads[1], 1000), -3.0);
    check(&read(&ctx, encoder(&ctx), &grads[0], 1000), 2.0);
}
