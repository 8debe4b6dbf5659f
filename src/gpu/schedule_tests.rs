//! The families' schedules, checked without a GPU: a schedule is plain data
//! (dispatches, bindings, grids), so how a shape is cut into slices, which
//! passes run and what each binds can be tested on any machine.

use super::dice::DiceVariant;
use super::plan::{
    aligned, chunk_len, grid, units_per_slice, Caps, Role, Schedule, Slice, OFFSET_ALIGN,
};
use super::plan::{FinalizeParams, PointParams};
use super::pointwise::PointVariant::{self, Scalar, Vec4};
use super::rows::{RowsParams, RowsVariant};
use super::{dice, pairs, pointwise, rows};
use crate::inputs::{plan, Geometry, Inputs, RowsPlan, Tensor};
use crate::loss::{Loss, Reduction};

fn schedule(
    loss: &str,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    limit: usize,
    grad: bool,
) -> Schedule {
    let loss = Loss::from_name(loss).unwrap();
    let p = plan(&loss, reduction, inputs).unwrap();
    match &p.geometry {
        // The cutting below is `point-scalar`'s; `point-vec4`'s has tests of its own.
        Geometry::Point(p) => pointwise::schedule(reduction, p, limit, grad, 64, Scalar),
        Geometry::Rows(r) => {
            let best = rows::variants(r, &Caps::default())[0];
            rows::schedule(reduction, r, limit, grad, best)
        }
        Geometry::Pairs(p) => {
            pairs::schedule(reduction, p, limit, grad, pairs::PairsVariant::Thread, 32)
        }
        Geometry::Dice(d) => {
            dice::schedule(reduction, d, limit, grad, 64, DiceVariant::ClassGroups)
        }
    }
    .unwrap()
}

/// The `role` bindings of every dispatch of entry `entry`, in order.
fn bindings(s: &Schedule, entry: &str, role: Role) -> Vec<Slice> {
    s.dispatches
        .iter()
        .filter(|d| d.entry == entry)
        .flat_map(|d| d.bindings.iter().copied().filter(|b| b.role == role))
        .collect()
}

#[test]
fn grids_and_slices() {
    assert_eq!(grid(0), (1, 1));
    assert_eq!(grid(65_535), (65_535, 1));
    assert_eq!(grid(65_536), (65_535, 2));
    assert_eq!(chunk_len(1000, 64), 960);
    assert_eq!(chunk_len(10, 64), 64);
    // All units fit; else a multiple of OFFSET_ALIGN units; else fewer.
    assert_eq!(units_per_slice(10, 50, 1000), Some(50));
    assert_eq!(units_per_slice(1, 5000, 1000), Some(896));
    assert_eq!(units_per_slice(100, 50, 1000), Some(8));
    assert_eq!(units_per_slice(2000, 5, 1000), None);
    let s = aligned(Role::Input, 130, 10);
    assert_eq!((s.offset, s.len), (128, Some(12)));
}

#[test]
fn pointwise_cuts_a_long_input_into_aligned_slices_with_one_finalize() {
    let n = 1000;
    let (x, y) = (vec![0.5f32; n], vec![0.25f32; n]);
    let shape = [n];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    let s = schedule("mse", Reduction::Mean, &inputs, 256, false);
    let slices = bindings(&s, "main", Role::Input);
    assert_eq!(slices.len(), n.div_ceil(256));
    let mut next = 0;
    for b in &slices {
        assert_eq!(b.offset, next, "slices follow each other");
        assert_eq!(b.offset % OFFSET_ALIGN, 0, "and start aligned");
        assert!(b.len.unwrap() <= 256);
        next += b.len.unwrap();
    }
    assert_eq!(next, n);
    assert_eq!(s.dispatches.last().unwrap().entry, "main");
    assert_eq!(s.dispatches.last().unwrap().kernel.name, "finalize");
    assert_eq!(s.output_len, 1);

    // `none` writes the items in place, no finalize.
    let s = schedule("mse", Reduction::None, &inputs, 256, false);
    assert!(s.dispatches.iter().all(|d| d.kernel.name == "pointwise"));
    assert_eq!(bindings(&s, "main", Role::Output).len(), slices.len());
    assert_eq!(s.output_len, n);
}

