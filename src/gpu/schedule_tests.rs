//! The families' schedules, checked without a GPU: a schedule is plain data
//! (dispatches, bindings, grids), so how a shape is cut into slices, which
//! passes run and what each binds can be tested on any machine.

use super::plan::{aligned, chunk_len, grid, units_per_slice, Role, Schedule, Slice, OFFSET_ALIGN};
use super::{dice, pairs, pointwise, rows};
use crate::inputs::{plan, Geometry, Inputs, Tensor};
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
        Geometry::Point(p) => pointwise::schedule(reduction, p, limit, grad, 64),
        Geometry::Rows(r) => rows::schedule(reduction, r, limit, grad),
        Geometry::Pairs(p) => {
            pairs::schedule(reduction, p, limit, grad, pairs::PairsVariant::Thread, 32)
        }
        Geometry::Dice(d) => dice::schedule(reduction, d, limit, grad),
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
    assert_eq!(units_per_slice(1, 5000, 1000), Some(960));
    assert_eq!(units_per_slice(100, 50, 1000), Some(9));
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

#[test]
fn rows_pick_the_workgroup_per_row_entry_for_wide_rows() {
    let (narrow, wide) = (vec![0.0f32; 4 * 100], vec![0.0f32; 2 * 4096]);
    let classes = [1i64, 0, 3, 2];
    let entry = |x: &[f32], shape: &[usize], rows: usize| {
        let inputs = Inputs::new(Tensor::new(x, shape)).classes(&classes[..rows], &shape[..1]);
        let s = schedule("cross_entropy", Reduction::Mean, &inputs, 1 << 20, false);
        s.dispatches[0].entry
    };
    assert_eq!(entry(&narrow, &[4, 100], 4), "main");
    assert_eq!(entry(&wide, &[2, 4096], 2), "wide");
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
