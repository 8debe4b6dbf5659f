//! PyTorch-generated cases (tests/fixtures/torch_cases.json, made by
//! scripts/make_fixtures.py with torch, torchvision, kornia and smp). Each case
//! keeps the PyTorch expression that produced it in its "torch" field. The CPU
//! twin must match them to float64 precision, the GPU to 1e-4 rel + 1e-6 abs.
//!
//! Tensors with dtype float16 or bfloat16 are passed as `f16` / `bf16`
//! tensors (tests/common/cases.rs checks each stored value is one of the
//! type). PyTorch computed their cases in float64 from the half values, which
//! is what the library computes on (the twin in f64, the GPU in f32 from the
//! exact upcast), so they take the same tolerances as the f32 cases.

use crate::common::cases::{expected, grads, load, loss_of, reduction_of, tight, CaseTensors};
use crate::common::{close, ctx, variant_ctxs, ByName};
use serde_json::Value;
use std::collections::BTreeSet;
use wgpu_loss::{cpu, DType, Dice, Error, Loss, Pairs, Upstream, Variant};

/// Checks each gradient of `got` against autograd's in the case, element by
/// element with `ok`; what disagrees goes into `failures`.
fn compare_grads<G: ByName>(
    name: &str,
    side: &str,
    got: &G,
    case: &Value,
    ok: impl Fn(f64, f64) -> bool,
    failures: &mut Vec<String>,
) {
    for (tensor, want) in grads(case) {
        match got.named(&tensor) {
            Some(got) if got.len() == want.len() => {
                for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                    let g: f64 = (*g).into();
                    if !ok(g, *w) {
                        failures.push(format!("{name}: d/d{tensor}[{k}]: {side} {g} vs torch {w}"));
                    }
                }
            }
            _ => failures.push(format!(
                "{name}: no {side} gradient for {tensor} of its length"
            )),
        }
    }
}

#[test]
fn pytorch_fixtures() {
    let cases = load("torch_cases.json");
    assert!(cases.len() > 100, "the fixture file lost its cases");
    let mut failures = vec![];
    let mut gpu_gradients = 0;
    let mut dice_gradients = 0;
    // (pair cases, of them with GPU gradients checked)
    let mut pair_gradients = (0, 0);
    // (loss, dtype) of every float tensor of every case; cases with a half
    // tensor and an f32 one.
    let mut dtypes = BTreeSet::new();
    let mut mixed = 0;
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let loss = loss_of(case);
        let reduction = reduction_of(case);
        let pair = matches!(
            loss,
            Loss::Pairs(Pairs::CosineEmbedding { .. }) | Loss::Pairs(Pairs::TripletMargin { .. })
        );
        pair_gradients.0 += pair as usize;
        let tensors = CaseTensors::of(case);
        for d in DType::ALL.into_iter().filter(|&d| tensors.has(d)) {
            dtypes.insert((loss.name(), d.name()));
        }
        mixed += (tensors.has(DType::F32) && (tensors.has(DType::F16) || tensors.has(DType::Bf16)))
            as usize;
        let inputs = tensors.inputs(&loss);

        let (want, want_items) = expected(case);
        let item_scale = want_items
            .as_ref()
            .map_or(0.0, |w| w.iter().map(|v| v.abs()).sum::<f64>());

        match cpu::evaluate(&loss, reduction, &inputs) {
            Err(e) => failures.push(format!("{name}: cpu error {e}")),
            Ok(r) => {
                if !tight(r.value, want) {
                    failures.push(format!("{name}: cpu {} vs torch {want}", r.value));
                }
                if let Some(w) = &want_items {
                    for (k, (g, w)) in r.items.iter().zip(w).enumerate() {
                        if !tight(*g, *w) {
                            failures.push(format!("{name}: cpu item {k}: {g} vs torch {w}"));
                        }
                    }
                }
            }
        }
        // The float64 backward against autograd: `grads` holds d(value)/d(tensor),
        // for `none` the gradient of the items' sum.
        match cpu::gradient(&loss, reduction, &inputs, Upstream::Scalar(1.0)) {
            Err(e) => failures.push(format!("{name}: cpu gradient error {e}")),
            Ok((_, g)) => compare_grads(name, "cpu", &g, case, tight, &mut failures),
        }
        // The GPU backward against the same autograd gradients, for the
        // families whose backward is on the GPU.
        match ctx().evaluate_with_grad(&loss, reduction, &inputs, Upstream::Scalar(1.0)) {
            Err(e) => failures.push(format!("{name}: gpu gradient error {e}")),
            Ok((_, g)) => {
                gpu_gradients += 1;
                dice_gradients += matches!(loss, Loss::Dice(Dice { .. })) as usize;
                pair_gradients.1 += pair as usize;
                let ok = |g, w| close(g, w, 1e-6);
                compare_grads(name, "gpu", &g, case, ok, &mut failures);
            }
        }
        match ctx().evaluate(&loss, reduction, &inputs) {
            Err(e) => failures.push(format!("{name}: gpu error {e}")),
            Ok(g) => {
                if !close(g.value, want, 1e-6 + 1e-6 * item_scale) {
                    failures.push(format!("{name}: gpu {} vs torch {want}", g.value));
                }
                if let (Some(items), Some(w)) = (&g.items, &want_items) {
                    for (k, (g, w)) in items.iter().zip(w).enumerate() {
                        if !close(*g as f64, *w, 1e-6) {
                            failures.push(format!("{name}: gpu item {k}: {g} vs torch {w}"));
                        }
                    }
                }
            }
        }
    }
    // Every elementwise case at least.
    assert!(
        gpu_gradients >= 100,
        "only {gpu_gradients} GPU gradient cases ran"
    );
    assert!(
        dice_gradients >= 31,
        "only {dice_gradients} dice GPU gradient cases ran"
    );
    assert!(
        pair_gradients.0 >= 20,
        "the fixture file lost its pair cases"
    );
    assert_eq!(
        pair_gradients.0, pair_gradients.1,
        "every pair case has its GPU gradients checked"
    );
    // Every loss has cases with f16 and with bf16 tensors, some of them next
    // to f32 ones.
    for (loss, _) in &dtypes {
        for d in [DType::F16, DType::Bf16] {
            assert!(
                dtypes.contains(&(*loss, d.name())),
                "{loss} has no {} fixture case",
                d.name()
            );
        }
    }
    assert!(mixed >= 10, "only {mixed} cases mix half and f32 tensors");
    assert!(
        failures.is_empty(),
        "{} fixture mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The family of a loss, as `Variant::family` names it.
fn family(loss: &Loss) -> &'static str {
    match loss {
        Loss::Pointwise(_) => "pointwise",
        Loss::Rows(_) => "rows",
        Loss::Pairs(_) => "pairs",
        Loss::Dice(_) => "dice",
    }
}

