//! The encode layer: a loss compiled for fixed shapes, recording into the
//! caller's command encoder on the caller's buffers.
//!
//! A family turns a plan into a `Schedule`: dispatches whose bindings name
//! *roles* (input, target, scratch, output, ...) with element ranges. Inputs
//! longer than one storage binding are cut into 256-byte-aligned slices, one
//! dispatch each, all writing partials into one scratch buffer that the final
//! pass reduces. `Evaluator::new` builds the pipelines and writes every
//! dispatch's params once; `encode` only binds and dispatches.

use std::sync::Arc;

use crate::context::{Context, Kernel, Pipeline, FINALIZE};
use crate::device::{BufferView, DeviceInputs};
use crate::error::{Error, Result};
use crate::inputs::{plan_shapes, Geometry};
use crate::loss::{Loss, Reduction};

/// What a binding reads or writes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Role {
    Input,
    Target,
    Weight,
    PosWeight,
    Labels,
    Positive,
    Negative,
    /// A small buffer the evaluator uploads itself (e.g. the quantile list).
    Owned(usize),
    /// The evaluator's scratch buffer of partials.
    Scratch,
    /// The caller's output view.
    Output,
    /// An absent optional tensor: 16 zero bytes.
    Absent,
}

/// A binding: `len` elements of `role` from element `offset` (`None`: to the end).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slice {
    pub role: Role,
    pub offset: usize,
    pub len: Option<usize>,
}

impl Slice {
    pub fn whole(role: Role) -> Slice {
        Slice {
            role,
            offset: 0,
            len: None,
        }
    }
    pub fn range(role: Role, offset: usize, len: usize) -> Slice {
        Slice {
            role,
            offset,
            len: Some(len),
        }
    }
}

pub(crate) struct Dispatch {
    pub kernel: &'static Kernel,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
    pub params: Vec<u8>,
    pub bindings: Vec<Slice>,
    pub groups: (u32, u32),
}

/// Everything a family decides once per shape.
pub(crate) struct Schedule {
    pub dispatches: Vec<Dispatch>,
    /// f32 values of scratch the dispatches share.
    pub scratch: usize,
    pub owned: Vec<Vec<f32>>,
    /// f32 values the output view must hold.
    pub output_len: usize,
}

/// Must be kept in sync with `Params` in shaders/finalize.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FinalizeParams {
    count: u32,
    mode: u32,
    divisor: f32,
    _pad: u32,
}

/// The pass that sums `count` (loss, denominator) partials from the scratch
/// and writes the reduced value to the output.
pub(crate) fn finalize(count: usize, reduction: Reduction, batch: usize) -> Dispatch {
    let (mode, divisor) = match reduction {
        Reduction::Sum | Reduction::None => (0, 0.0),
        Reduction::Mean => (1, 0.0),
        Reduction::BatchMean => (2, batch as f32),
    };
    let params = FinalizeParams {
        count: count as u32,
        mode,
        divisor,
        _pad: 0,
    };
    Dispatch {
        kernel: &FINALIZE,
        entry: "main",
        constants: vec![],
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![Slice::whole(Role::Scratch), Slice::whole(Role::Output)],
        groups: (1, 1),
    }
}

/// The element count of one slice: multiples of `align` values, at most `limit`.
pub(crate) fn chunk_len(limit: usize, align: usize) -> usize {
    (limit / align).max(1) * align
}

/// Storage offsets are 256-byte aligned: 64 f32 values.
pub(crate) const OFFSET_ALIGN: usize = 64;

/// Whole units of `size` values (rows, batch entries) per slice, of `count`
/// units in all, for bindings of at most `limit` values. All of them when
/// they fit; else a multiple of `OFFSET_ALIGN` units where that many fit, so
/// that slices of every tensor holding a fixed count per unit start aligned;
/// else fewer, and a slice may have to start up to `OFFSET_ALIGN - 1` values
/// early (see `aligned`). None: one unit does not fit.
pub(crate) fn units_per_slice(size: usize, count: usize, limit: usize) -> Option<usize> {
    let limit = limit.min(u32::MAX as usize / 2);
    let size = size.max(1);
    if count.saturating_mul(size) <= limit {
        return Some(count.max(1));
    }
    if limit / size >= OFFSET_ALIGN {
        return Some(chunk_len(limit / size, OFFSET_ALIGN));
    }
    let units = limit.saturating_sub(OFFSET_ALIGN - 1) / size;
    (units > 0).then_some(units)
}

