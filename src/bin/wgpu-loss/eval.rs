//! `wgpu-loss eval`: the checked request (`wgpu_loss::cli::check`) evaluated
//! on the GPU, whole, streamed or split across adapters, with the float64
//! reference computed beside it on another thread and checked against it
//! (exit 3 on a disagreement, with nothing written); then the `none` result
//! and the gradients written as `.npy` or `.safetensors`, and one line of
//! text or JSON printed.

use std::cell::OnceCell;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::{json, Value as JsonValue};
use wgpu_loss::cli::agree::{self, GradCheck};
use wgpu_loss::cli::args::{grad_flag, grad_key, EvalArgs};
use wgpu_loss::cli::check::{load, reference, Check, Request, Route};
use wgpu_loss::cli::npy;
use wgpu_loss::cli::Fail;
use wgpu_loss::{Chunks, Context, Evaluation, Gradients, Loss, Value};

use crate::streamed::{Batch, Outs, Progress};
use crate::{say, split};
use wgpu_loss::cli::source::Sources;

/// What one evaluation gives, checked against the reference already.
pub struct Outcome {
    pub value: f64,
    /// The reference's value of the whole batch (`--reference full`).
    pub cpu_value: Option<f64>,
    pub n: usize,
    /// Items of the `none` result (per-item losses behind a reduced value).
    pub items: usize,
    pub items_shape: Vec<usize>,
    pub gpu_ms: f64,
    pub adapter: wgpu::AdapterInfo,
    pub adapter_name: String,
    /// The chunk count of a streamed evaluation.
    pub chunks: Option<usize>,
    /// The largest |gpu − cpu| of the gradient elements checked.
    pub grad_diff: Option<f64>,
    /// `--reference sample`: the chunks checked, in units of the batch
    /// (forward pass, then gradient pass).
    pub sampled: (Vec<Range<usize>>, Vec<Range<usize>>),
    /// Each adapter's (or rank's) share, as JSON.
    pub shares: Option<JsonValue>,
    /// The adapters `--adapters all` left out, as JSON.
    pub skipped: Option<JsonValue>,
    pub ranks: Option<usize>,
    pub writes: Writes,
    /// The dtype the input was handed to the library in.
    pub dtype: wgpu_loss::DType,
}

/// What a successful evaluation writes.
pub enum Writes {
    /// Read whole: the items and gradients, written whole.
    Whole {
        items: Option<(Vec<usize>, Vec<f32>)>,
        grads: Vec<(PathBuf, npy::Layout, Vec<f32>)>,
    },
    /// Mapped: the temporary files written a part at a time, to rename.
    Mapped(Outs),
    /// Written and renamed already (by MPI rank 0, once every rank wrote).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    Done,
}

/// Opens the context on first use.
pub fn context(ctx: &OnceCell<Context>) -> Result<&Context, Fail> {
    Ok(match ctx.get() {
        Some(ctx) => ctx,
        None => {
            let opened = Context::new()?;
            ctx.get_or_init(|| opened)
        }
    })
}

/// The GPU's and the reference's results, unchecked (`demo` prints both).
pub struct Both {
    pub gpu: Evaluation,
    pub cpu: wgpu_loss::cpu::Reference,
    pub gpu_ms: f64,
}

/// Reads the files whole and evaluates them on the GPU, and on the
/// reference on another thread meanwhile.
pub fn run(
    ctx: &OnceCell<Context>,
    loss: &Loss,
    reduction: wgpu_loss::Reduction,
    files: &wgpu_loss::cli::args::Files,
) -> Result<Both, Fail> {
    let loaded = load(loss, files)?;
    let inputs = loaded.inputs();
    wgpu_loss::inputs::plan(loss, reduction, &inputs)?;
    let ctx = context(ctx)?;
    std::thread::scope(|s| {
        let cpu = s.spawn(|| reference(loss, reduction, &inputs, false));
        let start = Instant::now();
        let gpu = ctx.evaluate(loss, reduction, &inputs);
        let gpu_ms = start.elapsed().as_secs_f64() * 1e3;
        let cpu = cpu.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        Ok(Both {
            gpu: gpu?,
            cpu: cpu?.0,
            gpu_ms,
        })
    })
}