fn point_schedule(
    loss: &str,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    limit: usize,
    variant: PointVariant,
) -> crate::error::Result<Schedule> {
    let loss = Loss::from_name(loss).unwrap();
    let p = plan(&loss, reduction, inputs).unwrap();
    let Geometry::Point(p) = &p.geometry else {
        unreachable!()
    };
    pointwise::schedule(reduction, p, limit, true, 64, variant)
}

fn point_params(bytes: &[u8]) -> PointParams {
    bytemuck::pod_read_unaligned(bytes)
}

#[test]
fn point_vec4_binds_whole_vectors_and_leaves_the_tail_to_the_scalar_entry() {
    let n = 1001;
    let (x, y) = (vec![0.5f32; n], vec![0.25f32; n]);
    let shape = [n];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    for reduction in [Reduction::Mean, Reduction::None] {
        let s = point_schedule("mse", reduction, &inputs, 256, Vec4).unwrap();
        let bulk = bindings(&s, "main_vec4", Role::Input);
        let lens: Vec<_> = bulk.iter().map(|b| (b.offset, b.len.unwrap())).collect();
        // Every slice's whole vectors; the last slice's 233 leave one element.
        assert_eq!(lens, [(0, 256), (256, 256), (512, 256), (768, 232)]);
        let tail: Vec<_> = s.dispatches.iter().filter(|d| d.entry == "main").collect();
        let tail = if reduction == Reduction::None {
            &tail[..]
        } else {
            // The finalize pass is a `main` too.
            &tail[..tail.len() - 1]
        };
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].kernel.name, "pointwise");
        let input = tail[0].bindings[0];
        assert_eq!(
            (input.offset, input.len),
            (768, Some(233)),
            "bound from the aligned start"
        );
        let p = point_params(&tail[0].params);
        assert_eq!((p.n, p.first, p.base), (233, 232, 768));
        for d in s.dispatches.iter().filter(|d| d.entry == "main_vec4") {
            assert_eq!(d.kernel.name, "pointwise_vec4");
            assert_eq!(point_params(&d.params).first, 0);
        }
        if reduction == Reduction::Mean {
            assert_eq!(s.scratch % 4, 0, "a whole number of vec4s");
        }
    }
    // Under four elements there is no vector: the scalar entry maps them.
    let inputs = Inputs::new(Tensor::new(&x[..3], &[3])).target(Tensor::new(&y[..3], &[3]));
    let s = point_schedule("l1", Reduction::Sum, &inputs, 256, Vec4).unwrap();
    let entries: Vec<_> = s.dispatches.iter().map(|d| d.entry).collect();
    assert_eq!(entries, ["main", "main"]);
}

#[test]
fn point_vec4_needs_element_aligned_tensors() {
    let n = 64;
    let (x, w) = (vec![0.5f32; n], vec![1.0f32; n]);
    let eligible = |inputs: &Inputs<'_>, loss: &str| {
        let loss = Loss::from_name(loss).unwrap();
        let p = plan(&loss, Reduction::Mean, inputs).unwrap();
        let Geometry::Point(p) = &p.geometry else {
            unreachable!()
        };
        pointwise::variants(p, &Caps::default())
    };
    let base = || Inputs::new(Tensor::new(&x, &[4, 16])).target(Tensor::new(&x, &[4, 16]));
    assert_eq!(eligible(&base(), "mse"), [Vec4, Scalar]);
    let full = base().weight(Tensor::new(&w, &[4, 16]));
    assert_eq!(eligible(&full, "mse"), [Vec4, Scalar]);
    // A weight broadcast over rows cannot be read as vectors.
    let row = base().weight(Tensor::new(&w[..16], &[16]));
    assert_eq!(eligible(&row, "mse"), [Scalar]);
    assert!(point_schedule("mse", Reduction::Mean, &row, 1 << 20, Vec4).is_err());
    let pw = base().pos_weight(Tensor::new(&w[..16], &[16]));
    assert_eq!(eligible(&pw, "bce_with_logits"), [Scalar]);
    // With a quantile list a target serves Q elements.
    let loss = Loss::Pointwise(crate::loss::Pointwise::Quantile {
        quantiles: Some(vec![0.1, 0.5, 0.9, 0.99]),
    });
    let inputs = Inputs::new(Tensor::new(&x, &[16, 4])).target(Tensor::new(&x[..16], &[16]));
    let p = plan(&loss, Reduction::Mean, &inputs).unwrap();
    let Geometry::Point(p) = &p.geometry else {
        unreachable!()
    };
    assert_eq!(pointwise::variants(p, &Caps::default()), [Scalar]);
}

