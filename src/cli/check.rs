//! What `wgpu-loss eval` does before it opens a GPU: the loss and its
//! parameters, the reduction, the output and gradient paths and the budget
//! ([`Request::new`]), the input files ([`load`]) and the float64 reference
//! ([`reference`]). The binary runs these, and so does [`super::check_args`]
//! for the fuzzer.

use std::path::{Path, PathBuf};

use super::args::{grad_flag, grad_owners, loss_names, EvalArgs, Files};
use super::fail::Fail;
use super::npy::Layout;
use super::source::Sources;
use crate::{cpu, DType, Inputs, Loss, Reduction, TensorName, Upstream, CATALOG};

/// How the files go through the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Read whole and evaluated in one call (with the gradients, if asked).
    Whole,
    /// Memory-mapped and streamed in chunks: the files exceed `--budget-mb`.
    Streamed,
    /// Memory-mapped and split across adapters (`--adapters all`, or
    /// `every`: each backend of a device apart), each share streamed.
    Split { every: bool },
}

/// How much of the GPU's result is checked against the float64 reference
/// (`--reference`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Check {
    /// Every chunk: the value, every item and every gradient element.
    Full,
    /// A seeded fraction of the chunks, each checked on its own (its value,
    /// items and gradients); at least one.
    Sample {
        fraction: f64,
        seed: u64,
    },
    Off,
}

impl Check {
    pub fn name(&self) -> &'static str {
        match self {
            Check::Full => "full",
            Check::Sample { .. } => "sample",
            Check::Off => "off",
        }
    }

    /// Whether the chunk of `units` (of `total` units in the batch) is
    /// checked. A sampled chunk is picked by a hash of the seed and its first
    /// unit, so the pick does not depend on how the batch was shared out
    /// between adapters or ranks; the chunk that holds a unit the seed
    /// chooses is always picked, so that at least one is.
    pub fn picks(&self, units: &std::ops::Range<usize>, total: usize) -> bool {
        match *self {
            Check::Full => true,
            Check::Off => false,
            Check::Sample { fraction, seed } => {
                let anchor = (mix(seed ^ 0x5eed) % total.max(1) as u64) as usize;
                units.contains(&anchor)
                    || (units.is_empty() && units.start == 0)
                    || (mix(seed.wrapping_add(mix(units.start as u64))) as f64)
                        < fraction * 2f64.powi(64)
            }
        }
    }
}

/// splitmix64's finaliser: a well-mixed 64-bit hash.
fn mix(v: u64) -> u64 {
    let mut z = v.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An evaluation the flags ask for, checked.
pub struct Request {
    pub loss: Loss,
    pub reduction: Reduction,
    pub files: Files,
    /// The gradients asked for, by tensor, and where they go.
    pub grads: Vec<(TensorName, PathBuf)>,
    /// Where the `none` result goes.
    pub out: Option<PathBuf>,
    pub route: Route,
    /// `--budget-mb` in bytes: what a streamed evaluation may hold on the
    /// GPU and in the reference at once.
    pub budget: u64,
    pub check: Check,
    /// `--grad-dtype f32`: gradients in f32 whatever their tensor's dtype.
    pub grads_f32: bool,
}

impl Request {
    /// How `--out` (at `path`) is laid out for items of `shape`: float32,
    /// the tensor `loss` of a `.safetensors` file.
    pub fn out_layout(&self, path: &Path, shape: &[usize]) -> Result<Layout, Fail> {
        Layout::new(path, shape, DType::F32, "loss").map_err(|e| Fail::Usage(format!("--out: {e}")))
    }

    /// How the gradient file of `wrt` (at `path`, of `shape`, the tensor
    /// handed over in `of`) is laid out: in [`grad_dtype`](Self::grad_dtype),
    /// the tensor `grad_<name>` of a `.safetensors` file.
    pub fn grad_layout(
        &self,
        wrt: TensorName,
        path: &Path,
        shape: &[usize],
        of: DType,
    ) -> Result<Layout, Fail> {
        let name = format!("grad_{}", wrt.name());
        Layout::new(path, shape, self.grad_dtype(of), &name)
            .map_err(|e| Fail::Usage(format!("--{}: {e}", grad_flag(wrt))))
    }

    /// The dtype the gradient of a tensor handed over in `of` is written in.
    pub fn grad_dtype(&self, of: DType) -> DType {
        if self.grads_f32 {
            DType::F32
        } else {
            of
        }
    }
}

impl Request {
    /// Checks everything in the flags: the loss, its parameters and the
    /// reduction; `--out` and the gradient flags against the loss and the
    /// file system; `--budget-mb`, `--adapters` and `--reference`. Reads no
    /// file but the header of a `.safetensors` one, whose chosen tensor's
    /// bytes count towards the budget.
    pub fn new(a: &EvalArgs) -> Result<Request, Fail> {
        let (loss, reduction) = loss_and_reduction(a)?;
        if let Some(out) = &a.out {
            if reduction != Reduction::None {
                return Err(Fail::Usage(format!(
                    "--out needs --reduction none (got {})",
                    reduction.name()
                )));
            }
            check_dir("out", out)?;
        }
        let grads = grad_paths(&a.grads.paths, &loss)?;
        if a.budget_mb.is_nan() || a.budget_mb <= 0.0 {
            return Err(Fail::Usage(format!(
                "--budget-mb must be > 0, got {}",
                a.budget_mb
            )));
        }
        let budget = (a.budget_mb * (1u64 << 20) as f64) as u64;
        let route = match a.adapters.as_str() {
            "all" => Route::Split { every: false },
            "every" => Route::Split { every: true },
            _ if a.files.bytes() > budget => Route::Streamed,
            _ => Route::Whole,
        };
        let check = match a.reference.as_str() {
            "sample" => {
                let f = a.reference_fraction;
                if !(f > 0.0 && f <= 1.0) {
                    return Err(Fail::Usage(format!(
                        "--reference-fraction must be in (0, 1], got {f}"
                    )));
                }
                Check::Sample {
                    fraction: f,
                    seed: a.reference_seed,
                }
            }
            "off" => Check::Off,
            _ => Check::Full,
        };
        Ok(Request {
            loss,
            reduction,
            files: a.files.clone(),
            grads,
            out: a.out.clone(),
            route,
            budget,
            check,
            grads_f32: a.grad_dtype == "f32",
        })
    }
}

/// `Loss::from_name`'s defaults overridden by the flags given.
fn build_loss(a: &EvalArgs) -> Result<Loss, Fail> {
    let mut loss = Loss::from_name(&a.loss).ok_or_else(|| {
        Fail::Usage(format!(
            "unknown loss `{}` (one of: {})",
            a.loss,
            loss_names()
        ))
    })?;
    let takes = loss.entry().params;
    for (name, text) in &a.params.given {
        let flag = name.replace('_', "-");
        if !takes.iter().any(|p| p.name == *name) {
            return Err(Fail::Usage(format!(
                "--{flag} does not apply to {}",
                loss.name()
            )));
        }
        loss.set_text(name, text.as_deref())
            .map_err(|e| Fail::Usage(format!("--{flag}: {e}")))?;
    }
    Ok(loss)
}

/// The loss and reduction the flags ask for, validated.
fn loss_and_reduction(a: &EvalArgs) -> Result<(Loss, Reduction), Fail> {
    let loss = build_loss(a)?;
    let reduction = Reduction::from_name(&a.reduction).ok_or_else(|| {
        Fail::Usage(format!(
            "unknown reduction `{}` (use none, mean, sum or batchmean)",
            a.reduction
        ))
    })?;
    loss.validate(reduction)?;
    Ok((loss, reduction))
}

/// Fails unless the directory `path` would be written in exists.
fn check_dir(flag: &str, path: &Path) -> Result<(), Fail> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Fail::Usage(format!(
            "--{flag} {}: directory {} does not exist",
            path.display(),
            dir.display()
        )))
    }
}

