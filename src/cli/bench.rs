//! Benchmarks against the physical limit: each loss's achieved bandwidth over
//! the bytes it must move, next to a plain copy kernel's over as many bytes.
//! `wgpu-loss bench` prints and plots these records.

use crate::loss::Rows;
use std::collections::HashMap;
use std::time::Instant;

use bytemuck::{Pod, Zeroable};
use serde::Serialize;

use crate::cli::synthetic;
use crate::context::{Context, COPY};
use crate::error::{Error, Result};
use crate::gpu::{grid, Prepared, Variant, WG};
use crate::inputs::{DType, Upstream};
use crate::loss::{Loss, Reduction};

/// vec4s per thread: `ITEMS` in shaders/copy.wgsl (checked by the test
/// gpu::contract::shared_constants_match_the_shaders).
pub(crate) const COPY_ITEMS: usize = 4;

/// `Params` of shaders/copy.wgsl; the test
/// gpu::contract::params_match_the_shaders checks that they agree.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct CopyParams {
    pub(crate) n4: u32,
    pub(crate) groups_x: u32,
    pub(crate) _pad: [u32; 2],
}

/// Elements of a round-trip call: what users of small batches send.
pub const ROUNDTRIP_N: usize = 1000;

/// 2^12 to 2^26 elements in steps of 4.
pub fn default_sizes() -> Vec<usize> {
    (12..=26).step_by(2).map(|k| 1usize << k).collect()
}

/// How many times to repeat a measurement: after one warm-up, until `target_s`
/// seconds have passed and at least `min_runs` ran, or `max_runs` ran.
#[derive(Clone, Copy, Debug)]
pub struct Repeats {
    pub min_runs: usize,
    pub max_runs: usize,
    pub target_s: f64,
}

impl Default for Repeats {
    fn default() -> Self {
        Repeats {
            min_runs: 3,
            max_runs: 20,
            target_s: 0.3,
        }
    }
}

/// One (loss, size, call) measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub loss: String,
    /// The dtype of the float inputs: f32, f16 or bf16.
    pub dtype: String,
    /// "forward": the loss value with its inputs already on the device.
    /// "fused": the value and every gradient in one call (upstream 1), the
    /// value read back and the gradients left on the device.
    pub call: String,
    pub reduction: String,
    /// Elements asked for; `n` is the input's, rounded to whole rows.
    pub size: usize,
    pub n: usize,
    pub shape: Vec<usize>,
    /// Bytes that must move: every input read once, the output written once
    /// (and, for "fused", every gradient written once).
    pub bytes: usize,
    /// Median GPU time of the call's passes (timestamps), or its wall time
    /// where `timing` is "wall".
    pub gpu_ms: f64,
    /// Median wall time of the whole blocking call: submit, wait, readback.
    pub wall_ms: f64,
    pub gbps: f64,
    /// A copy kernel's bandwidth (read + write) over a buffer of the input
    /// bytes; for "fused", of half the bytes it moves, so that the copy moves
    /// as many.
    pub copy_gbps: f64,
    /// `gbps / copy_gbps`.
    pub efficiency: f64,
    pub dispatches: usize,
    pub submits: usize,
    /// Median wall time of a blocking call on `ROUNDTRIP_N` elements with its
    /// inputs on the device, the readback of the scalar included.
    pub roundtrip_ms: f64,
    /// The same call from host data: upload, bind groups, run and readback.
    pub evaluate_ms: f64,
    pub runs: usize,
    /// "fused" only: its `gpu_ms` over the "forward" call's on the same batch
    /// (both measured in this run); the cost of the backward on top of the
    /// forward, plus one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_forward: Option<f64>,
    /// "timestamps" or "wall".
    pub timing: String,
    pub adapter: String,
    pub device_type: String,
    /// The kernel variant the call ran (see `wgpu_loss::Variant`).
    pub variant: String,
    /// Whether it is the variant an evaluator of this call runs unforced
    /// (the tuner's choice): always, unless `bench --variants all` forced
    /// each in turn.
    pub chosen: bool,
}

/// What a measurement gave: a record, or why the loss was not run.
pub enum Outcome {
    Done(Box<Record>),
    Skipped(String),
}

