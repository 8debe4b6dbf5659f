//! `Context::prepare_with_grad`: the fused value-and-gradient call prepared
//! once and run many times, as `evaluate_with_grad` gives it.

use crate::common::{ctx, rng, uniform};
use wgpu_loss::Pointwise;
use wgpu_loss::{Error, Inputs, Loss, Reduction, Tensor, Upstream};

#[test]
fn prepared_fused_calls_match_evaluate_with_grad() {
    let mut r = rng(41);
    let n = 70_001;
    let x = uniform(&mut r, n, -3.0, 3.0);
    let y = uniform(&mut r, n, 0.0, 1.0);
    let g = uniform(&mut r, n, -1.0, 1.0);
    let shape = [n];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    let cases = [
        (
            Loss::Pointwise(Pointwise::Mse),
            Reduction::Mean,
            Upstream::Scalar(1.0),
        ),
        (
            Loss::Pointwise(Pointwise::BceWithLogits),
            Reduction::Sum,
            Upstream::Scalar(-0.5),
        ),
        (
            Loss::Pointwise(Pointwise::Huber { delta: 0.7 }),
            Reduction::None,
            Upstream::Items(&g),
        ),
        (
            Loss::Pointwise(Pointwise::L1),
            Reduction::None,
            Upstream::Scalar(2.0),
        ),
    ];
    for (loss, red, up) in cases {
        let what = format!("{} {red:?}", loss.name());
        let want = ctx().evaluate_with_grad(&loss, red, &inputs, up).unwrap();
        let prepared = ctx().prepare_with_grad(&loss, red, &inputs, up).unwrap();
        // Runs repeat: the gradient is written, not accumulated.
        for _ in 0..2 {
            assert_eq!(prepared.run_with_grad().unwrap(), want, "{what}");
        }
        assert_eq!(prepared.run().unwrap(), want.0, "{what}: the value alone");
        let (timed, _) = prepared.run_timed().unwrap();
        assert_eq!(timed, want.0, "{what}: timed");
        assert!(prepared.evaluator().has_gradients());
    }

    // Class indices: cross_entropy's logits gradient.
    let (rows, c) = (1000, 37);
    let logits = uniform(&mut r, rows * c, -4.0, 4.0);
    let classes: Vec<i64> = (0..rows as i64).map(|i| (i * 7) % c as i64).collect();
    let (shape, rows_shape) = ([rows, c], [rows]);
    let inputs = Inputs::new(Tensor::new(&logits, &shape)).classes(&classes, &rows_shape);
    let loss = Loss::from_name("cross_entropy").unwrap();
    let up = Upstream::Scalar(1.0);
    let want = ctx()
        .evaluate_with_grad(&loss, Reduction::Mean, &inputs, up)
        .unwrap();
    let prepared = ctx()
        .prepare_with_grad(&loss, Reduction::Mean, &inputs, up)
        .unwrap();
    assert_eq!(prepared.run_with_grad().unwrap(), want);
}

#[test]
fn prepare_with_grad_checks_like_evaluate_with_grad() {
    let x = [1.0f32, 2.0, 3.0];
    let inputs = Inputs::new(Tensor::new(&x, &[3])).target(Tensor::new(&x, &[3]));
    let forward = ctx()
        .prepare(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &inputs)
        .unwrap();
    let e = forward.run_with_grad().unwrap_err();
    assert!(e.to_string().contains("prepare_with_grad"), "{e}");
    let items = [1.0f32; 2];
    assert!(matches!(
        ctx().prepare_with_grad(
            &Loss::Pointwise(Pointwise::Mse),
            Reduction::None,
            &inputs,
            Upstream::Items(&items)
        ),
        Err(Error::UpstreamLength {
            expected: 3,
            actual: 2
        })
    ));
    assert!(matches!(
        ctx().prepare_with_grad(
            &Loss::Pointwise(Pointwise::Mse),
            Reduction::Sum,
            &inputs,
            Upstream::Items(&x)
        ),
        Err(Error::UpstreamReduction { .. })
    ));
    // The pair losses' three gradients come back the same way.
    let t = [1.0f32, -1.0];
    let pairs = Inputs::new(Tensor::new(&x[..2], &[2, 1]))
        .target(Tensor::new(&x[1..], &[2, 1]))
        .labels(Tensor::new(&t, &[2]));
    let loss = Loss::from_name("cosine_embedding").unwrap();
    let up = Upstream::Scalar(1.0);
    let want = ctx()
        .evaluate_with_grad(&loss, Reduction::Mean, &pairs, up)
        .unwrap();
    let got = ctx()
        .prepare_with_grad(&loss, Reduction::Mean, &pairs, up)
        .unwrap()
        .run_with_grad()
        .unwrap();
    assert_eq!(got, want);
}
