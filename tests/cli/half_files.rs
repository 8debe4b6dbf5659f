//! Half-precision and `.safetensors` files through the binary: an f16
//! `.npy` and a bf16 `.safetensors` evaluated for a loss of every family
//! (the run itself checks the GPU against the float64 reference; the value
//! is also checked against the library's twin on the upcast values),
//! gradients written once rounded to their tensor's dtype, and each way a
//! `.safetensors` file can be wrong as a one-line error.

use std::path::Path;

use half::{bf16, f16};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use super::{close, json, num, rejects, run, stderr, Dir};
use wgpu_loss::cli::npy;
use wgpu_loss::{cpu, Inputs, Loss, Reduction, Tensor, TensorName};

/// Values for a tensor: its flag (also its name in a `.safetensors` file),
/// its shape and its f32 values (rounded to the half dtype when written).
struct Float {
    flag: &'static str,
    shape: Vec<usize>,
    values: Vec<f32>,
}

struct Case {
    loss: &'static str,
    floats: Vec<Float>,
    /// Class indices for `--target`.
    classes: Option<(Vec<usize>, Vec<i64>)>,
}

fn vals(n: usize, seed: u32, lo: f32, hi: f32) -> Vec<f32> {
    super::data(n, seed)
        .into_iter()
        .map(|v| lo + (v + 2.0) / 4.0 * (hi - lo))
        .collect()
}

fn f(flag: &'static str, shape: &[usize], values: Vec<f32>) -> Float {
    Float {
        flag,
        shape: shape.to_vec(),
        values,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            loss: "mse",
            floats: vec![
                f("input", &[3, 37], vals(111, 1, -3.0, 3.0)),
                f("target", &[3, 37], vals(111, 2, -3.0, 3.0)),
            ],
            classes: None,
        },
        Case {
            loss: "bce_with_logits",
            floats: vec![
                f("input", &[4, 3], vals(12, 3, -6.0, 6.0)),
                f("target", &[4, 3], vals(12, 4, 0.0, 1.0)),
                f("pos-weight", &[3], vec![0.5, 1.0, 2.0]),
            ],
            classes: None,
        },
        Case {
            loss: "cross_entropy",
            floats: vec![
                f("input", &[5, 7], vals(35, 5, -4.0, 4.0)),
                f("weight", &[7], vals(7, 6, 0.25, 2.0)),
            ],
            classes: Some((vec![5], vec![3, 0, 6, 2, 2])),
        },
        Case {
            loss: "triplet_margin",
            floats: vec![
                f("input", &[6, 5], vals(30, 7, -2.0, 2.0)),
                f("positive", &[6, 5], vals(30, 8, -2.0, 2.0)),
                f("negative", &[6, 5], vals(30, 9, -2.0, 2.0)),
            ],
            classes: None,
        },
        Case {
            loss: "dice",
            floats: vec![f("input", &[2, 3, 8], vals(48, 10, -3.0, 3.0))],
            classes: Some((
                vec![2, 8],
                vec![0, 1, 2, 1, 0, 2, 2, 1, 0, 0, 1, 2, 1, 1, 2, 0],
            )),
        },
    ]
}

fn round(values: &[f32], dtype: Dtype) -> Vec<f32> {
    values
        .iter()
        .map(|&v| match dtype {
            Dtype::F16 => f16::from_f32(v).to_f32(),
            Dtype::BF16 => bf16::from_f32(v).to_f32(),
            _ => v,
        })
        .collect()
}

fn half_bytes(values: &[f32], dtype: Dtype) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| match dtype {
            Dtype::F16 => f16::from_f32(v).to_le_bytes(),
            _ => bf16::from_f32(v).to_le_bytes(),
        })
        .collect()
}

