//! The GPU plan, shared by every family and by the evaluator that executes
//! it: what a dispatch binds (`Role`, `Slice`), the dispatches a family
//! schedules for one shape (`Dispatch`, `Schedule`), how tensors longer than
//! a binding are cut (`chunk_len`, `units_per_slice`, `aligned`), the
//! workgroup grid, and the passes every family ends with (`total`,
//! `finalize`). It imports no family; the families import it, and the
//! evaluator only executes their schedules.

use bytemuck::{Pod, Zeroable};

use crate::context::{Kernel, FINALIZE, POINTWISE};
use crate::device::{BufferView, GradViews};
use crate::loss::{Reduction, TensorName};

/// Invocations per workgroup of every kernel: `WG` in shaders/common.wgsl
/// and every `@workgroup_size` (the test
/// gpu::contract::shared_constants_match_the_shaders checks them).
pub(crate) const WG: usize = 256;
/// Workgroups per grid dimension.
const MAX_GROUPS: usize = 65_535;

/// What the adapter offers that a variant may need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Caps {
    /// `wgpu::Features::SUBGROUP` is enabled on the device.
    pub subgroups: bool,
}

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
    Var,
    /// A small buffer the evaluator uploads itself (e.g. the quantile list).
    Owned(usize),
    /// The evaluator's scratch buffer of partials.
    Scratch,
    /// The caller's output view.
    Output,
    /// The upstream gradient: one value, or one per item of `none`.
    Upstream,
    /// The caller's view for the gradient with respect to a tensor, or, where
    /// that view holds halves, the evaluator's f32 buffer the pack pass reads.
    Grad(Wrt),
    /// The caller's view for a gradient of halves, which the pack pass writes.
    Packed(Wrt),
    /// An absent optional tensor, or a write a dispatch does not make: 16
    /// zero bytes.
    Absent,
}

impl Role {
    /// The input tensor bound in this role, if one is.
    pub(crate) fn tensor(self) -> Option<TensorName> {
        Some(match self {
            Role::Input => TensorName::Input,
            Role::Target => TensorName::Target,
            Role::Weight => TensorName::Weight,
            Role::PosWeight => TensorName::PosWeight,
            Role::Labels => TensorName::Labels,
            Role::Positive => TensorName::Positive,
            Role::Negative => TensorName::Negative,
            Role::Var => TensorName::Var,
            Role::Owned(_)
            | Role::Scratch
            | Role::Output
            | Role::Upstream
            | Role::Grad(_)
            | Role::Packed(_)
            | Role::Absent => return None,
        })
    }
}

/// A tensor a loss is differentiated with respect to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Wrt {
    Input,
    Target,
    Positive,
    Negative,
}

impl Wrt {
    /// The gradient view's name in errors.
    pub(crate) fn view_name(self) -> &'static str {
        match self {
            Wrt::Input => "grad_input",
            Wrt::Target => "grad_target",
            Wrt::Positive => "grad_positive",
            Wrt::Negative => "grad_negative",
        }
    }

    pub(crate) fn tensor(self) -> TensorName {
        match self {
            Wrt::Input => TensorName::Input,
            Wrt::Target => TensorName::Target,
            Wrt::Positive => TensorName::Positive,
            Wrt::Negative => TensorName::Negative,
        }
    }

    pub(crate) fn view<'a>(self, grads: &GradViews<'a>) -> Option<BufferView<'a>> {
        match self {
            Wrt::Input => Some(grads.input),
            Wrt::Target => grads.target,
            Wrt::Positive => grads.positive,
            Wrt::Negative => grads.negative,
        }
    }
}

pub(crate) const ALL_WRT: [Wrt; 4] = [Wrt::Input, Wrt::Target, Wrt::Positive, Wrt::Negative];

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

/// `Params` of shaders/finalize.wgsl; the test
/// gpu::contract::params_match_the_shaders checks that they agree.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct FinalizeParams {
    pub(super) count: u32,
    pub(super) mode: u32,
    pub(super) divisor: f32,
    pub(super) _pad: u32,
}

/// `Params` of shaders/pack.wgsl; the test
/// gpu::contract::params_match_the_shaders checks that they agree.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct PackParams {
    pub(crate) n: u32,
    pub(crate) groups_x: u32,
    pub(crate) dtype: u32,
    pub(crate) _pad: u32,
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

/// Storage offsets are 256-byte aligned: slices start on multiples of 128
/// values, 256 bytes of f16 or bf16 (512 of f32), so that every dtype's
/// slices start aligned.
pub(crate) const OFFSET_ALIGN: usize = 128;

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

/// Workgroup grid for `groups` workgroups: x up to 65 535, then y.
pub(crate) fn grid(groups: usize) -> (u32, u32) {
    let groups = groups.max(1);
    let x = groups.min(MAX_GROUPS);
    (x as u32, groups.div_ceil(x) as u32)
}

/// ignore_index as the kernels compare it against i32 class indices.
pub(crate) fn ignore_i32(ignore_index: i64) -> i32 {
    i32::try_from(ignore_index).unwrap_or(i32::MIN)
}

/// `Params` of shaders/pointwise.wgsl (`p` is its p0..p3); the test
/// gpu::contract::params_match_the_shaders checks that they agree.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct PointParams {
    pub n: u32,
    pub per_target: u32,
    pub w_inner: u32,
    pub w_len: u32,
    pub a_inner: u32,
    pub a_len: u32,
    pub groups_x: u32,
    pub base: u32,
    pub partial_base: u32,
    pub w_sliced: u32,
    pub a_sliced: u32,
    pub p: [f32; 4],
    pub scale_mode: u32,
    pub d_at: u32,
    pub divisor: f32,
    pub repeat: f32,
    pub per_thread: u32,
    pub first: u32,
    pub _pad: [u32; 3],
}

/// The pass that sums `count` single-float partials of the scratch from
/// `first` into the scratch's value `at`, times `repeat`.
pub(crate) fn total(first: usize, count: usize, at: usize, repeat: f32) -> Dispatch {
    let params = PointParams {
        n: count as u32,
        partial_base: first as u32,
        d_at: at as u32,
        repeat,
        ..PointParams::zeroed()
    };
    scratch_pass("total", &params, Slice::whole(Role::Absent), (1, 1))
}

pub(crate) fn scratch_pass(
    entry: &'static str,
    params: &PointParams,
    weight: Slice,
    groups: (u32, u32),
) -> Dispatch {
    let absent = Slice::whole(Role::Absent);
    Dispatch {
        kernel: &POINTWISE,
        entry,
        constants: vec![],
        params: bytemuck::bytes_of(params).to_vec(),
        bindings: vec![
            absent,
            absent,
            weight,
            absent,
            absent,
            Slice::whole(Role::Scratch),
            absent,
        ],
        groups,
    }
}
