//! The pair losses, cosine_embedding and triplet_margin (shaders/pairs.wgsl,
//! src/cpu/pairs.rs): values and gradients (d/dx1, d/dx2; d/danchor,
//! d/dpositive, d/dnegative) on the GPU against the float64 twin, on seeded
//! rows at awkward sizes and widths, on degenerate rows, in slices beyond one
//! binding and on caller buffers; then the twin's gradients against finite
//! differences and PyTorch's conventions.
//!
//! `check`, `check_on`, `check_grad` and `check_grad_on` here run every
//! kernel variant (src/gpu/pairs.rs) that can run the call, forced one after
//! the other, against one reference: a thread, lanes of a workgroup, a
//! workgroup or a subgroup per row.

use crate::common::cases::{grads, load, loss_of, reduction_of, CaseTensors};
use crate::common::device::*;
use crate::common::finite::{self as fd, Case, GAP};
use crate::common::upstream::{calls, kind, upstream_items};
use crate::common::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use wgpu_loss::{
    cpu, BufferView, Context, DeviceInputs, DeviceTensor, DeviceUpstream, Error, GradViews,
    Gradients, Inputs, Loss, Pairs, Reduction, Tensor, Upstream, Variant,
};

/// Whether `forced`, a context forced to one variant, can run the call: an
/// `Error::Variant` says it cannot.
fn runs(forced: &Context, loss: &Loss, reduction: Reduction, inputs: &Inputs<'_>) -> bool {
    match forced.variants(loss, reduction, inputs) {
        Ok(v) => {
            assert_eq!(v.len(), 1, "a forced variant is the only one");
            true
        }
        Err(Error::Variant { .. }) => false,
        Err(e) => panic!("{e}"),
    }
}

/// Every pair variant that can run the call on `on`'s adapter against one
/// reference; the variants that ran.
fn check_on(
    on: &Context,
    what: &str,
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    abs: f64,
) -> Vec<Variant> {
    let want =
        cpu::evaluate(loss, reduction, inputs).unwrap_or_else(|e| panic!("{what}: cpu: {e}"));
    let mut ran = vec![];
    for (v, forced) in variant_ctxs(on, "pairs") {
        if !runs(&forced, loss, reduction, inputs) {
            continue;
        }
        let what = format!("{what} [{v}]");
        let prepared = forced
            .prepare(loss, reduction, inputs)
            .unwrap_or_else(|e| panic!("{what}: gpu: {e}"));
        assert_eq!(prepared.evaluator().variant(), v, "{what}");
        let got = prepared
            .run()
            .unwrap_or_else(|e| panic!("{what}: gpu: {e}"));
        compare(&what, reduction, &got, &want, abs);
        ran.push(v);
    }
    assert!(!ran.is_empty(), "{what}: no variant ran");
    ran
}

fn check(what: &str, loss: &Loss, reduction: Reduction, inputs: &Inputs<'_>) -> Vec<Variant> {
    check_on(ctx(), what, loss, reduction, inputs, 1e-6)
}

/// `check_on` for the fused value and gradients; the last variant's
/// gradients.
fn check_grad_on(
    on: &Context,
    what: &str,
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    upstream: Upstream<'_>,
) -> Gradients {
    let (want, want_grads) = cpu::gradient(loss, reduction, inputs, upstream)
        .unwrap_or_else(|e| panic!("{what}: cpu: {e}"));
    let mut last = None;
    for (v, forced) in variant_ctxs(on, "pairs") {
        if !runs(&forced, loss, reduction, inputs) {
            continue;
        }
        let what = format!("{what} [{v}]");
        let prepared = forced
            .prepare_with_grad(loss, reduction, inputs, upstream)
            .unwrap_or_else(|e| panic!("{what}: gpu: {e}"));
        assert_eq!(prepared.evaluator().variant(), v, "{what}");
        let (got, got_grads) = prepared
            .run_with_grad()
            .unwrap_or_else(|e| panic!("{what}: gpu: {e}"));
        compare(&what, reduction, &got, &want, 1e-6);
        compare_grads(&what, &got_grads, &want_grads);
        last = Some(got_grads);
    }
    last.unwrap_or_else(|| panic!("{what}: no variant ran"))
}

fn check_grad(
    what: &str,
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'_>,
    upstream: Upstream<'_>,
) -> Gradients {
    check_grad_on(ctx(), what, loss, reduction, inputs, upstream)
}

/// The pair variants this adapter has: every one but `pair-subgroup` where
/// the device lacks subgroups.
fn variants_here(on: &Context) -> Vec<Variant> {
    let subgroups = on.device().features().contains(wgpu::Features::SUBGROUP);
    Variant::all()
        .into_iter()
        .filter(|v| v.family() == "pairs" && (subgroups || v.name() != "pair-subgroup"))
        .collect()
}

/// triplet_margin with margin 1 and each norm other than 2 (p, swap).
const OTHER_NORMS: [(f32, bool); 6] = [
    (1.0, false),
    (1.0, true),
    (3.0, false),
    (1.5, true),
    (f32::INFINITY, false),
    (f32::INFINITY, true),
];

/// triplet_margin of each (margin, p = 2, swap), then `OTHER_NORMS`.
fn triplets_of(euclidean: &[(f32, bool)]) -> Vec<Loss> {
    let euclidean = euclidean.iter().map(|&(m, swap)| triplet(m, 2.0, swap));
    let others = OTHER_NORMS.iter().map(|&(p, swap)| triplet(1.0, p, swap));
    euclidean.chain(others).collect()
}

/// Every kind of norm (p = 1, 2, 3, 1.5, ∞), with and without swap.
fn triplets() -> Vec<Loss> {
    triplets_of(&[(1.0, false), (1.0, true), (0.5, false)])
}

/// The triplets of the gradient tests, in the order that picks their calls
/// in `pair_gradients_match_the_reference_at_awkward_sizes`.
fn gradient_triplets() -> Vec<Loss> {
    triplets_of(&[(1.0, false), (0.5, true)])
}

/// `base` plus per-row noise of a random scale: rows of every distance, from
/// nearly identical to unrelated, and with `equal` some identical rows (where
/// the cosine's gradient cancels).
fn near(r: &mut ChaCha8Rng, base: &[f32], dim: usize, equal: bool) -> Vec<f32> {
    let mut out = Vec::with_capacity(base.len());
    for row in base.chunks(dim.max(1)) {
        // Without `equal` the draw skips kind 1, the identical rows.
        let kind = match r.random_range(0..4 + equal as u32) {
            k if equal || k == 0 => k,
            k => k + 1,
        };
        let scale: f32 = match kind {
            0 => 1e-3,
            1 => 0.0,
            2 => r.random_range(0.0..0.3),
            _ => r.random_range(0.0..1.5),
        };
        out.extend(row.iter().map(|v| v + scale * r.random_range(-1.0f32..1.0)));
    }
    out
}

/// Labels ±1 with some 0 (a silent 0 loss in the reference).
fn labels(r: &mut ChaCha8Rng, rows: usize) -> Vec<f32> {
    (0..rows)
        .map(|i| {
            if i % 17 == 5 {
                0.0
            } else if r.random_range(0..2) == 0 {
                1.0
            } else {
                -1.0
            }
        })
        .collect()
}

/// One pair of 1-D tensors of 7: `a`, `b` near it, and `c` apart.
fn single_pair(equal: bool) -> [Vec<f32>; 3] {
    let mut r = rng(3);
    let a = uniform(&mut r, 7, -1.0, 1.0);
    let b = near(&mut r, &a, 7, equal);
    let c = uniform(&mut r, 7, -1.0, 1.0);
    [a, b, c]
}

/// cosine_embedding inputs of one 1-D pair and its label of shape ().
fn labelled<'a>(a: &'a [f32], b: &'a [f32], label: &'a [f32]) -> Inputs<'a> {
    Inputs::new(Tensor::new(a, &[7]))
        .target(Tensor::new(b, &[7]))
        .labels(Tensor::new(label, &[]))
}

/// Seeded rows of a pair loss: anchors (or x1), positives (or x2), negatives,
/// labels and one upstream value per row.
struct PairRows {
    shape: Vec<usize>,
    a: Vec<f32>,
    p: Vec<f32>,
    n: Vec<f32>,
    y: Vec<f32>,
    up: Vec<f32>,
}

impl PairRows {
    fn new(rows: usize, dim: usize, seed: u64, equal: bool) -> PairRows {
        let mut r = rng(seed);
        let a = uniform(&mut r, rows * dim, -1.0, 1.0);
        let p = near(&mut r, &a, dim, equal);
        let n = near(&mut r, &a, dim, equal);
        let y = labels(&mut r, rows);
        PairRows {
            shape: vec![rows, dim],
            a,
            p,
            n,
            y,
            up: upstream_items(rows, seed + 1),
        }
    }

    fn cosine(&self, labelled: bool) -> Inputs<'_> {
        let inputs = Inputs::new(Tensor::new(&self.a, &self.shape))
            .target(Tensor::new(&self.p, &self.shape));
        if labelled {
            inputs.labels(Tensor::new(&self.y, &self.shape[..1]))
        } else {
            inputs
        }
    }

    fn triplet(&self) -> Inputs<'_> {
        Inputs::new(Tensor::new(&self.a, &self.shape))
            .positive(Tensor::new(&self.p, &self.shape))
            .negative(Tensor::new(&self.n, &self.shape))
    }
}

