//! Times Burn's built-in losses on the batches `wgpu-loss bench` times, and
//! checks each value against a float64 reference computed here on the same data.
//!
//!     cargo run --release -- --sizes 2^20,2^24 --json
//!
//! The batches are the ones src/cli/synthetic.rs draws with seed 1 (the same
//! SplitMix64 stream, so the same numbers): mse on two vectors in [-3, 3),
//! binary cross-entropy with logits on logits in [-8, 8) and 0/1 targets
//! (p = 0.3), cross-entropy on rows of 1000 logits in [-6, 6) with a class
//! per row. Burn's functions: `MseLoss` (mean), `BinaryCrossEntropyLoss` with
//! `logits: true`, `CrossEntropyLoss` (logits, no weights or padding).
//!
//! `--calls forward,fused` times, besides the loss (`forward`), the value and
//! the gradient with respect to the input together (`fused`), as
//! `wgpu-loss bench --calls fused` does: the input is a leaf on Burn's
//! autodiff device (`Device::autodiff`), and one call is the loss,
//! `backward()` and `grad()` of the input. The gradient is checked against
//! the float64 gradient of the mean computed here (upstream 1).
//!
//! `--count` prints Burn's sum and mean of n ones for each size instead: how
//! many elements its full-tensor reductions see on the adapter at hand.
//!
//! A call's time is the wall clock from the call to the end of
//! `Device::sync`, the inputs already on the device; after warm-up calls
//! (autotune and fusion settle there), the median of the timed calls.

use std::time::Instant;

use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig, MseLoss, Reduction};
use burn::tensor::{Device, DeviceKind, Int, Tensor, TensorData};

const CLASSES: usize = 1000;
const ROUNDTRIP_N: usize = 1000;
const BURN_VERSION: &str = "0.22.1";

/// SplitMix64, as src/cli/synthetic.rs draws.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn floats(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * self.unit()).collect()
    }
}

/// A batch on the host: the input, and a float target or integer classes.
struct Host {
    x: Vec<f32>,
    y: Vec<f32>,
    classes: Vec<i32>,
    rows: usize,
}

fn batch(loss: &str, n: usize, seed: u64) -> Host {
    let mut r = Rng(seed);
    let n = n.max(1);
    match loss {
        "mse" => {
            let x = r.floats(n, -3.0, 3.0);
            let y = r.floats(n, -3.0, 3.0);
            Host {
                x,
                y,
                classes: vec![],
                rows: n,
            }
        }
        "bce_with_logits" => {
            let x = r.floats(n, -8.0, 8.0);
            let classes = (0..n).map(|_| (r.unit() < 0.3) as i32).collect();
            Host {
                x,
                y: vec![],
                classes,
                rows: n,
            }
        }
        "cross_entropy" => {
            let rows = n.div_ceil(CLASSES);
            let x = r.floats(rows * CLASSES, -6.0, 6.0);
            let classes = (0..rows)
                .map(|_| (r.next() % CLASSES as u64) as i32)
                .collect();
            Host {
                x,
                y: vec![],
                classes,
                rows,
            }
        }
        other => panic!("unknown loss {other}"),
    }
}

/// The float64 mean the loss should return.
fn reference(loss: &str, h: &Host) -> f64 {
    let sum: f64 = match loss {
        "mse" => {
            h.x.iter()
                .zip(&h.y)
                .map(|(&a, &b)| {
                    let d = a as f64 - b as f64;
                    d * d
                })
                .sum()
        }
        "bce_with_logits" => {
            h.x.iter()
                .zip(&h.classes)
                .map(|(&a, &t)| {
                    let a = a as f64;
                    a.max(0.0) - a * t as f64 + (-a.abs()).exp().ln_1p()
                })
                .sum()
        }
        "cross_entropy" => {
            h.x.chunks(CLASSES)
                .zip(&h.classes)
                .map(|(row, &c)| {
                    let m = row.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
                    let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
                    lse - row[c as usize] as f64
                })
                .sum()
        }
        _ => unreachable!(),
    };
    sum / if loss == "cross_entropy" {
        h.rows
    } else {
        h.x.len()
    } as f64
}

/// The float64 gradient of the mean with respect to the input (upstream 1),
/// in the input's layout.
fn reference_grad(loss: &str, h: &Host) -> Vec<f64> {
    match loss {
        "mse" => {
            let n = h.x.len() as f64;
            h.x.iter()
                .zip(&h.y)
                .map(|(&a, &b)| 2.0 * (a as f64 - b as f64) / n)
                .collect()
        }
        "bce_with_logits" => {
            let n = h.x.len() as f64;
            h.x.iter()
                .zip(&h.classes)
                .map(|(&a, &t)| (1.0 / (1.0 + (-(a as f64)).exp()) - t as f64) / n)
                .collect()
        }
        "cross_entropy" => {
            let rows = h.rows as f64;
            let mut g = Vec::with_capacity(h.x.len());
            for (row, &c) in h.x.chunks(CLASSES).zip(&h.classes) {
                let m = row.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
                let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
                g.extend(row.iter().enumerate().map(|(j, &v)| {
                    ((v as f64 - m).exp() / z - (j == c as usize) as u8 as f64) / rows
                }));
            }
            g
        }
        _ => unreachable!(),
    }
}

