//! What the catalog says about a loss besides its formula: the tensors it
//! reads, its gradients, its parameters and their domains.

use super::family::{DiceMode, Loss};

/// The tensors of a call, by their one name (the `Inputs` field, the CLI
/// flag `--<name>` with `-` for `_`, the error messages, the gradient keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorName {
    /// The prediction (the anchor for `triplet_margin`, x1 for `cosine_embedding`).
    Input,
    /// Floats or class indices (x2 for `cosine_embedding`).
    Target,
    Weight,
    PosWeight,
    Labels,
    Positive,
    Negative,
    /// `gaussian_nll`'s variance.
    Var,
}

impl TensorName {
    pub const ALL: [TensorName; 8] = [
        TensorName::Input,
        TensorName::Target,
        TensorName::Weight,
        TensorName::PosWeight,
        TensorName::Labels,
        TensorName::Positive,
        TensorName::Negative,
        TensorName::Var,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TensorName::Input => "input",
            TensorName::Target => "target",
            TensorName::Weight => "weight",
            TensorName::PosWeight => "pos_weight",
            TensorName::Labels => "labels",
            TensorName::Positive => "positive",
            TensorName::Negative => "negative",
            TensorName::Var => "var",
        }
    }
}

/// Whether a loss requires a tensor or takes it when given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
}

/// What a loss's target holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    Floats,
    /// Class indices (int).
    Classes,
    /// Class indices or floats (cross_entropy's probabilities).
    ClassesOrFloats,
    /// Dice: class indices in multiclass mode, floats otherwise.
    ByMode,
    /// No target tensor (triplet_margin).
    None,
}

/// The values a parameter accepts. NaN is in none of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Anything (booleans, indices, modes).
    Any,
    Finite,
    /// Finite and > 0.
    Positive,
    /// Finite and >= 0.
    NonNegative,
    /// In [0, 1] (each value, for a list; a list must not be empty).
    UnitInterval,
    /// <= 1 (negative values disable the term).
    AtMostOne,
    /// > 0, infinity allowed.
    PositiveOrInf,
}

impl Domain {
    pub fn accepts(self, v: f64) -> bool {
        match self {
            Domain::Any => true,
            Domain::Finite => v.is_finite(),
            Domain::Positive => v > 0.0 && v.is_finite(),
            Domain::NonNegative => v >= 0.0 && v.is_finite(),
            Domain::UnitInterval => (0.0..=1.0).contains(&v),
            Domain::AtMostOne => v <= 1.0,
            Domain::PositiveOrInf => v > 0.0,
        }
    }

    /// What the error message says is expected.
    pub fn expected(self) -> &'static str {
        match self {
            Domain::Any => "any value",
            Domain::Finite => "finite",
            Domain::Positive => "finite and > 0",
            Domain::NonNegative => "finite and >= 0",
            Domain::UnitInterval => "values in [0, 1]",
            Domain::AtMostOne => "<= 1 (negative disables it)",
            Domain::PositiveOrInf => "> 0 (inf for the max norm)",
        }
    }
}

/// One parameter of a loss: the field of its variant, in the same order.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// The field's name; the CLI flag is `--` and this with `-` for `_`.
    pub name: &'static str,
    pub domain: Domain,
    pub help: &'static str,
}

impl Param {
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }
}

/// A parameter's value, read from or written to a loss generically.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    F32(f32),
    Bool(bool),
    Int(i64),
    /// An index that may be absent (dice's ignore_index).
    OptInt(Option<i64>),
    /// A list that may be absent (quantile's quantiles).
    List(Option<Vec<f32>>),
    Mode(DiceMode),
}

/// A loss's declaration: everything about it that is not a formula.
#[derive(Debug)]
pub struct Entry {
    pub name: &'static str,
    /// The reference it follows, in a few words.
    pub about: &'static str,
    /// The tensors besides `input` that it reads.
    pub tensors: &'static [(TensorName, Need)],
    /// The tensors it has gradients for (the fused call writes these).
    pub grads: &'static [TensorName],
    pub target: TargetKind,
    /// Its parameters, in the order of the variant's fields.
    pub params: &'static [Param],
    /// The loss with the reference's defaults.
    pub default: fn() -> Loss,
}
