//! Tensors that already live in caller-owned wgpu buffers.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::inputs::{DType, Floats, Inputs, Target, Tensor};
use crate::loss::TensorName;

/// `len` values of a caller-owned buffer, starting `offset` bytes in: 4-byte
/// values (f32, or i32 class indices), or 2-byte ones for a half-precision
/// [`DeviceTensor`]. Offsets must be multiples of 256 bytes (the largest
/// `min_storage_buffer_offset_alignment` any adapter asks for), so a call that
/// works on one adapter works on all.
#[derive(Clone, Copy, Debug)]
pub struct BufferView<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
    pub len: usize,
}

impl<'a> BufferView<'a> {
    pub fn new(buffer: &'a wgpu::Buffer, offset: u64, len: usize) -> Self {
        BufferView {
            buffer,
            offset,
            len,
        }
    }

    /// The whole buffer as 4-byte values.
    pub fn whole(buffer: &'a wgpu::Buffer) -> Self {
        BufferView {
            buffer,
            offset: 0,
            len: (buffer.size() / 4) as usize,
        }
    }

    /// Checks usage, alignment and bounds for values of `size` bytes (the
    /// kernels read 4-byte words, so halves need the whole last word);
    /// `name` goes into the error.
    pub(crate) fn validate(
        &self,
        name: &'static str,
        size: usize,
        device: &wgpu::Device,
    ) -> Result<()> {
        let bad = |problem: String| Err(Error::Buffer { name, problem });
        if !self.buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return bad(format!(
                "needs STORAGE usage, has {:?}",
                self.buffer.usage()
            ));
        }
        let align = (device.limits().min_storage_buffer_offset_alignment as u64).max(256);
        if !self.offset.is_multiple_of(align) {
            return bad(format!(
                "offset {} is not a multiple of {align} bytes",
                self.offset
            ));
        }
        let end = self.offset + words(self.len, size);
        if end > self.buffer.size() {
            let padded = if !(self.len * size).is_multiple_of(4) {
                ", rounded up to whole 4-byte words"
            } else {
                ""
            };
            return bad(format!(
                "offset {} + {} values x {size} bytes{padded} = {end} bytes exceeds its size of {} bytes",
                self.offset,
                self.len,
                self.buffer.size()
            ));
        }
        Ok(())
    }
}

/// The bytes of `len` values of `size` bytes, in whole 4-byte words.
pub(crate) fn words(len: usize, size: usize) -> u64 {
    ((len * size) as u64).next_multiple_of(4)
}

/// A device tensor: a view, the shape of its values and their dtype (f32
/// unless [`with_dtype`](Self::with_dtype) says otherwise; class indices
/// are i32).
#[derive(Clone, Copy, Debug)]
pub struct DeviceTensor<'a> {
    pub view: BufferView<'a>,
    pub shape: &'a [usize],
    pub dtype: DType,
}

impl<'a> DeviceTensor<'a> {
    pub fn new(view: BufferView<'a>, shape: &'a [usize]) -> Self {
        DeviceTensor {
            view,
            shape,
            dtype: DType::F32,
        }
    }

    /// The same view read as `dtype` values: `view.len` of them, two per
    /// 4-byte word for f16 and bf16 (the first in the lower bytes).
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }
}

/// The device-side twin of [`Inputs`]. Class targets are i32 on the device;
/// the kernels give NaN for a class index out of range (the host path rejects
/// it instead), so a bad index never yields a plausible number.
#[derive(Clone, Copy, Debug)]
pub struct DeviceInputs<'a> {
    pub input: DeviceTensor<'a>,
    pub target: Option<DeviceTensor<'a>>,
    /// `target` holds i32 class indices rather than floats.
    pub class_target: bool,
    pub weight: Option<DeviceTensor<'a>>,
    pub pos_weight: Option<DeviceTensor<'a>>,
    pub labels: Option<DeviceTensor<'a>>,
    pub positive: Option<DeviceTensor<'a>>,
    pub negative: Option<DeviceTensor<'a>>,
    pub var: Option<DeviceTensor<'a>>,
}