#[test]
fn a_weighted_mean_gradient_sums_the_weight_first() {
    let n = 300;
    let (x, y, w) = (vec![0.5f32; n], vec![0.25f32; n], vec![2.0f32; n]);
    let shape = [n];
    let inputs = Inputs::new(Tensor::new(&x, &shape))
        .target(Tensor::new(&y, &shape))
        .weight(Tensor::new(&w, &shape));
    let entries: Vec<_> = schedule("mse", Reduction::Mean, &inputs, 1 << 20, true)
        .dispatches
        .iter()
        .map(|d| d.entry)
        .collect();
    assert_eq!(entries, ["weight_sum", "total", "main", "main"]);
    // Huber's mean divides by the element count: no pre-pass.
    let entries: Vec<_> = schedule("huber", Reduction::Mean, &inputs, 1 << 20, true)
        .dispatches
        .iter()
        .map(|d| d.entry)
        .collect();
    assert_eq!(entries, ["main", "main"]);
}

#[test]
fn gaussian_nll_binds_its_variance_as_aux() {
    let (x, v) = (vec![0.5f32; 12], vec![1.0f32; 3]);
    let loss = Loss::from_name("gaussian_nll").unwrap();
    let inputs = Inputs::new(Tensor::new(&x, &[3, 4]))
        .target(Tensor::new(&x, &[3, 4]))
        .var(Tensor::new(&v, &[3, 1]));
    let p = plan(&loss, Reduction::Sum, &inputs).unwrap();
    let Geometry::Point(point) = &p.geometry else {
        panic!("gaussian_nll is elementwise")
    };
    assert_eq!(point.aux.as_ref().map(|a| (a.inner, a.len)), Some((4, 3)));
    let s = schedule("gaussian_nll", Reduction::Sum, &inputs, 1 << 20, true);
    assert_eq!(bindings(&s, "main", Role::Var).len(), 1);
    assert!(bindings(&s, "main", Role::PosWeight).is_empty());
}

/// The plan of `loss` on logits `(rows, classes)` (every target ignored).
fn rows_plan(loss: &str, rows: usize, classes: usize) -> RowsPlan {
    let x = vec![0.0f32; rows * classes];
    let y = vec![-100i64; rows];
    let (shape, items) = ([rows, classes], [rows]);
    let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
    let loss = Loss::from_name(loss).unwrap();
    match plan(&loss, Reduction::Mean, &inputs).unwrap().geometry {
        Geometry::Rows(r) => r,
        _ => panic!("{} is not a softmax-row loss", loss.name()),
    }
}

fn names(variants: &[RowsVariant]) -> Vec<&'static str> {
    variants.iter().map(|v| v.name()).collect()
}