/// The median; NaN for an empty list.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// GB/s (10^9 bytes per second) for `bytes` in `ms` milliseconds.
pub fn gbps(bytes: usize, ms: f64) -> f64 {
    bytes as f64 / (ms * 1e6)
}

/// Median (GPU ms, wall ms) and the runs after a warm-up. GPU time falls back
/// to the wall time where a run gives none.
fn measure(
    repeats: Repeats,
    mut run: impl FnMut() -> Result<Option<f64>>,
) -> Result<(f64, f64, usize, bool)> {
    run()?;
    let (mut gpu, mut wall) = (vec![], vec![]);
    let mut timed = true;
    let start = Instant::now();
    while wall.len() < repeats.max_runs.max(1)
        && (wall.len() < repeats.min_runs || start.elapsed().as_secs_f64() < repeats.target_s)
    {
        let t = Instant::now();
        let ms = run()?;
        let w = t.elapsed().as_secs_f64() * 1e3;
        timed &= ms.is_some();
        gpu.push(ms.unwrap_or(w));
        wall.push(w);
    }
    Ok((median(&gpu), median(&wall), wall.len(), timed))
}

/// Measures losses on one context, caching the copy bandwidth per byte count
/// and the round trip per loss.
pub struct Bench<'c> {
    ctx: &'c Context,
    pub repeats: Repeats,
    pub reduction: Reduction,
    pub seed: u64,
    /// The dtype of the batches' float tensors (class indices stay i64).
    pub dtype: DType,
    copies: HashMap<usize, f64>,
    roundtrips: HashMap<String, (f64, f64)>,
    /// The forward call's GPU ms by (loss, size, variant, dtype), for the
    /// fused call's ratio.
    forwards: HashMap<(String, usize, String, DType), f64>,
}

impl<'c> Bench<'c> {
    pub fn new(ctx: &'c Context) -> Self {
        Bench {
            ctx,
            repeats: Repeats::default(),
            reduction: Reduction::Mean,
            seed: 1,
            dtype: DType::F32,
            copies: HashMap::new(),
            roundtrips: HashMap::new(),
            forwards: HashMap::new(),
        }
    }

    /// Whether the GPU times come from timestamp queries.
    pub fn timestamps(&self) -> bool {
        self.ctx.has_timestamps()
    }

