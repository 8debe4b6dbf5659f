//! The loss catalog: names, parameters, defaults and their domains.
//!
//! Each variant carries the parameters of one loss. Its snake_case name is the
//! CLI name, the WGSL function and the CPU twin (`cpu::<family>::<name>`).

use crate::error::{Error, Result};

/// How per-item losses become the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Per-item losses in PyTorch's output shape.
    None,
    /// The loss's own mean (weighted means and ignored rows as in the reference).
    Mean,
    Sum,
    /// `kl_div` only: the sum divided by the batch size `input.shape[0]`.
    BatchMean,
}

impl Reduction {
    pub const NAMES: [&'static str; 4] = ["none", "mean", "sum", "batchmean"];

    pub fn name(self) -> &'static str {
        match self {
            Reduction::None => "none",
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
            Reduction::BatchMean => "batchmean",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Reduction::None,
            "mean" => Reduction::Mean,
            "sum" => Reduction::Sum,
            "batchmean" => Reduction::BatchMean,
            _ => return None,
        })
    }
}

/// smp's Dice modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiceMode {
    /// One channel; target a 0/1 map of the input's shape.
    Binary,
    /// Input `(N, C, ...)` scored through a softmax; target class indices `(N, ...)`.
    Multiclass,
    /// Input `(N, C, ...)`, each channel through a sigmoid; target 0/1 of the input's shape.
    Multilabel,
}

impl DiceMode {
    pub fn name(self) -> &'static str {
        match self {
            DiceMode::Binary => "binary",
            DiceMode::Multiclass => "multiclass",
            DiceMode::Multilabel => "multilabel",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "binary" => DiceMode::Binary,
            "multiclass" => DiceMode::Multiclass,
            "multilabel" => DiceMode::Multilabel,
            _ => return None,
        })
    }
}

/// A loss and its parameters. `Loss::from_name` gives the reference defaults.
#[derive(Clone, Debug, PartialEq)]
pub enum Loss {
    /// `torch.nn.MSELoss`; optional per-element weight: mean = Σw·l / Σw.
    Mse,
    /// `torch.nn.L1Loss`; optional per-element weight: mean = Σw·l / Σw.
    L1,
    /// `torch.nn.HuberLoss(delta)`; optional weight: mean = (w·l).mean().
    Huber { delta: f32 },
    /// `torch.nn.SmoothL1Loss(beta)`; beta = 0 is L1.
    SmoothL1 { beta: f32 },
    /// log(cosh(x − y)), mean over all elements (keras / optax).
    LogCosh,
    /// Pinball loss without pytorch-forecasting's factor 2. With a list of Q
    /// quantiles the input is `(..., Q)` against a target `(...)`; without, q = 0.5.
    Quantile { quantiles: Option<Vec<f32>> },
    /// `torch.nn.BCELoss(weight)`: logs clamped at −100.
    Bce,
    /// `torch.nn.BCEWithLogitsLoss(weight, pos_weight)`.
    BceWithLogits,
    /// `torchvision.ops.sigmoid_focal_loss`; alpha < 0 disables the α weighting.
    SigmoidFocal { alpha: f32, gamma: f32 },
    /// `torch.nn.KLDivLoss(log_target)`; input is log-probabilities.
    KlDiv { log_target: bool },
    /// `torch.nn.CrossEntropyLoss(weight, ignore_index, label_smoothing)`, class
    /// indices or probabilities as targets.
    CrossEntropy {
        ignore_index: i64,
        label_smoothing: f32,
    },
    /// `torch.nn.NLLLoss(weight, ignore_index)`.
    Nll { ignore_index: i64 },
    /// w[y]·(1 − p_t)^γ·(−log p_t), mean over Σ w[y] of non-ignored rows.
    SoftmaxFocal { gamma: f32, ignore_index: i64 },
    /// `torch.nn.CosineEmbeddingLoss(margin)`; without labels every pair is similar.
    CosineEmbedding { margin: f32 },
    /// `torch.nn.TripletMarginLoss(margin, p, eps, swap)`.
    TripletMargin {
        margin: f32,
        p: f32,
        eps: f32,
        swap: bool,
    },
    /// `segmentation_models_pytorch.losses.DiceLoss`.
    Dice {
        mode: DiceMode,
        from_logits: bool,
        smooth: f32,
        eps: f32,
        ignore_index: Option<i64>,
        log_loss: bool,
    },
}

impl Loss {
    pub const NAMES: [&'static str; 16] = [
        "mse",
        "l1",
        "huber",
        "smooth_l1",
        "log_cosh",
        "quantile",
        "bce",
        "bce_with_logits",
        "sigmoid_focal",
        "kl_div",
        "cross_entropy",
        "nll",
        "softmax_focal",
        "cosine_embedding",
        "triplet_margin",
        "dice",
    ];

