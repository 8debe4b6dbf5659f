//! The `wgpu-loss` binary end to end: .npy (and .safetensors, `half_files`) files
//! in, a JSON line or a file out, and one-line errors with the right exit code for bad input.

// The binary and `wgpu_loss::cli` exist only with the `cli` feature.
#![cfg(feature = "cli")]

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use wgpu_loss::{Pairs, Pointwise, Rows};

use npyz::WriterBuilder;
use serde_json::Value;
use wgpu_loss::cli::npy::{self, Data};
use wgpu_loss::{cpu, Inputs, Loss, Reduction, Tensor};

const BIN: &str = env!("CARGO_BIN_EXE_wgpu-loss");

/// f16 and bf16 files, `.safetensors` in and out.
#[path = "cli/half_files.rs"]
mod half_files;

/// A fresh directory per test, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("wgpu-loss-cli-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    fn f32(&self, file: &str, shape: &[usize], data: &[f32]) -> String {
        let path = self.path(file);
        npy::write_f32(&path, shape, data).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn i64(&self, file: &str, shape: &[usize], data: &[i64]) -> String {
        let path = self.path(file);
        npy::write_i64(&path, shape, data).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// Written by npyz, an independent writer.
    fn npyz<T: npyz::AutoSerialize + Copy>(
        &self,
        file: &str,
        shape: &[u64],
        data: &[T],
        order: npyz::Order,
    ) -> String {
        let path = self.path(file);
        let mut out = std::io::BufWriter::new(fs::File::create(&path).unwrap());
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .order(order)
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
        path.to_str().unwrap().to_string()
    }

    /// A hand-made file: any descr, order and shape text, any body.
    fn raw(&self, file: &str, descr: &str, fortran: bool, shape: &str, body: &[u8]) -> String {
        let order = if fortran { "True" } else { "False" };
        let dict =
            format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}\n");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend_from_slice(body);
        let path = self.path(file);
        fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary with the tuner's cache off, so that the suite leaves no
/// file in the user's cache directory.
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("WGPU_LOSS_CACHE", "off")
        .output()
        .expect("run wgpu-loss")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and parses the JSON line, failing with stderr on a non-zero exit.
fn json(args: &[&str]) -> Value {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "one JSON line: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-4 * want.abs() + 1e-6
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A usage/input error: exit 2, one line on stderr naming `key`, no panic.
fn rejects(args: &[&str], key: &str) {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{args:?}: exit code; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: one line expected: {err}"
    );
    assert!(err.contains(key), "{args:?}: `{key}` not in: {err}");
    assert!(o.stdout.is_empty(), "{args:?}: nothing on stdout");
}

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 250.0 - 2.0)
        .collect()
}

#[test]
fn json_value_matches_the_cpu_reference() {
    let dir = Dir::new("json");
    let shape = [37, 29];
    let (x, y) = (data(37 * 29, 1), data(37 * 29, 2));
    let (xf, yf) = (dir.f32("x.npy", &shape, &x), dir.f32("y.npy", &shape, &y));
    let inputs = Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape));
    for (loss, reduction, extra) in [
        (Loss::Pointwise(Pointwise::Mse), Reduction::Mean, vec![]),
        (
            Loss::Pointwise(Pointwise::Huber { delta: 0.5 }),
            Reduction::Sum,
            vec!["--delta", "0.5"],
        ),
        (
            Loss::Pointwise(Pointwise::SmoothL1 { beta: 1.0 }),
            Reduction::Mean,
            vec![],
        ),
        (
            Loss::Pointwise(Pointwise::BceWithLogits),
            Reduction::Mean,
            vec![],
        ),
    ] {
        let want = cpu::evaluate(&loss, reduction, &inputs).unwrap().value;
        let mut args = vec![
            "eval",
            loss.name(),
            "--input",
            &xf,
            "--target",
            &yf,
            "--reduction",
            reduction.name(),
            "--json",
        ];
        args.extend(extra);
        let j = json(&args);
        let (value, reference) = (num(&j["value"]), num(&j["cpu_reference"]));
        assert!(
            close(reference, want),
            "{}: cpu_reference {reference} vs {want}",
            loss.name()
        );
        assert!(
            close(value, want),
            "{}: value {value} vs {want}",
            loss.name()
        );
        assert_eq!(j["loss"], loss.name());
        assert_eq!(j["reduction"], reduction.name());
        assert_eq!(j["n"], 37 * 29);
        assert_eq!(j["items"], 37 * 29);
        assert!(
            j["adapter"]["name"].is_string() && j["adapter"]["backend"].is_string(),
            "{j}"
        );
        assert!(j["gpu_ms"].as_f64().unwrap() >= 0.0);
        assert!(j["params"].is_object());
    }
    let j = json(&[
        "eval", "huber", "--input", &xf, "--target", &yf, "--delta", "0.1", "--json",
    ]);
    assert_eq!(j["params"]["delta"], 0.1);
    let j = json(&[
        "eval",
        "sigmoid_focal",
        "--input",
        &xf,
        "--target",
        &dir.f32("t.npy", &shape, &vec![1.0; 37 * 29]),
        "--json",
    ]);
    assert_eq!(
        j["params"],
        serde_json::json!({ "alpha": 0.25, "gamma": 2.0 })
    );
}

#[test]
fn human_line() {
    let dir = Dir::new("human");
    let (x, y) = (
        dir.f32("x.npy", &[4], &[1.0, 2.0, 3.0, 4.0]),
        dir.f32("y.npy", &[4], &[1.0, 2.0, 3.0, 6.0]),
    );
    let o = run(&["eval", "mse", "--input", &x, "--target", &y]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("mse mean = 1 (cpu reference 1, 4 items, "),
        "{out}"
    );
    assert!(out.trim_end().ends_with(" ms)"), "{out}");
}