    /// The copy kernel's bandwidth, (read + write bytes) / median time, over a
    /// buffer of `bytes` bytes (rounded up to whole vec4s). Buffers larger than
    /// one binding are copied as several, one dispatch each, in the same pass.
    pub fn copy_gbps(&mut self, bytes: usize) -> Result<f64> {
        let bytes = bytes.max(16).next_multiple_of(16);
        if let Some(g) = self.copies.get(&bytes) {
            return Ok(*g);
        }
        let ctx = self.ctx;
        let block = WG * COPY_ITEMS;
        // A whole number of workgroup blocks per chunk keeps chunks aligned.
        let chunk4 = (ctx.max_binding_elements() / 4 / block).max(1) * block;
        let pipeline = ctx.pipeline(&COPY, "main", &[])?;
        let mut chunks = vec![];
        let mut left = bytes / 16;
        while left > 0 {
            let n4 = left.min(chunk4);
            left -= n4;
            let src = ctx.storage("copy src", n4 * 4);
            let dst = ctx.storage("copy dst", n4 * 4);
            let (groups_x, groups_y) = grid(n4.div_ceil(block));
            let params = CopyParams {
                n4: n4 as u32,
                groups_x,
                _pad: [0; 2],
            };
            let uniform = ctx.buffer_with(
                "copy params",
                bytemuck::bytes_of(&params),
                wgpu::BufferUsages::UNIFORM,
            );
            let bind_group = ctx.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("copy"),
                layout: &pipeline.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: src.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: dst.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: uniform.as_entire_binding(),
                    },
                ],
            });
            chunks.push((dst, bind_group, (groups_x, groups_y)));
        }
        let timer = ctx.timer();
        let (ms, _, _, _) = measure(self.repeats, || {
            ctx.scoped(|| {
                let mut encoder = ctx.encoder();
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("copy"),
                        timestamp_writes: timer.as_ref().map(|t| t.writes()),
                    });
                    pass.set_pipeline(&pipeline.pipeline);
                    for (_, bind_group, groups) in &chunks {
                        pass.set_bind_group(0, bind_group, &[]);
                        pass.dispatch_workgroups(groups.0, groups.1, 1);
                    }
                }
                ctx.read_timed(encoder, &chunks[0].0, 4, timer.as_ref())
            })
            .map(|(_, ms)| ms)
        })?;
        let g = gbps(2 * bytes, ms);
        self.copies.insert(bytes, g);
        Ok(g)
    }

    /// Median wall times of a blocking call on `ROUNDTRIP_N` elements: with
    /// the inputs on the device, and from host data (`Context::evaluate`).
    pub fn roundtrip(&mut self, loss: &Loss) -> Result<(f64, f64)> {
        self.roundtrip_of(loss, false)
    }

    /// `roundtrip`, or with `fused` the value-and-gradient call's: the value
    /// read back with the inputs on the device, and from host data
    /// (`Context::evaluate_with_grad`, which also reads back the gradients).
    fn roundtrip_of(&mut self, loss: &Loss, fused: bool) -> Result<(f64, f64)> {
        let key = format!("{loss:?} {fused} {:?}", self.dtype);
        if let Some(r) = self.roundtrips.get(&key) {
            return Ok(*r);
        }
        let batch = synthetic::batch(loss, ROUNDTRIP_N, self.seed);
        let cast = batch.cast(self.dtype);
        let inputs = cast.inputs();
        let one = Upstream::Scalar(1.0);
        let prepared = if fused {
            self.ctx
                .prepare_with_grad(loss, self.reduction, &inputs, one)?
        } else {
            self.ctx.prepare(loss, self.reduction, &inputs)?
        };
        let many = Repeats {
            min_runs: 20,
            max_runs: 200,
            target_s: 0.2,
        };
        let (_, device, _, _) = measure(many, || prepared.run().map(|_| None))?;
        let (_, host, _, _) = measure(many, || {
            if fused {
                self.ctx
                    .evaluate_with_grad(loss, self.reduction, &inputs, one)
                    .map(|_| None)
            } else {
                self.ctx
                    .evaluate(loss, self.reduction, &inputs)
                    .map(|_| None)
            }
        })?;
        self.roundtrips.insert(key, (device, host));
        Ok((device, host))
    }

    /// Every variant that can run `loss` (forward, or `fused`) on the
    /// synthetic batch of about `size` elements, with whether it is the one
    /// an unforced call runs (the tuner's choice, timed now if it has none
    /// yet). Empty where the call is skipped (see `forward`).
    pub fn variant_runs(
        &self,
        loss: &Loss,
        size: usize,
        fused: bool,
    ) -> Result<Vec<(Variant, bool)>> {
        if loss.validate(self.reduction).is_err() || size > self.ctx.max_binding_elements() {
            return Ok(vec![]);
        }
        let batch = synthetic::batch(loss, size, self.seed);
        let cast = batch.cast(self.dtype);
        let inputs = cast.inputs();
        let decided = self
            .ctx
            .variants(loss, self.reduction, &inputs)
            .and_then(|all| {
                let choice = if fused {
                    self.ctx.tune_with_grad(loss, self.reduction, &inputs)
                } else {
                    self.ctx.tune(loss, self.reduction, &inputs)
                }?;
                Ok(all.into_iter().map(|v| (v, v == choice)).collect())
            });
        match decided {
            Err(e) if matches!(skipped(e.clone()), Ok(Outcome::Skipped(_))) => Ok(vec![]),
            other => other,
        }
    }

    /// Times the forward call of `loss` on a synthetic batch of about `size`
    /// elements, its inputs already on the device.
    pub fn forward(&mut self, loss: &Loss, size: usize) -> Result<Outcome> {
        self.forward_as(loss, size, None)
    }

    /// `forward`, with `variant` forced (`Some`), recorded as not chosen
    /// unless `chosen`.
    pub fn forward_as(
        &mut self,
        loss: &Loss,
        size: usize,
        variant: Option<(Variant, bool)>,
    ) -> Result<Outcome> {
        if let Err(e) = loss.validate(self.reduction) {
            return skipped(e);
        }
        let limit = self.ctx.max_binding_elements();
        if size > limit {
            return Ok(Outcome::Skipped(format!(
                "{size} elements exceed the adapter's {limit} per binding"
            )));
        }
        let batch = synthetic::batch(loss, size, self.seed);
        let cast = batch.cast(self.dtype);
        let inputs = cast.inputs();
        let forced = variant.map(|(v, _)| self.ctx.with_variant(v));
        let ctx = forced.as_ref().unwrap_or(self.ctx);
        let prepared = match ctx.prepare(loss, self.reduction, &inputs) {
            Ok(p) => p,
            Err(e) => return skipped(e),
        };
        let items: usize = match prepared.run() {
            Ok(ev) if ev.items.is_some() => ev.items_shape.iter().product(),
            Ok(_) => 1,
            Err(e) => return skipped(e),
        };
        let read = must_read(&batch, self.dtype);
        let mut record = self.time(loss, size, &batch, &prepared, read, read + 4 * items)?;
        record.chosen = variant.is_none_or(|(_, chosen)| chosen);
        self.forwards.insert(
            (loss.name().into(), size, record.variant.clone(), self.dtype),
            record.gpu_ms,
        );
        Ok(Outcome::Done(Box::new(record)))
    }

    /// Times the fused value-and-gradient call of `loss` (upstream 1) on the
    /// batch `forward` uses, its inputs on the device: the value is read
    /// back, the gradients stay on the device. Its `vs_forward` is set when
    /// `forward` ran on the same (loss, size, variant) first.
    pub fn fused(&mut self, loss: &Loss, size: usize) -> Result<Outcome> {
        self.fused_as(loss, size, None)
    }

    /// `fused`, with `variant` forced as in `forward_as`.
    pub fn fused_as(
        &mut self,
        loss: &Loss,
        size: usize,
        variant: Option<(Variant, bool)>,
    ) -> Result<Outcome> {
        if let Err(e) = loss.validate(self.reduction) {
            return skipped(e);
        }
        let limit = self.ctx.max_binding_elements();
        if size > limit {
            return Ok(Outcome::Skipped(format!(
                "{size} elements exceed the adapter's {limit} per binding"
            )));
        }
        let batch = synthetic::batch(loss, size, self.seed);
        let cast = batch.cast(self.dtype);
        let inputs = cast.inputs();
        let forced = variant.map(|(v, _)| self.ctx.with_variant(v));
        let ctx = forced.as_ref().unwrap_or(self.ctx);
        let prepared =
            match ctx.prepare_with_grad(loss, self.reduction, &inputs, Upstream::Scalar(1.0)) {
                Ok(p) => p,
                Err(e) => return skipped(e),
            };
        // The output, then every gradient.
        let written = match prepared.run_with_grad() {
            Ok((ev, g)) => {
                let items = match ev.items {
                    Some(_) => ev.items_shape.iter().product(),
                    None => 1,
                };
                let others = [&g.target, &g.positive, &g.negative];
                items
                    + g.input.len()
                    + others
                        .iter()
                        .flat_map(|v| v.iter())
                        .map(Vec::len)
                        .sum::<usize>()
            }
            Err(e) => return skipped(e),
        };
        // The copy yardstick moves as many bytes as the call: half read, half written.
        let bytes = must_read(&batch, self.dtype) + 4 * written;
        let mut record = self.time(loss, size, &batch, &prepared, bytes / 2, bytes)?;
        record.chosen = variant.is_none_or(|(_, chosen)| chosen);
        record.vs_forward = self
            .forwards
            .get(&(
                loss.name().to_string(),
                size,
                record.variant.clone(),
                self.dtype,
            ))
            .map(|f| record.gpu_ms / f);
        Ok(Outcome::Done(Box::new(record)))
    }

    fn time(
        &mut self,
        loss: &Loss,
        size: usize,
        batch: &synthetic::Batch,
        prepared: &Prepared<'_>,
        copy_bytes: usize,
        bytes: usize,
    ) -> Result<Record> {
        let submits = self.ctx.submits();
        let (gpu_ms, wall_ms, runs, timed) =
            measure(self.repeats, || prepared.run_timed().map(|(_, ms)| ms))?;
        let submits = (self.ctx.submits() - submits) / (runs + 1);
        let copy_gbps = self.copy_gbps(copy_bytes)?;
        let fused = prepared.evaluator().has_gradients();
        let (roundtrip_ms, evaluate_ms) = self.roundtrip_of(loss, fused)?;
        let g = gbps(bytes, gpu_ms);
        let info = self.ctx.adapter_info();
        Ok(Record {
            vs_forward: None,
            loss: loss.name().into(),
            dtype: self.dtype.name().into(),
            call: if fused { "fused" } else { "forward" }.into(),
            reduction: self.reduction.name().into(),
            size,
            n: batch.input.0.len(),
            shape: batch.input.1.clone(),
            bytes,
            gpu_ms,
            wall_ms,
            gbps: g,
            copy_gbps,
            efficiency: g / copy_gbps,
            dispatches: prepared.dispatches(),
            submits,
            roundtrip_ms,
            evaluate_ms,
            runs,
            timing: if timed { "timestamps" } else { "wall" }.into(),
            adapter: self.ctx.adapter_name(),
            device_type: format!("{:?}", info.device_type),
            variant: prepared.evaluator().variant().name().into(),
            chosen: true,
        })
    }
}

