//! `mpirun -n K wgpu-loss eval ..` (feature `mpi`) on 1, 2 and 3 ranks of
//! this machine against one process: the same value (1e-6 relative) for
//! every family, byte-identical `none` and gradient files (a bf16
//! `.safetensors` batch among them, its gradient written in bf16), and a rank that
//! cannot read its file failing every rank, with no rank left waiting.
//! Needs Open MPI's `mpirun` (Debian: `openmpi-bin libopenmpi-dev`).

#![cfg(all(feature = "mpi", feature = "cli"))]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wgpu-loss");

/// No MPI run here takes a minute; one that does is hanging.
const TIMEOUT: Duration = Duration::from_secs(120);

#[path = "common/dir.rs"]
mod dir;
use dir::Dir;

/// Runs `cmd`, killing it (and failing) past `TIMEOUT`.
fn output(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "no result after {TIMEOUT:?}: a rank hangs; stderr: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `mpirun` with `apps`: one (rank count, arguments) per application
/// context (`-n 1 a : -n 2 b`), more ranks than cores allowed, as root too.
fn mpirun(apps: &[(usize, Vec<String>)]) -> Output {
    mpirun_env(apps, &[])
}

/// [`mpirun`] with environment variables set on every rank.
fn mpirun_env(apps: &[(usize, Vec<String>)], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("mpirun");
    cmd.arg("--oversubscribe");
    cmd.args(["-x", "WGPU_LOSS_CACHE=off"]);
    for (k, v) in env {
        cmd.args(["-x", &format!("{k}={v}")]);
    }
    let root = fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if root {
        cmd.arg("--allow-run-as-root");
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1");
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    // Shared memory between the ranks of one machine, without the kernel's
    // cross-memory attach that containers often forbid.
    cmd.args(["--mca", "btl", "self,vader"]);
    cmd.args(["--mca", "btl_vader_single_copy_mechanism", "none"]);
    for (k, (n, args)) in apps.iter().enumerate() {
        if k > 0 {
            cmd.arg(":");
        }
        cmd.args(["-n", &n.to_string(), BIN]);
        cmd.args(args);
    }
    output(cmd)
}

fn one_process(args: &[String]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("WGPU_LOSS_CACHE", "off");
    output(cmd)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(o: &Output, what: &str) -> Value {
    assert!(o.status.success(), "{what}: {}", stderr(o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(lines.len(), 1, "{what}: one JSON line (rank 0's): {out}");
    serde_json::from_str(lines[0]).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn uniform(r: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

struct Case {
    name: &'static str,
    args: Vec<String>,
    /// Output flags and file names.
    outputs: Vec<(&'static str, &'static str)>,
}

fn cases(dir: &Dir) -> Vec<Case> {
    let mut r = ChaCha8Rng::seed_from_u64(51);
    let n = 30_011;
    let (x, y) = (uniform(&mut r, n, -2.0, 2.0), uniform(&mut r, n, -2.0, 2.0));
    let (xf, yf) = (dir.f32("x.npy", &[n], &x), dir.f32("y.npy", &[n], &y));

    // 3 ranks take 1000 rows each: the last holds only ignored rows. Class
    // weights of small integers keep every sum of them exact.
    let (rows, c) = (3_000, 6);
    let logits = uniform(&mut r, rows * c, -4.0, 4.0);
    let classes: Vec<i64> = (0..rows)
        .map(|i| {
            if i >= 2_000 || i % 13 == 0 {
                -100
            } else {
                r.random_range(0..c as i64)
            }
        })
        .collect();
    let w: Vec<f32> = (0..c).map(|_| r.random_range(1..4) as f32).collect();
    let (lf, cf, wf) = (
        dir.f32("l.npy", &[rows, c], &logits),
        dir.i64("c.npy", &[rows], &classes),
        dir.f32("w.npy", &[c], &w),
    );

    // Class 3 only in the first entries: absent from the other ranks' shares.
    let (dn, dc, dh) = (90, 4, 25);
    let dx = uniform(&mut r, dn * dc * dh, -3.0, 3.0);
    let dy: Vec<i64> = (0..dn * dh)
        .map(|i| if i < 200 { 3 } else { r.random_range(0..3) })
        .collect();
    let (dxf, dyf) = (
        dir.f32("dx.npy", &[dn, dc, dh], &dx),
        dir.i64("dy.npy", &[dn, dh], &dy),
    );

    let (kr, kc) = (1_001, 8);
    let (kx, kt) = (
        dir.f32("kx.npy", &[kr, kc], &uniform(&mut r, kr * kc, -5.0, 0.0)),
        dir.f32("kt.npy", &[kr, kc], &uniform(&mut r, kr * kc, 0.0, 1.0)),
    );

    let (pr, d) = (1_003, 11);
    let (af, bf, qf) = (
        dir.f32("a.npy", &[pr, d], &uniform(&mut r, pr * d, -2.0, 2.0)),
        dir.f32("b.npy", &[pr, d], &uniform(&mut r, pr * d, -2.0, 2.0)),
        dir.f32("q.npy", &[pr, d], &uniform(&mut r, pr * d, -2.0, 2.0)),
    );

    // The same logits as bf16 in one .safetensors file beside the classes
    // and weights: the ranks map their shares of it and write a bf16
    // gradient file in place.
    let st = dir.bf16_batch("ce.safetensors", &logits, c, &classes, &w);
    let named = |n: &str| format!("{st}:{n}");

    let e = "eval";
    vec![
        Case {
            name: "mse none",
            args: strings(&[
                e,
                "mse",
                "--input",
                &xf,
                "--target",
                &yf,
                "--reduction",
                "none",
            ]),
            outputs: vec![("out", "o.npy"), ("grad-out", "g.npy")],
        },
        Case {
            name: "cross_entropy mean",
            args: strings(&[
                e,
                "cross_entropy",
                "--input",
                &lf,
                "--target",
                &cf,
                "--weight",
                &wf,
            ]),
            outputs: vec![("grad-out", "g.npy")],
        },
        Case {
            name: "dice mean",
            args: strings(&[
                e,
                "dice",
                "--input",
                &dxf,
                "--target",
                &dyf,
                "--from-logits",
            ]),
            outputs: vec![],
        },
        Case {
            name: "kl_div batchmean",
            args: strings(&[
                e,
                "kl_div",
                "--input",
                &kx,
                "--target",
                &kt,
                "--reduction",
                "batchmean",
            ]),
            outputs: vec![("grad-out", "g.npy")],
        },
        Case {
            name: "triplet_margin mean",
            args: strings(&[
                e,
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
        },
        Case {
            name: "cross_entropy mean bf16",
            args: strings(&[
                e,
                "cross_entropy",
                "--input",
                &named("logits"),
                "--target",
                &named("classes"),
                "--weight",
                &named("weight"),
            ]),
            outputs: vec![("grad-out", "g.safetensors")],
        },
    ]
}

/// 1, 2 and 3 ranks give one process's value within 1e-6 relative, the
/// reference's check passing on every rank, and one process's files byte
/// for byte; rank 0 alone prints, with the rank count and each rank's share.
#[test]
fn ranks_give_one_process_results() {
    let dir = Dir::new("mpi", "values");
    let cases = cases(&dir);
    let inputs = dir.names();
    for case in &cases {
        let with_outputs = |tag: &str| {
            let mut args = case.args.clone();
            for (flag, file) in &case.outputs {
                args.push(format!("--{flag}"));
                args.push(dir.path(&format!("{tag}-{file}")));
            }
            args.push("--json".into());
            args
        };
        let one = json_of(&one_process(&with_outputs("one")), case.name);
        let want = one["value"].as_f64().unwrap();
        for k in 1..=3 {
            let what = format!("{} on {k} ranks", case.name);
            let tag = format!("k{k}");
            let doc = json_of(&mpirun(&[(k, with_outputs(&tag))]), &what);
            let got = doc["value"].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-6 * want.abs(),
                "{what}: {got} vs one process {want}"
            );
            assert_eq!(doc["ranks"], k, "{what}: {doc}");
            assert!(doc["cpu_reference"].is_number(), "{what}: {doc}");
            let shares = doc["shares"].as_array().unwrap();
            assert_eq!(shares.len(), k, "{what}: {doc}");
            for (r, s) in shares.iter().enumerate() {
                assert_eq!(s["rank"], r, "{what}: {doc}");
            }
            for (_, file) in &case.outputs {
                let (a, b) = (
                    dir.path(&format!("one-{file}")),
                    dir.path(&format!("{tag}-{file}")),
                );
                assert!(
                    fs::read(&a).unwrap() == fs::read(&b).unwrap(),
                    "{what}: {file} differs from one process's"
                );
                fs::remove_file(b).unwrap();
            }
        }
        for (_, file) in &case.outputs {
            fs::remove_file(dir.path(&format!("one-{file}"))).unwrap();
        }
        assert_eq!(dir.names(), inputs, "{}: no file left", case.name);
    }
}

/// A rank given a file it cannot read fails, and so does every other rank,
/// promptly: every rank exits non-zero, rank 0 prints the failing rank's
/// message, and nothing is written. The same for a disagreement with the
/// reference on every rank (exit 3).
#[test]
fn a_failing_rank_fails_every_rank() {
    let dir = Dir::new("mpi", "failing");
    let cases = cases(&dir);
    let good = &cases[0].args;
    let mut bad = good.clone();
    let unreadable = dir.path("not-a-file.npy");
    fs::create_dir(&unreadable).unwrap();
    bad[3] = unreadable.clone();
    let inputs = dir.names();
    let outs = |args: &[String]| {
        let mut a = args.to_vec();
        a.extend(strings(&[
            "--out",
            &dir.path("o.npy"),
            "--grad-out",
            &dir.path("g.npy"),
        ]));
        a
    };
    let o = mpirun(&[(1, outs(good)), (1, outs(&bad)), (1, outs(good))]);
    assert!(!o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("rank 1 of 3") && err.contains("not-a-file.npy"),
        "{err}"
    );
    assert_eq!(dir.names(), inputs, "nothing written");

    // Each rank takes one adapter: splitting a rank's share across adapters
    // is refused on every rank.
    let mut split = good.clone();
    split.extend(strings(&["--adapters", "all"]));
    let o = mpirun(&[(2, split)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--adapters all: under mpirun"),
        "{}",
        stderr(&o)
    );

    let o = mpirun_env(&[(2, outs(good))], &[("WGPU_LOSS_TEST_SKEW_GPU", "1.01")]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the float64 reference"),
        "{}",
        stderr(&o)
    );
    assert_eq!(dir.names(), inputs, "nothing written");
}
