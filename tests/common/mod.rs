//! Shared by the test binaries: one GPU context per binary, seeded data, and
//! the comparison with the float64 reference.
#![allow(dead_code)]

pub mod cases;
pub mod device;
pub mod dice_data;
pub mod finite;
pub mod points;
pub mod upstream;

use std::sync::OnceLock;
use wgpu_loss::{Dice, DiceMode, Pairs};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgpu_loss::{
    cpu, Context, Error, Evaluation, Gradients, Inputs, Loss, Reduction, Upstream, Variant,
};

pub const SIZES: [usize; 6] = [1, 255, 256, 257, 65_537, 1_000_003];
pub const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

/// The binary's context. Untuned: every call runs its family's best guess,
/// the same kernels on every machine and no time spent timing variants;
/// tests that want another variant force it ([`variant_ctxs`]), and the
/// tuner's own tests open tuned contexts.
pub fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        Context::new()
            .expect("a wgpu adapter (install mesa-vulkan-drivers)")
            .untuned()
    })
}

/// A context on `base`'s device for each variant of `family` (see
/// [`Variant::family`]), forced to it.
pub fn variant_ctxs(base: &Context, family: &str) -> Vec<(Variant, Context)> {
    Variant::all()
        .into_iter()
        .filter(|v| v.family() == family)
        .map(|v| (v, base.with_variant(v)))
        .collect()
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
    compare_grads(what, &got_grads, &want_grads);
    got_grads
}

/// Every element of every GPU gradient against the reference's.
pub fn compare_grads(what: &str, got: &Gradients, want: &cpu::ReferenceGradients) {
    for name in GRADIENTS {
        match (got.named(name), want.named(name)) {
            (Some(got), Some(want)) => assert_close_all(&format!("{what}: d/d{name}"), got, want),
            (None, None) => {}
            _ => panic!("{what}: d/d{name} on one side only"),
        }
    }
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

/// Every element of a GPU result within 1e-4 relative + 1e-6 absolute of the reference.
pub fn assert_close_all(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(close(*g as f64, *w, 1e-6), "{what}[{i}]: gpu {g} vs {w}");
    }
}

/// The tensors a loss can have a gradient for, by their names in the case
/// files and in `GradViews`.
pub const GRADIENTS: [&str; 4] = ["input", "target", "positive", "negative"];

/// A gradient by its tensor's name, on the GPU's and the twin's results alike.
pub trait ByName {
    type Value: Copy + Into<f64>;
    fn named(&self, name: &str) -> Option<&[Self::Value]>;
}

/// `ByName` of a gradients struct whose values are `$value`.
macro_rules! by_name {
    ($gradients:ty, $value:ty) => {
        impl ByName for $gradients {
            type Value = $value;
            fn named(&self, name: &str) -> Option<&[$value]> {
                match name {
                    "input" => Some(&self.input),
                    "target" => self.target.as_deref(),
                    "positive" => self.positive.as_deref(),
                    "negative" => self.negative.as_deref(),
                    _ => None,
                }
            }
        }
    };
}

by_name!(Gradients, f32);
by_name!(cpu::ReferenceGradients, f64);

/// The GPU path and the CPU twin reject the call with the same error, whose
/// message holds each of `words`.
pub fn rejects(loss: &Loss, reduction: Reduction, inputs: &Inputs<'_>, words: &[&str]) -> Error {
    let cpu = cpu::evaluate(loss, reduction, inputs).expect_err("the CPU path accepted it");
    let gpu = ctx()
        .evaluate(loss, reduction, inputs)
        .expect_err("the GPU path accepted it");
    assert_eq!(cpu, gpu);
    let text = gpu.to_string();
    assert!(!text.is_empty());
    for w in words {
        assert!(text.contains(w), "`{w}` missing from: {text}");
    }
    gpu
}

/// dice with smp's eps.
pub fn dice(
    mode: DiceMode,
    from_logits: bool,
    smooth: f32,
    ignore_index: Option<i64>,
    log_loss: bool,
) -> Loss {
    Loss::Dice(Dice {
        mode,
        from_logits,
        smooth,
        eps: 1e-7,
        ignore_index,
        log_loss,
    })
}
