//! The command line of `wgpu-loss`, as clap types. The binary parses it and
//! [`super::check_args`] parses it the same way. The flags that name a
//! tensor, a gradient or a loss parameter are made from the catalog
//! ([`TensorName::ALL`], each entry's `grads` and `params`), so a tensor or
//! parameter added there gets its flag without an edit here.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::{Args, Parser, Subcommand};

use crate::{Loss, Param, TensorName, Value, CATALOG};

#[derive(Parser)]
#[command(
    name = "wgpu-loss",
    version,
    about = "Deep-learning losses on the GPU through wgpu, checked against a float64 CPU reference"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Evaluate LOSS on .npy or .safetensors files, on the GPU and on the CPU reference.
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

// The help text's "[all]" and "[forward,fused]" are defaults shown to the
// user, not links.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Args)]
pub struct BenchArgs {
    /// Comma-separated losses [all].
    #[arg(long, value_name = "NAME,..", value_delimiter = ',')]
    pub loss: Vec<String>,
    /// Comma-separated input sizes in elements, as numbers or powers like 2^20
    /// [2^12, 2^14, .., 2^26, as far as the adapter allows].
    #[arg(long, value_name = "N,..", value_delimiter = ',')]
    pub sizes: Vec<String>,
    /// none, mean, sum or batchmean.
    #[arg(long, default_value = "mean")]
    pub reduction: String,
    /// Comma-separated calls: forward (the value), fused (the value and every gradient,
    /// where the GPU has them) [forward,fused].
    #[arg(long, value_name = "CALL,..", value_delimiter = ',')]
    pub calls: Vec<String>,
    /// Timed runs at least, after one warm-up.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub min_runs: usize,
    /// Timed runs at most.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub max_runs: usize,
    /// Repeat until this many seconds have passed (and min-runs ran).
    #[arg(long, default_value_t = 0.3, value_name = "S")]
    pub seconds: f64,
    /// `tuned`: each call runs the kernel variant the tuner picks (timing the candidates first
    /// where its cache has no choice); `all`: every variant that can run it, one record each,
    /// the tuner's choice marked `chosen`.
    #[arg(long, value_name = "tuned|all", default_value = "tuned", value_parser = ["tuned", "all"])]
    pub variants: String,
    /// Comma-separated dtypes of the float inputs, each timed in turn: f32, f16, bf16 [f32].
    /// Bytes (and so GB/s and efficiency) count each input in its dtype.
    #[arg(long, value_name = "DTYPE,..", value_delimiter = ',')]
    pub dtype: Vec<String>,
    /// Print one JSON record per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Draw GB/s against bytes per call, for each loss and the copy kernel, as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

#[derive(Args)]
pub struct EvalArgs {
    /// The loss, one of: mse, l1, huber, smooth_l1, log_cosh, quantile, bce, bce_with_logits,
    /// sigmoid_focal, kl_div, poisson_nll, gaussian_nll, cross_entropy, nll, softmax_focal,
    /// cosine_embedding, triplet_margin, dice.
    pub loss: String,
    #[command(flatten)]
    pub files: Files,
    /// none, mean, sum or batchmean (kl_div).
    #[arg(long, default_value = "mean")]
    pub reduction: String,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Write the `none` result as float32 in PyTorch's output shape: a .npy, or a .safetensors
    /// (tensor `loss`) where the path ends so.
    #[arg(long, value_name = "OUT.npy")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub grads: GradArgs,
    /// The dtype gradient files are written in: `input` (each its tensor's: f16 and bf16 rounded
    /// to nearest even from the f32 gradient, f32 for other tensors; numpy has no bf16, so a
    /// .npy of a bf16 tensor's gradient is f32) or `f32`.
    #[arg(long, value_name = "input|f32", default_value = "input", value_parser = ["input", "f32"])]
    pub grad_dtype: String,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
    /// Files holding more than this many MiB in all are memory-mapped and streamed through the
    /// GPU in chunks that keep its buffers within the budget.
    #[arg(long, value_name = "MIB", default_value_t = 256.0)]
    pub budget_mb: f64,
    /// `one`: the best adapter (or WGPU_ADAPTER_NAME's); `all`: split the batch across one
    /// adapter per device (`wgpu-loss adapters` lists them), each share weighted by the
    /// adapter's measured speed and streamed within the budget, and merge their partials;
    /// `every`: across every adapter listed, each backend of a device apart.
    #[arg(long, value_name = "one|all|every", default_value = "one", value_parser = ["one", "all", "every"])]
    pub adapters: String,
    /// How the GPU's result is checked against the float64 reference: `full` (every chunk),
    /// `sample` (a seeded fraction of the chunks, for batches where float64 on the CPU is the
    /// bottleneck) or `off`. A disagreement exits 3 and writes nothing.
    #[arg(long, value_name = "full|sample|off", default_value = "full", value_parser = ["full", "sample", "off"])]
    pub reference: String,
    /// `--reference sample`: the fraction of chunks checked (at least one is).
    #[arg(long, value_name = "F", default_value_t = 0.1)]
    pub reference_fraction: f64,
    /// `--reference sample`: the seed that picks the chunks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub reference_seed: u64,
}

/// The flags of one tensor: `--<name>` with '-' for '_', and its gradient's,
/// `--grad-out` for the input's (the prediction's, the one every loss has)
/// and `--grad-<name>` for the others; with the gradient's JSON key.
struct Flags {
    tensor: String,
    grad: String,
    grad_key: String,
}

/// Built once: clap keeps its flag names as `&'static str`.
fn flags(name: TensorName) -> &'static Flags {
    static FLAGS: OnceLock<Vec<Flags>> = OnceLock::new();
    let all = FLAGS.get_or_init(|| {
        TensorName::ALL
            .iter()
            .map(|&t| {
                let tensor = t.name().replace('_', "-");
                let grad = match t {
                    TensorName::Input => "grad-out".to_string(),
                    _ => format!("grad-{tensor}"),
                };
                let grad_key = grad.replace('-', "_");
                Flags {
                    tensor,
                    grad,
                    grad_key,
                }
            })
            .collect()
    });
    let at = TensorName::ALL.iter().position(|&t| t == name);
    &all[at.expect("TensorName::ALL holds every name")]
}

