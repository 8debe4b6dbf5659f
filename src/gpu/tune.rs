//! The tuner: which variant an evaluator runs when none is forced.
//!
//! A choice is kept per key: the adapter (name, driver, backend), the family
//! and the loss, the dtype (f32), the shape bucketed to powers of two of its
//! rows and its row length (`variant::extent`), and whether the call has a
//! backward. The first build of an evaluator for a key times every eligible
//! variant on buffers of the call's shapes that the tuner owns, outside any
//! caller's encoder, in the family's order of guesses: a warm-up, then
//! `SAMPLES` runs, each timed by timestamp queries where the device has them
//! and by the wall clock from submit to readback otherwise; a variant's
//! fastest run counts, and the fastest variant is kept. A variant whose
//! warm-up takes more than `CUTOFF` times the best time so far is not run
//! again (its warm-up counts): a variant that misfits the adapter can be a
//! hundred times slower. The key then holds the choice for every later
//! build, so `encode` never tunes.
//!
//! Calls of fewer than [`TUNE_MIN_ELEMENTS`] input values take the family's
//! best guess untimed: their time is mostly the launch and the readback,
//! whichever variant runs, and small calls (and the test suite) do not pay
//! for tuning. Calls of more than [`TUNE_MAX_ELEMENTS`] values in all take it
//! too: timing them would double their memory on the device.
//!
//! Choices persist in a JSON file, so that a later process does not tune
//! again (see [`TuneCache`]): `{"version": 1, "entries": [{"adapter", "driver",
//! "backend", "family", "loss", "dtype", "rows_log2", "row_len_log2", "grad",
//! "candidates", "variant", "ms"}, ...]}`, `candidates` being the eligible
//! variants when it was timed and `ms` their times in that order. An entry
//! whose candidates differ from today's (a variant added, removed or no
//! longer eligible) is timed again and replaced. The file is written whole
//! to a temporary file that then replaces it; a file that cannot be read or
//! parsed, or of another version, is ignored with one warning on stderr,
//! never an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::evaluator::Evaluator;
use super::variant::{self, Variant};
use super::Timer;
use crate::context::Context;
use crate::device::{BufferView, DeviceInputs, DeviceTensor, GradViews};
use crate::error::{Error, Result};
use crate::inputs::{plan, plan_shapes, DType, Geometry, Inputs, Plan};
use crate::loss::{Loss, Reduction, TensorName};

/// Calls with fewer input values than this run the family's best guess
/// without timing.
pub const TUNE_MIN_ELEMENTS: usize = 1 << 16;

/// Calls with more values than this in all their tensors run the best guess
/// without timing (the tuner would allocate as much again).
pub const TUNE_MAX_ELEMENTS: usize = 1 << 27;

/// Timed runs of each variant, after one warm-up.
const SAMPLES: usize = 3;

/// A warm-up this many times slower than the best variant so far ends a
/// variant's timing.
const CUTOFF: f64 = 3.0;

/// The cache file's format; a file of another version is ignored.
const VERSION: u32 = 1;

/// Where the tuner keeps its choices across processes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TuneCache {
    /// `WGPU_LOSS_CACHE` when set: `off`, or the file's path. Unset:
    /// `$XDG_CACHE_HOME/wgpu-loss/tune.json`, else
    /// `$HOME/.cache/wgpu-loss/tune.json` (no file without either).
    #[default]
    FromEnv,
    /// Choices live in memory only.
    Off,
    /// This file.
    At(PathBuf),
}

impl TuneCache {
    /// The file it names, if any.
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            TuneCache::Off => None,
            TuneCache::At(p) => Some(p.clone()),
            TuneCache::FromEnv => match std::env::var_os("WGPU_LOSS_CACHE") {
                Some(v) if v == "off" => None,
                Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
                _ => {
                    let dir = std::env::var_os("XDG_CACHE_HOME")
                        .filter(|d| !d.is_empty())
                        .map(PathBuf::from)
                        .or_else(|| {
                            std::env::var_os("HOME")
                                .filter(|d| !d.is_empty())
                                .map(|h| PathBuf::from(h).join(".cache"))
                        })?;
                    Some(dir.join("wgpu-loss").join("tune.json"))
                }
            },
        }
    }
}

