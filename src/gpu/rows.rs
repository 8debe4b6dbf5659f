//! Host side of `shaders/rows.wgsl`.

use super::Job;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::inputs::{Inputs, RowsPlan};
use crate::loss::{Loss, Reduction};

pub(super) fn record(
    _ctx: &Context,
    loss: &Loss,
    _reduction: Reduction,
    _inputs: &Inputs<'_>,
    _plan: &RowsPlan,
) -> Result<Job> {
    Err(Error::Gpu(format!(
        "{} is not implemented on the GPU yet",
        loss.name()
    )))
}
