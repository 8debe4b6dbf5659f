//! `wgpu-loss demo`: a seeded batch of every loss written as `.npy`, read
//! back and evaluated as `eval` does, next to the CPU reference.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wgpu_loss::cli::args::Files;
use wgpu_loss::cli::{agree, npy, synthetic, Fail};
use wgpu_loss::{Context, Loss, Reduction, Rows, Target, TensorName};

use crate::eval::run;
use crate::say;

/// The demo's batch for `loss`: a realistic size (an ImageNet-sized
/// cross_entropy batch, 2^20 elements for the others).
fn demo_batch(loss: &Loss) -> synthetic::Batch {
    let n = match loss {
        Loss::Rows(Rows::CrossEntropy { .. }) => 8192 * synthetic::CLASSES,
        _ => 1 << 20,
    };
    synthetic::batch(loss, n, 20_240_601)
}

/// Writes the batch's tensors as .npy files in `dir`, named after the loss
/// and the tensor.
fn write_batch(dir: &Path, b: &synthetic::Batch) -> Result<Files, Fail> {
    let inputs = b.inputs();
    let mut files = Files::default();
    for t in TensorName::ALL {
        let path = dir.join(format!("{}_{}.npy", b.loss.name(), t.name()));
        match (t, inputs.target) {
            (TensorName::Target, Some(Target::Class { data, shape })) => {
                npy::write_i64(&path, shape, data)?
            }
            _ => match inputs.float(t) {
                Some(x) => npy::write_f32(&path, x.shape, &x.data.to_f32())?,
                None => continue,
            },
        }
        files.paths.push((t, path));
    }
    Ok(files)
}

pub fn demo(keep: Option<PathBuf>) -> Result<ExitCode, Fail> {
    let ctx = OnceCell::new();
    let opened = Context::new()?;
    let info = opened.adapter_info().clone();
    let ctx_name = opened.adapter_name();
    let _ = ctx.set(opened);
    say(&format!(
        "adapter: {ctx_name}, a {:?} device{} (`wgpu-loss adapters` lists the others; WGPU_ADAPTER_NAME picks one)",
        info.device_type,
        if info.driver.is_empty() { String::new() } else { format!(", driver {}", info.driver) }
    ));
    let dir = match &keep {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| Fail::Usage(format!("{}: {e}", d.display())))?;
            d.clone()
        }
        None => {
            let base = std::env::temp_dir();
            let mut k = 0;
            loop {
                let d = base.join(format!("wgpu-loss-demo-{}-{k}", std::process::id()));
                match std::fs::create_dir(&d) {
                    Ok(()) => break d,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 100 => k += 1,
                    Err(e) => return Err(Fail::Usage(format!("{}: {e}", d.display()))),
                }
            }
        }
    };
    say(&format!(
        "inputs: seeded random batches written as .npy to {} and read back as `wgpu-loss eval` reads them",
        dir.display()
    ));
    let result = demo_in(&ctx, &dir);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        say(&format!(
            "try: wgpu-loss eval mse --input {0}/mse_input.npy --target {0}/mse_target.npy --json",
            dir.display()
        ));
    }
    result
}

fn demo_in(ctx: &OnceCell<Context>, dir: &Path) -> Result<ExitCode, Fail> {
    say(&format!(
        "{:<16} {:<18} {:<9} {:>14} {:>14} {:>9} {:>10}",
        "loss", "input shape", "reduction", "gpu value", "cpu reference", "rel diff", "time"
    ));
    let (mut evaluated, mut attempted, mut failed) = (0, 0, 0);
    let reduction = Reduction::Mean;
    for name in Loss::names() {
        let Some(loss) = Loss::from_name(name) else {
            continue;
        };
        let batch = demo_batch(&loss);
        let files = write_batch(dir, &batch)?;
        let shape = format!("{:?}", batch.input.1);
        drop(batch);
        let head = format!("{name:<16} {shape:<18} {:<9}", reduction.name());
        let result = run(ctx, &loss, reduction, &files);
        attempted += 1;
        match result {
            Ok(o) => {
                evaluated += 1;
                let ok = agree::agrees(o.gpu.value, o.cpu.value, 1e-6);
                failed += usize::from(!ok);
                let rel =
                    (o.gpu.value - o.cpu.value).abs() / o.cpu.value.abs().max(f64::MIN_POSITIVE);
                say(&format!(
                    "{head} {:>14} {:>14} {:>9.1e} {:>7.1} ms{}",
                    o.gpu.value as f32,
                    o.cpu.value as f32,
                    rel,
                    o.gpu_ms,
                    if ok { "" } else { "  DISAGREES" }
                ));
            }
            Err(Fail::Gpu(msg) | Fail::Usage(msg) | Fail::Disagree(msg)) => {
                failed += 1;
                say(&format!("{head} error: {msg}"));
            }
        }
    }
    if failed == 0 {
        say(&format!(
            "ok: all {evaluated} evaluated losses agree with the float64 CPU reference (1e-4 relative + 1e-6 absolute); \
             times include upload, first-use shader compilation and readback"
        ));
        Ok(ExitCode::SUCCESS)
    } else {
        say(&format!(
            "FAILED: {failed} of {attempted} losses disagree with the CPU reference or failed"
        ));
        Ok(ExitCode::from(1))
    }
}
