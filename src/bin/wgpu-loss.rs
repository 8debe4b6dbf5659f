//! `wgpu-loss`: evaluates a loss on `.npy` files on the GPU and on the float64
//! CPU reference. Only parsing, `.npy` I/O and printing live here; the losses
//! are the library's.

#[path = "wgpu-loss/streamed.rs"]
mod streamed;

use std::cell::OnceCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value as JsonValue};
use wgpu_loss::cli::bench::{self, Bench};
use wgpu_loss::cli::npy::{self, Array, Data, NpyError};
use wgpu_loss::cli::synthetic;
use wgpu_loss::{
    cpu, Context, Evaluation, Inputs, Loss, Param, Reduction, Rows, Target, Tensor, TensorName,
    Upstream, Value, CATALOG,
};

#[derive(Parser)]
#[command(
    name = "wgpu-loss",
    version,
    about = "Deep-learning losses on the GPU through wgpu, checked against a float64 CPU reference"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate LOSS on .npy files, on the GPU and on the CPU reference.
    Eval(Box<EvalArgs>),
    /// Evaluate a few losses on seeded random batches and compare with the CPU reference.
    Demo {
        /// Keep the generated .npy files in DIR (default: a temporary directory, removed afterwards).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// List the adapters wgpu finds (WGPU_ADAPTER_NAME picks one by name).
    Adapters,
    /// Time each loss against a copy kernel's bandwidth over the same bytes.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Comma-separated losses [all].
    #[arg(long, value_name = "NAME,..", value_delimiter = ',')]
    loss: Vec<String>,
    /// Comma-separated input sizes in elements, as numbers or powers like 2^20
    /// [2^12, 2^14, .., 2^26, as far as the adapter allows].
    #[arg(long, value_name = "N,..", value_delimiter = ',')]
    sizes: Vec<String>,
    /// none, mean, sum or batchmean.
    #[arg(long, default_value = "mean")]
    reduction: String,
    /// Comma-separated calls: forward (the value), fused (the value and every gradient,
    /// where the GPU has them) [forward,fused].
    #[arg(long, value_name = "CALL,..", value_delimiter = ',')]
    calls: Vec<String>,
    /// Timed runs at least, after one warm-up.
    #[arg(long, default_value_t = 3, value_name = "N")]
    min_runs: usize,
    /// Timed runs at most.
    #[arg(long, default_value_t = 20, value_name = "N")]
    max_runs: usize,
    /// Repeat until this many seconds have passed (and min-runs ran).
    #[arg(long, default_value_t = 0.3, value_name = "S")]
    seconds: f64,
    /// Print one JSON record per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Draw GB/s against bytes per call, for each loss and the copy kernel, as SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

#[derive(Args)]
struct EvalArgs {
    /// The loss, one of: mse, l1, huber, smooth_l1, log_cosh, quantile, bce, bce_with_logits,
    /// sigmoid_focal, kl_div, poisson_nll, gaussian_nll, cross_entropy, nll, softmax_focal,
    /// cosine_embedding, triplet_margin, dice.
    loss: String,
    /// The prediction (the anchor for triplet_margin, x1 for cosine_embedding).
    #[arg(long, value_name = "X.npy")]
    input: PathBuf,
    /// The target: floats, or int class indices (x2 for cosine_embedding).
    #[arg(long, value_name = "Y.npy")]
    target: Option<PathBuf>,
    /// Element weights, broadcast (mse, l1, huber, bce, bce_with_logits) or one per class (cross_entropy, nll, softmax_focal).
    #[arg(long, value_name = "W.npy")]
    weight: Option<PathBuf>,
    /// bce_with_logits: weight of the positive term, broadcast over trailing dims.
    #[arg(long, value_name = "P.npy")]
    pos_weight: Option<PathBuf>,
    /// ±1 labels for cosine_embedding.
    #[arg(long, value_name = "L.npy")]
    labels: Option<PathBuf>,
    /// triplet_margin: the positive examples.
    #[arg(long, value_name = "P.npy")]
    positive: Option<PathBuf>,
    /// triplet_margin: the negative examples.
    #[arg(long, value_name = "N.npy")]
    negative: Option<PathBuf>,
    /// gaussian_nll: the variance, the input's shape or it with the last dim 1 or left out.
    #[arg(long, value_name = "V.npy")]
    var: Option<PathBuf>,
    /// none, mean, sum or batchmean (kl_div).
    #[arg(long, default_value = "mean")]
    reduction: String,
    #[command(flatten)]
    params: ParamArgs,
    /// Write the `none` result as a float32 .npy in PyTorch's output shape.
    #[arg(long, value_name = "OUT.npy")]
    out: Option<PathBuf>,
    /// Write d(loss)/d(input) as a float32 .npy in the input's shape (for `none`, the gradient
    /// of the items' sum), from the fused value-and-gradient call.
    #[arg(long, value_name = "G.npy")]
    grad_out: Option<PathBuf>,
    /// cosine_embedding: write d(loss)/d(target), x2's gradient.
    #[arg(long, value_name = "G.npy")]
    grad_target: Option<PathBuf>,
    /// triplet_margin: write d(loss)/d(positive).
    #[arg(long, value_name = "G.npy")]
    grad_positive: Option<PathBuf>,
    /// triplet_margin: write d(loss)/d(negative).
    #[arg(long, value_name = "G.npy")]
    grad_negative: Option<PathBuf>,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    json: bool,
    /// Files holding more than this many MiB in all are memory-mapped and streamed through the
    /// GPU in chunks that keep its buffers within the budget.
    #[arg(long, value_name = "MIB", default_value_t = 256.0)]
    budget_mb: f64,
    /// `one`: the best adapter (or WGPU_ADAPTER_NAME's); `all`: split the batch across every
    /// adapter `wgpu-loss adapters` lists, one share each, and merge their partials.
    #[arg(long, value_name = "one|all", default_value = "one", value_parser = ["one", "all"])]
    adapters: String,
}

/// A failure and its exit code: 2 for usage and input errors, 1 for the GPU.
enum Fail {
    Usage(String),
    Gpu(String),
}

impl From<wgpu_loss::Error> for Fail {
    fn from(e: wgpu_loss::Error) -> Self {
        use wgpu_loss::Error::*;
        match e {
            NoAdapter(_) | Device(_) | Gpu { .. } | DeviceLost(_) | OutOfMemory(_) => {
                Fail::Gpu(e.to_string())
            }
            _ => Fail::Usage(e.to_string()),
        }
    }
}

impl From<NpyError> for Fail {
    fn from(e: NpyError) -> Self {
        Fail::Usage(e.to_string())
    }
}

/// Writes a line to stdout; a closed pipe is not worth a panic.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(
                e.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::from(e.exit_code() as u8);
            }
            // clap's message is the first paragraph; usage and tips follow.
            let text = e.render().to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = message.join(" ");
            let message = message.trim_start_matches("error: ");
            let _ = writeln!(
                std::io::stderr(),
                "error: {message} (see `wgpu-loss --help`)"
            );
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Eval(args) => eval(&args),
        Command::Demo { dir } => demo(dir),
        Command::Adapters => adapters(),
        Command::Bench(args) => bench(&args),
    };
    match result {
        Ok(code) => code,
        Err(fail) => {
            let (code, msg) = match fail {
                Fail::Usage(m) => (2, m),
                Fail::Gpu(m) => (1, m),
            };
            let _ = writeln!(std::io::stderr(), "error: {msg}");
            ExitCode::from(code)
        }
    }
}

