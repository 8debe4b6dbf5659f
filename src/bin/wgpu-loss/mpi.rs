//! `mpirun -n K wgpu-loss eval ..` (feature `mpi`): the same flags, one
//! batch across K ranks.
//!
//! Each rank maps the files and takes its share of the batch: K even parts
//! by the loss's natural unit, as `Chunks` cuts it. It opens its own adapter
//! (its local rank modulo the adapters it sees, one per device, or the one
//! `WGPU_ADAPTER_NAME` names) and streams its share in chunks within
//! `--budget-mb`, the reference checking them beside it. The ranks' partials
//! (the GPU's, and the reference's under `--reference full`) are combined
//! with one `MPI_Allreduce` of their f64 sums (`wgpu_loss::mpi::all_reduce_all`),
//! so every rank holds the whole batch's value and sums; a gradient pass
//! then scales each rank's share by them. `--out` and the gradient files are
//! written once: rank 0 makes each one, preallocated, under a temporary name,
//! every rank writes its own byte range of it, and rank 0 renames them once
//! every rank has flushed. Rank 0 prints what one process prints, with
//! `"ranks": K` and each rank's share.
//!
//! Every step that can fail on one rank (a file, a device, a value, a
//! disagreement with the reference) ends in a collective that tells every
//! rank whether any failed and, if so, the lowest failing rank's message and
//! exit code: every rank then exits with that code (rank 0 prints the
//! message), and no rank is left waiting. A panic aborts the whole job.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use ::mpi::collective::SystemOperation;
use ::mpi::topology::SimpleCommunicator;
use ::mpi::traits::*;
use serde_json::{json, Value as JsonValue};
use wgpu_loss::cli::agree::{GradCheck, Worst};
use wgpu_loss::cli::args::EvalArgs;
use wgpu_loss::cli::check::{Check, Request, Route};
use wgpu_loss::cli::Fail;
use wgpu_loss::{split, AdapterFilter, Chunks, Context, Loss, Partial};

use crate::eval::{finish, num, Outcome, Writes};
use crate::streamed::{Backward, Batch, Forward, Outs, Progress};
use wgpu_loss::cli::source::Sources;

/// Whether this process was started by `mpirun` (Open MPI, MPICH, or a
/// PMI-speaking launcher such as Slurm's).
pub fn launched() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// The rank among the ranks on this machine, where the launcher says.
fn local_rank(rank: usize) -> usize {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
    .unwrap_or(rank)
}

pub fn eval(a: &EvalArgs) -> Result<ExitCode, Fail> {
    let universe =
        ::mpi::initialize().ok_or_else(|| Fail::Gpu("MPI was initialised already".into()))?;
    let world = universe.world();
    // A rank that panics would leave the others in a collective forever.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        SimpleCommunicator::world().abort(70);
    }));
    let ranks = Ranks {
        rank: world.rank(),
        size: world.size(),
        world: &world,
    };
    match run(&ranks, a) {
        Ok(code) => Ok(code),
        Err(f) => {
            // Rank 0 prints the message; the others only exit with its
            // code, after it has: mpirun ends the job at the first non-zero
            // exit, which could kill rank 0 before it printed.
            if ranks.rank == 0 {
                let _ = writeln!(std::io::stderr(), "error: {}", f.clone().message());
            }
            world.barrier();
            Ok(ExitCode::from(f.code()))
        }
    }
}

/// The world communicator and this process's place in it.
struct Ranks<'w> {
    world: &'w SimpleCommunicator,
    rank: i32,
    size: i32,
}

fn fail_with(code: u8, message: String) -> Fail {
    match code {
        2 => Fail::Usage(message),
        3 => Fail::Disagree(message),
        _ => Fail::Gpu(message),
    }
}

