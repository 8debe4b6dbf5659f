//! The tensors of a call on the host, and the geometry `plan` gives it.

use std::borrow::Cow;

pub use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::loss::{Dice, Pairs, Pointwise, Reduction, Rows, TensorName};

/// The element type of a float tensor. Half-precision values are read as
/// they are stored and computed in f32, as PyTorch upcasts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DType {
    #[default]
    F32,
    /// IEEE binary16 ([`half::f16`]).
    F16,
    /// bfloat16 ([`half::bf16`]): f32's exponent, 8 bits of significand.
    Bf16,
}

impl DType {
    pub const ALL: [DType; 3] = [DType::F32, DType::F16, DType::Bf16];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::Bf16 => 2,
        }
    }

    /// The name the CLI and errors use: `f32`, `f16`, `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
        }
    }

    /// The dtype of a name as [`name`](Self::name) gives it.
    pub fn parse(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// The borrowed elements of a float tensor, in one of the [`DType`]s.
#[derive(Clone, Copy, Debug)]
pub enum Floats<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    Bf16(&'a [bf16]),
}

impl Default for Floats<'_> {
    fn default() -> Self {
        Floats::F32(&[])
    }
}

impl<'a> Floats<'a> {
    pub fn dtype(&self) -> DType {
        match self {
            Floats::F32(_) => DType::F32,
            Floats::F16(_) => DType::F16,
            Floats::Bf16(_) => DType::Bf16,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Floats::F32(d) => d.len(),
            Floats::F16(d) => d.len(),
            Floats::Bf16(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as f32 (exact: every f16 and bf16 value is an f32).
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Floats::F32(d) => d[i],
            Floats::F16(d) => d[i].to_f32(),
            Floats::Bf16(d) => d[i].to_f32(),
        }
    }

    /// The elements in `range`, in the same dtype.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Floats<'a> {
        match *self {
            Floats::F32(d) => Floats::F32(&d[range]),
            Floats::F16(d) => Floats::F16(&d[range]),
            Floats::Bf16(d) => Floats::Bf16(&d[range]),
        }
    }

    /// The elements as f32: borrowed when they are, else upcast (exactly).
    pub fn to_f32(&self) -> Cow<'a, [f32]> {
        match *self {
            Floats::F32(d) => Cow::Borrowed(d),
            Floats::F16(d) => Cow::Owned(d.iter().map(|v| v.to_f32()).collect()),
            Floats::Bf16(d) => Cow::Owned(d.iter().map(|v| v.to_f32()).collect()),
        }
    }

    /// The elements as f32, one at a time.
    pub fn iter(&self) -> impl Iterator<Item = f32> + 'a {
        let this = *self;
        (0..this.len()).map(move |i| this.get(i))
    }

    /// The stored bytes (native endianness), as a device buffer holds them.
    pub fn bytes(&self) -> &'a [u8] {
        match *self {
            Floats::F32(d) => bytemuck::cast_slice(d),
            Floats::F16(d) => bytemuck::cast_slice(d),
            Floats::Bf16(d) => bytemuck::cast_slice(d),
        }
    }
}

impl<'a> From<&'a [f32]> for Floats<'a> {
    fn from(d: &'a [f32]) -> Self {
        Floats::F32(d)
    }
}
impl<'a> From<&'a Vec<f32>> for Floats<'a> {
    fn from(d: &'a Vec<f32>) -> Self {
        Floats::F32(d)
    }
}
impl<'a, const N: usize> From<&'a [f32; N]> for Floats<'a> {
    fn from(d: &'a [f32; N]) -> Self {
        Floats::F32(d)
    }
}
impl<'a> From<&'a [f16]> for Floats<'a> {
    fn from(d: &'a [f16]) -> Self {
        Floats::F16(d)
    }
}
impl<'a> From<&'a Vec<f16>> for Floats<'a> {
    fn from(d: &'a Vec<f16>) -> Self {
        Floats::F16(d)
    }
}
impl<'a> From<&'a [bf16]> for Floats<'a> {
    fn from(d: &'a [bf16]) -> Self {
        Floats::Bf16(d)
    }
}
impl<'a> From<&'a Vec<bf16>> for Floats<'a> {
    fn from(d: &'a Vec<bf16>) -> Self {
        Floats::Bf16(d)
    }
}
impl<'a> From<&'a Cow<'a, [f32]>> for Floats<'a> {
    fn from(d: &'a Cow<'a, [f32]>) -> Self {
        Floats::F32(d)
    }
}

