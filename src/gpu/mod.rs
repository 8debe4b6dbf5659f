//! The GPU path: each family records its passes; `Context::evaluate` uploads
//! the inputs, submits once and reads back the scalar or the items.

mod dice;
pub(crate) mod evaluator;
mod pairs;
mod pointwise;
mod rows;
mod stream;

use std::borrow::Cow;
use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use crate::context::{Context, Kernel, Pipeline, FINALIZE};
use crate::device::{BufferView, DeviceInputs, DeviceTensor};
use crate::error::{Error, Result};
use crate::inputs::{plan, Geometry, Inputs, Plan, Target};
use crate::loss::{Loss, Reduction};
use evaluator::Evaluator;

pub(crate) const WG: usize = 256;
const MAX_GROUPS: usize = 65_535;

/// A loss evaluated on the GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// The reduced value; for `none`, the sum of the items (accumulated in f64).
    pub value: f64,
    /// Per-item losses for `none`, in `items_shape`.
    pub items: Option<Vec<f32>>,
    pub items_shape: Vec<usize>,
}

/// Must be kept in sync with `Params` in shaders/finalize.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct FinalizeParams {
    count: u32,
    mode: u32,
    divisor: f32,
    _pad: u32,
}

/// How the finalize pass turns (Σ loss, Σ denominator) into the value.
#[derive(Clone, Copy)]
pub(crate) enum Divide {
    Not,
    BySummedDenominator,
    By(f32),
}

pub(crate) struct Pass {
    pipeline: Arc<Pipeline>,
    bind_group: wgpu::BindGroup,
    groups: (u32, u32),
}

/// Passes to run in order, and the buffer holding the result.
pub(crate) struct Job {
    pub passes: Vec<Pass>,
    pub output: wgpu::Buffer,
    pub output_len: usize,
}

/// Workgroup grid for `groups` workgroups: x up to 65 535, then y.
pub(crate) fn grid(groups: usize) -> (u32, u32) {
    let groups = groups.max(1);
    let x = groups.min(MAX_GROUPS);
    (x as u32, groups.div_ceil(x) as u32)
}

