//! One context, eight threads, different losses at once: every result right,
//! and no pipeline built twice.

use crate::common::close;
use wgpu_loss::cli::synthetic;
use wgpu_loss::{cpu, Context, Loss, Reduction, Upstream};

#[test]
fn context_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Context>();
}

#[test]
fn eight_threads_evaluate_different_losses_on_one_context() {
    // A context of its own: the binary's shared one builds pipelines for the
    // tests that run next to this one.
    let ctx = &Context::new().expect("a wgpu adapter");
    let names = [
        "mse",
        "huber",
        "bce_with_logits",
        "kl_div",
        "cross_entropy",
        "sigmoid_focal",
        "log_cosh",
        "smooth_l1",
    ];
    let batches: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            synthetic::batch(&Loss::from_name(name).unwrap(), 20_000 + 777 * k, k as u64)
        })
        .collect();
    let wants: Vec<f64> = batches
        .iter()
        .map(|b| {
            cpu::evaluate(&b.loss, Reduction::Mean, &b.inputs())
                .unwrap()
                .value
        })
        .collect();
    std::thread::scope(|s| {
        for (b, want) in batches.iter().zip(&wants) {
            s.spawn(move || {
                for round in 0..15 {
                    let got = ctx.evaluate(&b.loss, Reduction::Mean, &b.inputs()).unwrap();
                    assert!(
                        close(got.value, *want, 1e-6),
                        "{} round {round}: {} vs {want}",
                        b.loss.name(),
                        got.value
                    );
                }
            });
        }
    });
    // Each loss needs its map pipeline (point-vec4's and, for the n % 4
    // elements after its vectors, point-scalar's) plus the shared finalize
    // pipeline; the cache holds exactly those, however the threads raced.
    let before = ctx.pipelines_built();
    for b in &batches {
        ctx.evaluate(&b.loss, Reduction::Mean, &b.inputs()).unwrap();
    }
    assert_eq!(ctx.pipelines_built(), before, "a pipeline was built twice");
    assert!(
        before <= 2 * names.len() + 2,
        "{before} pipelines for {} losses",
        names.len()
    );
}

/// One prepared call run by eight threads at once: the runs take turns on
/// its readback buffer, and every thread gets the right value and gradient.
/// Its own context keeps the pipeline count of the test above exact.
#[test]
fn eight_threads_share_one_prepared_call() {
    let ctx = Context::new().expect("a wgpu adapter");
    for name in ["mse", "cross_entropy"] {
        let loss = Loss::from_name(name).unwrap();
        let batch = synthetic::batch(&loss, 5_000, 9);
        let inputs = batch.inputs();
        let one = Upstream::Scalar(1.0);
        let (want, grads) = cpu::gradient(&loss, Reduction::Mean, &inputs, one).unwrap();
        let forward = ctx.prepare(&loss, Reduction::Mean, &inputs).unwrap();
        let fused = ctx
            .prepare_with_grad(&loss, Reduction::Mean, &inputs, one)
            .unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let (forward, fused, want, grads) = (&forward, &fused, &want, &grads);
                s.spawn(move || {
                    for round in 0..10 {
                        let got = if t % 2 == 0 {
                            forward.run().unwrap()
                        } else {
                            let (got, g) = fused.run_with_grad().unwrap();
                            for (i, (a, b)) in g.input.iter().zip(&grads.input).enumerate() {
                                assert!(close(*a as f64, *b, 1e-6), "{name} d/dx {i}");
                            }
                            got
                        };
                        assert!(
                            close(got.value, want.value, 1e-6),
                            "{name} thread {t} round {round}: {} vs {}",
                            got.value,
                            want.value
                        );
                    }
                });
            }
        });
    }
}
