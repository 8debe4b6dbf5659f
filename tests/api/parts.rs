//! A batch a part at a time: the gradient of the whole call from each
//! chunk's values and the merged partial (`Context::gradient_of_part` and its
//! float64 twin), every chunk's own result from `Context::stream_chunks`,
//! and `Chunks::span`. Parts concatenated must give the whole call's
//! gradients: bit for bit on the GPU where the reduction's denominator is
//! exact in f32 (counts, small integer weights), and for Dice, whose
//! per-class rule then runs on the merged sums, within the reference's
//! tolerance.

use crate::common::{close, ctx, rng, uniform};
use rand::Rng;
use wgpu_loss::{
    cpu, ChunkResult, Chunks, Dice, DiceMode, Inputs, Loss, Pairs, Partial, Reduction, Rows,
    Tensor, TensorName, Upstream,
};

/// The tensors a loss has gradients for.
fn wrts(loss: &Loss) -> Vec<TensorName> {
    loss.entry().grads.to_vec()
}

/// Checks the parts' gradients against one call over `inputs`, for each
/// reduction, with chunks of `chunk_elems` input values.
fn parts_match(
    what: &str,
    loss: &Loss,
    inputs: &Inputs<'_>,
    chunk_elems: usize,
    reductions: &[Reduction],
) {
    let dice = matches!(loss, Loss::Dice(_));
    for &reduction in reductions {
        let what = format!("{what} {}", reduction.name());
        let chunks = Chunks::new(loss, reduction, inputs, chunk_elems).unwrap();
        assert!(chunks.len() >= 3, "{what}: {} chunks", chunks.len());

        // Each chunk's own result, in order, as the stream hands it over.
        let mut gpu: Option<Partial> = None;
        let mut items = vec![];
        let mut seen = vec![];
        ctx()
            .stream_chunks(&chunks, |chunk, result| -> wgpu_loss::Result<()> {
                seen.push(chunk.units.clone());
                let p = match result {
                    ChunkResult::Partial(p) => p,
                    ChunkResult::Items(v) => {
                        items.extend(v);
                        ctx().partial(loss, &chunk.inputs())?
                    }
                };
                match &mut gpu {
                    Some(m) => m.merge(&p),
                    None => {
                        gpu = Some(p);
                        Ok(())
                    }
                }
            })
            .unwrap_or_else(|e| panic!("{what}: stream: {e}"));
        assert_eq!(seen.len(), chunks.len(), "{what}: one call per chunk");
        assert!(
            seen.windows(2).all(|w| w[0].end == w[1].start),
            "{what}: in order"
        );
        let mut gpu = gpu.unwrap();
        gpu.batch = chunks.batch();
        let (whole, whole_grads) = ctx()
            .evaluate_with_grad(loss, reduction, inputs, Upstream::Scalar(1.0))
            .unwrap_or_else(|e| panic!("{what}: whole: {e}"));
        if reduction == Reduction::None && !dice {
            // The forward kernels' items; the fused call's may round apart.
            let forward = ctx().evaluate(loss, reduction, inputs).unwrap();
            assert_eq!(
                Some(&items),
                forward.items.as_ref(),
                "{what}: streamed items"
            );
        }

        // The reference's merged sums, chunk by chunk.
        let mut reference = Partial::empty(loss, 0);
        for k in 0..chunks.len() {
            let p = cpu::partial(loss, &chunks.chunk(k).unwrap().inputs()).unwrap();
            if k == 0 {
                reference = p;
            } else {
                reference.merge(&p).unwrap();
            }
        }
        reference.batch = chunks.batch();
        let (_, want) = cpu::gradient(loss, reduction, inputs, Upstream::Scalar(1.0)).unwrap();

        let mut got: Vec<Vec<f32>> = vec![vec![]; 8];
        let mut twin: Vec<Vec<f64>> = vec![vec![]; 8];
        let mut fused_items = vec![];
        for k in 0..chunks.len() {
            let chunk = chunks.chunk(k).unwrap();
            let (part_items, g) = ctx()
                .gradient_of_part(loss, reduction, &chunk.inputs(), &gpu, 1.0)
                .unwrap_or_else(|e| panic!("{what}: chunk {k}: {e}"));
            fused_items.extend(part_items.unwrap_or_default());
            let (_, c) =
                cpu::gradient_of_part(loss, reduction, &chunk.inputs(), &reference, 1.0).unwrap();
            for (i, t) in TensorName::ALL.iter().enumerate() {
                if let (Some(g), Some(c)) = (g.get(*t), c.get(*t)) {
                    got[i].extend_from_slice(g);
                    twin[i].extend_from_slice(c);
                }
            }
        }
        if reduction == Reduction::None && !dice {
            assert_eq!(
                Some(&fused_items),
                whole.items.as_ref(),
                "{what}: parts' items"
            );
        }
        for t in wrts(loss) {
            let i = TensorName::ALL.iter().position(|n| *n == t).unwrap();
            let (w, ww) = (want.get(t).unwrap(), whole_grads.get(t).unwrap());
            assert_eq!(twin[i].len(), w.len(), "{what}: d/d{}", t.name());
            for (j, (a, b)) in twin[i].iter().zip(w).enumerate() {
                assert!(
                    close(*a, *b, 1e-12 * (1.0 + b.abs())),
                    "{what}: twin d/d{}[{j}]: parts {a}, whole {b}",
                    t.name()
                );
            }
            if dice {
                let big = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for (j, (a, b)) in got[i].iter().zip(w).enumerate() {
                    assert!(
                        close(*a as f64, *b, 1e-6 + 1e-5 * big),
                        "{what}: d/d{}[{j}]: parts {a}, reference {b}",
                        t.name()
                    );
                }
            } else {
                assert_eq!(
                    got[i].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    ww.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{what}: d/d{}: parts and one call, bit for bit",
                    t.name()
                );
            }
        }
    }
}

