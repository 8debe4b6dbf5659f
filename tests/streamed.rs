//! `wgpu-loss eval` on mapped files: streamed through one adapter when they
//! exceed `--budget-mb`, split across adapters (`--adapters all|every`), with
//! the `none` items and the gradients written a chunk at a time into mapped
//! files, and the reference checked on every chunk, a sample or none.

// The binary and `wgpu_loss::cli` exist only with the `cli` feature.
#![cfg(feature = "cli")]

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use wgpu_loss::cli::npy;
use wgpu_loss::{cpu, Inputs, Loss, Reduction, Tensor};

const BIN: &str = env!("CARGO_BIN_EXE_wgpu-loss");

#[path = "common/dir.rs"]
mod dir;
use dir::Dir;

fn run_env(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    // No tuner cache in the user's cache directory.
    c.args(args).env("WGPU_LOSS_CACHE", "off");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run wgpu-loss")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Our own error lines (Mesa's loader may add its own).
fn ours(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .map(String::from)
        .collect()
}

/// Runs with `--json` and parses the line, failing with stderr otherwise.
fn json(args: &[String]) -> Value {
    let mut args = args.to_vec();
    args.push("--json".into());
    let o = run_env(&args, &[]);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {args:?}"))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn uniform(r: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

/// One evaluation's arguments, with `{out}` in an output path standing for
/// the directory it is written to.
struct Case {
    name: &'static str,
    args: Vec<String>,
    outputs: Vec<(&'static str, &'static str)>,
    /// Dice's per-class rule runs on merged sums when streamed: its files
    /// agree with one call's within the reference's tolerance, not bitwise.
    exact: bool,
}

/// Runs `case` whole and with `extra` (a small budget, other adapters),
/// both writing their outputs into their own directory, and compares the
/// files; returns the second run's JSON.
fn same_files(dir: &Dir, case: &Case, extra: &[&str]) -> Value {
    let mut docs = vec![];
    for (k, extra) in [&[][..], extra].into_iter().enumerate() {
        let mut args = case.args.clone();
        for (flag, file) in &case.outputs {
            args.push(format!("--{flag}"));
            args.push(dir.path(&format!("{k}-{file}")));
        }
        args.extend(strings(extra));
        docs.push(json(&args));
    }
    for (_, file) in &case.outputs {
        let (a, b) = (
            dir.path(&format!("0-{file}")),
            dir.path(&format!("1-{file}")),
        );
        if case.exact {
            assert!(
                fs::read(&a).unwrap() == fs::read(&b).unwrap(),
                "{} {extra:?}: {file} differs from one call's",
                case.name
            );
        } else {
            let (x, y) = (npy::read(&a).unwrap(), npy::read(&b).unwrap());
            assert_eq!(x.shape, y.shape);
            let (x, y) = (x.into_f32(), y.into_f32());
            let big = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (i, (p, q)) in x.iter().zip(&y).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-5 * big + 1e-4 * p.abs() + 1e-6,
                    "{} {extra:?}: {file}[{i}]: {p} vs {q}",
                    case.name
                );
            }
        }
        fs::remove_file(a).unwrap();
        fs::remove_file(b).unwrap();
    }
    docs.pop().unwrap()
}