impl Ranks<'_> {
    /// Every rank's `local` result, decided together: `Ok` where every rank
    /// succeeded; otherwise, on every rank, the failure of the lowest
    /// failing rank (its exit code, and its message, naming its rank where
    /// not every rank failed).
    fn all_ok<T>(&self, local: Result<T, Fail>) -> Result<T, Fail> {
        let failed = local.is_err();
        let mut first = 0i32;
        let mine = if failed { self.rank } else { self.size };
        self.world
            .all_reduce_into(&mine, &mut first, SystemOperation::min());
        if first == self.size {
            return local;
        }
        let mut count = 0i32;
        self.world
            .all_reduce_into(&(failed as i32), &mut count, SystemOperation::sum());
        let (code, message) = match &local {
            Err(f) if self.rank == first => (f.code(), f.clone().message()),
            _ => (0, String::new()),
        };
        let mut head = [code as u64, message.len() as u64];
        self.world
            .process_at_rank(first)
            .broadcast_into(&mut head[..]);
        let mut bytes = message.into_bytes();
        bytes.resize(head[1] as usize, 0);
        if !bytes.is_empty() {
            self.world
                .process_at_rank(first)
                .broadcast_into(&mut bytes[..]);
        }
        let message = String::from_utf8_lossy(&bytes).into_owned();
        let message = if count == self.size {
            message
        } else {
            format!("rank {first} of {}: {message}", self.size)
        };
        Err(fail_with(head[0] as u8, message))
    }

    /// `root`'s bytes, on every rank.
    fn bytes_from(&self, root: i32, mine: Vec<u8>) -> Vec<u8> {
        let mut len = [mine.len() as u64];
        let process = self.world.process_at_rank(root);
        process.broadcast_into(&mut len[..]);
        let mut bytes = mine;
        bytes.resize(len[0] as usize, 0);
        if !bytes.is_empty() {
            process.broadcast_into(&mut bytes[..]);
        }
        bytes
    }

    /// Every rank's `mine`, in rank order, on every rank.
    fn gather(&self, mine: &JsonValue) -> Vec<JsonValue> {
        (0..self.size)
            .map(|r| {
                let bytes = if r == self.rank {
                    mine.to_string().into_bytes()
                } else {
                    vec![]
                };
                serde_json::from_slice(&self.bytes_from(r, bytes)).unwrap_or(JsonValue::Null)
            })
            .collect()
    }

    fn reduce(&self, v: &[f64], op: SystemOperation) -> Vec<f64> {
        let mut out = vec![0.0; v.len()];
        if !v.is_empty() {
            self.world.all_reduce_into(v, &mut out[..], op);
        }
        out
    }

    /// Every rank's gradient checks as one: the largest reference gradient
    /// and the worst element of each tensor over all ranks (the element sent
    /// by the lowest rank that holds it).
    fn grad_check(&self, local: &GradCheck) -> GradCheck {
        let mut v: Vec<f64> = local.tensors.iter().map(|t| t.0).collect();
        v.extend(
            local
                .tensors
                .iter()
                .map(|t| t.1.map_or(f64::NEG_INFINITY, |w| w.excess)),
        );
        let nan = local.max_abs_diff.is_nan();
        v.push(if nan { 0.0 } else { local.max_abs_diff });
        v.push(nan as u8 as f64);
        let all = self.reduce(&v, SystemOperation::max());
        let mut out = GradCheck {
            max_abs_diff: if all[17] > 0.0 { f64::NAN } else { all[16] },
            ..GradCheck::default()
        };
        for t in 0..8 {
            out.tensors[t].0 = all[t];
            let excess = all[8 + t];
            if excess == f64::NEG_INFINITY {
                continue;
            }
            let holds = local.tensors[t].1.filter(|w| w.excess == excess);
            let mut holder = 0i32;
            let mine = if holds.is_some() {
                self.rank
            } else {
                self.size
            };
            self.world
                .all_reduce_into(&mine, &mut holder, SystemOperation::min());
            let bytes = match holds {
                Some(w) if holder == self.rank => [w.index as f64, w.gpu as f64, w.cpu]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                _ => vec![],
            };
            let bytes = self.bytes_from(holder.min(self.size - 1), bytes);
            let at = |k: usize| {
                bytes
                    .get(8 * k..8 * k + 8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(f64::NAN, f64::from_le_bytes)
            };
            out.tensors[t].1 = Some(Worst {
                excess,
                index: at(0) as usize,
                gpu: at(1) as f32,
                cpu: at(2),
            });
        }
        out
    }
}

