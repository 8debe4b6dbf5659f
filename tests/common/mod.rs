//! Shared by the test binaries: one GPU context per binary, seeded data, and
//! the comparison with the float64 reference.
#![allow(dead_code)]

pub mod cases;
pub mod device;
pub mod dice_data;
pub mod points;

use std::sync::OnceLock;
use wgpu_loss::Pairs;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgpu_loss::{cpu, Context, Evaluation, Gradients, Inputs, Loss, Reduction, Upstream};

pub const SIZES: [usize; 6] = [1, 255, 256, 257, 65_537, 1_000_003];
pub const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

pub fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| Context::new().expect("a wgpu adapter (install mesa-vulkan-drivers)"))
}

/// A context whose storage bindings hold only `values` f32, so that small
/// inputs already need many slices.
pub fn small_binding_ctx(values: u64) -> Context {
    let adapter = Context::adapters()
        .into_iter()
        .next()
        .expect("a wgpu adapter");
    let mut limits = adapter.limits();
    limits.max_storage_buffer_binding_size = 4 * values;
    let desc = wgpu::DeviceDescriptor {
        label: Some("small bindings"),
        required_limits: limits,
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).expect("a device");
    Context::from_device(device, queue, adapter.get_info())
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn uniform(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// True when `got` matches `want` within 1e-4 relative plus `abs` absolute.
/// NaN matches only NaN, an infinity only the same infinity.
pub fn close(got: f64, want: f64, abs: f64) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= 1e-4 * want.abs() + abs
}

/// Evaluates on the GPU and the CPU twin and checks every item and the value.
pub fn check(what: &str, loss: &Loss, reduction: Reduction, inputs: &Inputs<'_>) {
    check_tol(what, loss, reduction, inputs, 1e-6)
}

pub fn check_tol(what: &str, loss: &Loss, reduction: Reduction, inputs: &Inputs<'_>, abs: f64) {
    check_on(ctx(), what, loss, reduction, inputs, abs)
}

pub fn check_on(
    ctx: &Context,
    what: &str,
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    abs: f64,
) {
    let want =
        cpu::evaluate(loss, reduction, inputs).unwrap_or_else(|e| panic!("{what}: cpu: {e}"));
    let got = ctx
        .evaluate(loss, reduction, inputs)
        .unwrap_or_else(|e| panic!("{what}: gpu: {e}"));
    compare(what, reduction, &got, &want, abs);
}

/// Checks every item and the value of a GPU evaluation against the reference.
pub fn compare(
    what: &str,
    reduction: Reduction,
    got: &Evaluation,
    want: &cpu::Reference,
    abs: f64,
) {
    assert_eq!(got.items_shape, want.items_shape, "{what}: items shape");
    if reduction == Reduction::None {
        let items = got.items.as_ref().expect("items for none");
        assert_eq!(items.len(), want.items.len(), "{what}: item count");
        for (i, (g, w)) in items.iter().zip(&want.items).enumerate() {
            assert!(
                close(*g as f64, *w, abs),
                "{what}: item {i}: gpu {g} vs reference {w}"
            );
        }
        // The value is a sum of items: its error scales with the item count.
        let scale: f64 = want.items.iter().map(|v| v.abs()).sum::<f64>() * 1e-6;
        assert!(
            close(got.value, want.value, abs + scale),
            "{what}: sum of items: gpu {} vs reference {}",
            got.value,
            want.value
        );
    } else {
        assert!(
            close(got.value, want.value, abs),
            "{what}: gpu {} vs reference {}",
            got.value,
            want.value
        );
    }
}

/// Evaluates with gradients on the GPU and with `cpu::gradient`, and checks
/// the value (or items) and every element of every gradient.
pub fn check_grad(
    what: &str,
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    upstream: Upstream<'_>,
) -> Gradients {
    check_grad_on(ctx(), what, loss, reduction, inputs, upstream)
}

/// `check_grad` on another context.
pub fn check_grad_on(
    ctx: &Context,
    what: &str,
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    upstream: Upstream<'_>,
) -> Gradients {
    let (want, want_grads) = cpu::gradient(loss, reduction, inputs, upstream)
        .unwrap_or_else(|e| panic!("{what}: cpu: {e}"));
    let (got, got_grads) = ctx
        .evaluate_with_grad(loss, reduction, inputs, upstream)
        .unwrap_or_else(|e| panic!("{what}: gpu: {e}"));
    compare(what, reduction, &got, &want, 1e-6);
    let pairs = [
        ("input", Some(&got_grads.input), Some(&want_grads.input)),
        (
            "target",
            got_grads.target.as_ref(),
            want_grads.target.as_ref(),
        ),
        (
            "positive",
            got_grads.positive.as_ref(),
            want_grads.positive.as_ref(),
        ),
        (
            "negative",
            got_grads.negative.as_ref(),
            want_grads.negative.as_ref(),
        ),
    ];
    for (name, got, want) in pairs {
        match (got, want) {
            (Some(got), Some(want)) => {
                assert_eq!(got.len(), want.len(), "{what}: d/d{name} length");
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    assert!(
                        close(*g as f64, *w, 1e-6),
                        "{what}: d/d{name}[{i}]: gpu {g} vs reference {w}"
                    );
                }
            }
            (None, None) => {}
            _ => panic!("{what}: d/d{name} on one side only"),
        }
    }
    got_grads
}

pub fn cosine(margin: f32) -> Loss {
    Loss::Pairs(Pairs::CosineEmbedding { margin })
}

/// triplet_margin with PyTorch's eps.
pub fn triplet(margin: f32, p: f32, swap: bool) -> Loss {
    Loss::Pairs(Pairs::TripletMargin {
        margin,
        p,
        eps: 1e-6,
        swap,
    })
}