/// Reads the files whole and evaluates them in one call on the GPU (the
/// fused value-and-gradient call with upstream 1 where gradients are asked
/// for: for `none`, the gradient of the items' sum), while a worker thread
/// computes the float64 reference of the same inputs; then checks one
/// against the other. The context is opened once the shapes and values are
/// known to be valid.
fn whole(ctx: &OnceCell<Context>, r: &Request) -> Result<Outcome, Fail> {
    let (loss, reduction) = (&r.loss, r.reduction);
    let loaded = load(loss, &r.files)?;
    let inputs = loaded.inputs();
    wgpu_loss::inputs::plan(loss, reduction, &inputs)?;
    let units = Chunks::new(loss, reduction, &inputs, usize::MAX)?.units();
    let ctx = context(ctx)?;
    let grad = !r.grads.is_empty();
    let start = Instant::now();
    let (gpu, cpu) = std::thread::scope(|s| {
        let cpu =
            (r.check != Check::Off).then(|| s.spawn(|| reference(loss, reduction, &inputs, grad)));
        let gpu = if grad {
            ctx.evaluate_with_grad(loss, reduction, &inputs, wgpu_loss::Upstream::Scalar(1.0))
                .map(|(e, g)| (e, Some(g)))
        } else {
            ctx.evaluate(loss, reduction, &inputs).map(|e| (e, None))
        };
        let gpu_ms = start.elapsed().as_secs_f64() * 1e3;
        let cpu = cpu.map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (gpu.map(|g| (g, gpu_ms)), cpu)
    });
    let ((gpu, grads), gpu_ms): ((Evaluation, Option<Gradients>), f64) = gpu?;
    let mut grad_diff = None;
    let mut cpu_value = None;
    if let Some(cpu) = cpu {
        let (cpu, cpu_grads) = cpu?;
        agree::check(
            loss.name(),
            &gpu,
            &cpu,
            grads.as_ref().zip(cpu_grads.as_ref()),
        )
        .map_err(Fail::Disagree)?;
        if let (Some(g), Some(c)) = (&grads, &cpu_grads) {
            let mut check = GradCheck::default();
            check.add(0, g, c);
            grad_diff = Some(check.max_abs_diff);
        }
        cpu_value = Some(cpu.value);
    }
    let mut writes = vec![];
    for (wrt, path) in &r.grads {
        let data = grads.as_ref().and_then(|g| g.get(*wrt)).ok_or_else(|| {
            Fail::Gpu(format!(
                "--{}: the GPU gave no such gradient",
                grad_flag(*wrt)
            ))
        })?;
        let shape = loaded.shape(*wrt).unwrap_or_default();
        let layout = r.grad_layout(*wrt, path, shape, loaded.dtype(*wrt))?;
        writes.push((path.clone(), layout, data.to_vec()));
    }
    let sampled = match r.check {
        Check::Sample { .. } => std::iter::once(0..units).collect(),
        _ => vec![],
    };
    Ok(Outcome {
        value: gpu.value,
        cpu_value,
        n: inputs.input.data.len(),
        items: gpu.items_shape.iter().product(),
        items_shape: gpu.items_shape.clone(),
        gpu_ms,
        adapter: ctx.adapter_info().clone(),
        adapter_name: ctx.adapter_name(),
        chunks: None,
        grad_diff,
        sampled: (sampled.clone(), if grad { sampled } else { vec![] }),
        shares: None,
        skipped: None,
        ranks: None,
        dtype: loaded.dtype(wgpu_loss::TensorName::Input),
        writes: Writes::Whole {
            items: r
                .out
                .as_ref()
                .and(gpu.items.map(|items| (gpu.items_shape.clone(), items))),
            grads: writes,
        },
    })
}