const ALL: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

#[test]
fn pointwise_parts() {
    let mut r = rng(31);
    // Odd sizes, off any workgroup multiple; a weight broadcast along the
    // trailing dim (kept whole: chunks hold whole periods) of small integers,
    // so that Σw is exact in f32.
    let (rows, d) = (211, 7);
    let shape = [rows, d];
    let x = uniform(&mut r, rows * d, -3.0, 3.0);
    let y = uniform(&mut r, rows * d, -3.0, 3.0);
    let w: Vec<f32> = (0..d).map(|_| r.random_range(1..4) as f32).collect();
    let mse = Loss::from_name("mse").unwrap();
    let base = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    parts_match("mse", &mse, &base, 300, &ALL);
    let wshape = [d];
    parts_match(
        "weighted mse",
        &mse,
        &base.weight(Tensor::new(&w, &wshape)),
        300,
        &ALL,
    );
    let huber = Loss::from_name("huber").unwrap();
    parts_match("huber", &huber, &base, 500, &ALL);

    // kl_div's batchmean divides by the whole batch, not the chunk's.
    let (rows, k) = (97, 10);
    let kshape = [rows, k];
    let logp: Vec<f32> = uniform(&mut r, rows * k, -4.0, 0.0);
    let p: Vec<f32> = uniform(&mut r, rows * k, 0.0, 1.0);
    let kl = Loss::from_name("kl_div").unwrap();
    let inputs = Inputs::new(Tensor::new(&logp, &kshape)).target(Tensor::new(&p, &kshape));
    parts_match(
        "kl_div",
        &kl,
        &inputs,
        200,
        &[Reduction::BatchMean, Reduction::None],
    );
}