#[test]
fn pair_losses_match_the_reference_at_awkward_sizes() {
    for (k, &rows) in [1usize, 255, 256, 257, 65_537].iter().enumerate() {
        for &dim in &[1usize, 3, 64, 300] {
            let data = PairRows::new(rows, dim, 100 * k as u64 + dim as u64, false);
            let large = rows * dim > 1_000_000;
            // Beyond 100 000 values the default variant only: every one runs
            // at the sizes of `every_variant_at_awkward_sizes`.
            let check = |what: &str, loss: &Loss, red, inputs: &Inputs<'_>| {
                if rows * dim > 100_000 {
                    crate::common::check(what, loss, red, inputs);
                } else {
                    check(what, loss, red, inputs);
                }
            };
            let (cos, labelled) = (data.cosine(false), data.cosine(true));
            for red in REDUCTIONS {
                check(
                    &format!("cosine rows={rows} dim={dim} {red:?}"),
                    &cosine(0.0),
                    red,
                    &cos,
                );
                check(
                    &format!("cosine labels rows={rows} dim={dim} {red:?}"),
                    &cosine(0.0),
                    red,
                    &labelled,
                );
                if !large {
                    check(
                        &format!("cosine margin 0.5 rows={rows} dim={dim} {red:?}"),
                        &cosine(0.5),
                        red,
                        &labelled,
                    );
                    check(
                        &format!("cosine margin -0.3 rows={rows} dim={dim} {red:?}"),
                        &cosine(-0.3),
                        red,
                        &labelled,
                    );
                }
            }
            let trip = data.triplet();
            for loss in triplets() {
                let reductions: &[Reduction] = if large {
                    &[Reduction::None]
                } else {
                    &REDUCTIONS
                };
                for &red in reductions {
                    check(
                        &format!("{loss:?} rows={rows} dim={dim} {red:?}"),
                        &loss,
                        red,
                        &trip,
                    );
                }
            }
        }
    }
}

#[test]
fn a_million_elements() {
    let mut r = rng(9);
    let (rows, dim) = (4000, 256);
    let a = uniform(&mut r, rows * dim, -2.0, 2.0);
    let p = near(&mut r, &a, dim, false);
    let neg = near(&mut r, &a, dim, false);
    let y = labels(&mut r, rows);
    let shape = [rows, dim];
    let cos = Inputs::new(Tensor::new(&a, &shape))
        .target(Tensor::new(&p, &shape))
        .labels(Tensor::new(&y, &shape[..1]));
    let trip = Inputs::new(Tensor::new(&a, &shape))
        .positive(Tensor::new(&p, &shape))
        .negative(Tensor::new(&neg, &shape));
    for red in REDUCTIONS {
        check(&format!("cosine 4000x256 {red:?}"), &cosine(0.1), red, &cos);
        check(
            &format!("triplet 4000x256 {red:?}"),
            &triplet(1.0, 2.0, false),
            red,
            &trip,
        );
        check(
            &format!("triplet p=1.5 swap 4000x256 {red:?}"),
            &triplet(1.0, 1.5, true),
            red,
            &trip,
        );
    }
}

#[test]
fn one_dimensional_inputs_are_a_single_pair() {
    let [a, b, c] = single_pair(false);
    let shape = [7];
    for label in [1.0f32, -1.0, 0.0] {
        let l = [label];
        let inputs = labelled(&a, &b, &l);
        for red in REDUCTIONS {
            check(
                &format!("cosine 1-d label {label} {red:?}"),
                &cosine(-0.5),
                red,
                &inputs,
            );
        }
    }
    let inputs = Inputs::new(Tensor::new(&a, &shape)).target(Tensor::new(&b, &shape));
    let got = ctx()
        .evaluate(&cosine(0.0), Reduction::None, &inputs)
        .unwrap();
    assert!(got.items_shape.is_empty(), "a 1-d pair gives a scalar");
    let trip = Inputs::new(Tensor::new(&a, &shape))
        .positive(Tensor::new(&b, &shape))
        .negative(Tensor::new(&c, &shape));
    for loss in triplets() {
        for red in REDUCTIONS {
            check(&format!("{loss:?} 1-d {red:?}"), &loss, red, &trip);
        }
    }
}

#[test]
fn zero_and_identical_vectors() {
    // Rows: zero vs nonzero, nonzero vs zero, both zero, identical, opposite,
    // tiny, parallel with different lengths.
    #[rustfmt::skip]
    let x1 = [
        0.0f32, 0.0, 0.0, 0.0,
        1.0, 2.0, 3.0, 4.0,
        0.0, 0.0, 0.0, 0.0,
        1.0, 2.0, 3.0, 4.0,
        1.0, 2.0, 3.0, 4.0,
        1e-7, 0.0, 1e-7, 0.0,
        1.0, 1.0, 1.0, 1.0,
    ];
    #[rustfmt::skip]
    let x2 = [
        1.0f32, 1.0, 1.0, 1.0,
        0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0,
        1.0, 2.0, 3.0, 4.0,
        -1.0, -2.0, -3.0, -4.0,
        1e-7, 0.0, 1e-7, 0.0,
        3.0, 3.0, 3.0, 3.0,
    ];
    let shape = [7, 4];
    let cases: [&[f32]; 3] = [
        &[1.0; 7],
        &[-1.0; 7],
        &[1.0, -1.0, 0.0, -1.0, 1.0, -1.0, 1.0],
    ];
    for y in cases {
        let inputs = Inputs::new(Tensor::new(&x1, &shape))
            .target(Tensor::new(&x2, &shape))
            .labels(Tensor::new(y, &[7]));
        for margin in [0.0, 0.5, -0.5] {
            for red in REDUCTIONS {
                check(
                    &format!("cosine degenerate {y:?} margin {margin} {red:?}"),
                    &cosine(margin),
                    red,
                    &inputs,
                );
            }
        }
    }
    // A zero vector has cos 0: loss 1 for a similar pair, as in the reference.
    let got = ctx()
        .evaluate(
            &cosine(0.0),
            Reduction::None,
            &Inputs::new(Tensor::new(&x1[..4], &[4])).target(Tensor::new(&x2[..4], &[4])),
        )
        .unwrap();
    assert_eq!(got.items.unwrap(), vec![1.0]);

    // Triplets of identical rows: d = eps D^(1/p), the loss is the margin.
    let a: Vec<f32> = (0..20).map(|i| (i as f32 * 0.37).sin()).collect();
    let zeros = [0.0f32; 20];
    let shape = [5, 4];
    for loss in triplets() {
        for red in REDUCTIONS {
            let same = Inputs::new(Tensor::new(&a, &shape))
                .positive(Tensor::new(&a, &shape))
                .negative(Tensor::new(&a, &shape));
            check(&format!("{loss:?} identical {red:?}"), &loss, red, &same);
            let zero = Inputs::new(Tensor::new(&zeros, &shape))
                .positive(Tensor::new(&a, &shape))
                .negative(Tensor::new(&zeros, &shape));
            check(&format!("{loss:?} zero rows {red:?}"), &loss, red, &zero);
        }
    }
    // eps = 0 makes identical rows exactly 0 apart.
    for p in [1.0, 2.0, 3.0, 1.5, f32::INFINITY] {
        let loss = Loss::Pairs(Pairs::TripletMargin {
            margin: 0.5,
            p,
            eps: 0.0,
            swap: true,
        });
        let same = Inputs::new(Tensor::new(&a, &shape))
            .positive(Tensor::new(&a, &shape))
            .negative(Tensor::new(&a, &shape));
        check(
            &format!("{loss:?} identical eps=0"),
            &loss,
            Reduction::None,
            &same,
        );
        let got = ctx().evaluate(&loss, Reduction::Mean, &same).unwrap();
        assert_eq!(got.value, 0.5, "{loss:?}");
    }
}

#[test]
fn worked_examples() {
    // The worked examples of docs/semantics.md (cosine_embedding, triplet_margin).
    let x1 = [1.0f32, 0.0, 1.0, 2.0];
    let x2 = [1.0f32, 1.0, -2.0, -4.0];
    let y = [1.0f32, -1.0];
    let inputs = Inputs::new(Tensor::new(&x1, &[2, 2]))
        .target(Tensor::new(&x2, &[2, 2]))
        .labels(Tensor::new(&y, &[2]));
    let got = ctx()
        .evaluate(&cosine(0.5), Reduction::None, &inputs)
        .unwrap()
        .items
        .unwrap();
    assert!(
        (got[0] - 0.2928932).abs() < 1e-6 && got[1] == 0.0,
        "{got:?}"
    );
    let neg = [-1.0f32, -1.0];
    let inputs = inputs.labels(Tensor::new(&neg, &[2]));
    let got = ctx()
        .evaluate(&cosine(-0.9), Reduction::None, &inputs)
        .unwrap()
        .items
        .unwrap();
    assert!(
        (got[0] - 1.6071068).abs() < 1e-6 && got[1] == 0.0,
        "{got:?}"
    );

    let tri = |a: &[f32; 2], p: &[f32; 2], n: &[f32; 2], loss: &Loss| {
        let i = Inputs::new(Tensor::new(a, &[1, 2]))
            .positive(Tensor::new(p, &[1, 2]))
            .negative(Tensor::new(n, &[1, 2]));
        ctx().evaluate(loss, Reduction::Mean, &i).unwrap().value
    };
    let v = tri(
        &[0.0, 0.0],
        &[0.0, 1.0],
        &[0.0, 1.5],
        &triplet(1.0, 2.0, false),
    );
    assert!((v - 0.5).abs() < 1e-6, "{v}");
    let v = tri(
        &[0.0, 0.0],
        &[3.0, 0.0],
        &[4.0, 0.0],
        &triplet(1.0, 2.0, true),
    );
    assert!((v - 3.0).abs() < 1e-6, "{v}");
    let v = tri(
        &[0.0, 0.0],
        &[1.0, 1.0],
        &[2.0, 0.0],
        &triplet(1.0, 1.0, false),
    );
    assert!((v - 0.999998).abs() < 1e-6, "{v}");
}