/// The files mapped and streamed through one adapter in chunks within the
/// budget, the `none` items and the gradients written into mapped files.
fn streamed(ctx: &OnceCell<Context>, r: &Request) -> Result<Outcome, Fail> {
    let (loss, reduction) = (&r.loss, r.reduction);
    let sources = Sources::map(loss, &r.files)?;
    let inputs = sources.inputs();
    let whole = Chunks::new(loss, reduction, &inputs, usize::MAX)?;
    let ctx = context(ctx)?;
    let outs = Outs::create(r, whole.items_shape(), &sources)?;
    let grad = !r.grads.is_empty();
    let passes = if grad { 2 } else { 1 };
    let progress = Progress::new(passes * whole.units() as u64);
    let batch = Batch {
        loss,
        reduction,
        check: r.check,
        sources: &sources,
        whole: &whole,
        budget: r.budget,
        outs: &outs,
        progress: &progress,
    };
    let start = Instant::now();
    let forward = batch.forward(ctx, &inputs, 0)?;
    let (chunks, sampled) = (forward.chunks, forward.sampled.clone());
    let merged = batch.merge(&[forward])?;
    batch.dice_items(&merged)?;
    let mut grad_diff = None;
    let mut grad_sampled = vec![];
    if grad {
        let reference = merged.cpu.as_ref().unwrap_or(&merged.gpu);
        let b = batch.backward(ctx, &inputs, 0, &merged.gpu, reference)?;
        b.check.verdict(loss.name()).map_err(Fail::Disagree)?;
        grad_diff = (r.check != Check::Off).then_some(b.check.max_abs_diff);
        grad_sampled = b.sampled;
    }
    progress.finish();
    let gpu_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(Outcome {
        value: merged.value,
        cpu_value: merged.cpu_value,
        n: inputs.input.data.len(),
        items: batch.items_len(),
        items_shape: whole.items_shape().to_vec(),
        gpu_ms,
        adapter: ctx.adapter_info().clone(),
        adapter_name: ctx.adapter_name(),
        chunks: Some(chunks),
        grad_diff,
        sampled: (sampled, grad_sampled),
        shares: None,
        skipped: None,
        ranks: None,
        dtype: sources.dtype(wgpu_loss::TensorName::Input),
        writes: Writes::Mapped(outs),
    })
}

/// A JSON number, or "NaN" / "inf" / "-inf".
pub fn num(v: f64) -> JsonValue {
    match serde_json::Number::from_f64(v) {
        Some(n) => JsonValue::Number(n),
        None if v.is_nan() => "NaN".into(),
        None if v > 0.0 => "inf".into(),
        None => "-inf".into(),
    }
}

/// An f32 parameter as written (0.1, not 0.10000000149011612).
fn num32(v: f32) -> JsonValue {
    num(v.to_string().parse().unwrap_or(v as f64))
}

/// The effective parameters of `loss`.
fn params(loss: &Loss) -> JsonValue {
    let mut doc = serde_json::Map::new();
    for (param, value) in loss.params() {
        let v = match value {
            Value::F32(v) => num32(v),
            Value::Bool(v) => v.into(),
            Value::Int(v) => v.into(),
            Value::OptInt(v) => json!(v),
            Value::List(v) => json!(v.map(|q| q.into_iter().map(num32).collect::<Vec<_>>())),
            Value::Mode(m) => m.name().into(),
        };
        doc.insert(param.name.to_string(), v);
    }
    JsonValue::Object(doc)
}

pub fn eval(a: &EvalArgs) -> Result<ExitCode, Fail> {
    #[cfg(feature = "mpi")]
    if crate::mpi::launched() {
        return crate::mpi::eval(a);
    }
    let r = Request::new(a)?;
    let ctx = OnceCell::new();
    let o = match r.route {
        Route::Split { every } => split::run(&r, every)?,
        Route::Streamed => streamed(&ctx, &r)?,
        Route::Whole => whole(&ctx, &r)?,
    };
    finish(a, &r, o)
}