#[test]
fn rows_parts() {
    let mut r = rng(32);
    let (n, c) = (300, 5);
    let shape = [n, c];
    let x = uniform(&mut r, n * c, -4.0, 4.0);
    // Ignored rows throughout, and a run of them filling whole chunks.
    let y: Vec<i64> = (0..n)
        .map(|i| {
            if i % 7 == 0 || (100..180).contains(&i) {
                -1
            } else {
                r.random_range(0..c as i64)
            }
        })
        .collect();
    let w: Vec<f32> = (0..c).map(|_| r.random_range(1..5) as f32).collect();
    let (ys, ws) = ([n], [c]);
    for (name, loss) in [
        (
            "cross_entropy",
            Loss::Rows(Rows::CrossEntropy {
                ignore_index: -1,
                label_smoothing: 0.1,
            }),
        ),
        ("nll", Loss::Rows(Rows::Nll { ignore_index: -1 })),
    ] {
        let inputs = Inputs::new(Tensor::new(&x, &shape))
            .classes(&y, &ys)
            .weight(Tensor::new(&w, &ws));
        parts_match(name, &loss, &inputs, 5 * 40, &ALL);
    }
}

#[test]
fn pair_parts() {
    let mut r = rng(33);
    let (n, d) = (130, 9);
    let shape = [n, d];
    let (a, p, q) = (
        uniform(&mut r, n * d, -2.0, 2.0),
        uniform(&mut r, n * d, -2.0, 2.0),
        uniform(&mut r, n * d, -2.0, 2.0),
    );
    let labels: Vec<f32> = (0..n)
        .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    let ls = [n];
    let cosine = Loss::Pairs(Pairs::CosineEmbedding { margin: 0.2 });
    let inputs = Inputs::new(Tensor::new(&a, &shape))
        .target(Tensor::new(&p, &shape))
        .labels(Tensor::new(&labels, &ls));
    parts_match("cosine_embedding", &cosine, &inputs, 9 * 30, &ALL);
    let triplet = Loss::from_name("triplet_margin").unwrap();
    let inputs = Inputs::new(Tensor::new(&a, &shape))
        .positive(Tensor::new(&p, &shape))
        .negative(Tensor::new(&q, &shape));
    parts_match("triplet_margin", &triplet, &inputs, 9 * 30, &ALL);
}

#[test]
fn dice_parts() {
    let mut r = rng(34);
    let (n, c, h) = (24, 4, 33);
    let shape = [n, c, h];
    let x = uniform(&mut r, n * c * h, -3.0, 3.0);
    // Class 3 appears only in the first entries: absent from later chunks.
    let y: Vec<i64> = (0..n * h)
        .map(|i| if i < 40 { 3 } else { r.random_range(0..3) })
        .collect();
    let ys = [n, h];
    let loss = Loss::Dice(Dice {
        mode: DiceMode::Multiclass,
        from_logits: true,
        smooth: 0.5,
        eps: 1e-7,
        ignore_index: None,
        log_loss: false,
    });
    let inputs = Inputs::new(Tensor::new(&x, &shape)).classes(&y, &ys);
    parts_match("dice", &loss, &inputs, c * h * 5, &ALL);
}