impl Context {
    pub(crate) fn upload<T: Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        // Zero-sized bindings are invalid: absent and empty tensors bind 16 zero bytes.
        let contents: &[u8] = if bytes.is_empty() { &[0u8; 16] } else { bytes };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            })
    }

    pub(crate) fn storage(&self, label: &str, floats: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (floats.max(4) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    pub(crate) fn pass<P: Pod>(
        &self,
        kernel: &Kernel,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        buffers: &[&wgpu::Buffer],
        params: &P,
        groups: (u32, u32),
    ) -> Result<Pass> {
        let pipeline = self.pipeline(kernel, entry, constants)?;
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgpu-loss params"),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: buffers.len() as u32,
            resource: uniform.as_entire_binding(),
        });
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name),
            layout: &pipeline.layout,
            entries: &entries,
        });
        Ok(Pass {
            pipeline,
            bind_group,
            groups,
        })
    }

    /// The finalize pass over `count` (loss, denominator) partials; returns the
    /// 4-float result buffer [value, sum, denominator, 0].
    pub(crate) fn finalize(
        &self,
        partials: &wgpu::Buffer,
        count: usize,
        divide: Divide,
    ) -> Result<(Pass, wgpu::Buffer)> {
        let (mode, divisor) = match divide {
            Divide::Not => (0, 0.0),
            Divide::BySummedDenominator => (1, 0.0),
            Divide::By(d) => (2, d),
        };
        let result = self.storage("wgpu-loss result", 4);
        let params = FinalizeParams {
            count: count as u32,
            mode,
            divisor,
            _pad: 0,
        };
        let pass = self.pass(
            &FINALIZE,
            "main",
            &[],
            &[partials, &result],
            &params,
            (1, 1),
        )?;
        Ok((pass, result))
    }

    /// Runs `f` inside validation and out-of-memory error scopes, so that wgpu
    /// errors reach the caller as `Error::Gpu` instead of a panic elsewhere.
    fn scoped<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let invalid = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let out = f();
        let oom = pollster::block_on(oom.pop());
        let invalid = pollster::block_on(invalid.pop());
        match oom.or(invalid) {
            Some(e) => Err(Error::Gpu(e.to_string())),
            None => out,
        }
    }

    /// A family's map pass (absent when there is nothing to map) followed,
    /// for a reduced call, by the finalize pass over its `partials`. `none`
    /// returns the map pass's `items` directly.
    pub(crate) fn map_then_finalize(
        &self,
        map: Option<Pass>,
        out: wgpu::Buffer,
        items: usize,
        partials: usize,
        reduction: Reduction,
        batch: usize,
    ) -> Result<Job> {
        let divide = match reduction {
            Reduction::None => {
                let passes = map.into_iter().collect();
                return Ok(Job {
                    passes,
                    output: out,
                    output_len: items,
                });
            }
            Reduction::Sum => Divide::Not,
            Reduction::Mean => Divide::BySummedDenominator,
            Reduction::BatchMean => Divide::By(batch as f32),
        };
        let count = if map.is_some() { partials } else { 0 };
        let (fin, result) = self.finalize(&out, count, divide)?;
        let passes = map.into_iter().chain([fin]).collect();
        Ok(Job {
            passes,
            output: result,
            output_len: 4,
        })
    }

    /// Submits `encoder` with a copy of `len` f32 from `output` appended, waits,
    /// and reads them back.
    pub(crate) fn read_after(
        &self,
        mut encoder: wgpu::CommandEncoder,
        output: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<f32>> {
        let bytes = (len * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-loss readback"),
            size: bytes.max(16),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if bytes > 0 {
            encoder.copy_buffer_to_buffer(output, 0, &staging, 0, bytes);
        }
        self.queue.submit([encoder.finish()]);
        if bytes == 0 {
            return Ok(vec![]);
        }
        let slice = staging.slice(..bytes);
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            tx.send(r).ok();
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        match pollster::block_on(rx.receive()) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Error::Gpu(format!("reading back the result: {e}"))),
            None => return Err(Error::Gpu("the readback was dropped".into())),
        }
        let view = slice
            .get_mapped_range()
            .map_err(|e| Error::Gpu(format!("mapping the result: {e}")))?;
        let out = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgpu-loss"),
            })
    }

    fn run(&self, job: &Job) -> Result<Vec<f32>> {
        let mut encoder = self.encoder();
        {
            let mut cpass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wgpu-loss"),
                timestamp_writes: None,
            });
            for p in &job.passes {
                cpass.set_pipeline(&p.pipeline.pipeline);
                cpass.set_bind_group(0, &p.bind_group, &[]);
                cpass.dispatch_workgroups(p.groups.0, p.groups.1, 1);
            }
        }
        self.read_after(encoder, &job.output, job.output_len)
    }

    /// Uploads validated host tensors as device tensors: class indices as
    /// i32 (an ignore_index beyond i32 maps to i32::MIN, which no class
    /// equals), broadcasts that had to be expanded in their expanded shape.
    fn upload_inputs(&self, loss: &Loss, inputs: &Inputs<'_>, plan: &Plan<'_>) -> Uploads {
        let mut tensors = Vec::new();
        let up = |name: &'static str, data: &[f32], shape: &[usize]| {
            (name, self.upload(name, data), shape.to_vec())
        };
        let mut add = |t| tensors.push(t);
        add(up("input", inputs.input.data, inputs.input.shape));
        let mut class_target = false;
        match inputs.target {
            Some(Target::Float(t)) => add(up("target", t.data, t.shape)),
            Some(Target::Class { data, shape }) => {
                let ignore = ignore_index(loss);
                let classes: Vec<i32> = data
                    .iter()
                    .map(|&c| {
                        if Some(c) == ignore {
                            ignore_i32(c)
                        } else {
                            c as i32
                        }
                    })
                    .collect();
                add(("target", self.upload("target", &classes), shape.to_vec()));
                class_target = true;
            }
            None => {}
        }
        let point = match &plan.geometry {
            Geometry::Point(p) => Some(p),
            _ => None,
        };
        let broadcasts = [
            (
                "weight",
                inputs.weight,
                point.and_then(|p| p.weight.as_ref()),
            ),
            (
                "pos_weight",
                inputs.pos_weight,
                point.and_then(|p| p.aux.as_ref()),
            ),
        ];
        for (name, t, b) in broadcasts {
            match (t, b) {
                (Some(_), Some(b)) if matches!(b.data, Cow::Owned(_)) => {
                    add(up(name, &b.data, inputs.input.shape))
                }
                (Some(t), _) => add(up(name, t.data, t.shape)),
                _ => {}
            }
        }
        for (name, t) in [
            ("labels", inputs.labels),
            ("positive", inputs.positive),
            ("negative", inputs.negative),
        ] {
            if let Some(t) = t {
                add(up(name, t.data, t.shape));
            }
        }
        Uploads {
            tensors,
            class_target,
        }
    }

    /// Validates the call, uploads the inputs and records its passes, so that
    /// [`Prepared::run`] can evaluate it any number of times with the data
    /// already on the device.
    pub fn prepare(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &Inputs<'_>,
    ) -> Result<Prepared<'_>> {
        let plan = plan(loss, reduction, inputs)?;
        if let Geometry::Point(_) = plan.geometry {
            return self.scoped(|| {
                let uploads = self.upload_inputs(loss, inputs, &plan);
                let evaluator = self.evaluator(loss, reduction, &uploads.device_inputs())?;
                let output = self.storage("wgpu-loss output", evaluator.output_len().max(3));
                Ok(Prepared {
                    ctx: self,
                    work: Work::Encoded {
                        evaluator,
                        uploads,
                        output,
                    },
                    reduction,
                    dice: false,
                    items_shape: plan.items_shape,
                })
            });
        }
        let limit = self.max_binding_elements();
        let target_len = inputs.target.map_or(0, |t| t.shape().iter().product());
        for (name, len) in [("input", inputs.input.data.len()), ("target", target_len)] {
            if len > limit {
                return Err(Error::TooLarge {
                    loss: loss.name(),
                    name,
                    len,
                    limit,
                });
            }
        }
        let job = self.scoped(|| match &plan.geometry {
            Geometry::Point(_) => unreachable!("on the encode layer"),
            Geometry::Rows(r) => rows::record(self, loss, reduction, inputs, r),
            Geometry::Pairs(p) => pairs::record(self, loss, reduction, inputs, p),
            Geometry::Dice(d) => dice::record(self, loss, reduction, inputs, d),
        })?;
        let dice = matches!(plan.geometry, Geometry::Dice(_));
        Ok(Prepared {
            ctx: self,
            work: Work::Legacy(job),
            reduction,
            dice,
            items_shape: plan.items_shape,
        })
    }

    /// Evaluates `loss` on the GPU: one submit, one readback of the scalar (or
    /// of the items for `Reduction::None`).
    pub fn evaluate(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &Inputs<'_>,
    ) -> Result<Evaluation> {
        self.prepare(loss, reduction, inputs)?.run()
    }
}

