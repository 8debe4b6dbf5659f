//! Input tensors and the shape checks shared by the GPU path and the CPU
//! reference. `plan` validates a call once and describes its geometry.

mod plan;
mod tensors;

pub use plan::{plan, plan_shapes, MAX_DICE_CLASSES, MAX_EMPTY_ITEMS};
pub use tensors::{
    bf16, f16, Broadcast, DType, DicePlan, Floats, Geometry, Inputs, PairsPlan, Plan, PointPlan,
    RowsPlan, Target, Tensor, Upstream, Widths,
};