/// The `.npy` files of one evaluation, by role.
#[derive(Default)]
struct Files {
    input: PathBuf,
    target: Option<PathBuf>,
    weight: Option<PathBuf>,
    pos_weight: Option<PathBuf>,
    labels: Option<PathBuf>,
    positive: Option<PathBuf>,
    negative: Option<PathBuf>,
    var: Option<PathBuf>,
}

/// A float tensor read from a file.
struct Owned {
    data: Vec<f32>,
    shape: Vec<usize>,
}

impl Owned {
    fn tensor(&self) -> Tensor<'_> {
        Tensor::new(&self.data, &self.shape)
    }
}

enum OwnedTarget {
    Float(Owned),
    Class(Vec<i64>, Vec<usize>),
}

fn floats(a: Array) -> Owned {
    let shape = a.shape.clone();
    Owned {
        data: a.into_f32(),
        shape,
    }
}

/// Reads the file given to `--flag`; messages name both.
fn read(flag: &str, path: &Path) -> Result<Array, Fail> {
    npy::read(path).map_err(|e| Fail::Usage(format!("--{flag}: {e}")))
}

fn read_floats(flag: &str, path: &Option<PathBuf>) -> Result<Option<Owned>, Fail> {
    Ok(match path {
        Some(p) => Some(floats(read(flag, p)?)),
        None => None,
    })
}