/// Opens this rank's adapter: `WGPU_ADAPTER_NAME`'s, or the local rank
/// modulo the adapters kept one per device.
fn open_context(local: usize) -> Result<Context, Fail> {
    if std::env::var_os("WGPU_ADAPTER_NAME").is_some() {
        return Ok(Context::new()?);
    }
    let adapters = Context::adapters();
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
    let kept: Vec<usize> = AdapterFilter::default()
        .pick(&infos)
        .iter()
        .enumerate()
        .filter(|(_, why)| why.is_none())
        .map(|(i, _)| i)
        .collect();
    if kept.is_empty() {
        return Err(wgpu_loss::Error::NoAdapter(
            "wgpu found no Vulkan, Metal, DX12 or GL adapter".into(),
        )
        .into());
    }
    Ok(Context::from_adapter(&adapters[kept[local % kept.len()]])?)
}

/// A part with no units: the sums of nothing, in the layout every rank sends.
fn empty_forward(loss: &Loss, classes: usize, check: Check) -> Forward {
    let empty = Partial::empty(loss, classes);
    Forward {
        cpu: (check == Check::Full).then(|| empty.clone()),
        gpu: empty,
        abs: 0.0,
        sampled: vec![],
        chunks: 0,
        ms: 0.0,
    }
}