/// `--<flag>` of a tensor's file, without the dashes.
pub fn tensor_flag(name: TensorName) -> &'static str {
    &flags(name).tensor
}

/// `--<flag>` of a tensor's gradient file, without the dashes.
pub fn grad_flag(name: TensorName) -> &'static str {
    &flags(name).grad
}

/// The JSON key of the path a gradient was written to (`grad_out`, ..).
pub fn grad_key(name: TensorName) -> &'static str {
    &flags(name).grad_key
}

/// The value name and help of a tensor's `--<flag>`: what the catalog cannot
/// say about its shape and meaning.
fn tensor_help(name: TensorName) -> (&'static str, &'static str) {
    match name {
        TensorName::Input => (
            "X.npy",
            "The prediction (the anchor for triplet_margin, x1 for cosine_embedding). Every \
             tensor flag takes a .npy file or FILE.safetensors:NAME (FILE.safetensors alone \
             where it holds one tensor)",
        ),
        TensorName::Target => (
            "Y.npy",
            "The target: floats, or int class indices (x2 for cosine_embedding)",
        ),
        TensorName::Weight => (
            "W.npy",
            "Element weights, broadcast (mse, l1, huber, bce, bce_with_logits) or one per class \
             (cross_entropy, nll, softmax_focal)",
        ),
        TensorName::PosWeight => (
            "P.npy",
            "bce_with_logits: weight of the positive term, broadcast over trailing dims",
        ),
        TensorName::Labels => ("L.npy", "±1 labels for cosine_embedding"),
        TensorName::Positive => ("P.npy", "triplet_margin: the positive examples"),
        TensorName::Negative => ("N.npy", "triplet_margin: the negative examples"),
        TensorName::Var => (
            "V.npy",
            "gaussian_nll: the variance, the input's shape or it with the last dim 1 or left out",
        ),
    }
}

/// The given value of the flag with id `id`, as a path.
fn path(m: &clap::ArgMatches, id: &str) -> Option<PathBuf> {
    m.try_get_one::<PathBuf>(id).ok().flatten().cloned()
}

/// The files of one evaluation, by tensor, in [`TensorName::ALL`]'s order,
/// as given (`FILE` or `FILE:NAME`, see [`super::source::locate`]);
/// `--input` is always there.
#[derive(Clone, Debug, Default)]
pub struct Files {
    pub paths: Vec<(TensorName, PathBuf)>,
}

impl Files {
    pub fn get(&self, name: TensorName) -> Option<&Path> {
        self.paths
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.as_path())
    }

    /// Bytes of data in the files, as their sizes say (a `.safetensors`
    /// file's header, the tensor's).
    pub fn bytes(&self) -> u64 {
        self.paths
            .iter()
            .map(|(_, p)| super::source::data_bytes(p))
            .sum()
    }
}