/// `pytorch_fixtures` on every kernel variant of the families that have
/// several, each forced where it can run the case (`pytorch_fixtures` runs
/// the default one): the value, the items and every gradient against
/// PyTorch's.
#[test]
fn every_variant_matches_the_pytorch_fixtures() {
    let mut failures = vec![];
    let mut ran: Vec<(Variant, usize)> = vec![];
    for case in &load("torch_cases.json") {
        let name = case["name"].as_str().unwrap();
        let loss = loss_of(case);
        let variants = variant_ctxs(ctx(), family(&loss));
        if variants.len() < 2 {
            continue;
        }
        let reduction = reduction_of(case);
        let tensors = CaseTensors::of(case);
        let inputs = tensors.inputs(&loss);
        let (want, want_items) = expected(case);
        let item_scale = want_items
            .as_ref()
            .map_or(0.0, |w| w.iter().map(|v| v.abs()).sum::<f64>());
        let mut any = false;
        for (v, forced) in variants {
            match forced.variants(&loss, reduction, &inputs) {
                Ok(_) => {}
                Err(Error::Variant { .. }) => continue,
                Err(e) => panic!("{name} [{v}]: {e}"),
            }
            any = true;
            match ran.iter_mut().find(|r| r.0 == v) {
                Some(r) => r.1 += 1,
                None => ran.push((v, 1)),
            }
            let name = format!("{name} [{v}]");
            match forced.evaluate(&loss, reduction, &inputs) {
                Err(e) => failures.push(format!("{name}: gpu error {e}")),
                Ok(g) => {
                    if !close(g.value, want, 1e-6 + 1e-6 * item_scale) {
                        failures.push(format!("{name}: gpu {} vs torch {want}", g.value));
                    }
                    if let (Some(items), Some(w)) = (&g.items, &want_items) {
                        for (k, (g, w)) in items.iter().zip(w).enumerate() {
                            if !close(*g as f64, *w, 1e-6) {
                                failures.push(format!("{name}: gpu item {k}: {g} vs torch {w}"));
                            }
                        }
                    }
                }
            }
            match forced.evaluate_with_grad(&loss, reduction, &inputs, Upstream::Scalar(1.0)) {
                Err(e) => failures.push(format!("{name}: gpu gradient error {e}")),
                Ok((_, g)) => {
                    let ok = |g, w| close(g, w, 1e-6);
                    compare_grads(&name, "gpu", &g, case, ok, &mut failures);
                }
            }
        }
        assert!(any, "{name}: no variant ran");
    }
    // Each pair variant the adapter has ran on some of the pair cases (the
    // rows are too short for a workgroup each).
    let subgroups = ctx().device().features().contains(wgpu::Features::SUBGROUP);
    let here: &[&str] = if subgroups {
        &["pair-thread", "pair-packed", "pair-subgroup"]
    } else {
        &["pair-thread", "pair-packed"]
    };
    for &v in here {
        assert!(
            ran.iter().any(|r| r.0.name() == v && r.1 >= 10),
            "{v}: {ran:?}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} fixture mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