/// The gradients asked for, checked against the loss's catalog entry (the
/// tensors it has gradients for) and the file system.
fn grad_paths(
    asked: &[(TensorName, PathBuf)],
    loss: &Loss,
) -> Result<Vec<(TensorName, PathBuf)>, Fail> {
    for (wrt, path) in asked {
        let flag = grad_flag(*wrt);
        if !loss.entry().grads.contains(wrt) {
            let owners = grad_owners(*wrt);
            let owners = if owners.len() == CATALOG.len() {
                "every loss".to_string()
            } else {
                owners.join(", ")
            };
            return Err(Fail::Usage(format!(
                "--{flag} does not apply to {} (it is for {owners})",
                loss.name(),
            )));
        }
        check_dir(flag, path)?;
    }
    Ok(asked.to_vec())
}

/// The tensors of one evaluation, read from their files (see [`Sources`]).
pub type Loaded = Sources;

/// Reads every file (the `.npy` ones whole); messages name the flag and the
/// file.
pub fn load(loss: &Loss, files: &Files) -> Result<Loaded, Fail> {
    Sources::read(loss, files)
}

/// The float64 reference: the value, and the gradients where `grad` (with
/// an upstream of 1, as the GPU's fused call is given).
pub fn reference(
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs,
    grad: bool,
) -> Result<(cpu::Reference, Option<cpu::ReferenceGradients>), Fail> {
    Ok(if grad {
        let (r, g) = cpu::gradient(loss, reduction, inputs, Upstream::Scalar(1.0))?;
        (r, Some(g))
    } else {
        (cpu::evaluate(loss, reduction, inputs)?, None)
    })
}

#[cfg(test)]
mod tests {
    use super::Check;

    /// The sampled chunks depend on the seed and a chunk's first unit only,
    /// not on how the batch was cut into parts; the seed's anchor unit's
    /// chunk is always among them.
    #[test]
    fn sampling_is_seeded_and_never_empty() {
        let s = |seed| Check::Sample {
            fraction: 0.25,
            seed,
        };
        let picks = |c: Check, step: usize| -> Vec<usize> {
            (0..1000)
                .step_by(step)
                .filter(|&a| c.picks(&(a..(a + step).min(1000)), 1000))
                .collect()
        };
        let a = picks(s(1), 10);
        assert!(a.len() > 5 && a.len() < 50, "{a:?}");
        assert_eq!(a, picks(s(1), 10));
        assert_ne!(a, picks(s(2), 10));
        let tiny = Check::Sample {
            fraction: 1e-15,
            seed: 3,
        };
        assert_eq!(picks(tiny, 10).len(), 1);
        assert_eq!(picks(tiny, 100).len(), 1);
        assert!(Check::Full.picks(&(5..6), 10));
        assert!(!Check::Off.picks(&(5..6), 10));
    }
}