#[test]
fn row_variants_are_offered_where_each_stays_within_the_loop_budget() {
    use RowsVariant::*;
    let sub = Caps { subgroups: true };
    let none = Caps::default();
    // Names are unique and kebab-case.
    let all = names(RowsVariant::ALL);
    for (i, n) in all.iter().enumerate() {
        assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{n}");
        assert!(!all[i + 1..].contains(n), "{n} twice");
    }
    // Short rows: every variant but the split (one chunk) and, below 64
    // classes, the workgroup per row; nll-rows is nll's alone.
    let v = rows::variants(&rows_plan("cross_entropy", 1000, 7), &sub);
    assert_eq!(
        names(&v),
        ["row-thread", "row-subgroup", "row-group-shared"]
    );
    let v = rows::variants(&rows_plan("nll", 1000, 7), &none);
    assert_eq!(names(&v), ["nll-rows", "row-thread", "row-group-shared"]);
    // The subgroup variant only with subgroups.
    let thousand = rows_plan("cross_entropy", 4096, 1000);
    assert_eq!(rows::variants(&thousand, &sub)[0], Subgroup);
    assert_eq!(rows::variants(&thousand, &none)[0], GroupShared);
    assert!(!rows::variants(&thousand, &none).contains(&Subgroup));
    // A thread walks a row twice (scan and gradient): up to 16 256 classes.
    let thread = |c| rows::variants(&rows_plan("softmax_focal", 2, c), &none).contains(&Thread);
    assert!(thread(16_256) && !thread(16_257));
    assert!(rows::iterations(Thread, &rows_plan("cross_entropy", 1, 16_256)) <= rows::LOOP_BUDGET);
    // nll-rows walks the gradient of 8 rows: up to 4095 classes.
    let nll_rows = |c| rows::variants(&rows_plan("nll", 2, c), &none).contains(&NllRows);
    assert!(nll_rows(4095) && !nll_rows(4096));
    // At every subgroup size from 4 to 128 lanes.
    let subgroup = |c| rows::variants(&rows_plan("cross_entropy", 2, c), &sub).contains(&Subgroup);
    assert!(subgroup(65_000) && !subgroup(70_000));
    // Few rows of many classes: split first; 10^6 classes on no thread.
    let v = rows::variants(&rows_plan("cross_entropy", 4, 262_144), &sub);
    assert_eq!(
        names(&v),
        ["row-split", "row-workgroup", "row-group-shared"]
    );
    let v = rows::variants(&rows_plan("softmax_focal", 1, 1_000_000), &sub);
    assert_eq!(names(&v), ["row-split", "row-workgroup"]);
    // Long strided rows: a workgroup per row once a thread may not walk them.
    let x = vec![0.0f32; 2 * 20_000 * 3];
    let (shape, items) = ([2, 20_000, 3], [2, 3]);
    let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&[0; 6], &items);
    let ce = Loss::from_name("cross_entropy").unwrap();
    let Geometry::Rows(strided) = plan(&ce, Reduction::Sum, &inputs).unwrap().geometry else {
        unreachable!()
    };
    assert_eq!(rows::variants(&strided, &sub)[0], Workgroup);
    // Never empty, and within the budget whatever is offered.
    for c in [0, 1, 63, 64, 8191, 8192, 1 << 20, 1 << 23] {
        for loss in ["cross_entropy", "nll", "softmax_focal"] {
            let plan = rows_plan(loss, 1, c);
            let v = rows::variants(&plan, &sub);
            assert!(!v.is_empty(), "{loss} C={c}");
            for variant in v {
                let n = rows::iterations(variant, &plan);
                assert!(n <= rows::LOOP_BUDGET, "{loss} C={c} {variant:?}: {n}");
            }
        }
    }
}

/// The row schedule of `variant` (which must be eligible) for `(rows, C)`.
fn rows_schedule(
    loss: &str,
    reduction: Reduction,
    rows: usize,
    classes: usize,
    limit: usize,
    grad: bool,
    variant: RowsVariant,
) -> Schedule {
    let x = vec![0.0f32; rows * classes];
    let y = vec![0i64; rows];
    let (shape, items) = ([rows, classes], [rows]);
    let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &items);
    let loss = Loss::from_name(loss).unwrap();
    let Geometry::Rows(plan) = plan(&loss, reduction, &inputs).unwrap().geometry else {
        panic!("not a row loss")
    };
    rows::schedule(reduction, &plan, limit, grad, variant).unwrap()
}

fn entries(s: &Schedule) -> Vec<&'static str> {
    s.dispatches.iter().map(|d| d.entry).collect()
}

/// The params of a softmax-row dispatch.
fn params(d: &super::plan::Dispatch) -> RowsParams {
    bytemuck::pod_read_unaligned(&d.params)
}