/// What a choice is kept for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Key {
    adapter: String,
    driver: String,
    backend: String,
    family: String,
    loss: String,
    dtype: String,
    rows_log2: u32,
    row_len_log2: u32,
    grad: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    key: Key,
    candidates: Vec<String>,
    variant: String,
    ms: Vec<f64>,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    entries: Vec<Entry>,
}

/// A context's choices, and the file they persist in.
pub(crate) struct Tuner {
    /// Never time, never read or write a file: the best guess always.
    guess_only: bool,
    path: Option<PathBuf>,
    /// Loaded from the file on first use; held while a key is timed, so
    /// that two threads never time one key.
    entries: Mutex<Option<HashMap<Key, Entry>>>,
}

/// One warning per process for an unreadable or unwritable cache file.
static WARNED: AtomicBool = AtomicBool::new(false);

fn warn_once(message: String) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!("wgpu-loss: {message}");
    }
}

/// The entries of the file at `path`; none, with a warning, when it cannot
/// be read or parsed, and none, quietly, when it does not exist.
fn load(path: &Path) -> HashMap<Key, Entry> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            warn_once(format!("ignoring the tuning cache {}: {e}", path.display()));
            return HashMap::new();
        }
    };
    match serde_json::from_str::<File>(&text) {
        Ok(f) if f.version == VERSION => {
            f.entries.into_iter().map(|e| (e.key.clone(), e)).collect()
        }
        Ok(f) => {
            warn_once(format!(
                "ignoring the tuning cache {}: version {}, this build writes {VERSION}",
                path.display(),
                f.version
            ));
            HashMap::new()
        }
        Err(e) => {
            warn_once(format!("ignoring the tuning cache {}: {e}", path.display()));
            HashMap::new()
        }
    }
}