/// A borrowed float tensor: row-major data and its shape (`[]` is a scalar).
/// The data is f32, f16 or bf16 ([`Floats`]); `Tensor::new(&values, &shape)`
/// takes a slice or `Vec` of any of them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tensor<'a> {
    pub data: Floats<'a>,
    pub shape: &'a [usize],
}

impl<'a> Tensor<'a> {
    pub fn new(data: impl Into<Floats<'a>>, shape: &'a [usize]) -> Self {
        Tensor {
            data: data.into(),
            shape,
        }
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
}

/// A target: floats (regression, probabilities, masks) or class indices.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    Float(Tensor<'a>),
    Class { data: &'a [i64], shape: &'a [usize] },
}

impl<'a> Target<'a> {
    pub fn shape(&self) -> &'a [usize] {
        match self {
            Target::Float(t) => t.shape,
            Target::Class { shape, .. } => shape,
        }
    }
}

/// The tensors of one evaluation. Which ones a loss reads is in the README's
/// table; `input` is the prediction (the anchor for `triplet_margin`, x1 for
/// `cosine_embedding`, whose x2 is `target`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Inputs<'a> {
    pub input: Tensor<'a>,
    pub target: Option<Target<'a>>,
    pub weight: Option<Tensor<'a>>,
    pub pos_weight: Option<Tensor<'a>>,
    pub labels: Option<Tensor<'a>>,
    pub positive: Option<Tensor<'a>>,
    pub negative: Option<Tensor<'a>>,
    pub var: Option<Tensor<'a>>,
}

impl<'a> Inputs<'a> {
    pub fn new(input: Tensor<'a>) -> Self {
        Inputs {
            input,
            ..Default::default()
        }
    }
    pub fn target(mut self, target: Tensor<'a>) -> Self {
        self.target = Some(Target::Float(target));
        self
    }
    pub fn classes(mut self, data: &'a [i64], shape: &'a [usize]) -> Self {
        self.target = Some(Target::Class { data, shape });
        self
    }
    pub fn weight(mut self, weight: Tensor<'a>) -> Self {
        self.weight = Some(weight);
        self
    }
    pub fn pos_weight(mut self, pos_weight: Tensor<'a>) -> Self {
        self.pos_weight = Some(pos_weight);
        self
    }
    pub fn labels(mut self, labels: Tensor<'a>) -> Self {
        self.labels = Some(labels);
        self
    }
    pub fn positive(mut self, positive: Tensor<'a>) -> Self {
        self.positive = Some(positive);
        self
    }
    pub fn negative(mut self, negative: Tensor<'a>) -> Self {
        self.negative = Some(negative);
        self
    }
    pub fn var(mut self, var: Tensor<'a>) -> Self {
        self.var = Some(var);
        self
    }

    /// Sets a float tensor by name (a float `target` for `Target`).
    pub fn with(mut self, name: TensorName, t: Tensor<'a>) -> Self {
        let slot = match name {
            TensorName::Input => {
                self.input = t;
                return self;
            }
            TensorName::Target => {
                self.target = Some(Target::Float(t));
                return self;
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

    /// A float tensor by name (`target` only when it holds floats).
    pub fn float(&self, name: TensorName) -> Option<Tensor<'a>> {
        match name {
            TensorName::Input => Some(self.input),
            TensorName::Target => match self.target {
                Some(Target::Float(t)) => Some(t),
                _ => None,
            },
            TensorName::Weight => self.weight,
            TensorName::PosWeight => self.pos_weight,
            TensorName::Labels => self.labels,
            TensorName::Positive => self.positive,
            TensorName::Negative => self.negative,
            TensorName::Var => self.var,
        }
    }

    /// The shape of a tensor that is given, by name.
    pub fn shape(&self, name: TensorName) -> Option<&'a [usize]> {
        match name {
            TensorName::Target => self.target.map(|t| t.shape()),
            _ => self.float(name).map(|t| t.shape),
        }
    }

    /// The length of a tensor's data (class indices for a class target).
    pub(crate) fn data_len(&self, name: TensorName) -> Option<usize> {
        match (name, self.target) {
            (TensorName::Target, Some(Target::Class { data, .. })) => Some(data.len()),
            _ => self.float(name).map(|t| t.data.len()),
        }
    }
}

/// The upstream gradient, dL/d(loss output), as autograd hands it to a loss's
/// backward. Values are f32 like every tensor here; the CPU reference widens them.
#[derive(Clone, Copy, Debug)]
pub enum Upstream<'a> {
    /// One g. For `mean`, `sum` and `batchmean` it is dL/dvalue; for `none`
    /// every item gets it, i.e. g times the gradient of the items' sum.
    Scalar(f32),
    /// One g per item of the `none` result, in its row-major order (`none` only).
    Items(&'a [f32]),
}

impl Upstream<'_> {
    /// Checks it against a call with `items` per-item losses: `Items` only
    /// for `none`, with exactly one value per item.
    pub fn check(&self, reduction: Reduction, items: usize) -> Result<()> {
        match self {
            Upstream::Scalar(_) => Ok(()),
            Upstream::Items(_) if reduction != Reduction::None => Err(Error::UpstreamReduction {
                reduction: reduction.name(),
            }),
            Upstream::Items(g) if g.len() != items => Err(Error::UpstreamLength {
                expected: items,
                actual: g.len(),
            }),
            Upstream::Items(_) => Ok(()),
        }
    }
}

