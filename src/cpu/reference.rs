//! What the float64 twin gives: values and gradients.

use crate::gradients::GradientsOf;

/// A loss evaluated in float64.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// The reduced value; for `none`, the sum of the items.
    pub value: f64,
    /// Per-item losses in `items_shape` (always computed).
    pub items: Vec<f64>,
    pub items_shape: Vec<usize>,
}

/// Gradients in float64, each in the layout of the tensor it belongs to.
pub type ReferenceGradients = GradientsOf<f64>;