    /// The loss with the reference's default parameters.
    pub fn from_name(name: &str) -> Option<Loss> {
        Some(match name {
            "mse" => Loss::Mse,
            "l1" => Loss::L1,
            "huber" => Loss::Huber { delta: 1.0 },
            "smooth_l1" => Loss::SmoothL1 { beta: 1.0 },
            "log_cosh" => Loss::LogCosh,
            "quantile" => Loss::Quantile { quantiles: None },
            "bce" => Loss::Bce,
            "bce_with_logits" => Loss::BceWithLogits,
            "sigmoid_focal" => Loss::SigmoidFocal {
                alpha: 0.25,
                gamma: 2.0,
            },
            "kl_div" => Loss::KlDiv { log_target: false },
            "cross_entropy" => Loss::CrossEntropy {
                ignore_index: -100,
                label_smoothing: 0.0,
            },
            "nll" => Loss::Nll { ignore_index: -100 },
            "softmax_focal" => Loss::SoftmaxFocal {
                gamma: 2.0,
                ignore_index: -100,
            },
            "cosine_embedding" => Loss::CosineEmbedding { margin: 0.0 },
            "triplet_margin" => Loss::TripletMargin {
                margin: 1.0,
                p: 2.0,
                eps: 1e-6,
                swap: false,
            },
            "dice" => Loss::Dice {
                mode: DiceMode::Multiclass,
                from_logits: true,
                smooth: 0.0,
                eps: 1e-7,
                ignore_index: None,
                log_loss: false,
            },
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::L1 => "l1",
            Loss::Huber { .. } => "huber",
            Loss::SmoothL1 { .. } => "smooth_l1",
            Loss::LogCosh => "log_cosh",
            Loss::Quantile { .. } => "quantile",
            Loss::Bce => "bce",
            Loss::BceWithLogits => "bce_with_logits",
            Loss::SigmoidFocal { .. } => "sigmoid_focal",
            Loss::KlDiv { .. } => "kl_div",
            Loss::CrossEntropy { .. } => "cross_entropy",
            Loss::Nll { .. } => "nll",
            Loss::SoftmaxFocal { .. } => "softmax_focal",
            Loss::CosineEmbedding { .. } => "cosine_embedding",
            Loss::TripletMargin { .. } => "triplet_margin",
            Loss::Dice { .. } => "dice",
        }
    }

    /// Checks the parameters against their domains (the reference's checks,
    /// plus: no NaN anywhere).
    pub fn validate(&self, reduction: Reduction) -> Result<()> {
        let loss = self.name();
        let param = |name: &'static str, expected: &'static str, value: String| {
            Err(Error::Param {
                loss,
                name,
                expected,
                value,
            })
        };
        if reduction == Reduction::BatchMean && !matches!(self, Loss::KlDiv { .. }) {
            return Err(Error::Reduction {
                loss,
                reduction: "batchmean",
                supported: "none, mean or sum",
            });
        }
        match self {
            Loss::Huber { delta } if !(*delta > 0.0 && delta.is_finite()) => {
                param("delta", "finite and > 0", delta.to_string())
            }
            Loss::SmoothL1 { beta } if !(*beta >= 0.0 && beta.is_finite()) => {
                param("beta", "finite and >= 0", beta.to_string())
            }
            Loss::Quantile { quantiles: Some(q) } => {
                if q.is_empty() {
                    return param("quantiles", "a non-empty list", "[]".into());
                }
                match q.iter().find(|q| !(**q >= 0.0 && **q <= 1.0)) {
                    Some(bad) => param("quantiles", "values in [0, 1]", bad.to_string()),
                    None => Ok(()),
                }
            }
            Loss::SigmoidFocal { alpha, gamma } => {
                if !(*alpha <= 1.0) {
                    return param("alpha", "<= 1 (negative disables it)", alpha.to_string());
                }
                check_gamma(loss, *gamma)
            }
            Loss::CrossEntropy {
                label_smoothing, ..
            } if !(*label_smoothing >= 0.0 && *label_smoothing <= 1.0) => {
                param("label_smoothing", "in [0, 1]", label_smoothing.to_string())
            }
            Loss::SoftmaxFocal { gamma, .. } => check_gamma(loss, *gamma),
            Loss::CosineEmbedding { margin } if !margin.is_finite() => {
                param("margin", "finite", margin.to_string())
            }
            Loss::TripletMargin { margin, p, eps, .. } => {
                if !(*margin > 0.0 && margin.is_finite()) {
                    return param("margin", "finite and > 0", margin.to_string());
                }
                if !(*p > 0.0) || p.is_nan() {
                    return param("p", "> 0 (inf for the max norm)", p.to_string());
                }
                if !(*eps >= 0.0 && eps.is_finite()) {
                    return param("eps", "finite and >= 0", eps.to_string());
                }
                Ok(())
            }
            Loss::Dice { smooth, eps, .. } => {
                if !(*smooth >= 0.0 && smooth.is_finite()) {
                    return param("smooth", "finite and >= 0", smooth.to_string());
                }
                if !(*eps >= 0.0 && eps.is_finite()) {
                    return param("eps", "finite and >= 0", eps.to_string());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn check_gamma(loss: &'static str, gamma: f32) -> Result<()> {
    if gamma >= 0.0 && gamma.is_finite() {
        Ok(())
    } else {
        Err(Error::Param {
            loss,
            name: "gamma",
            expected: "finite and >= 0",
            value: gamma.to_string(),
        })
    }
}