/// `len` elements of `role` from element `start`, bound from the aligned
/// offset at or before it: the kernel skips the first `start % OFFSET_ALIGN`.
pub(crate) fn aligned(role: Role, start: usize, len: usize) -> Slice {
    let skip = start % OFFSET_ALIGN;
    Slice::range(role, start - skip, len + skip)
}

struct Step {
    pipeline: Arc<Pipeline>,
    params_offset: u64,
    params_len: u64,
    bindings: Vec<Slice>,
    groups: (u32, u32),
}

/// A loss compiled for one set of shapes: pipelines built, scratch and params
/// allocated and written. `encode` records it into a caller's encoder any
/// number of times without allocating buffers.
pub struct Evaluator<'c> {
    ctx: &'c Context,
    loss: Loss,
    reduction: Reduction,
    shapes: Vec<(&'static str, Option<Vec<usize>>)>,
    class_target: bool,
    items_shape: Vec<usize>,
    steps: Vec<Step>,
    params: wgpu::Buffer,
    scratch: wgpu::Buffer,
    owned: Vec<wgpu::Buffer>,
    absent: wgpu::Buffer,
    output_len: usize,
}

impl Context {
    /// Compiles `loss` for the shapes of `inputs` (their buffers are not read).
    pub fn evaluator(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &DeviceInputs<'_>,
    ) -> Result<Evaluator<'_>> {
        let shapes = inputs.shapes();
        let plan = plan_shapes(loss, reduction, &shapes)?;
        let max_values = (self.device.limits().max_buffer_size / 4) as usize;
        inputs.check_sizes(loss.name(), max_values)?;
        let limit = self.max_binding_elements();
        let schedule = match &plan.geometry {
            Geometry::Point(p) => super::pointwise::schedule(loss, reduction, p, limit)?,
            Geometry::Rows(r) => super::rows::schedule(loss, reduction, r, limit)?,
            Geometry::Pairs(p) => super::pairs::schedule(loss, reduction, p, limit)?,
            Geometry::Dice(d) => super::dice::schedule(loss, reduction, d, limit)?,
        };
        let align = self
            .device
            .limits()
            .min_uniform_buffer_offset_alignment
            .max(16) as usize;
        let mut params = Vec::new();
        let mut steps = Vec::new();
        for d in &schedule.dispatches {
            let pipeline = self.pipeline(d.kernel, d.entry, &d.constants)?;
            let params_offset = params.len() as u64;
            params.extend_from_slice(&d.params);
            params.resize(params.len().div_ceil(align) * align, 0);
            steps.push(Step {
                pipeline,
                params_offset,
                params_len: d.params.len() as u64,
                bindings: d.bindings.clone(),
                groups: d.groups,
            });
        }
        if schedule.scratch > max_values || schedule.output_len > max_values {
            return Err(Error::TooLarge {
                loss: loss.name(),
                name: "input",
                len: plan.items(),
                limit: max_values,
            });
        }
        self.scoped(|| {
            self.build(
                loss,
                reduction,
                inputs,
                plan.items_shape,
                schedule,
                steps,
                params,
            )
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn build<'c>(
        &'c self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &DeviceInputs<'_>,
        items_shape: Vec<usize>,
        schedule: Schedule,
        steps: Vec<Step>,
        params: Vec<u8>,
    ) -> Result<Evaluator<'c>> {
        let init = |label: &str, bytes: &[u8], usage| self.buffer_with(label, bytes, usage);
        let params = init("wgpu-loss params", &params, wgpu::BufferUsages::UNIFORM);
        let scratch = init(
            "wgpu-loss scratch",
            &vec![0u8; schedule.scratch * 4],
            wgpu::BufferUsages::STORAGE,
        );
        let owned = schedule
            .owned
            .iter()
            .map(|v| {
                init(
                    "wgpu-loss constants",
                    bytemuck::cast_slice(v),
                    wgpu::BufferUsages::STORAGE,
                )
            })
            .collect();
        let absent = init("wgpu-loss absent", &[], wgpu::BufferUsages::STORAGE);
        Ok(Evaluator {
            ctx: self,
            loss: loss.clone(),
            reduction,
            shapes: inputs
                .named()
                .map(|(n, t)| (n, t.map(|t| t.shape.to_vec())))
                .to_vec(),
            class_target: inputs.class_target,
            items_shape,
            steps,
            params,
            scratch,
            owned,
            absent,
            output_len: schedule.output_len,
        })
    }
}

