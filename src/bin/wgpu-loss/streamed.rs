//! `eval` on files larger than the upload budget: the files are memory-mapped
//! and streamed, chunk by chunk, through the CPU reference and then the GPU,
//! so the process holds a few chunks rather than the files.

use std::cell::OnceCell;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wgpu_loss::cli::args::{tensor_flag, Files};
use wgpu_loss::cli::npy::{Data, Mapped};
use wgpu_loss::cli::Fail;
use wgpu_loss::{cpu, Chunks, Context, Inputs, Loss, Partial, Reduction, Tensor, TensorName};

use crate::eval::Outcome;

enum Values {
    /// Native-endian float32 or int64, used in place.
    Mapped,
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// One file: mapped, and converted whole where its dtype cannot be used in place.
struct Source {
    map: Mapped,
    values: Values,
}

impl Source {
    fn open(name: TensorName, path: &std::path::Path, classes: bool) -> Result<Source, Fail> {
        let map =
            Mapped::open(path).map_err(|e| Fail::Usage(format!("--{}: {e}", tensor_flag(name))))?;
        let values = if (classes && map.i64().is_some()) || map.f32().is_some() {
            Values::Mapped
        } else {
            let a = map.to_array();
            if classes && a.is_int() {
                match a.data {
                    Data::I64(v) => Values::I64(v),
                    _ => unreachable!("is_int"),
                }
            } else {
                Values::F32(a.into_f32())
            }
        };
        Ok(Source { map, values })
    }

    fn floats(&self) -> &[f32] {
        match &self.values {
            Values::Mapped => self.map.f32().unwrap_or_default(),
            Values::F32(v) => v,
            Values::I64(_) => &[],
        }
    }

    fn classes(&self) -> Option<&[i64]> {
        match &self.values {
            Values::Mapped => self.map.i64(),
            Values::I64(v) => Some(v),
            Values::F32(_) => None,
        }
    }

    fn tensor(&self) -> Tensor<'_> {
        Tensor::new(self.floats(), self.map.shape())
    }
}

/// A progress bar on stderr that appears only once a run has taken a second,
/// and only on a terminal.
struct Progress {
    bar: ProgressBar,
    start: Instant,
    shown: bool,
}

impl Progress {
    fn new(len: u64) -> Progress {
        let bar = ProgressBar::hidden();
        bar.set_length(len);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>13} [{bar:40}] {percent:>3}% {elapsed_precise} (eta {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress {
            bar,
            start: Instant::now(),
            shown: false,
        }
    }

    fn set(&mut self, message: &'static str, position: u64) {
        if !self.shown && self.start.elapsed() > Duration::from_secs(1) {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
        self.bar.set_message(message);
        self.bar.set_position(position);
    }
}

/// Evaluates in chunks that keep the GPU's two slots within `budget` bytes.
pub fn run(
    ctx: &OnceCell<Context>,
    loss: &Loss,
    reduction: Reduction,
    files: &Files,
    budget: u64,
) -> Result<Outcome, Fail> {
    let mut sources = vec![];
    for (name, path) in &files.paths {
        let classes = *name == TensorName::Target && loss.takes_classes();
        sources.push((*name, Source::open(*name, path, classes)?));
    }
    let mut inputs = Inputs::default();
    for (name, source) in &sources {
        inputs = match source.classes() {
            Some(data) => inputs.classes(data, source.map.shape()),
            None => inputs.with(*name, source.tensor()),
        };
    }
    let release = |done: usize, total: usize| {
        for (_, s) in &sources {
            s.map.release(done, total);
        }
    };

    // Two slots of chunks on the device, each chunk holding its share of
    // every file's bytes per input value.
    let n = inputs.input.data.len();
    let data: u64 = sources.iter().map(|(_, s)| s.map.data_bytes()).sum();
    let per_value = (data as f64 / n.max(1) as f64).max(4.0);
    let gpu_elems = ((budget as f64 / (2.0 * per_value)) as usize).max(1);
    // The reference keeps an f64 pair per item: a quarter of the GPU's chunk.
    let cpu_chunks = Chunks::new(loss, reduction, &inputs, (gpu_elems / 4).max(1))?;
    let units = cpu_chunks.units();
    let mut progress = Progress::new(2 * units as u64);
    let mut merged: Option<Partial> = None;
    for k in 0..cpu_chunks.len() {
        let chunk = cpu_chunks.chunk(k)?;
        let p = cpu::partial(loss, &chunk.inputs())?;
        match &mut merged {
            Some(m) => m.merge(&p)?,
            None => merged = Some(p),
        }
        release(chunk.units.end, units);
        progress.set("cpu reference", chunk.units.end as u64);
    }
    let mut merged = merged.expect("at least one chunk");
    merged.batch = cpu_chunks.batch();
    let summed = if reduction == Reduction::None {
        Reduction::Sum
    } else {
        reduction
    };
    let cpu_value = merged.value(loss, summed)?;

    let ctx = crate::eval::context(ctx)?;
    let chunks = Chunks::new(
        loss,
        reduction,
        &inputs,
        gpu_elems.min(ctx.max_binding_elements()),
    )?;
    let start = Instant::now();
    let step = chunks.units_per_chunk();
    let gpu = ctx.evaluate_chunks(&chunks, &mut |done, total| {
        // The next chunk was copied out already when this one's result came.
        release((done + step).min(total), total);
        progress.set("gpu", (units + done) as u64);
    })?;
    let gpu_ms = start.elapsed().as_secs_f64() * 1e3;
    progress.bar.finish_and_clear();
    let items = chunks.items_shape().iter().product();
    Ok(Outcome {
        grads: None,
        cpu: cpu::Reference {
            value: cpu_value,
            items: vec![],
            items_shape: gpu.items_shape.clone(),
        },
        gpu,
        n,
        gpu_ms,
        adapter: ctx.adapter_info().clone(),
        adapter_name: ctx.adapter_name(),
        items,
        chunks: Some(chunks.len()),
    })
}
