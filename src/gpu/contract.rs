//! The contract between the WGSL kernels and the host, checked by parsing
//! every kernel with naga: a drift on either side fails `cargo test` with the
//! member, constant or binding named, instead of a wrong result on a GPU.
//!
//! What must agree:
//! - each kernel's `Params` (the type of its uniform) and the Rust struct
//!   whose bytes are uploaded into it: member names, offsets, scalar types and
//!   the total size. Mapping rule: a Rust scalar field `x` matches the WGSL
//!   member `x`; a Rust array field `x: [T; N]` matches the N WGSL members
//!   `x0 .. x{N-1}`, element k at the array's offset plus k elements. WGSL
//!   members must be scalars (u32, i32, f32).
//! - the LOSS override value each family's `loss_id` gives every catalog loss
//!   and the shader's `const <NAME>: u32`, NAME being the catalog name upper
//!   cased (cross_entropy with probability targets: `<NAME>_PROB`); likewise
//!   the pairs norm and dice activation selectors.
//! - the per-thread counts (`ITEMS`) and the workgroup size (`WG`, and every
//!   entry point's `@workgroup_size`).
//! - the bindings: `Kernel::reads` read-only storage buffers at 0.., then
//!   `writes` read-write ones, then the uniform, all in group 0 (the layout
//!   `Context::layout` builds).
//!
//! `every_kernel_translates_for_every_backend` also runs each kernel through
//! naga's validator and its SPIR-V, MSL, HLSL and GLSL writers (Vulkan,
//! Metal, DX12, GL) for every entry point and override value the host uses,
//! so a shader that only one backend accepts, or an override value that
//! does not evaluate, fails here rather than on the machine that has that
//! backend. (naga 30 does not flag a workgroup barrier reached, through
//! `reduce_wg`, under a non-uniform branch: that stays with review.)

use std::mem::{offset_of, size_of};

use naga::{
    AddressSpace, Expression, Literal, Module, Scalar, ScalarKind, StorageAccess, TypeInner,
};

use super::dice::{self, DiceParams};
use super::evaluator::{dtype_code, PACK_ITEMS};
use super::pairs::{self, PairsParams};
use super::plan::{FinalizeParams, PackParams, PointParams, WG};
use super::pointwise;
use super::rows::{self, RowsParams};
use crate::inputs::DType;
// The copy kernel's host side is the benchmark's, there with the `cli` feature.
#[cfg(feature = "cli")]
use crate::cli::bench::{CopyParams, COPY_ITEMS};
#[cfg(feature = "cli")]
use crate::context::COPY;
use crate::context::{
    Kernel, DICE, FINALIZE, PACK, PAIRS, PAIRS_SUBGROUP, POINTWISE, POINTWISE_VEC4,
    POINTWISE_VEC4_HALF, ROWS, ROWS_SUBGROUP,
};
use crate::loss::{DiceMode, Loss, TargetKind, CATALOG};

const KERNELS: &[(&str, &Kernel)] = &[
    ("POINTWISE", &POINTWISE),
    ("POINTWISE_VEC4", &POINTWISE_VEC4),
    ("POINTWISE_VEC4_HALF", &POINTWISE_VEC4_HALF),
    ("ROWS", &ROWS),
    ("ROWS_SUBGROUP", &ROWS_SUBGROUP),
    ("PAIRS", &PAIRS),
    ("PAIRS_SUBGROUP", &PAIRS_SUBGROUP),
    ("DICE", &DICE),
    ("FINALIZE", &FINALIZE),
    ("PACK", &PACK),
    #[cfg(feature = "cli")]
    ("COPY", &COPY),
];

fn file(kernel: &Kernel) -> String {
    format!("shaders/{}.wgsl", kernel.name)
}

/// Kernels that use subgroup operations: the host builds them only on a
/// device with `Features::SUBGROUP`.
fn uses_subgroups(kernel: &Kernel) -> bool {
    [ROWS_SUBGROUP.name, PAIRS_SUBGROUP.name].contains(&kernel.name)
}

/// The kernel's source as the host compiles it (common.wgsl and the family's
/// file), parsed.
fn parse(kernel: &Kernel) -> Module {
    naga::front::wgsl::parse_str(kernel.source).unwrap_or_else(|e| {
        panic!(
            "{}: {}",
            file(kernel),
            e.emit_to_string_with_path(kernel.source, &file(kernel))
        )
    })
}

/// Panics with every problem found, one a line.
fn report(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} contract problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn scalar_name(s: Scalar) -> String {
    match s.kind {
        ScalarKind::Uint => format!("u{}", 8 * s.width),
        ScalarKind::Sint => format!("i{}", 8 * s.width),
        ScalarKind::Float => format!("f{}", 8 * s.width),
        _ => format!("{s:?}"),
    }
}

/// A Rust field type that may cross into a uniform: a 4-byte scalar, or an
/// array of them (`ELEMENTS`: `None` for a scalar).
trait Member {
    const SCALAR: Scalar;
    const ELEMENTS: Option<usize>;
}

trait Word {
    const SCALAR: Scalar;
}

impl Word for u32 {
    const SCALAR: Scalar = Scalar::U32;
}
impl Word for i32 {
    const SCALAR: Scalar = Scalar::I32;
}
impl Word for f32 {
    const SCALAR: Scalar = Scalar::F32;
}