/// max |got - want| / max |want|: the error of a gradient relative to its
/// largest entry (entries near zero would make an element-wise ratio
/// meaningless). A length mismatch or a non-finite entry gives infinity.
fn grad_error(got: &[f32], want: &[f64]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    let worst = got.iter().zip(want).fold(0.0f64, |m, (&g, &w)| {
        let d = (g as f64 - w).abs();
        // NaN never compares greater, so it is caught here.
        if d.is_finite() {
            m.max(d)
        } else {
            f64::INFINITY
        }
    });
    worst / scale
}

/// The batch on the device, and the loss as a closure over it.
struct OnDevice {
    call: Box<dyn Fn() -> Tensor<1>>,
    bytes: usize,
    shape: Vec<usize>,
}

fn upload(loss: &str, h: &Host, device: &Device) -> OnDevice {
    let n = h.x.len();
    match loss {
        "mse" => {
            let x = Tensor::<1>::from_data(TensorData::new(h.x.clone(), [n]), device);
            let y = Tensor::<1>::from_data(TensorData::new(h.y.clone(), [n]), device);
            OnDevice {
                call: Box::new(move || {
                    MseLoss::new().forward(x.clone(), y.clone(), Reduction::Mean)
                }),
                bytes: 8 * n + 4,
                shape: vec![n],
            }
        }
        "bce_with_logits" => {
            let x = Tensor::<1>::from_data(TensorData::new(h.x.clone(), [n]), device);
            let t = Tensor::<1, Int>::from_data(TensorData::new(h.classes.clone(), [n]), device);
            let f = BinaryCrossEntropyLossConfig::new()
                .with_logits(true)
                .init(device);
            OnDevice {
                call: Box::new(move || f.forward(x.clone(), t.clone())),
                bytes: 8 * n + 4,
                shape: vec![n],
            }
        }
        "cross_entropy" => {
            let x = Tensor::<2>::from_data(TensorData::new(h.x.clone(), [h.rows, CLASSES]), device);
            let c =
                Tensor::<1, Int>::from_data(TensorData::new(h.classes.clone(), [h.rows]), device);
            let f = CrossEntropyLossConfig::new().init(device);
            OnDevice {
                call: Box::new(move || f.forward(x.clone(), c.clone())),
                bytes: 4 * n + 4 * h.rows + 4,
                shape: vec![h.rows, CLASSES],
            }
        }
        _ => unreachable!(),
    }
}

/// The gradient one fused call returns, in the input's rank.
enum Grad {
    D1(Tensor<1>),
    D2(Tensor<2>),
}

impl Grad {
    fn into_vec(self) -> Vec<f32> {
        let data = match self {
            Grad::D1(t) => t.into_data(),
            Grad::D2(t) => t.into_data(),
        };
        data.try_into_vec::<f32>().expect("an f32 gradient")
    }
}

/// The batch on an autodiff device, the input a leaf that keeps its
/// gradient, and the fused call (value and gradient) as a closure over it.
struct Fused {
    call: Box<dyn Fn() -> (Tensor<1>, Grad)>,
    bytes: usize,
    shape: Vec<usize>,
}

