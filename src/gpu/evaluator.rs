//! The encode layer: a loss compiled for fixed shapes, recording into the
//! caller's command encoder on the caller's buffers.
//!
//! A family turns a plan into a `Schedule`: dispatches whose bindings name
//! *roles* (input, target, scratch, output, ...) with element ranges. Inputs
//! longer than one storage binding are cut into 256-byte-aligned slices, one
//! dispatch each, all writing partials into one scratch buffer that the final
//! pass reduces. `Evaluator::new` builds the pipelines and writes every
//! dispatch's params once; `encode` only binds and dispatches, reusing the
//! bind groups of the last buffers it was given (see [`BIND_CACHE`]).
//!
//! A gradient evaluator (`Context::grad_evaluator`) runs the forward and the
//! backward together: `encode_with_grad` also reads the upstream gradient and
//! writes the gradients into caller-owned views.

use std::sync::{Arc, Mutex};

use super::plan::{
    chunk_len, grid, Dispatch, PackParams, Role, Schedule, Slice, Wrt, ALL_WRT, OFFSET_ALIGN, WG,
};
use super::variant::{Kind, Variant};
use crate::context::{Context, Pipeline, PACK};
use crate::device::{BufferView, DeviceInputs, DeviceUpstream, GradViews};
use crate::error::{Error, Result};
use crate::inputs::{plan_shapes, DType, Geometry, Plan};
use crate::loss::{Loss, Reduction};

/// The tensors whose gradients a loss has: its prediction, and both sides of
/// the symmetric pair losses.
fn wrt(loss: &Loss) -> Vec<Wrt> {
    let grads = loss.entry().grads;
    ALL_WRT
        .into_iter()
        .filter(|w| grads.contains(&w.tensor()))
        .collect()
}

/// A schedule made in place of the family's, from the geometry and the
/// binding limit (see `Context::gradient_of_part`).
pub(super) type CustomSchedule<'a> = &'a dyn Fn(&Geometry, usize) -> Result<Schedule>;

/// Sets of caller buffers whose bind groups an evaluator keeps. Two, so that
/// the stream's two alternating slots both hit; a fixed set (a training loop's
/// buffers, a `Prepared`'s uploads) needs one.
const BIND_CACHE: usize = 2;

/// Scalar upstream values whose 16-byte buffers an evaluator keeps.
const SCALAR_CACHE: usize = 4;

/// One binding as a bind group holds it: buffer, byte offset, byte size.
type Binding<'b> = (&'b wgpu::Buffer, u64, u64);

/// Bind groups for one set of bindings, with the bindings they were built
/// from. The buffers are owned handles: holding them keeps their ids from
/// being reused, so comparing ids never mistakes a new buffer for an old one.
struct Bound {
    bindings: Vec<(wgpu::Buffer, u64, u64)>,
    groups: Arc<[wgpu::BindGroup]>,
}

