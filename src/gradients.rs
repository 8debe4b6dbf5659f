//! The gradients of one call, each in the layout of the tensor it belongs to:
//! f32 from the GPU ([`crate::Gradients`]), f64 from the CPU twin
//! ([`crate::cpu::ReferenceGradients`]).

use crate::loss::TensorName;

/// Gradients with values of type `T`.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientsOf<T> {
    /// d/d`input`: the prediction (the logits for the logit losses and for
    /// dice with `from_logits`), the anchor of `triplet_margin`, x1 of
    /// `cosine_embedding`.
    pub input: Vec<T>,
    /// x2 of `cosine_embedding`; `None` for every other loss.
    pub target: Option<Vec<T>>,
    /// `triplet_margin` only.
    pub positive: Option<Vec<T>>,
    /// `triplet_margin` only.
    pub negative: Option<Vec<T>>,
}

impl<T> GradientsOf<T> {
    /// The gradient with respect to `name`, where the loss has one (its
    /// catalog entry lists them).
    pub fn get(&self, name: TensorName) -> Option<&[T]> {
        match name {
            TensorName::Input => Some(&self.input),
            TensorName::Target => self.target.as_deref(),
            TensorName::Positive => self.positive.as_deref(),
            TensorName::Negative => self.negative.as_deref(),
            TensorName::Weight | TensorName::PosWeight | TensorName::Labels | TensorName::Var => {
                None
            }
        }
    }
}