/// The tensors of one evaluation, read from their files.
struct Loaded {
    input: Owned,
    target: Option<OwnedTarget>,
    weight: Option<Owned>,
    pos_weight: Option<Owned>,
    labels: Option<Owned>,
    positive: Option<Owned>,
    negative: Option<Owned>,
    var: Option<Owned>,
}

impl Loaded {
    fn inputs(&self) -> Inputs<'_> {
        Inputs {
            input: self.input.tensor(),
            target: self.target.as_ref().map(|t| match t {
                OwnedTarget::Float(f) => Target::Float(f.tensor()),
                OwnedTarget::Class(data, shape) => Target::Class { data, shape },
            }),
            weight: self.weight.as_ref().map(Owned::tensor),
            pos_weight: self.pos_weight.as_ref().map(Owned::tensor),
            labels: self.labels.as_ref().map(Owned::tensor),
            positive: self.positive.as_ref().map(Owned::tensor),
            negative: self.negative.as_ref().map(Owned::tensor),
            var: self.var.as_ref().map(Owned::tensor),
        }
    }
}

fn load(loss: &Loss, files: &Files) -> Result<Loaded, Fail> {
    let input = floats(read("input", &files.input)?);
    let target = match &files.target {
        None => None,
        Some(p) => {
            let a = read("target", p)?;
            Some(match a.data {
                Data::I64(v) if loss.takes_classes() => OwnedTarget::Class(v, a.shape),
                _ => OwnedTarget::Float(floats(a)),
            })
        }
    };
    Ok(Loaded {
        input,
        target,
        weight: read_floats("weight", &files.weight)?,
        pos_weight: read_floats("pos-weight", &files.pos_weight)?,
        labels: read_floats("labels", &files.labels)?,
        positive: read_floats("positive", &files.positive)?,
        negative: read_floats("negative", &files.negative)?,
        var: read_floats("var", &files.var)?,
    })
}

/// What one evaluation gives.
struct Outcome {
    gpu: Evaluation,
    cpu: cpu::Reference,
    n: usize,
    gpu_ms: f64,
    adapter: wgpu::AdapterInfo,
    adapter_name: String,
    /// Items of the `none` result (per-item losses behind a reduced value).
    items: usize,
    /// The chunk count of a streamed evaluation.
    chunks: Option<usize>,
    /// The gradients, where the call asked for them.
    grads: Option<GradOutcome>,
}

/// The gradients of one evaluation, with their shapes and the largest
/// difference from the CPU reference's.
struct GradOutcome {
    gpu: wgpu_loss::Gradients,
    shapes: [Vec<usize>; 4],
    max_abs_diff: f64,
}

impl GradOutcome {
    /// The GPU gradient of `wrt` and its shape.
    fn get(&self, wrt: Grad) -> Option<(&[f32], &[usize])> {
        let data = match wrt {
            Grad::Input => Some(&self.gpu.input),
            Grad::Target => self.gpu.target.as_ref(),
            Grad::Positive => self.gpu.positive.as_ref(),
            Grad::Negative => self.gpu.negative.as_ref(),
        };
        data.map(|d| (d.as_slice(), self.shapes[wrt as usize].as_slice()))
    }
}

/// A tensor whose gradient `eval` can write.
#[derive(Clone, Copy, PartialEq)]
enum Grad {
    Input,
    Target,
    Positive,
    Negative,
}

impl Grad {
    fn flag(self) -> &'static str {
        match self {
            Grad::Input => "grad-out",
            Grad::Target => "grad-target",
            Grad::Positive => "grad-positive",
            Grad::Negative => "grad-negative",
        }
    }

    /// The JSON key of the written path.
    fn key(self) -> &'static str {
        match self {
            Grad::Input => "grad_out",
            Grad::Target => "grad_target",
            Grad::Positive => "grad_positive",
            Grad::Negative => "grad_negative",
        }
    }

    /// The losses the flag is for.
    fn owner(self) -> &'static str {
        match self {
            Grad::Input => "every loss",
            Grad::Target => "cosine_embedding's x2",
            Grad::Positive | Grad::Negative => "triplet_margin",
        }
    }

    /// Whether `loss` has a gradient for this tensor (its catalog entry says).
    fn applies(self, loss: &Loss) -> bool {
        let tensor = match self {
            Grad::Input => TensorName::Input,
            Grad::Target => TensorName::Target,
            Grad::Positive => TensorName::Positive,
            Grad::Negative => TensorName::Negative,
        };
        loss.entry().grads.contains(&tensor)
    }
}