impl<T: Word> Member for T {
    const SCALAR: Scalar = T::SCALAR;
    const ELEMENTS: Option<usize> = None;
}
impl<T: Word, const N: usize> Member for [T; N] {
    const SCALAR: Scalar = T::SCALAR;
    const ELEMENTS: Option<usize> = Some(N);
}

/// The type of the field `get` reads, inferred so that the field list of
/// `rust_struct!` need not repeat it.
fn member<S, T: Member>(_get: fn(&S) -> &T) -> (Scalar, Option<usize>) {
    (T::SCALAR, T::ELEMENTS)
}

struct RustField {
    name: &'static str,
    offset: usize,
    scalar: Scalar,
    elements: Option<usize>,
}

struct RustStruct {
    name: &'static str,
    size: usize,
    fields: Vec<RustField>,
}

/// A `#[repr(C)]` struct's fields with their offsets and types. The list
/// must name every field: the struct literal below does not compile
/// otherwise ("missing field"), so a field added or renamed in the struct
/// fails the build of this test until the list follows it (and then the
/// comparison with the shader tells whether the WGSL followed too).
macro_rules! rust_struct {
    ($s:ident { $($f:ident),* $(,)? }) => {{
        let _exhaustive = || $s { $($f: bytemuck::Zeroable::zeroed()),* };
        RustStruct {
            name: stringify!($s),
            size: size_of::<$s>(),
            fields: vec![$({
                let (scalar, elements) = member(|p: &$s| &p.$f);
                RustField { name: stringify!($f), offset: offset_of!($s, $f), scalar, elements }
            }),*],
        }
    }};
}

/// One scalar slot of a Rust struct under the mapping rule: its WGSL name,
/// how the Rust side spells it, its offset and type.
struct Slot {
    wgsl: String,
    rust: String,
    offset: usize,
    scalar: Scalar,
}

fn slots(s: &RustStruct) -> Vec<Slot> {
    let mut out = Vec::new();
    for f in &s.fields {
        match f.elements {
            None => out.push(Slot {
                wgsl: f.name.to_string(),
                rust: format!("{}.{}", s.name, f.name),
                offset: f.offset,
                scalar: f.scalar,
            }),
            Some(n) => out.extend((0..n).map(|k| Slot {
                wgsl: format!("{}{k}", f.name),
                rust: format!("{}.{}[{k}]", s.name, f.name),
                offset: f.offset + k * f.scalar.width as usize,
                scalar: f.scalar,
            })),
        }
    }
    out
}

/// The type the kernel's uniform is declared with.
fn uniform_type(module: &Module) -> Option<&naga::Type> {
    module
        .global_variables
        .iter()
        .find(|(_, g)| g.space == AddressSpace::Uniform)
        .map(|(_, g)| &module.types[g.ty])
}

fn compare_params(kernel: &Kernel, rust: &RustStruct, problems: &mut Vec<String>) {
    let module = parse(kernel);
    let file = file(kernel);
    let Some(ty) = uniform_type(&module) else {
        problems.push(format!("{file} declares no uniform for {}", rust.name));
        return;
    };
    let wgsl_name = format!("{file} {}", ty.name.as_deref().unwrap_or("(unnamed)"));
    let TypeInner::Struct { members, span } = &ty.inner else {
        problems.push(format!("{wgsl_name} is not a struct"));
        return;
    };
    // name -> (offset, scalar); a non-scalar member is a problem of its own.
    let mut wgsl = Vec::new();
    for m in members {
        let name = m.name.clone().unwrap_or_default();
        match module.types[m.ty].inner {
            TypeInner::Scalar(s) => wgsl.push((name, m.offset as usize, s)),
            ref other => problems.push(format!(
                "{wgsl_name}.{name} is {other:?}: the contract maps only scalar members"
            )),
        }
    }
    let rust_slots = slots(rust);
    for slot in &rust_slots {
        match wgsl.iter().find(|(n, _, _)| *n == slot.wgsl) {
            None => problems.push(format!(
                "{} at {} has no member `{}` in {wgsl_name}",
                slot.rust, slot.offset, slot.wgsl
            )),
            Some((n, offset, scalar)) => {
                if *offset != slot.offset {
                    problems.push(format!(
                        "{wgsl_name}.{n} at {offset}, {} at {}",
                        slot.rust, slot.offset
                    ));
                }
                if *scalar != slot.scalar {
                    problems.push(format!(
                        "{wgsl_name}.{n} is {}, {} is {}",
                        scalar_name(*scalar),
                        slot.rust,
                        scalar_name(slot.scalar)
                    ));
                }
            }
        }
    }
    for (n, offset, _) in &wgsl {
        if !rust_slots.iter().any(|s| s.wgsl == *n) {
            problems.push(format!(
                "{wgsl_name}.{n} at {offset} has no field in {}",
                rust.name
            ));
        }
    }
    if *span as usize != rust.size {
        problems.push(format!(
            "{wgsl_name} is {span} bytes, {} is {}",
            rust.name, rust.size
        ));
    }
}

