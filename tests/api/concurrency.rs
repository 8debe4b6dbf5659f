//! One context, eight threads, different losses at once: every result right,
//! and no pipeline built twice.

use crate::common::close;
use wgpu_loss::{cpu, synthetic, Context, Loss, Reduction};

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
    // Each loss needs its map pipeline plus the shared finalize pipeline; the
    // cache holds exactly those, however the threads raced.
    let before = ctx.pipelines_built();
    for b in &batches {
        ctx.evaluate(&b.loss, Reduction::Mean, &b.inputs()).unwrap();
    }
    assert_eq!(ctx.pipelines_built(), before, "a pipeline was built twice");
    assert!(
        before <= names.len() + 2,
        "{before} pipelines for {} losses",
        names.len()
    );
}
