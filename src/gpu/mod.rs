//! The GPU path: each family records its passes; `Context::evaluate` uploads
//! the inputs, submits once and reads back the scalar or the items.

#[cfg(test)]
mod contract;
pub(crate) mod dice;
pub(crate) mod evaluator;
mod pairs;
mod part;
mod plan;
pub(crate) mod pointwise;
pub(crate) mod rows;
#[cfg(test)]
mod schedule_tests;
pub(crate) mod stream;
mod tune;
pub(crate) mod variant;

use crate::loss::Dice;

use bytemuck::Pod;

use crate::context::Context;
use crate::device::{BufferView, DeviceInputs, DeviceTensor, DeviceUpstream, GradViews};
use crate::error::{Error, Result};
use crate::inputs::{plan, DType, Geometry, Inputs, Plan, Target, Tensor, Upstream};
use crate::loss::{Loss, Reduction, TensorName};
use evaluator::Evaluator;
// The benchmark (`cli::bench`) sizes its copy kernel as the losses are sized.
use crate::gradients::GradientsOf;
pub(crate) use plan::Caps;
#[cfg(feature = "cli")]
pub(crate) use plan::{grid, WG};
use plan::{ignore_i32, Wrt, OFFSET_ALIGN};
pub(crate) use tune::Tuner;
pub use tune::{TuneCache, TUNE_MAX_ELEMENTS, TUNE_MIN_ELEMENTS};
pub use variant::Variant;

/// A loss evaluated on the GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// The reduced value; for `none`, the sum of the items (accumulated in f64).
    pub value: f64,
    /// Per-item losses for `none`, in `items_shape`.
    pub items: Option<Vec<f32>>,
    pub items_shape: Vec<usize>,
}

/// Gradients computed on the GPU in f32, each in the layout of the tensor it
/// belongs to (the f64 twin's are [`crate::cpu::ReferenceGradients`]).
pub type Gradients = GradientsOf<f32>;

/// A timestamp query set and the buffer its two ticks resolve into.
pub(crate) struct Timer {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
}

impl Timer {
    pub(crate) fn writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        }
    }
}

/// A readback buffer kept across calls. Its lock is held from a call's submit
/// to its unmap, so calls sharing it take turns: a mapped buffer may not be
/// the target of another submitted copy.
pub(crate) struct Staging(std::sync::Mutex<Option<wgpu::Buffer>>);

/// Bytes a readback of `len` f32 takes, and where the two timestamps go
/// after them (8-byte aligned) when timed.
fn readback_size(len: usize, timed: bool) -> (u64, u64, u64) {
    let bytes = (len * 4) as u64;
    let stamps_at = bytes.next_multiple_of(8);
    let size = if timed { stamps_at + 16 } else { bytes };
    (bytes, stamps_at, size)
}

