//! `eval` on mapped files, a part of the batch at a time: the whole batch
//! streamed through one adapter (files over `--budget-mb`), a share per
//! adapter (`--adapters all`), or a share per MPI rank.
//!
//! A part is cut into chunks within the budget. Each chunk is read once: the
//! GPU streams it (`Context::stream_chunks`), and the chunk goes on, with
//! the GPU's result, to a worker thread that computes the float64 reference
//! of it while the GPU runs the next ones. The forward pass gives each
//! part's sums (a `Partial`; for `none`, its items go straight into the
//! mapped `--out` file). Gradients need the whole batch's sums first (a
//! mean's denominator, Dice's per-class sums), so they take a second pass:
//! each chunk's gradient comes from its values and the merged sums
//! (`Context::gradient_of_part`) and goes into the mapped gradient files.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wgpu_loss::cli::agree::{self, GradCheck};
use wgpu_loss::cli::args::grad_flag;
use wgpu_loss::cli::check::{Check, Request};
use wgpu_loss::cli::npy::OutFile;
use wgpu_loss::cli::Fail;
use wgpu_loss::{
    cpu, Chunk, ChunkResult, Chunks, Context, Gradients, Inputs, Loss, Partial, Reduction,
    TensorName,
};

use wgpu_loss::cli::source::Sources;

/// A progress bar on stderr that appears only once a run has taken a second,
/// and only on a terminal; parts on several threads add to it.
pub struct Progress {
    bar: ProgressBar,
    start: Instant,
    shown: Mutex<bool>,
}

impl Progress {
    pub fn new(len: u64) -> Progress {
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
            shown: Mutex::new(false),
        }
    }

    fn add(&self, message: &'static str, units: u64) {
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        if !*shown && self.start.elapsed() > Duration::from_secs(1) {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            *shown = true;
        }
        self.bar.set_message(message);
        self.bar.inc(units);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Never drawn (an MPI rank other than 0).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub fn hide(&self) {
        *self.shown.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }
}

/// The output files of a mapped run, written a part at a time.
#[derive(Default)]
pub struct Outs {
    items: Option<Mutex<OutFile>>,
    grads: Vec<(TensorName, Mutex<OutFile>)>,
}

fn out_err(flag: &str, e: impl std::fmt::Display) -> Fail {
    Fail::Usage(format!("--{flag}: {e}"))
}

/// The layout of the gradient file of `wrt`, in its tensor's shape and dtype.
fn grad_layout(
    r: &Request,
    wrt: TensorName,
    path: &Path,
    sources: &Sources,
) -> Result<wgpu_loss::cli::npy::Layout, Fail> {
    let shape = sources.shape(wrt).unwrap_or_default();
    r.grad_layout(wrt, path, shape, sources.dtype(wrt))
}

impl Outs {
    /// Makes the temporary files: `--out` of `items_shape`, each gradient of
    /// its tensor's shape (laid out as the request says).
    pub fn create(r: &Request, items_shape: &[usize], sources: &Sources) -> Result<Outs, Fail> {
        let mut outs = Outs::default();
        if let Some(path) = &r.out {
            let layout = r.out_layout(path, items_shape)?;
            let f = OutFile::create(path, &layout).map_err(|e| out_err("out", e))?;
            outs.items = Some(Mutex::new(f));
        }
        for (wrt, path) in &r.grads {
            let layout = grad_layout(r, *wrt, path, sources)?;
            let f = OutFile::create(path, &layout).map_err(|e| out_err(grad_flag(*wrt), e))?;
            outs.grads.push((*wrt, Mutex::new(f)));
        }
        Ok(outs)
    }

