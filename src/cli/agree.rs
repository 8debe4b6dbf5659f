//! Whether the GPU's result agrees with the float64 reference, within the
//! tolerance the tests hold every kernel to. A disagreement is the CLI's
//! failure (exit code 3), never a number printed beside another.

use crate::cpu::{Reference, ReferenceGradients};
use crate::{Evaluation, Gradients, TensorName};

/// Multiplies the GPU's value before the comparison: set only by tests, to
/// force a disagreement and check that the CLI fails on it.
pub const SKEW_VAR: &str = "WGPU_LOSS_TEST_SKEW_GPU";

/// |gpu − cpu| ≤ 1e-4·|cpu| + `abs`; NaN agrees only with NaN, an infinity
/// only with itself.
pub fn agrees(gpu: f64, cpu: f64, abs: f64) -> bool {
    if gpu.is_nan() || cpu.is_nan() {
        return gpu.is_nan() && cpu.is_nan();
    }
    if gpu.is_infinite() || cpu.is_infinite() {
        return gpu == cpu;
    }
    (gpu - cpu).abs() <= 1e-4 * cpu.abs() + abs
}

/// The relative difference, for messages.
fn relative(gpu: f64, cpu: f64) -> f64 {
    (gpu - cpu).abs() / cpu.abs().max(f64::MIN_POSITIVE)
}

/// The GPU's value after the test knob, if a test set it.
pub fn skewed(value: f64) -> f64 {
    match std::env::var(SKEW_VAR)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        Some(k) => value * k,
        None => value,
    }
}

/// Checks the value, every item of a `none` result and every gradient
/// element; the message names the loss, both numbers and where they differ.
pub fn check(
    loss: &str,
    gpu: &Evaluation,
    cpu: &Reference,
    grads: Option<(&Gradients, &ReferenceGradients)>,
) -> Result<(), String> {
    // A sum of items rounds in proportion to their magnitudes.
    let scale: f64 = cpu.items.iter().map(|v| v.abs()).sum::<f64>() * 1e-6;
    let value = skewed(gpu.value);
    if !agrees(value, cpu.value, 1e-6 + scale) {
        return Err(format!(
            "{loss}: the GPU gives {value}, the float64 reference {} (relative difference {:.1e})",
            cpu.value,
            relative(value, cpu.value)
        ));
    }
    if let Some(items) = &gpu.items {
        for (i, (&g, &c)) in items.iter().zip(&cpu.items).enumerate() {
            if !agrees(g as f64, c, 1e-6) {
                return Err(format!(
                    "{loss}: item {i}: the GPU gives {g}, the float64 reference {c} (relative difference {:.1e})",
                    relative(g as f64, c)
                ));
            }
        }
    }
    if let Some((g, c)) = grads {
        for t in TensorName::ALL {
            let (Some(g), Some(c)) = (g.get(t), c.get(t)) else {
                continue;
            };
            // Gradient elements are compared against the largest one's scale.
            let big = c
                .iter()
                .filter(|v| v.is_finite())
                .fold(0.0f64, |m, v| m.max(v.abs()));
            for (i, (&gv, &cv)) in g.iter().zip(c).enumerate() {
                if !agrees(gv as f64, cv, 1e-6 + 1e-5 * big) {
                    return Err(format!(
                        "{loss}: d/d{}[{i}]: the GPU gives {gv}, the float64 reference {cv} (relative difference {:.1e})",
                        t.name(),
                        relative(gv as f64, cv)
                    ));
                }
            }
        }
    }
    Ok(())
}