#[test]
fn overflow_gives_nan_as_in_the_reference() {
    // Squared norms of 1e20 overflow f32: inf / inf in the reference.
    let x = [1e20f32, 1e20, 1.0, 2.0];
    let shape = [2, 2];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&x, &shape));
    for red in REDUCTIONS {
        check(&format!("cosine 1e20 {red:?}"), &cosine(0.0), red, &inputs);
    }
    let got = ctx()
        .evaluate(&cosine(0.0), Reduction::None, &inputs)
        .unwrap()
        .items
        .unwrap();
    assert!(got[0].is_nan() && got[1].abs() < 1e-6, "{got:?}");
    // Large but representable rows keep their cosine: the norms are multiplied
    // after their square roots.
    let x = [1e18f32, 1e18, 3e17, -1e18];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&x, &shape));
    check("cosine 1e18", &cosine(0.0), Reduction::None, &inputs);
    // NaN in a row stays NaN in both losses.
    let x = [f32::NAN, 1.0, 1.0, 2.0];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&x, &shape));
    check("cosine NaN", &cosine(0.0), Reduction::None, &inputs);
    let trip = Inputs::new(Tensor::new(&x, &shape))
        .positive(Tensor::new(&x, &shape))
        .negative(Tensor::new(&x, &shape));
    for loss in triplets() {
        check(&format!("{loss:?} NaN"), &loss, Reduction::None, &trip);
    }
}

#[test]
fn empty_batch_gives_nan_mean_and_zero_sum() {
    let shape = [0, 5];
    let cos = Inputs::new(Tensor::new(&[], &shape)).target(Tensor::new(&[], &shape));
    let trip = Inputs::new(Tensor::new(&[], &shape))
        .positive(Tensor::new(&[], &shape))
        .negative(Tensor::new(&[], &shape));
    for red in REDUCTIONS {
        check(&format!("cosine empty {red:?}"), &cosine(0.0), red, &cos);
        check(
            &format!("triplet empty {red:?}"),
            &triplet(1.0, 2.0, false),
            red,
            &trip,
        );
    }
    // Rows of zero length: cos = 0, distances 0.
    let shape = [3, 0];
    let cos = Inputs::new(Tensor::new(&[], &shape)).target(Tensor::new(&[], &shape));
    let trip = Inputs::new(Tensor::new(&[], &shape))
        .positive(Tensor::new(&[], &shape))
        .negative(Tensor::new(&[], &shape));
    for red in REDUCTIONS {
        check(&format!("cosine dim 0 {red:?}"), &cosine(0.0), red, &cos);
        for loss in triplets() {
            check(&format!("{loss:?} dim 0 {red:?}"), &loss, red, &trip);
        }
    }
}

/// More rows than one binding holds: slices of 64k whole rows, aligned in
/// every tensor, one dispatch each, partials meeting in one finalize pass.
#[test]
fn inputs_longer_than_one_binding() {
    let (rows, dim) = (140_000, 256);
    assert!(rows * dim > ctx().max_binding_elements());
    let mut r = rng(50);
    let a = uniform(&mut r, rows * dim, -1.0, 1.0);
    let b = near(&mut r, &a, dim, false);
    let y = labels(&mut r, rows);
    let shape = [rows, dim];
    let inputs = Inputs::new(Tensor::new(&a, &shape))
        .target(Tensor::new(&b, &shape))
        .labels(Tensor::new(&y, &shape[..1]));
    for red in [Reduction::Mean, Reduction::None] {
        check(
            &format!("cosine 140000x256 {red:?}"),
            &cosine(0.2),
            red,
            &inputs,
        );
    }
    let prepared = ctx()
        .prepare(&cosine(0.2), Reduction::Sum, &inputs)
        .unwrap();
    assert_eq!(prepared.dispatches(), 3, "two slices and the finalize pass");
}

/// On a context with small bindings: slices of 64 rows and more (aligned),
/// slices of fewer (starting up to 63 values, and up to 63 labels and items,
/// into their bindings), every loss and reduction.
#[test]
fn slices_on_small_bindings() {
    let small = small_ctx();
    let limit = small.max_binding_elements();
    let mut r = rng(51);
    for (rows, dim) in [(1000, 100), (500, 1500), (3, 30_000)] {
        assert!(rows * dim > limit);
        let a = uniform(&mut r, rows * dim, -1.0, 1.0);
        let p = near(&mut r, &a, dim, false);
        let n = near(&mut r, &a, dim, false);
        let y = labels(&mut r, rows);
        let shape = [rows, dim];
        let cos = Inputs::new(Tensor::new(&a, &shape)).target(Tensor::new(&p, &shape));
        let labelled = cos.labels(Tensor::new(&y, &shape[..1]));
        let trip = Inputs::new(Tensor::new(&a, &shape))
            .positive(Tensor::new(&p, &shape))
            .negative(Tensor::new(&n, &shape));
        for red in REDUCTIONS {
            let what = format!("{rows}x{dim} {red:?}");
            check_on(
                small,
                &format!("cosine {what}"),
                &cosine(0.1),
                red,
                &cos,
                1e-6,
            );
            check_on(
                small,
                &format!("labels {what}"),
                &cosine(0.1),
                red,
                &labelled,
                1e-6,
            );
            for loss in [triplet(1.0, 2.0, true), triplet(1.0, 1.5, false)] {
                check_on(small, &format!("{loss:?} {what}"), &loss, red, &trip, 1e-6);
            }
        }
    }
}

