//! The GPU path: each family records its passes; `Context::evaluate` uploads
//! the inputs, submits once and reads back the scalar or the items.

mod dice;
mod pairs;
mod pointwise;
mod rows;

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use crate::context::{Context, Kernel, Pipeline, FINALIZE};
use crate::error::{Error, Result};
use crate::inputs::{plan, Geometry, Inputs};
use crate::loss::{Loss, Reduction};

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

/// A timestamp query set and the buffer its two ticks resolve into.
pub(crate) struct Timer {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
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
    pub(crate) fn scoped<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
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

    /// Two timestamp queries around the compute pass of a run, where the
    /// device has them.
    pub(crate) fn timer(&self) -> Option<Timer> {
        if !self.has_timestamps() {
            return None;
        }
        let queries = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("wgpu-loss timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-loss timestamps"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Some(Timer { queries, resolve })
    }

    /// Dispatches the job's passes in one compute pass, submits once and reads
    /// back its output. With a timer, the pass's GPU time in milliseconds comes
    /// back in the same readback (`None` if the timestamps did not advance).
    pub(crate) fn execute(
        &self,
        job: &Job,
        timer: Option<&Timer>,
    ) -> Result<(Vec<f32>, Option<f64>)> {
        let bytes = (job.output_len * 4) as u64;
        // The two u64 timestamps follow the output, 8-byte aligned.
        let stamps_at = bytes.next_multiple_of(8);
        let size = if timer.is_some() {
            stamps_at + 16
        } else {
            bytes
        };
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-loss readback"),
            size: size.max(16),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgpu-loss"),
            });
        {
            let mut cpass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wgpu-loss"),
                timestamp_writes: timer.map(|t| wgpu::ComputePassTimestampWrites {
                    query_set: &t.queries,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            for p in &job.passes {
                cpass.set_pipeline(&p.pipeline.pipeline);
                cpass.set_bind_group(0, &p.bind_group, &[]);
                cpass.dispatch_workgroups(p.groups.0, p.groups.1, 1);
            }
        }
        if bytes > 0 {
            encoder.copy_buffer_to_buffer(&job.output, 0, &staging, 0, bytes);
        }
        if let Some(t) = timer {
            encoder.resolve_query_set(&t.queries, 0..2, &t.resolve, 0);
            encoder.copy_buffer_to_buffer(&t.resolve, 0, &staging, stamps_at, 16);
        }
        self.queue.submit([encoder.finish()]);
        self.submits.fetch_add(1, Ordering::Relaxed);
        if size == 0 {
            return Ok((vec![], None));
        }
        let slice = staging.slice(..size);
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
        let out = bytemuck::cast_slice::<u8, f32>(&view[..bytes as usize]).to_vec();
        let ms = timer.and_then(|_| {
            let at = stamps_at as usize;
            let stamps: &[u64] = bytemuck::cast_slice(&view[at..at + 16]);
            let ns =
                stamps[1].checked_sub(stamps[0])? as f64 * self.queue.get_timestamp_period() as f64;
            (ns > 0.0).then_some(ns / 1e6)
        });
        drop(view);
        staging.unmap();
        Ok((out, ms))
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
        let limit = self.max_binding_elements();
        let sizes = [
            ("input", inputs.input.data.len()),
            (
                "target",
                inputs.target.map_or(0, |t| t.shape().iter().product()),
            ),
        ];
        for (name, len) in sizes {
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
            Geometry::Point(p) => pointwise::record(self, loss, reduction, inputs, p),
            Geometry::Rows(r) => rows::record(self, loss, reduction, inputs, r),
            Geometry::Pairs(p) => pairs::record(self, loss, reduction, inputs, p),
            Geometry::Dice(d) => dice::record(self, loss, reduction, inputs, d),
        })?;
        let dice = matches!(plan.geometry, Geometry::Dice(_));
        Ok(Prepared {
            ctx: self,
            job,
            timer: OnceLock::new(),
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

/// A validated loss whose inputs are on the device and whose passes are
/// recorded; see [`Context::prepare`].
pub struct Prepared<'c> {
    ctx: &'c Context,
    job: Job,
    timer: OnceLock<Option<Timer>>,
    reduction: Reduction,
    dice: bool,
    items_shape: Vec<usize>,
}

impl Prepared<'_> {
    /// Dispatches the recorded passes, submits once and reads back the result.
    pub fn run(&self) -> Result<Evaluation> {
        let (out, _) = self.ctx.scoped(|| self.ctx.execute(&self.job, None))?;
        Ok(self.evaluation(out))
    }

    /// [`Prepared::run`], also returning the GPU time of its passes in
    /// milliseconds, read from timestamp queries. `None` where the adapter has
    /// no timestamps ([`Context::has_timestamps`]) or they did not advance.
    pub fn run_timed(&self) -> Result<(Evaluation, Option<f64>)> {
        let timer = self.timer.get_or_init(|| self.ctx.timer()).as_ref();
        let (out, ms) = self.ctx.scoped(|| self.ctx.execute(&self.job, timer))?;
        Ok((self.evaluation(out), ms))
    }

    fn evaluation(&self, out: Vec<f32>) -> Evaluation {
        let items_shape = self.items_shape.clone();
        match self.reduction {
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
        }
    }

    /// Dispatches per run: the map pass and the finalize pass, or just the map pass.
    pub fn dispatches(&self) -> usize {
        self.job.passes.len()
    }
}