/// Files of every family: each loss's arguments and outputs.
fn cases(dir: &Dir) -> Vec<Case> {
    let mut r = rng(41);
    let n = 40_001;
    let (x, y) = (uniform(&mut r, n, -2.0, 2.0), uniform(&mut r, n, -2.0, 2.0));
    let (xf, yf) = (dir.f32("x.npy", &[n], &x), dir.f32("y.npy", &[n], &y));

    // Class weights of small integers keep Σw exact; ignored rows throughout
    // and a block of them that fills whole chunks.
    let (rows, c) = (6_007, 7);
    let logits = uniform(&mut r, rows * c, -4.0, 4.0);
    let classes: Vec<i64> = (0..rows)
        .map(|i| {
            if i % 11 == 0 || (2_000..3_500).contains(&i) {
                -100
            } else {
                r.random_range(0..c as i64)
            }
        })
        .collect();
    let w: Vec<f32> = (0..c).map(|_| r.random_range(1..5) as f32).collect();
    let (lf, cf, wf) = (
        dir.f32("l.npy", &[rows, c], &logits),
        dir.i64("c.npy", &[rows], &classes),
        dir.f32("w.npy", &[c], &w),
    );

    let (kr, kc) = (1_999, 10);
    let logp = uniform(&mut r, kr * kc, -5.0, 0.0);
    let p = uniform(&mut r, kr * kc, 0.0, 1.0);
    let (kx, kt) = (
        dir.f32("kx.npy", &[kr, kc], &logp),
        dir.f32("kt.npy", &[kr, kc], &p),
    );

    let (pr, d) = (2_003, 17);
    let (a, b, q) = (
        uniform(&mut r, pr * d, -2.0, 2.0),
        uniform(&mut r, pr * d, -2.0, 2.0),
        uniform(&mut r, pr * d, -2.0, 2.0),
    );
    let labels: Vec<f32> = (0..pr)
        .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    let (af, bf, qf, lab) = (
        dir.f32("a.npy", &[pr, d], &a),
        dir.f32("b.npy", &[pr, d], &b),
        dir.f32("q.npy", &[pr, d], &q),
        dir.f32("lab.npy", &[pr], &labels),
    );

    let (dn, dc, dh) = (301, 4, 37);
    let dx = uniform(&mut r, dn * dc * dh, -3.0, 3.0);
    // Class 3 only in the first entries: absent from most chunks.
    let dy: Vec<i64> = (0..dn * dh)
        .map(|i| if i < 100 { 3 } else { r.random_range(0..3) })
        .collect();
    let (dxf, dyf) = (
        dir.f32("dx.npy", &[dn, dc, dh], &dx),
        dir.i64("dy.npy", &[dn, dh], &dy),
    );

    let args = |v: &[&str]| strings(v);
    let ev = "eval";
    vec![
        Case {
            name: "mse none",
            args: args(&[
                ev,
                "mse",
                "--input",
                &xf,
                "--target",
                &yf,
                "--reduction",
                "none",
            ]),
            outputs: vec![("out", "o.npy"), ("grad-out", "g.npy")],
            exact: true,
        },
        Case {
            name: "mse mean",
            args: args(&[ev, "mse", "--input", &xf, "--target", &yf]),
            outputs: vec![("grad-out", "g.npy")],
            exact: true,
        },
        Case {
            name: "mse none, items only",
            args: args(&[
                ev,
                "mse",
                "--input",
                &xf,
                "--target",
                &yf,
                "--reduction",
                "none",
            ]),
            outputs: vec![("out", "o.npy")],
            exact: true,
        },
        Case {
            name: "cross_entropy mean",
            args: args(&[
                ev,
                "cross_entropy",
                "--input",
                &lf,
                "--target",
                &cf,
                "--weight",
                &wf,
                "--label-smoothing",
                "0.1",
            ]),
            outputs: vec![("grad-out", "g.npy")],
            exact: true,
        },
        Case {
            name: "cross_entropy none",
            args: args(&[
                ev,
                "cross_entropy",
                "--input",
                &lf,
                "--target",
                &cf,
                "--weight",
                &wf,
                "--reduction",
                "none",
            ]),
            outputs: vec![("out", "o.npy"), ("grad-out", "g.npy")],
            exact: true,
        },
        Case {
            name: "kl_div batchmean",
            args: args(&[
                ev,
                "kl_div",
                "--input",
                &kx,
                "--target",
                &kt,
                "--reduction",
                "batchmean",
            ]),
            outputs: vec![("grad-out", "g.npy")],
            exact: true,
        },
        Case {
            name: "cosine_embedding none",
            args: args(&[
                ev,
                "cosine_embedding",
                "--input",
                &af,
                "--target",
                &bf,
                "--labels",
                &lab,
                "--reduction",
                "none",
            ]),
            outputs: vec![
                ("out", "o.npy"),
                ("grad-out", "g.npy"),
                ("grad-target", "t.npy"),
            ],
            exact: true,
        },
        Case {
            name: "triplet_margin mean",
            args: args(&[
                ev,
                "triplet_margin",
                "--input",
                &af,
                "--positive",
                &bf,
                "--negative",
                &qf,
            ]),
            outputs: vec![
                ("grad-out", "g.npy"),
                ("grad-positive", "p.npy"),
                ("grad-negative", "n.npy"),
            ],
            exact: true,
        },
        Case {
            name: "dice mean",
            args: args(&[
                ev,
                "dice",
                "--input",
                &dxf,
                "--target",
                &dyf,
                "--from-logits",
            ]),
            outputs: vec![("grad-out", "g.npy")],
            exact: false,
        },
        Case {
            name: "dice none",
            args: args(&[
                ev,
                "dice",
                "--input",
                &dxf,
                "--target",
                &dyf,
                "--reduction",
                "none",
            ]),
            outputs: vec![("out", "o.npy"), ("grad-out", "g.npy")],
            exact: false,
        },
    ]
}