impl Evaluator<'_> {
    /// f32 values the output view must hold: 1 for a reduced loss (more are
    /// optional: element 1 gets the loss sum and element 2 the denominator),
    /// the item count for `none`.
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// PyTorch's shape of the `none` result.
    pub fn items_shape(&self) -> &[usize] {
        &self.items_shape
    }

    pub fn loss(&self) -> &Loss {
        &self.loss
    }

    pub fn reduction(&self) -> Reduction {
        self.reduction
    }

    /// Dispatches recorded per `encode`.
    pub fn dispatches(&self) -> usize {
        self.steps.len()
    }

    /// Records the loss into `encoder`: reads `inputs`, writes `output`. No
    /// submit, no readback, no buffer allocation. The buffers are validated
    /// first (usage, 256-byte offsets, bounds, element counts, shapes).
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        inputs: &DeviceInputs<'_>,
        output: BufferView<'_>,
    ) -> Result<()> {
        let device = &self.ctx.device;
        inputs.validate(device)?;
        for ((name, want), (_, got)) in self.shapes.iter().zip(inputs.named()) {
            let got = got.map(|t| t.shape.to_vec());
            if *want != got {
                return Err(Error::Shape {
                    loss: self.loss.name(),
                    name,
                    expected: format!("{want:?}, the shape this evaluator was built for"),
                    actual: got.unwrap_or_default(),
                });
            }
        }
        if inputs.class_target != self.class_target {
            return Err(Error::Buffer {
                name: "target",
                problem: "class indices and float targets need different evaluators".into(),
            });
        }
        output.validate("output", device)?;
        let min = if self.output_len == 0 {
            0
        } else {
            self.output_len
        };
        if output.len < min {
            return Err(Error::Buffer {
                name: "output",
                problem: format!("holds {} values, the result needs {min}", output.len),
            });
        }
        let view = |role: Role| -> Option<BufferView<'_>> {
            match role {
                Role::Input => Some(inputs.input.view),
                Role::Target => inputs.target.map(|t| t.view),
                Role::Weight => inputs.weight.map(|t| t.view),
                Role::PosWeight => inputs.pos_weight.map(|t| t.view),
                Role::Labels => inputs.labels.map(|t| t.view),
                Role::Positive => inputs.positive.map(|t| t.view),
                Role::Negative => inputs.negative.map(|t| t.view),
                Role::Output => Some(output),
                _ => None,
            }
        };
        // A buffer of another device fails validation here, which wgpu would
        // otherwise hand to the device's uncaptured-error handler (a panic).
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut groups = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let mut entries = Vec::with_capacity(step.bindings.len() + 1);
            for (i, slice) in step.bindings.iter().enumerate() {
                let (buffer, offset, len) = match (slice.role, view(slice.role)) {
                    (Role::Scratch, _) => (&self.scratch, 0, self.scratch.size() / 4),
                    (Role::Owned(k), _) => (&self.owned[k], 0, self.owned[k].size() / 4),
                    (_, Some(v)) if v.len > 0 => (v.buffer, v.offset, v.len as u64),
                    _ => (&self.absent, 0, 4),
                };
                let start = offset + 4 * slice.offset as u64;
                let size = match slice.len {
                    Some(l) => 4 * l.max(1) as u64,
                    None => 4 * (len - slice.offset as u64).max(1),
                };
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset: start,
                        size: wgpu::BufferSize::new(size),
                    }),
                });
            }
            entries.push(wgpu::BindGroupEntry {
                binding: step.bindings.len() as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.params,
                    offset: step.params_offset,
                    size: wgpu::BufferSize::new(step.params_len),
                }),
            });
            groups.push(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("wgpu-loss"),
                layout: &step.pipeline.layout,
                entries: &entries,
            }));
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(match inputs.foreign(&output, device) {
                Some(name) => Error::Buffer {
                    name,
                    problem: "belongs to another device than this evaluator's context".into(),
                },
                None => Error::Gpu(e.to_string()),
            });
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-loss"),
            timestamp_writes: None,
        });
        for (step, bind_group) in self.steps.iter().zip(&groups) {
            pass.set_pipeline(&step.pipeline.pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(step.groups.0, step.groups.1, 1);
        }
        Ok(())
    }
}