/// A `.safetensors` file as the `safetensors` crate writes it.
fn safetensors_file(path: &Path, tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// A `<f2` `.npy` file, header by hand.
fn f16_npy(dir: &Dir, file: &str, shape: &[usize], values: &[f32]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = format!("({},)", dims.join(", "));
    dir.raw(file, "<f2", false, &shape, &half_bytes(values, Dtype::F16))
}

/// The arguments of `case` with its tensors in `dtype`: f16 as one `.npy`
/// per tensor, bf16 as one `.safetensors` file holding them all (the class
/// target as I64 beside the floats).
fn files(dir: &Dir, case: &Case, dtype: Dtype) -> Vec<String> {
    let mut args = vec!["eval".to_string(), case.loss.to_string()];
    let st = dir.path(&format!("{}.safetensors", case.loss));
    let mut tensors = vec![];
    for t in &case.floats {
        args.push(format!("--{}", t.flag));
        if dtype == Dtype::F16 {
            args.push(f16_npy(
                dir,
                &format!("{}-{}.npy", case.loss, t.flag),
                &t.shape,
                &t.values,
            ));
        } else {
            tensors.push((
                t.flag.to_string(),
                dtype,
                t.shape.clone(),
                half_bytes(&t.values, dtype),
            ));
            args.push(format!("{}:{}", st.display(), t.flag));
        }
    }
    if let Some((shape, classes)) = &case.classes {
        args.push("--target".into());
        if dtype == Dtype::F16 {
            args.push(dir.i64(&format!("{}-classes.npy", case.loss), shape, classes));
        } else {
            let bytes = classes.iter().flat_map(|c| c.to_le_bytes()).collect();
            tensors.push(("classes".into(), Dtype::I64, shape.clone(), bytes));
            args.push(format!("{}:classes", st.display()));
        }
    }
    if !tensors.is_empty() {
        safetensors_file(&st, &tensors);
    }
    args
}

/// The library's twin on the values as the files hold them, upcast.
fn twin(case: &Case, dtype: Dtype) -> f64 {
    let loss = Loss::from_name(case.loss).unwrap();
    let rounded: Vec<Vec<f32>> = case
        .floats
        .iter()
        .map(|t| round(&t.values, dtype))
        .collect();
    let mut inputs = Inputs::default();
    for (t, v) in case.floats.iter().zip(&rounded) {
        let name = TensorName::ALL
            .into_iter()
            .find(|n| n.name() == t.flag.replace('-', "_"))
            .unwrap();
        inputs = inputs.with(name, Tensor::new(v, &t.shape));
    }
    if let Some((shape, classes)) = &case.classes {
        inputs = inputs.classes(classes, shape);
    }
    cpu::evaluate(&loss, Reduction::Mean, &inputs)
        .unwrap()
        .value
}

#[test]
fn half_files_evaluate_every_family() {
    let dir = Dir::new("half");
    for case in cases() {
        for dtype in [Dtype::F16, Dtype::BF16] {
            let mut args = files(&dir, &case, dtype);
            args.push("--json".into());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // Success means the GPU agreed with the float64 reference.
            let j = json(&args);
            let want = twin(&case, dtype);
            assert!(
                close(num(&j["value"]), want) && close(num(&j["cpu_reference"]), want),
                "{} {dtype}: {j} vs {want}",
                case.loss
            );
            // Handed to the library as it was stored, not upcast.
            let name = if dtype == Dtype::F16 { "f16" } else { "bf16" };
            assert_eq!(j["dtype"], name, "{}: {j}", case.loss);
        }
    }
}

fn read_tensor(path: &Path) -> (Dtype, String, Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names = file.names();
    assert_eq!(names.len(), 1, "{}", path.display());
    let name = names[0].to_string();
    let t = file.tensor(&name).unwrap();
    (t.dtype(), name, t.shape().to_vec(), t.data().to_vec())
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The gradient files of a half input hold the f32 gradient (the one
/// `--grad-dtype f32` writes) rounded once to the input's dtype; a bf16
/// gradient into `.npy` is f32; `--out` may be `.safetensors` too.
#[test]
fn half_gradients_are_the_f32_ones_rounded_once() {
    let dir = Dir::new("half-grads");
    let cases = cases();
    for (case, dtype) in [(&cases[0], Dtype::F16), (&cases[1], Dtype::BF16)] {
        let base = files(&dir, case, dtype);
        let with = |extra: &[&str]| {
            let mut args: Vec<&str> = base.iter().map(String::as_str).collect();
            args.extend_from_slice(extra);
            args.push("--json");
            json(&args)
        };
        let p = |f: &str| dir.path(f).to_str().unwrap().to_string();
        let (g32, gh, gst, g32st) = (
            p("g32.npy"),
            p("gh.npy"),
            p("g.safetensors"),
            p("g32.safetensors"),
        );
        with(&["--grad-out", &g32, "--grad-dtype", "f32"]);
        with(&["--grad-out", &gh]);
        with(&["--grad-out", &gst]);
        with(&["--grad-out", &g32st, "--grad-dtype", "f32"]);
        let want = npy::read(&g32).unwrap();
        assert_eq!(want.dtype, "<f4");
        let shape = want.shape.clone();
        let want = want.into_f32();
        assert!(want.iter().any(|&v| v != 0.0));
        let h = npy::read(&gh).unwrap();
        let (st_dtype, name, st_shape, st_bytes) = read_tensor(Path::new(&gst));
        assert_eq!(
            (name.as_str(), st_shape.as_slice()),
            ("grad_input", shape.as_slice())
        );
        if dtype == Dtype::F16 {
            assert_eq!(
                h.dtype, "<f2",
                "{}: an f16 input's .npy gradient",
                case.loss
            );
            let npy::Data::F16(got) = h.data else {
                panic!("f16")
            };
            let rounded: Vec<f16> = want.iter().map(|&v| f16::from_f32(v)).collect();
            assert_eq!(got, rounded);
            assert_eq!(st_dtype, Dtype::F16);
            assert_eq!(st_bytes, half_bytes(&want, Dtype::F16));
        } else {
            assert_eq!(h.dtype, "<f4", "numpy has no bfloat16: f32");
            assert_eq!(h.into_f32(), want);
            assert_eq!(st_dtype, Dtype::BF16);
            assert_eq!(st_bytes, half_bytes(&want, Dtype::BF16));
        }
        let (d, _, _, bytes) = read_tensor(Path::new(&g32st));
        assert_eq!((d, f32s(&bytes)), (Dtype::F32, want.clone()));

        // `--out` as .safetensors: the `loss` tensor, f32, the .npy's values.
        let (on, os) = (p("o.npy"), p("o.safetensors"));
        with(&["--reduction", "none", "--out", &on]);
        with(&["--reduction", "none", "--out", &os]);
        let (d, name, oshape, bytes) = read_tensor(Path::new(&os));
        let items = npy::read(&on).unwrap();
        assert_eq!((d, name.as_str()), (Dtype::F32, "loss"));
        assert_eq!(oshape, items.shape);
        assert_eq!(f32s(&bytes), items.into_f32());
    }
}

#[test]
fn bad_safetensors_files_are_one_line_errors() {
    let dir = Dir::new("half-bad");
    let x = dir.f32("x.npy", &[2], &[1.0, 2.0]);
    let write = |name: &str, header: &str, data: &[u8]| {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        let path = dir.path(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let tensor = |dtype: &str, shape: &str, a: u64, b: u64| {
        format!(r#"{{"t":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{a},{b}]}}}}"#)
    };
    let eight = [0u8; 8];
    let mut cases: Vec<(String, &str)> = vec![
        (
            write("past.safetensors", &tensor("F32", "[4]", 0, 16), &eight),
            "run past the end",
        ),
        (
            write("shape.safetensors", &tensor("F32", "[3]", 0, 8), &eight),
            "needs 12 bytes",
        ),
        (
            write(
                "huge.safetensors",
                &tensor("F32", "[1099511627776]", 0, 4398046511104),
                &eight,
            ),
            "run past the end",
        ),
        (
            write("json.safetensors", "{\"t\": ", &eight),
            "not a JSON object",
        ),
        (
            write("dtype.safetensors", &tensor("C64", "[1]", 0, 8), &eight),
            "is C64, which is not read",
        ),
        (
            write("tail.safetensors", &tensor("F32", "[1]", 0, 4), &eight),
            "4 bytes after the last",
        ),
        (
            write(
                "overlap.safetensors",
                r#"{"a":{"dtype":"U8","shape":[6],"data_offsets":[0,6]},"t":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#,
                &eight,
            ),
            "overlap those of `a`",
        ),
    ];
    let short = dir.path("short.safetensors");
    std::fs::write(&short, [5u8, 0, 0]).unwrap();
    cases.push((short.to_str().unwrap().to_string(), "truncated: 3 bytes"));
    let big = dir.path("big.safetensors");
    let mut bytes = 1_000_000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&big, bytes).unwrap();
    cases.push((
        big.to_str().unwrap().to_string(),
        "more than the 2 the file holds",
    ));
    for (file, key) in &cases {
        rejects(&["eval", "mse", "--input", &x, "--target", file], key);
        rejects(&["eval", "mse", "--input", &x, "--target", file], file);
        rejects(
            &["eval", "mse", "--input", &x, "--target", file],
            "--target: ",
        );
    }
    // Names: one needed, one missing, one on a .npy file; nothing written.
    let two = dir.path("two.safetensors");
    safetensors_file(
        &two,
        &[
            ("a".into(), Dtype::F32, vec![2], vec![0; 8]),
            ("b".into(), Dtype::F32, vec![2], vec![0; 8]),
        ],
    );
    let two = two.to_str().unwrap();
    let g = dir.path("g.safetensors");
    let g = g.to_str().unwrap();
    rejects(
        &[
            "eval",
            "mse",
            "--input",
            &x,
            "--target",
            two,
            "--grad-out",
            g,
        ],
        "holds 2 tensors, pick one",
    );
    rejects(
        &[
            "eval",
            "mse",
            "--input",
            &x,
            "--target",
            &format!("{two}:c"),
            "--grad-out",
            g,
        ],
        "no tensor `c` (the file has `a`, `b`)",
    );
    rejects(
        &["eval", "mse", "--input", &format!("{x}:a"), "--target", &x],
        "only in a .safetensors file",
    );
    assert!(!Path::new(g).exists());
    let o = run(&[
        "eval",
        "mse",
        "--input",
        &format!("{two}:a"),
        "--target",
        &format!("{two}:b"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Every loss of the catalog on a seeded batch, as f16 `.npy` files and as
/// one bf16 `.safetensors` file (class targets as I64 in it), against the
/// twin on the values as written.
#[test]
fn every_loss_reads_f16_npy_and_bf16_safetensors() {
    use wgpu_loss::cli::synthetic;
    use wgpu_loss::Target;
    let dir = Dir::new("half-every");
    for (k, name) in Loss::names().enumerate() {
        let loss = Loss::from_name(name).unwrap();
        let batch = synthetic::batch(&loss, 96, 40 + k as u64);
        let inputs = batch.inputs();
        let mut case = Case {
            loss: name,
            floats: vec![],
            classes: None,
        };
        for t in TensorName::ALL {
            match (t, inputs.target) {
                (TensorName::Target, Some(Target::Class { data, shape })) => {
                    case.classes = Some((shape.to_vec(), data.to_vec()))
                }
                _ => {
                    if let Some(x) = inputs.float(t) {
                        let flag = TENSOR_FLAGS
                            .iter()
                            .find(|f| f.replace('-', "_") == t.name())
                            .unwrap();
                        case.floats
                            .push(f(flag, x.shape, x.data.to_f32().into_owned()));
                    }
                }
            }
        }
        for dtype in [Dtype::F16, Dtype::BF16] {
            let mut args = files(&dir, &case, dtype);
            args.push("--json".into());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let j = json(&args);
            let want = twin(&case, dtype);
            assert!(
                close(num(&j["value"]), want) && close(num(&j["cpu_reference"]), want),
                "{name} {dtype}: {j} vs {want}"
            );
            let stored = if dtype == Dtype::F16 { "f16" } else { "bf16" };
            assert_eq!(j["dtype"], stored, "{name}: {j}");
        }
    }
}

/// The tensor flags, as `&'static str` for [`Float::flag`].
const TENSOR_FLAGS: [&str; 8] = [
    "input",
    "target",
    "weight",
    "pos-weight",
    "labels",
    "positive",
    "negative",
    "var",
];
