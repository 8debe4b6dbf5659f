//! GPU gradients of cosine_embedding (d/dx1, d/dx2) and triplet_margin
//! (d/danchor, d/dpositive, d/dnegative) against the float64 backward
//! (`cpu::gradient`): every element within 1e-4 relative + 1e-6 absolute, for
//! each reduction and both kinds of upstream, at awkward row counts and
//! widths, on degenerate rows, in slices beyond one binding and on caller
//! buffers.

use crate::common::device::small_ctx;
use crate::common::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use wgpu::util::DeviceExt;
use wgpu_loss::Pairs;
use wgpu_loss::{
    cpu, BufferView, DeviceInputs, DeviceTensor, DeviceUpstream, GradViews, Inputs, Loss,
    Reduction, Tensor, Upstream,
};

fn triplets() -> Vec<Loss> {
    vec![
        triplet(1.0, 2.0, false),
        triplet(0.5, 2.0, true),
        triplet(1.0, 1.0, false),
        triplet(1.0, 1.0, true),
        triplet(1.0, 3.0, false),
        triplet(1.0, 1.5, true),
        triplet(1.0, f32::INFINITY, false),
        triplet(1.0, f32::INFINITY, true),
    ]
}

/// `none` with a scalar and with one upstream value per row, `mean` with an
/// upstream as large as its divisor (gradients O(1), so that the absolute
/// tolerance hides nothing), `sum`.
fn calls(per_row: &[f32]) -> Vec<(Reduction, Upstream<'_>)> {
    let n = per_row.len().max(1) as f32;
    vec![
        (Reduction::None, Upstream::Scalar(1.5)),
        (Reduction::None, Upstream::Items(per_row)),
        (Reduction::Mean, Upstream::Scalar(0.75 * n)),
        (Reduction::Sum, Upstream::Scalar(-1.25)),
    ]
}

/// One upstream value per row, some of them 0.
fn upstream_rows(rows: usize, seed: u64) -> Vec<f32> {
    let mut u = uniform(&mut rng(seed), rows, -2.0, 2.0);
    for v in u.iter_mut().step_by(13) {
        *v = 0.0;
    }
    u
}

/// `base` plus per-row noise of a random scale: rows from nearly identical
/// (where the cosine's gradient cancels) to unrelated.
fn near(r: &mut ChaCha8Rng, base: &[f32], dim: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(base.len());
    for row in base.chunks(dim.max(1)) {
        let scale: f32 = match r.random_range(0..5) {
            0 => 1e-3,
            1 => 0.0,
            2 => r.random_range(0.0..0.3),
            _ => r.random_range(0.0..1.5),
        };
        out.extend(row.iter().map(|v| v + scale * r.random_range(-1.0f32..1.0)));
    }
    out
}

/// Labels ±1 with some 0 (no loss and no gradient).
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

struct Rows {
    shape: Vec<usize>,
    a: Vec<f32>,
    p: Vec<f32>,
    n: Vec<f32>,
    y: Vec<f32>,
    up: Vec<f32>,
}

impl Rows {
    fn new(rows: usize, dim: usize, seed: u64) -> Rows {
        let mut r = rng(seed);
        let a = uniform(&mut r, rows * dim, -1.0, 1.0);
        let p = near(&mut r, &a, dim);
        let n = near(&mut r, &a, dim);
        let y = labels(&mut r, rows);
        Rows {
            shape: vec![rows, dim],
            a,
            p,
            n,
            y,
            up: upstream_rows(rows, seed + 1),
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

fn kind(up: &Upstream<'_>) -> &'static str {
    match up {
        Upstream::Items(_) => "items",
        Upstream::Scalar(_) => "scalar",
    }
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
            let data = Rows::new(rows, dim, 100 * k as u64 + dim as u64);
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
            for (i, loss) in triplets().into_iter().enumerate() {
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
    let up = upstream_rows(rows.len(), 77);
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
    for loss in triplets() {
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
        let data = Rows::new(rows, dim, 300 + k as u64);
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

fn buffer(data: &[f32]) -> wgpu::Buffer {
    ctx()
        .device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        })
}

fn read(buffer: &wgpu::Buffer, mut encoder: wgpu::CommandEncoder) -> Vec<f32> {
    let size = buffer.size();
    let staging = ctx().device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
    ctx().queue().submit([encoder.finish()]);
    staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    ctx()
        .device()
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    let view = staging.slice(..).get_mapped_range().unwrap();
    bytemuck::cast_slice(&view).to_vec()
}

fn assert_close_all(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(close(*g as f64, *w, 1e-6), "{what}[{i}]: gpu {g} vs {w}");
    }
}

#[test]
fn caller_buffers_and_dispatch_counts() {
    // Inputs at element 64 of larger buffers, the three gradients in one
    // buffer at different offsets, a device upstream per row.
    let (rows, dim) = (300, 7);
    let len = rows * dim;
    let data = Rows::new(rows, dim, 41);
    let pad = |v: &[f32]| [vec![7.0; 64], v.to_vec(), vec![7.0; 9]].concat();
    let (ab, pb, nb, ub) = (
        buffer(&pad(&data.a)),
        buffer(&pad(&data.p)),
        buffer(&pad(&data.n)),
        buffer(&pad(&data.up)),
    );
    let shape = [rows, dim];
    let t = |b| DeviceTensor::new(BufferView::new(b, 256, len), &shape);
    let inputs = DeviceInputs::new(t(&ab)).positive(t(&pb)).negative(t(&nb));
    let loss = triplet(1.0, 2.0, true);
    let at = [1024usize, 4096, 8192, 12288];
    let results = buffer(&vec![-1.0; 16384]);
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
        let got = read(&results, encoder);
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
    for case in crate::common::cases::load("nonfinite_cases.json") {
        let loss = crate::common::cases::loss_of(&case);
        if !matches!(
            loss,
            Loss::Pairs(Pairs::CosineEmbedding { .. }) | Loss::Pairs(Pairs::TripletMargin { .. })
        ) {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        let reduction = crate::common::cases::reduction_of(&case);
        let tensors = crate::common::cases::CaseTensors::of(&case);
        let inputs = tensors.inputs(&loss);
        let (_, g) = ctx()
            .evaluate_with_grad(&loss, reduction, &inputs, Upstream::Scalar(1.0))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (tensor, want) in case["grads"].as_object().unwrap() {
            let got = match tensor.as_str() {
                "input" => Some(&g.input),
                "target" => g.target.as_ref(),
                "positive" => g.positive.as_ref(),
                "negative" => g.negative.as_ref(),
                _ => None,
            };
            let want: Vec<f64> = want
                .as_array()
                .unwrap()
                .iter()
                .map(crate::common::cases::num)
                .collect();
            let got = got.unwrap_or_else(|| panic!("{name}: no gradient for {tensor}"));
            assert_close_all(&format!("{name} d/d{tensor}"), got, &want);
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} gradients checked");
}
