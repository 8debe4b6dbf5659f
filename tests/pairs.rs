//! GPU against the float64 CPU twin for cosine_embedding and triplet_margin,
//! on seeded random rows at awkward sizes and on degenerate rows.

mod common;

use common::device::*;
use common::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use wgpu_loss::Pairs;
use wgpu_loss::{
    cpu, BufferView, DeviceInputs, DeviceTensor, Error, Inputs, Loss, Reduction, Tensor,
};

fn triplets() -> Vec<Loss> {
    vec![
        triplet(1.0, 2.0, false),
        triplet(1.0, 2.0, true),
        triplet(0.5, 2.0, false),
        triplet(1.0, 1.0, false),
        triplet(1.0, 1.0, true),
        triplet(1.0, 3.0, false),
        triplet(1.0, 1.5, true),
        triplet(1.0, f32::INFINITY, false),
        triplet(1.0, f32::INFINITY, true),
    ]
}

/// `base` plus per-row noise of a random scale: rows of every distance, from
/// nearly identical to unrelated.
fn near(r: &mut ChaCha8Rng, base: &[f32], dim: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(base.len());
    for row in base.chunks(dim.max(1)) {
        let scale: f32 = match r.random_range(0..4) {
            0 => 1e-3,
            1 => r.random_range(0.0..0.3),
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

#[test]
fn pair_losses_match_the_reference_at_awkward_sizes() {
    for (k, &rows) in [1usize, 255, 256, 257, 65_537].iter().enumerate() {
        for &dim in &[1usize, 3, 64, 300] {
            let mut r = rng(100 * k as u64 + dim as u64);
            let n = rows * dim;
            let a = uniform(&mut r, n, -1.0, 1.0);
            let p = near(&mut r, &a, dim);
            let neg = near(&mut r, &a, dim);
            let y = labels(&mut r, rows);
            let shape = [rows, dim];
            let large = n > 1_000_000;
            let cos = Inputs::new(Tensor::new(&a, &shape)).target(Tensor::new(&p, &shape));
            let labelled = cos.labels(Tensor::new(&y, &shape[..1]));
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
            let trip = Inputs::new(Tensor::new(&a, &shape))
                .positive(Tensor::new(&p, &shape))
                .negative(Tensor::new(&neg, &shape));
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
    let p = near(&mut r, &a, dim);
    let neg = near(&mut r, &a, dim);
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
    let mut r = rng(3);
    let a = uniform(&mut r, 7, -1.0, 1.0);
    let b = near(&mut r, &a, 7);
    let c = uniform(&mut r, 7, -1.0, 1.0);
    let shape = [7];
    for label in [1.0f32, -1.0, 0.0] {
        let l = [label];
        let inputs = Inputs::new(Tensor::new(&a, &shape))
            .target(Tensor::new(&b, &shape))
            .labels(Tensor::new(&l, &[]));
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
    // LOSS_SEMANTICS.md §10b and §15.
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
    let b = near(&mut r, &a, dim);
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
        let p = near(&mut r, &a, dim);
        let n = near(&mut r, &a, dim);
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
            let b = near(&mut r, &a, dim);
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
