//! `wgpu-loss eval`: the checked request (`wgpu_loss::cli::check`) evaluated
//! on the GPU, whole, streamed or split across adapters, next to the CPU
//! reference; the `none` result and the gradients written as `.npy`, and one
//! line of text or JSON printed.

use std::cell::OnceCell;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::{json, Value as JsonValue};
use wgpu_loss::cli::args::{grad_flag, grad_key, EvalArgs, Files};
use wgpu_loss::cli::check::{load, reference, Request, Route};
use wgpu_loss::cli::Fail;
use wgpu_loss::cli::{agree, npy};
use wgpu_loss::{cpu, Context, Evaluation, Gradients, Loss, Reduction, TensorName, Value};

use crate::{say, streamed};

/// What one evaluation gives.
pub struct Outcome {
    pub gpu: Evaluation,
    pub cpu: cpu::Reference,
    pub n: usize,
    pub gpu_ms: f64,
    pub adapter: wgpu::AdapterInfo,
    pub adapter_name: String,
    /// Items of the `none` result (per-item losses behind a reduced value).
    pub items: usize,
    /// The chunk count of a streamed evaluation.
    pub chunks: Option<usize>,
    /// The gradients, where the call asked for them.
    pub grads: Option<GradOutcome>,
}

/// The gradients of one evaluation, with the shapes of their tensors and the
/// largest difference from the CPU reference's.
pub struct GradOutcome {
    gpu: Gradients,
    reference: cpu::ReferenceGradients,
    shapes: Vec<(TensorName, Vec<usize>)>,
    max_abs_diff: f64,
}

impl GradOutcome {
    /// The GPU gradient with respect to `wrt`, and its shape.
    fn get(&self, wrt: TensorName) -> Option<(&[f32], &[usize])> {
        let shape = self.shapes.iter().find(|(t, _)| *t == wrt)?;
        Some((self.gpu.get(wrt)?, shape.1.as_slice()))
    }
}

