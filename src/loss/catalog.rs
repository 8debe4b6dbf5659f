//! The catalog: one [`Entry`] per loss, in the order the CLI lists them.

use super::entry::{Domain, Entry, Need, Param, TargetKind, TensorName};
use super::family::{Dice, DiceMode, Pairs, Pointwise, Rows};

use Need::{Optional, Required};
use TensorName as T;

const fn p(name: &'static str, domain: Domain, help: &'static str) -> Param {
    Param { name, domain, help }
}

const IGNORE_INDEX: Param = p(
    "ignore_index",
    Domain::Any,
    "rows whose target is this class count for nothing",
);
const GAMMA: Param = p("gamma", Domain::NonNegative, "the focusing exponent");
const FULL: Param = p(
    "full",
    Domain::Any,
    "add the constant terms of the likelihood",
);

/// Every loss, in the order the CLI lists them.
pub const CATALOG: &[Entry] = &[
    Entry {
        name: "mse",
        about: "torch.nn.MSELoss",
        tensors: &[(T::Target, Required), (T::Weight, Optional)],
        grads: &[T::Input],
        target: TargetKind::Floats,
        params: &[],
        default: || Pointwise::Mse.into(),
    },
    Entry {
        name: "l1",
        about: "torch.nn.L1Loss",
        tensors: &[(T::Target, Required), (T::Weight, Optional)],
        grads: &[T::Input],
        target: TargetKind::Floats,
        params: &[],
        default: || Pointwise::L1.into(),
    },
    Entry {
        name: "huber",
        about: "torch.nn.HuberLoss",
        tensors: &[(T::Target, Required), (T::Weight, Optional)],
        grads: &[T::Input],
        target: TargetKind::Floats,
        params: &[p(
            "delta",
            Domain::Positive,
            "where the quadratic part ends [1]",
        )],
        default: || Pointwise::Huber { delta: 1.0 }.into(),
    },
    Entry {
        name: "smooth_l1",
        about: "torch.nn.SmoothL1Loss",
        tensors: &[(T::Target, Required)],
        grads: &[T::Input],
        target: TargetKind::Floats,
        params: &[p(
            "beta",
            Domain::NonNegative,
            "where the quadratic part ends [1]",
        )],
        default: || Pointwise::SmoothL1 { beta: 1.0 }.into(),
    },
    Entry {
        name: "log_cosh",
        about: "log(cosh(x - y)), as keras and optax",
        tensors: &[(T::Target, Required)],
        grads: &[T::Input],
        target: TargetKind::Floats,
        params: &[],
        default: || Pointwise::LogCosh.into(),
    },
    Entry {
        name: "quantile",
        about: "pinball loss, as pytorch-forecasting without its factor 2",
        tensors: &[(T::Target, Required)],
        grads: &[T::Input],
        target: TargetKind::Floats,
        params: &[p(
            "quantiles",
            Domain::UnitInterval,
            "comma-separated quantiles; the input's last dim holds one prediction each [0.5]",
        )],
        default: || Pointwise::Quantile { quantiles: None }.into(),
    },
    Entry {
        name: "bce",
        about: "torch.nn.BCELoss",
        tensors: &[(T::Target, Required), (T::Weight, Optional)],
        grads: &[T::Input],
        target: TargetKind::Floats,
        params: &[],
        default: || Pointwise::Bce.into(),
    },
    Entry {
        name: "bce_with_logits",
        about: "torch.nn.BCEWithLogitsLoss",
        tensors: &[
            (T::Target, Required),
            (T::Weight, Optional),
            (T::PosWeight, Optional),
        ],
        grads: &[T::Input],
        target: TargetKind::Floats,
        params: &[],
        default: || Pointwise::BceWithLogits.into(),
    },
    Entry {
        name: "sigmoid_focal",
        about: "torchvision.ops.sigmoid_focal_loss",
        tensors: &[(T::Target, Required)],
        grads: &[T::Input],
        target: TargetKind::Floats,
        params: &[
            p(
                "alpha",
                Domain::AtMostOne,
                "weight of the positives; negative disables it [0.25]",
            ),
            p("gamma", Domain::NonNegative, "the focusing exponent [2]"),
        ],
        default: || {
            Pointwise::SigmoidFocal {
                alpha: 0.25,
                gamma: 2.0,
            }
            .into()
        },
    },
    Entry {
        name: "kl_div",
        about: "torch.nn.KLDivLoss",
        tensors: &[(T::Target, Required)],
        grads: &[T::Input],
        target: TargetKind::Floats,
        params: &[p(
            "log_target",
            Domain::Any,
            "the target holds log-probabilities",
        )],
        default: || Pointwise::KlDiv { log_target: false }.into(),
    },
    Entry {
        name: "poisson_nll",
        about: "torch.nn.PoissonNLLLoss",
        tensors: &[(T::Target, Required)],
        grads: &[T::Input],
        target: TargetKind::Floats,
        params: &[
            p(
                "log_input",
                Domain::Any,
                "the input is the log of the rate [true]",
            ),
            FULL,
            p(
                "eps",
                Domain::NonNegative,
                "added to the rate before its log when log_input is false [1e-8]",
            ),
        ],
        default: || {
            Pointwise::PoissonNll {
                log_input: true,
                full: false,
                eps: 1e-8,
            }
            .into()
        },
    },
    Entry {
        name: "gaussian_nll",
        about: "torch.nn.GaussianNLLLoss",
        tensors: &[(T::Target, Required), (T::Var, Required)],
        grads: &[T::Input],
        target: TargetKind::Floats,
        params: &[
            FULL,
            p("eps", Domain::Positive, "the variance's lower clamp [1e-6]"),
        ],
        default: || {
            Pointwise::GaussianNll {
                full: false,
                eps: 1e-6,
            }
            .into()
        },
    },
    Entry {
        name: "cross_entropy",
        about: "torch.nn.CrossEntropyLoss",
        tensors: &[(T::Target, Required), (T::Weight, Optional)],
        grads: &[T::Input],
        target: TargetKind::ClassesOrFloats,
        params: &[
            p(
                "ignore_index",
                Domain::Any,
                "rows whose target is this class count for nothing [-100]",
            ),
            p(
                "label_smoothing",
                Domain::UnitInterval,
                "mass spread over all classes [0]",
            ),
        ],
        default: || {
            Rows::CrossEntropy {
                ignore_index: -100,
                label_smoothing: 0.0,
            }
            .into()
        },
    },
    Entry {
        name: "nll",
        about: "torch.nn.NLLLoss",
        tensors: &[(T::Target, Required), (T::Weight, Optional)],
        grads: &[T::Input],
        target: TargetKind::Classes,
        params: &[IGNORE_INDEX],
        default: || Rows::Nll { ignore_index: -100 }.into(),
    },
    Entry {
        name: "softmax_focal",
        about: "focal loss over a softmax, consistent with cross_entropy",
        tensors: &[(T::Target, Required), (T::Weight, Optional)],
        grads: &[T::Input],
        target: TargetKind::Classes,
        params: &[GAMMA, IGNORE_INDEX],
        default: || {
            Rows::SoftmaxFocal {
                gamma: 2.0,
                ignore_index: -100,
            }
            .into()
        },
    },
    Entry {
        name: "cosine_embedding",
        about: "torch.nn.CosineEmbeddingLoss",
        tensors: &[(T::Target, Required), (T::Labels, Optional)],
        grads: &[T::Input, T::Target],
        target: TargetKind::Floats,
        params: &[p("margin", Domain::Finite, "for dissimilar pairs [0]")],
        default: || Pairs::CosineEmbedding { margin: 0.0 }.into(),
    },
    Entry {
        name: "triplet_margin",
        about: "torch.nn.TripletMarginLoss",
        tensors: &[(T::Positive, Required), (T::Negative, Required)],
        grads: &[T::Input, T::Positive, T::Negative],
        target: TargetKind::None,
        params: &[
            p("margin", Domain::Positive, "[1]"),
            p("p", Domain::PositiveOrInf, "the norm degree [2]"),
            p(
                "eps",
                Domain::NonNegative,
                "added to the differences [1e-6]",
            ),
            p("swap", Domain::Any, "use the distance swap"),
        ],
        default: || {
            Pairs::TripletMargin {
                margin: 1.0,
                p: 2.0,
                eps: 1e-6,
                swap: false,
            }
            .into()
        },
    },
    Entry {
        name: "dice",
        about: "segmentation_models_pytorch.losses.DiceLoss",
        tensors: &[(T::Target, Required)],
        grads: &[T::Input],
        target: TargetKind::ByMode,
        params: &[
            p(
                "mode",
                Domain::Any,
                "binary, multiclass or multilabel [multiclass]",
            ),
            p("from_logits", Domain::Any, "the input holds logits [true]"),
            p(
                "smooth",
                Domain::NonNegative,
                "added to both sides of the ratio [0]",
            ),
            p(
                "eps",
                Domain::NonNegative,
                "the denominator's lower clamp [1e-7]",
            ),
            p(
                "ignore_index",
                Domain::Any,
                "pixels whose target is this class count for nothing [none]",
            ),
            p("log_loss", Domain::Any, "-log(dice) instead of 1 - dice"),
        ],
        default: || {
            Dice {
                mode: DiceMode::Multiclass,
                from_logits: true,
                smooth: 0.0,
                eps: 1e-7,
                ignore_index: None,
                log_loss: false,
            }
            .into()
        },
    },
];