impl clap::FromArgMatches for Files {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let paths = TensorName::ALL
            .iter()
            .filter_map(|&t| path(m, t.name()).map(|p| (t, p)))
            .collect();
        Ok(Files { paths })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for Files {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for t in TensorName::ALL {
            let (value_name, help) = tensor_help(t);
            cmd = cmd.arg(
                clap::Arg::new(t.name())
                    .long(tensor_flag(t))
                    .value_name(value_name)
                    .help(help)
                    .value_parser(clap::value_parser!(PathBuf))
                    .required(t == TensorName::Input),
            );
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// The losses with a gradient for `name`, in the catalog's order.
pub fn grad_owners(name: TensorName) -> Vec<&'static str> {
    CATALOG
        .iter()
        .filter(|e| e.grads.contains(&name))
        .map(|e| e.name)
        .collect()
}

/// The gradient files asked for, by tensor, in [`TensorName::ALL`]'s order.
/// There is a flag for each tensor some loss has a gradient for; whether the
/// loss at hand has it is checked later ([`super::check`]).
#[derive(Clone, Debug, Default)]
pub struct GradArgs {
    pub paths: Vec<(TensorName, PathBuf)>,
}

impl clap::FromArgMatches for GradArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let paths = TensorName::ALL
            .iter()
            .filter_map(|&t| path(m, grad_key(t)).map(|p| (t, p)))
            .collect();
        Ok(GradArgs { paths })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for GradArgs {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for t in TensorName::ALL {
            let owners = grad_owners(t);
            if owners.is_empty() {
                continue;
            }
            let help = if owners.len() == CATALOG.len() {
                format!(
                    "Write d(loss)/d({}) in its shape (for `none`, the gradient of the items' \
                     sum), from the fused value-and-gradient call, as .npy or .safetensors \
                     (by the extension) in --grad-dtype",
                    t.name()
                )
            } else {
                format!("{}: write d(loss)/d({})", owners.join(", "), t.name())
            };
            cmd = cmd.arg(
                clap::Arg::new(grad_key(t))
                    .long(grad_flag(t))
                    .value_name("G.npy")
                    .help(help)
                    .value_parser(clap::value_parser!(PathBuf)),
            );
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// The loss parameters given on the command line. Which `--<flag>`s exist,
/// what they take and their help come from the catalog (`wgpu_loss::CATALOG`):
/// a parameter shared by several losses is one flag.
#[derive(Clone, Debug, Default)]
pub struct ParamArgs {
    /// (parameter name, its text; none for a bare boolean flag), in the
    /// catalog's order.
    pub given: Vec<(&'static str, Option<String>)>,
}

/// A parameter of the catalog, once however many losses take it.
struct CatalogParam {
    param: &'static Param,
    /// Its default in the first loss that takes it: says what it holds.
    value: Value,
    /// `--<flag>`, without the dashes.
    flag: String,
    losses: Vec<&'static str>,
}

/// Each parameter name once; built once, as clap keeps `&'static str`s.
fn catalog_params() -> &'static [CatalogParam] {
    static PARAMS: OnceLock<Vec<CatalogParam>> = OnceLock::new();
    PARAMS.get_or_init(|| {
        let mut out: Vec<CatalogParam> = vec![];
        for entry in CATALOG {
            for (param, value) in (entry.default)().params() {
                match out.iter_mut().find(|c| c.param.name == param.name) {
                    Some(c) => c.losses.push(entry.name),
                    None => out.push(CatalogParam {
                        param,
                        value,
                        flag: param.flag(),
                        losses: vec![entry.name],
                    }),
                }
            }
        }
        out
    })
}

impl clap::FromArgMatches for ParamArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut given = vec![];
        for CatalogParam { param, .. } in catalog_params() {
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
        for CatalogParam {
            param,
            value,
            flag,
            losses,
        } in catalog_params()
        {
            let help = if losses.len() == 1 {
                format!("{}: {}", losses[0], param.help)
            } else {
                format!("{} ({})", param.help, losses.join(", "))
            };
            let mut arg = clap::Arg::new(param.name)
                .long(flag.as_str())
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

/// Every loss name, for messages.
pub fn loss_names() -> String {
    Loss::names().collect::<Vec<_>>().join(", ")
}
