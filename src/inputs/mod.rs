//! Input tensors and the shape checks shared by the GPU path and the CPU
//! reference. `plan` validates a call once and describes its geometry.

mod plan;
mod tensors;

pub use plan::{plan, plan_shapes, MAX_DICE_CLASSES, MAX_EMPTY_ITEMS};
pub use tensors::{
    Broadcast, DicePlan, Geometry, Inputs, PairsPlan, Plan, PointPlan, RowsPlan, Target, Tensor,
    Upstream,
};