impl<'a> DeviceInputs<'a> {
    pub fn new(input: DeviceTensor<'a>) -> Self {
        DeviceInputs {
            input,
            target: None,
            class_target: false,
            weight: None,
            pos_weight: None,
            labels: None,
            positive: None,
            negative: None,
            var: None,
        }
    }
    pub fn target(mut self, target: DeviceTensor<'a>) -> Self {
        self.target = Some(target);
        self.class_target = false;
        self
    }
    /// i32 class indices.
    pub fn classes(mut self, target: DeviceTensor<'a>) -> Self {
        self.target = Some(target);
        self.class_target = true;
        self
    }
    pub fn weight(mut self, weight: DeviceTensor<'a>) -> Self {
        self.weight = Some(weight);
        self
    }
    pub fn pos_weight(mut self, pos_weight: DeviceTensor<'a>) -> Self {
        self.pos_weight = Some(pos_weight);
        self
    }
    pub fn labels(mut self, labels: DeviceTensor<'a>) -> Self {
        self.labels = Some(labels);
        self
    }
    pub fn positive(mut self, positive: DeviceTensor<'a>) -> Self {
        self.positive = Some(positive);
        self
    }
    pub fn negative(mut self, negative: DeviceTensor<'a>) -> Self {
        self.negative = Some(negative);
        self
    }
    pub fn var(mut self, var: DeviceTensor<'a>) -> Self {
        self.var = Some(var);
        self
    }

    /// Sets a tensor by name (`Target`: a float target).
    pub fn with(mut self, name: TensorName, t: DeviceTensor<'a>) -> Self {
        let slot = match name {
            TensorName::Input => {
                self.input = t;
                return self;
            }
            TensorName::Target => {
                self.class_target = false;
                &mut self.target
            }
            TensorName::Weight => &mut self.weight,
            TensorName::PosWeight => &mut self.pos_weight,
            TensorName::Labels => &mut self.labels,
            TensorName::Positive => &mut self.positive,
            TensorName::Negative => &mut self.negative,
            TensorName::Var => &mut self.var,
        };
        *slot = Some(t);
        self
    }

