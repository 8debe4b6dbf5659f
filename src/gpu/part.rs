//! The gradient of a whole call with respect to one part of its batch, from
//! the part's values and the whole call's merged sums: how a batch streamed
//! in chunks, split across adapters or across MPI ranks gets its gradients a
//! part at a time.

use super::dice::{schedule as dice_schedule, DiceParams, DiceVariant};
use super::plan::{Role, Schedule, Slice};
use super::Gradients;
use crate::context::Context;
use crate::device::{BufferView, DeviceUpstream, GradViews};
use crate::error::{Error, Result};
use crate::inputs::{plan, DicePlan, Geometry, Inputs, Upstream};
use crate::loss::{Loss, Reduction, Rows};
use crate::partial::Partial;

impl Context {
    /// The gradients of the whole call's value (reduced with `reduction`,
    /// upstream `g`) with respect to `part`'s tensors, where `whole` holds
    /// the merged sums of the whole batch (a [`Partial`] of every part:
    /// merged locally, or all-reduced across ranks); with the part's `none`
    /// items (`None` for Dice, whose items are the classes). Concatenated in
    /// batch order, the parts' gradients are the whole call's.
    ///
    /// Every loss but Dice is evaluated as `none` with each item's upstream
    /// scaled as the reduction scales it, in f32 as the kernels scale it
    /// (`g / denom` for `mean`, `g / batch` for `batchmean`): where the
    /// denominator is exact in f32 (a count, weights whose sum is exact) the
    /// gradients are bit for bit those of one call over the whole batch.
    /// Dice's per-class coefficients come from the merged sums (in f64, see
    /// [`Partial::dice_coefficients`]) and its `gradient` pass alone runs on
    /// the part.
    pub fn gradient_of_part(
        &self,
        loss: &Loss,
        reduction: Reduction,
        part: &Inputs<'_>,
        whole: &Partial,
        g: f32,
    ) -> Result<(Option<Vec<f32>>, Gradients)> {
        if !matches!(loss, Loss::Dice(_)) {
            // Validates `whole` against the loss and the reduction.
            whole.item_upstream(loss, reduction, g as f64)?;
            let s = match reduction {
                Reduction::None | Reduction::Sum => g,
                Reduction::Mean
                    if whole.denom == 0.0
                        && matches!(loss, Loss::Rows(Rows::SoftmaxFocal { .. })) =>
                {
                    0.0
                }
                Reduction::Mean => g / whole.denom as f32,
                Reduction::BatchMean => g / whole.batch as f32,
            };
            let (evaluation, grads) =
                self.evaluate_with_grad(loss, Reduction::None, part, Upstream::Scalar(s))?;
            return Ok((evaluation.items, grads));
        }
        let coefficients: Vec<f32> = whole
            .dice_coefficients(loss, reduction, g as f64)?
            .into_iter()
            .flat_map(|(a, b)| [a as f32, b as f32])
            .collect();
        let plan = plan(loss, Reduction::Sum, part)?;
        let Geometry::Dice(d) = &plan.geometry else {
            unreachable!("a dice loss plans as dice");
        };
        if coefficients.len() != 2 * d.classes {
            return Err(Error::Partial(format!(
                "dice: the whole batch's partial holds {} classes, the part {}",
                coefficients.len() / 2,
                d.classes
            )));
        }
        let n = part.input.data.len();
        if n == 0 {
            return Ok((None, gradients(vec![])));
        }
        self.scoped(|| {
            let uploads = self.upload_inputs(loss, part, &plan);
            let inputs = uploads.device_inputs();
            let custom = |geometry: &Geometry, limit: usize| match geometry {
                Geometry::Dice(d) => coefficient_schedule(d, limit, coefficients.clone()),
                _ => unreachable!("a dice loss plans as dice"),
            };
            let evaluator = self.compile(loss, Reduction::Sum, &inputs, true, Some(&custom))?;
            let result = self.storage("wgpu-loss part gradient", n);
            let unused = self.storage("wgpu-loss part output", 4);
            let mut encoder = self.encoder();
            evaluator.encode_with_grad(
                &mut encoder,
                &inputs,
                DeviceUpstream::Scalar(g),
                BufferView::new(&unused, 0, 4),
                &GradViews::new(BufferView::new(&result, 0, n)),
            )?;
            let input = self.read_after(encoder, &result, n)?;
            Ok((None, gradients(input)))
        })
    }
}

fn gradients(input: Vec<f32>) -> Gradients {
    Gradients {
        input,
        target: None,
        positive: None,
        negative: None,
    }
}

/// Dice's `gradient` passes as its own schedule lays them out, reading each
/// class's two coefficients from `coefficients` (an owned buffer) instead of
/// from what its `finish` pass would compute from these pixels alone.
fn coefficient_schedule(plan: &DicePlan, limit: usize, coefficients: Vec<f32>) -> Result<Schedule> {
    let mut schedule = dice_schedule(
        Reduction::Sum,
        plan,
        limit,
        true,
        1,
        DiceVariant::ClassGroups,
    )?;
    schedule.dispatches.retain(|d| d.entry == "gradient");
    for d in &mut schedule.dispatches {
        let mut params: DiceParams = bytemuck::pod_read_unaligned(&d.params);
        params.coef_at = 0;
        d.params = bytemuck::bytes_of(&params).to_vec();
        // The gradient pass reads its coefficients through binding 2 ("side").
        d.bindings[2] = Slice::whole(Role::Owned(0));
    }
    schedule.scratch = 0;
    schedule.owned = vec![coefficients];
    schedule.output_len = 0;
    Ok(schedule)
}