#[test]
fn params_match_the_shaders() {
    let mut problems = Vec::new();
    #[rustfmt::skip]
    let pairs = [
        (&POINTWISE, rust_struct!(PointParams {
            n, per_target, w_inner, w_len, a_inner, a_len, groups_x, base,
            partial_base, w_sliced, a_sliced, p, scale_mode, d_at, divisor, repeat, per_thread,
            first, _pad,
        })),
        (&POINTWISE_VEC4, rust_struct!(PointParams {
            n, per_target, w_inner, w_len, a_inner, a_len, groups_x, base,
            partial_base, w_sliced, a_sliced, p, scale_mode, d_at, divisor, repeat, per_thread,
            first, _pad,
        })),
        (&POINTWISE_VEC4_HALF, rust_struct!(PointParams {
            n, per_target, w_inner, w_len, a_inner, a_len, groups_x, base,
            partial_base, w_sliced, a_sliced, p, scale_mode, d_at, divisor, repeat, per_thread,
            first, _pad,
        })),
        (&ROWS, rust_struct!(RowsParams {
            rows, classes, inner, has_weight, write_items, groups_x, eps, gamma, ignore, x_skip,
            t_skip, o_skip, partial_base, scale_mode, d_at, divisor, per_group, lanes, chunk,
            chunks, states_at, _pad,
        })),
        (&ROWS_SUBGROUP, rust_struct!(RowsParams {
            rows, classes, inner, has_weight, write_items, groups_x, eps, gamma, ignore, x_skip,
            t_skip, o_skip, partial_base, scale_mode, d_at, divisor, per_group, lanes, chunk,
            chunks, states_at, _pad,
        })),
        (&PAIRS, rust_struct!(PairsParams {
            rows, dim, write_items, groups_x, flag, margin, p, eps, skip, row_skip,
            partial_base, divisor, cos_eps, lanes, _pad,
        })),
        (&PAIRS_SUBGROUP, rust_struct!(PairsParams {
            rows, dim, write_items, groups_x, flag, margin, p, eps, skip, row_skip,
            partial_base, divisor, cos_eps, lanes, _pad,
        })),
        (&DICE, rust_struct!(DiceParams {
            pixels, classes, inner, groups_x, groups, class_target, activation, has_ignore,
            ignore, ignore_class, smoothing, eps, log_loss, mean, write_items, skip, target_skip,
            partial_base, grad, coef_at, per_thread, _pad,
        })),
        (&FINALIZE, rust_struct!(FinalizeParams { count, mode, divisor, _pad })),
        (&PACK, rust_struct!(PackParams { n, groups_x, dtype, _pad })),
        #[cfg(feature = "cli")]
        (&COPY, rust_struct!(CopyParams { n4, groups_x, _pad })),
    ];
    for (kernel, rust) in &pairs {
        compare_params(kernel, rust, &mut problems);
    }
    report(problems);
}

/// The value of `const <name>: u32` (or i32, or an abstract integer) in the
/// module, if it declares one.
fn const_int(module: &Module, name: &str) -> Option<i64> {
    let (_, c) = module
        .constants
        .iter()
        .find(|(_, c)| c.name.as_deref() == Some(name))?;
    match module.global_expressions[c.init] {
        Expression::Literal(Literal::U32(v)) => Some(v.into()),
        Expression::Literal(Literal::I32(v)) => Some(v.into()),
        Expression::Literal(Literal::AbstractInt(v)) => Some(v),
        ref other => panic!("const {name} is {other:?}, not an integer literal"),
    }
}

/// Checks that the kernel declares `const <name>` with the host's `value`.
fn expect_const(
    kernel: &Kernel,
    module: &Module,
    name: &str,
    value: i64,
    rust: &str,
    problems: &mut Vec<String>,
) {
    match const_int(module, name) {
        None => problems.push(format!(
            "{} declares no const {name}; {rust} is {value}",
            file(kernel)
        )),
        Some(v) if v != value => problems.push(format!(
            "{} const {name} = {v}, {rust} is {value}",
            file(kernel)
        )),
        Some(_) => {}
    }
}

#[test]
fn loss_ids_match_the_shaders() {
    let mut problems = Vec::new();
    let modules: Vec<Module> = [&POINTWISE, &ROWS, &PAIRS].into_iter().map(parse).collect();
    let [point_m, rows_m, pairs_m] = &modules[..] else {
        unreachable!()
    };
    let mut ids: [Vec<(u32, String)>; 3] = Default::default();
    for entry in CATALOG {
        let name = entry.name.to_uppercase();
        match (entry.default)() {
            Loss::Pointwise(l) => {
                let id = pointwise::loss_id(&l).0;
                let rust = format!("pointwise::loss_id({})", entry.name);
                expect_const(&POINTWISE, point_m, &name, id.into(), &rust, &mut problems);
                ids[0].push((id, rust));
            }
            Loss::Rows(l) => {
                let id = rows::loss_id(&l, false).0;
                let rust = format!("rows::loss_id({}, class targets)", entry.name);
                expect_const(&ROWS, rows_m, &name, id.into(), &rust, &mut problems);
                ids[1].push((id, rust));
                if entry.target == TargetKind::ClassesOrFloats {
                    let id = rows::loss_id(&l, true).0;
                    let rust = format!("rows::loss_id({}, probability targets)", entry.name);
                    let name = format!("{name}_PROB");
                    expect_const(&ROWS, rows_m, &name, id.into(), &rust, &mut problems);
                    ids[1].push((id, rust));
                }
            }
            Loss::Pairs(l) => {
                let id = pairs::loss_id(&l);
                let rust = format!("pairs::loss_id({})", entry.name);
                expect_const(&PAIRS, pairs_m, &name, id.into(), &rust, &mut problems);
                ids[2].push((id, rust));
            }
            // One shader, no LOSS override: its selectors are checked below.
            Loss::Dice(_) => {}
        }
    }
    // Two losses of a family on one id would run one loss's formula for both.
    for family in &ids {
        for (i, (id, rust)) in family.iter().enumerate() {
            for (other, other_rust) in &family[i + 1..] {
                if id == other {
                    problems.push(format!("{rust} and {other_rust} are both {id}"));
                }
            }
        }
    }

    for (p, name) in [
        (3.0, "NORM_P"),
        (1.0, "NORM_1"),
        (2.0, "NORM_2"),
        (f32::INFINITY, "NORM_INF"),
    ] {
        let rust = format!("pairs::norm_id({p})");
        expect_const(
            &PAIRS,
            pairs_m,
            name,
            pairs::norm_id(p).into(),
            &rust,
            &mut problems,
        );
    }
    let dice_m = parse(&DICE);
    for (mode, name) in [
        (DiceMode::Binary, "SIGMOID"),
        (DiceMode::Multilabel, "SIGMOID"),
        (DiceMode::Multiclass, "SOFTMAX"),
    ] {
        let rust = format!("dice::activation_id(from logits, {})", mode.name());
        let id = dice::activation_id(true, mode);
        expect_const(&DICE, &dice_m, name, id.into(), &rust, &mut problems);
    }
    report(problems);
}