impl Bound {
    fn matches(&self, bindings: &[Binding<'_>]) -> bool {
        self.bindings.len() == bindings.len()
            && self
                .bindings
                .iter()
                .zip(bindings)
                .all(|((b, o, n), (b2, o2, n2))| b == *b2 && o == o2 && n == n2)
    }
}

struct Step {
    pipeline: Arc<Pipeline>,
    /// The dtype a pack step rounds gradients to: it runs only when the
    /// gradient views hold that dtype. `None`: every call runs it.
    pack: Option<DType>,
    /// Bindings from this index on are writable.
    reads: u32,
    params_offset: u64,
    params_len: u64,
    bindings: Vec<Slice>,
    groups: (u32, u32),
}

/// A loss compiled for one set of shapes: pipelines built, scratch and params
/// allocated and written. `encode` records it into a caller's encoder any
/// number of times; given the same buffers as one of the last two calls, it
/// creates no GPU object.
///
/// It keeps the bind groups of the last two sets of buffers it was given, and
/// with them those buffers (a bind group holds its buffers), until it is
/// dropped or given other buffers: memory of a caller's buffer outlives the
/// caller's handle that long.
pub struct Evaluator<'c> {
    ctx: &'c Context,
    loss: Loss,
    reduction: Reduction,
    variant: Variant,
    shapes: Vec<(&'static str, Option<Vec<usize>>)>,
    /// The dtype of each float tensor (`shapes`' order) the kernels were
    /// specialised for.
    dtypes: Vec<DType>,
    class_target: bool,
    items_shape: Vec<usize>,
    steps: Vec<Step>,
    params: wgpu::Buffer,
    scratch: wgpu::Buffer,
    owned: Vec<wgpu::Buffer>,
    absent: wgpu::Buffer,
    // A separate stand-in for writes: one buffer may not be bound read-only
    // and writable in one dispatch.
    absent_rw: wgpu::Buffer,
    output_len: usize,
    /// The gradients it writes; empty for a forward evaluator.
    wrt: Vec<Wrt>,
    /// f32 buffers the kernels write gradients into when the caller's views
    /// hold halves (made on the first such call), one per `wrt`.
    grad_f32: std::sync::OnceLock<Vec<wgpu::Buffer>>,
    /// Most recent first; at most `BIND_CACHE`.
    bound: Mutex<Vec<Bound>>,
    /// (f32 bits, buffer holding that value) for `DeviceUpstream::Scalar`,
    /// most recent first; at most `SCALAR_CACHE`. A buffer's value never
    /// changes once written: an encoder recorded earlier but submitted later
    /// still reads the value it was recorded with.
    scalars: Mutex<Vec<(u32, wgpu::Buffer)>>,
}

impl Context {
    /// Compiles `loss` for the shapes of `inputs` (their buffers are not read),
    /// with the variant forced for its family, else the tuner's choice for
    /// this shape (timed now, on buffers of its own, the first time: see
    /// [`Context::tune`]).
    pub fn evaluator(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &DeviceInputs<'_>,
    ) -> Result<Evaluator<'_>> {
        self.scoped(|| self.compile(loss, reduction, inputs, false, None))
    }