    /// Opens the temporary files another process made (`tmps` in the order
    /// of [`tmps`](Self::tmps)), to write this process's parts.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub fn join(
        r: &Request,
        items_shape: &[usize],
        sources: &Sources,
        tmps: &[PathBuf],
    ) -> Result<Outs, Fail> {
        let mut outs = Outs::default();
        let mut tmps = tmps.iter();
        let mut next = |flag: &str| {
            tmps.next()
                .ok_or_else(|| Fail::Gpu(format!("--{flag}: no temporary file to join")))
        };
        if let Some(path) = &r.out {
            let layout = r.out_layout(path, items_shape)?;
            let f = OutFile::join(path, next("out")?, &layout).map_err(|e| out_err("out", e))?;
            outs.items = Some(Mutex::new(f));
        }
        for (wrt, path) in &r.grads {
            let flag = grad_flag(*wrt);
            let layout = grad_layout(r, *wrt, path, sources)?;
            let f = OutFile::join(path, next(flag)?, &layout).map_err(|e| out_err(flag, e))?;
            outs.grads.push((*wrt, Mutex::new(f)));
        }
        Ok(outs)
    }

    /// The temporary files, `--out`'s first.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub fn tmps(&self) -> Vec<PathBuf> {
        let lock = |f: &Mutex<OutFile>| {
            f.lock()
                .unwrap_or_else(|e| e.into_inner())
                .tmp()
                .to_path_buf()
        };
        self.items
            .iter()
            .map(lock)
            .chain(self.grads.iter().map(|(_, f)| lock(f)))
            .collect()
    }

    /// Whether gradient files are written.
    pub fn has_grads(&self) -> bool {
        !self.grads.is_empty()
    }

    /// Writes items from item `at` on, if `--out` was given.
    pub fn items(&self, at: usize, values: &[f32]) -> Result<(), Fail> {
        if let Some(f) = &self.items {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            f.write(at, values).map_err(|e| out_err("out", e))?;
        }
        Ok(())
    }

    /// Writes each gradient asked for from element `at` on.
    pub fn grads(&self, at: usize, g: &Gradients) -> Result<(), Fail> {
        for (wrt, f) in &self.grads {
            let values = g.get(*wrt).ok_or_else(|| {
                Fail::Gpu(format!(
                    "--{}: the GPU gave no such gradient",
                    grad_flag(*wrt)
                ))
            })?;
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            f.write(at, values)
                .map_err(|e| out_err(grad_flag(*wrt), e))?;
        }
        Ok(())
    }

    /// Writes what this process wrote through to the files.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub fn flush(&self) -> Result<(), Fail> {
        let all = self
            .items
            .iter()
            .map(|f| ("out", f))
            .chain(self.grads.iter().map(|(t, f)| (grad_flag(*t), f)));
        for (flag, f) in all {
            let f = f.lock().unwrap_or_else(|e| e.into_inner());
            f.flush().map_err(|e| out_err(flag, e))?;
        }
        Ok(())
    }

    /// Renames every file over its path.
    pub fn finish(self) -> Result<(), Fail> {
        let all = self
            .items
            .into_iter()
            .map(|f| ("out", f))
            .chain(self.grads.into_iter().map(|(t, f)| (grad_flag(t), f)));
        for (flag, f) in all {
            let f = f.into_inner().unwrap_or_else(|e| e.into_inner());
            f.finish().map_err(|e| out_err(flag, e))?;
        }
        Ok(())
    }
}

/// What every part of one batch shares.
pub struct Batch<'a> {
    pub loss: &'a Loss,
    pub reduction: Reduction,
    pub check: Check,
    pub sources: &'a Sources,
    /// The whole batch, cut once: its units, result shape and offsets.
    pub whole: &'a Chunks<'a>,
    /// Bytes one part may hold on its device and in its reference at once.
    pub budget: u64,
    pub outs: &'a Outs,
    pub progress: &'a Progress,
}

/// A part's forward pass.
pub struct Forward {
    /// The GPU's sums (for `none`, of its items).
    pub gpu: Partial,
    /// The reference's sums, under `--reference full`.
    pub cpu: Option<Partial>,
    /// Σ|items| of the reference (`full`): the value's rounding scales with it.
    pub abs: f64,
    /// The chunks checked, in units of the batch.
    pub sampled: Vec<Range<usize>>,
    pub chunks: usize,
    pub ms: f64,
}