/// A row longer than a binding cannot be evaluated; one that fits with its
/// slice's offset can. Only shapes are read, so tiny buffers do.
#[test]
fn a_row_longer_than_a_binding_is_too_large() {
    let limit = ctx().max_binding_elements();
    let tiny = buffer(ctx(), &[0.0f32; 4]);
    let view = BufferView::new(&tiny, 0, 4);
    for (shape, ok) in [
        ([2, limit], false),
        ([1, limit], true),
        ([2, limit / 2], true),
        ([100, limit / 64 + 1], true),
    ] {
        let t = DeviceTensor::new(view, &shape);
        let inputs = DeviceInputs::new(t).target(t);
        match ctx().evaluator(&cosine(0.0), Reduction::Mean, &inputs) {
            Err(Error::TooLarge { .. }) => assert!(!ok, "{shape:?}"),
            Ok(_) => assert!(ok, "{shape:?}"),
            Err(e) => panic!("{shape:?}: {e}"),
        }
    }
    let small = small_ctx();
    let dim = small.max_binding_elements() - 10;
    let x = vec![0.5f32; 2 * dim];
    let shape = [2, dim];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&x, &shape));
    match small.evaluate(&cosine(0.0), Reduction::Mean, &inputs) {
        Err(Error::TooLarge { .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// One evaluator, two encodes into one encoder on different buffers, items
/// written into two views of one output buffer.
#[test]
fn an_evaluator_encodes_twice() {
    let (rows, dim) = (300, 17);
    let shape = [rows, dim];
    let mut r = rng(52);
    let data: Vec<[Vec<f32>; 3]> = (0..2)
        .map(|_| {
            let a = uniform(&mut r, rows * dim, -1.0, 1.0);
            let b = near(&mut r, &a, dim, false);
            [a, b, labels(&mut r, rows)]
        })
        .collect();
    let bufs: Vec<Vec<wgpu::Buffer>> = data
        .iter()
        .map(|d| d.iter().map(|v| buffer(ctx(), v)).collect())
        .collect();
    let device = |k: usize| {
        let t = |i: usize| BufferView::new(&bufs[k][i], 0, data[k][i].len());
        DeviceInputs::new(DeviceTensor::new(t(0), &shape))
            .target(DeviceTensor::new(t(1), &shape))
            .labels(DeviceTensor::new(t(2), &shape[..1]))
    };
    let loss = cosine(-0.2);
    let ev = ctx().evaluator(&loss, Reduction::None, &device(0)).unwrap();
    assert_eq!(ev.output_len(), rows);
    assert_eq!(ev.items_shape(), &[rows]);
    let out = buffer(ctx(), &vec![f32::NAN; 320 + rows]);
    let mut enc = encoder(ctx());
    for k in 0..2 {
        let view = BufferView::new(&out, 4 * 320 * k as u64, rows);
        ev.encode(&mut enc, &device(k), view).unwrap();
    }
    let got = read(ctx(), enc, &out, 320 + rows);
    for (k, [a, b, y]) in data.iter().enumerate() {
        let host = Inputs::new(Tensor::new(a, &shape))
            .target(Tensor::new(b, &shape))
            .labels(Tensor::new(y, &shape[..1]));
        let want = cpu::evaluate(&loss, Reduction::None, &host).unwrap().items;
        for (i, w) in want.iter().enumerate() {
            let g = got[320 * k + i] as f64;
            assert!(close(g, *w, 1e-6), "encode {k} item {i}: {g} vs {w}");
        }
    }
    // A reduced evaluator writes the value, and the loss sum and the row
    // count where the view has room.
    let ev = ctx().evaluator(&loss, Reduction::Mean, &device(0)).unwrap();
    let out = buffer(ctx(), &[f32::NAN; 3]);
    let mut enc = encoder(ctx());
    ev.encode(&mut enc, &device(1), BufferView::whole(&out))
        .unwrap();
    let got = read(ctx(), enc, &out, 3);
    let [a, b, y] = &data[1];
    let host = Inputs::new(Tensor::new(a, &shape))
        .target(Tensor::new(b, &shape))
        .labels(Tensor::new(y, &shape[..1]));
    let want = cpu::evaluate(&loss, Reduction::Mean, &host).unwrap().value;
    assert!(close(got[0] as f64, want, 1e-6), "{got:?} vs {want}");
    assert!(close(got[1] as f64, want * rows as f64, 1e-5), "{got:?}");
    assert_eq!(got[2], rows as f32);
}

#[test]
fn pair_gradients_match_the_reference_at_awkward_sizes() {
    for (k, &rows) in [1usize, 255, 256, 257, 65_537].iter().enumerate() {
        for &dim in &[1usize, 3, 64, 300] {
            let n = rows * dim;
            // Above a few hundred thousand values one call of each loss keeps
            // the file quick (the float64 backward dominates the time), and
            // 65 537 rows of 64 and 300 are left out.
            let large = n > 300_000;
            if n > 2_000_000 {
                continue;
            }
            let check_grad =
                |what: &str, loss: &Loss, red, inputs: &Inputs<'_>, up: Upstream<'_>| {
                    if n > 100_000 {
                        crate::common::check_grad(what, loss, red, inputs, up);
                    } else {
                        check_grad(what, loss, red, inputs, up);
                    }
                };
            let data = PairRows::new(rows, dim, 100 * k as u64 + dim as u64, true);
            let all = calls(&data.up);
            let some = |i: usize| -> Vec<(Reduction, Upstream<'_>)> {
                if large {
                    vec![all[i % all.len()]]
                } else {
                    all.clone()
                }
            };
            let what = |loss: &Loss, red: Reduction, up: &Upstream<'_>| {
                format!("{loss:?} rows={rows} dim={dim} {red:?} {}", kind(up))
            };
            for (i, (loss, labelled)) in [
                (cosine(0.0), false),
                (cosine(0.0), true),
                (cosine(0.5), true),
                (cosine(-0.3), true),
            ]
            .into_iter()
            .enumerate()
            {
                if large && i > 1 {
                    continue;
                }
                let inputs = data.cosine(labelled);
                for (red, up) in some(i) {
                    let label = if labelled { " labels" } else { "" };
                    check_grad(
                        &format!("{}{label}", what(&loss, red, &up)),
                        &loss,
                        red,
                        &inputs,
                        up,
                    );
                }
            }
            let inputs = data.triplet();
            for (i, loss) in gradient_triplets().into_iter().enumerate() {
                if large && i % 3 != 0 {
                    continue;
                }
                for (red, up) in some(i) {
                    check_grad(&what(&loss, red, &up), &loss, red, &inputs, up);
                }
            }
        }
    }
}

#[test]
fn degenerate_rows() {
    // Zero vectors, identical vectors, one vector a multiple of the other,
    // tiny and large norms, and components that tie for the max.
    let dim = 4;
    let rows: Vec<([f32; 4], [f32; 4], [f32; 4])> = vec![
        ([0.0; 4], [0.0; 4], [0.0; 4]),
        ([0.0; 4], [1.0, -2.0, 0.5, 3.0], [1.0, 1.0, 1.0, 1.0]),
        (
            [1.0, -2.0, 0.5, 3.0],
            [1.0, -2.0, 0.5, 3.0],
            [1.0, -2.0, 0.5, 3.0],
        ),
        (
            [1.0, -2.0, 0.5, 3.0],
            [1.0, -2.0, 0.5, 3.0],
            [0.0, 0.0, 0.0, 0.0],
        ),
        (
            [1.0, -2.0, 0.5, 3.0],
            [2.0, -4.0, 1.0, 6.0],
            [-1.0, 2.0, -0.5, -3.0],
        ),
        (
            [1e-3, 2e-3, -1e-3, 0.0],
            [1e-3, 2e-3, -1e-3, 0.0],
            [3e-3, 0.0, 0.0, 1e-3],
        ),
        (
            [1e-7, 0.0, 0.0, 0.0],
            [3e-7, 0.0, 0.0, 0.0],
            [0.0, 1e-7, 0.0, 0.0],
        ),
        (
            [300.0, -100.0, 20.0, 1.0],
            [299.0, -101.0, 20.5, 1.0],
            [1.0, 2.0, 3.0, 4.0],
        ),
        (
            [2.0, -2.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
            [3.0, 3.0, -3.0, 0.0],
        ),
        (
            [1.0, 1.0, 1.0, 1.0],
            [0.0, 2.0, 0.0, 2.0],
            [1.0, 1.0, 1.0, 1.0],
        ),
    ];
    let a: Vec<f32> = rows.iter().flat_map(|r| r.0).collect();
    let p: Vec<f32> = rows.iter().flat_map(|r| r.1).collect();
    let n: Vec<f32> = rows.iter().flat_map(|r| r.2).collect();
    let shape = [rows.len(), dim];
    let y: Vec<f32> = (0..rows.len()).map(|i| [1.0, -1.0, 0.0][i % 3]).collect();
    let up = upstream_items(rows.len(), 77);
    let cos = Inputs::new(Tensor::new(&a, &shape)).target(Tensor::new(&p, &shape));
    let labelled = cos.labels(Tensor::new(&y, &shape[..1]));
    let neg_labels: Vec<f32> = vec![-1.0; rows.len()];
    let negative = cos.labels(Tensor::new(&neg_labels, &shape[..1]));
    for (red, up) in calls(&up) {
        let what = format!("{red:?} {}", kind(&up));
        for margin in [0.0, 0.5, -0.9] {
            let loss = cosine(margin);
            check_grad(&format!("cosine {margin} {what}"), &loss, red, &cos, up);
            check_grad(
                &format!("cosine labels {margin} {what}"),
                &loss,
                red,
                &labelled,
                up,
            );
            check_grad(
                &format!("cosine -1 {margin} {what}"),
                &loss,
                red,
                &negative,
                up,
            );
        }
        let trip = Inputs::new(Tensor::new(&a, &shape))
            .positive(Tensor::new(&p, &shape))
            .negative(Tensor::new(&n, &shape));
        for p in [1.0, 2.0, 3.0, 0.5, f32::INFINITY] {
            for swap in [false, true] {
                for (margin, eps) in [(1.0, 1e-6), (0.25, 0.0), (2.0, 0.0), (0.5, 0.25)] {
                    let loss = Loss::Pairs(Pairs::TripletMargin {
                        margin,
                        p,
                        eps,
                        swap,
                    });
                    check_grad(&format!("{loss:?} {what}"), &loss, red, &trip, up);
                }
            }
        }
    }
}

#[test]
fn gradients_of_one_dimensional_inputs() {
    let [a, b, c] = single_pair(true);
    let shape = [7];
    for label in [1.0f32, -1.0, 0.0] {
        let l = [label];
        let inputs = labelled(&a, &b, &l);
        for (red, up) in calls(&[0.5]) {
            check_grad(
                &format!("cosine 1-d label {label} {red:?}"),
                &cosine(-0.5),
                red,
                &inputs,
                up,
            );
        }
    }
    let trip = Inputs::new(Tensor::new(&a, &shape))
        .positive(Tensor::new(&b, &shape))
        .negative(Tensor::new(&c, &shape));
    for loss in gradient_triplets() {
        for (red, up) in calls(&[-0.5]) {
            check_grad(&format!("{loss:?} 1-d {red:?}"), &loss, red, &trip, up);
        }
    }
}

#[test]
fn empty_batches() {
    let shape = [0, 5];
    let inputs = Inputs::new(Tensor::new(&[], &shape)).target(Tensor::new(&[], &shape));
    let trip = Inputs::new(Tensor::new(&[], &shape))
        .positive(Tensor::new(&[], &shape))
        .negative(Tensor::new(&[], &shape));
    for (red, up) in calls(&[]) {
        let g = check_grad(
            &format!("cosine empty {red:?}"),
            &cosine(0.0),
            red,
            &inputs,
            up,
        );
        assert!(g.input.is_empty() && g.target.as_ref().is_some_and(|t| t.is_empty()));
        let loss = triplet(1.0, 2.0, true);
        let g = check_grad(&format!("triplet empty {red:?}"), &loss, red, &trip, up);
        assert!(g.input.is_empty() && g.negative.as_ref().is_some_and(|t| t.is_empty()));
    }
}

/// Bindings of 2^16 values: the rows are cut into slices that start off the
/// 256-byte grid, and each slice writes its gradients at its own offsets.
#[test]
fn gradients_in_slices_beyond_one_binding() {
    let small = small_ctx();
    let limit = small.max_binding_elements();
    for (k, (rows, dim)) in [(1000usize, 100usize), (300, 1001), (5, 20_000)]
        .into_iter()
        .enumerate()
    {
        assert!(rows * dim > limit);
        let data = PairRows::new(rows, dim, 300 + k as u64, true);
        for (red, up) in calls(&data.up) {
            let what = format!("{rows}x{dim} {red:?} {}", kind(&up));
            for labelled in [false, true] {
                let loss = cosine(0.1);
                let inputs = data.cosine(labelled);
                let what = format!("cosine labels={labelled} {what}");
                check_grad_on(small, &what, &loss, red, &inputs, up);
            }
            for loss in [triplet(1.0, 2.0, true), triplet(1.0, f32::INFINITY, false)] {
                let what = format!("{loss:?} {what}");
                check_grad_on(small, &what, &loss, red, &data.triplet(), up);
            }
        }
    }
}

#[test]
fn caller_buffers_and_dispatch_counts() {
    // Inputs at element 64 of larger buffers, the three gradients in one
    // buffer at different offsets, a device upstream per row.
    let (rows, dim) = (300, 7);
    let len = rows * dim;
    let data = PairRows::new(rows, dim, 41, true);
    let pad = |v: &[f32]| [vec![7.0; 64], v.to_vec(), vec![7.0; 9]].concat();
    let (ab, pb, nb, ub) = (
        buffer(ctx(), &pad(&data.a)),
        buffer(ctx(), &pad(&data.p)),
        buffer(ctx(), &pad(&data.n)),
        buffer(ctx(), &pad(&data.up)),
    );
    let shape = [rows, dim];
    let t = |b| DeviceTensor::new(BufferView::new(b, 256, len), &shape);
    let inputs = DeviceInputs::new(t(&ab)).positive(t(&pb)).negative(t(&nb));
    let loss = triplet(1.0, 2.0, true);
    let at = [1024usize, 4096, 8192, 12288];
    let results = buffer(ctx(), &vec![-1.0f32; 16384]);
    for (red, up) in [
        (
            Reduction::None,
            DeviceUpstream::Buffer(BufferView::new(&ub, 256, rows)),
        ),
        (Reduction::Mean, DeviceUpstream::Scalar(2.0)),
    ] {
        let ev = ctx().grad_evaluator(&loss, red, &inputs).unwrap();
        // One fused pass; a reduced call adds its finalize.
        let expected = if red == Reduction::None { 1 } else { 2 };
        assert_eq!(ev.dispatches(), expected, "{red:?}");
        let view = |i: usize, len| BufferView::new(&results, 4 * at[i] as u64, len);
        let mut grads = GradViews::new(view(1, len));
        grads.positive = Some(view(2, len));
        grads.negative = Some(view(3, len));
        let mut encoder = ctx().device().create_command_encoder(&Default::default());
        ev.encode_with_grad(&mut encoder, &inputs, up, view(0, ev.output_len()), &grads)
            .unwrap();
        let got = read_all(ctx(), encoder, &results);
        let host_up = match up {
            DeviceUpstream::Scalar(g) => Upstream::Scalar(g),
            DeviceUpstream::Buffer(_) => Upstream::Items(&data.up),
        };
        let (want, g) = cpu::gradient(&loss, red, &data.triplet(), host_up).unwrap();
        let what = format!("{red:?}");
        if red == Reduction::None {
            assert_close_all(&what, &got[at[0]..at[0] + rows], &want.items);
        } else {
            assert!(close(got[at[0]] as f64, want.value, 1e-6), "{what}");
        }
        assert_close_all(&what, &got[at[1]..at[1] + len], &g.input);
        assert_close_all(
            &what,
            &got[at[2]..at[2] + len],
            g.positive.as_ref().unwrap(),
        );
        assert_close_all(
            &what,
            &got[at[3]..at[3] + len],
            g.negative.as_ref().unwrap(),
        );
        assert_eq!(got[at[3] + len], -1.0, "nothing is written past a gradient");
        assert_eq!(got[at[1] - 1], -1.0, "nothing is written before a gradient");
    }
    // cosine_embedding has no gradient for a `positive`: a typed error.
    let cos = DeviceInputs::new(t(&ab)).target(t(&pb));
    let ev = ctx()
        .grad_evaluator(&cosine(0.0), Reduction::Sum, &cos)
        .unwrap();
    let mut grads = GradViews::new(BufferView::new(&results, 4096, len));
    let mut encoder = ctx().device().create_command_encoder(&Default::default());
    let out = BufferView::new(&results, 0, 1);
    assert!(
        ev.encode_with_grad(&mut encoder, &cos, DeviceUpstream::Scalar(1.0), out, &grads)
            .is_err(),
        "the target's gradient view is required"
    );
    grads.target = Some(BufferView::new(&results, 4 * 4096, len));
    grads.positive = Some(BufferView::new(&results, 4 * 8192, len));
    assert!(
        ev.encode_with_grad(&mut encoder, &cos, DeviceUpstream::Scalar(1.0), out, &grads)
            .is_err(),
        "no gradient for positive"
    );
}

/// NaN and inf rows: the GPU gradients of every tensor against PyTorch's
/// autograd (the case file's `grads`), NaN where it has NaN.
#[test]
fn non_finite_rows_follow_pytorch() {
    let mut checked = 0;
    for case in load("nonfinite_cases.json") {
        let loss = loss_of(&case);
        if !matches!(
            loss,
            Loss::Pairs(Pairs::CosineEmbedding { .. }) | Loss::Pairs(Pairs::TripletMargin { .. })
        ) {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        let reduction = reduction_of(&case);
        let tensors = CaseTensors::of(&case);
        let inputs = tensors.inputs(&loss);
        let (_, g) = ctx()
            .evaluate_with_grad(&loss, reduction, &inputs, Upstream::Scalar(1.0))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (tensor, want) in grads(&case) {
            let got = g
                .named(&tensor)
                .unwrap_or_else(|| panic!("{name}: no gradient for {tensor}"));
            assert_close_all(&format!("{name} d/d{tensor}"), got, &want);
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} gradients checked");
}

// The twin's gradients against finite differences and PyTorch's conventions.

/// `count` tensors of `rows` rows of `dim` grid values in [-1.5, 1.5), each
/// row set drawn until `ok` holds for it.
fn rows_where(
    r: &mut ChaCha8Rng,
    rows: usize,
    dim: usize,
    count: usize,
    ok: impl Fn(&[Vec<f32>]) -> bool,
) -> Vec<Vec<f32>> {
    let mut out = vec![vec![]; count];
    for _ in 0..rows {
        loop {
            let row: Vec<Vec<f32>> = (0..count).map(|_| fd::vals(r, dim, -1.5, 1.5)).collect();
            if ok(&row) {
                for (o, v) in out.iter_mut().zip(row) {
                    o.extend(v);
                }
                break;
            }
        }
    }
    out
}

#[test]
fn cosine_embedding_matches_finite_differences() {
    let mut checked = 0;
    let mut r = rng(71);
    for (margin, labelled, shape) in [
        (0.0f32, true, vec![5usize, 4]),
        (0.2, true, vec![5, 4]),
        (-0.3, true, vec![5, 3]),
        (0.0, false, vec![4, 3]),
        (0.1, true, vec![6]),
    ] {
        let rows = if shape.len() == 2 { shape[0] } else { 1 };
        let dim = *shape.last().unwrap();
        let labels: Vec<f32> = (0..rows)
            .map(|i| if i % 3 == 1 { 1.0 } else { -1.0 })
            .collect();
        let m = margin as f64;
        let ab = (0..rows)
            .map(|i| {
                let label = if labelled { labels[i] } else { 1.0 };
                rows_where(&mut r, 1, dim, 2, |v| {
                    let cos = cpu::pairs::cosine(&v[0], &v[1]);
                    // Away from the hinge, and hinges on both sides of it.
                    label == 1.0 || (cos - m).abs() >= GAP
                })
            })
            .collect::<Vec<_>>();
        let a: Vec<f32> = ab.iter().flat_map(|v| v[0].clone()).collect();
        let b: Vec<f32> = ab.iter().flat_map(|v| v[1].clone()).collect();
        let mut case = Case::new(Loss::Pairs(Pairs::CosineEmbedding { margin }))
            .with("input", a, &shape)
            .with("target", b, &shape);
        if labelled {
            let lshape: Vec<usize> = shape[..shape.len() - 1].to_vec();
            case = case.with("labels", labels, &lshape);
        }
        let what = format!("cosine_embedding margin={margin} labels={labelled} {shape:?}");
        checked += fd::check_all(&what, &case, 72);
    }
    assert!(checked > 500, "{checked}");
}

fn abs_sorted(v: &[f64]) -> Vec<f64> {
    let mut a: Vec<f64> = v.iter().map(|d| d.abs()).collect();
    a.sort_by(|x, y| y.partial_cmp(x).unwrap());
    a
}

#[test]
fn triplet_margin_matches_finite_differences() {
    let mut checked = 0;
    let mut r = rng(81);
    for (margin, p, swap, shape) in [
        (1.0f32, 2.0f32, false, vec![5usize, 3]),
        (0.5, 2.0, false, vec![5, 4]),
        (1.0, 2.0, true, vec![6, 3]),
        (1.0, 1.0, false, vec![5, 3]),
        (1.0, 1.0, true, vec![5, 3]),
        (1.0, 3.0, false, vec![4, 3]),
        (1.0, 3.0, true, vec![4, 3]),
        (1.0, 1.5, true, vec![4, 3]),
        (1.0, 0.5, false, vec![4, 3]),
        (1.0, f32::INFINITY, false, vec![5, 3]),
        (0.5, f32::INFINITY, true, vec![5, 3]),
        (1.0, 2.0, false, vec![5]),
    ] {
        let rows = if shape.len() == 2 { shape[0] } else { 1 };
        let dim = *shape.last().unwrap();
        let (m, pf, eps) = (margin as f64, p as f64, 1e-6f32 as f64);
        let apn = rows_where(&mut r, rows, dim, 3, |v| {
            let diff = |x: &[f32], y: &[f32]| -> Vec<f64> {
                x.iter()
                    .zip(y)
                    .map(|(x, y)| *x as f64 - *y as f64 + eps)
                    .collect()
            };
            let pairs = [diff(&v[0], &v[1]), diff(&v[0], &v[2]), diff(&v[1], &v[2])];
            // p = 1 and p < 1: no zero component; p = inf: one largest.
            let smooth_norms = pairs.iter().all(|d| {
                let s = abs_sorted(d);
                s[dim - 1] >= GAP && (!pf.is_infinite() || dim == 1 || s[0] - s[1] >= GAP)
            });
            let d_ap = cpu::pairs::distance(&v[0], &v[1], pf, eps);
            let d_an = cpu::pairs::distance(&v[0], &v[2], pf, eps);
            let d_pn = cpu::pairs::distance(&v[1], &v[2], pf, eps);
            let d_neg = if swap { d_an.min(d_pn) } else { d_an };
            smooth_norms && (m + d_ap - d_neg).abs() >= GAP && (!swap || (d_an - d_pn).abs() >= GAP)
        });
        let case = Case::new(Loss::Pairs(Pairs::TripletMargin {
            margin,
            p,
            eps: 1e-6,
            swap,
        }))
        .with("input", apn[0].clone(), &shape)
        .with("positive", apn[1].clone(), &shape)
        .with("negative", apn[2].clone(), &shape);
        let what = format!("triplet_margin margin={margin} p={p} swap={swap} {shape:?}");
        checked += fd::check_all(&what, &case, 82);
    }
    assert!(checked >= 1900, "{checked}");
}

#[test]
fn hinges_at_exactly_zero_pass_no_gradient() {
    // ✔ torch 2.15: clamp_min(·, 0) has gradient 0 at 0.
    // triplet: a = [0,0], p = [1,0], n = [2,0], eps = 0 → 1 + 1 − 2 = 0.
    let case = Case::new(Loss::Pairs(Pairs::TripletMargin {
        margin: 1.0,
        p: 2.0,
        eps: 0.0,
        swap: false,
    }))
    .with("input", vec![0.0, 0.0], &[1, 2])
    .with("positive", vec![1.0, 0.0], &[1, 2])
    .with("negative", vec![2.0, 0.0], &[1, 2]);
    let (r, g) = fd::grad(&case, Reduction::Sum);
    assert_eq!(r.value, 0.0);
    for v in [
        &g.input,
        g.positive.as_ref().unwrap(),
        g.negative.as_ref().unwrap(),
    ] {
        fd::assert_vec("triplet hinge", v, &[0.0, 0.0]);
    }
    // cosine_embedding, label −1: cos = 0 = margin.
    let case = Case::new(Loss::Pairs(Pairs::CosineEmbedding { margin: 0.0 }))
        .with("input", vec![1.0, 0.0], &[1, 2])
        .with("target", vec![0.0, 1.0], &[1, 2])
        .with("labels", vec![-1.0], &[1]);
    let (r, g) = fd::grad(&case, Reduction::Sum);
    assert_eq!(r.value, 0.0);
    fd::assert_vec("cosine hinge x1", &g.input, &[0.0, 0.0]);
    fd::assert_vec("cosine hinge x2", g.target.as_ref().unwrap(), &[0.0, 0.0]);
    // Labels other than ±1 give a silent 0.
    let case = Case::new(Loss::Pairs(Pairs::CosineEmbedding { margin: 0.0 }))
        .with("input", vec![1.0, 0.5], &[1, 2])
        .with("target", vec![0.25, 1.0], &[1, 2])
        .with("labels", vec![0.0], &[1]);
    fd::assert_vec(
        "cosine label 0",
        &fd::grad(&case, Reduction::Mean).1.input,
        &[0.0, 0.0],
    );
}

#[test]
fn cosine_embedding_zero_vectors() {
    // x1 = 0 against [1, 1], label 1: −x2/√(ε·m2) with ε the float 1e-12
    // (✔ torch: −707106.7825991004); both zero: cos = 0 and no gradient.
    let case = Case::new(Loss::Pairs(Pairs::CosineEmbedding { margin: 0.0 }))
        .with("input", vec![0.0, 0.0, 0.0, 0.0], &[2, 2])
        .with("target", vec![1.0, 1.0, 0.0, 0.0], &[2, 2]);
    let (r, g) = fd::grad(&case, Reduction::None);
    fd::assert_vec("items", &r.items, &[1.0, 1.0]);
    fd::assert_vec(
        "x1",
        &g.input,
        &[-707106.7825991004, -707106.7825991004, 0.0, 0.0],
    );
    fd::assert_vec("x2", g.target.as_ref().unwrap(), &[0.0; 4]);
}

fn triplet_case(margin: f32, p: f32, swap: bool, a: &[f32], pos: &[f32], neg: &[f32]) -> Case {
    Case::new(Loss::Pairs(Pairs::TripletMargin {
        margin,
        p,
        eps: 0.0,
        swap,
    }))
    .with("input", a.to_vec(), &[1, a.len()])
    .with("positive", pos.to_vec(), &[1, a.len()])
    .with("negative", neg.to_vec(), &[1, a.len()])
}

fn assert_triplet(what: &str, case: &Case, value: f64, want: [&[f64]; 3]) {
    let (r, g) = fd::grad(case, Reduction::Sum);
    assert!((r.value - value).abs() < 1e-12, "{what}: {}", r.value);
    fd::assert_vec(&format!("{what} d/da"), &g.input, want[0]);
    fd::assert_vec(
        &format!("{what} d/dp"),
        g.positive.as_ref().unwrap(),
        want[1],
    );
    fd::assert_vec(
        &format!("{what} d/dn"),
        g.negative.as_ref().unwrap(),
        want[2],
    );
}

#[test]
fn triplet_ties_split_the_gradient() {
    // swap with d(a, n) == d(p, n): torch.min gives each half (✔ torch).
    let s5 = 1.0 / 5f64.sqrt();
    let case = triplet_case(1.0, 2.0, true, &[0.0, 0.0], &[0.0, 1.0], &[1.0, 0.5]);
    assert_triplet(
        "swap tie",
        &case,
        0.8819660112501051,
        [
            &[s5, -1.0 + 0.5 * s5],
            &[s5, 1.0 - 0.5 * s5],
            &[-2.0 * s5, 0.0],
        ],
    );
    // p = inf with two largest components: half each (✔ torch).
    let case = triplet_case(
        5.0,
        f32::INFINITY,
        false,
        &[0.0, 0.0, 0.0],
        &[1.0, -1.0, 0.5],
        &[5.0, 0.0, 0.0],
    );
    assert_triplet(
        "inf tie",
        &case,
        1.0,
        [&[0.5, 0.5, 0.0], &[0.5, -0.5, 0.0], &[-1.0, 0.0, 0.0]],
    );
    // p < 1 at a zero component and p = 3 at the zero vector: 0 there (✔ torch).
    let case = triplet_case(5.0, 0.5, false, &[0.0, 0.0], &[0.0, 1.0], &[5.0, 0.0]);
    assert_triplet(
        "p=0.5 zero component",
        &case,
        1.0,
        [&[1.0, -1.0], &[0.0, 1.0], &[-1.0, 0.0]],
    );
    let case = triplet_case(5.0, 3.0, false, &[0.0, 0.0], &[0.0, 0.0], &[5.0, 0.0]);
    let (_, g) = fd::grad(&case, Reduction::Sum);
    fd::assert_vec(
        "p=3 zero vector d/dp",
        g.positive.as_ref().unwrap(),
        &[0.0, 0.0],
    );
    fd::assert_vec(
        "p=3 zero vector d/dn",
        g.negative.as_ref().unwrap(),
        &[-1.0, 0.0],
    );
}

/// Rows x and f32(3 x): they differ from exactly parallel rows only by the
/// rounding of each element, so 1 - cos is of the order of 1e-14. The dot
/// product and the squared norms are summed at different magnitudes, so a
/// single running f32 sum of 16 384 products (instead of the kernel's
/// blocked sums) misses that by about sqrt(dim) ulp, 5e-6.
#[test]
fn near_parallel_cosine_rows() {
    let mut r = rng(31);
    let (rows, dim) = (8usize, 16_384usize);
    let x: Vec<f32> = (0..rows * dim)
        .map(|_| r.random_range(-1.0f32..1.0) * 10f32.powf(r.random_range(-1.0f32..1.0)))
        .collect();
    let y: Vec<f32> = x.iter().map(|v| v * 3.0).collect();
    let shape = [rows, dim];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    for red in REDUCTIONS {
        check(
            &format!("cosine near-parallel {red:?}"),
            &cosine(0.0),
            red,
            &inputs,
        );
    }
}

/// Triplets whose positive and negative offsets from the anchor are the same
/// components, permuted with some signs flipped: d(a, p) and d(a, n) agree
/// but for eps, so margin + d(a, p) - d(a, n) stays near the 1e-3 margin while
/// the termwise difference of the p-th powers walks over +-100. Summed in one
/// running f32 sum (instead of the kernel's blocked sums) the gap is off by
/// 1e-6 to 3e-6.
#[test]
fn triplets_whose_distances_nearly_cancel() {
    let mut r = rng(32);
    let (rows, dim) = (8usize, 16_384usize);
    // Multiples of 2^-10, so that a - p and a - n are exact.
    let grid = |r: &mut ChaCha8Rng| r.random_range(-1024i32..=1024) as f32 / 1024.0;
    let mut a = Vec::with_capacity(rows * dim);
    let mut p = Vec::with_capacity(rows * dim);
    let mut n = Vec::with_capacity(rows * dim);
    for _ in 0..rows {
        let u: Vec<f32> = (0..dim).map(|_| grid(&mut r)).collect();
        let mut v = u.clone();
        for k in (1..dim).rev() {
            v.swap(k, r.random_range(0..=k));
        }
        for k in 0..dim {
            let base = grid(&mut r);
            let flip = if r.random_range(0..2) == 0 { 1.0 } else { -1.0 };
            a.push(base);
            p.push(base + u[k]);
            n.push(base + flip * v[k]);
        }
    }
    let shape = [rows, dim];
    let trip = Inputs::new(Tensor::new(&a, &shape))
        .positive(Tensor::new(&p, &shape))
        .negative(Tensor::new(&n, &shape));
    // Not p = 1: there the gap is the sum itself, undivided, and the rounding
    // of each a - p + eps in f32 already costs 1e-6 per thousand components.
    for loss in [triplet(1e-3, 2.0, false), triplet(1e-3, 1.5, false)] {
        for red in REDUCTIONS {
            check(
                &format!("{loss:?} near-cancelling {red:?}"),
                &loss,
                red,
                &trip,
            );
        }
    }
}

/// The general-p gradient runs through `ln_acc` and `exp_acc`
/// (shaders/pairs.wgsl), which take each multiple of ln 2 in two parts,
/// LN2_HI (exact in k * LN2_HI) and LN2_LO. With p = 0.2 a component 2^-k of
/// the row's largest gets a gradient of (2^-k)^-0.8 times a factor near 1:
/// dropping LN2_LO (1.4e-6 per power of two) from either function moves the
/// gradient of k = 120 by about 1.4e-4 relative, while the kernel keeps every
/// component within 2e-5 of the twin.
#[test]
fn general_p_gradients_hold_the_two_part_ln2() {
    let two = |e: i32| 2f32.powi(e);
    let row = [
        1.0,
        two(-120),
        -two(-110),
        two(-90),
        0.75,
        -two(-60),
        two(-100),
    ];
    let dim = row.len();
    // The same row at three scales (the ratios, which the gradient depends
    // on, stay exact).
    let a: Vec<f32> = [0, 40, -20]
        .iter()
        .flat_map(|&s| row.iter().map(move |v| v * two(s)))
        .collect();
    let zero = vec![0.0f32; a.len()];
    let shape = [a.len() / dim, dim];
    // d(a, p) = |a|_0.2, d(a, n) = 0: every hinge is open.
    let inputs = Inputs::new(Tensor::new(&a, &shape))
        .positive(Tensor::new(&zero, &shape))
        .negative(Tensor::new(&a, &shape));
    let loss = Loss::Pairs(Pairs::TripletMargin {
        margin: 1.0,
        p: 0.2,
        eps: 0.0,
        swap: false,
    });
    let up = Upstream::Scalar(1.0);
    let (_, want) = cpu::gradient(&loss, Reduction::Sum, &inputs, up).unwrap();
    let (_, got) = ctx()
        .evaluate_with_grad(&loss, Reduction::Sum, &inputs, up)
        .unwrap();
    for (name, got, want) in [
        ("anchor", &got.input, &want.input),
        (
            "positive",
            got.positive.as_ref().unwrap(),
            want.positive.as_ref().unwrap(),
        ),
    ] {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let rel = (*g as f64 - w).abs() / w.abs();
            assert!(
                rel < 2e-5,
                "d/d{name}[{i}]: gpu {g} vs twin {w} ({rel:.1e} relative)"
            );
        }
    }
}

// The kernel variants: each at the sizes that trip kernels, on rows no
// thread may walk alone, and refused where it cannot run.

/// Every variant, forward and fused, at rows of 1, 3, 255, 257 (about a
/// packed workgroup's lanes, one under and one over) and 4099 values (beyond
/// a thread's row, and not a multiple of any subgroup or workgroup), in
/// batches of 1, 7 and 1000 rows.
#[test]
fn every_variant_at_awkward_sizes() {
    let mut ran: Vec<Variant> = vec![];
    for (k, &rows) in [1usize, 7, 1000].iter().enumerate() {
        for &dim in &[1usize, 3, 255, 257, 4099] {
            let seed = 500 + 10 * k as u64 + dim as u64;
            let large = rows * dim > 1_000_000;
            let data = PairRows::new(rows, dim, seed, false);
            let cos = data.cosine(false);
            let labelled = data.cosine(true);
            let trip = data.triplet();
            let losses = [
                (cosine(0.0), &cos),
                (cosine(0.5), &labelled),
                (triplet(1.0, 2.0, true), &trip),
                (triplet(1.0, 1.0, false), &trip),
                (triplet(1.0, 1.5, true), &trip),
                (triplet(1.0, f32::INFINITY, true), &trip),
            ];
            // Four million values: the items only (their sum is checked
            // too) of two losses keep the test quick.
            let (reductions, losses): (&[Reduction], _) = if large {
                (&[Reduction::None], &losses[1..=2])
            } else {
                (&REDUCTIONS, &losses[..])
            };
            for (loss, inputs) in losses {
                for &red in reductions {
                    let what = format!("{loss:?} rows={rows} dim={dim} {red:?}");
                    ran.extend(check(&what, loss, red, inputs));
                }
            }
            // Rows with identical pairs, where the cosine's gradient cancels.
            let data = PairRows::new(rows, dim, seed + 1, true);
            let all = calls(&data.up);
            for (i, (loss, labelled)) in [
                (cosine(0.0), false),
                (cosine(-0.3), true),
                (triplet(0.5, 2.0, true), false),
                (triplet(1.0, 3.0, false), false),
                (triplet(1.0, f32::INFINITY, false), false),
            ]
            .into_iter()
            .enumerate()
            {
                let inputs = match loss {
                    Loss::Pairs(Pairs::CosineEmbedding { .. }) => data.cosine(labelled),
                    _ => data.triplet(),
                };
                // Four million values: one call of one loss.
                let some = match (large, i) {
                    (false, _) => all.clone(),
                    (true, 3) => vec![all[1]],
                    (true, _) => vec![],
                };
                for (red, up) in some {
                    let what = format!("{loss:?} rows={rows} dim={dim} {red:?} {}", kind(&up));
                    check_grad(&what, &loss, red, &inputs, up);
                }
            }
        }
    }
    for v in variants_here(ctx()) {
        assert!(ran.contains(&v), "{v} never ran");
    }
}

/// Rows of a million values, whose walk by one thread passes llvmpipe's
/// 65 535 loop iterations (the value it returned was silently wrong): only a
/// workgroup per row may take them, and a thread forced on them is refused.
#[test]
fn rows_of_a_million_values() {
    let (rows, dim) = (2, 1_000_000);
    let data = PairRows::new(rows, dim, 91, false);
    let labelled = data.cosine(true);
    let trip = data.triplet();
    let eligible = ctx()
        .with_tune_cache(wgpu_loss::TuneCache::Off)
        .variants(&cosine(0.2), Reduction::Mean, &labelled)
        .unwrap();
    assert_eq!(
        eligible.iter().map(|v| v.name()).collect::<Vec<_>>(),
        ["pair-workgroup"]
    );
    for red in [Reduction::None, Reduction::Mean] {
        check(
            &format!("cosine 2x1e6 {red:?}"),
            &cosine(0.2),
            red,
            &labelled,
        );
    }
    check(
        "triplet p=2 swap 2x1e6",
        &triplet(1.0, 2.0, true),
        Reduction::None,
        &trip,
    );
    let grads = PairRows::new(rows, dim, 92, true);
    check_grad(
        "cosine 2x1e6 grad",
        &cosine(0.0),
        Reduction::Mean,
        &grads.cosine(false),
        Upstream::Scalar(2.0),
    );
    // A general p walks each row three times with GRAD.
    check_grad(
        "triplet p=1.5 2x1e6 grad",
        &triplet(1.0, 1.5, true),
        Reduction::None,
        &grads.triplet(),
        Upstream::Items(&grads.up),
    );
    let thread = ctx().with_variant(Variant::from_name("pair-thread").unwrap());
    match thread.evaluate(&cosine(0.2), Reduction::Mean, &labelled) {
        Err(Error::Variant { name, problem }) => {
            assert_eq!(name, "pair-thread");
            assert!(problem.contains("pair-workgroup"), "{problem}");
        }
        other => panic!("a thread per row of a million values: {other:?}"),
    }
}

/// A device like `ctx()`'s without subgroup operations.
fn no_subgroups_ctx() -> Context {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let info = ctx().adapter_info().clone();
    let adapter = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .find(|a| a.get_info().name == info.name && a.get_info().backend == info.backend)
        .expect("the test adapter");
    let desc = wgpu::DeviceDescriptor {
        required_limits: adapter.limits(),
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).expect("a device");
    Context::from_device(device, queue, info).untuned()
}

/// Forcing a variant on a shape or a device it cannot run is an
/// `Error::Variant` naming the variant and the eligible ones, from every
/// entry point; a variant of another family leaves the pair losses alone.
/// Every pair variant through GL (wgpu's GLES backend: GLSL from the same
/// WGSL), where the machine has it: short and long rows, each norm kind,
/// values and gradients.
#[test]
fn every_variant_on_the_gl_backend() {
    let Some(gl) = crate::common::device::gl_ctx() else {
        eprintln!("no GL adapter: the variants ran on Vulkan alone");
        return;
    };
    let mut ran: Vec<Variant> = vec![];
    for (rows, dim) in [(7usize, 257usize), (300, 3), (2, 4099)] {
        let data = PairRows::new(rows, dim, 900 + dim as u64, false);
        let labelled = data.cosine(true);
        let trip = data.triplet();
        for (loss, inputs) in [
            (cosine(0.5), &labelled),
            (triplet(1.0, 2.0, true), &trip),
            (triplet(1.0, 1.5, false), &trip),
            (triplet(1.0, f32::INFINITY, true), &trip),
        ] {
            for red in REDUCTIONS {
                let what = format!("gl {loss:?} rows={rows} dim={dim} {red:?}");
                ran.extend(check_on(gl, &what, &loss, red, inputs, 1e-6));
            }
            for (red, up) in calls(&data.up) {
                let what = format!("gl {loss:?} rows={rows} dim={dim} gradient {red:?}");
                check_grad_on(gl, &what, &loss, red, inputs, up);
            }
        }
    }
    for v in variants_here(gl) {
        assert!(ran.contains(&v), "{} did not run on GL", v.name());
    }
}

#[test]
fn forcing_a_variant_that_cannot_run_is_an_error() {
    let named = |n: &str| Variant::from_name(n).unwrap();
    let plain = no_subgroups_ctx();
    for (on, variant, dim) in [
        (ctx(), "pair-thread", 5000),
        (ctx(), "pair-packed", 600),
        (ctx(), "pair-workgroup", 300),
        (ctx(), "pair-subgroup", 20_000),
        (&plain, "pair-subgroup", 64),
    ] {
        let data = PairRows::new(3, dim, 7, false);
        let inputs = data.cosine(true);
        let forced = on.with_variant(named(variant));
        let loss = cosine(0.1);
        let what = format!("{variant} on 3x{dim}");
        let expect = |r: Result<(), Error>, call: &str| match r {
            Err(Error::Variant { name, problem }) => {
                assert_eq!(name, variant, "{what} {call}");
                assert!(problem.contains("eligible"), "{what} {call}: {problem}");
            }
            other => panic!("{what} {call}: {other:?}"),
        };
        expect(
            forced.evaluate(&loss, Reduction::Mean, &inputs).map(|_| ()),
            "evaluate",
        );
        expect(
            forced
                .evaluate_with_grad(&loss, Reduction::Sum, &inputs, Upstream::Scalar(1.0))
                .map(|_| ()),
            "evaluate_with_grad",
        );
        expect(
            forced.prepare(&loss, Reduction::None, &inputs).map(|_| ()),
            "prepare",
        );
        expect(
            forced.variants(&loss, Reduction::Mean, &inputs).map(|_| ()),
            "variants",
        );
        expect(
            forced.tune(&loss, Reduction::Mean, &inputs).map(|_| ()),
            "tune",
        );
        let shape = [3, dim];
        let b = buffer(on, &data.a);
        let t = DeviceTensor::new(BufferView::new(&b, 0, 3 * dim), &shape);
        let device = DeviceInputs::new(t).target(t);
        expect(
            forced
                .evaluator(&loss, Reduction::Mean, &device)
                .map(|_| ()),
            "evaluator",
        );
        expect(
            forced
                .grad_evaluator(&loss, Reduction::Mean, &device)
                .map(|_| ()),
            "grad_evaluator",
        );
    }
    // Another family's variant forces nothing here.
    let data = PairRows::new(3, 16, 8, false);
    let other = ctx().with_variant(named("point-vec4"));
    check_on(
        &other,
        "pairs beside point-vec4",
        &cosine(0.0),
        Reduction::Mean,
        &data.cosine(false),
        1e-6,
    );
    assert_eq!(
        other
            .prepare(&cosine(0.0), Reduction::Mean, &data.cosine(false))
            .unwrap()
            .evaluator()
            .variant()
            .family(),
        "pairs"
    );
}

/// Infinite and NaN components of the anchor, positive and negative give the
/// twin's value and gradient kinds for every norm, with and without swap, on
/// every variant: infinite and NaN distances, inf - inf, the swap's minimum
/// against a NaN or infinite distance, and norm gradients at an infinite or
/// NaN norm (which the kernels carry as kinds).
#[test]
fn triplet_nonfinite_components_follow_the_twin() {
    let (nan, inf) = (f32::NAN, f32::INFINITY);
    #[rustfmt::skip]
    let rows: [[[f32; 3]; 3]; 7] = [
        [[nan, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]],
        [[inf, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
        [[0.0, 1.0, 2.0], [0.0, 1.0, 1.0], [0.0, -inf, 2.0]],
        [[1.0, 0.0, 0.0], [inf, 0.0, 0.0], [0.0, 0.0, 1.0]],
        [[1.0, 2.0, 3.0], [1.0, 2.0, 2.5], [0.0, 0.0, 0.0]],
        [[0.0, 0.0, 0.0], [inf, 1.0, 0.0], [inf, 0.0, 0.0]],
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, nan, 0.0]],
    ];
    let part = |t: usize| -> Vec<f32> { rows.iter().flat_map(|r| r[t]).collect() };
    let (a, p, n) = (part(0), part(1), part(2));
    let shape = [rows.len(), 3];
    let inputs = Inputs::new(Tensor::new(&a, &shape))
        .positive(Tensor::new(&p, &shape))
        .negative(Tensor::new(&n, &shape));
    for loss in triplets() {
        let what = format!("{loss:?} non-finite components");
        check(&what, &loss, Reduction::None, &inputs);
        check_grad(&what, &loss, Reduction::Sum, &inputs, Upstream::Scalar(1.0));
    }
}

/// Where `with_values` puts a value: the row, the tensor (0 the anchor or
/// x1, 1 the positive or x2, 2 the negative), the component (0 the first, 1
/// the middle, 2 the last of the row) and the value.
type Put = (usize, usize, usize, f32);

/// Seeded `PairRows` of `rows` x `dim` with the values of `put` in place. The
/// first, middle and last components of a row fall to different lanes of
/// every variant that splits a row (for dim 20 and 1030), so that a row's
/// kinds meet only in the joins across its lanes. The positives and
/// negatives are drawn apart from the anchors.
fn with_values(rows: usize, dim: usize, seed: u64, put: &[Put]) -> PairRows {
    let mut data = PairRows::new(rows, dim, seed, false);
    let mut r = rng(seed + 1);
    data.p = uniform(&mut r, rows * dim, -1.0, 1.0);
    data.n = uniform(&mut r, rows * dim, -1.0, 1.0);
    for &(row, tensor, at, v) in put {
        let k = row * dim + [0, dim / 2, dim - 1][at];
        match tensor {
            0 => data.a[k] = v,
            1 => data.p[k] = v,
            _ => data.n[k] = v,
        }
    }
    data
}

/// Upstream values per row, NaN and infinities among them.
fn nonfinite_upstream(rows: usize) -> Vec<f32> {
    let (nan, inf) = (f32::NAN, f32::INFINITY);
    let kinds = [1.5, inf, -inf, nan, -0.5];
    (0..rows).map(|r| kinds[r % kinds.len()]).collect()
}

/// Rows with +inf and -inf in different components (of one tensor and of
/// two), inf - inf within a component, and NaN beside an infinity, with the
/// infinities in different lanes of a row: the twin's value and gradient
/// kinds for every norm (p < 1 too), with and without swap, on every
/// variant, also under NaN and infinite upstreams. The kernels carry the
/// components' kinds beside finite sums and maxima and join them across the
/// lanes.
#[test]
fn triplet_mixed_infinities_follow_the_twin() {
    let (nan, inf) = (f32::NAN, f32::INFINITY);
    #[rustfmt::skip]
    let put: [Put; 16] = [
        // Row 0 finite.
        (1, 0, 0, inf), (1, 0, 2, -inf),
        (2, 1, 0, inf), (2, 2, 2, -inf),
        (3, 1, 1, inf), (3, 2, 1, inf),
        (4, 1, 0, -inf), (4, 1, 2, inf),
        (5, 2, 0, inf), (5, 2, 1, -inf),
        (6, 0, 1, inf), (6, 2, 2, nan),
        (7, 1, 2, nan), (7, 2, 0, -inf),
        (8, 0, 0, -inf), (8, 1, 0, -inf),
    ];
    let rows = 9;
    let up = nonfinite_upstream(rows);
    let losses: Vec<Loss> = triplets()
        .into_iter()
        .chain([triplet(1.0, 0.5, false), triplet(1.0, 0.5, true)])
        .collect();
    for dim in [3, 20, 1030] {
        let data = with_values(rows, dim, 700 + dim as u64, &put);
        let inputs = data.triplet();
        // p < 1 only on short rows: on long ones its norm gradients are
        // hundreds (|v|_p / |v_k| grows with the row), and a gradient of
        // the anchor, their difference, may cancel to far less than the
        // f32 rounding of either, beyond the tolerance.
        let losses = if dim > 20 {
            &losses[..losses.len() - 2]
        } else {
            &losses[..]
        };
        for loss in losses {
            let what = format!("{loss:?} dim={dim} mixed infinities");
            check(&what, loss, Reduction::None, &inputs);
            check(&what, loss, Reduction::Mean, &inputs);
            check_grad(&what, loss, Reduction::Sum, &inputs, Upstream::Scalar(1.0));
            check_grad(&what, loss, Reduction::None, &inputs, Upstream::Items(&up));
        }
    }
}

/// cosine_embedding rows with infinities (x1 . x2 of +inf and -inf terms,
/// inf * 0, inf / inf), NaN components, and labels NaN, +inf and -inf (which
/// equal neither 1 nor -1: a 0 loss, and a gradient 0 times the row's
/// derivative, NaN where that is), with the infinities in different lanes of
/// a row: the twin's items, value and gradient kinds on every variant, with
/// and without labels, also under NaN and infinite upstreams.
#[test]
fn cosine_nonfinite_components_and_labels_follow_the_twin() {
    let (nan, inf) = (f32::NAN, f32::INFINITY);
    #[rustfmt::skip]
    let put: [Put; 12] = [
        // Rows 0, 6 and 7 finite.
        (1, 0, 0, inf),
        (2, 0, 0, inf), (2, 1, 0, 0.0),
        (3, 0, 0, inf), (3, 0, 2, -inf),
        (4, 1, 1, nan),
        (5, 0, 1, -inf),
        (8, 0, 2, inf), (8, 1, 2, inf),
        (9, 1, 0, -inf), (9, 1, 2, inf),
        (10, 0, 1, nan),
    ];
    let labels = [1.0, -1.0, 1.0, -1.0, -1.0, nan, nan, inf, -inf, 1.0, nan];
    let rows = labels.len();
    let up = nonfinite_upstream(rows);
    for dim in [3, 20, 1030] {
        let mut data = with_values(rows, dim, 800 + dim as u64, &put);
        data.y = labels.to_vec();
        for (loss, labelled) in [
            (cosine(0.0), false),
            (cosine(0.0), true),
            (cosine(0.5), true),
            (cosine(-0.3), true),
        ] {
            let inputs = data.cosine(labelled);
            let what = format!("{loss:?} dim={dim} labels={labelled} non-finite");
            check(&what, &loss, Reduction::None, &inputs);
            check(&what, &loss, Reduction::Sum, &inputs);
            check_grad(&what, &loss, Reduction::Sum, &inputs, Upstream::Scalar(1.0));
            check_grad(&what, &loss, Reduction::None, &inputs, Upstream::Items(&up));
        }
    }
}

/// Components near the top of f32 (from 1e38, where the kernels leave their
/// plain path for IEEE arithmetic on the kinds): differences that stay
/// finite, and two that overflow where the twin's float64 does not but the
/// hinge clamps either way, for the norms whose sums stay finite (p = 1,
/// inf), with and without swap, on every variant. Where f32 rounds a small
/// component away beside a large one (the twin's float64 keeps it), the rows
/// are such that no result moves beyond the tolerance: a difference of two
/// large distances would.
#[test]
fn triplet_large_finite_components_follow_the_twin() {
    #[rustfmt::skip]
    let put: [Put; 8] = [
        (0, 0, 0, 1e38), (0, 1, 0, 1e38), (0, 2, 0, -1e38),
        (1, 0, 1, 3e38), (1, 1, 1, 3e38), (1, 2, 1, -3e38),
        (2, 0, 2, 1e38), (2, 1, 2, -2e38),
    ];
    let up = nonfinite_upstream(3);
    for dim in [3, 1030] {
        let data = with_values(3, dim, 900 + dim as u64, &put);
        let inputs = data.triplet();
        for (p, swap) in [
            (1.0, false),
            (1.0, true),
            (f32::INFINITY, false),
            (f32::INFINITY, true),
        ] {
            let loss = triplet(1.0, p, swap);
            let what = format!("{loss:?} dim={dim} large components");
            check(&what, &loss, Reduction::None, &inputs);
            check(&what, &loss, Reduction::Mean, &inputs);
            check_grad(&what, &loss, Reduction::Sum, &inputs, Upstream::Scalar(1.0));
            check_grad(&what, &loss, Reduction::None, &inputs, Upstream::Items(&up));
        }
    }
}