fn run(ranks: &Ranks<'_>, a: &EvalArgs) -> Result<ExitCode, Fail> {
    let start = Instant::now();
    let (rank, size) = (ranks.rank as usize, ranks.size as usize);
    let r = ranks.all_ok(Request::new(a).and_then(|r| match r.route {
        Route::Split { .. } => Err(Fail::Usage(format!(
            "--adapters {}: under mpirun each rank evaluates its share on one adapter (its local rank's, or WGPU_ADAPTER_NAME's)",
            a.adapters
        ))),
        _ => Ok(r),
    }))?;
    let (loss, reduction) = (&r.loss, r.reduction);
    let sources = ranks.all_ok(Sources::map(loss, &r.files))?;
    let inputs = sources.inputs();
    let whole =
        ranks.all_ok(Chunks::new(loss, reduction, &inputs, usize::MAX).map_err(Fail::from))?;
    let ranges = split::weighted(&vec![1.0; size], whole.units(), whole.quantum());
    let range = ranges[rank].clone();
    let ctx = ranks.all_ok(open_context(local_rank(rank)))?;

    // The output files: made by rank 0, then joined by the others.
    let made = if rank == 0 {
        Outs::create(&r, whole.items_shape(), &sources)
    } else {
        Ok(Outs::default())
    };
    let made = ranks.all_ok(made)?;
    let tmps: Vec<String> = made
        .tmps()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let tmps = ranks.bytes_from(0, serde_json::to_vec(&tmps).unwrap_or_default());
    let tmps: Vec<std::path::PathBuf> = serde_json::from_slice::<Vec<String>>(&tmps)
        .unwrap_or_default()
        .into_iter()
        .map(Into::into)
        .collect();
    let outs = if rank == 0 {
        Ok(made)
    } else {
        Outs::join(&r, whole.items_shape(), &sources, &tmps)
    };
    let outs = ranks.all_ok(outs)?;

    let grad = !r.grads.is_empty();
    let progress = Progress::new(if grad { 2 } else { 1 } * range.len() as u64);
    if rank != 0 {
        progress.hide();
    }
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
    let classes = match loss {
        Loss::Dice(_) => whole.items_shape().first().copied().unwrap_or(0),
        _ => 0,
    };
    let forward = if range.is_empty() {
        Ok(empty_forward(loss, classes, r.check))
    } else {
        whole
            .span(range.clone())
            .map_err(Fail::from)
            .and_then(|part| batch.forward(&ctx, &part.inputs(), range.start))
    };
    let forward = ranks.all_ok(forward)?;

    // One all-reduce of the partials: the GPU's, and the reference's.
    let mut parts = vec![forward.gpu.clone()];
    parts.extend(forward.cpu.clone());
    let mut merged_parts =
        ranks.all_ok(wgpu_loss::mpi::all_reduce_all(ranks.world, &parts).map_err(Fail::from))?;
    let abs = ranks.reduce(&[forward.abs], SystemOperation::sum())[0];
    let cpu = (merged_parts.len() > 1).then(|| merged_parts.remove(1));
    let gpu = merged_parts.remove(0);
    // The same merged sums on every rank: the same verdict everywhere.
    let merged = ranks.all_ok(batch.merged(gpu, cpu, abs))?;
    ranks.all_ok(if rank == 0 {
        batch.dice_items(&merged)
    } else {
        Ok(())
    })?;

    let mut backward = Backward {
        check: GradCheck::default(),
        sampled: vec![],
        chunks: 0,
        ms: 0.0,
    };
    let mut grad_diff = None;
    if grad {
        let reference = merged.cpu.as_ref().unwrap_or(&merged.gpu);
        let b = if range.is_empty() {
            Ok(backward)
        } else {
            whole
                .span(range.clone())
                .map_err(Fail::from)
                .and_then(|part| {
                    batch.backward(&ctx, &part.inputs(), range.start, &merged.gpu, reference)
                })
        };
        backward = ranks.all_ok(b)?;
        let check = ranks.grad_check(&backward.check);
        ranks.all_ok(check.verdict(loss.name()).map_err(Fail::Disagree))?;
        grad_diff = (r.check != Check::Off).then_some(check.max_abs_diff);
    }
    // Every rank's bytes reach the files before rank 0 renames them.
    ranks.all_ok(outs.flush())?;
    progress.finish();
    let mine = json!({
        "rank": rank,
        "adapter": ctx.adapter_name(),
        "units": [range.start, range.end],
        "chunks": forward.chunks + backward.chunks,
        "forward_chunks": forward.chunks,
        "ms": num(forward.ms + backward.ms),
        "sampled": forward.sampled.iter().map(|u| [u.start, u.end]).collect::<Vec<_>>(),
        "grad_sampled": backward.sampled.iter().map(|u| [u.start, u.end]).collect::<Vec<_>>(),
    });
    let mut shares = ranks.gather(&mine);
    let items = batch.items_len();
    let renamed = if rank == 0 { outs.finish() } else { Ok(()) };
    ranks.all_ok(renamed)?;
    if rank != 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let ranges_of = |shares: &[JsonValue], key: &str| -> Vec<std::ops::Range<usize>> {
        shares
            .iter()
            .flat_map(|s| s[key].as_array().cloned().unwrap_or_default())
            .filter_map(|u| Some(u[0].as_u64()? as usize..u[1].as_u64()? as usize))
            .collect()
    };
    let sampled = (
        ranges_of(&shares, "sampled"),
        ranges_of(&shares, "grad_sampled"),
    );
    let chunks = shares
        .iter()
        .map(|s| s["forward_chunks"].as_u64().unwrap_or(0) as usize)
        .sum();
    for s in &mut shares {
        if let Some(o) = s.as_object_mut() {
            o.remove("sampled");
            o.remove("grad_sampled");
            o.remove("forward_chunks");
        }
    }
    let o = Outcome {
        value: merged.value,
        cpu_value: merged.cpu_value,
        n: inputs.input.data.len(),
        items,
        items_shape: whole.items_shape().to_vec(),
        gpu_ms: start.elapsed().as_secs_f64() * 1e3,
        adapter: ctx.adapter_info().clone(),
        adapter_name: ctx.adapter_name(),
        chunks: Some(chunks),
        grad_diff,
        sampled,
        shares: Some(JsonValue::Array(shares)),
        skipped: None,
        ranks: Some(size),
        dtype: sources.dtype(wgpu_loss::TensorName::Input),
        writes: Writes::Done,
    };
    finish(a, &r, o)
}