/// A span is the chunk of the same units, without its values checked; its
/// bounds must be whole periods of a broadcast kept whole.
#[test]
fn spans() {
    let x: Vec<f32> = (0..60).map(|i| i as f32).collect();
    let y = vec![0.5f32; 60];
    let w = vec![1.0f32, 2.0, 3.0];
    let (shape, ws) = ([20, 3], [3]);
    let mse = Loss::from_name("mse").unwrap();
    let inputs = Inputs::new(Tensor::new(&x, &shape))
        .target(Tensor::new(&y, &shape))
        .weight(Tensor::new(&w, &ws));
    let chunks = Chunks::new(&mse, Reduction::Mean, &inputs, 12).unwrap();
    assert_eq!((chunks.units(), chunks.quantum()), (60, 3));
    let span = chunks.span(12..24).unwrap();
    let chunk = chunks.chunk(1).unwrap();
    assert_eq!(span.units, chunk.units);
    assert_eq!(
        span.inputs().input.data.to_f32(),
        chunk.inputs().input.data.to_f32()
    );
    assert_eq!(span.inputs().input.shape, chunk.inputs().input.shape);
    assert!(chunks.span(4..9).is_err(), "not whole periods");
    assert!(chunks.span(9..61).is_err(), "past the end");
    assert_eq!(chunks.span(57..60).unwrap().units, 57..60);
    assert_eq!(chunks.offset(30, 60), 30);
    // A bad value in a span is found by the chunks it is cut into.
    let bce = Loss::from_name("bce").unwrap();
    let mut p = vec![0.5f32; 60];
    p[41] = 2.0;
    let inputs = Inputs::new(Tensor::new(&p, &shape)).target(Tensor::new(&y, &shape));
    let whole = Chunks::new(&bce, Reduction::Mean, &inputs, usize::MAX).unwrap();
    let span = whole.span(30..60).unwrap();
    let part = span.inputs();
    let cut = Chunks::new(&bce, Reduction::Mean, &part, 6).unwrap();
    let e = (0..cut.len()).find_map(|k| cut.chunk(k).err()).unwrap();
    assert!(e.to_string().contains("[11] = 2"), "{e}");
}

/// A partial's sums as flat values and back, and the upstream each item of
/// a part gets from the whole batch's sums, per reduction.
#[test]
fn partial_sums_and_item_upstreams() {
    let ce = Loss::from_name("cross_entropy").unwrap();
    let p = Partial {
        loss: "cross_entropy".into(),
        sum: 6.0,
        denom: 4.0,
        batch: 5,
        classes: None,
    };
    assert_eq!(p.to_sums(), [6.0, 4.0, 5.0]);
    assert_eq!(Partial::from_sums(&ce, &p.to_sums()).unwrap(), p);
    assert!(Partial::from_sums(&ce, &[1.0, 2.0]).is_err());
    assert!(
        Partial::from_sums(&ce, &[1.0, 2.0, 0.5]).is_err(),
        "a batch of 0.5"
    );
    let up = |r| p.item_upstream(&ce, r, 2.0).unwrap();
    assert_eq!(up(Reduction::Mean), 0.5);
    assert_eq!((up(Reduction::Sum), up(Reduction::None)), (2.0, 2.0));
    assert!(p
        .item_upstream(&Loss::from_name("mse").unwrap(), Reduction::Mean, 1.0)
        .is_err());
    let kl = Loss::from_name("kl_div").unwrap();
    let k = Partial {
        loss: "kl_div".into(),
        ..p.clone()
    };
    assert_eq!(
        k.item_upstream(&kl, Reduction::BatchMean, 1.0).unwrap(),
        0.2
    );
    // softmax_focal's mean over a zero total weight has a zero gradient.
    let focal = Loss::from_name("softmax_focal").unwrap();
    let f = Partial {
        loss: "softmax_focal".into(),
        denom: 0.0,
        ..p.clone()
    };
    assert_eq!(f.item_upstream(&focal, Reduction::Mean, 1.0).unwrap(), 0.0);

    let dice = Loss::from_name("dice").unwrap();
    let d = Partial {
        loss: "dice".into(),
        sum: 0.0,
        denom: 0.0,
        batch: 2,
        classes: Some(vec![[3.0, 4.0, 1.0], [1.0, 0.0, 1.0]]),
    };
    assert_eq!(Partial::from_sums(&dice, &d.to_sums()).unwrap(), d);
    let sum = d.dice_coefficients(&dice, Reduction::Sum, 1.0).unwrap();
    let mean = d.dice_coefficients(&dice, Reduction::Mean, 1.0).unwrap();
    assert_eq!(sum.len(), 2);
    assert_eq!((mean[0].0 * 2.0, mean[0].1 * 2.0), sum[0]);
    assert_eq!(sum[1], (0.0, 0.0), "an absent class passes nothing");
    assert!(d.item_upstream(&dice, Reduction::Mean, 1.0).is_err());
}