/// Writes `entries` to a temporary file beside `path` that then replaces it,
/// so that a reader never sees half a file.
fn save(path: &Path, entries: &HashMap<Key, Entry>) -> std::io::Result<()> {
    static SAVES: AtomicUsize = AtomicUsize::new(0);
    let mut list: Vec<Entry> = entries.values().cloned().collect();
    list.sort_by(|a, b| {
        let k = |e: &Entry| {
            (
                e.key.adapter.clone(),
                e.key.family.clone(),
                e.key.loss.clone(),
                e.key.rows_log2,
                e.key.row_len_log2,
                e.key.grad,
            )
        };
        k(a).cmp(&k(b))
    });
    let text = serde_json::to_string_pretty(&File {
        version: VERSION,
        entries: list,
    })
    .map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        SAVES.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

impl Tuner {
    pub(crate) fn new(cache: &TuneCache) -> Tuner {
        Tuner {
            guess_only: false,
            path: cache.path(),
            entries: Mutex::new(None),
        }
    }

    /// A tuner that always takes the family's best guess.
    pub(crate) fn guessing() -> Tuner {
        Tuner {
            guess_only: true,
            path: None,
            entries: Mutex::new(None),
        }
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashMap<Key, Entry>>> {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(self.path.as_deref().map(load).unwrap_or_default());
        }
        guard
    }

    /// Keeps `entry` and rewrites the file with it, merged into what the file
    /// holds now (other processes may have added keys since it was read).
    fn keep(&self, entries: &mut HashMap<Key, Entry>, entry: Entry) {
        entries.insert(entry.key.clone(), entry.clone());
        if let Some(path) = &self.path {
            let mut on_disk = load(path);
            on_disk.insert(entry.key.clone(), entry);
            if let Err(e) = save(path, &on_disk) {
                warn_once(format!(
                    "could not write the tuning cache {}: {e}",
                    path.display()
                ));
            }
        }
    }
}

/// The kept variant of `entry` if it was timed among exactly `eligible`.
fn still_valid(entry: &Entry, eligible: &[Variant]) -> Option<Variant> {
    let mut then = entry.candidates.clone();
    let mut now: Vec<String> = eligible.iter().map(|v| v.name().to_string()).collect();
    then.sort();
    now.sort();
    if then != now {
        return None;
    }
    eligible.iter().copied().find(|v| v.name() == entry.variant)
}

fn log2_bucket(n: usize) -> u32 {
    n.max(1).next_power_of_two().trailing_zeros()
}

/// When a key without a choice is timed.
enum Timing {
    /// Time the candidates when the key has no choice yet.
    IfNew,
    /// Only when the call is within the tuner's size range.
    IfSized,
}

impl Context {
    /// The key of a call's choice: `dtype` is the input's (what the
    /// kernels mostly read).
    fn key(&self, loss: &Loss, geometry: &Geometry<'_>, dtype: DType, grad: bool) -> Key {
        let info = self.adapter_info();
        let (rows, len) = variant::extent(geometry);
        Key {
            adapter: info.name.clone(),
            driver: info.driver.clone(),
            backend: format!("{:?}", info.backend),
            family: variant::family(loss).into(),
            loss: loss.name().into(),
            dtype: dtype.name().into(),
            rows_log2: log2_bucket(rows),
            row_len_log2: log2_bucket(len),
            grad,
        }
    }

    /// The variants this context can run for `plan`, its family's best
    /// guess first, and the one forced for its family, checked against them.
    fn candidates(&self, loss: &Loss, plan: &Plan<'_>) -> Result<(Vec<Variant>, Option<Variant>)> {
        let eligible = variant::eligible(&plan.geometry, &self.caps);
        let family = variant::family(loss);
        let mut forced = self.forced.clone()?;
        // A test forcing a variant on its thread (`with_forced_variant`)
        // comes first.
        for v in variant::forced_here() {
            forced.insert(0, v);
        }
        let Some(v) = forced.into_iter().find(|v| v.family() == family) else {
            return Ok((eligible, None));
        };
        if eligible.contains(&v) {
            return Ok((eligible, Some(v)));
        }
        let (rows, len) = variant::extent(&plan.geometry);
        let names: Vec<&str> = eligible.iter().map(|v| v.name()).collect();
        Err(Error::Variant {
            name: v.name().into(),
            problem: format!(
                "cannot run {} on {rows} rows of {len} values on {} (eligible: {})",
                loss.name(),
                self.adapter_name(),
                names.join(", ")
            ),
        })
    }

    /// The variant an evaluator of this call runs: the one forced for its
    /// family, else the key's choice, else the best guess for a call outside
    /// the tuner's size range, else the fastest on tuner-owned buffers of
    /// the call's shapes (`Pattern`).
    pub(crate) fn choose(
        &self,
        loss: &Loss,
        reduction: Reduction,
        plan: &Plan<'_>,
        inputs: &DeviceInputs<'_>,
        grad: bool,
    ) -> Result<Variant> {
        let dtype = inputs.input.dtype;
        self.decide(loss, reduction, plan, dtype, grad, Timing::IfSized, || {
            Ok(Pattern::new(plan, inputs))
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        loss: &Loss,
        reduction: Reduction,
        plan: &Plan<'_>,
        dtype: DType,
        grad: bool,
        timing: Timing,
        data: impl FnOnce() -> Result<Pattern>,
    ) -> Result<Variant> {
        let (eligible, forced) = self.candidates(loss, plan)?;
        if let Some(v) = forced {
            return Ok(v);
        }
        let Some(&guess) = eligible.first() else {
            return Err(Error::Variant {
                name: variant::family(loss).into(),
                problem: "no variant of this family can run this call".into(),
            });
        };
        if eligible.len() == 1 || self.tuner.guess_only {
            return Ok(guess);
        }
        let key = self.key(loss, &plan.geometry, dtype, grad);
        let mut guard = self.tuner.lock();
        let entries = guard.get_or_insert_with(HashMap::new);
        if let Some(v) = entries.get(&key).and_then(|e| still_valid(e, &eligible)) {
            return Ok(v);
        }
        if let Timing::IfSized = timing {
            let input: usize = plan_input_len(plan);
            if input < TUNE_MIN_ELEMENTS {
                return Ok(guess);
            }
        }
        let data = data()?;
        if let Timing::IfSized = timing {
            if data.values > TUNE_MAX_ELEMENTS {
                return Ok(guess);
            }
        }
        let ms = match self.scoped(|| {
            data.allocate(self);
            let inputs = data.inputs();
            // Planned from the buffers' own shapes, as `prepare` plans from
            // its uploads (a broadcast may have been uploaded expanded).
            let shapes = inputs.shapes();
            let plan = plan_shapes(loss, reduction, &shapes)?;
            let mut ms = Vec::new();
            for &v in &eligible {
                let best = ms.iter().copied().fold(f64::INFINITY, f64::min);
                ms.push(self.time_variant(loss, reduction, &plan, &inputs, grad, v, best)?);
            }
            Ok(ms)
        }) {
            Ok(ms) => ms,
            Err(e @ Error::DeviceLost(_)) => return Err(e),
            Err(e) => {
                warn_once(format!(
                    "tuning {} on {} failed ({e}); running {guess}",
                    loss.name(),
                    self.adapter_name()
                ));
                return Ok(guess);
            }
        };
        let best = (0..eligible.len())
            .min_by(|&a, &b| ms[a].total_cmp(&ms[b]))
            .map_or(guess, |i| eligible[i]);
        self.tuner.keep(
            entries,
            Entry {
                key,
                candidates: eligible.iter().map(|v| v.name().to_string()).collect(),
                variant: best.name().into(),
                ms,
            },
        );
        Ok(best)
    }

    /// The fastest of `SAMPLES` runs of `variant` after a warm-up, in ms;
    /// the warm-up's time when it is `CUTOFF` times slower than `best`.
    #[allow(clippy::too_many_arguments)]
    fn time_variant(
        &self,
        loss: &Loss,
        reduction: Reduction,
        plan: &Plan<'_>,
        inputs: &DeviceInputs<'_>,
        grad: bool,
        variant: Variant,
        best_so_far: f64,
    ) -> Result<f64> {
        let ev = self.compile_variant(loss, reduction, inputs, plan, grad, variant, None)?;
        let output = self.storage("wgpu-loss tuning output", ev.output_len().max(1));
        let grads: Vec<(super::plan::Wrt, wgpu::Buffer, usize)> = ev
            .grad_lens()
            .into_iter()
            .map(|(w, len)| (w, self.storage("wgpu-loss tuning gradient", len), len))
            .collect();
        let upstream_len = if reduction == Reduction::None {
            ev.output_len()
        } else {
            1
        };
        let upstream =
            grad.then(|| self.upload("wgpu-loss tuning upstream", &vec![1.0f32; upstream_len]));
        let timer = self.timer();
        let mut best = f64::INFINITY;
        for sample in 0..=SAMPLES {
            let ms = self.run_once(
                &ev,
                inputs,
                &output,
                upstream.as_ref(),
                upstream_len,
                &grads,
                timer.as_ref(),
            )?;
            if sample == 0 && ms > CUTOFF * best_so_far {
                return Ok(ms);
            }
            if sample > 0 {
                best = best.min(ms);
            }
        }
        Ok(best)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_once(
        &self,
        ev: &Evaluator<'_>,
        inputs: &DeviceInputs<'_>,
        output: &wgpu::Buffer,
        upstream: Option<&wgpu::Buffer>,
        upstream_len: usize,
        grads: &[(super::plan::Wrt, wgpu::Buffer, usize)],
        timer: Option<&Timer>,
    ) -> Result<f64> {
        let view = |w: super::plan::Wrt| {
            grads
                .iter()
                .find(|g| g.0 == w)
                .map(|(_, b, len)| BufferView::new(b, 0, *len))
        };
        let grad_views = view(super::plan::Wrt::Input).map(|input| {
            let mut g = GradViews::new(input);
            g.target = view(super::plan::Wrt::Target);
            g.positive = view(super::plan::Wrt::Positive);
            g.negative = view(super::plan::Wrt::Negative);
            g
        });
        let mut encoder = self.encoder();
        let start = Instant::now();
        ev.record(
            &mut encoder,
            inputs,
            BufferView::whole(output),
            upstream.map(|u| BufferView::new(u, 0, upstream_len)),
            grad_views.as_ref(),
            timer.map(Timer::writes),
        )?;
        let (_, ms) = self.read_timed(encoder, output, 1, timer)?;
        Ok(ms.unwrap_or_else(|| start.elapsed().as_secs_f64() * 1e3))
    }

    /// Times the variants that can run this call, keeps the fastest for its
    /// key (see [`TuneCache`] and [`crate::Variant`]) and returns it: later
    /// evaluators of calls in its bucket (powers of two of rows and row
    /// length) run it without timing, in this process and, through the cache
    /// file, in later ones. The call is validated as [`Context::evaluate`]
    /// validates it and timed on its own data, whatever its size. A key that
    /// already has a choice returns it untimed; a variant forced for the
    /// family returns it (once it is known to run the call), and an
    /// [`untuned`](Context::untuned) context its best guess.
    pub fn tune(&self, loss: &Loss, reduction: Reduction, inputs: &Inputs<'_>) -> Result<Variant> {
        self.tune_call(loss, reduction, inputs, false)
    }

    /// [`Context::tune`] for the fused value-and-gradient call
    /// ([`Context::evaluate_with_grad`], [`Context::grad_evaluator`]).
    pub fn tune_with_grad(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &Inputs<'_>,
    ) -> Result<Variant> {
        self.tune_call(loss, reduction, inputs, true)
    }

    fn tune_call(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &Inputs<'_>,
        grad: bool,
    ) -> Result<Variant> {
        let plan = plan(loss, reduction, inputs)?;
        let dtype = inputs.input.dtype();
        self.decide(loss, reduction, &plan, dtype, grad, Timing::IfNew, || {
            Ok(Pattern::upload(self, loss, inputs, &plan))
        })
    }

    /// The variants this context can run for the call, its family's best
    /// guess first (only the forced one where one is forced for the family).
    pub fn variants(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &Inputs<'_>,
    ) -> Result<Vec<Variant>> {
        let plan = plan(loss, reduction, inputs)?;
        let (eligible, forced) = self.candidates(loss, &plan)?;
        Ok(forced.map_or(eligible, |v| vec![v]))
    }

    /// The file the tuner keeps its choices in, if any (see [`TuneCache`]).
    pub fn tune_cache_path(&self) -> Option<&Path> {
        self.tuner.path()
    }
}

fn plan_input_len(plan: &Plan<'_>) -> usize {
    let (rows, len) = variant::extent(&plan.geometry);
    rows.saturating_mul(len)
}

/// Buffers of a call's shapes for timing: the caller's own data
/// (`Context::tune`), or values the tuner makes up (an evaluator's build,
/// whose buffers it may not read: only their shapes are known to be right).
struct Pattern {
    /// (tensor, shape, values, dtype): made-up values are written on
    /// `allocate`.
    tensors: Vec<(TensorName, Vec<usize>, Fill, DType)>,
    buffers: std::sync::OnceLock<Vec<wgpu::Buffer>>,
    class_target: bool,
    /// Values in all the tensors.
    values: usize,
}

enum Fill {
    Uploaded(wgpu::Buffer),
    /// Floats in [0.05, 0.95), offset per tensor: valid probabilities,
    /// variances and weights, rows that differ.
    Floats(usize),
    /// Class indices below this many classes.
    Classes(usize),
    /// Labels of cosine_embedding: +1 and -1 in turn.
    Signs,
}

impl Pattern {
    fn new(plan: &Plan<'_>, inputs: &DeviceInputs<'_>) -> Pattern {
        let classes = match &plan.geometry {
            Geometry::Rows(r) => r.classes,
            Geometry::Dice(d) => d.classes,
            Geometry::Point(_) | Geometry::Pairs(_) => 1,
        };
        let mut tensors = Vec::new();
        for (k, name) in TensorName::ALL.into_iter().enumerate() {
            let Some(t) = inputs.get(name) else { continue };
            let fill = match name {
                TensorName::Target if inputs.class_target => Fill::Classes(classes.max(1)),
                TensorName::Labels => Fill::Signs,
                _ => Fill::Floats(k),
            };
            tensors.push((name, t.shape.to_vec(), fill, t.dtype));
        }
        Pattern::of(tensors, inputs.class_target)
    }

    fn upload(ctx: &Context, loss: &Loss, inputs: &Inputs<'_>, plan: &Plan<'_>) -> Pattern {
        let uploads = ctx.upload_inputs(loss, inputs, plan);
        let device = uploads.device_inputs();
        let class_target = device.class_target;
        let mut tensors = Vec::new();
        for name in TensorName::ALL {
            if let Some(t) = device.get(name) {
                tensors.push((
                    name,
                    t.shape.to_vec(),
                    Fill::Uploaded(t.view.buffer.clone()),
                    t.dtype,
                ));
            }
        }
        Pattern::of(tensors, class_target)
    }

    fn of(tensors: Vec<(TensorName, Vec<usize>, Fill, DType)>, class_target: bool) -> Pattern {
        let values = tensors
            .iter()
            .map(|(_, s, _, _)| s.iter().product::<usize>())
            .sum();
        Pattern {
            tensors,
            buffers: Default::default(),
            class_target,
            values,
        }
    }

    /// Makes and fills the buffers (once).
    fn allocate(&self, ctx: &Context) {
        self.buffers.get_or_init(|| {
            self.tensors
                .iter()
                .map(|(name, shape, fill, dtype)| {
                    let len: usize = shape.iter().product();
                    match fill {
                        Fill::Uploaded(b) => b.clone(),
                        _ => ctx.filled(name.name(), len, fill, *dtype),
                    }
                })
                .collect()
        });
    }

    fn inputs(&self) -> DeviceInputs<'_> {
        let buffers = self.buffers.get().expect("allocated before timing");
        let tensor = |i: usize| {
            let (_, shape, _, dtype) = &self.tensors[i];
            DeviceTensor::new(
                BufferView::new(&buffers[i], 0, shape.iter().product()),
                shape,
            )
            .with_dtype(*dtype)
        };
        let mut d = DeviceInputs::new(tensor(0));
        for (i, (name, _, _, _)) in self.tensors.iter().enumerate().skip(1) {
            d = d.with(*name, tensor(i));
        }
        d.class_target = self.class_target;
        d
    }
}

/// Values written per `write_buffer` when filling a buffer: the pattern
/// repeats with this period.
const FILL_CHUNK: usize = 1 << 20;

impl Context {
    /// A storage buffer of `len` values written with `fill`'s pattern, as
    /// `dtype` values (class indices: i32).
    fn filled(&self, label: &str, len: usize, fill: &Fill, dtype: DType) -> wgpu::Buffer {
        let buffer = self.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(4) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // One more value than a chunk: halves are written in whole words.
        let chunk = len.min(FILL_CHUNK);
        let floats = |v: Vec<f32>| super::narrow(&v, dtype);
        let (bytes, size): (Vec<u8>, usize) = match fill {
            Fill::Classes(classes) => {
                let v: Vec<i32> = (0..=chunk).map(|k| (k % classes) as i32).collect();
                (bytemuck::cast_slice(&v).to_vec(), 4)
            }
            Fill::Signs => {
                let v = (0..=chunk).map(|k| if k % 2 == 0 { 1.0 } else { -1.0 });
                (floats(v.collect()), dtype.size())
            }
            Fill::Floats(phase) => {
                let v = (0..=chunk).map(|k| {
                    let u = ((k + 7919 * phase) as f64 * 0.618_033_988_749_895).fract();
                    (0.05 + 0.9 * u) as f32
                });
                (floats(v.collect()), dtype.size())
            }
            Fill::Uploaded(_) => (vec![], 4),
        };
        let mut at = 0;
        while at < len {
            let n = chunk.min(len - at);
            let end = (size * n).next_multiple_of(4);
            self.queue
                .write_buffer(&buffer, (size * at) as u64, &bytes[..end]);
            at += n;
        }
        buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rows: u32, variant: &str, candidates: &[&str]) -> Entry {
        Entry {
            key: Key {
                adapter: "a".into(),
                driver: "d".into(),
                backend: "Vulkan".into(),
                family: "pairs".into(),
                loss: "cosine_embedding".into(),
                dtype: "f32".into(),
                rows_log2: rows,
                row_len_log2: 8,
                grad: false,
            },
            candidates: candidates.iter().map(|s| s.to_string()).collect(),
            variant: variant.into(),
            ms: vec![1.0; candidates.len()],
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wgpu-loss-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_file_round_trips_and_is_replaced_whole() {
        let dir = temp_dir("tune-file");
        let path = dir.join("deeper").join("tune.json");
        let mut entries = HashMap::new();
        for rows in [3, 12] {
            let e = entry(rows, "pair-workgroup", &["pair-workgroup", "pair-thread"]);
            entries.insert(e.key.clone(), e);
        }
        save(&path, &entries).unwrap();
        let back = load(&path);
        assert_eq!(back.len(), 2);
        for (k, e) in &entries {
            assert_eq!(back[k].variant, e.variant);
            assert_eq!(back[k].candidates, e.candidates);
        }
        // Only the file is left: the temporary one was renamed over it.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["tune.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreadable_files_hold_nothing() {
        let dir = temp_dir("tune-bad");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tune.json");
        assert!(load(&path).is_empty(), "a missing file");
        for text in [
            "{not json",
            "{\"version\": 1}",
            "[]",
            "{\"version\": 99, \"entries\": []}",
        ] {
            std::fs::write(&path, text).unwrap();
            assert!(load(&path).is_empty(), "{text}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn entries_hold_only_for_the_candidates_they_were_timed_among() {
        let all = ["pair-thread", "pair-workgroup"].map(|n| Variant::from_name(n).unwrap());
        let e = entry(3, "pair-workgroup", &["pair-workgroup", "pair-thread"]);
        assert_eq!(still_valid(&e, &all), Some(all[1]));
        assert_eq!(still_valid(&e, &all[..1]), None, "a candidate gone");
        let more = ["pair-thread", "pair-workgroup", "pair-packed"]
            .map(|n| Variant::from_name(n).unwrap());
        assert_eq!(still_valid(&e, &more), None, "a candidate added");
        let e = entry(3, "pair-nowhere", &["pair-workgroup", "pair-thread"]);
        assert_eq!(still_valid(&e, &all), None, "an unknown variant");
    }

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(log2_bucket(0), 0);
        assert_eq!(log2_bucket(1), 0);
        assert_eq!(log2_bucket(2), 1);
        assert_eq!(log2_bucket(3), 2);
        assert_eq!(log2_bucket(1000), 10);
        assert_eq!(log2_bucket(1024), 10);
        assert_eq!(log2_bucket(1025), 11);
    }

    #[test]
    fn the_cache_location() {
        assert_eq!(TuneCache::Off.path(), None);
        let p = PathBuf::from("/tmp/x.json");
        assert_eq!(TuneCache::At(p.clone()).path(), Some(p));
    }
}