/// Writes the files of a checked outcome and prints it.
pub fn finish(a: &EvalArgs, r: &Request, o: Outcome) -> Result<ExitCode, Fail> {
    match o.writes {
        Writes::Whole { items, grads } => {
            if let (Some(out), Some((shape, items))) = (&r.out, items) {
                npy::write_layout(out, &r.out_layout(out, &shape)?, &items)?;
            }
            for (path, layout, data) in grads {
                npy::write_layout(path, &layout, &data)?;
            }
        }
        Writes::Mapped(outs) => outs.finish()?,
        Writes::Done => {}
    }
    let (loss, reduction) = (&r.loss, r.reduction);
    let info = &o.adapter;
    if a.json {
        let ranges =
            |v: &[Range<usize>]| json!(v.iter().map(|u| [u.start, u.end]).collect::<Vec<_>>());
        let mut check = json!({ "mode": r.check.name() });
        if let Check::Sample { fraction, seed } = r.check {
            check["fraction"] = num(fraction);
            check["seed"] = seed.into();
            check["chunks"] = ranges(&o.sampled.0);
            if !r.grads.is_empty() {
                check["grad_chunks"] = ranges(&o.sampled.1);
            }
        }
        let mut doc = json!({
            "loss": loss.name(),
            "reduction": reduction.name(),
            "value": num(o.value),
            "cpu_reference": o.cpu_value.map_or(JsonValue::Null, num),
            "reference": check,
            "n": o.n,
            "items": o.items,
            "items_shape": o.items_shape,
            "adapter": {
                "name": info.name,
                "backend": format!("{:?}", info.backend),
                "device_type": format!("{:?}", info.device_type),
                "driver": info.driver,
            },
            "params": params(loss),
            "gpu_ms": o.gpu_ms,
            "streamed": o.chunks.is_some(),
            "dtype": o.dtype.name(),
        });
        match &o.shares {
            Some(shares) => {
                doc["adapters"] = shares
                    .as_array()
                    .map(|s| s.iter().map(|s| s["adapter"].clone()).collect())
                    .unwrap_or_default();
                doc["shares"] = shares.clone();
            }
            None => doc["adapters"] = json!([o.adapter_name]),
        }
        if let Some(k) = o.chunks {
            doc["chunks"] = k.into();
        }
        if let Some(s) = o.skipped {
            doc["skipped"] = s;
        }
        if let Some(k) = o.ranks {
            doc["ranks"] = k.into();
        }
        if let Some(out) = &r.out {
            doc["out"] = out.display().to_string().into();
        }
        if !r.grads.is_empty() {
            if let Some(d) = o.grad_diff {
                doc["grad_max_abs_diff"] = num(d);
            }
            for (wrt, path) in &r.grads {
                doc[grad_key(*wrt)] = path.display().to_string().into();
            }
        }
        say(&doc.to_string());
    } else {
        let mut wrote: String = r
            .out
            .iter()
            .chain(r.grads.iter().map(|(_, p)| p))
            .map(|p| format!("; wrote {}", p.display()))
            .collect();
        if let Some(d) = o.grad_diff.filter(|_| !r.grads.is_empty()) {
            wrote = format!("; gradient max |gpu - cpu| {d:.1e}{wrote}");
        }
        let reference = match (o.cpu_value, r.check) {
            (Some(v), _) => format!("cpu reference {}", v as f32),
            (None, Check::Sample { .. }) => {
                format!("cpu reference on {} sampled chunks", o.sampled.0.len())
            }
            (None, _) => "cpu reference off".to_string(),
        };
        let ranks = o.ranks.map(|k| format!(", {k} ranks")).unwrap_or_default();
        say(&format!(
            "{} {} = {} ({reference}, {} items, {}{ranks}, {:.1} ms{wrote})",
            loss.name(),
            reduction.name(),
            o.value as f32,
            o.items,
            o.adapter_name,
            o.gpu_ms,
        ));
    }
    Ok(ExitCode::SUCCESS)
}
