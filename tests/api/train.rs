//! Runs examples/train.rs: a softmax classifier trained on the GPU with the
//! fused cross_entropy value and gradient recorded into the program's encoder.

#[path = "../../examples/train.rs"]
mod example;

use example::{C, D, LOG_EVERY, LR, N};

/// The same full-batch SGD in float64: the logged losses.
fn cpu_losses(steps: usize) -> Vec<(usize, f64)> {
    let (x, y) = example::data(example::SEED);
    let mut w = vec![0.0f64; C * (D + 1)];
    let mut out = vec![];
    for step in 0..steps {
        let mut loss = 0.0;
        let mut grad = vec![0.0; C * (D + 1)];
        for r in 0..N {
            let xr: Vec<f64> = x[r * D..(r + 1) * D]
                .iter()
                .map(|v| *v as f64)
                .chain([1.0])
                .collect();
            let z: Vec<f64> = (0..C)
                .map(|k| (0..=D).map(|j| w[k * (D + 1) + j] * xr[j]).sum())
                .collect();
            let m = z.iter().cloned().fold(f64::MIN, f64::max);
            let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            loss += lse - z[y[r] as usize];
            for k in 0..C {
                let dz = ((z[k] - lse).exp() - f64::from(k == y[r] as usize)) / N as f64;
                for j in 0..=D {
                    grad[k * (D + 1) + j] += dz * xr[j];
                }
            }
        }
        if step % LOG_EVERY == 0 || step + 1 == steps {
            out.push((step, loss / N as f64));
        }
        for (w, g) in w.iter_mut().zip(&grad) {
            *w -= LR as f64 * g;
        }
    }
    out
}

#[test]
fn the_example_learns() {
    let steps = 200;
    let trained = example::run(steps).expect("the example runs");
    let losses = &trained.losses;
    assert_eq!(losses.len(), 21, "every 10 steps and the last");
    let (first, last) = (losses[0].1, losses[losses.len() - 1].1);
    // Zero weights: uniform over 4 classes.
    assert!((first - 4f32.ln()).abs() < 1e-5, "first loss {first}");
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert!(
        losses.windows(2).all(|w| w[1].1 < w[0].1),
        "full-batch SGD falls at every logged step: {losses:?}"
    );
    assert!(trained.accuracy > 0.9, "accuracy {}", trained.accuracy);
    // The GPU's f32 training follows the float64 one closely.
    for ((step, gpu), (cpu_step, cpu)) in losses.iter().zip(cpu_losses(steps)) {
        assert_eq!(*step, cpu_step);
        assert!(
            (*gpu as f64 - cpu).abs() <= 1e-3 * cpu,
            "step {step}: gpu {gpu} vs cpu {cpu}"
        );
    }
}