/// Host tensors uploaded for the slice API: (role, buffer, shape).
struct Uploads {
    tensors: Vec<(&'static str, wgpu::Buffer, Vec<usize>)>,
    class_target: bool,
}

impl Uploads {
    fn device_inputs(&self) -> DeviceInputs<'_> {
        let get = |name: &str| {
            self.tensors
                .iter()
                .find(|t| t.0 == name)
                .map(|(_, buffer, shape)| {
                    DeviceTensor::new(BufferView::new(buffer, 0, shape.iter().product()), shape)
                })
        };
        let mut d = DeviceInputs::new(get("input").expect("the input is always uploaded"));
        d.target = get("target");
        d.class_target = self.class_target;
        d.weight = get("weight");
        d.pos_weight = get("pos_weight");
        d.labels = get("labels");
        d.positive = get("positive");
        d.negative = get("negative");
        d
    }
}

fn ignore_index(loss: &Loss) -> Option<i64> {
    match loss {
        Loss::CrossEntropy { ignore_index, .. }
        | Loss::Nll { ignore_index }
        | Loss::SoftmaxFocal { ignore_index, .. } => Some(*ignore_index),
        Loss::Dice { ignore_index, .. } => *ignore_index,
        _ => None,
    }
}

/// ignore_index as the kernels compare it against i32 class indices.
pub(crate) fn ignore_i32(ignore_index: i64) -> i32 {
    i32::try_from(ignore_index).unwrap_or(i32::MIN)
}

enum Work<'c> {
    /// Families not yet on the encode layer.
    Legacy(Job),
    Encoded {
        evaluator: Evaluator<'c>,
        uploads: Uploads,
        output: wgpu::Buffer,
    },
}

/// A validated loss whose inputs are on the device and whose passes are
/// recorded; see [`Context::prepare`].
pub struct Prepared<'c> {
    ctx: &'c Context,
    work: Work<'c>,
    reduction: Reduction,
    dice: bool,
    items_shape: Vec<usize>,
}

impl Prepared<'_> {
    /// Dispatches the recorded passes, submits once and reads back the result.
    pub fn run(&self) -> Result<Evaluation> {
        let out = self.ctx.scoped(|| match &self.work {
            Work::Legacy(job) => self.ctx.run(job),
            Work::Encoded {
                evaluator,
                uploads,
                output,
            } => {
                let mut encoder = self.ctx.encoder();
                evaluator.encode(
                    &mut encoder,
                    &uploads.device_inputs(),
                    BufferView::whole(output),
                )?;
                self.ctx.read_after(encoder, output, evaluator.output_len())
            }
        })?;
        let items_shape = self.items_shape.clone();
        Ok(match self.reduction {
            Reduction::None => {
                let items = if self.dice { out[4..].to_vec() } else { out };
                Evaluation {
                    value: items.iter().map(|v| *v as f64).sum(),
                    items: Some(items),
                    items_shape,
                }
            }
            _ => Evaluation {
                value: out[0] as f64,
                items: None,
                items_shape,
            },
        })
    }

    /// Dispatches per run.
    pub fn dispatches(&self) -> usize {
        match &self.work {
            Work::Legacy(job) => job.passes.len(),
            Work::Encoded { evaluator, .. } => evaluator.dispatches(),
        }
    }
}
