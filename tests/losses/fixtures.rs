//! PyTorch-generated cases (tests/fixtures/torch_cases.json, made by
//! scripts/make_fixtures.py with torch, torchvision, kornia and smp). Each case
//! keeps the PyTorch expression that produced it in its "torch" field. The CPU
//! twin must match them to float64 precision, the GPU to 1e-4 rel + 1e-6 abs.

use crate::common::cases::{loss_of, num, CaseTensors};
use crate::common::{close, ctx};
use serde_json::Value;
use wgpu_loss::{cpu, Loss, Reduction, Upstream};
use wgpu_loss::{Dice, Pairs};

/// The float64 twin against float64 PyTorch: equal up to summation order.
fn tight(got: f64, want: f64) -> bool {
    if got.is_nan() || want.is_nan() || got.is_infinite() || want.is_infinite() {
        return close(got, want, 0.0);
    }
    (got - want).abs() <= 1e-7 * want.abs() + 1e-9
}

#[test]
fn pytorch_fixtures() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/torch_cases.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() > 100, "the fixture file lost its cases");
    let mut failures = vec![];
    let mut gpu_gradients = 0;
    let mut dice_gradients = 0;
    // (pair cases, of them with GPU gradients checked)
    let mut pair_gradients = (0, 0);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let loss = loss_of(case);
        let reduction = Reduction::from_name(case["reduction"].as_str().unwrap()).unwrap();
        let pair = matches!(
            loss,
            Loss::Pairs(Pairs::CosineEmbedding { .. }) | Loss::Pairs(Pairs::TripletMargin { .. })
        );
        pair_gradients.0 += pair as usize;
        let tensors = CaseTensors::of(case);
        let inputs = tensors.inputs(&loss);

        let want = num(&case["expected"]["value"]);
        let want_items: Option<Vec<f64>> = case["expected"]
            .get("none")
            .map(|v| v.as_array().unwrap().iter().map(num).collect());
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
            Ok((_, g)) => {
                let grads = case["grads"].as_object().unwrap();
                for (tensor, want) in grads {
                    let got = match tensor.as_str() {
                        "input" => Some(&g.input),
                        "target" => g.target.as_ref(),
                        "positive" => g.positive.as_ref(),
                        "negative" => g.negative.as_ref(),
                        _ => None,
                    };
                    let want: Vec<f64> = want.as_array().unwrap().iter().map(num).collect();
                    match got {
                        Some(got) if got.len() == want.len() => {
                            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                                if !tight(*g, *w) {
                                    failures.push(format!(
                                        "{name}: d/d{tensor}[{k}]: cpu {g} vs torch {w}"
                                    ));
                                }
                            }
                        }
                        _ => failures.push(format!(
                            "{name}: no cpu gradient for {tensor} of its length"
                        )),
                    }
                }
            }
        }
        // The GPU backward against the same autograd gradients, for the
        // families whose backward is on the GPU.
        match ctx().evaluate_with_grad(&loss, reduction, &inputs, Upstream::Scalar(1.0)) {
            Err(e) => failures.push(format!("{name}: gpu gradient error {e}")),
            Ok((_, g)) => {
                gpu_gradients += 1;
                dice_gradients += matches!(loss, Loss::Dice(Dice { .. })) as usize;
                pair_gradients.1 += pair as usize;
                let grads = case["grads"].as_object().unwrap();
                for (tensor, want) in grads {
                    let got = match tensor.as_str() {
                        "input" => Some(&g.input),
                        "target" => g.target.as_ref(),
                        "positive" => g.positive.as_ref(),
                        "negative" => g.negative.as_ref(),
                        _ => None,
                    };
                    let want: Vec<f64> = want.as_array().unwrap().iter().map(num).collect();
                    match got {
                        Some(got) if got.len() == want.len() => {
                            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                                if !close(*g as f64, *w, 1e-6) {
                                    failures.push(format!(
                                        "{name}: d/d{tensor}[{k}]: gpu {g} vs torch {w}"
                                    ));
                                }
                            }
                        }
                        _ => failures.push(format!(
                            "{name}: no gpu gradient for {tensor} of its length"
                        )),
                    }
                }
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
    assert!(
        failures.is_empty(),
        "{} fixture mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