#[test]
fn row_variants_schedule_their_entry_points() {
    use RowsVariant::*;
    let entry = |v, loss, c| {
        entries(&rows_schedule(
            loss,
            Reduction::Sum,
            300,
            c,
            1 << 20,
            false,
            v,
        ))[0]
    };
    assert_eq!(entry(Thread, "cross_entropy", 7), "main");
    assert_eq!(entry(NllRows, "nll", 7), "nll_rows");
    assert_eq!(entry(Subgroup, "cross_entropy", 700), "row_subgroup");
    assert_eq!(entry(GroupShared, "cross_entropy", 700), "group_shared");
    assert_eq!(entry(Workgroup, "cross_entropy", 700), "wide");
    assert_eq!(entry(Split, "cross_entropy", 9000), "split_scan");
    // Only the subgroup entry point is in the module that needs SUBGROUP.
    for v in RowsVariant::ALL.iter().copied().filter(|&v| v != Split) {
        let loss = if v == NllRows { "nll" } else { "cross_entropy" };
        let c = if v == NllRows { 7 } else { 700 };
        let s = rows_schedule(loss, Reduction::Sum, 300, c, 1 << 20, false, v);
        let kernel = s.dispatches[0].kernel.name;
        assert_eq!(kernel == "rows_subgroup", v == Subgroup, "{v:?}");
        // Rows per workgroup: partials per workgroup, finalize over them.
        assert_eq!(s.dispatches.len(), 2, "{v:?}");
    }
    // A thread per row: 300 rows in 2 workgroups; nll-rows: 1; 8 lanes per
    // row of 40 classes: 32 rows per workgroup, 10 workgroups.
    let groups = |v, loss, c| {
        rows_schedule(loss, Reduction::Sum, 300, c, 1 << 20, false, v).dispatches[0].groups
    };
    assert_eq!(groups(Thread, "cross_entropy", 7), (2, 1));
    assert_eq!(groups(NllRows, "nll", 7), (1, 1));
    assert_eq!(groups(GroupShared, "cross_entropy", 40), (10, 1));
    assert_eq!(
        groups(Subgroup, "cross_entropy", 40),
        (300usize.div_ceil(rows::SUBGROUP_ROWS) as u32, 1)
    );
    assert_eq!(groups(Workgroup, "cross_entropy", 700), (300, 1));
    assert_eq!(rows::lanes(40), 8);
    assert_eq!((rows::lanes(1), rows::lanes(1000)), (4, 32));
}