impl Context {
    /// A buffer holding `bytes`, padded to 16 bytes (zero-sized bindings are
    /// invalid). Written through the queue rather than `create_buffer_init`,
    /// which panics when the device is gone.
    pub(crate) fn buffer_with(
        &self,
        label: &str,
        bytes: &[u8],
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let size = bytes.len().max(16).next_multiple_of(4) as u64;
        let buffer = self.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if !bytes.len().is_multiple_of(4) {
            // Queue writes are whole 4-byte words (an odd count of halves).
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().next_multiple_of(4), 0);
            self.queue.write_buffer(&buffer, 0, &padded);
        } else if !bytes.is_empty() {
            self.queue.write_buffer(&buffer, 0, bytes);
        }
        buffer
    }

    pub(crate) fn upload<T: Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        self.buffer_with(
            label,
            bytemuck::cast_slice(data),
            wgpu::BufferUsages::STORAGE,
        )
    }

    pub(crate) fn storage(&self, label: &str, floats: usize) -> wgpu::Buffer {
        self.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (floats.max(4) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// Runs `f` inside validation and out-of-memory error scopes, so that wgpu
    /// errors reach the caller as `Error::Gpu` instead of a panic elsewhere.
    pub(crate) fn scoped<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let lost = || self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(why) = lost() {
            return Err(Error::DeviceLost(why));
        }
        let invalid = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let out = f();
        let oom = pollster::block_on(oom.pop());
        let invalid = pollster::block_on(invalid.pop());
        if oom.is_some() || invalid.is_some() || out.is_err() {
            // Lets a pending device-lost callback run before the error is named.
            let _ = self.device.poll(wgpu::PollType::Poll);
        }
        if let Some(why) = lost() {
            return Err(Error::DeviceLost(why));
        }
        match (oom, invalid) {
            (Some(e), _) => Err(Error::OutOfMemory(e.to_string())),
            (_, Some(e)) => Err(Error::gpu("validation", e)),
            _ => {
                if let Err(e @ Error::Gpu { .. }) = &out {
                    let why = e.to_string();
                    // A failed wait or mapping after the device went away.
                    if why.contains("lost") || why.contains("destroyed") {
                        *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
                        return Err(Error::DeviceLost(why.clone()));
                    }
                }
                out
            }
        }
    }

    /// Two timestamp queries around a compute pass, where the device has them.
    pub(crate) fn timer(&self) -> Option<Timer> {
        if !self.has_timestamps() {
            return None;
        }
        let queries = self.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("wgpu-loss timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolve = self.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-loss timestamps"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Some(Timer { queries, resolve })
    }

    /// Submits `encoder` with a copy of `len` f32 from `output` appended, waits,
    /// and reads them back.
    pub(crate) fn read_after(
        &self,
        encoder: wgpu::CommandEncoder,
        output: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<f32>> {
        self.read_timed(encoder, output, len, None).map(|r| r.0)
    }

    /// `read_after`, also resolving `timer`'s two ticks (written by the
    /// encoder's compute pass) into milliseconds in the same readback; `None`
    /// if the timestamps did not advance. Reads through a staging buffer made
    /// for this call.
    pub(crate) fn read_timed(
        &self,
        encoder: wgpu::CommandEncoder,
        output: &wgpu::Buffer,
        len: usize,
        timer: Option<&Timer>,
    ) -> Result<(Vec<f32>, Option<f64>)> {
        let staging = self.staging_buffer(readback_size(len, timer.is_some()).2);
        self.read_through(encoder, output, len, timer, &staging)
    }

    fn staging_buffer(&self, size: u64) -> wgpu::Buffer {
        self.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-loss readback"),
            size: size.max(16),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A staging buffer for readbacks of up to `len` f32, with room for the
    /// timestamps where the device has them.
    pub(crate) fn staging(&self, len: usize) -> Staging {
        let size = readback_size(len, self.has_timestamps()).2;
        Staging(std::sync::Mutex::new(Some(self.staging_buffer(size))))
    }

    /// `read_timed` through `staging`'s buffer (a larger one replaces it if
    /// it is too small). A failed call drops the buffer, whatever state its
    /// mapping was left in, and the next call makes a new one.
    pub(crate) fn read_staged(
        &self,
        encoder: wgpu::CommandEncoder,
        output: &wgpu::Buffer,
        len: usize,
        timer: Option<&Timer>,
        staging: &Staging,
    ) -> Result<(Vec<f32>, Option<f64>)> {
        let size = readback_size(len, timer.is_some()).2;
        let mut kept = staging.0.lock().unwrap_or_else(|e| e.into_inner());
        let buffer = match kept.take() {
            Some(b) if b.size() >= size => b,
            _ => self.staging_buffer(size),
        };
        let out = self.read_through(encoder, output, len, timer, &buffer)?;
        *kept = Some(buffer);
        Ok(out)
    }

    /// Submits `encoder` with the copies into `staging` appended, waits, and
    /// reads `staging` back, leaving it unmapped.
    fn read_through(
        &self,
        mut encoder: wgpu::CommandEncoder,
        output: &wgpu::Buffer,
        len: usize,
        timer: Option<&Timer>,
        staging: &wgpu::Buffer,
    ) -> Result<(Vec<f32>, Option<f64>)> {
        let (bytes, stamps_at, size) = readback_size(len, timer.is_some());
        if bytes > 0 {
            encoder.copy_buffer_to_buffer(output, 0, staging, 0, bytes);
        }
        if let Some(t) = timer {
            encoder.resolve_query_set(&t.queries, 0..2, &t.resolve, 0);
            encoder.copy_buffer_to_buffer(&t.resolve, 0, staging, stamps_at, 16);
        }
        self.queue.submit([encoder.finish()]);
        self.submits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
            .map_err(|e| Error::gpu("waiting for the GPU", e))?;
        match pollster::block_on(rx.receive()) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Error::gpu("reading back the result", e)),
            None => return Err(Error::gpu_msg("the readback was dropped")),
        }
        let view = slice
            .get_mapped_range()
            .map_err(|e| Error::gpu("mapping the result", e))?;
        let out = bytemuck::cast_slice::<u8, f32>(&view[..bytes as usize]).to_vec();
        let ms = timer.and_then(|_| {
            let ticks: &[u64] =
                bytemuck::cast_slice(&view[stamps_at as usize..stamps_at as usize + 16]);
            let period = self.queue.get_timestamp_period() as f64;
            (ticks[1] > ticks[0]).then(|| (ticks[1] - ticks[0]) as f64 * period / 1e6)
        });
        drop(view);
        staging.unmap();
        Ok((out, ms))
    }

    pub(crate) fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgpu-loss"),
            })
    }

    /// Uploads validated host tensors as device tensors: class indices as
    /// i32 (an ignore_index beyond i32 maps to i32::MIN, which no class
    /// equals), broadcasts that had to be expanded in their expanded shape.
    fn upload_inputs(&self, loss: &Loss, inputs: &Inputs<'_>, plan: &Plan<'_>) -> Uploads {
        let mut tensors = Vec::new();
        let up = |name: &'static str, bytes: &[u8], shape: &[usize], dtype: DType| {
            let buffer = self.buffer_with(name, bytes, wgpu::BufferUsages::STORAGE);
            (name, buffer, shape.to_vec(), dtype)
        };
        let floats = |name, t: Tensor<'_>| up(name, t.data.bytes(), t.shape, t.dtype());
        let mut add = |t| tensors.push(t);
        add(floats("input", inputs.input));
        let mut class_target = false;
        match inputs.target {
            Some(Target::Float(t)) => add(floats("target", t)),
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
                add(up(
                    "target",
                    bytemuck::cast_slice(&classes),
                    shape,
                    DType::F32,
                ));
                class_target = true;
            }
            None => {}
        }
        // A pointwise broadcast the plan had to expand is uploaded expanded.
        let expanded = match &plan.geometry {
            Geometry::Point(p) => vec![
                (Some(TensorName::Weight), p.weight.as_ref()),
                (p.aux_tensor, p.aux.as_ref()),
            ],
            Geometry::Rows(_) | Geometry::Pairs(_) | Geometry::Dice(_) => vec![],
        };
        for name in TensorName::ALL {
            if matches!(name, TensorName::Input | TensorName::Target) {
                continue;
            }
            let Some(t) = inputs.float(name) else {
                continue;
            };
            let b = expanded
                .iter()
                .find(|(n, _)| *n == Some(name))
                .and_then(|(_, b)| *b);
            match b {
                // Back in the tensor's dtype (exactly: the values came from it).
                Some(b) if b.expanded => add(up(
                    name.name(),
                    &narrow(&b.data, t.dtype()),
                    inputs.input.shape,
                    t.dtype(),
                )),
                _ => add(floats(name.name(), t)),
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
        self.scoped(|| {
            let uploads = self.upload_inputs(loss, inputs, &plan);
            let evaluator = self.evaluator(loss, reduction, &uploads.device_inputs())?;
            let output = self.storage("wgpu-loss output", evaluator.output_len().max(3));
            Prepared::new(
                self,
                evaluator,
                uploads,
                output,
                reduction,
                plan.items_shape,
                None,
            )
        })
    }

    /// [`Context::prepare`] for the fused value and gradient call: each run
    /// records the forward and the backward for `upstream` (see
    /// [`Upstream`]). [`Prepared::run`] reads back the value only, the
    /// gradients staying on the device; [`Prepared::run_with_grad`] also reads
    /// them.
    pub fn prepare_with_grad(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &Inputs<'_>,
        upstream: Upstream<'_>,
    ) -> Result<Prepared<'_>> {
        let plan = plan(loss, reduction, inputs)?;
        upstream.check(reduction, plan.items())?;
        self.scoped(|| {
            let uploads = self.upload_inputs(loss, inputs, &plan);
            let evaluator = self.grad_evaluator(loss, reduction, &uploads.device_inputs())?;
            // The output, then each gradient 256-byte aligned, in one buffer.
            let output_len = evaluator.output_len().max(3);
            let mut end = output_len;
            let mut places = Vec::new();
            for (wrt, len) in evaluator.grad_lens() {
                let at = end.next_multiple_of(OFFSET_ALIGN);
                places.push((wrt, at, len));
                end = at + len;
            }
            let values = match upstream {
                Upstream::Scalar(g) => vec![g],
                Upstream::Items(g) => g.to_vec(),
            };
            Prepared::new(
                self,
                evaluator,
                uploads,
                self.storage("wgpu-loss result", end),
                reduction,
                plan.items_shape,
                Some(GradPlaces {
                    upstream: self.upload("upstream", &values),
                    upstream_len: values.len(),
                    output_len,
                    places,
                    end,
                }),
            )
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

impl Context {
    /// Evaluates `loss` and its gradients as PyTorch autograd gives them for
    /// `upstream` (see [`Upstream`]): one fused forward and backward, one
    /// submit, one readback of the value and every gradient.
    pub fn evaluate_with_grad(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &Inputs<'_>,
        upstream: Upstream<'_>,
    ) -> Result<(Evaluation, Gradients)> {
        let plan = plan(loss, reduction, inputs)?;
        upstream.check(reduction, plan.items())?;
        self.scoped(|| {
            let uploads = self.upload_inputs(loss, inputs, &plan);
            let device_inputs = uploads.device_inputs();
            let evaluator = self.grad_evaluator(loss, reduction, &device_inputs)?;
            // The output and each gradient in one buffer, 256-byte aligned.
            let output_len = evaluator.output_len();
            let mut end = output_len;
            let mut places = Vec::new();
            for (wrt, len) in evaluator.grad_lens() {
                let at = end.next_multiple_of(OFFSET_ALIGN);
                places.push((wrt, at, len));
                end = at + len;
            }
            let result = self.storage("wgpu-loss result", end);
            let view = |wrt: Wrt| {
                places
                    .iter()
                    .find(|p| p.0 == wrt)
                    .map(|&(_, at, len)| BufferView::new(&result, 4 * at as u64, len))
            };
            let mut grads = GradViews::new(view(Wrt::Input).expect("every loss has d/dinput"));
            grads.target = view(Wrt::Target);
            grads.positive = view(Wrt::Positive);
            grads.negative = view(Wrt::Negative);
            let items;
            let upstream = match upstream {
                Upstream::Scalar(g) => DeviceUpstream::Scalar(g),
                Upstream::Items(g) => {
                    items = self.upload("upstream", g);
                    DeviceUpstream::Buffer(BufferView::new(&items, 0, g.len()))
                }
            };
            let mut encoder = self.encoder();
            evaluator.encode_with_grad(
                &mut encoder,
                &device_inputs,
                upstream,
                BufferView::new(&result, 0, output_len),
                &grads,
            )?;
            let out = self.read_timed(encoder, &result, end, None)?.0;
            let part = |wrt: Wrt| {
                places
                    .iter()
                    .find(|p| p.0 == wrt)
                    .map(|&(_, at, len)| out[at..at + len].to_vec())
            };
            let evaluation = match reduction {
                Reduction::None => {
                    let items = out[..output_len].to_vec();
                    Evaluation {
                        value: items.iter().map(|v| *v as f64).sum(),
                        items: Some(items),
                        items_shape: plan.items_shape.clone(),
                    }
                }
                _ => Evaluation {
                    value: out[0] as f64,
                    items: None,
                    items_shape: plan.items_shape.clone(),
                },
            };
            let gradients = Gradients {
                input: part(Wrt::Input).unwrap_or_default(),
                target: part(Wrt::Target),
                positive: part(Wrt::Positive),
                negative: part(Wrt::Negative),
            };
            Ok((evaluation, gradients))
        })
    }
}

/// Host tensors uploaded for the slice API: (role, buffer, shape).
struct Uploads {
    tensors: Vec<(&'static str, wgpu::Buffer, Vec<usize>, DType)>,
    class_target: bool,
}

/// f32 values as the bytes of `dtype` values (round to nearest even).
pub(crate) fn narrow(values: &[f32], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::F32 => bytemuck::cast_slice(values).to_vec(),
        DType::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_bits().to_ne_bytes())
            .collect(),
        DType::Bf16 => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_bits().to_ne_bytes())
            .collect(),
    }
}

impl Uploads {
    fn device_inputs(&self) -> DeviceInputs<'_> {
        let get = |name: &str| {
            self.tensors
                .iter()
                .find(|t| t.0 == name)
                .map(|(_, buffer, shape, dtype)| {
                    let view = BufferView::new(buffer, 0, shape.iter().product());
                    DeviceTensor::new(view, shape).with_dtype(*dtype)
                })
        };
        let mut d = DeviceInputs::new(get("input").expect("the input is always uploaded"));
        for name in TensorName::ALL {
            if let Some(t) = get(name.name()) {
                d = d.with(name, t);
            }
        }
        d.class_target = self.class_target;
        d
    }
}