#[test]
fn shared_constants_match_the_shaders() {
    let mut problems = Vec::new();
    for &(_, kernel) in KERNELS {
        let module = parse(kernel);
        // Every kernel carries common.wgsl, so WG is checked in each.
        expect_const(kernel, &module, "WG", WG as i64, "plan::WG", &mut problems);
        for (name, dtype) in [
            ("DT_F32", DType::F32),
            ("DT_F16", DType::F16),
            ("DT_BF16", DType::Bf16),
        ] {
            let code = dtype_code(dtype) as i64;
            expect_const(
                kernel,
                &module,
                name,
                code,
                "evaluator::dtype_code",
                &mut problems,
            );
        }
        for ep in &module.entry_points {
            if ep.workgroup_size != [WG as u32, 1, 1] {
                problems.push(format!(
                    "{} {} has @workgroup_size{:?}, plan::WG is {WG}",
                    file(kernel),
                    ep.name,
                    ep.workgroup_size
                ));
            }
        }
    }
    for (kernel, name, value, rust) in [
        (&POINTWISE, "ITEMS", pointwise::ITEMS, "pointwise::ITEMS"),
        (&DICE, "ITEMS", dice::ITEMS, "dice::ITEMS"),
        (
            &DICE,
            "COALESCED_CLASSES",
            dice::COALESCED_CLASSES,
            "dice::COALESCED_CLASSES",
        ),
        (
            &DICE,
            "PIXEL_CLASSES",
            dice::PIXEL_CLASSES,
            "dice::PIXEL_CLASSES",
        ),
        (&ROWS, "NLL_ROWS", rows::NLL_ROWS, "rows::NLL_ROWS"),
        (&PACK, "ITEMS", PACK_ITEMS, "evaluator::PACK_ITEMS"),
        #[cfg(feature = "cli")]
        (&COPY, "ITEMS", COPY_ITEMS, "bench::COPY_ITEMS"),
    ] {
        let module = parse(kernel);
        expect_const(kernel, &module, name, value as i64, rust, &mut problems);
    }
    report(problems);
}

#[test]
fn bindings_match_the_kernels() {
    let mut problems = Vec::new();
    for &(name, kernel) in KERNELS {
        let module = parse(kernel);
        let file = file(kernel);
        let (mut reads, mut writes, mut uniforms) = (Vec::new(), Vec::new(), Vec::new());
        for (_, g) in module.global_variables.iter() {
            let Some(b) = &g.binding else { continue };
            let var = g.name.as_deref().unwrap_or("(unnamed)");
            if b.group != 0 {
                problems.push(format!("{file} binds {var} in group {}, not 0", b.group));
            }
            match g.space {
                AddressSpace::Storage { access } if access.contains(StorageAccess::STORE) => {
                    writes.push(b.binding)
                }
                AddressSpace::Storage { .. } => reads.push(b.binding),
                AddressSpace::Uniform => uniforms.push(b.binding),
                ref space => problems.push(format!(
                    "{file} binds {var} in {space:?}: the host binds only storage buffers and one uniform"
                )),
            }
        }
        for v in [&mut reads, &mut writes, &mut uniforms] {
            v.sort_unstable();
        }
        let (r, w) = (kernel.reads, kernel.writes);
        let want_reads: Vec<u32> = (0..r).collect();
        let want_writes: Vec<u32> = (r..r + w).collect();
        if reads != want_reads {
            problems.push(format!(
                "{file} binds {} read-only storage buffers at {reads:?}, {name} has reads = {r} (bindings {want_reads:?})",
                reads.len()
            ));
        }
        if writes != want_writes {
            problems.push(format!(
                "{file} binds {} read-write storage buffers at {writes:?}, {name} has writes = {w} (bindings {want_writes:?})",
                writes.len()
            ));
        }
        if uniforms != [r + w] {
            problems.push(format!(
                "{file} binds uniforms at {uniforms:?}, {name} puts its params at binding {}",
                r + w
            ));
        }
    }
    report(problems);
}