#[test]
fn a_split_row_scans_then_merges_its_chunks() {
    use RowsVariant::Split;
    let (rows, c) = (4, 262_144);
    let (chunk, chunks) = rows::split_chunks(c);
    assert_eq!((chunk, chunks), (4096, 64));
    assert_eq!(rows::split_chunks(1 << 24), (65_536, 256));
    assert_eq!(rows::split_chunks(9000), (4096, 3));
    // Forward mean: the scan over rows x chunks workgroups, the finish with
    // one workgroup per row, the finalize over a partial per row.
    let s = rows_schedule(
        "cross_entropy",
        Reduction::Mean,
        rows,
        c,
        1 << 30,
        false,
        Split,
    );
    assert_eq!(entries(&s), ["split_scan", "split_finish", "main"]);
    assert_eq!(s.dispatches[0].groups, (rows as u32 * chunks as u32, 1));
    assert_eq!(s.dispatches[1].groups, (rows as u32, 1));
    assert_eq!(s.dispatches[2].kernel.name, "finalize");
    let finalize: FinalizeParams = bytemuck::pod_read_unaligned(&s.dispatches[2].params);
    assert_eq!(finalize.count, rows as u32, "partials");
    // The states follow the 2 x rows partials: STATE_LEN (5) values per
    // (row, chunk); both passes bind them (binding 6), the scan writes no
    // partials (binding 4 absent).
    let states_at = params(&s.dispatches[0]).states_at;
    assert_eq!(states_at, 2 * rows as u32);
    assert_eq!(
        s.scratch,
        (2 * rows + rows * chunks * 5).next_multiple_of(2)
    );
    for d in &s.dispatches[..2] {
        assert_eq!(d.bindings.len(), 7);
        assert_eq!(d.bindings[6].role, Role::Scratch);
        assert_eq!(
            (params(d).chunk, params(d).chunks),
            (chunk as u32, chunks as u32)
        );
    }
    assert_eq!(s.dispatches[0].bindings[4].role, Role::Absent);
    assert_eq!(s.dispatches[1].bindings[4].role, Role::Scratch);
    // With the gradient, the finish runs a workgroup per chunk again, and a
    // class-index mean sums its denominator first, the states after it.
    let s = rows_schedule(
        "cross_entropy",
        Reduction::Mean,
        rows,
        c,
        1 << 30,
        true,
        Split,
    );
    assert_eq!(
        entries(&s),
        ["denominator", "total", "split_scan", "split_finish", "main"]
    );
    assert_eq!(s.dispatches[3].groups, (rows as u32 * chunks as u32, 1));
    let p = params(&s.dispatches[3]);
    assert_eq!(p.states_at, p.d_at + 1);
    // `none`: the items in place, the states alone in the scratch.
    let s = rows_schedule(
        "softmax_focal",
        Reduction::None,
        rows,
        c,
        1 << 30,
        true,
        Split,
    );
    assert_eq!(entries(&s), ["split_scan", "split_finish"]);
    assert_eq!(params(&s.dispatches[1]).states_at, 0);
    assert_eq!(s.scratch, rows * chunks * 5);
    assert_eq!(s.dispatches[1].bindings[4].role, Role::Output);
    // nll reads no row: no scan, no states.
    let s = rows_schedule("nll", Reduction::Sum, rows, c, 1 << 30, true, Split);
    assert_eq!(entries(&s), ["split_finish", "main"]);
    assert_eq!(s.dispatches[0].bindings[6].role, Role::Absent);
    assert_eq!(s.scratch, 2 * rows);
    // Beyond one binding: a scan and a finish per slice of whole rows, the
    // states sized for the largest slice and shared by all.
    let (rows, c) = (5, 9000);
    let s = rows_schedule(
        "cross_entropy",
        Reduction::Sum,
        rows,
        c,
        20_000,
        false,
        Split,
    );
    assert_eq!(
        entries(&s),
        [
            "split_scan",
            "split_finish",
            "split_scan",
            "split_finish",
            "split_scan",
            "split_finish",
            "main"
        ]
    );
    let (_, chunks) = rows::split_chunks(c);
    assert_eq!(s.scratch, (2 * rows + 2 * chunks * 5).next_multiple_of(2));
    let scans: Vec<_> = s
        .dispatches
        .iter()
        .filter(|d| d.entry == "split_scan")
        .collect();
    let mut next = 0;
    for d in &scans {
        let (x, p) = (d.bindings[0], params(d));
        assert!(x.len.unwrap() <= 20_000);
        assert_eq!(x.offset % OFFSET_ALIGN, 0);
        assert_eq!(
            x.offset + p.x_skip as usize,
            next,
            "slices follow each other"
        );
        assert_eq!(x.len.unwrap() - p.x_skip as usize, p.rows as usize * c);
        next += p.rows as usize * c;
    }
    assert_eq!(next, rows * c);
    // A variant that does not fit is refused, not scheduled.
    let x = vec![0.0f32; 7];
    let inputs = Inputs::new(Tensor::new(&x, &[1, 7])).classes(&[0], &[1]);
    let Geometry::Rows(plan) = plan(
        &Loss::from_name("cross_entropy").unwrap(),
        Reduction::Sum,
        &inputs,
    )
    .unwrap()
    .geometry
    else {
        unreachable!()
    };
    assert!(rows::schedule(Reduction::Sum, &plan, 1 << 20, false, Split).is_err());
    assert!(rows::schedule(Reduction::Sum, &plan, 1 << 20, false, RowsVariant::NllRows).is_err());
}

#[test]
fn pair_rows_are_cut_by_whole_rows() {
    let (rows, dim) = (100, 64);
    let a = vec![0.5f32; rows * dim];
    let shape = [rows, dim];
    let inputs = Inputs::new(Tensor::new(&a, &shape)).target(Tensor::new(&a, &shape));
    // A binding of 40 rows' values: slices of whole rows, each starting aligned.
    let s = schedule("cosine_embedding", Reduction::Sum, &inputs, 40 * dim, false);
    let slices = bindings(&s, "main", Role::Input);
    assert!(slices.len() >= 3);
    assert!(slices
        .iter()
        .all(|b| b.offset % dim == 0 && b.len.unwrap() % dim == 0));
    assert_eq!(
        slices.iter().map(|b| b.len.unwrap()).sum::<usize>(),
        rows * dim
    );
}