fn ignore_index(loss: &Loss) -> Option<i64> {
    match loss {
        Loss::Rows(rows) => Some(rows.ignore_index()),
        Loss::Dice(Dice { ignore_index, .. }) => *ignore_index,
        Loss::Pointwise(_) | Loss::Pairs(_) => None,
    }
}

/// Where a prepared fused call keeps its upstream and writes its gradients.
struct GradPlaces {
    upstream: wgpu::Buffer,
    upstream_len: usize,
    /// Values of the output view, at the start of the result buffer.
    output_len: usize,
    /// (tensor, first value, length) of each gradient in the result buffer.
    places: Vec<(Wrt, usize, usize)>,
    end: usize,
}

/// A validated loss whose inputs are on the device and whose passes are
/// recorded; see [`Context::prepare`] and [`Context::prepare_with_grad`].
///
/// Its bind groups and its readback buffer are made when it is prepared,
/// its timestamp queries on the first [`run_timed`](Self::run_timed): after
/// that, a run creates no buffer, bind group or query set (see
/// [`Context::gpu_objects_created`]). Runs take `&self` and may come from
/// several threads: they take turns on the readback buffer, each holding it
/// from its submit until its result is read.
pub struct Prepared<'c> {
    ctx: &'c Context,
    evaluator: Evaluator<'c>,
    /// The bind groups hold these too; kept so that the uploads plainly live
    /// as long as the call.
    _uploads: Uploads,
    output: wgpu::Buffer,
    reduction: Reduction,
    items_shape: Vec<usize>,
    timer: std::sync::OnceLock<Option<Timer>>,
    grad: Option<GradPlaces>,
    /// The evaluator's bind groups on the uploads, the output and the
    /// gradient places, which never change.
    groups: std::sync::Arc<[wgpu::BindGroup]>,
    staging: Staging,
}

