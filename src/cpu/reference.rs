//! What the float64 twin gives: values and gradients.

use crate::loss::TensorName;

/// A loss evaluated in float64.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// The reduced value; for `none`, the sum of the items.
    pub value: f64,
    /// Per-item losses in `items_shape` (always computed).
    pub items: Vec<f64>,
    pub items_shape: Vec<usize>,
}

/// ReferenceGradients in float64, each in the layout of the tensor it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceGradients {
    /// d/d`input`: the prediction (the logits for the logit losses and for
    /// dice with `from_logits`), the anchor of `triplet_margin`, x1 of
    /// `cosine_embedding`.
    pub input: Vec<f64>,
    /// x2 of `cosine_embedding`; `None` for every other loss.
    pub target: Option<Vec<f64>>,
    /// `triplet_margin` only.
    pub positive: Option<Vec<f64>>,
    /// `triplet_margin` only.
    pub negative: Option<Vec<f64>>,
}

impl ReferenceGradients {
    /// The gradient with respect to `name`, where the loss has one.
    pub fn get(&self, name: TensorName) -> Option<&[f64]> {
        match name {
            TensorName::Input => Some(&self.input),
            TensorName::Target => self.target.as_deref(),
            TensorName::Positive => self.positive.as_deref(),
            TensorName::Negative => self.negative.as_deref(),
            _ => None,
        }
    }
}