#[test]
fn dice_sums_per_class_then_finishes() {
    let x = vec![0.0f32; 2 * 3 * 50];
    let t = vec![0i64; 2 * 50];
    let inputs = Inputs::new(Tensor::new(&x, &[2, 3, 50])).classes(&t, &[2, 50]);
    let s = schedule("dice", Reduction::Mean, &inputs, 1 << 20, false);
    assert!(s.dispatches.len() >= 2);
    assert!(s
        .dispatches
        .iter()
        .all(|d| d.kernel.name == "dice" || d.kernel.name == "finalize"));
}

/// The pair schedule of `rows` rows of `dim` values run as `variant`, on an
/// adapter whose subgroups hold up to 32 invocations.
fn pair_schedule(
    rows: usize,
    dim: usize,
    variant: pairs::PairsVariant,
    reduction: Reduction,
    limit: usize,
) -> Schedule {
    let a = vec![0.5f32; rows * dim];
    let shape = [rows, dim];
    let inputs = Inputs::new(Tensor::new(&a, &shape)).target(Tensor::new(&a, &shape));
    let loss = Loss::from_name("cosine_embedding").unwrap();
    let p = plan(&loss, reduction, &inputs).unwrap();
    let Geometry::Pairs(p) = &p.geometry else {
        panic!("cosine_embedding is a pair loss")
    };
    pairs::schedule(reduction, p, limit, false, variant, 32).unwrap()
}

#[test]
fn pair_variants_lay_rows_over_lanes() {
    use pairs::PairsVariant::*;
    let (rows, dim) = (1000, 300);
    let lanes = pairs::packed_lanes(dim);
    assert_eq!(lanes, 64, "about 8 values a lane");
    // (variant, kernel, lanes, workgroups): a thread per row fills a
    // workgroup with 256 rows, 64 lanes 4, a subgroup of 32 lanes 8.
    for (variant, kernel, lanes, groups) in [
        (Thread, "pairs", 1, 4),
        (Packed, "pairs", 64, 250),
        (Workgroup, "pairs", 256, 1000),
        (Subgroup, "pairs_subgroup", 0, 125),
    ] {
        let s = pair_schedule(rows, dim, variant, Reduction::Mean, 1 << 20);
        let main = &s.dispatches[0];
        assert_eq!(main.kernel.name, kernel, "{variant:?}");
        let params: &pairs::PairsParams = bytemuck::from_bytes(&main.params);
        assert_eq!(params.lanes, lanes, "{variant:?}");
        assert_eq!(main.groups, (groups, 1), "{variant:?}");
        // One partial per workgroup, summed by the finalize pass.
        let last = s.dispatches.last().unwrap();
        assert_eq!(last.kernel.name, "finalize");
        let count = bytemuck::from_bytes::<super::plan::FinalizeParams>(&last.params).count;
        assert_eq!(count, groups, "{variant:?}");
        assert_eq!(s.scratch, 2 * groups as usize);
        // `none` writes the items in place: no finalize.
        let s = pair_schedule(rows, dim, variant, Reduction::None, 1 << 20);
        assert!(s.dispatches.iter().all(|d| d.kernel.name == kernel));
        assert_eq!(s.output_len, rows);
    }
    // More workgroups than a grid dimension holds: x, then y.
    let s = pair_schedule(70_000, 1, Workgroup, Reduction::Sum, 1 << 20);
    assert_eq!(s.dispatches[0].groups, (65_535, 2));
    // Slices of whole rows, every variant alike.
    for variant in pairs::PairsVariant::ALL {
        let s = pair_schedule(100, 64, *variant, Reduction::Sum, 40 * 64);
        let slices = bindings(&s, "main", Role::Input);
        assert!(slices.len() >= 3, "{variant:?}");
        assert_eq!(
            slices.iter().map(|b| b.len.unwrap()).sum::<usize>(),
            100 * 64
        );
    }
}