/// A part's gradient pass.
pub struct Backward {
    pub check: GradCheck,
    pub sampled: Vec<Range<usize>>,
    pub chunks: usize,
    pub ms: f64,
}

impl Batch<'_> {
    /// Input values per chunk, so that what one part holds at once stays
    /// within the budget. Per input value, with `b` bytes of the files per
    /// input value, `i` items and `g` gradient values:
    /// - forward: the GPU's two sets of buffers (inputs, output, readback:
    ///   2b + 16i), wgpu's staging copies of the uploads (2b), the pages of
    ///   the chunks in flight (being uploaded, queued for the reference,
    ///   being checked: 3b), and the reference's float64 items with the
    ///   GPU's on their way (32i);
    /// - gradients: one call's uploads and their staging copies (2b), its
    ///   result, readback and copies (16(i + g)), the pages in flight (2b),
    ///   the GPU's gradients on their way to the reference (8g), and the
    ///   reference's float64 items and gradients (32i + 16g).
    fn chunk_elems(&self, ctx: &Context, grads: bool) -> usize {
        let n = self.input_len().max(1) as f64;
        let b = (self.sources.data_bytes() as f64 / n).max(4.0);
        let i = self.items_len() as f64 / n;
        let g = self.loss.entry().grads.len() as f64;
        let cost = if grads {
            4.0 * b + 48.0 * i + 40.0 * g
        } else {
            7.0 * b + 48.0 * i
        };
        ((self.budget as f64 / cost) as usize)
            .max(1)
            .min(ctx.max_binding_elements())
    }

    fn input_len(&self) -> usize {
        self.sources
            .shape(TensorName::Input)
            .map_or(0, |s| s.iter().product())
    }

    /// Items of the whole `none` result.
    pub fn items_len(&self) -> usize {
        self.whole.items_shape().iter().product()
    }

    fn name(&self) -> &'static str {
        self.loss.name()
    }

    /// The sums of a chunk's `none` items.
    fn items_partial(&self, items: &[f32], batch: u64) -> Partial {
        let mut p = Partial::empty(self.loss, 0);
        p.sum = items.iter().fold(0.0, |a, v| a + *v as f64);
        p.denom = items.len() as f64;
        p.batch = batch;
        p
    }

    /// The value a reduction gives for a chunk's or the batch's sums (`none`:
    /// the items' sum).
    pub fn value_of(&self, p: &Partial) -> Result<f64, Fail> {
        let summed = match self.reduction {
            Reduction::None => Reduction::Sum,
            r => r,
        };
        Ok(p.value(self.loss, summed)?)
    }

    /// Σ|items| of a reference partial, reduced as its value is (see
    /// `agree::value`): `abs` is Σ|items| of its items; Dice's come from its
    /// per-class sums.
    fn abs_value(&self, p: &Partial, abs: f64) -> Result<f64, Fail> {
        if let Ok(classes) = p.dice_items(self.loss) {
            let abs: f64 = classes.iter().map(|v| v.abs()).sum();
            return Ok(match self.reduction {
                Reduction::Mean => abs / classes.len().max(1) as f64,
                _ => abs,
            });
        }
        let scaled = Partial {
            sum: abs,
            ..p.clone()
        };
        let v = self.value_of(&scaled)?;
        Ok(if v.is_finite() { v } else { abs })
    }

    /// The forward pass over `part`, whose first unit is unit `first` of the
    /// batch.
    pub fn forward(&self, ctx: &Context, part: &Inputs<'_>, first: usize) -> Result<Forward, Fail> {
        let start = Instant::now();
        let chunks = Chunks::new(
            self.loss,
            self.reduction,
            part,
            self.chunk_elems(ctx, false),
        )?;
        let total = self.whole.units();
        let items_len = self.items_len();
        let global = |c: &Chunk<'_>| first + c.units.start..first + c.units.end;
        let mut gpu: Option<Partial> = None;
        let mut cpu: Option<Partial> = None;
        let mut abs = 0.0;
        let mut sampled = vec![];
        let check = self.check;
        let reference = |(chunk, result): (Chunk<'_>, ChunkResult)| -> Result<(), Fail> {
            let units = global(&chunk);
            let (p, items) = cpu::partial_with_items(self.loss, &chunk.inputs())?;
            if let ChunkResult::Items(g) = &result {
                let at = self.whole.offset(units.start, items_len);
                agree::items(self.name(), at, g, &items).map_err(Fail::Disagree)?;
            }
            let a: f64 = items.iter().map(|v| v.abs()).sum();
            match check {
                Check::Full => {
                    abs += a;
                    match &mut cpu {
                        Some(m) => m.merge(&p)?,
                        None => cpu = Some(p),
                    }
                }
                _ => {
                    let g = match &result {
                        ChunkResult::Partial(g) => g.clone(),
                        ChunkResult::Items(items) => self.items_partial(items, p.batch),
                    };
                    let what = format!("units {}..{}: ", units.start, units.end);
                    agree::value(
                        self.name(),
                        &what,
                        self.value_of(&g)?,
                        self.value_of(&p)?,
                        self.abs_value(&p, a)?,
                    )
                    .map_err(Fail::Disagree)?;
                    sampled.push(units.clone());
                }
            }
            self.sources.release(first..units.end, total);
            Ok(())
        };
        let mut count = 0;
        overlapped(reference, |send| {
            ctx.stream_chunks(&chunks, |chunk, result| -> Result<(), Fail> {
                let units = global(&chunk);
                let p = match &result {
                    ChunkResult::Partial(p) => p.clone(),
                    ChunkResult::Items(items) => {
                        // With gradients, the fused pass writes the items (as
                        // one fused call over the whole batch would).
                        if !self.outs.has_grads() {
                            self.outs
                                .items(self.whole.offset(units.start, items_len), items)?;
                        }
                        let batch = chunk.inputs().input.shape.first().map_or(1, |&n| n as u64);
                        self.items_partial(items, batch)
                    }
                };
                match &mut gpu {
                    Some(m) => m.merge(&p)?,
                    None => gpu = Some(p),
                }
                count += 1;
                self.progress.add("forward", units.len() as u64);
                if check.picks(&units, total) {
                    send((chunk, result))
                } else {
                    self.sources.release(first..units.end, total);
                    Ok(())
                }
            })
        })?;
        Ok(Forward {
            gpu: gpu.unwrap_or_else(|| Partial::empty(self.loss, 0)),
            cpu,
            abs,
            sampled,
            chunks: count,
            ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// The gradient pass over `part` (whose first unit is unit `first` of
    /// the batch), given the batch's merged sums: the GPU's (`gpu`), and the
    /// ones its reference scales by (`reference`: the float64 sums under
    /// `--reference full`, so that they are checked too; else the GPU's).
    pub fn backward(
        &self,
        ctx: &Context,
        part: &Inputs<'_>,
        first: usize,
        gpu: &Partial,
        reference: &Partial,
    ) -> Result<Backward, Fail> {
        let start = Instant::now();
        let chunks = Chunks::new(self.loss, self.reduction, part, self.chunk_elems(ctx, true))?;
        let total = self.whole.units();
        let input_len = self.input_len();
        let items_len = self.items_len();
        let global = |c: &Chunk<'_>| first + c.units.start..first + c.units.end;
        let mut check = GradCheck::default();
        let mut sampled = vec![];
        let worker = |(chunk, got): (Chunk<'_>, Gradients)| -> Result<(), Fail> {
            let units = global(&chunk);
            let (_, want) =
                cpu::gradient_of_part(self.loss, self.reduction, &chunk.inputs(), reference, 1.0)?;
            check.add(self.whole.offset(units.start, input_len), &got, &want);
            if self.check != Check::Full {
                sampled.push(units.clone());
            }
            self.sources.release(first..units.end, total);
            Ok(())
        };
        overlapped(worker, |send| {
            for k in 0..chunks.len() {
                let chunk = chunks.chunk(k)?;
                let units = global(&chunk);
                let (items, grads) =
                    ctx.gradient_of_part(self.loss, self.reduction, &chunk.inputs(), gpu, 1.0)?;
                if let Some(items) = items {
                    self.outs
                        .items(self.whole.offset(units.start, items_len), &items)?;
                }
                self.outs
                    .grads(self.whole.offset(units.start, input_len), &grads)?;
                self.progress.add("gradients", units.len() as u64);
                if self.check.picks(&units, total) {
                    send((chunk, grads))?;
                } else {
                    self.sources.release(first..units.end, total);
                }
            }
            Ok(())
        })?;
        Ok(Backward {
            check,
            sampled,
            chunks: chunks.len(),
            ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }
}

/// Runs `produce` on this thread and `work` on a worker thread, handing
/// what `produce` sends over a channel of one slot: at most one item waits
/// while one is worked on. The worker's error comes first (it is why a send
/// failed).
pub fn overlapped<T: Send>(
    work: impl FnMut(T) -> Result<(), Fail> + Send,
    produce: impl FnOnce(&mut dyn FnMut(T) -> Result<(), Fail>) -> Result<(), Fail>,
) -> Result<(), Fail> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<T>(1);
        let worker = s.spawn(move || {
            let mut work = work;
            for item in rx {
                work(item)?;
            }
            Ok::<(), Fail>(())
        });
        let produced = produce(&mut |item| {
            tx.send(item)
                .map_err(|_| Fail::Gpu("the reference thread stopped".into()))
        });
        drop(tx);
        let worked = worker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        worked?;
        produced
    })
}

/// The batch's merged sums and its value: the GPU's, and the reference's
/// under `--reference full`, checked against each other (their Dice items
/// too). The partials' `batch` becomes the whole batch's.
pub struct Merged {
    pub gpu: Partial,
    pub cpu: Option<Partial>,
    pub value: f64,
    pub cpu_value: Option<f64>,
}

impl Batch<'_> {
    /// Merges the parts' forward passes (in batch order) and checks the value.
    pub fn merge(&self, parts: &[Forward]) -> Result<Merged, Fail> {
        let mut gpu = Partial::empty(self.loss, 0);
        let mut cpu: Option<Partial> = None;
        let mut abs = 0.0;
        for (k, f) in parts.iter().enumerate() {
            if k == 0 {
                gpu = f.gpu.clone();
            } else {
                gpu.merge(&f.gpu)?;
            }
            if let Some(p) = &f.cpu {
                match &mut cpu {
                    Some(m) => m.merge(p)?,
                    None => cpu = Some(p.clone()),
                }
            }
            abs += f.abs;
        }
        self.merged(gpu, cpu, abs)
    }

    /// The value of merged sums, checked.
    pub fn merged(
        &self,
        mut gpu: Partial,
        mut cpu: Option<Partial>,
        abs: f64,
    ) -> Result<Merged, Fail> {
        gpu.batch = self.whole.batch();
        let value = self.value_of(&gpu)?;
        let mut cpu_value = None;
        if let Some(c) = &mut cpu {
            c.batch = self.whole.batch();
            let v = self.value_of(c)?;
            let abs = self.abs_value(c, abs)?;
            agree::value(self.name(), "", value, v, abs).map_err(Fail::Disagree)?;
            if let (Ok(g), Ok(c)) = (gpu.dice_items(self.loss), c.dice_items(self.loss)) {
                if self.reduction == Reduction::None {
                    let g: Vec<f32> = g.into_iter().map(|v| v as f32).collect();
                    agree::items(self.name(), 0, &g, &c).map_err(Fail::Disagree)?;
                }
            }
            cpu_value = Some(v);
        }
        Ok(Merged {
            gpu,
            cpu,
            value,
            cpu_value,
        })
    }

    /// Dice's `none` items (one per class, from the merged sums) into `--out`.
    pub fn dice_items(&self, merged: &Merged) -> Result<(), Fail> {
        if self.reduction == Reduction::None {
            if let Ok(items) = merged.gpu.dice_items(self.loss) {
                let items: Vec<f32> = items.into_iter().map(|v| v as f32).collect();
                self.outs.items(0, &items)?;
            }
        }
        Ok(())
    }
}