/// The largest |gpu − cpu| over every gradient element; 0 where both are
/// NaN or the same infinity, NaN where only one is NaN.
fn max_abs_diff(gpu: &Gradients, cpu: &cpu::ReferenceGradients) -> f64 {
    let mut worst = 0.0f64;
    for t in TensorName::ALL {
        let (Some(g), Some(c)) = (gpu.get(t), cpu.get(t)) else {
            continue;
        };
        for (&g, &c) in g.iter().zip(c) {
            let g = g as f64;
            let d = if g == c || (g.is_nan() && c.is_nan()) {
                0.0
            } else {
                (g - c).abs()
            };
            if d.is_nan() {
                return f64::NAN;
            }
            worst = worst.max(d);
        }
    }
    worst
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

/// Reads the files, validates and evaluates on the CPU reference, then on the
/// GPU (the context is opened only once the input is known to be valid).
/// With `grad`, the fused value-and-gradient call (upstream 1: for `none`,
/// the gradient of the items' sum) and its CPU twin.
pub fn run(
    ctx: &OnceCell<Context>,
    loss: &Loss,
    reduction: Reduction,
    files: &Files,
    grad: bool,
) -> Result<Outcome, Fail> {
    let loaded = load(loss, files)?;
    let inputs = loaded.inputs();
    let (cpu, cpu_grads) = reference(loss, reduction, &inputs, grad)?;
    let ctx = context(ctx)?;
    let start = Instant::now();
    let (gpu, grads) = match cpu_grads {
        Some(cpu_grads) => {
            let (gpu, g) =
                ctx.evaluate_with_grad(loss, reduction, &inputs, wgpu_loss::Upstream::Scalar(1.0))?;
            let grads = GradOutcome {
                max_abs_diff: max_abs_diff(&g, &cpu_grads),
                gpu: g,
                reference: cpu_grads,
                shapes: loaded
                    .tensors
                    .iter()
                    .map(|(t, o)| (*t, o.shape.clone()))
                    .collect(),
            };
            (gpu, Some(grads))
        }
        None => (ctx.evaluate(loss, reduction, &inputs)?, None),
    };
    let gpu_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(Outcome {
        items: cpu.items.len(),
        chunks: None,
        grads,
        gpu,
        cpu,
        n: inputs.input.data.len(),
        gpu_ms,
        adapter: ctx.adapter_info().clone(),
        adapter_name: ctx.adapter_name(),
    })
}

/// `run` with the batch split across every adapter (`--adapters all`); also
/// gives the adapters that evaluated a share, in batch order, and those
/// `Context::all_with` left out, with the reason, as JSON.
fn run_split(
    loss: &Loss,
    reduction: Reduction,
    files: &Files,
) -> Result<(Outcome, Vec<String>, JsonValue), Fail> {
    let loaded = load(loss, files)?;
    let inputs = loaded.inputs();
    let (cpu, _) = reference(loss, reduction, &inputs, false)?;
    let adapters = Context::all_with(wgpu_loss::AdapterFilter::default())?;
    let skipped: JsonValue = adapters
        .skipped
        .iter()
        .map(|(info, why)| {
            json!({
                "name": info.name,
                "backend": format!("{:?}", info.backend),
                "reason": why.to_string(),
            })
        })
        .collect();
    let contexts = adapters.contexts;
    let start = Instant::now();
    let split = wgpu_loss::split::evaluate(&contexts, loss, reduction, &inputs)?;
    let gpu_ms = start.elapsed().as_secs_f64() * 1e3;
    let names: Vec<String> = split.shares.iter().map(|s| s.adapter.clone()).collect();
    let outcome = Outcome {
        items: cpu.items.len(),
        chunks: None,
        gpu: split.evaluation,
        cpu,
        n: inputs.input.data.len(),
        gpu_ms,
        adapter: contexts[0].adapter_info().clone(),
        adapter_name: names.join(" + "),
        grads: None,
    };
    Ok((outcome, names, skipped))
}

/// A JSON number, or "NaN" / "inf" / "-inf".
fn num(v: f64) -> JsonValue {
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
    let r = Request::new(a)?;
    let (loss, reduction, files) = (&r.loss, r.reduction, &r.files);
    let ctx = OnceCell::new();
    let mut split = None;
    let mut skipped = None;
    let o = match r.route {
        Route::Split => {
            let (o, names, skips) = run_split(loss, reduction, files)?;
            split = Some(names);
            skipped = Some(skips);
            o
        }
        Route::Streamed => streamed::run(&ctx, loss, reduction, files, r.budget)?,
        Route::Whole => run(&ctx, loss, reduction, files, !r.grads.is_empty())?,
    };
    // A result the float64 reference does not confirm is a failure, and
    // nothing is written.
    agree::check(
        loss.name(),
        &o.gpu,
        &o.cpu,
        o.grads.as_ref().map(|g| (&g.gpu, &g.reference)),
    )
    .map_err(Fail::Disagree)?;
    if let (Some(out), Some(items)) = (&r.out, &o.gpu.items) {
        npy::write_f32(out, &o.gpu.items_shape, items)?;
    }
    if let Some(g) = &o.grads {
        for (wrt, path) in &r.grads {
            let (data, shape) = g.get(*wrt).ok_or_else(|| {
                Fail::Gpu(format!(
                    "--{}: the GPU gave no such gradient",
                    grad_flag(*wrt)
                ))
            })?;
            npy::write_f32(path, shape, data)?;
        }
    }
    let info = &o.adapter;
    if a.json {
        let mut doc = json!({
            "loss": loss.name(),
            "reduction": reduction.name(),
            "value": num(o.gpu.value),
            "cpu_reference": num(o.cpu.value),
            "n": o.n,
            "items": o.items,
            "items_shape": o.gpu.items_shape,
            "adapter": {
                "name": info.name,
                "backend": format!("{:?}", info.backend),
                "device_type": format!("{:?}", info.device_type),
                "driver": info.driver,
            },
            "params": params(loss),
            "gpu_ms": o.gpu_ms,
            "streamed": o.chunks.is_some(),
            "adapters": split.unwrap_or_else(|| vec![o.adapter_name.clone()]),
        });
        if let Some(k) = o.chunks {
            doc["chunks"] = k.into();
        }
        if let Some(s) = skipped {
            doc["skipped"] = s;
        }
        if let Some(out) = &r.out {
            doc["out"] = out.display().to_string().into();
        }
        if let Some(g) = &o.grads {
            doc["grad_max_abs_diff"] = num(g.max_abs_diff);
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
        if let Some(g) = &o.grads {
            wrote = format!("; gradient max |gpu - cpu| {:.1e}{wrote}", g.max_abs_diff);
        }
        say(&format!(
            "{} {} = {} (cpu reference {}, {} items, {}, {:.1} ms{wrote})",
            loss.name(),
            reduction.name(),
            o.gpu.value as f32,
            o.cpu.value as f32,
            o.items,
            o.adapter_name,
            o.gpu_ms,
        ));
    }
    Ok(ExitCode::SUCCESS)
}