impl<'c> Prepared<'c> {
    /// Binds the call's buffers once and makes its readback buffer, large
    /// enough for the longest readback (the gradients' for a fused call).
    fn new(
        ctx: &'c Context,
        evaluator: Evaluator<'c>,
        uploads: Uploads,
        output: wgpu::Buffer,
        reduction: Reduction,
        items_shape: Vec<usize>,
        grad: Option<GradPlaces>,
    ) -> Result<Prepared<'c>> {
        let inputs = uploads.device_inputs();
        let groups = match &grad {
            None => evaluator.bind_groups(&inputs, BufferView::whole(&output), None, None)?,
            Some(g) => {
                let view = |wrt: Wrt| {
                    g.places
                        .iter()
                        .find(|p| p.0 == wrt)
                        .map(|&(_, at, len)| BufferView::new(&output, 4 * at as u64, len))
                };
                let mut grads = GradViews::new(view(Wrt::Input).expect("every loss has d/dinput"));
                grads.target = view(Wrt::Target);
                grads.positive = view(Wrt::Positive);
                grads.negative = view(Wrt::Negative);
                evaluator.bind_groups(
                    &inputs,
                    BufferView::new(&output, 0, g.output_len),
                    Some(BufferView::new(&g.upstream, 0, g.upstream_len)),
                    Some(&grads),
                )?
            }
        };
        let staging = ctx.staging(grad.as_ref().map_or(evaluator.output_len(), |g| g.end));
        Ok(Prepared {
            ctx,
            evaluator,
            _uploads: uploads,
            output,
            reduction,
            items_shape,
            timer: Default::default(),
            grad,
            groups,
            staging,
        })
    }

    /// Dispatches the recorded passes, submits once and reads back the result.
    pub fn run(&self) -> Result<Evaluation> {
        self.execute(None).map(|r| r.0)
    }

    /// `run`, with the GPU time of its compute pass in milliseconds from
    /// timestamp queries (`None` where the adapter has none).
    pub fn run_timed(&self) -> Result<(Evaluation, Option<f64>)> {
        let timer = self.timer.get_or_init(|| self.ctx.timer()).as_ref();
        self.execute(timer)
    }

    /// The fused call's value and gradients, all read back; an error for a
    /// call prepared without gradients.
    pub fn run_with_grad(&self) -> Result<(Evaluation, Gradients)> {
        let Some(g) = &self.grad else {
            return Err(Error::Buffer {
                name: "grad_input",
                problem: "this call was prepared without gradients: use Context::prepare_with_grad"
                    .into(),
            });
        };
        let (out, _) = self.record_and_read(None, g.end)?;
        let part = |wrt: Wrt| {
            g.places
                .iter()
                .find(|p| p.0 == wrt)
                .map(|&(_, at, len)| out[at..at + len].to_vec())
        };
        let gradients = Gradients {
            input: part(Wrt::Input).unwrap_or_default(),
            target: part(Wrt::Target),
            positive: part(Wrt::Positive),
            negative: part(Wrt::Negative),
        };
        let mut out = out;
        out.truncate(self.evaluator.output_len());
        Ok((self.evaluation(out), gradients))
    }

    /// Records the call (with its backward, if prepared so), submits and
    /// reads back the first `len` values of the result.
    fn record_and_read(
        &self,
        timer: Option<&Timer>,
        len: usize,
    ) -> Result<(Vec<f32>, Option<f64>)> {
        self.ctx.scoped(|| {
            let mut encoder = self.ctx.encoder();
            self.evaluator
                .dispatch(&mut encoder, &self.groups, None, timer.map(Timer::writes));
            self.ctx
                .read_staged(encoder, &self.output, len, timer, &self.staging)
        })
    }

    fn execute(&self, timer: Option<&Timer>) -> Result<(Evaluation, Option<f64>)> {
        let (out, ms) = self.record_and_read(timer, self.evaluator.output_len())?;
        Ok((self.evaluation(out), ms))
    }

    /// The evaluation from the output's values.
    fn evaluation(&self, out: Vec<f32>) -> Evaluation {
        let items_shape = self.items_shape.clone();
        match self.reduction {
            Reduction::None => Evaluation {
                value: out.iter().map(|v| *v as f64).sum(),
                items: Some(out),
                items_shape,
            },
            _ => Evaluation {
                value: out[0] as f64,
                items: None,
                items_shape,
            },
        }
    }

    /// Dispatches per run.
    pub fn dispatches(&self) -> usize {
        self.evaluator.dispatches()
    }

    /// The evaluator behind this call, for encoding it elsewhere.
    pub fn evaluator(&self) -> &Evaluator<'c> {
        &self.evaluator
    }
}
