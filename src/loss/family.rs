//! The losses as values: one enum per kernel family, each variant a loss
//! with its typed parameters.

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
    pub const ALL: [Reduction; 4] = [
        Reduction::None,
        Reduction::Mean,
        Reduction::Sum,
        Reduction::BatchMean,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reduction::None => "none",
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
            Reduction::BatchMean => "batchmean",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
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
    pub const ALL: [DiceMode; 3] = [DiceMode::Binary, DiceMode::Multiclass, DiceMode::Multilabel];

    pub fn name(self) -> &'static str {
        match self {
            DiceMode::Binary => "binary",
            DiceMode::Multiclass => "multiclass",
            DiceMode::Multilabel => "multilabel",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A loss and its parameters. `Loss::from_name` gives the reference defaults.
#[derive(Clone, Debug, PartialEq)]
pub enum Loss {
    Pointwise(Pointwise),
    Rows(Rows),
    Pairs(Pairs),
    Dice(Dice),
}

/// Elementwise losses: item `i` reads `input[i]`, its target and any broadcast
/// tensors, and nothing else (shaders/pointwise.wgsl, src/cpu/pointwise.rs).
#[derive(Clone, Debug, PartialEq)]
pub enum Pointwise {
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
    /// `torch.nn.PoissonNLLLoss(log_input, full, eps)`.
    PoissonNll {
        log_input: bool,
        full: bool,
        eps: f32,
    },
    /// `torch.nn.GaussianNLLLoss(full, eps)`; the variance is the `var` tensor.
    GaussianNll { full: bool, eps: f32 },
}

/// Softmax-row losses over input `(N, C, d1..dK)`: one row of C logits per
/// item (shaders/rows.wgsl, src/cpu/rows.rs).
#[derive(Clone, Debug, PartialEq)]
pub enum Rows {
    /// `torch.nn.CrossEntropyLoss(weight, ignore_index, label_smoothing)`, class
    /// indices or probabilities as targets.
    CrossEntropy {
        ignore_index: i64,
        label_smoothing: f32,
    },
    /// `torch.nn.NLLLoss(weight, ignore_index)`.
    Nll { ignore_index: i64 },
    /// `w[y]·(1 − p_t)^γ·(−log p_t)`, mean over `Σ w[y]` of non-ignored rows.
    SoftmaxFocal { gamma: f32, ignore_index: i64 },
}

/// Row-vector losses over `(N, D)`: one item per row of D values
/// (shaders/pairs.wgsl, src/cpu/pairs.rs).
#[derive(Clone, Debug, PartialEq)]
pub enum Pairs {
    /// `torch.nn.CosineEmbeddingLoss(margin)`; without labels every pair is similar.
    CosineEmbedding { margin: f32 },
    /// `torch.nn.TripletMarginLoss(margin, p, eps, swap)`.
    TripletMargin {
        margin: f32,
        p: f32,
        eps: f32,
        swap: bool,
    },
}

/// `segmentation_models_pytorch.losses.DiceLoss` (shaders/dice.wgsl,
/// src/cpu/dice.rs).
#[derive(Clone, Debug, PartialEq)]
pub struct Dice {
    pub mode: DiceMode,
    pub from_logits: bool,
    pub smooth: f32,
    pub eps: f32,
    pub ignore_index: Option<i64>,
    pub log_loss: bool,
}

impl Pointwise {
    pub fn name(&self) -> &'static str {
        match self {
            Pointwise::Mse => "mse",
            Pointwise::L1 => "l1",
            Pointwise::Huber { .. } => "huber",
            Pointwise::SmoothL1 { .. } => "smooth_l1",
            Pointwise::LogCosh => "log_cosh",
            Pointwise::Quantile { .. } => "quantile",
            Pointwise::Bce => "bce",
            Pointwise::BceWithLogits => "bce_with_logits",
            Pointwise::SigmoidFocal { .. } => "sigmoid_focal",
            Pointwise::KlDiv { .. } => "kl_div",
            Pointwise::PoissonNll { .. } => "poisson_nll",
            Pointwise::GaussianNll { .. } => "gaussian_nll",
        }
    }
}

impl Rows {
    pub fn name(&self) -> &'static str {
        match self {
            Rows::CrossEntropy { .. } => "cross_entropy",
            Rows::Nll { .. } => "nll",
            Rows::SoftmaxFocal { .. } => "softmax_focal",
        }
    }

    /// Every row loss has one.
    pub fn ignore_index(&self) -> i64 {
        match self {
            Rows::CrossEntropy { ignore_index, .. }
            | Rows::Nll { ignore_index }
            | Rows::SoftmaxFocal { ignore_index, .. } => *ignore_index,
        }
    }
}

impl Pairs {
    pub fn name(&self) -> &'static str {
        match self {
            Pairs::CosineEmbedding { .. } => "cosine_embedding",
            Pairs::TripletMargin { .. } => "triplet_margin",
        }
    }
}

impl Dice {
    pub fn name(&self) -> &'static str {
        "dice"
    }
}

impl From<Pointwise> for Loss {
    fn from(l: Pointwise) -> Loss {
        Loss::Pointwise(l)
    }
}
impl From<Rows> for Loss {
    fn from(l: Rows) -> Loss {
        Loss::Rows(l)
    }
}
impl From<Pairs> for Loss {
    fn from(l: Pairs) -> Loss {
        Loss::Pairs(l)
    }
}
impl From<Dice> for Loss {
    fn from(l: Dice) -> Loss {
        Loss::Dice(l)
    }
}