    /// A tensor by name, if given.
    pub fn get(&self, name: TensorName) -> Option<DeviceTensor<'a>> {
        match name {
            TensorName::Input => Some(self.input),
            TensorName::Target => self.target,
            TensorName::Weight => self.weight,
            TensorName::PosWeight => self.pos_weight,
            TensorName::Labels => self.labels,
            TensorName::Positive => self.positive,
            TensorName::Negative => self.negative,
            TensorName::Var => self.var,
        }
    }

    /// Every tensor with its name.
    pub(crate) fn named(&self) -> [(&'static str, Option<DeviceTensor<'a>>); 8] {
        TensorName::ALL.map(|n| (n.name(), self.get(n)))
    }

    /// The shapes as host `Inputs` without data, for `plan_shapes`.
    pub(crate) fn shapes(&self) -> Inputs<'a> {
        let t = |d: &DeviceTensor<'a>| {
            let data = match d.dtype {
                DType::F32 => Floats::F32(&[]),
                DType::F16 => Floats::F16(&[]),
                DType::Bf16 => Floats::Bf16(&[]),
            };
            Tensor::new(data, d.shape)
        };
        Inputs {
            input: t(&self.input),
            target: self.target.map(|d| {
                if self.class_target {
                    Target::Class {
                        data: &[],
                        shape: d.shape,
                    }
                } else {
                    Target::Float(t(&d))
                }
            }),
            weight: self.weight.as_ref().map(t),
            pos_weight: self.pos_weight.as_ref().map(t),
            labels: self.labels.as_ref().map(t),
            positive: self.positive.as_ref().map(t),
            negative: self.negative.as_ref().map(t),
            var: self.var.as_ref().map(t),
        }
    }

    /// Every tensor must fit in one buffer of the device (`max_values` 4-byte
    /// values), whatever its buffer: shapes alone can declare more.
    pub(crate) fn check_sizes(&self, loss: &'static str, max_values: usize) -> Result<()> {
        for (name, t) in self.named() {
            if let Some(t) = t {
                let len = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                match len {
                    Some(len) if len <= max_values => {}
                    _ => {
                        return Err(Error::TooLarge {
                            loss,
                            name,
                            len: len.unwrap_or(usize::MAX),
                            limit: max_values,
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// The first view (or `output`) whose buffer belongs to another device of
    /// this instance: binding it alone in a bind group fails validation.
    /// wgpu offers no other way to ask; a buffer of another *instance* cannot
    /// be told apart at all (its id is looked up in this instance).
    pub(crate) fn foreign(&self, output: &BufferView<'_>, ctx: &Context) -> Option<&'static str> {
        let device = ctx.device();
        let layout = ctx.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("wgpu-loss probe"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: false },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            }],
        });
        let views = self
            .named()
            .into_iter()
            .filter_map(|(name, t)| t.map(|t| (name, t.view)))
            .chain(std::iter::once(("output", *output)));
        for (name, view) in views {
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let _ = ctx.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("wgpu-loss probe"),
                layout: &layout,
                entries: &[wgpu::BindGroupEntry {
                    binding: 0,
                    // Its first word only: a buffer longer than one binding
                    // is not foreign.
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: view.buffer,
                        offset: 0,
                        size: wgpu::BufferSize::new(view.buffer.size().min(4)),
                    }),
                }],
            });
            if pollster::block_on(scope.pop()).is_some() {
                return Some(name);
            }
        }
        None
    }

    /// Usage, alignment, bounds, and element counts against the shapes.
    pub(crate) fn validate(&self, device: &wgpu::Device) -> Result<()> {
        if let Some(t) = self
            .target
            .filter(|t| self.class_target && t.dtype != DType::F32)
        {
            return Err(Error::Buffer {
                name: "target",
                problem: format!(
                    "class indices are i32 values; {} is for float tensors",
                    t.dtype.name()
                ),
            });
        }
        for (name, t) in self.named() {
            if let Some(t) = t {
                t.view.validate(name, t.dtype.size(), device)?;
                let want: usize = t.shape.iter().product();
                if t.view.len != want {
                    return Err(Error::DataLength {
                        name,
                        shape: t.shape.to_vec(),
                        expected: want,
                        actual: t.view.len,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The upstream gradient dL/d(loss output) on the device, as autograd hands
/// it to a backward.
#[derive(Clone, Copy, Debug)]
pub enum DeviceUpstream<'a> {
    /// One g from the host: dL/dvalue for a reduced loss; for `none` every
    /// item gets it. The evaluator keeps a 16-byte buffer for each of the
    /// last four values it was given, so a repeated g allocates nothing.
    Scalar(f32),
    /// One value for a reduced loss, or one per item of the `none` result in
    /// its row-major order.
    Buffer(BufferView<'a>),
}

/// Caller-owned buffers for the gradients, each the layout of the tensor it
/// belongs to. Each may alias nothing else of the call (no input, the
/// output, another gradient), and shares no buffer with a tensor the call
/// reads: wgpu forbids one buffer as read-only and writable storage in one
/// dispatch.
#[derive(Clone, Copy, Debug)]
pub struct GradViews<'a> {
    /// d/d`input`: the prediction (the logits for the logit losses).
    pub input: BufferView<'a>,
    /// d/d`target`: x2 of `cosine_embedding` only.
    pub target: Option<BufferView<'a>>,
    /// `triplet_margin` only.
    pub positive: Option<BufferView<'a>>,
    /// `triplet_margin` only.
    pub negative: Option<BufferView<'a>>,
    /// What every view holds: f32 (the default), or f16/bf16, each value
    /// computed in f32 and rounded once to nearest, ties to even.
    pub dtype: DType,
}

impl<'a> GradViews<'a> {
    pub fn new(input: BufferView<'a>) -> Self {
        GradViews {
            input,
            target: None,
            positive: None,
            negative: None,
            dtype: DType::F32,
        }
    }
    /// Writes the gradients as `dtype` values: a model's half-precision
    /// tensors get gradients of their own dtype, as autograd gives them.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }
    pub fn target(mut self, target: BufferView<'a>) -> Self {
        self.target = Some(target);
        self
    }
    pub fn positive(mut self, positive: BufferView<'a>) -> Self {
        self.positive = Some(positive);
        self
    }
    pub fn negative(mut self, negative: BufferView<'a>) -> Self {
        self.negative = Some(negative);
        self
    }
}

impl BufferView<'_> {
    /// Shares at least one byte with `other`, for values of `size` and
    /// `other_size` bytes (in whole words).
    pub(crate) fn overlaps(&self, size: usize, other: &BufferView<'_>, other_size: usize) -> bool {
        let end = |v: &BufferView<'_>, size| v.offset + words(v.len, size);
        self.buffer == other.buffer
            && self.len > 0
            && other.len > 0
            && self.offset < end(other, other_size)
            && other.offset < end(self, size)
    }
}