#[test]
fn pair_variants_are_eligible_by_row_length_and_subgroups() {
    use pairs::{variants, PairsVariant::*};
    let plan = |dim| crate::inputs::PairsPlan {
        loss: crate::loss::Pairs::CosineEmbedding { margin: 0.0 },
        rows: 10,
        dim,
        labels: false,
    };
    let with = super::plan::Caps { subgroups: true };
    let without = super::plan::Caps { subgroups: false };
    for (dim, subgroups, plain) in [
        (1, &[Thread, Subgroup, Packed][..], &[Thread, Packed][..]),
        (512, &[Thread, Subgroup, Packed], &[Thread, Packed]),
        (513, &[Subgroup, Thread], &[Thread]),
        (1024, &[Subgroup, Thread, Workgroup], &[Thread, Workgroup]),
        (4096, &[Subgroup, Thread, Workgroup], &[Thread, Workgroup]),
        (4097, &[Subgroup, Workgroup], &[Workgroup]),
        (16_384, &[Subgroup, Workgroup], &[Workgroup]),
        (16_385, &[Workgroup], &[Workgroup]),
        (1_000_000, &[Workgroup], &[Workgroup]),
    ] {
        assert_eq!(variants(&plan(dim), &with), subgroups, "dim {dim}");
        assert_eq!(variants(&plan(dim), &without), plain, "dim {dim}");
    }
}

#[test]
fn dice_variants_and_their_first_pass() {
    use DiceVariant::{ClassGroups, Coalesced, Pixels};
    let plan_of = |mode: &str, logits: bool, shape: &[usize]| {
        let mut loss = Loss::from_name("dice").unwrap();
        let Loss::Dice(d) = &mut loss else {
            unreachable!()
        };
        d.mode = crate::loss::DiceMode::ALL
            .into_iter()
            .find(|m| m.name() == mode)
            .unwrap();
        d.from_logits = logits;
        let n: usize = shape.iter().product();
        let x = vec![0.25f32; n];
        let y = vec![0i64; n / shape[1]];
        let ys = [shape[0], shape[2]];
        let inputs = Inputs::new(Tensor::new(&x, shape));
        let inputs = if mode == "multiclass" {
            inputs.classes(&y, &ys)
        } else {
            inputs.target(Tensor::new(&x, shape))
        };
        match plan(&loss, Reduction::Mean, &inputs).unwrap().geometry {
            Geometry::Dice(d) => d,
            _ => unreachable!(),
        }
    };
    let none = Caps::default();
    // Pixels first where it compiles for the classes; coalesced where
    // there is no softmax.
    assert_eq!(
        dice::variants(&plan_of("multilabel", true, &[64, 4, 1]), &none),
        [Pixels, ClassGroups, Coalesced]
    );
    assert_eq!(
        dice::variants(&plan_of("multilabel", true, &[2, 4, 4096]), &none),
        [Pixels, ClassGroups, Coalesced]
    );
    // More classes than either keeps sums of.
    assert_eq!(
        dice::variants(&plan_of("multilabel", true, &[2, 17, 8]), &none),
        [ClassGroups]
    );
    let p = plan_of("multilabel", false, &[3, 5, 100]);
    let s = dice::schedule(Reduction::Mean, &p, 1 << 20, false, 64, Coalesced).unwrap();
    assert_eq!(s.dispatches[0].entry, "coalesced");
    // 1500 values, 32 per invocation: one workgroup.
    assert_eq!(s.dispatches[0].groups, (1, 1));

    // A softmax: pixels or class groups, the former compiled for its 4
    // classes, the softmax and class indices, its backward over the same
    // runs of pixels.
    let p = plan_of("multiclass", true, &[2, 4, 1 << 20]);
    assert_eq!(dice::variants(&p, &none), [Pixels, ClassGroups]);
    let few = dice::schedule(Reduction::Mean, &p, 1 << 24, true, 8, Pixels).unwrap();
    let (first, last) = (&few.dispatches[0], few.dispatches.last().unwrap());
    assert_eq!((first.entry, last.entry), ("pixels", "pixels_gradient"));
    let constants = [("CLASSES", 4.0), ("ACTIVATION", 2.0), ("CLASS_TARGET", 1.0)];
    assert_eq!(first.constants, constants);
    assert_eq!(last.constants, constants);
    // 2^21 pixels for 8 wanted workgroups: the most pixels per invocation
    // (512), 16 workgroups; for 2048 wanted, the fewest (8).
    assert_eq!(first.groups, (16, 1));
    assert_eq!(last.groups, (16, 1));
    let many = dice::schedule(Reduction::Mean, &p, 1 << 24, false, 2048, Pixels).unwrap();
    assert_eq!(many.dispatches[0].groups, (1024, 1));
}