/// The LOSS values the host gives `kernel`: the id of every catalog loss of
/// its family (both target kinds for rows).
fn loss_values(kernel: &Kernel) -> Vec<u32> {
    let mut ids = Vec::new();
    for entry in CATALOG {
        match (kernel.name, (entry.default)()) {
            ("pointwise" | "pointwise_vec4" | "pointwise_vec4_half", Loss::Pointwise(l)) => {
                ids.push(pointwise::loss_id(&l).0)
            }
            ("rows" | "rows_subgroup", Loss::Rows(l)) => {
                ids.push(rows::loss_id(&l, false).0);
                ids.push(rows::loss_id(&l, true).0);
            }
            ("pairs" | "pairs_subgroup", Loss::Pairs(l)) => ids.push(pairs::loss_id(&l)),
            _ => {}
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Every combination of the values the host may give the module's override
/// constants.
fn override_combinations(kernel: &Kernel, module: &Module) -> Vec<Vec<(String, f64)>> {
    let mut combos = vec![vec![]];
    let mut dtypes = Vec::new();
    for (_, o) in module.overrides.iter() {
        // naga adds unnamed overrides for expressions of named ones (an
        // array length such as `N / LOSS`): they follow from the named.
        let Some(name) = o.name.clone() else { continue };
        if name.starts_with("DTYPE_") {
            dtypes.push(name);
            continue;
        }
        let values: Vec<f64> = match name.as_str() {
            "LOSS" => loss_values(kernel).into_iter().map(f64::from).collect(),
            "GRAD" | "WEIGHT" | "AUX" | "WRITE_ITEMS" | "CLASS_TARGET" | "SMOOTHING" | "FLAG0"
            | "FLAG1" | "SWAP" => {
                vec![0.0, 1.0]
            }
            // dice-pixels: the fewest and the most classes it compiles for,
            // and each activation.
            "CLASSES" => vec![1.0, dice::PIXEL_CLASSES as f64],
            "NORM" => [3.0, 1.0, 2.0, f32::INFINITY]
                .map(|p| f64::from(pairs::norm_id(p)))
                .to_vec(),
            "ACTIVATION" => vec![0.0, 1.0, 2.0],
            _ => panic!(
                "{} declares override {name}: add the values the host gives it here",
                file(kernel)
            ),
        };
        assert!(
            !values.is_empty(),
            "{} declares override {name}, but no catalog loss uses this kernel",
            file(kernel)
        );
        let mut next = Vec::new();
        for c in &combos {
            for &v in &values {
                let mut c = c.clone();
                c.push((name.clone(), v));
                next.push(c);
            }
        }
        combos = next;
    }
    // The bindings' dtypes, together: all f32, all f16, all bf16 (each
    // binding's reads are the same code whatever the others hold).
    if !dtypes.is_empty() {
        let dtypes = &dtypes;
        combos = combos
            .into_iter()
            .flat_map(|c| {
                DType::ALL.into_iter().map(move |d| {
                    let mut c = c.clone();
                    c.extend(dtypes.iter().map(|n| (n.clone(), dtype_code(d))));
                    c
                })
            })
            .collect();
    }
    combos
}

/// The language versions `translate` writes for a kernel.
struct Targets {
    msl: (u8, u8),
    hlsl: naga::back::hlsl::ShaderModel,
}

impl Targets {
    /// The oldest that wgpu still compiles for: MSL 2.0, HLSL shader model
    /// 5.1 (the FXC path); for subgroup operations the oldest that has them:
    /// MSL 2.1 (simd-group functions), shader model 6.0 (wave intrinsics,
    /// DXC), which is also what wgpu requires before it offers
    /// `Features::SUBGROUP` on DX12. GLSL is ES 3.10 (the first with compute
    /// shaders, and with the KHR_shader_subgroup extensions) for both.
    fn of(kernel: &Kernel) -> Targets {
        use naga::back::hlsl::ShaderModel;
        if uses_subgroups(kernel) {
            Targets {
                msl: (2, 1),
                hlsl: ShaderModel::V6_0,
            }
        } else {
            Targets {
                msl: (2, 0),
                hlsl: ShaderModel::V5_1,
            }
        }
    }
}

/// Translates one entry point, specialised, for each backend wgpu-loss
/// enables, at `targets`.
fn translate(
    module: &Module,
    info: &naga::valid::ModuleInfo,
    entry: &str,
    constants: &naga::back::PipelineConstants,
    targets: &Targets,
) -> Result<(), String> {
    use naga::back::{glsl, hlsl, msl, spv};
    use naga::ShaderStage::Compute;
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((Compute, entry)),
        constants,
    )
    .map_err(|e| format!("overrides: {e}"))?;
    let (module, info) = (&*module, &*info);

    spv::write_vec(
        module,
        info,
        &spv::Options::default(),
        Some(&spv::PipelineOptions {
            shader_stage: Compute,
            entry_point: entry.to_string(),
        }),
    )
    .map_err(|e| format!("SPIR-V: {e}"))?;

    msl::write_string(
        module,
        info,
        &msl::Options {
            lang_version: targets.msl,
            ..Default::default()
        },
        &msl::PipelineOptions {
            entry_point: Some((Compute, entry.to_string())),
            ..Default::default()
        },
    )
    .map_err(|e| format!("MSL: {e}"))?;

    let mut hlsl_out = String::new();
    let hlsl_options = hlsl::Options {
        shader_model: targets.hlsl,
        ..Default::default()
    };
    let hlsl_pipeline = hlsl::PipelineOptions {
        entry_point: Some((Compute, entry.to_string())),
    };
    hlsl::Writer::new(&mut hlsl_out, &hlsl_options, &hlsl_pipeline)
        .write(module, info, None)
        .map_err(|e| format!("HLSL: {e}"))?;

    let mut glsl_out = String::new();
    let glsl_pipeline = glsl::PipelineOptions {
        shader_stage: Compute,
        entry_point: entry.to_string(),
        multiview: None,
    };
    glsl::Writer::new(
        &mut glsl_out,
        module,
        info,
        &glsl::Options::default(),
        &glsl_pipeline,
        naga::proc::BoundsCheckPolicies::default(),
    )
    .and_then(|mut w| w.write())
    .map_err(|e| format!("GLSL: {e}"))?;
    Ok(())
}

#[test]
fn every_kernel_translates_for_every_backend() {
    use naga::valid::{Capabilities, ValidationFlags, Validator};
    let mut problems = Vec::new();
    for &(_, kernel) in KERNELS {
        let module = parse(kernel);
        // No capabilities but for the subgroup kernel: the others must build
        // on a device with no features.
        let caps = if uses_subgroups(kernel) {
            Capabilities::SUBGROUP
        } else {
            Capabilities::empty()
        };
        let info = match Validator::new(ValidationFlags::all(), caps).validate(&module) {
            Ok(info) => info,
            Err(e) => {
                problems.push(format!(
                    "{}: {}",
                    file(kernel),
                    e.emit_to_string_with_path(kernel.source, &file(kernel))
                ));
                continue;
            }
        };
        let combos = override_combinations(kernel, &module);
        let targets = Targets::of(kernel);
        for ep in &module.entry_points {
            for combo in &combos {
                let constants: naga::back::PipelineConstants = combo.iter().cloned().collect();
                if let Err(e) = translate(&module, &info, &ep.name, &constants, &targets) {
                    problems.push(format!("{} {} {combo:?}: {e}", file(kernel), ep.name));
                }
            }
        }
    }
    report(problems);
}

#[test]
fn only_the_subgroup_kernel_needs_subgroups() {
    use naga::valid::{Capabilities, ValidationFlags, Validator};
    // Without the capability naga rejects the subgroup kernel: it must stay a
    // module of its own, built only on devices with `Features::SUBGROUP`.
    let module = parse(&ROWS_SUBGROUP);
    let without = Validator::new(ValidationFlags::all(), Capabilities::empty()).validate(&module);
    assert!(without.is_err(), "rows_subgroup validates without SUBGROUP");
    // And it holds every entry point of ROWS, whose host code it shares.
    let rows = parse(&ROWS);
    for ep in &rows.entry_points {
        assert!(
            module.entry_points.iter().any(|e| e.name == ep.name),
            "rows_subgroup lacks {}",
            ep.name
        );
    }
    assert!(module.entry_points.iter().any(|e| e.name == "row_subgroup"));
}

/// One statement of WGSL source, comments dropped: its text, the line it
/// starts on, and the function it is in (None at module scope).
struct Stmt {
    line: usize,
    text: String,
    func: Option<String>,
}

/// `src` cut at every `;`, `{` and `}`: statements, conditions and headers.
fn statements(src: &str) -> Vec<Stmt> {
    let mut out = Vec::new();
    let (mut depth, mut func, mut text, mut start) = (0usize, None::<String>, String::new(), 0);
    for (n, full) in src.lines().enumerate() {
        for ch in full.split("//").next().unwrap_or("").chars() {
            if !matches!(ch, ';' | '{' | '}') {
                if text.trim().is_empty() {
                    start = n + 1;
                }
                text.push(ch);
                continue;
            }
            let t = text.trim().to_string();
            text.clear();
            if ch == '{' && depth == 0 {
                if let Some(name) = fn_name(&t) {
                    func = Some(name);
                }
            }
            if !t.is_empty() {
                out.push(Stmt {
                    line: start,
                    text: t,
                    func: func.clone(),
                });
            }
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        func = None;
                    }
                }
                _ => {}
            }
        }
        text.push(' ');
    }
    out
}