    /// Compiles `loss` with its backward for the shapes of `inputs`: see
    /// [`Evaluator::encode_with_grad`]. Gradients follow PyTorch autograd, as
    /// `cpu::gradient` does.
    pub fn grad_evaluator(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &DeviceInputs<'_>,
    ) -> Result<Evaluator<'_>> {
        self.scoped(|| self.compile(loss, reduction, inputs, true, None))
    }

    /// `custom` replaces the family's schedule (given the geometry and the
    /// binding limit): see `Context::gradient_of_part`.
    pub(super) fn compile(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &DeviceInputs<'_>,
        grad: bool,
        custom: Option<CustomSchedule<'_>>,
    ) -> Result<Evaluator<'_>> {
        let shapes = inputs.shapes();
        let plan = plan_shapes(loss, reduction, &shapes)?;
        self.check_shapes(loss, inputs)?;
        // A custom schedule runs no family kernel a variant could shape.
        let variant = match custom {
            Some(_) => super::variant::eligible(&plan.geometry, &self.caps)[0],
            None => self.choose(loss, reduction, &plan, inputs, grad)?,
        };
        self.compile_variant(loss, reduction, inputs, &plan, grad, variant, custom)
    }

    /// What the device can hold and the kernels can index.
    fn check_shapes(&self, loss: &Loss, inputs: &DeviceInputs<'_>) -> Result<()> {
        let max_values = (self.device.limits().max_buffer_size / 4) as usize;
        inputs.check_sizes(loss.name(), max_values)?;
        // Kernels index with u32 (binding-sized slices keep this rare).
        for (name, t) in inputs.named() {
            let len = t.map_or(0, |t| t.shape.iter().product::<usize>());
            if len > u32::MAX as usize {
                return Err(Error::TooLarge {
                    loss: loss.name(),
                    name,
                    len,
                    limit: u32::MAX as usize,
                });
            }
        }
        Ok(())
    }

    /// Compiles `loss` as `variant` runs it, for `plan`, the plan of the
    /// shapes of `inputs`.
    // The call (loss, reduction, inputs, plan, grad) and how to run it
    // (variant, custom schedule): the tuner builds one per candidate.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn compile_variant(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &DeviceInputs<'_>,
        plan: &Plan<'_>,
        grad: bool,
        variant: Variant,
        custom: Option<CustomSchedule<'_>>,
    ) -> Result<Evaluator<'_>> {
        let max_values = (self.device.limits().max_buffer_size / 4) as usize;
        let limit = self.max_binding_elements();
        let schedule = match (&plan.geometry, variant.0) {
            (g, _) if custom.is_some() => custom.expect("checked")(g, limit)?,
            (Geometry::Point(p), Kind::Pointwise(v)) => {
                let groups = self.groups_wanted();
                super::pointwise::schedule(reduction, p, limit, grad, groups, v)?
            }
            (Geometry::Rows(r), Kind::Rows(v)) => {
                super::rows::schedule(reduction, r, limit, grad, v)?
            }
            (Geometry::Pairs(p), Kind::Pairs(v)) => {
                super::pairs::schedule(reduction, p, limit, grad, v, self.subgroup_size())?
            }
            (Geometry::Dice(d), Kind::Dice(v)) => {
                let groups = self.groups_wanted();
                super::dice::schedule(reduction, d, limit, grad, groups, v)?
            }
            _ => {
                return Err(Error::Variant {
                    name: variant.name().into(),
                    problem: format!("runs {} losses, not {}", variant.family(), loss.name()),
                })
            }
        };
        let align = self
            .device
            .limits()
            .min_uniform_buffer_offset_alignment
            .max(16) as usize;
        let mut params = Vec::new();
        let mut steps = Vec::new();
        for d in &schedule.dispatches {
            let pipeline = self.pipeline(d.kernel, d.entry, &dtype_constants(d, inputs))?;
            let params_offset = params.len() as u64;
            params.extend_from_slice(&d.params);
            params.resize(params.len().div_ceil(align) * align, 0);
            steps.push(Step {
                pipeline,
                pack: None,
                reads: d.kernel.reads,
                params_offset,
                params_len: d.params.len() as u64,
                bindings: d.bindings.clone(),
                groups: d.groups,
            });
        }
        if grad {
            for w in wrt(loss) {
                let len = inputs.get(w.tensor()).map_or(0, |t| t.view.len);
                for dtype in [DType::F16, DType::Bf16] {
                    steps.extend(self.pack_steps(w, len, dtype, limit, &mut params, align)?);
                }
            }
        }
        if schedule.scratch > max_values || schedule.output_len > max_values {
            return Err(Error::TooLarge {
                loss: loss.name(),
                name: "input",
                len: plan.items(),
                limit: max_values,
            });
        }
        self.build(
            loss,
            reduction,
            variant,
            inputs,
            grad,
            plan.items_shape.clone(),
            schedule,
            steps,
            params,
        )
    }

    /// The steps that round the f32 gradient of `w` (`len` values) into a
    /// view of `dtype` values: one per slice of at most `limit` values, each
    /// starting on a 256-byte boundary of the view.
    fn pack_steps(
        &self,
        w: Wrt,
        len: usize,
        dtype: DType,
        limit: usize,
        params: &mut Vec<u8>,
        align: usize,
    ) -> Result<Vec<Step>> {
        let pipeline = self.pipeline(&PACK, "main", &[])?;
        let step = chunk_len(limit, OFFSET_ALIGN);
        let mut steps = Vec::new();
        for first in (0..len).step_by(step) {
            let n = step.min(len - first);
            let groups = grid(n.div_ceil(2).div_ceil(WG * PACK_ITEMS));
            let p = PackParams {
                n: n as u32,
                groups_x: groups.0,
                dtype: dtype_code(dtype) as u32,
                _pad: 0,
            };
            let params_offset = params.len() as u64;
            params.extend_from_slice(bytemuck::bytes_of(&p));
            params.resize(params.len().div_ceil(align) * align, 0);
            steps.push(Step {
                pipeline: pipeline.clone(),
                pack: Some(dtype),
                reads: PACK.reads,
                params_offset,
                params_len: std::mem::size_of::<PackParams>() as u64,
                bindings: vec![
                    Slice::range(Role::Grad(w), first, n),
                    Slice::range(Role::Packed(w), first, n),
                ],
                groups,
            });
        }
        Ok(steps)
    }

    #[allow(clippy::too_many_arguments)]
    fn build<'c>(
        &'c self,
        loss: &Loss,
        reduction: Reduction,
        variant: Variant,
        inputs: &DeviceInputs<'_>,
        grad: bool,
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
        let absent_rw = init("wgpu-loss absent", &[], wgpu::BufferUsages::STORAGE);
        Ok(Evaluator {
            ctx: self,
            loss: loss.clone(),
            reduction,
            variant,
            shapes: inputs
                .named()
                .map(|(n, t)| (n, t.map(|t| t.shape.to_vec())))
                .to_vec(),
            dtypes: inputs
                .named()
                .map(|(_, t)| t.map_or(DType::F32, |t| t.dtype))
                .to_vec(),
            class_target: inputs.class_target,
            items_shape,
            steps,
            params,
            scratch,
            owned,
            absent,
            absent_rw,
            output_len: schedule.output_len,
            wrt: if grad { wrt(loss) } else { vec![] },
            grad_f32: std::sync::OnceLock::new(),
            bound: Mutex::new(Vec::new()),
            scalars: Mutex::new(Vec::new()),
        })
    }
}