/// `upload` for the fused call. Bytes as `wgpu-loss bench` counts them for
/// it: every input read once, the value and the input's gradient written
/// once.
fn upload_fused(loss: &str, h: &Host, device: &Device) -> Fused {
    let n = h.x.len();
    match loss {
        "mse" => {
            let x =
                Tensor::<1>::from_data(TensorData::new(h.x.clone(), [n]), device).require_grad();
            let y = Tensor::<1>::from_data(TensorData::new(h.y.clone(), [n]), device);
            Fused {
                call: Box::new(move || {
                    let v = MseLoss::new().forward(x.clone(), y.clone(), Reduction::Mean);
                    let g = x.grad(&v.backward()).expect("d/dx of mse");
                    (v, Grad::D1(g))
                }),
                bytes: 8 * n + 4 + 4 * n,
                shape: vec![n],
            }
        }
        "bce_with_logits" => {
            let x =
                Tensor::<1>::from_data(TensorData::new(h.x.clone(), [n]), device).require_grad();
            let t = Tensor::<1, Int>::from_data(TensorData::new(h.classes.clone(), [n]), device);
            let f = BinaryCrossEntropyLossConfig::new()
                .with_logits(true)
                .init(device);
            Fused {
                call: Box::new(move || {
                    let v = f.forward(x.clone(), t.clone());
                    let g = x.grad(&v.backward()).expect("d/dx of bce_with_logits");
                    (v, Grad::D1(g))
                }),
                bytes: 8 * n + 4 + 4 * n,
                shape: vec![n],
            }
        }
        "cross_entropy" => {
            let x = Tensor::<2>::from_data(TensorData::new(h.x.clone(), [h.rows, CLASSES]), device)
                .require_grad();
            let c =
                Tensor::<1, Int>::from_data(TensorData::new(h.classes.clone(), [h.rows]), device);
            let f = CrossEntropyLossConfig::new().init(device);
            Fused {
                call: Box::new(move || {
                    let v = f.forward(x.clone(), c.clone());
                    let g = x.grad(&v.backward()).expect("d/dx of cross_entropy");
                    (v, Grad::D2(g))
                }),
                bytes: 4 * n + 4 * h.rows + 4 + 4 * n,
                shape: vec![h.rows, CLASSES],
            }
        }
        _ => unreachable!(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn parse_size(s: &str) -> usize {
    match s.split_once('^') {
        Some((b, e)) => b
            .trim()
            .parse::<usize>()
            .unwrap()
            .pow(e.trim().parse().unwrap()),
        None => s.trim().parse().unwrap(),
    }
}

struct Args {
    losses: Vec<String>,
    sizes: Vec<usize>,
    calls: Vec<String>,
    warmup: usize,
    min_runs: usize,
    max_runs: usize,
    seconds: f64,
    json: bool,
    vulkan: bool,
    count: bool,
}

fn args() -> Args {
    let mut a = Args {
        losses: ["mse", "bce_with_logits", "cross_entropy"]
            .map(String::from)
            .to_vec(),
        sizes: vec![1 << 20, 1 << 24],
        calls: vec!["forward".into()],
        warmup: 3,
        min_runs: 5,
        max_runs: 20,
        seconds: 2.0,
        json: false,
        vulkan: false,
        count: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--loss" => a.losses = v().split(',').map(|s| s.trim().to_string()).collect(),
            "--sizes" => a.sizes = v().split(',').map(parse_size).collect(),
            "--calls" => {
                a.calls = v().split(',').map(|s| s.trim().to_string()).collect();
                if let Some(c) = a.calls.iter().find(|c| *c != "forward" && *c != "fused") {
                    eprintln!("error: unknown call `{c}` (forward or fused)");
                    std::process::exit(2);
                }
            }
            "--warmup" => a.warmup = v().parse().unwrap(),
            "--min-runs" => a.min_runs = v().parse().unwrap(),
            "--max-runs" => a.max_runs = v().parse().unwrap(),
            "--seconds" => a.seconds = v().parse().unwrap(),
            "--json" => a.json = true,
            // Device::vulkan (SPIR-V) instead of Device::wgpu (WGSL in the default build;
            // a build with the `vulkan` feature compiles SPIR-V for it too).
            "--vulkan" => a.vulkan = true,
            // Burn's sum and mean of n ones, for each size: how many elements
            // its full-tensor reductions see.
            "--count" => a.count = true,
            "-h" | "--help" => {
                println!(
                    "burn-peer [--loss mse,bce_with_logits,cross_entropy] [--sizes 2^20,2^24] \
                     [--calls forward,fused] [--warmup 3] [--min-runs 5] [--max-runs 20] \
                     [--seconds 2] [--json] [--vulkan] [--count]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// Times `call` after `warmup` calls: each timed call runs to the end of
/// `Device::sync`, its outputs alive until then. (median ms, runs)
fn time<T>(a: &Args, device: &Device, call: impl Fn() -> T) -> (f64, usize) {
    for _ in 0..a.warmup {
        let out = call();
        device.sync().unwrap();
        drop(out);
    }
    let mut times = vec![];
    let start = Instant::now();
    while times.len() < a.max_runs
        && (times.len() < a.min_runs || start.elapsed().as_secs_f64() < a.seconds)
    {
        let t = Instant::now();
        let out = call();
        device.sync().unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        drop(out);
    }
    let runs = times.len();
    (median(times), runs)
}

/// The median of 20 blocking calls of `call` on a small batch, whose result
/// is read back: the scalar, and with `fused` the gradient too.
fn roundtrip(loss: &str, fused: bool, device: &Device) -> f64 {
    let host = batch(loss, ROUNDTRIP_N, 1);
    let once: Box<dyn Fn()> = if fused {
        let f = upload_fused(loss, &host, device);
        Box::new(move || {
            let (v, g) = (f.call)();
            let _ = v.into_scalar::<f32>();
            let _ = g.into_vec();
        })
    } else {
        let f = upload(loss, &host, device);
        Box::new(move || {
            let _ = (f.call)().into_scalar::<f32>();
        })
    };
    once();
    let mut rts = vec![];
    for _ in 0..20 {
        let t = Instant::now();
        once();
        rts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(rts)
}

fn main() {
    let a = args();
    let device = if a.vulkan {
        vulkan_device()
    } else {
        Device::wgpu(DeviceKind::DefaultDevice)
    };
    let api = if a.vulkan { "vulkan" } else { "wgpu" };
    eprintln!("burn {BURN_VERSION}, Device::{api}(DefaultDevice): {device:?}");
    if a.count {
        for &n in &a.sizes {
            let ones = Tensor::<1>::ones([n], &device);
            let sum = ones.clone().sum().into_scalar::<f32>();
            let mean = ones.mean().into_scalar::<f32>();
            let rec = serde_json::json!({
                "size": n, "sum_of_ones": sum, "mean_of_ones": mean,
                "burn": BURN_VERSION, "api": api,
            });
            println!("{rec}");
        }
        return;
    }
    // The fused call's tensors live on the same device with autodiff on.
    let autodiff = device.clone().autodiff();
    if !a.json {
        println!(
            "{:<16} {:>9} {:<7} {:>10} {:>8} {:>14} {:>14} {:>9} {:>9} {:>8}",
            "loss", "n", "call", "ms", "GB/s", "burn", "reference", "rel err", "grad err", "rt ms"
        );
    }
    for loss in &a.losses {
        for call in &a.calls {
            let fused = call == "fused";
            let rt = roundtrip(loss, fused, if fused { &autodiff } else { &device });
            for &size in &a.sizes {
                let host = batch(loss, size, 1);
                let want = reference(loss, &host);
                let n = host.x.len();
                // (value, gradient error) of the first call, of the last
                // call after the timed ones, the time and the bytes.
                let (got, last, grad_err, ms, runs, bytes, shape);
                if fused {
                    let want_grad = reference_grad(loss, &host);
                    let dev = upload_fused(loss, &host, &autodiff);
                    drop(host);
                    autodiff.sync().unwrap();
                    let check = || {
                        let (v, g) = (dev.call)();
                        let v = v.into_scalar::<f32>() as f64;
                        (v, grad_error(&g.into_vec(), &want_grad))
                    };
                    let (v0, e0) = check();
                    (ms, runs) = time(&a, &autodiff, &dev.call);
                    let (v1, e1) = check();
                    (got, last, grad_err) = (v0, v1, Some((e0, e1)));
                    (bytes, shape) = (dev.bytes, dev.shape);
                } else {
                    let dev = upload(loss, &host, &device);
                    drop(host);
                    device.sync().unwrap();
                    got = (dev.call)().into_scalar::<f32>() as f64;
                    (ms, runs) = time(&a, &device, &dev.call);
                    // The value of the last timed call too: a fused or
                    // autotuned kernel chosen after the first call must be
                    // right as well.
                    last = (dev.call)().into_scalar::<f32>() as f64;
                    grad_err = None;
                    (bytes, shape) = (dev.bytes, dev.shape);
                }
                let rel = (got - want).abs() / want.abs();
                let rel_last = (last - want).abs() / want.abs();
                let gbps = bytes as f64 / (ms * 1e6);
                let mut rec = serde_json::json!({
                    "loss": loss,
                    "mode": "burn",
                    "size": size,
                    "n": n,
                    "shape": shape,
                    "bytes": bytes,
                    "ms": ms,
                    "gbps": gbps,
                    "roundtrip_ms": rt,
                    "runs": runs,
                    "timing": "wall",
                    "device": format!("{device:?}"),
                    "api": api,
                    "burn": BURN_VERSION,
                    "value": got,
                    "value_last": last,
                    "reference": want,
                    "rel_err": rel,
                    "rel_err_last": rel_last,
                });
                if let Some((e0, e1)) = grad_err {
                    rec["call"] = "fused".into();
                    rec["grad_rel_err"] = e0.into();
                    rec["grad_rel_err_last"] = e1.into();
                }
                if a.json {
                    println!("{rec}");
                } else {
                    let ge = grad_err.map_or("-".into(), |(e0, e1)| format!("{:.2e}", e0.max(e1)));
                    println!(
                        "{loss:<16} {n:>9} {call:<7} {ms:>10.3} {gbps:>8.3} {got:>14.8} {want:>14.8} {:>9.2e} {ge:>9} {rt:>8.3}",
                        rel.max(rel_last)
                    );
                }
            }
        }
    }
}

#[cfg(feature = "vulkan")]
fn vulkan_device() -> Device {
    Device::vulkan(DeviceKind::DefaultDevice)
}

#[cfg(not(feature = "vulkan"))]
fn vulkan_device() -> Device {
    eprintln!(
        "error: built without the `vulkan` feature (cargo build --release --features vulkan)"
    );
    std::process::exit(2);
}