/// Streamed in many chunks, every family's `none` items and gradients are
/// the bytes one call over the whole files writes (Dice: within the
/// reference's tolerance), and no temporary file is left.
#[test]
fn streamed_files_are_those_of_one_call() {
    let dir = Dir::new("streamed", "files");
    let cases = cases(&dir);
    let inputs = dir.names();
    for case in cases {
        let doc = same_files(&dir, &case, &["--budget-mb", "0.1"]);
        assert_eq!(doc["streamed"], true, "{}: {doc}", case.name);
        assert!(doc["chunks"].as_u64().unwrap() >= 3, "{}: {doc}", case.name);
        assert!(doc["cpu_reference"].is_number(), "{}: {doc}", case.name);
        assert_eq!(dir.names(), inputs, "{}: files left", case.name);
    }
}

/// Split across every adapter wgpu lists (lavapipe and llvmpipe's GL here),
/// each share weighted by the adapter's measured speed and streamed within
/// its part of the budget: the shares cover the batch in order, and the
/// files are those of one call.
#[test]
fn adapters_share_by_speed() {
    let dir = Dir::new("streamed", "adapters");
    let cases = cases(&dir);
    for case in cases.iter().filter(|c| {
        [
            "mse none",
            "cross_entropy mean",
            "triplet_margin mean",
            "dice none",
        ]
        .contains(&c.name)
    }) {
        for adapters in ["all", "every"] {
            let doc = same_files(&dir, case, &["--adapters", adapters, "--budget-mb", "0.2"]);
            let shares = doc["shares"].as_array().unwrap();
            let names: Vec<&Value> = shares.iter().map(|s| &s["adapter"]).collect();
            assert_eq!(
                doc["adapters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .collect::<Vec<_>>(),
                names
            );
            let units = doc["items"].as_u64().unwrap();
            let mut at = 0;
            let mut weight = 0.0;
            for s in shares {
                let u = s["units"].as_array().unwrap();
                assert_eq!(u[0].as_u64().unwrap(), at, "{}: {doc}", case.name);
                at = u[1].as_u64().unwrap();
                assert!(s["rate"].as_f64().unwrap() > 0.0, "{s}");
                assert!(s["ms"].as_f64().unwrap() >= 0.0, "{s}");
                weight += s["weight"].as_f64().unwrap();
            }
            // Dice's units are batch entries, its items classes.
            if !case.name.starts_with("dice") {
                assert_eq!(at, units, "{}: shares cover the batch: {doc}", case.name);
            }
            assert!((weight - 1.0).abs() < 1e-9, "{doc}");
            if adapters == "all" {
                let listed = doc["skipped"].as_array().unwrap().len() + shares.len();
                assert!(listed >= 1, "{doc}");
            }
        }
    }
}

fn value_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// `--reference sample` checks a seeded set of chunks, listed in the JSON
/// (the same set for the same seed) and at least one; `off` checks none;
/// neither changes the GPU's value.
#[test]
fn reference_modes() {
    let dir = Dir::new("streamed", "modes");
    let mut r = rng(42);
    let n = 30_000;
    let (x, y) = (uniform(&mut r, n, -2.0, 2.0), uniform(&mut r, n, -2.0, 2.0));
    let (xf, yf) = (dir.f32("x.npy", &[n], &x), dir.f32("y.npy", &[n], &y));
    let g = dir.path("g.npy");
    let base = strings(&[
        "eval",
        "mse",
        "--input",
        &xf,
        "--target",
        &yf,
        "--grad-out",
        &g,
    ]);
    let with = |extra: &[&str]| {
        let mut a = base.clone();
        a.extend(strings(extra));
        json(&a)
    };
    let small = ["--budget-mb", "0.05"];
    let full = with(&small);
    let want = cpu::evaluate(
        &Loss::from_name("mse").unwrap(),
        Reduction::Mean,
        &Inputs::new(Tensor::new(&x, &[n])).target(Tensor::new(&y, &[n])),
    )
    .unwrap()
    .value;
    assert!(
        (value_of(&full["cpu_reference"]) - want).abs() < 1e-9,
        "{full}"
    );
    assert_eq!(full["reference"]["mode"], "full");
    let chunks = full["chunks"].as_u64().unwrap() as usize;
    assert!(chunks >= 10, "{full}");

    let sample = |seed: &str| {
        let mut a = small.to_vec();
        a.extend(["--reference", "sample", "--reference-fraction", "0.2"]);
        a.extend(["--reference-seed", seed]);
        with(&a)
    };
    let s1 = sample("7");
    assert_eq!(s1["value"], full["value"], "{s1}");
    assert!(s1["cpu_reference"].is_null(), "{s1}");
    let listed = |doc: &Value, key: &str| -> Vec<(u64, u64)> {
        doc["reference"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}: {doc}"))
            .iter()
            .map(|u| (u[0].as_u64().unwrap(), u[1].as_u64().unwrap()))
            .collect()
    };
    let picked = listed(&s1, "chunks");
    assert!(!picked.is_empty() && picked.len() < chunks, "{s1}");
    assert!(
        picked.windows(2).all(|w| w[0].1 <= w[1].0),
        "in order: {s1}"
    );
    assert!(picked.iter().all(|&(a, b)| a < b && b <= n as u64), "{s1}");
    assert!(!listed(&s1, "grad_chunks").is_empty(), "{s1}");
    assert_eq!(picked, listed(&sample("7"), "chunks"), "seeded");
    let others: Vec<Vec<(u64, u64)>> = ["8", "9", "10"]
        .iter()
        .map(|s| listed(&sample(s), "chunks"))
        .collect();
    assert!(
        others.iter().any(|o| *o != picked),
        "other seeds pick others"
    );
    // A fraction so small that the hash picks none still checks one chunk.
    let mut a = small.to_vec();
    a.extend(["--reference", "sample", "--reference-fraction", "1e-12"]);
    assert_eq!(listed(&with(&a), "chunks").len(), 1);

    let mut a = small.to_vec();
    a.extend(["--reference", "off"]);
    let off = with(&a);
    assert_eq!(off["value"], full["value"], "{off}");
    assert!(
        off["cpu_reference"].is_null() && off.get("grad_max_abs_diff").is_none(),
        "{off}"
    );

    // Read whole, the batch is one chunk.
    let whole = with(&["--reference", "sample"]);
    assert_eq!(listed(&whole, "chunks"), [(0, n as u64)], "{whole}");

    let bad = [
        &base[..],
        &strings(&["--reference", "sample", "--reference-fraction", "0"]),
    ]
    .concat();
    let o = run_env(&bad, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--reference-fraction"),
        "{}",
        stderr(&o)
    );
}

/// A GPU result the reference does not confirm exits 3 with one line naming
/// the loss, both values and their relative difference, and writes nothing
/// (a file already there is kept, no temporary file is left), however the
/// batch went through the GPU. The disagreement is forced through the
/// test-only `WGPU_LOSS_TEST_SKEW_GPU`.
#[test]
fn disagreements_exit_3_and_write_nothing() {
    let dir = Dir::new("streamed", "disagree");
    let mut r = rng(43);
    let n = 20_000;
    let (x, y) = (uniform(&mut r, n, -2.0, 2.0), uniform(&mut r, n, -2.0, 2.0));
    let (xf, yf) = (dir.f32("x.npy", &[n], &x), dir.f32("y.npy", &[n], &y));
    let kept = dir.f32("o.npy", &[1], &[5.0]);
    let bytes = fs::read(&kept).unwrap();
    let names = dir.names();
    let g = dir.path("g.npy");
    for (route, extra) in [
        ("whole", vec![]),
        ("whole, sampled", vec!["--reference", "sample"]),
        ("streamed", vec!["--budget-mb", "0.05"]),
        (
            "streamed, sampled",
            vec!["--budget-mb", "0.05", "--reference", "sample"],
        ),
        (
            "adapters every",
            vec!["--adapters", "every", "--budget-mb", "0.05"],
        ),
    ] {
        for reduction in ["none", "mean"] {
            let mut args = strings(&[
                "eval",
                "mse",
                "--input",
                &xf,
                "--target",
                &yf,
                "--reduction",
                reduction,
                "--grad-out",
                &g,
            ]);
            if reduction == "none" {
                args.extend(strings(&["--out", &kept]));
            }
            args.extend(strings(&extra));
            let o = run_env(&args, &[("WGPU_LOSS_TEST_SKEW_GPU", "1.01")]);
            assert_eq!(
                o.status.code(),
                Some(3),
                "{route} {reduction}: {}",
                stderr(&o)
            );
            let lines = ours(&o);
            assert_eq!(lines.len(), 1, "{route}: {lines:?}");
            let line = &lines[0];
            assert!(
                line.contains("mse")
                    && line.contains("reference")
                    && line.contains("relative difference 1.0e-2"),
                "{route} {reduction}: {line}"
            );
            assert!(o.stdout.is_empty());
            assert_eq!(dir.names(), names, "{route} {reduction}: nothing written");
            assert_eq!(fs::read(&kept).unwrap(), bytes);
            // Without the knob the same call agrees and writes.
            let o = run_env(&args, &[]);
            assert!(o.status.success(), "{route}: {}", stderr(&o));
            assert!(PathBuf::from(&g).exists());
            fs::remove_file(&g).unwrap();
            fs::write(&kept, &bytes).unwrap();
        }
    }
    // `--reference off` cannot disagree.
    let args = strings(&[
        "eval",
        "mse",
        "--input",
        &xf,
        "--target",
        &yf,
        "--budget-mb",
        "0.05",
        "--reference",
        "off",
    ]);
    let o = run_env(&args, &[("WGPU_LOSS_TEST_SKEW_GPU", "1.01")]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A bad value deep in a streamed file fails at its place in the file, after
/// earlier chunks were written: exit 2, and no output or temporary file left.
#[test]
fn a_failing_chunk_leaves_nothing() {
    let dir = Dir::new("streamed", "failing");
    let mut r = rng(44);
    let (rows, c) = (20_000, 5);
    let logits = uniform(&mut r, rows * c, -3.0, 3.0);
    let mut classes: Vec<i64> = (0..rows).map(|_| r.random_range(0..c as i64)).collect();
    classes[17_001] = 9;
    let (lf, cf) = (
        dir.f32("l.npy", &[rows, c], &logits),
        dir.i64("c.npy", &[rows], &classes),
    );
    let names = dir.names();
    for extra in [
        vec!["--budget-mb", "0.1"],
        vec!["--adapters", "every", "--budget-mb", "0.1"],
    ] {
        let mut args = strings(&[
            "eval",
            "cross_entropy",
            "--input",
            &lf,
            "--target",
            &cf,
            "--reduction",
            "none",
            "--out",
            &dir.path("o.npy"),
            "--grad-out",
            &dir.path("g.npy"),
        ]);
        args.extend(strings(&extra));
        let o = run_env(&args, &[]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("target[17001] = 9"), "{}", stderr(&o));
        assert_eq!(dir.names(), names, "{extra:?}: nothing written");
    }
}

/// f16 `.npy` and bf16 `.safetensors` inputs (one file, the class target
/// as I64 beside the logits) streamed in many chunks give the bytes one
/// call gives: the `none` items as `.safetensors`, the gradients in the
/// input's half dtype.
#[test]
fn half_files_stream_as_one_call() {
    use wgpu_loss::DType;
    let dir = Dir::new("streamed", "half");
    let mut r = rng(43);
    let n = 20_001;
    let (x, y) = (uniform(&mut r, n, -2.0, 2.0), uniform(&mut r, n, -2.0, 2.0));
    let f16_file = |name: &str, values: &[f32]| {
        let path = dir.path(name);
        let layout =
            npy::Layout::new(std::path::Path::new(&path), &[values.len()], DType::F16, "").unwrap();
        npy::write_layout(&path, &layout, values).unwrap();
        path
    };
    let (xf, yf) = (f16_file("x16.npy", &x), f16_file("y16.npy", &y));

    let (rows, c) = (3_001, 7);
    let logits = uniform(&mut r, rows * c, -4.0, 4.0);
    let classes: Vec<i64> = (0..rows)
        .map(|i| if i % 13 == 0 { -100 } else { (i % c) as i64 })
        .collect();
    let weight = [1.0f32, 2.0, 1.0, 3.0, 1.0, 2.0, 4.0];
    let st = dir.bf16_batch("batch.safetensors", &logits, c, &classes, &weight);

    let cases = [
        Case {
            name: "mse none f16",
            args: strings(&[
                "eval",
                "mse",
                "--input",
                &xf,
                "--target",
                &yf,
                "--reduction",
                "none",
            ]),
            outputs: vec![("out", "o.safetensors"), ("grad-out", "g.npy")],
            exact: true,
        },
        Case {
            name: "cross_entropy mean bf16",
            args: strings(&[
                "eval",
                "cross_entropy",
                "--input",
                &format!("{st}:logits"),
                "--target",
                &format!("{st}:classes"),
                "--weight",
                &format!("{st}:weight"),
            ]),
            outputs: vec![("grad-out", "g.safetensors")],
            exact: true,
        },
    ];
    let inputs = dir.names();
    for case in &cases {
        let doc = same_files(&dir, case, &["--budget-mb", "0.02"]);
        assert_eq!(doc["streamed"], true, "{}: {doc}", case.name);
        assert!(doc["chunks"].as_u64().unwrap() >= 3, "{}: {doc}", case.name);
        assert_eq!(dir.names(), inputs, "{}: files left", case.name);
    }
}