#[test]
fn float64_and_integer_files() {
    let dir = Dir::new("dtypes");
    let x: Vec<f64> = (0..60).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
    let y: Vec<f64> = (0..60).map(|i| (i as f64 * 0.11).cos()).collect();
    let xf = dir.npyz("x64.npy", &[5, 12], &x, npyz::Order::C);
    let yf = dir.npyz("y64.npy", &[5, 12], &y, npyz::Order::C);
    let (x32, y32): (Vec<f32>, Vec<f32>) = (
        x.iter().map(|v| *v as f32).collect(),
        y.iter().map(|v| *v as f32).collect(),
    );
    let shape = [5, 12];
    let want = cpu::evaluate(
        &Loss::Pointwise(Pointwise::L1),
        Reduction::Mean,
        &Inputs::new(Tensor::new(&x32, &shape)).target(Tensor::new(&y32, &shape)),
    )
    .unwrap()
    .value;
    let j = json(&["eval", "l1", "--input", &xf, "--target", &yf, "--json"]);
    assert!(
        close(num(&j["value"]), want) && close(num(&j["cpu_reference"]), want),
        "{j} vs {want}"
    );

    // Integer 0/1 targets of a float loss are read as floats.
    let mask: Vec<u8> = (0..60).map(|i| (i % 3 == 0) as u8).collect();
    let maskf = dir.npyz("mask.npy", &[5, 12], &mask, npyz::Order::C);
    let m32: Vec<f32> = mask.iter().map(|v| *v as f32).collect();
    let want = cpu::evaluate(
        &Loss::Pointwise(Pointwise::BceWithLogits),
        Reduction::Sum,
        &Inputs::new(Tensor::new(&x32, &shape)).target(Tensor::new(&m32, &shape)),
    )
    .unwrap()
    .value;
    let j = json(&[
        "eval",
        "bce_with_logits",
        "--input",
        &xf,
        "--target",
        &maskf,
        "--reduction",
        "sum",
        "--json",
    ]);
    assert!(close(num(&j["value"]), want), "{j} vs {want}");

    // Class indices as int32 and int64: read as classes, checked against C = 12.
    let ok32 = dir.npyz("ok32.npy", &[5], &[0i32, 11, 3, -100, 7], npyz::Order::C);
    let ok64 = dir.npyz("ok64.npy", &[5], &[0i64, 11, 3, -100, 7], npyz::Order::C);
    let bad32 = dir.npyz("bad32.npy", &[5], &[0i32, 12, 3, 4, 7], npyz::Order::C);
    let bad64 = dir.npyz("bad64.npy", &[5], &[0i64, 1, -1, 4, 7], npyz::Order::C);
    rejects(
        &["eval", "cross_entropy", "--input", &xf, "--target", &bad32],
        "target[1] = 12 is not a class",
    );
    rejects(
        &["eval", "nll", "--input", &xf, "--target", &bad64],
        "target[2] = -1 is not a class",
    );
    rejects(
        &["eval", "nll", "--input", &xf, "--target", &yf],
        "class indices",
    );
    let classes = [0i64, 11, 3, -100, 7];
    for (file, loss) in [
        (&ok32, Loss::from_name("cross_entropy").unwrap()),
        (&ok64, Loss::from_name("nll").unwrap()),
    ] {
        let want = cpu::evaluate(
            &loss,
            Reduction::Mean,
            &Inputs::new(Tensor::new(&x32, &shape)).classes(&classes, &[5]),
        )
        .unwrap()
        .value;
        let j = json(&[
            "eval",
            loss.name(),
            "--input",
            &xf,
            "--target",
            file,
            "--json",
        ]);
        assert!(
            close(num(&j["value"]), want) && close(num(&j["cpu_reference"]), want),
            "{j} vs {want}"
        );
    }
}