/// Bytes a call must read: every input once in its dtype
/// ([`synthetic::Cast::bytes`]), except where the loss looks at only part of
/// it: `nll` reads one input value per row, the one its class index picks.
pub fn must_read(batch: &synthetic::Batch, dtype: DType) -> usize {
    match (&batch.loss, &batch.classes) {
        (Loss::Rows(Rows::Nll { .. }), Some((classes, _))) => (dtype.size() + 4) * classes.len(),
        _ => batch.cast(dtype).bytes(),
    }
}

/// A loss the GPU cannot run yet, a reduction the loss does not have, a
/// batch over a limit, or a forced variant that cannot run the batch is
/// skipped; anything else is an error.
fn skipped(e: Error) -> Result<Outcome> {
    match e {
        Error::TooLarge { .. } | Error::Reduction { .. } | Error::Variant { .. } => {
            Ok(Outcome::Skipped(e.to_string()))
        }
        e => Err(e),
    }
}

/// `bytes` as B, KiB, MiB or GiB.
pub fn human_bytes(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if v >= 10.0 || u == 0 {
        format!("{v:.0} {}", units[u])
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// The records as a plain-text table, one line per record.
pub fn table(records: &[Record]) -> String {
    let mut s = format!(
        "{:<16} {:<5} {:<7} {:>9} {:>9} {:>10} {:>9} {:>9} {:>6} {:>4} {:>4} {:>9} {:>9} {:>6}  {}\n",
        "loss",
        "dtype",
        "call",
        "n",
        "bytes",
        "gpu ms",
        "GB/s",
        "copy GB/s",
        "eff.",
        "disp",
        "subm",
        "rt ms",
        "eval ms",
        "/fwd",
        "variant"
    );
    for r in records {
        let vs = r.vs_forward.map(|v| format!("{v:.2}")).unwrap_or_default();
        s += &format!(
            "{:<16} {:<5} {:<7} {:>9} {:>9} {:>10.4} {:>9.3} {:>9.3} {:>6.3} {:>4} {:>4} {:>9.3} {:>9.3} {:>6}  {}{}\n",
            r.loss,
            r.dtype,
            r.call,
            r.n,
            human_bytes(r.bytes as f64),
            r.gpu_ms,
            r.gbps,
            r.copy_gbps,
            r.efficiency,
            r.dispatches,
            r.submits,
            r.roundtrip_ms,
            r.evaluate_ms,
            vs,
            r.variant,
            if r.chosen { "" } else { " (forced)" }
        );
    }
    s
}

/// Draws GB/s against the bytes each call moves, one line per loss, with the
/// copy kernel's bandwidth over the same bytes as a thick black line.
pub fn plot_svg(
    records: &[Record],
    path: &std::path::Path,
    title: &str,
) -> std::result::Result<(), String> {
    use plotters::prelude::*;

    let err = |e: &dyn std::fmt::Display| format!("plotting {}: {e}", path.display());
    let finite: Vec<&Record> = records
        .iter()
        .filter(|r| {
            r.gbps.is_finite() && r.gbps > 0.0 && r.copy_gbps.is_finite() && r.copy_gbps > 0.0
        })
        .collect();
    // x is log2(bytes), so that the axis reads in whole powers of two.
    let x = |r: &Record| (r.bytes as f64).log2();
    let mut copy: Vec<(f64, f64)> = finite.iter().map(|r| (x(r), r.copy_gbps)).collect();
    copy.sort_by(|a, b| a.0.total_cmp(&b.0));
    copy.dedup_by(|a, b| a.0 == b.0);
    let xs = finite.iter().map(|r| x(r));
    let ys = finite.iter().flat_map(|r| [r.gbps, r.copy_gbps]);
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (y0, y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let (x0, x1, y0, y1) = if finite.is_empty() {
        (10.0, 30.0, 1e-3, 1e3)
    } else {
        (x0.floor() - 0.5, x1.ceil() + 0.5, y0 / 1.5, y1 * 1.5)
    };

    let root = SVGBackend::new(path, (1100, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("bytes moved per call (inputs read once, output written once)")
        .y_desc("GB/s")
        .x_labels(((x1 - x0) as usize + 1).min(30))
        .y_labels(12)
        .light_line_style(WHITE)
        .x_label_formatter(&|v| human_bytes(v.exp2()))
        .y_label_formatter(&|v| format!("{}", *v as f32))
        .draw()
        .map_err(|e| err(&e))?;
    let thick = BLACK.stroke_width(3);
    chart
        .draw_series(LineSeries::new(copy, thick))
        .map_err(|e| err(&e))?
        .label("copy kernel (read + write)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], thick));
    // One line per loss and call: "mse", "mse fused"; a forced variant
    // other than the tuner's choice gets its own: "cosine_embedding [pair-thread]".
    let series = |r: &Record| {
        let name = match r.call.as_str() {
            "forward" => r.loss.clone(),
            call => format!("{} {call}", r.loss),
        };
        if r.chosen {
            name
        } else {
            format!("{name} [{}]", r.variant)
        }
    };
    let mut losses: Vec<String> = vec![];
    for r in &finite {
        if !losses.contains(&series(r)) {
            losses.push(series(r));
        }
    }
    for (i, loss) in losses.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut pts: Vec<(f64, f64)> = finite
            .iter()
            .filter(|r| series(r) == *loss)
            .map(|r| (x(r), r.gbps))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(loss.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_rates() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(gbps(2_000_000, 1.0), 2.0);
        assert_eq!(default_sizes().first(), Some(&4096));
        assert_eq!(default_sizes().last(), Some(&(1 << 26)));
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
    }

    #[test]
    fn bytes_that_must_move() {
        let mse = synthetic::batch(&Loss::from_name("mse").unwrap(), 1000, 1);
        assert_eq!(must_read(&mse, DType::F32), 8000);
        assert_eq!(must_read(&mse, DType::F16), 4000);
        assert_eq!(must_read(&mse, DType::Bf16), 4000);
        let nll = Loss::from_name("nll").unwrap();
        let b = synthetic::batch(&nll, 3000, 1);
        assert_eq!(b.bytes(), 4 * 3000 + 4 * 3);
        assert_eq!(
            must_read(&b, DType::F32),
            8 * 3,
            "a class index and one input value per row"
        );
        assert_eq!(must_read(&b, DType::Bf16), 6 * 3);
        // Class indices count 4 bytes whatever the dtype of the floats.
        let ce = synthetic::batch(&Loss::from_name("cross_entropy").unwrap(), 3000, 1);
        assert_eq!(ce.cast(DType::F16).bytes(), 2 * 3000 + 4 * 3);
    }
}