/// A tensor broadcast against a larger one, read as `data[(i / inner) % len]`
/// for element `i` of the larger one. Shapes whose non-1 dims are not one
/// contiguous block are expanded on the host.
#[derive(Clone, Debug)]
pub struct Broadcast<'a> {
    /// The values, upcast to f32 where the tensor was half precision.
    pub data: Cow<'a, [f32]>,
    pub inner: usize,
    pub len: usize,
    /// `data` is the tensor expanded to the larger one's shape.
    pub expanded: bool,
}

impl Broadcast<'_> {
    pub fn at(&self, i: usize) -> f32 {
        self.data[(i / self.inner) % self.len]
    }
}

/// Elementwise losses: `n` items, item `i` reads `input[i]` and `target[i / per_target]`.
#[derive(Clone, Debug)]
pub struct PointPlan<'a> {
    pub loss: Pointwise,
    pub n: usize,
    pub per_target: usize,
    pub weight: Option<Broadcast<'a>>,
    /// pos_weight (bce_with_logits) or the quantile list (quantile).
    pub aux: Option<Broadcast<'a>>,
    /// The tensor `aux` reads (pos_weight or var); none for the quantile
    /// list, which the plan holds itself.
    pub aux_tensor: Option<TensorName>,
    /// `batchmean`'s divisor.
    pub batch: usize,
    /// The dtypes of the tensors it reads.
    pub widths: Widths,
}

/// Whether a call's float tensors are all f32, all half precision (f16 or
/// bf16, in any mix), or some of each: a kernel that loads several elements
/// at once needs one width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Widths {
    F32,
    Half,
    Mixed,
}

impl Widths {
    pub fn of(dtypes: impl IntoIterator<Item = DType>) -> Widths {
        let (mut f32s, mut halves) = (false, false);
        for d in dtypes {
            match d {
                DType::F32 => f32s = true,
                DType::F16 | DType::Bf16 => halves = true,
            }
        }
        match (f32s, halves) {
            (true, true) => Widths::Mixed,
            (false, true) => Widths::Half,
            _ => Widths::F32,
        }
    }
}

/// Softmax-row losses over input `(N, C, inner)`: row `r` is (r / inner, ·, r % inner).
#[derive(Clone, Debug)]
pub struct RowsPlan {
    pub loss: Rows,
    pub rows: usize,
    pub classes: usize,
    pub inner: usize,
    /// Probability targets of the input's shape instead of class indices.
    pub prob_target: bool,
    /// A class weight (C values) is given.
    pub weight: bool,
}

/// Row-vector losses over `(N, D)`.
#[derive(Clone, Debug)]
pub struct PairsPlan {
    pub loss: Pairs,
    pub rows: usize,
    pub dim: usize,
    /// cosine_embedding was given labels.
    pub labels: bool,
}

/// Dice over input `(N, C, inner)` (binary: C = 1).
#[derive(Clone, Debug)]
pub struct DicePlan {
    pub loss: Dice,
    pub batch: usize,
    pub classes: usize,
    pub inner: usize,
}

#[derive(Clone, Debug)]
pub enum Geometry<'a> {
    Point(PointPlan<'a>),
    Rows(RowsPlan),
    Pairs(PairsPlan),
    Dice(DicePlan),
}

/// A validated call: its geometry and the shape of the `none` result.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    pub geometry: Geometry<'a>,
    pub items_shape: Vec<usize>,
}

impl Plan<'_> {
    pub fn items(&self) -> usize {
        self.items_shape.iter().product()
    }
}