#[test]
fn out_writes_the_items_in_pytorch_shape() {
    let dir = Dir::new("out");
    let shape = [2, 3, 4];
    let (x, y) = (data(24, 5), data(24, 6));
    let (xf, yf) = (dir.f32("x.npy", &shape, &x), dir.f32("y.npy", &shape, &y));
    let out = dir.path("items.npy");
    let j = json(&[
        "eval",
        "bce_with_logits",
        "--input",
        &xf,
        "--target",
        &yf,
        "--reduction",
        "none",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let want = cpu::evaluate(
        &Loss::Pointwise(Pointwise::BceWithLogits),
        Reduction::None,
        &Inputs::new(Tensor::new(&x, &shape)).target(Tensor::new(&y, &shape)),
    )
    .unwrap();
    assert_eq!(j["items"], 24);
    assert!(close(num(&j["value"]), want.value), "{j}");
    let got = npy::read(&out).unwrap();
    assert_eq!(got.shape, vec![2, 3, 4]);
    assert_eq!(got.dtype, "<f4");
    let Data::F32(items) = got.data else {
        panic!("float32 items")
    };
    for (i, (g, w)) in items.iter().zip(&want.items).enumerate() {
        assert!(close(*g as f64, *w), "item {i}: {g} vs {w}");
    }
    // npyz reads what we wrote.
    let bytes = fs::read(&out).unwrap();
    let file = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(file.shape(), &[2, 3, 4]);
    assert_eq!(file.into_vec::<f32>().unwrap(), items);

    // 0-d input: a 0-d output.
    let (s, t) = (dir.f32("s.npy", &[], &[3.0]), dir.f32("t.npy", &[], &[1.0]));
    let out0 = dir.path("scalar.npy");
    let o = run(&[
        "eval",
        "mse",
        "--input",
        &s,
        "--target",
        &t,
        "--reduction",
        "none",
        "--out",
        out0.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = npy::read(&out0).unwrap();
    assert_eq!((got.shape, got.data), (vec![], Data::F32(vec![4.0])));
    assert!(
        fs::read_dir(&dir.0).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")),
        "no temp files left"
    );
}

#[test]
fn out_is_untouched_when_evaluation_fails() {
    let dir = Dir::new("atomic");
    let out = dir.path("keep.npy");
    let before = dir.f32("keep.npy", &[2], &[7.0, 8.0]);
    let bytes = fs::read(&out).unwrap();
    let x = dir.f32("x.npy", &[3], &[1.0, 2.0, 3.0]);
    let y = dir.f32("y.npy", &[4], &[1.0, 2.0, 3.0, 4.0]);
    rejects(
        &[
            "eval",
            "mse",
            "--input",
            &x,
            "--target",
            &y,
            "--reduction",
            "none",
            "--out",
            &before,
        ],
        "shape",
    );
    rejects(
        &[
            "eval",
            "mse",
            "--input",
            &x,
            "--target",
            "/nonexistent/y.npy",
            "--reduction",
            "none",
            "--out",
            &before,
        ],
        "/nonexistent/y.npy",
    );
    rejects(
        &[
            "eval", "mse", "--input", &x, "--target", &x, "--out", &before,
        ],
        "--out",
    );
    assert_eq!(fs::read(&out).unwrap(), bytes);
    assert_eq!(
        fs::read_dir(&dir.0).unwrap().count(),
        3,
        "no temp files left"
    );
}

#[test]
fn bad_input_is_one_line_with_the_reason() {
    let dir = Dir::new("bad");
    let x = dir.f32("x.npy", &[4], &[0.1, 0.2, 0.3, 0.4]);
    let y = dir.f32("y.npy", &[4], &[0.0, 1.0, 1.0, 0.0]);
    let y5 = dir.f32("y5.npy", &[5], &[0.0; 5]);
    let rows = dir.f32("rows.npy", &[2, 3], &[0.0; 6]);
    let missing = dir.path("missing.npy");
    let missing = missing.to_str().unwrap();
    fs::write(dir.path("text.npy"), "just text").unwrap();
    let text = dir.path("text.npy");
    let text = text.to_str().unwrap();
    let truncated = dir.raw("truncated.npy", "<f4", false, "(4,)", &[0u8; 10]);
    let lying = dir.raw("lying.npy", "<f4", false, "(1000000000000,)", &[0u8; 16]);
    let fortran = dir.raw("fortran.npy", "<f4", true, "(2, 2)", &[0u8; 16]);
    let complex = dir.raw("complex.npy", "<c8", false, "(4,)", &[0u8; 32]);
    let unicode = dir.raw("unicode.npy", "<U3", false, "(4,)", &[0u8; 48]);
    let dir_path = dir.0.to_str().unwrap();
    let npz_fortran = dir.npyz(
        "npyz_fortran.npy",
        &[2, 2],
        &[1.0f32, 2.0, 3.0, 4.0],
        npyz::Order::Fortran,
    );

    let eval = |loss: &str, input: &str, target: &str, extra: &[&str], key: &str| {
        let mut args = vec!["eval", loss, "--input", input, "--target", target];
        args.extend_from_slice(extra);
        rejects(&args, key);
    };
    eval("mse", missing, &y, &[], "missing.npy");
    eval("mse", &x, missing, &[], "missing.npy");
    eval("mse", &x, text, &[], "not a .npy");
    eval("mse", &x, dir_path, &[], "directory");
    eval("mse", &x, &y5, &[], "shape");
    eval("mse", &x, &truncated, &[], "truncated");
    eval("mse", &x, &lying, &[], "truncated");
    eval("mse", &fortran, &y, &[], "Fortran");
    eval("mse", &npz_fortran, &y, &[], "Fortran");
    eval("mse", &complex, &y, &[], "complex");
    eval("mse", &x, &unicode, &[], "unicode");
    eval("bce", &x, &y5, &[], "shape");
    eval("bce", &y5, &y5, &["--weight", &rows], "weight");
    eval("huber", &x, &y, &["--delta", "0"], "delta");
    eval("huber", &x, &y, &["--delta", "-1"], "delta");
    eval("huber", &x, &y, &["--delta", "nan"], "delta");
    eval("huber", &x, &y, &["--delta", "abc"], "--delta");
    eval(
        "cross_entropy",
        &rows,
        &y,
        &["--label-smoothing", "1.5"],
        "label_smoothing",
    );
    eval("dice", &rows, &y, &["--mode", "multiway"], "mode");
    eval(
        "dice",
        &rows,
        &y,
        &["--from-logits", "maybe"],
        "--from-logits",
    );
    eval(
        "mse",
        &x,
        &y,
        &["--delta", "1"],
        "--delta does not apply to mse",
    );
    eval(
        "cross_entropy",
        &rows,
        &y,
        &["--swap"],
        "--swap does not apply to cross_entropy",
    );
    eval("mse", &x, &y, &["--reduction", "median"], "reduction");
    eval("mse", &x, &y, &["--reduction", "batchmean"], "batchmean");
    eval("mse", &x, &y, &["--out", "o.npy"], "--out");
    eval("mse", &x, &y, &["--bogus"], "--bogus");
    eval("mse", &x, &y, &["--labels", &y], "labels");
    eval("quantile", &x, &y, &["--quantiles", "0.1,x"], "quantiles");
    eval("quantile", &x, &y, &["--quantiles", "0.1,1.5"], "quantiles");
    eval(
        "bce",
        &x,
        &dir.f32("p.npy", &[4], &[0.0, 2.0, 0.5, 1.0]),
        &[],
        "outside [0, 1]",
    );
    eval(
        "softmax",
        &x,
        &y,
        &[],
        "unknown loss `softmax` (one of: mse, l1,",
    );
    rejects(
        &[
            "eval",
            "triplet_margin",
            "--input",
            &rows,
            "--positive",
            &rows,
            "--negative",
            &rows,
            "--margin",
            "0",
        ],
        "margin",
    );
    rejects(
        &[
            "eval",
            "triplet_margin",
            "--input",
            &rows,
            "--positive",
            &rows,
        ],
        "negative",
    );
    rejects(&["eval", "mse", "--input", &x], "target");
    rejects(&["eval", "mse", "--target", &y], "--input");
    rejects(&["frobnicate"], "frobnicate");
}

#[test]
fn no_adapter_is_a_gpu_error() {
    let dir = Dir::new("noadapter");
    let x = dir.f32("x.npy", &[2], &[1.0, 2.0]);
    let o = Command::new(BIN)
        .args(["eval", "mse", "--input", &x, "--target", &x])
        .env("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Drivers may log their own lines first; ours is the last.
    let last = err.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: no GPU adapter found") && last.contains("mesa-vulkan-drivers"),
        "{err}"
    );
}

#[test]
fn non_finite_json_values_are_strings() {
    let dir = Dir::new("nan");
    let e = dir.f32("e.npy", &[0], &[]);
    let j = json(&["eval", "mse", "--input", &e, "--target", &e, "--json"]);
    assert_eq!(j["value"], "NaN");
    assert_eq!(j["cpu_reference"], "NaN");
    assert_eq!((j["n"].as_u64(), j["items"].as_u64()), (Some(0), Some(0)));
    let j = json(&[
        "eval",
        "mse",
        "--input",
        &e,
        "--target",
        &e,
        "--reduction",
        "sum",
        "--json",
    ]);
    assert_eq!(j["value"], 0.0);
    let zero = dir.f32("zero.npy", &[1], &[0.0]);
    let one = dir.f32("one.npy", &[1], &[1.0]);
    let inf = dir.f32("inf.npy", &[1], &[f32::INFINITY]);
    let j = json(&[
        "eval", "kl_div", "--input", &inf, "--target", &one, "--json",
    ]);
    assert_eq!(
        (&j["value"], &j["cpu_reference"]),
        (&"-inf".into(), &"-inf".into())
    );
    let ninf = dir.f32("ninf.npy", &[1], &[f32::NEG_INFINITY]);
    let j = json(&["eval", "l1", "--input", &ninf, "--target", &zero, "--json"]);
    assert_eq!(
        (&j["value"], &j["cpu_reference"]),
        (&"inf".into(), &"inf".into())
    );
    let j = json(&["eval", "mse", "--input", &ninf, "--target", &ninf, "--json"]);
    assert_eq!(j["value"], "NaN");
    let o = run(&["eval", "mse", "--input", &e, "--target", &e]);
    assert!(
        stdout(&o).starts_with("mse mean = NaN (cpu reference NaN, 0 items"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn class_targets_of_ints_and_ignore_index() {
    let dir = Dir::new("classes");
    let x = dir.f32("x.npy", &[3, 4], &data(12, 9));
    let t = dir.i64("t.npy", &[3], &[1, 5, 2]);
    rejects(
        &["eval", "cross_entropy", "--input", &x, "--target", &t],
        "target[1] = 5",
    );
    let x32 = data(12, 9);
    let classes = [1i64, 5, 2];
    let weight = [0.5f32, 1.0, 2.0, 1.5];
    let w = dir.f32("w.npy", &[4], &weight);
    let loss = Loss::Rows(Rows::CrossEntropy {
        ignore_index: 5,
        label_smoothing: 0.2,
    });
    let inputs = Inputs::new(Tensor::new(&x32, &[3, 4]))
        .classes(&classes, &[3])
        .weight(Tensor::new(&weight, &[4]));
    let want = cpu::evaluate(&loss, Reduction::None, &inputs).unwrap();
    let out = dir.path("ce.npy");
    let args = [
        "eval",
        "cross_entropy",
        "--input",
        &x,
        "--target",
        &t,
        "--weight",
        &w,
        "--ignore-index",
        "5",
        "--label-smoothing",
        "0.2",
        "--reduction",
        "none",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    let j = json(&args);
    assert_eq!(
        j["params"],
        serde_json::json!({ "ignore_index": 5, "label_smoothing": 0.2 })
    );
    assert!(close(num(&j["value"]), want.value), "{j} vs {}", want.value);
    let got = npy::read(&out).unwrap();
    assert_eq!(got.shape, vec![3]);
    let Data::F32(items) = got.data else {
        panic!("float32 items")
    };
    assert_eq!(items[1], 0.0, "the ignored row");
    for (g, w) in items.iter().zip(&want.items) {
        assert!(close(*g as f64, *w), "{g} vs {w}");
    }

    // A float target of the input's shape holds probabilities.
    let probs: Vec<f32> = (0..12).map(|i| [0.1, 0.2, 0.3, 0.4][i % 4]).collect();
    let p = dir.f32("p.npy", &[3, 4], &probs);
    let loss = Loss::from_name("cross_entropy").unwrap();
    let inputs = Inputs::new(Tensor::new(&x32, &[3, 4])).target(Tensor::new(&probs, &[3, 4]));
    let want = cpu::evaluate(&loss, Reduction::Mean, &inputs)
        .unwrap()
        .value;
    let j = json(&[
        "eval",
        "cross_entropy",
        "--input",
        &x,
        "--target",
        &p,
        "--json",
    ]);
    assert!(
        close(num(&j["value"]), want) && close(num(&j["cpu_reference"]), want),
        "{j} vs {want}"
    );
}

/// Runs `args` with `--json` expected to succeed with `want`.
fn json_matching(args: &[&str], want: f64) -> Option<Value> {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        close(num(&j["value"]), want) && close(num(&j["cpu_reference"]), want),
        "{args:?}: {j} vs {want}"
    );
    Some(j)
}

#[test]
fn pair_and_dice_losses_read_their_tensors() {
    let dir = Dir::new("pairs");
    let shape = [6, 5];
    let (a, p, n) = (data(30, 11), data(30, 12), data(30, 13));
    let (af, pf, nf) = (
        dir.f32("a.npy", &shape, &a),
        dir.f32("p.npy", &shape, &p),
        dir.f32("n.npy", &shape, &n),
    );
    let (at, pt, nt) = (
        Tensor::new(&a, &shape),
        Tensor::new(&p, &shape),
        Tensor::new(&n, &shape),
    );

    let loss = Loss::Pairs(Pairs::TripletMargin {
        margin: 0.5,
        p: 1.0,
        eps: 1e-6,
        swap: true,
    });
    let want = cpu::evaluate(
        &loss,
        Reduction::Sum,
        &Inputs::new(at).positive(pt).negative(nt),
    )
    .unwrap()
    .value;
    let args = [
        "eval",
        "triplet_margin",
        "--input",
        &af,
        "--positive",
        &pf,
        "--negative",
        &nf,
        "--margin",
        "0.5",
        "--p",
        "1",
        "--swap",
        "--reduction",
        "sum",
        "--json",
    ];
    if let Some(j) = json_matching(&args, want) {
        assert_eq!(
            j["params"],
            serde_json::json!({ "margin": 0.5, "p": 1.0, "eps": 1e-6, "swap": true })
        );
    }

    // Labels as an int file: converted to floats.
    let labels = dir.npyz(
        "labels.npy",
        &[6],
        &[1i32, -1, 1, -1, -1, 1],
        npyz::Order::C,
    );
    let lf = [1.0f32, -1.0, 1.0, -1.0, -1.0, 1.0];
    let loss = Loss::Pairs(Pairs::CosineEmbedding { margin: 0.1 });
    let inputs = Inputs::new(at).target(pt).labels(Tensor::new(&lf, &[6]));
    let want = cpu::evaluate(&loss, Reduction::Mean, &inputs)
        .unwrap()
        .value;
    let args = [
        "eval",
        "cosine_embedding",
        "--input",
        &af,
        "--target",
        &pf,
        "--labels",
        &labels,
        "--margin",
        "0.1",
        "--json",
    ];
    json_matching(&args, want);

    // Dice: class-index masks as int64; `none` is one value per class.
    let logits = data(2 * 3 * 8, 14);
    let mask = [0i64, 1, 2, 1, 0, 2, 2, 1, 0, 0, 1, 2, 1, 1, 2, 0];
    let (lf, mf) = (
        dir.f32("logits.npy", &[2, 3, 8], &logits),
        dir.i64("mask.npy", &[2, 8], &mask),
    );
    let loss = Loss::from_name("dice").unwrap();
    let inputs = Inputs::new(Tensor::new(&logits, &[2, 3, 8])).classes(&mask, &[2, 8]);
    let want = cpu::evaluate(&loss, Reduction::None, &inputs).unwrap();
    let out = dir.path("dice.npy");
    let args = [
        "eval",
        "dice",
        "--input",
        &lf,
        "--target",
        &mf,
        "--reduction",
        "none",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    if json_matching(&args, want.value).is_some() {
        let got = npy::read(&out).unwrap();
        assert_eq!(got.shape, vec![3], "one value per class");
        let Data::F32(items) = got.data else {
            panic!("float32 items")
        };
        for (g, w) in items.iter().zip(&want.items) {
            assert!(close(*g as f64, *w), "{g} vs {w}");
        }
    } else {
        assert!(!out.exists(), "nothing written when the evaluation fails");
    }
    rejects(
        &[
            "eval", "dice", "--input", &lf, "--target", &mf, "--mode", "binary",
        ],
        "shape",
    );
    let m3 = dir.i64("m3.npy", &[2, 8], &[3; 16]);
    rejects(
        &["eval", "dice", "--input", &lf, "--target", &m3],
        "target[0] = 3",
    );
}

#[test]
fn demo_agrees_with_the_reference() {
    let o = run(&["demo"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.starts_with("adapter: "), "{out}");
    assert!(out.lines().any(|l| l.starts_with("mse ")), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("bce_with_logits ")),
        "{out}"
    );
    assert!(out.lines().last().unwrap().starts_with("ok: "), "{out}");
}

#[test]
fn adapters_are_listed() {
    let o = run(&["adapters"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).lines().next().unwrap().starts_with("0: "),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bench_writes_records_and_a_plot() {
    let dir = Dir::new("bench");
    let svg = dir.path("bench.svg");
    let o = run(&[
        "bench",
        "--loss",
        "mse,cross_entropy",
        "--sizes",
        "4096",
        "--max-runs",
        "5",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(records.len(), 4, "{}", stdout(&o));
    let expected = [
        ("mse", "forward"),
        ("mse", "fused"),
        ("cross_entropy", "forward"),
        ("cross_entropy", "fused"),
    ];
    for (r, (loss, call)) in records.iter().zip(expected) {
        assert_eq!(r["loss"], loss);
        assert_eq!(r["call"], call);
        if call == "fused" {
            let v = num(&r["vs_forward"]);
            assert!(v.is_finite() && v > 0.0, "{r}");
        } else {
            assert!(r.get("vs_forward").is_none(), "{r}");
        }
        assert!(r["n"].as_u64().unwrap() >= 4096, "{r}");
        assert!(r["bytes"].as_u64().unwrap() >= 4 * 4096, "{r}");
        for key in ["gpu_ms", "gbps", "copy_gbps", "efficiency", "roundtrip_ms"] {
            let v = num(&r[key]);
            assert!(v.is_finite() && v > 0.0, "{key}: {r}");
        }
        assert!(num(&r["dispatches"]) >= 1.0, "{r}");
        assert_eq!(num(&r["submits"]), 1.0, "{r}");
        assert!(r["adapter"].as_str().is_some_and(|a| !a.is_empty()), "{r}");
    }
    let svg = fs::read_to_string(&svg).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("cross_entropy"),
        "{svg}"
    );

    // The fused call moves the gradient too.
    for pair in records.chunks(2) {
        assert!(num(&pair[1]["bytes"]) > num(&pair[0]["bytes"]), "{pair:?}");
    }
    let o = run(&[
        "bench",
        "--loss",
        "mse",
        "--sizes",
        "4096",
        "--max-runs",
        "3",
        "--calls",
        "fused",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("mse")).collect();
    assert!(rows.len() == 1 && rows[0].contains("fused"), "{table}");
    rejects(&["bench", "--calls", "backward"], "unknown call `backward`");
    rejects(&["bench", "--loss", "softmax"], "unknown loss `softmax`");
    rejects(&["bench", "--sizes", "0"], "--sizes");
}

/// The float32 array of an .npy file and its shape.
fn read_f32(path: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let got = npy::read(path).unwrap();
    assert_eq!(got.dtype, "<f4", "{}", path.display());
    let Data::F32(v) = got.data else {
        panic!("float32 gradient")
    };
    (got.shape, v)
}

fn assert_grad(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(close(*g as f64, *w), "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn grad_out_writes_the_input_gradient() {
    let dir = Dir::new("grad");
    // An elementwise loss with a broadcast weight.
    let shape = [2, 3, 4];
    let (x, y) = (data(24, 5), data(24, 6));
    let y: Vec<f32> = y.iter().map(|v| (v + 2.0) / 4.0).collect();
    let pw = [0.5f32, 1.0, 2.0, 3.0];
    let (xf, yf, pf) = (
        dir.f32("x.npy", &shape, &x),
        dir.f32("y.npy", &shape, &y),
        dir.f32("pw.npy", &[4], &pw),
    );
    let g = dir.path("g.npy");
    let j = json(&[
        "eval",
        "bce_with_logits",
        "--input",
        &xf,
        "--target",
        &yf,
        "--pos-weight",
        &pf,
        "--grad-out",
        g.to_str().unwrap(),
        "--json",
    ]);
    let inputs = Inputs::new(Tensor::new(&x, &shape))
        .target(Tensor::new(&y, &shape))
        .pos_weight(Tensor::new(&pw, &[4]));
    let (want, grads) = cpu::gradient(
        &Loss::Pointwise(Pointwise::BceWithLogits),
        Reduction::Mean,
        &inputs,
        wgpu_loss::Upstream::Scalar(1.0),
    )
    .unwrap();
    assert!(close(num(&j["value"]), want.value), "{j}");
    assert_eq!(j["grad_out"], g.to_str().unwrap());
    let diff = num(&j["grad_max_abs_diff"]);
    assert!((0.0..1e-6).contains(&diff), "{j}");
    let (got_shape, got) = read_f32(&g);
    assert_eq!(got_shape, shape);
    assert_grad("bce_with_logits", &got, &grads.input);

    // cross_entropy on class indices, an ignored row and label smoothing:
    // the gradient is the logits', in their shape.
    let x = data(5 * 7, 8);
    let classes = [3i64, -100, 0, 6, 2];
    let (xf, tf) = (
        dir.f32("logits.npy", &[5, 7], &x),
        dir.i64("t.npy", &[5], &classes),
    );
    let g = dir.path("ce_grad.npy");
    let o = run(&[
        "eval",
        "cross_entropy",
        "--input",
        &xf,
        "--target",
        &tf,
        "--label-smoothing",
        "0.1",
        "--reduction",
        "sum",
        "--grad-out",
        g.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("gradient max |gpu - cpu|") && stdout(&o).contains("ce_grad.npy"),
        "{}",
        stdout(&o)
    );
    let loss = Loss::Rows(Rows::CrossEntropy {
        ignore_index: -100,
        label_smoothing: 0.1,
    });
    let inputs = Inputs::new(Tensor::new(&x, &[5, 7])).classes(&classes, &[5]);
    let (_, grads) = cpu::gradient(
        &loss,
        Reduction::Sum,
        &inputs,
        wgpu_loss::Upstream::Scalar(1.0),
    )
    .unwrap();
    let (got_shape, got) = read_f32(&g);
    assert_eq!(got_shape, vec![5, 7]);
    assert!(got[7..14].iter().all(|v| *v == 0.0), "the ignored row");
    assert_grad("cross_entropy", &got, &grads.input);
}

#[test]
fn grad_out_of_none_is_the_gradient_of_the_sum() {
    let dir = Dir::new("grad-none");
    let shape = [3, 5];
    let (x, y) = (data(15, 1), data(15, 2));
    let (xf, yf) = (dir.f32("x.npy", &shape, &x), dir.f32("y.npy", &shape, &y));
    let (g, items) = (dir.path("g.npy"), dir.path("items.npy"));
    let j = json(&[
        "eval",
        "mse",
        "--input",
        &xf,
        "--target",
        &yf,
        "--reduction",
        "none",
        "--out",
        items.to_str().unwrap(),
        "--grad-out",
        g.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(j["out"], items.to_str().unwrap());
    let (got_shape, got) = read_f32(&g);
    assert_eq!(got_shape, shape);
    // d/dx Σ (x − y)² = 2 (x − y).
    let want: Vec<f64> = x
        .iter()
        .zip(&y)
        .map(|(x, y)| 2.0 * (*x as f64 - *y as f64))
        .collect();
    assert_grad("mse none", &got, &want);
    assert_eq!(read_f32(&items).0, shape);
}

#[test]
fn grad_files_are_untouched_when_evaluation_fails() {
    let dir = Dir::new("grad-atomic");
    let keep = dir.f32("keep.npy", &[2], &[7.0, 8.0]);
    let bytes = fs::read(&keep).unwrap();
    let x = dir.f32("x.npy", &[3], &[1.0, 2.0, 3.0]);
    let y = dir.f32("y.npy", &[4], &[1.0, 2.0, 3.0, 4.0]);
    rejects(
        &[
            "eval",
            "mse",
            "--input",
            &x,
            "--target",
            &y,
            "--grad-out",
            &keep,
        ],
        "shape",
    );
    rejects(
        &[
            "eval",
            "mse",
            "--input",
            &x,
            "--target",
            "/nonexistent/y.npy",
            "--grad-out",
            &keep,
        ],
        "/nonexistent/y.npy",
    );
    // The gradient is checked like the value: a bce target outside [0, 1].
    rejects(
        &[
            "eval",
            "bce",
            "--input",
            &x,
            "--target",
            &x,
            "--grad-out",
            &keep,
        ],
        "outside [0, 1]",
    );
    assert_eq!(fs::read(&keep).unwrap(), bytes);
    assert_eq!(
        fs::read_dir(&dir.0).unwrap().count(),
        3,
        "no temp files left"
    );
}

#[test]
fn grad_flags_are_checked() {
    let dir = Dir::new("grad-flags");
    let shape = [4, 3];
    let (x, y) = (
        dir.f32("x.npy", &shape, &data(12, 3)),
        dir.f32("y.npy", &shape, &data(12, 4)),
    );
    let labels = dir.f32("l.npy", &[4], &[1.0, -1.0, 1.0, -1.0]);
    let g = dir.path("g.npy");
    let g = g.to_str().unwrap();
    let mse = ["eval", "mse", "--input", &x, "--target", &y];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }
    rejects(
        &with(&mse, &["--grad-target", g]),
        "--grad-target does not apply to mse (it is for cosine_embedding)",
    );
    rejects(
        &with(&mse, &["--grad-negative", g]),
        "--grad-negative does not apply to mse (it is for triplet_margin)",
    );
    rejects(
        &[
            "eval",
            "cosine_embedding",
            "--input",
            &x,
            "--target",
            &y,
            "--labels",
            &labels,
            "--grad-positive",
            g,
        ],
        "--grad-positive does not apply to cosine_embedding (it is for triplet_margin)",
    );
    rejects(
        &with(&mse, &["--grad-out", "/nonexistent/dir/g.npy"]),
        "directory /nonexistent/dir does not exist",
    );
    rejects(&with(&mse, &["--grad-out"]), "--grad-out");
    assert!(!dir.path("g.npy").exists());
}

#[test]
fn grad_flags_of_the_pair_losses() {
    let dir = Dir::new("grad-pairs");
    let shape = [6, 5];
    let (a, p, n) = (data(30, 11), data(30, 12), data(30, 13));
    let labels = [1.0f32, -1.0, 1.0, -1.0, 1.0, 1.0];
    let (af, pf, nf, lf) = (
        dir.f32("a.npy", &shape, &a),
        dir.f32("p.npy", &shape, &p),
        dir.f32("n.npy", &shape, &n),
        dir.f32("l.npy", &[6], &labels),
    );
    let path = |f: &str| dir.path(f).to_str().unwrap().to_string();
    let (ga, gp, gn, gt) = (
        path("ga.npy"),
        path("gp.npy"),
        path("gn.npy"),
        path("gt.npy"),
    );
    let before = dir.f32("gp.npy", &[1], &[5.0]);
    let kept = fs::read(&before).unwrap();
    let up = wgpu_loss::Upstream::Scalar(1.0);
    let (at, pt, nt) = (
        Tensor::new(&a, &shape),
        Tensor::new(&p, &shape),
        Tensor::new(&n, &shape),
    );

    // Until the GPU has these gradients: exit 1, one line, nothing written.
    let o = run(&[
        "eval",
        "triplet_margin",
        "--input",
        &af,
        "--positive",
        &pf,
        "--negative",
        &nf,
        "--grad-out",
        &ga,
        "--grad-positive",
        &gp,
        "--grad-negative",
        &gn,
        "--json",
    ]);
    if o.status.success() {
        let loss = Loss::from_name("triplet_margin").unwrap();
        let inputs = Inputs::new(at).positive(pt).negative(nt);
        let (_, want) = cpu::gradient(&loss, Reduction::Mean, &inputs, up).unwrap();
        for (file, w) in [
            (&ga, &want.input),
            (&gp, want.positive.as_ref().unwrap()),
            (&gn, want.negative.as_ref().unwrap()),
        ] {
            let (s, g) = read_f32(std::path::Path::new(file));
            assert_eq!(s, shape);
            assert_grad(file, &g, w);
        }
    } else {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("gradients of triplet_margin are not yet on the GPU"),
            "{}",
            stderr(&o)
        );
        assert_eq!(fs::read(&before).unwrap(), kept);
        assert!(!dir.path("ga.npy").exists() && !dir.path("gn.npy").exists());
    }

    let o = run(&[
        "eval",
        "cosine_embedding",
        "--input",
        &af,
        "--target",
        &pf,
        "--labels",
        &lf,
        "--grad-target",
        &gt,
    ]);
    if o.status.success() {
        let loss = Loss::from_name("cosine_embedding").unwrap();
        let inputs = Inputs::new(at)
            .target(pt)
            .labels(Tensor::new(&labels, &[6]));
        let (_, want) = cpu::gradient(&loss, Reduction::Mean, &inputs, up).unwrap();
        let (s, g) = read_f32(dir.path("gt.npy").as_path());
        assert_eq!(s, shape);
        assert_grad("x2", &g, want.target.as_ref().unwrap());
    } else {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("not yet on the GPU"), "{}", stderr(&o));
        assert!(!dir.path("gt.npy").exists());
    }
}

/// A GPU result the float64 reference does not confirm fails with exit code 3
/// and a message naming the loss and both values, and writes nothing. The
/// disagreement is forced through the test-only `WGPU_LOSS_TEST_SKEW_GPU`.
#[test]
fn a_disagreement_with_the_reference_fails_and_writes_nothing() {
    let dir = Dir::new("disagree");
    let x = dir.f32("x.npy", &[4], &[1.0, 2.0, 3.0, 4.0]);
    let y = dir.f32("y.npy", &[4], &[0.5, 2.5, 2.0, 4.0]);
    let out = dir.path("items.npy");
    let grad = dir.path("grad.npy");
    let args = [
        "eval",
        "mse",
        "--input",
        &x,
        "--target",
        &y,
        "--reduction",
        "none",
        "--out",
        out.to_str().unwrap(),
        "--grad-out",
        grad.to_str().unwrap(),
    ];
    let o = Command::new(BIN)
        .args(args)
        .env("WGPU_LOSS_TEST_SKEW_GPU", "1.01")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // Mesa's Vulkan loader may add its own lines; ours is the one error line.
    let msg = stderr(&o);
    let ours: Vec<&str> = msg
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect();
    assert_eq!(ours.len(), 1, "{msg}");
    let msg = ours[0];
    assert!(msg.contains("mse") && msg.contains("reference"), "{msg}");
    // 0.25 + 0.25 + 1 + 0 = 1.5, and the GPU's sum skewed by 1 %.
    assert!(msg.contains("1.5") && msg.contains("1.0e-2"), "{msg}");
    assert!(!out.exists() && !grad.exists(), "nothing is written");
    // Without the knob the same call agrees, exits 0 and writes both files.
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.exists() && grad.exists());
}

/// The tuner's environment variables, each in a process of its own: the
/// cache in the user's cache directory by default, moved by
/// `WGPU_LOSS_CACHE=<path>`, not written with `off`, a corrupt file ignored
/// with one warning; `WGPU_LOSS_VARIANT` forcing a variant, refusing one that
/// cannot run the batch, and rejecting an unknown name.
#[test]
fn tuning_follows_its_environment_variables() {
    let dir = Dir::new("tuning");
    let home = dir.path("home");
    let xdg = home.join("xdg");
    let file = dir.path("moved.json");
    let run = |vars: &[(&str, &str)]| -> Output {
        let mut c = Command::new(BIN);
        // 512 cosine rows of 256: enough values to be timed.
        c.args([
            "bench",
            "--loss",
            "cosine_embedding",
            "--sizes",
            "2^17",
            "--calls",
            "forward",
            "--min-runs",
            "1",
            "--max-runs",
            "1",
            "--seconds",
            "0",
            "--json",
        ])
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", &xdg)
        .env_remove("WGPU_LOSS_CACHE")
        .env_remove("WGPU_LOSS_VARIANT");
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().expect("run wgpu-loss")
    };
    let records = |o: &Output| -> Vec<Value> {
        assert!(o.status.success(), "{}", stderr(o));
        stdout(o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let entries = |path: &std::path::Path| -> Vec<Value> {
        let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        v["entries"].as_array().unwrap().clone()
    };

    // Unset: $XDG_CACHE_HOME/wgpu-loss/tune.json holds the record's variant.
    let o = run(&[]);
    let r = records(&o);
    assert_eq!(r.len(), 1, "{}", stdout(&o));
    assert_eq!(r[0]["chosen"], true);
    let variant = r[0]["variant"].as_str().unwrap().to_string();
    assert!(variant.starts_with("pair-"), "{variant}");
    let e = entries(&xdg.join("wgpu-loss").join("tune.json"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0]["loss"], "cosine_embedding");
    assert_eq!(e[0]["variant"], variant.as_str());

    // A path moves it; `off` writes nothing anywhere.
    let path = file.to_str().unwrap();
    records(&run(&[("WGPU_LOSS_CACHE", path)]));
    assert_eq!(entries(&file).len(), 1);
    fs::remove_dir_all(&home).unwrap();
    fs::remove_file(&file).unwrap();
    records(&run(&[("WGPU_LOSS_CACHE", "off")]));
    assert!(!home.exists() && !file.exists(), "off wrote a file");

    // A corrupt file: one warning, the run goes on, the file is written anew.
    fs::write(&file, "{\"version\": 1, \"entries\": [tru").unwrap();
    let o = run(&[("WGPU_LOSS_CACHE", path)]);
    assert_eq!(records(&o).len(), 1);
    let warned = stderr(&o)
        .lines()
        .filter(|l| l.contains("ignoring the tuning cache"))
        .count();
    assert_eq!(warned, 1, "{}", stderr(&o));
    assert_eq!(entries(&file).len(), 1);

    // WGPU_LOSS_VARIANT forces a variant that can run the batch...
    let off = ("WGPU_LOSS_CACHE", "off");
    for forced in ["pair-thread", "pair-packed"] {
        let r = records(&run(&[off, ("WGPU_LOSS_VARIANT", forced)]));
        assert_eq!(r[0]["variant"], forced);
    }
    // ... skips the batch with the reason where it cannot (rows of 256 are
    // too short for a workgroup each) ...
    let o = run(&[off, ("WGPU_LOSS_VARIANT", "pair-workgroup")]);
    assert!(records(&o).is_empty());
    assert!(
        stderr(&o).contains("kernel variant `pair-workgroup`: cannot run cosine_embedding"),
        "{}",
        stderr(&o)
    );
    // ... and an unknown name is a usage error.
    let o = run(&[off, ("WGPU_LOSS_VARIANT", "pair-nowhere")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("pair-nowhere"), "{}", stderr(&o));
}