/// Words per thread of the pack pass: `ITEMS` in shaders/pack.wgsl (checked
/// by the test gpu::contract::shared_constants_match_the_shaders).
pub(super) const PACK_ITEMS: usize = 4;

/// The overrides naming the element type of each read binding
/// (`DTYPE_<binding>` in the shaders; f32 is their default).
const DTYPE_OVERRIDES: [&str; 4] = ["DTYPE_0", "DTYPE_1", "DTYPE_2", "DTYPE_3"];

/// A dispatch's override constants with the dtype of each float tensor it
/// binds: the kernels read each as words of that type. Only kernels that
/// read input tensors bind them, and they declare the overrides.
fn dtype_constants(d: &Dispatch, inputs: &DeviceInputs<'_>) -> Vec<(&'static str, f64)> {
    let mut constants = d.constants.clone();
    for (slice, name) in d.bindings.iter().zip(DTYPE_OVERRIDES) {
        let dtype = slice
            .role
            .tensor()
            .and_then(|t| inputs.get(t))
            .map_or(DType::F32, |t| t.dtype);
        if dtype != DType::F32 {
            constants.push((name, dtype_code(dtype)));
        }
    }
    constants
}

/// A dtype as the shaders' `DT_*` constants (common.wgsl) name it; the test
/// gpu::contract::shared_constants_match_the_shaders checks that they agree.
pub(super) fn dtype_code(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 0.0,
        DType::F16 => 1.0,
        DType::Bf16 => 2.0,
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

    /// The input shape this evaluator was built for.
    pub fn input_shape(&self) -> &[usize] {
        self.shapes[0].1.as_deref().unwrap_or(&[])
    }

    pub fn reduction(&self) -> Reduction {
        self.reduction
    }

    /// The kernel variant it runs.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Dispatches recorded per `encode`.
    pub fn dispatches(&self) -> usize {
        self.steps.iter().filter(|s| s.pack.is_none()).count()
    }

    /// Whether it was built by [`Context::grad_evaluator`].
    pub fn has_gradients(&self) -> bool {
        !self.wrt.is_empty()
    }

    /// The gradients it writes with the element count of each.
    pub(crate) fn grad_lens(&self) -> Vec<(Wrt, usize)> {
        self.wrt
            .iter()
            .map(|w| (*w, self.tensor_len(w.tensor().name())))
            .collect()
    }

    fn tensor_len(&self, name: &str) -> usize {
        self.shapes
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, s)| s.as_ref())
            .map_or(0, |s| s.iter().product())
    }

    /// Records the loss into `encoder`: reads `inputs`, writes `output`. No
    /// submit, no readback, and no GPU object created when the views are
    /// those of one of the last two calls (otherwise one bind group per
    /// dispatch). The buffers are validated first (usage, 256-byte offsets,
    /// bounds, element counts, shapes).
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        inputs: &DeviceInputs<'_>,
        output: BufferView<'_>,
    ) -> Result<()> {
        if self.has_gradients() {
            return Err(Error::Buffer {
                name: "grad_input",
                problem: "this evaluator writes gradients: record it with encode_with_grad".into(),
            });
        }
        self.ctx.scoped(|| {
            self.check(inputs, output, None)?;
            self.record(encoder, inputs, output, None, None, None)
        })
    }

    /// Records the loss and its backward into `encoder`: reads `inputs` and
    /// `upstream`, writes the value (or the items) to `output` and each
    /// gradient to its view in `grads`, scaled by the reduction and the
    /// upstream as autograd would. Validated like [`Evaluator::encode`], and
    /// every gradient view must hold its tensor's element count and alias
    /// nothing else of the call (see [`GradViews`]).
    pub fn encode_with_grad(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        inputs: &DeviceInputs<'_>,
        upstream: DeviceUpstream<'_>,
        output: BufferView<'_>,
        grads: &GradViews<'_>,
    ) -> Result<()> {
        if !self.has_gradients() {
            return Err(Error::Buffer {
                name: "grad_input",
                problem: "this evaluator was built without gradients: build it with Context::grad_evaluator".into(),
            });
        }
        let device = &self.ctx.device;
        let scalar;
        let upstream = match upstream {
            DeviceUpstream::Scalar(g) => {
                scalar = self.scalar(g);
                BufferView::new(&scalar, 0, 1)
            }
            DeviceUpstream::Buffer(v) => {
                v.validate("upstream", 4, device)?;
                let expected = if self.reduction == Reduction::None {
                    self.output_len
                } else {
                    1
                };
                if v.len != expected {
                    return Err(Error::UpstreamLength {
                        expected,
                        actual: v.len,
                    });
                }
                v
            }
        };
        self.check(inputs, output, Some(upstream))?;
        let mut reads: Vec<(&'static str, BufferView<'_>, usize)> = inputs
            .named()
            .into_iter()
            .filter_map(|(name, t)| t.map(|t| (name, t.view, t.dtype.size())))
            .collect();
        reads.push(("upstream", upstream, 4));
        let mut written = vec![("output", output, 4)];
        let size = grads.dtype.size();
        for w in ALL_WRT {
            let name = w.view_name();
            let bad = |problem: String| Err(Error::Buffer { name, problem });
            let v = match (w.view(grads), self.wrt.contains(&w)) {
                (None, false) => continue,
                (Some(_), false) => {
                    return bad(format!(
                        "{} has no gradient for `{}`",
                        self.loss.name(),
                        w.tensor().name()
                    ))
                }
                (None, true) => {
                    return bad(format!(
                        "{} has a gradient for `{}`: give a view for it",
                        self.loss.name(),
                        w.tensor().name()
                    ))
                }
                (Some(v), true) => v,
            };
            v.validate(name, size, device)?;
            let want = self.tensor_len(w.tensor().name());
            if v.len != want {
                return bad(format!(
                    "holds {} values, the gradient of `{}` needs {want}",
                    v.len,
                    w.tensor().name()
                ));
            }
            if let Some((other, _, _)) = written.iter().find(|(_, o, n)| v.overlaps(size, o, *n)) {
                return bad(format!("overlaps `{other}`"));
            }
            if let Some((other, r, n)) = reads.iter().find(|(_, r, _)| shares(&v, r)) {
                return bad(if v.overlaps(size, r, *n) {
                    format!("aliases `{other}`")
                } else {
                    format!("shares its buffer with `{other}`, which the call reads; wgpu forbids one buffer as read-only and writable storage in one dispatch")
                });
            }
            written.push((name, v, size));
        }
        self.record(encoder, inputs, output, Some(upstream), Some(grads), None)
    }

    /// The checks common to both encodes.
    fn check(
        &self,
        inputs: &DeviceInputs<'_>,
        output: BufferView<'_>,
        upstream: Option<BufferView<'_>>,
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
        for (want, (name, got)) in self.dtypes.iter().zip(inputs.named()) {
            if let Some(got) = got.filter(|t| t.dtype != *want) {
                return Err(Error::Buffer {
                    name,
                    problem: format!(
                        "holds {} values, this evaluator was built for {}",
                        got.dtype.name(),
                        want.name()
                    ),
                });
            }
        }
        if inputs.class_target != self.class_target {
            return Err(Error::Buffer {
                name: "target",
                problem: "class indices and float targets need different evaluators".into(),
            });
        }
        output.validate("output", 4, device)?;
        if output.len < self.output_len {
            return Err(Error::Buffer {
                name: "output",
                problem: format!(
                    "holds {} values, the result needs {}",
                    output.len, self.output_len
                ),
            });
        }
        // `none` writes its items in the passes that read the inputs.
        if self.reduction == Reduction::None {
            let reads = inputs
                .named()
                .into_iter()
                .filter_map(|(n, t)| t.map(|t| (n, t.view)));
            let upstream = upstream.map(|u| ("upstream", u));
            if let Some((other, _)) = reads.chain(upstream).find(|(_, r)| shares(&output, r)) {
                return Err(Error::Buffer {
                    name: "output",
                    problem: format!("shares its buffer with `{other}`, which the call reads; wgpu forbids one buffer as read-only and writable storage in one dispatch"),
                });
            }
        }
        Ok(())
    }

    /// The buffer holding the scalar upstream `g`, created on its first use.
    fn scalar(&self, g: f32) -> wgpu::Buffer {
        let mut scalars = self.scalars.lock().unwrap_or_else(|e| e.into_inner());
        let buffer = match scalars.iter().position(|(bits, _)| *bits == g.to_bits()) {
            Some(i) => scalars.remove(i).1,
            None => self.ctx.buffer_with(
                "wgpu-loss upstream",
                bytemuck::bytes_of(&g),
                wgpu::BufferUsages::STORAGE,
            ),
        };
        scalars.insert(0, (g.to_bits(), buffer.clone()));
        scalars.truncate(SCALAR_CACHE);
        buffer
    }

    /// Records the passes on these views, with the bind groups of an earlier
    /// call on the same views where one of the last `BIND_CACHE` was.
    pub(crate) fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        inputs: &DeviceInputs<'_>,
        output: BufferView<'_>,
        upstream: Option<BufferView<'_>>,
        grads: Option<&GradViews<'_>>,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<()> {
        let bindings = self.bindings(inputs, output, upstream, grads);
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        let hit = match bound.iter().position(|b| b.matches(&bindings)) {
            Some(i) => bound.remove(i),
            None => Bound {
                groups: self.bind(&bindings, inputs, output)?,
                bindings: bindings
                    .iter()
                    .map(|&(b, o, n)| (b.clone(), o, n))
                    .collect(),
            },
        };
        let groups = hit.groups.clone();
        bound.insert(0, hit);
        bound.truncate(BIND_CACHE);
        drop(bound);
        let packing = grads.map(|g| g.dtype).filter(|d| *d != DType::F32);
        self.dispatch(encoder, &groups, packing, timestamps);
        Ok(())
    }

    /// Bind groups for views that stay the same across calls (a `Prepared`'s
    /// uploads and output), built now for `dispatch`, outside the cache.
    pub(crate) fn bind_groups(
        &self,
        inputs: &DeviceInputs<'_>,
        output: BufferView<'_>,
        upstream: Option<BufferView<'_>>,
        grads: Option<&GradViews<'_>>,
    ) -> Result<Arc<[wgpu::BindGroup]>> {
        let bindings = self.bindings(inputs, output, upstream, grads);
        self.bind(&bindings, inputs, output)
    }

    /// Every step's storage bindings, in order: the views resolved to
    /// buffer ranges (the params binding, always the same, is left out).
    fn bindings<'b>(
        &'b self,
        inputs: &DeviceInputs<'b>,
        output: BufferView<'b>,
        upstream: Option<BufferView<'b>>,
        grads: Option<&GradViews<'b>>,
    ) -> Vec<Binding<'b>> {
        // Gradient views of halves: the kernels write f32 into buffers of
        // the evaluator's, which the pack steps of that dtype round into them.
        let packing = grads.map(|g| g.dtype).filter(|d| *d != DType::F32);
        let f32_grads = packing.map(|_| {
            self.grad_f32.get_or_init(|| {
                self.wrt
                    .iter()
                    .map(|w| {
                        self.ctx
                            .storage("wgpu-loss gradient", self.tensor_len(w.tensor().name()))
                    })
                    .collect()
            })
        });
        // Bytes per value: a float input's dtype, a packed gradient's; else 4
        // (i32 classes, f32).
        let size = |role: Role| -> u64 {
            match (role, packing) {
                (Role::Packed(_), Some(d)) => d.size() as u64,
                _ => role
                    .tensor()
                    .and_then(|name| inputs.get(name))
                    .map_or(4, |t| t.dtype.size() as u64),
            }
        };
        let view = |role: Role| -> Option<BufferView<'b>> {
            match role {
                Role::Input => Some(inputs.input.view),
                Role::Target => inputs.target.map(|t| t.view),
                Role::Weight => inputs.weight.map(|t| t.view),
                Role::PosWeight => inputs.pos_weight.map(|t| t.view),
                Role::Labels => inputs.labels.map(|t| t.view),
                Role::Positive => inputs.positive.map(|t| t.view),
                Role::Negative => inputs.negative.map(|t| t.view),
                Role::Var => inputs.var.map(|t| t.view),
                Role::Output => Some(output),
                Role::Upstream => upstream,
                Role::Grad(w) => match f32_grads {
                    Some(buffers) => {
                        let k = self.wrt.iter().position(|x| *x == w)?;
                        let len = self.tensor_len(w.tensor().name());
                        Some(BufferView::new(&buffers[k], 0, len))
                    }
                    None => grads.and_then(|g| w.view(g)),
                },
                Role::Packed(w) => grads.and_then(|g| w.view(g)),
                _ => None,
            }
        };
        let mut out = Vec::new();
        for step in &self.steps {
            if step.pack.is_some() && step.pack != packing {
                // Not dispatched on these views: stand-ins keep its bind group valid.
                let reads = step.reads as usize;
                out.extend((0..step.bindings.len()).map(|i| {
                    let b = if i >= reads {
                        &self.absent_rw
                    } else {
                        &self.absent
                    };
                    (b, 0, 4)
                }));
                continue;
            }
            for (i, slice) in step.bindings.iter().enumerate() {
                let (buffer, offset, len) = match (slice.role, view(slice.role)) {
                    (Role::Scratch, _) => whole(&self.scratch),
                    (Role::Owned(k), _) => whole(&self.owned[k]),
                    (_, Some(v)) if v.len > 0 => (v.buffer, v.offset, v.len as u64),
                    _ if i as u32 >= step.reads => (&self.absent_rw, 0, 4),
                    _ => (&self.absent, 0, 4),
                };
                let bytes = size(slice.role);
                let from = offset + bytes * slice.offset as u64;
                // Whole 4-byte words: a binding of halves ends on the word
                // holding its last value (`DeviceTensor` validation and the
                // uploads make sure that word is in the buffer).
                let count = |values: u64| (bytes * values.max(1)).next_multiple_of(4);
                let (start, size) = match slice.len {
                    // One upstream value serves every slice of the items.
                    _ if slice.role == Role::Upstream && len == 1 => (offset, 4),
                    Some(l) => (from, count(l as u64)),
                    // A reduced call's output view may be longer than a
                    // binding; what it writes (3 + 3 x C values at most) fits.
                    None if slice.role == Role::Output => {
                        let limit = self.ctx.max_binding_elements() as u64;
                        (from, count((len - slice.offset as u64).min(limit)))
                    }
                    None => (from, count(len - slice.offset as u64)),
                };
                out.push((buffer, start, size));
            }
        }
        out
    }

    /// One bind group per step from `bindings` (as `bindings` lists them).
    fn bind(
        &self,
        bindings: &[Binding<'_>],
        inputs: &DeviceInputs<'_>,
        output: BufferView<'_>,
    ) -> Result<Arc<[wgpu::BindGroup]>> {
        let device = &self.ctx.device;
        // A buffer of another device fails validation here, which wgpu would
        // otherwise hand to the device's uncaptured-error handler (a panic).
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut groups = Vec::with_capacity(self.steps.len());
        let mut rest = bindings;
        for step in &self.steps {
            let (mine, others) = rest.split_at(step.bindings.len());
            rest = others;
            let mut entries: Vec<_> = mine
                .iter()
                .enumerate()
                .map(|(i, &(buffer, offset, size))| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset,
                        size: wgpu::BufferSize::new(size),
                    }),
                })
                .collect();
            entries.push(wgpu::BindGroupEntry {
                binding: step.bindings.len() as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.params,
                    offset: step.params_offset,
                    size: wgpu::BufferSize::new(step.params_len),
                }),
            });
            groups.push(self.ctx.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("wgpu-loss"),
                layout: &step.pipeline.layout,
                entries: &entries,
            }));
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(match inputs.foreign(&output, self.ctx) {
                Some(name) => Error::Buffer {
                    name,
                    problem: "belongs to another device than this evaluator's context".into(),
                },
                None => Error::gpu("recording the passes", e),
            });
        }
        Ok(groups.into())
    }

    /// One compute pass: each step's pipeline, bind group and dispatch; the
    /// pack steps of `packing`'s dtype only (none for f32 gradients).
    pub(crate) fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        groups: &[wgpu::BindGroup],
        packing: Option<DType>,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-loss"),
            timestamp_writes: timestamps,
        });
        for (step, bind_group) in self.steps.iter().zip(groups) {
            if step.pack.is_some() && step.pack != packing {
                continue;
            }
            pass.set_pipeline(&step.pipeline.pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(step.groups.0, step.groups.1, 1);
        }
    }
}

fn whole(b: &wgpu::Buffer) -> (&wgpu::Buffer, u64, u64) {
    (b, 0, b.size() / 4)
}

/// Both views hold values of one buffer.
fn shares(a: &BufferView<'_>, b: &BufferView<'_>) -> bool {
    a.buffer == b.buffer && a.len > 0 && b.len > 0
}
