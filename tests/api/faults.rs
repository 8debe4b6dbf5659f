//! A lost device is a typed error on every later call, never a zero that
//! looks like a result. Each test opens its own context to destroy it.

use wgpu_loss::Pointwise;
use wgpu_loss::{cpu, Context, Error, Inputs, Loss, Reduction, Tensor};

fn data(n: usize) -> (Vec<f32>, Vec<f32>) {
    (
        (0..n).map(|i| (i as f32 * 0.37).sin()).collect(),
        (0..n).map(|i| (i as f32 * 0.11).cos()).collect(),
    )
}

#[test]
fn a_destroyed_device_fails_every_later_call() {
    let ctx = Context::new().expect("an adapter");
    let (x, y) = data(10_000);
    let shape = [x.len()];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    let before = ctx
        .evaluate(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &inputs)
        .unwrap();
    assert!(before.value > 0.0);
    ctx.device().destroy();
    for _ in 0..3 {
        match ctx.evaluate(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &inputs) {
            Err(Error::DeviceLost(_)) | Err(Error::Gpu { .. }) => {}
            other => panic!("a destroyed device answered {other:?}"),
        }
    }
    // Once noticed, the loss is reported as such on every call.
    let e = ctx
        .evaluate(&Loss::Pointwise(Pointwise::L1), Reduction::Sum, &inputs)
        .unwrap_err();
    assert!(matches!(e, Error::DeviceLost(_)), "{e}");
}

#[test]
fn destroying_the_device_mid_run_never_yields_a_wrong_value() {
    let ctx = Context::new().expect("an adapter");
    let (x, y) = data(2_000_000);
    let shape = [x.len()];
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    let want = cpu::evaluate(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &inputs)
        .unwrap()
        .value;
    std::thread::scope(|s| {
        let runner = s.spawn(|| {
            let mut outcomes = (0, 0);
            for _ in 0..40 {
                match ctx.evaluate(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &inputs) {
                    Ok(v) => {
                        assert!(
                            (v.value - want).abs() <= 1e-4 * want,
                            "got {} while the device went away, want {want}",
                            v.value
                        );
                        outcomes.0 += 1;
                    }
                    Err(_) => outcomes.1 += 1,
                }
            }
            outcomes
        });
        std::thread::sleep(std::time::Duration::from_millis(150));
        ctx.device().destroy();
        let (ok, failed) = runner.join().unwrap();
        assert!(
            failed > 0,
            "the destroy was never noticed ({ok} runs succeeded)"
        );
    });
}
