//! Whether the GPU's result agrees with the float64 reference, within the
//! tolerance the tests hold every kernel to. A disagreement is the CLI's
//! failure (exit code 3), never a number printed beside another.
//!
//! The checks take a result whole ([`check`]) or a part at a time, as a
//! streamed, split or distributed evaluation produces it: [`items`] per part,
//! [`GradCheck`] gathering every part's gradients (its tolerance depends on
//! the largest reference gradient of the whole tensor, known only at the
//! end), [`value`] once the parts' sums are merged. Both ways give the same
//! verdict.

use crate::cpu::{Reference, ReferenceGradients};
use crate::{Evaluation, Gradients, TensorName};

/// Multiplies the GPU's value before the comparison: set only by tests, to
/// force a disagreement and check that the CLI fails on it.
pub const SKEW_VAR: &str = "WGPU_LOSS_TEST_SKEW_GPU";

/// |gpu − cpu| ≤ 1e-4·|cpu| + `abs`; NaN agrees only with NaN, an infinity
/// only with itself.
pub fn agrees(gpu: f64, cpu: f64, abs: f64) -> bool {
    excess(gpu, cpu, abs) <= 0.0
}

/// How far |gpu − cpu| exceeds 1e-4·|cpu| + `abs` (≤ 0: agrees); infinite
/// where NaN meets a number or an infinity anything else.
fn excess(gpu: f64, cpu: f64, abs: f64) -> f64 {
    if gpu.is_nan() || cpu.is_nan() {
        return if gpu.is_nan() && cpu.is_nan() {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    if gpu.is_infinite() || cpu.is_infinite() {
        return if gpu == cpu {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    (gpu - cpu).abs() - (1e-4 * cpu.abs() + abs)
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

/// Checks a value; `abs_items` is Σ|items| of the reference reduced as the
/// value is (divided by a mean's denominator): a sum rounds in proportion to
/// its terms' magnitudes. `what` names the value in the message ("" for the
/// whole call's).
pub fn value(loss: &str, what: &str, gpu: f64, cpu: f64, abs_items: f64) -> Result<(), String> {
    let gpu = skewed(gpu);
    if agrees(gpu, cpu, 1e-6 + abs_items * 1e-6) {
        return Ok(());
    }
    Err(format!(
        "{loss}: {what}the GPU gives {gpu}, the float64 reference {cpu} (relative difference {:.1e})",
        relative(gpu, cpu)
    ))
}

/// Checks a part's `none` items; `first` is the index of its first item in
/// the whole result.
pub fn items(loss: &str, first: usize, gpu: &[f32], cpu: &[f64]) -> Result<(), String> {
    if gpu.len() != cpu.len() {
        return Err(format!(
            "{loss}: the GPU gives {} items from item {first}, the float64 reference {}",
            gpu.len(),
            cpu.len()
        ));
    }
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        if !agrees(g as f64, c, 1e-6) {
            return Err(format!(
                "{loss}: item {}: the GPU gives {g}, the float64 reference {c} (relative difference {:.1e})",
                first + i,
                relative(g as f64, c)
            ));
        }
    }
    Ok(())
}

/// The element of one gradient that is furthest outside its tolerance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Worst {
    /// |gpu − cpu| − (1e-4·|cpu| + 1e-6): it fails if above 1e-5 times the
    /// largest finite |cpu| of the tensor (infinite for NaN against a number).
    pub excess: f64,
    pub index: usize,
    pub gpu: f32,
    pub cpu: f64,
}

/// Gradient checks gathered over parts: an element agrees if |gpu − cpu| ≤
/// 1e-4·|cpu| + 1e-6 + 1e-5·max|cpu| over its whole tensor. Per tensor it
/// keeps that maximum and the worst element, so parts can be added in any
/// order and merged across threads or ranks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GradCheck {
    /// Per tensor of [`TensorName::ALL`]: (largest finite |cpu|, worst element).
    pub tensors: [(f64, Option<Worst>); 8],
    /// The largest |gpu − cpu| of every element: 0 where both are NaN or the
    /// same infinity, NaN once only one is NaN.
    pub max_abs_diff: f64,
}

impl GradCheck {
    /// Adds one part: `first` is the index of its first element in each
    /// whole gradient (the same for every tensor of the part).
    pub fn add(&mut self, first: usize, gpu: &Gradients, cpu: &ReferenceGradients) {
        for (t, slot) in TensorName::ALL.iter().zip(&mut self.tensors) {
            let (Some(g), Some(c)) = (gpu.get(*t), cpu.get(*t)) else {
                continue;
            };
            let big = c
                .iter()
                .filter(|v| v.is_finite())
                .fold(0.0f64, |m, v| m.max(v.abs()));
            slot.0 = slot.0.max(big);
            let mut worst = slot.1;
            for (i, (&gv, &cv)) in g.iter().zip(c).enumerate() {
                let d = if gv as f64 == cv || (gv.is_nan() && cv.is_nan()) {
                    0.0
                } else {
                    (gv as f64 - cv).abs()
                };
                // NaN, once there, stays: max would drop it.
                self.max_abs_diff = if d.is_nan() || self.max_abs_diff.is_nan() {
                    f64::NAN
                } else {
                    self.max_abs_diff.max(d)
                };
                let e = excess(gv as f64, cv, 1e-6);
                if worst.is_none_or(|w| e > w.excess) {
                    worst = Some(Worst {
                        excess: e,
                        index: first + i,
                        gpu: gv,
                        cpu: cv,
                    });
                }
            }
            // A length mismatch is a disagreement of its own.
            if g.len() != c.len() {
                worst = Some(Worst {
                    excess: f64::INFINITY,
                    index: first + g.len().min(c.len()),
                    gpu: f32::NAN,
                    cpu: f64::NAN,
                });
            }
            slot.1 = worst;
        }
    }

    /// Folds in another set of parts.
    pub fn merge(&mut self, other: &GradCheck) {
        self.max_abs_diff = if self.max_abs_diff.is_nan() || other.max_abs_diff.is_nan() {
            f64::NAN
        } else {
            self.max_abs_diff.max(other.max_abs_diff)
        };
        for (a, b) in self.tensors.iter_mut().zip(&other.tensors) {
            a.0 = a.0.max(b.0);
            if let Some(w) = b.1 {
                if a.1.is_none_or(|x| w.excess > x.excess) {
                    a.1 = Some(w);
                }
            }
        }
    }

    /// The verdict over every part added.
    pub fn verdict(&self, loss: &str) -> Result<(), String> {
        for (t, (big, worst)) in TensorName::ALL.iter().zip(&self.tensors) {
            let Some(w) = worst else { continue };
            if w.excess > 1e-5 * big {
                return Err(format!(
                    "{loss}: d/d{}[{}]: the GPU gives {}, the float64 reference {} (relative difference {:.1e})",
                    t.name(),
                    w.index,
                    w.gpu,
                    w.cpu,
                    relative(w.gpu as f64, w.cpu)
                ));
            }
        }
        Ok(())
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
    // The reduction's factor (1 / the denominator of a mean) is what the
    // value is of the items' sum.
    let sum: f64 = cpu.items.iter().sum();
    let factor = (cpu.value / sum).abs();
    let factor = if factor.is_finite() { factor } else { 1.0 };
    let abs: f64 = cpu.items.iter().map(|v| v.abs()).sum::<f64>() * factor;
    value(loss, "", gpu.value, cpu.value, abs)?;
    if let Some(g) = &gpu.items {
        items(loss, 0, g, &cpu.items)?;
    }
    if let Some((g, c)) = grads {
        let mut check = GradCheck::default();
        check.add(0, g, c);
        check.verdict(loss)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grads(input: Vec<f32>) -> Gradients {
        Gradients {
            input,
            target: None,
            positive: None,
            negative: None,
        }
    }

    fn reference(input: Vec<f64>) -> ReferenceGradients {
        ReferenceGradients {
            input,
            target: None,
            positive: None,
            negative: None,
        }
    }

    /// Parts added one by one, in any order, give the whole tensor's verdict:
    /// an element off by 5e-6 passes beside a reference gradient of 1
    /// elsewhere in the tensor (in another part) and fails without it.
    #[test]
    fn parts_give_the_whole_verdict() {
        let gpu = vec![1.0f32, 0.0, 5e-6, 0.0];
        for (big, passes) in [(1.0, true), (0.0, false)] {
            let cpu = vec![big, 0.0, 0.0, 0.0];
            let mut gpu = gpu.clone();
            gpu[0] = big as f32;
            let mut whole = GradCheck::default();
            whole.add(0, &grads(gpu.clone()), &reference(cpu.clone()));
            let mut parts = GradCheck::default();
            let mut second = GradCheck::default();
            second.add(2, &grads(gpu[2..].to_vec()), &reference(cpu[2..].to_vec()));
            parts.merge(&second);
            parts.add(0, &grads(gpu[..2].to_vec()), &reference(cpu[..2].to_vec()));
            assert_eq!(whole, parts);
            assert_eq!(whole.verdict("mse").is_ok(), passes);
            let msg = parts.verdict("mse").err().unwrap_or_default();
            assert_eq!(msg.contains("d/dinput[2]"), !passes, "{msg}");
        }
    }

    #[test]
    fn nan_agrees_only_with_nan() {
        let mut c = GradCheck::default();
        c.add(
            0,
            &grads(vec![f32::NAN, 1.0]),
            &reference(vec![f64::NAN, 1.0]),
        );
        assert!(c.verdict("l1").is_ok());
        c.add(2, &grads(vec![f32::NAN]), &reference(vec![1.0]));
        assert!(c.verdict("l1").unwrap_err().contains("d/dinput[2]"));
        assert!(items("l1", 5, &[1.0, f32::NAN], &[1.0, 0.5])
            .unwrap_err()
            .contains("item 6"));
        assert!(items("l1", 0, &[f32::INFINITY], &[f64::INFINITY]).is_ok());
    }
}