/// The largest |gpu − cpu| over every gradient element; 0 where both are
/// NaN or the same infinity, NaN where only one is NaN.
fn max_abs_diff(gpu: &wgpu_loss::Gradients, cpu: &cpu::ReferenceGradients) -> f64 {
    let pairs = [
        (Some(&gpu.input), Some(&cpu.input)),
        (gpu.target.as_ref(), cpu.target.as_ref()),
        (gpu.positive.as_ref(), cpu.positive.as_ref()),
        (gpu.negative.as_ref(), cpu.negative.as_ref()),
    ];
    let mut worst = 0.0f64;
    for (g, c) in pairs {
        let (Some(g), Some(c)) = (g, c) else { continue };
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

/// Reads the files, validates and evaluates on the CPU reference, then on the
/// GPU (the context is opened only once the input is known to be valid).
/// With `grad`, the fused value-and-gradient call (upstream 1: for `none`,
/// the gradient of the items' sum) and its CPU twin.
fn run(
    ctx: &OnceCell<Context>,
    loss: &Loss,
    reduction: Reduction,
    files: &Files,
    grad: bool,
) -> Result<Outcome, Fail> {
    let loaded = load(loss, files)?;
    let inputs = loaded.inputs();
    let (cpu, cpu_grads) = if grad {
        let (r, g) = cpu::gradient(loss, reduction, &inputs, Upstream::Scalar(1.0))?;
        (r, Some(g))
    } else {
        (cpu::evaluate(loss, reduction, &inputs)?, None)
    };
    let ctx = match ctx.get() {
        Some(ctx) => ctx,
        None => {
            let opened = Context::new()?;
            ctx.get_or_init(|| opened)
        }
    };
    let start = Instant::now();
    let (gpu, grads) = match cpu_grads {
        Some(cpu_grads) => {
            let (gpu, g) =
                ctx.evaluate_with_grad(loss, reduction, &inputs, Upstream::Scalar(1.0))?;
            let shape = |t: Option<&Owned>| t.map(|t| t.shape.clone()).unwrap_or_default();
            let target = match &loaded.target {
                Some(OwnedTarget::Float(t)) => t.shape.clone(),
                Some(OwnedTarget::Class(_, s)) => s.clone(),
                None => vec![],
            };
            let grads = GradOutcome {
                max_abs_diff: max_abs_diff(&g, &cpu_grads),
                gpu: g,
                shapes: [
                    loaded.input.shape.clone(),
                    target,
                    shape(loaded.positive.as_ref()),
                    shape(loaded.negative.as_ref()),
                ],
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
        n: loaded.input.data.len(),
        gpu_ms,
        adapter: ctx.adapter_info().clone(),
        adapter_name: ctx.adapter_name(),
    })
}

/// `run` with the batch split across every adapter (`--adapters all`); also
/// gives the adapters that evaluated a share, in batch order.
fn run_split(
    loss: &Loss,
    reduction: Reduction,
    files: &Files,
) -> Result<(Outcome, Vec<String>), Fail> {
    let loaded = load(loss, files)?;
    let inputs = loaded.inputs();
    let cpu = cpu::evaluate(loss, reduction, &inputs)?;
    let contexts = Context::all()?;
    let start = Instant::now();
    let split = wgpu_loss::split::evaluate(&contexts, loss, reduction, &inputs)?;
    let gpu_ms = start.elapsed().as_secs_f64() * 1e3;
    let names: Vec<String> = split.shares.iter().map(|s| s.adapter.clone()).collect();
    let outcome = Outcome {
        items: cpu.items.len(),
        chunks: None,
        gpu: split.evaluation,
        cpu,
        n: loaded.input.data.len(),
        gpu_ms,
        adapter: contexts[0].adapter_info().clone(),
        adapter_name: names.join(" + "),
        grads: None,
    };
    Ok((outcome, names))
}

/// The loss parameters given on the command line. Which `--<flag>`s exist,
/// what they take and their help come from the catalog (`wgpu_loss::CATALOG`):
/// a parameter shared by several losses is one flag.
#[derive(Clone, Debug, Default)]
struct ParamArgs {
    /// (parameter name, its text; none for a bare boolean flag), in the
    /// catalog's order.
    given: Vec<(&'static str, Option<String>)>,
}

/// Each parameter name once, with the losses that take it.
fn catalog_params() -> Vec<(&'static Param, Value, Vec<&'static str>)> {
    let mut out: Vec<(&'static Param, Value, Vec<&'static str>)> = vec![];
    for entry in CATALOG {
        for (param, value) in (entry.default)().params() {
            match out.iter_mut().find(|(p, _, _)| p.name == param.name) {
                Some((_, _, losses)) => losses.push(entry.name),
                None => out.push((param, value, vec![entry.name])),
            }
        }
    }
    out
}

impl clap::FromArgMatches for ParamArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut given = vec![];
        for (param, _, _) in catalog_params() {
            if m.contains_id(param.name)
                && m.value_source(param.name) == Some(clap::parser::ValueSource::CommandLine)
            {
                given.push((param.name, m.get_one::<String>(param.name).cloned()));
            }
        }
        Ok(ParamArgs { given })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for ParamArgs {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for (param, value, losses) in catalog_params() {
            let flag: &'static str = Box::leak(param.flag().into_boxed_str());
            let help = if losses.len() == 1 {
                format!("{}: {}", losses[0], param.help)
            } else {
                format!("{} ({})", param.help, losses.join(", "))
            };
            let mut arg = clap::Arg::new(param.name)
                .long(flag)
                .help(help)
                .allow_negative_numbers(true);
            arg = match value {
                // `--swap` alone is true; `--from-logits false` sets it.
                Value::Bool(_) => arg
                    .num_args(0..=1)
                    .value_name("true|false")
                    .default_missing_value(None::<&str>),
                Value::List(_) => arg.value_name("F,F,..").allow_hyphen_values(true),
                Value::Mode(_) => arg.value_name("MODE"),
                Value::Int(_) | Value::OptInt(_) => arg.value_name("I"),
                Value::F32(_) => arg.value_name("F"),
            };
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// `Loss::from_name`'s defaults overridden by the flags given.
fn build_loss(a: &EvalArgs) -> Result<Loss, Fail> {
    let mut loss = Loss::from_name(&a.loss).ok_or_else(|| {
        Fail::Usage(format!(
            "unknown loss `{}` (one of: {})",
            a.loss,
            Loss::names().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let takes = loss.entry().params;
    for (name, text) in &a.params.given {
        let flag = name.replace('_', "-");
        if !takes.iter().any(|p| p.name == *name) {
            return Err(Fail::Usage(format!(
                "--{flag} does not apply to {}",
                loss.name()
            )));
        }
        loss.set_text(name, text.as_deref())
            .map_err(|e| Fail::Usage(format!("--{flag}: {e}")))?;
    }
    Ok(loss)
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

/// The loss and reduction the flags ask for, validated.
fn loss_and_reduction(a: &EvalArgs) -> Result<(Loss, Reduction), Fail> {
    let loss = build_loss(a)?;
    let reduction = Reduction::from_name(&a.reduction).ok_or_else(|| {
        Fail::Usage(format!(
            "unknown reduction `{}` (use none, mean, sum or batchmean)",
            a.reduction
        ))
    })?;
    loss.validate(reduction)?;
    Ok((loss, reduction))
}

/// Everything `eval` does before it opens a GPU: parsing, validation, the
/// `.npy` files and the CPU reference. tests/fuzz.rs includes this file and
/// drives it in-process; the message is what the CLI would print.
#[allow(dead_code)]
pub(crate) fn check_args(args: &[String]) -> Result<(), String> {
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    let Command::Eval(a) = cli.command else {
        return Ok(());
    };
    let fail = |f: Fail| match f {
        Fail::Usage(m) | Fail::Gpu(m) => m,
    };
    let (loss, reduction) = loss_and_reduction(&a).map_err(fail)?;
    let grads = grad_paths(&a, &loss).map_err(fail)?;
    let files = Files {
        input: a.input.clone(),
        target: a.target.clone(),
        weight: a.weight.clone(),
        pos_weight: a.pos_weight.clone(),
        labels: a.labels.clone(),
        positive: a.positive.clone(),
        negative: a.negative.clone(),
        var: a.var.clone(),
    };
    let loaded = load(&loss, &files).map_err(fail)?;
    if grads.is_empty() {
        cpu::evaluate(&loss, reduction, &loaded.inputs()).map(|_| ())
    } else {
        cpu::gradient(&loss, reduction, &loaded.inputs(), Upstream::Scalar(1.0)).map(|_| ())
    }
    .map_err(|e| e.to_string())
}

/// Fails unless the directory `path` would be written in exists.
fn check_dir(flag: &str, path: &Path) -> Result<(), Fail> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Fail::Usage(format!(
            "--{flag} {}: directory {} does not exist",
            path.display(),
            dir.display()
        )))
    }
}

/// The gradients asked for and where they go, checked against the loss's
/// inputs and the file system.
fn grad_paths(a: &EvalArgs, loss: &Loss) -> Result<Vec<(Grad, PathBuf)>, Fail> {
    let asked = [
        (Grad::Input, &a.grad_out),
        (Grad::Target, &a.grad_target),
        (Grad::Positive, &a.grad_positive),
        (Grad::Negative, &a.grad_negative),
    ];
    let mut out = vec![];
    for (wrt, path) in asked {
        let Some(path) = path else { continue };
        if !wrt.applies(loss) {
            return Err(Fail::Usage(format!(
                "--{} does not apply to {} (it is for {})",
                wrt.flag(),
                loss.name(),
                wrt.owner()
            )));
        }
        check_dir(wrt.flag(), path)?;
        out.push((wrt, path.clone()));
    }
    Ok(out)
}

fn eval(a: &EvalArgs) -> Result<ExitCode, Fail> {
    let (loss, reduction) = loss_and_reduction(a)?;
    if let Some(out) = &a.out {
        if reduction != Reduction::None {
            return Err(Fail::Usage(format!(
                "--out needs --reduction none (got {})",
                reduction.name()
            )));
        }
        check_dir("out", out)?;
    }
    let grads = grad_paths(a, &loss)?;
    let files = Files {
        input: a.input.clone(),
        target: a.target.clone(),
        weight: a.weight.clone(),
        pos_weight: a.pos_weight.clone(),
        labels: a.labels.clone(),
        positive: a.positive.clone(),
        negative: a.negative.clone(),
        var: a.var.clone(),
    };
    if !(a.budget_mb > 0.0) {
        return Err(Fail::Usage(format!(
            "--budget-mb must be > 0, got {}",
            a.budget_mb
        )));
    }
    let budget = (a.budget_mb * (1u64 << 20) as f64) as u64;
    let ctx = OnceCell::new();
    let mut split = None;
    let o = if a.adapters == "all" {
        if let Some((wrt, _)) = grads.first() {
            return Err(Fail::Usage(format!(
                "--{}: gradients are computed on one adapter; drop --adapters all",
                wrt.flag()
            )));
        }
        if streamed::bytes(&files) > budget {
            return Err(Fail::Usage(format!(
                "--adapters all reads the files whole, and they exceed --budget-mb {}: raise it, or stream them on one adapter",
                a.budget_mb
            )));
        }
        let (o, names) = run_split(&loss, reduction, &files)?;
        split = Some(names);
        o
    } else if streamed::bytes(&files) > budget {
        if let Some((wrt, _)) = grads.first() {
            return Err(Fail::Usage(format!(
                "--{}: gradients are not streamed, and the inputs exceed --budget-mb {}; raise it to evaluate them in one call",
                wrt.flag(),
                a.budget_mb
            )));
        }
        streamed::run(&ctx, &loss, reduction, &files, budget)?
    } else {
        run(&ctx, &loss, reduction, &files, !grads.is_empty())?
    };
    if let (Some(out), Some(items)) = (&a.out, &o.gpu.items) {
        npy::write_f32(out, &o.gpu.items_shape, items)?;
    }
    if let Some(g) = &o.grads {
        for (wrt, path) in &grads {
            let (data, shape) = g.get(*wrt).ok_or_else(|| {
                Fail::Gpu(format!("--{}: the GPU gave no such gradient", wrt.flag()))
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
            "params": params(&loss),
            "gpu_ms": o.gpu_ms,
            "streamed": o.chunks.is_some(),
            "adapters": split.unwrap_or_else(|| vec![o.adapter_name.clone()]),
        });
        if let Some(k) = o.chunks {
            doc["chunks"] = k.into();
        }
        if let Some(out) = &a.out {
            doc["out"] = out.display().to_string().into();
        }
        if let Some(g) = &o.grads {
            doc["grad_max_abs_diff"] = num(g.max_abs_diff);
            for (wrt, path) in &grads {
                doc[wrt.key()] = path.display().to_string().into();
            }
        }
        say(&doc.to_string());
    } else {
        let mut wrote: String = a
            .out
            .iter()
            .chain(grads.iter().map(|(_, p)| p))
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

fn adapters() -> Result<ExitCode, Fail> {
    let adapters = Context::adapters();
    if adapters.is_empty() {
        return Err(wgpu_loss::Error::NoAdapter(
            "wgpu found no Vulkan, Metal, DX12 or GL adapter".into(),
        )
        .into());
    }
    let wanted = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .map(|s| s.to_lowercase());
    let mut picked = false;
    for (i, adapter) in adapters.iter().enumerate() {
        let info = adapter.get_info();
        let chosen = !picked
            && wanted
                .as_ref()
                .is_none_or(|w| info.name.to_lowercase().contains(w));
        picked |= chosen;
        let driver = if info.driver.is_empty() {
            String::new()
        } else {
            format!(", driver {}", info.driver)
        };
        say(&format!(
            "{i}: {} ({:?}, {:?}{driver}){}",
            info.name,
            info.backend,
            info.device_type,
            if chosen { "  <- used" } else { "" }
        ));
    }
    if !picked {
        say("none matches WGPU_ADAPTER_NAME; set it to part of one of the names above");
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo's batch for `loss`: a realistic size (an ImageNet-sized
/// cross_entropy batch, 2^20 elements for the others).
fn demo_batch(loss: &Loss) -> synthetic::Batch {
    let n = match loss {
        Loss::Rows(Rows::CrossEntropy { .. }) => 8192 * synthetic::CLASSES,
        _ => 1 << 20,
    };
    synthetic::batch(loss, n, 20_240_601)
}

/// Writes the batch's tensors as .npy files in `dir`, named after the loss.
fn write_batch(dir: &Path, b: &synthetic::Batch) -> Result<Files, Fail> {
    let name = b.loss.name();
    let path = |role: &str| dir.join(format!("{name}_{role}.npy"));
    let floats =
        |role: &str, t: &Option<(Vec<f32>, Vec<usize>)>| -> Result<Option<PathBuf>, Fail> {
            match t {
                Some((data, shape)) => {
                    npy::write_f32(path(role), shape, data)?;
                    Ok(Some(path(role)))
                }
                None => Ok(None),
            }
        };
    let mut files = Files {
        input: path("input"),
        target: floats("target", &b.target)?,
        positive: floats("positive", &b.positive)?,
        negative: floats("negative", &b.negative)?,
        var: floats("var", &b.var)?,
        ..Files::default()
    };
    npy::write_f32(&files.input, &b.input.1, &b.input.0)?;
    if let Some((data, shape)) = &b.classes {
        npy::write_i64(path("target"), shape, data)?;
        files.target = Some(path("target"));
    }
    Ok(files)
}

/// |gpu − cpu| ≤ 1e-4·|cpu| + 1e-6; NaN agrees only with NaN.
fn agrees(gpu: f64, cpu: f64) -> bool {
    if gpu.is_nan() || cpu.is_nan() {
        return gpu.is_nan() && cpu.is_nan();
    }
    gpu == cpu || (gpu - cpu).abs() <= 1e-4 * cpu.abs() + 1e-6
}

fn demo(keep: Option<PathBuf>) -> Result<ExitCode, Fail> {
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
        let result = run(ctx, &loss, reduction, &files, false);
        attempted += 1;
        match result {
            Ok(o) => {
                evaluated += 1;
                let ok = agrees(o.gpu.value, o.cpu.value);
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
            Err(Fail::Gpu(msg) | Fail::Usage(msg)) => {
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

/// "65536", "2^16" or "1e6" as a count.
fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    if let Some((b, e)) = s.split_once('^') {
        return b.parse::<usize>().ok()?.checked_pow(e.parse().ok()?);
    }
    s.parse::<usize>().ok().or_else(|| {
        let f = s.parse::<f64>().ok()?;
        (f >= 0.0 && f.fract() == 0.0 && f < 1e15).then_some(f as usize)
    })
}

fn bench(a: &BenchArgs) -> Result<ExitCode, Fail> {
    let losses = if a.loss.is_empty() {
        Loss::names().map(|s| s.to_string()).collect()
    } else {
        a.loss.clone()
    };
    let losses = losses
        .iter()
        .map(|name| {
            Loss::from_name(name.trim()).ok_or_else(|| {
                Fail::Usage(format!(
                    "--loss: unknown loss `{name}` (one of: {})",
                    Loss::names().collect::<Vec<_>>().join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let reduction = Reduction::from_name(&a.reduction).ok_or_else(|| {
        Fail::Usage(format!(
            "unknown reduction `{}` (use none, mean, sum or batchmean)",
            a.reduction
        ))
    })?;
    let sizes = if a.sizes.is_empty() {
        bench::default_sizes()
    } else {
        a.sizes
            .iter()
            .map(|s| {
                parse_size(s)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Fail::Usage(format!("--sizes: `{s}` is not a positive count")))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    if a.seconds.is_nan() || a.seconds < 0.0 || a.min_runs == 0 || a.max_runs < a.min_runs {
        return Err(Fail::Usage(
            "need --seconds >= 0 and 1 <= --min-runs <= --max-runs".into(),
        ));
    }
    let mut fused = false;
    let mut forward = a.calls.is_empty();
    for call in &a.calls {
        match call.trim() {
            "forward" => forward = true,
            "fused" => fused = true,
            other => {
                return Err(Fail::Usage(format!(
                    "--calls: unknown call `{other}` (use forward, fused)"
                )))
            }
        }
    }
    fused |= a.calls.is_empty();
    let calls = [("forward", forward), ("fused", fused)]
        .into_iter()
        .filter(|c| c.1)
        .map(|c| c.0)
        .collect::<Vec<_>>();
    let ctx = Context::new()?;
    let mut b = Bench::new(&ctx);
    b.reduction = reduction;
    b.repeats = bench::Repeats {
        min_runs: a.min_runs,
        max_runs: a.max_runs,
        target_s: a.seconds,
    };
    let timing = if b.timestamps() {
        "GPU time from timestamp queries"
    } else {
        "no timestamp queries on this adapter: times are wall clock (submit to readback)"
    };
    let note = |line: String| {
        let _ = writeln!(std::io::stderr(), "{line}");
    };
    note(format!("adapter: {}; {timing}", ctx.adapter_name()));
    let bar = ProgressBar::with_draw_target(
        Some((losses.len() * sizes.len() * calls.len()) as u64),
        ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut records = vec![];
    for loss in &losses {
        for &size in &sizes {
            for &call in &calls {
                bar.set_message(format!("{} {call} n={size}", loss.name()));
                let outcome = if call == "fused" {
                    b.fused(loss, size)
                } else {
                    b.forward(loss, size)
                };
                bar.inc(1);
                match outcome? {
                    bench::Outcome::Done(r) => {
                        if a.json {
                            bar.suspend(|| say(&serde_json::to_string(&r).unwrap_or_default()));
                        }
                        records.push(*r);
                    }
                    bench::Outcome::Skipped(why) => bar.suspend(|| {
                        note(format!("skipped {} {call} at {size}: {why}", loss.name()))
                    }),
                }
            }
        }
    }
    bar.finish_and_clear();
    if !a.json {
        say(&format!(
            "adapter: {} ({:?}); {timing}",
            ctx.adapter_name(),
            ctx.adapter_info().device_type
        ));
        say(&format!(
            "reduction {}, inputs on the device; forward: the value; fused: the value and every gradient (upstream 1, \
             gradients left on the device); efficiency = GB/s / copy-kernel GB/s over the same bytes; \
             rt ms = blocking call on {} elements (inputs on the device), eval ms = the same from host data; \
             /fwd = fused gpu ms / forward gpu ms",
            reduction.name(),
            bench::ROUNDTRIP_N
        ));
        print!("{}", bench::table(&records));
    }
    if let Some(path) = &a.plot {
        let title = format!(
            "wgpu-loss {} ({}), {}",
            calls.join(" and "),
            reduction.name(),
            ctx.adapter_name()
        );
        bench::plot_svg(&records, path, &title).map_err(Fail::Usage)?;
        note(format!("wrote {}", path.display()));
    }
    Ok(ExitCode::SUCCESS)
}
