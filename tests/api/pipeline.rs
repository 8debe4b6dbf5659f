//! Runs examples/pipeline.rs: predictions made by the program's own shader,
//! losses recorded into its encoder, the best candidate picked on the GPU.

#[path = "../../examples/pipeline.rs"]
mod example;

#[test]
fn the_example_picks_the_candidate_the_cpu_picks() {
    let n = 100_003;
    let (scale, loss) = example::run(n).expect("the example runs");
    let targets: Vec<f64> = (0..n)
        .map(|i| 2.5 * (i as f32 * 0.001).sin() as f64 + 0.01 * ((i * 7919) % 13) as f64 - 0.06)
        .collect();
    let mse = |s: f64| {
        targets
            .iter()
            .enumerate()
            .map(|(i, t)| (s * (i as f64 * 0.001).sin() - t).powi(2))
            .sum::<f64>()
            / n as f64
    };
    let (best_k, best) = (0..8)
        .map(|k| (k, mse(k as f64 * 0.5)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert_eq!(scale, best_k as f32 * 0.5);
    assert!(
        (loss as f64 - best).abs() <= 1e-4 * best + 1e-6,
        "gpu {loss} vs cpu {best}"
    );
}