/// The function a header (`@compute .. fn name(..) -> T`) declares.
fn fn_name(header: &str) -> Option<String> {
    let mut words = header.split_whitespace();
    words.find(|w| *w == "fn")?;
    words.next()?.split('(').next().map(str::to_string)
}

/// The end of the call whose name (`len` long) starts at `at` in `text`: one
/// past its closing parenthesis.
fn call_end(text: &str, at: usize, len: usize) -> usize {
    let mut depth = 0;
    for (i, c) in text[at + len..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return at + len + i + 1;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// Where `name(` is called in `text` (not `other_name(` nor `fn name(`).
fn calls(text: &str, name: &str) -> Vec<usize> {
    let pat = format!("{name}(");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(&pat).map(|i| i + from) {
        from = at + pat.len();
        let prev = text[..at].chars().next_back();
        if prev.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if text[..at].trim_end().ends_with("fn") {
            continue;
        }
        found.push(at);
    }
    found
}

/// Whether the call of a helper at `at` (its name `len` long) in `text` is an
/// operand of a comparison.
fn compared(text: &str, at: usize, len: usize) -> bool {
    const OPS: [&str; 6] = ["==", "!=", "<=", ">=", "<", ">"];
    let before = text[..at].trim_end();
    let before = before.strip_suffix('-').unwrap_or(before).trim_end();
    let after = text[call_end(text, at, len)..].trim_start();
    // `->` is a return type; a lone `=` is an assignment.
    (OPS.iter().any(|op| before.ends_with(op)) && !before.ends_with("->"))
        || (OPS.iter().any(|op| after.starts_with(op)) && !after.starts_with("->"))
}

/// A store: `name[index] = value`.
fn is_store(text: &str) -> bool {
    let Some(eq) = text.find('=') else {
        return false;
    };
    let (lhs, rhs) = (text[..eq].trim(), &text[eq + 1..]);
    !rhs.starts_with('=')
        && lhs.ends_with(']')
        && lhs
            .split('[')
            .next()
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_'))
}

/// The helpers that turn kinds into the IEEE values a kernel stores: their
/// calls may stand only in a store (or a `let` read only by stores).
const STORE_HELPERS: [&str; 3] = ["kind_bits", "ext_f32", "pair_value"];
/// The functions of common.wgsl that may build a NaN or an infinity, or call
/// the store helpers as values: the store helpers themselves.
const NONFINITE_HELPERS: [&str; 3] = STORE_HELPERS;
/// Helpers that would hand out NaN or an infinity as a working value: none is
/// allowed anywhere, whether or not a shader defines it.
const WORKING_NONFINITE: [&str; 2] = ["nan", "inf"];

/// Whether `v` (a u32 literal's value) is the bit pattern of an f32 NaN or
/// infinity.
fn nonfinite_bits(v: u64) -> bool {
    v <= u32::MAX as u64 && (v as u32 & 0x7f80_0000) == 0x7f80_0000
}

/// The hex literals of `text` whose value is a non-finite f32 pattern.
fn nonfinite_literals(text: &str) -> bool {
    text.match_indices("0x").any(|(at, _)| {
        let digits: String = text[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        u64::from_str_radix(&digits, 16).is_ok_and(nonfinite_bits)
    })
}

/// The problems of one WGSL file (`name` as reported, `common` for
/// common.wgsl): non-finite values built outside `kind_bits`, working NaN or
/// infinities (`WORKING_NONFINITE`), and store helpers outside stores or
/// compared.
fn nonfinite_problems(name: &str, src: &str, common: bool) -> Vec<String> {
    let stmts = statements(src);
    let in_helper = |s: &Stmt| {
        common
            && s.func
                .as_deref()
                .is_some_and(|f| NONFINITE_HELPERS.contains(&f))
    };
    let func = |s: &Stmt| s.func.clone().unwrap_or_else(|| "module scope".into());
    // Constants bound to a non-finite pattern, which a bitcast could read.
    let consts: Vec<String> = stmts
        .iter()
        .filter(|s| s.text.starts_with("const ") && nonfinite_literals(&s.text))
        .filter_map(|s| {
            s.text[6..]
                .split([':', '='])
                .next()
                .map(|n| n.trim().to_string())
        })
        .collect();
    let mut problems = Vec::new();
    for (k, s) in stmts.iter().enumerate() {
        let text = &s.text;
        let mut problem = |why: String| {
            problems.push(format!(
                "{name}:{}: `{text}` (fn {}): {why}",
                s.line,
                func(s)
            ))
        };
        // A bitcast of a NaN's or an infinity's bits (a mask with `&` only
        // keeps bits the value had).
        let builds = text.match_indices("bitcast<f32>").any(|(at, m)| {
            let arg = &text[at + m.len()..call_end(text, at, m.len())];
            let named = consts.iter().any(|c| {
                arg.split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                    .any(|w| w == c)
            });
            (nonfinite_literals(arg) || named) && !arg.contains('&')
        });
        if builds && !(common && s.func.as_deref() == Some("kind_bits")) {
            problem("builds a NaN or an infinity outside common.wgsl's kind_bits".into());
        }
        if fn_name(text).is_some() {
            continue;
        }
        for helper in WORKING_NONFINITE {
            if calls(text, helper).is_empty() {
                continue;
            }
            problem(format!(
                "{helper}() is a working NaN or infinity: carry the kind (Ext) and build the value with ext_f32 where it is stored"
            ));
        }
        for helper in STORE_HELPERS {
            for at in calls(text, helper) {
                if compared(text, at, helper.len()) {
                    problem(format!(
                        "compares with {helper}(): test the kind (kind_of, Ext.k) instead"
                    ));
                    continue;
                }
                if in_helper(s) || is_store(text) {
                    continue;
                }
                // `let v = helper(..)`, v read at least once and only by stores.
                let whole = call_end(text, at, helper.len()) == text.len()
                    && text[..at].trim_end().ends_with('=');
                let bound = text
                    .strip_prefix("let ")
                    .filter(|_| whole)
                    .and_then(|r| r.split(['=', ':']).next())
                    .map(|v| v.trim().to_string());
                let only_stored = bound.as_ref().is_some_and(|v| {
                    let uses: Vec<&Stmt> = stmts[k + 1..]
                        .iter()
                        .take_while(|t| t.func == s.func)
                        .filter(|t| {
                            t.text
                                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                                .any(|w| w == v)
                        })
                        .collect();
                    !uses.is_empty() && uses.iter().all(|t| is_store(&t.text))
                });
                if !only_stored {
                    problem(format!(
                        "{helper}() gives the IEEE value to store: call it only in a store (`buffer[i] = ...`)"
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn the_nonfinite_scan_sees_every_way_in() {
    let common = "fn kind_bits(k: u32) -> f32 {\n    return bitcast<f32>(0x7fc00000u);\n}\n\
                  fn ext_f32(e: Ext) -> f32 {\n    return select(e.v, kind_bits(e.k), e.k != K_FIN);\n}\n";
    assert!(nonfinite_problems("common", common, true).is_empty());
    // Each of these, in a kernel's function, is one problem.
    for bad in [
        "let m = bitcast<f32>(0xff800000u);",
        "return bitcast<f32>(0x7f800001u) * x;",
        "var t = nan();",
        "if (x == nan()) {",
        "let y = select(a, -inf(), c);",
        "let r = kind_bits(K_NAN) * 2.0;",
        "return ext_f32(e);",
        "if (x == ext_f32(e)) {",
        "out[i] = select(x, 0.0, x == kind_bits(K_PINF));",
        "let v = ext_f32(e);\n    let w = v + 1.0;",
    ] {
        let src = format!("fn f(x: f32) -> f32 {{\n    {bad}\n}}\n");
        let found = nonfinite_problems("k.wgsl", &src, false);
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert!(found[0].starts_with("k.wgsl:2: `"), "{found:?}");
        assert!(found[0].contains("(fn f)"), "{found:?}");
    }
    // pairs.wgsl once had allowances; none is left.
    let pairs =
        "fn max_norm(s: MaxAcc) -> f32 {\n    return select(s.m, nan(), s.nans > 0.0);\n}\n";
    let found = nonfinite_problems("shaders/pairs.wgsl", pairs, false);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("nan() is a working NaN"), "{found:?}");
    // A bitcast of a constant that holds an infinity's bits.
    let src = "const INF_BITS: u32 = 0x7f800000u;\nfn f() -> f32 {\n    return bitcast<f32>(INF_BITS);\n}\n";
    assert_eq!(nonfinite_problems("k.wgsl", src, false).len(), 1);
    for good in [
        "out[i] = ext_f32(v);",
        "grad[a + b[c]] = select(0.0, kind_bits(K_NAN), y == BAD);",
        "let r = pair_value(s, k);\n    out[at] = r.x;\n    out[at + 1u] = r.y;",
        "let b = bitcast<u32>(x) & 0x7fffffffu;",
        "if ((bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u) {",
        "let y = is_inf(x) == true;",
        "var m = -FLT_MAX; // not nan()",
    ] {
        let src = format!("fn f(x: f32) {{\n    {good}\n}}\n");
        let found = nonfinite_problems("k.wgsl", &src, false);
        assert!(found.is_empty(), "{good}: {found:?}");
    }
}

/// No kernel computes with a NaN or an infinity it made: `kind_bits` in
/// common.wgsl is the only place that builds one (from the bits), and it and
/// the helpers over it (`ext_f32`, `pair_value`) stand only in stores. A
/// compiler that assumes no inf or NaN (Metal's fast math, DXC's `fast`
/// flags, WGSL itself) may fold any other use. Arguments that are NaN or
/// infinite are classified from their bits (`kind_of`, `ext`) and carried
/// as kinds (`Ext`); the scan cannot see those, nor a finite computation that
/// overflows: the kernels' comments and tests/losses/nonfinite.rs do.
/// Every file of shaders/, each scanned once (a kernel's source is
/// common.wgsl followed by one or more of them, so scanning kernels would
/// report a shared file under another's name).
const SHADER_FILES: [(&str, &str); 15] = [
    ("common.wgsl", include_str!("../../shaders/common.wgsl")),
    (
        "pointwise.wgsl",
        include_str!("../../shaders/pointwise.wgsl"),
    ),
    (
        "pointwise_scalar.wgsl",
        include_str!("../../shaders/pointwise_scalar.wgsl"),
    ),
    (
        "pointwise_vec4.wgsl",
        include_str!("../../shaders/pointwise_vec4.wgsl"),
    ),
    (
        "pointwise_vec4_f32.wgsl",
        include_str!("../../shaders/pointwise_vec4_f32.wgsl"),
    ),
    (
        "pointwise_vec4_half.wgsl",
        include_str!("../../shaders/pointwise_vec4_half.wgsl"),
    ),
    ("rows.wgsl", include_str!("../../shaders/rows.wgsl")),
    (
        "rows_subgroup.wgsl",
        include_str!("../../shaders/rows_subgroup.wgsl"),
    ),
    ("pairs.wgsl", include_str!("../../shaders/pairs.wgsl")),
    (
        "pairs_lanes.wgsl",
        include_str!("../../shaders/pairs_lanes.wgsl"),
    ),
    (
        "pairs_subgroup.wgsl",
        include_str!("../../shaders/pairs_subgroup.wgsl"),
    ),
    ("dice.wgsl", include_str!("../../shaders/dice.wgsl")),
    ("finalize.wgsl", include_str!("../../shaders/finalize.wgsl")),
    ("pack.wgsl", include_str!("../../shaders/pack.wgsl")),
    ("copy.wgsl", include_str!("../../shaders/copy.wgsl")),
];

#[test]
fn nonfinite_values_only_at_stores() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".wgsl") && !SHADER_FILES.iter().any(|(f, _)| *f == name) {
            problems.push(format!(
                "shaders/{name} is not in SHADER_FILES: it is not scanned"
            ));
        }
    }
    for (name, src) in SHADER_FILES {
        problems.extend(nonfinite_problems(
            &format!("shaders/{name}"),
            src,
            name == "common.wgsl",
        ));
    }
    report(problems);
}
