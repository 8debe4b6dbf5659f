//! The reader against files the `safetensors` crate writes, every dtype
//! through `Source`, each way a header can lie, and the writer's header read
//! back by the crate.

use std::path::{Path, PathBuf};

use half::{bf16, f16};
use safetensors::tensor::TensorView;

use super::{encode_header, index, parse, Dtype, SafetensorsError};
use crate::cli::npy::{write_layout, Layout};
use crate::cli::source::{locate, Located, Source};
use crate::{DType, Floats};

/// A file of `tensors` as the `safetensors` crate serialises it.
fn file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// A file of a raw header and data section.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let dir = std::env::temp_dir().join(format!("wgpu-loss-st-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Tmp(dir)
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn err(bytes: &[u8]) -> String {
    let e = index(Path::new("m.safetensors"), bytes).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("m.safetensors: ") && !text.contains('\n'),
        "{text}"
    );
    text
}

#[test]
fn every_dtype_is_read_as_its_role_takes_it() {
    let dir = Tmp::new("dtypes");
    let vals = [-2.5f64, 0.0, 1.0, 3.25];
    let ints = [-3i64, 0, 1, 7];
    let uints = [0i64, 1, 2, 255];
    let le = |f: &dyn Fn(usize) -> Vec<u8>| (0..4).flat_map(f).collect::<Vec<u8>>();
    let cases: Vec<(Dtype, Vec<u8>, Vec<f64>)> = vec![
        (
            Dtype::F32,
            le(&|i| (vals[i] as f32).to_le_bytes().to_vec()),
            vals.to_vec(),
        ),
        (
            Dtype::F64,
            le(&|i| vals[i].to_le_bytes().to_vec()),
            vals.to_vec(),
        ),
        (
            Dtype::F16,
            le(&|i| f16::from_f64(vals[i]).to_le_bytes().to_vec()),
            vals.to_vec(),
        ),
        (
            Dtype::BF16,
            le(&|i| bf16::from_f64(vals[i]).to_le_bytes().to_vec()),
            vals.to_vec(),
        ),
        (
            Dtype::I64,
            le(&|i| ints[i].to_le_bytes().to_vec()),
            ints.map(|v| v as f64).to_vec(),
        ),
        (
            Dtype::I32,
            le(&|i| (ints[i] as i32).to_le_bytes().to_vec()),
            ints.map(|v| v as f64).to_vec(),
        ),
        (
            Dtype::I16,
            le(&|i| (ints[i] as i16).to_le_bytes().to_vec()),
            ints.map(|v| v as f64).to_vec(),
        ),
        (
            Dtype::I8,
            le(&|i| (ints[i] as i8).to_le_bytes().to_vec()),
            ints.map(|v| v as f64).to_vec(),
        ),
        (
            Dtype::U8,
            le(&|i| vec![uints[i] as u8]),
            uints.map(|v| v as f64).to_vec(),
        ),
        (
            Dtype::U16,
            le(&|i| (uints[i] as u16).to_le_bytes().to_vec()),
            uints.map(|v| v as f64).to_vec(),
        ),
        (
            Dtype::U32,
            le(&|i| (uints[i] as u32).to_le_bytes().to_vec()),
            uints.map(|v| v as f64).to_vec(),
        ),
        (Dtype::BOOL, vec![0, 1, 0, 2], vec![0.0, 1.0, 0.0, 1.0]),
    ];
    for (dtype, bytes, want) in cases {
        // An odd-length tensor first puts this one's data off its alignment
        // in half the files: read the same either way.
        for pad in [0usize, 1] {
            let bytes_of = if pad == 0 {
                file(&[("x", dtype, vec![2, 2], bytes.clone())])
            } else {
                // The crate orders tensors by alignment; lay one out by hand.
                let mut header = format!(
                    r#"{{"a_pad":{{"dtype":"U8","shape":[1],"data_offsets":[0,1]}},"x":{{"dtype":"{dtype}","shape":[2,2],"data_offsets":[1,{}]}}}}"#,
                    1 + bytes.len()
                );
                while header.len() % 8 != 0 {
                    header.push(' ');
                }
                let mut data = vec![9u8];
                data.extend_from_slice(&bytes);
                raw(&header, &data)
            };
            let path = dir.write(&format!("{dtype}-{pad}.safetensors"), &bytes_of);
            let arg = PathBuf::from(format!("{}:x", path.display()));
            let is_int = !matches!(dtype, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16);
            let s = Source::open(&arg, false, true).unwrap();
            assert_eq!(s.shape(), &[2, 2]);
            assert_eq!(s.file_dtype(), dtype.to_string());
            let half = match dtype {
                Dtype::F16 => DType::F16,
                Dtype::BF16 => DType::Bf16,
                _ => DType::F32,
            };
            assert_eq!(s.dtype(), half, "{dtype}: half stays half, the rest is f32");
            let got: Vec<f64> = s.floats().iter().map(f64::from).collect();
            assert_eq!(got, want, "{dtype} pad {pad} as floats");
            assert!(s.classes().is_none());
            let native = matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16);
            assert_eq!(
                s.in_place(),
                native && pad == 0,
                "{dtype} pad {pad}: in place only where aligned"
            );
            // As a class target: integers stay integers, floats stay floats.
            let c = Source::open(&arg, true, false).unwrap();
            match c.classes() {
                Some(v) => {
                    assert!(is_int, "{dtype}");
                    assert_eq!(
                        c.in_place(),
                        dtype == Dtype::I64 && pad == 0,
                        "{dtype} {pad}"
                    );
                    let v: Vec<f64> = v.iter().map(|&x| x as f64).collect();
                    assert_eq!(v, want, "{dtype} pad {pad} as classes");
                }
                None => assert!(!is_int, "{dtype} as classes"),
            }
        }
    }
    // In place where aligned: the data is the map's own.
    let bytes: Vec<u8> = (0..4)
        .flat_map(|i| f16::from_f64(vals[i]).to_le_bytes())
        .collect();
    let path = dir.write(
        "inplace.safetensors",
        &file(&[("x", Dtype::F16, vec![4], bytes)]),
    );
    let s = Source::open(&path, false, false).unwrap();
    assert!(matches!(s.floats(), Floats::F16(_)));
    for dtype in [Dtype::C64, Dtype::U64, Dtype::F8_E4M3] {
        let size = dtype.bitsize() / 8;
        let path = dir.write(
            "bad.safetensors",
            &file(&[("x", dtype, vec![2], vec![0; 2 * size])]),
        );
        let e = Source::open(&path, false, false).unwrap_err().message();
        assert!(
            e.contains(&format!("tensor `x` is {dtype}, which is not read")),
            "{e}"
        );
    }
}

#[test]
fn f16_npy_stays_f16_read_or_mapped() {
    let dir = Tmp::new("npy16");
    let vals = [1.0f32, -0.5, 65504.0, 6.0e-8];
    let layout = Layout::new(Path::new("x.npy"), &[4], DType::F16, "x").unwrap();
    let path = dir.0.join("x.npy");
    write_layout(&path, &layout, &vals).unwrap();
    for mapped in [false, true] {
        let s = Source::open(&path, false, mapped).unwrap();
        assert_eq!(s.file_dtype(), "<f2");
        let Floats::F16(got) = s.floats() else {
            panic!("f16 kept");
        };
        let want: Vec<f16> = vals.iter().map(|&v| f16::from_f32(v)).collect();
        assert_eq!(got, want.as_slice());
    }
}

#[test]
fn names_pick_a_tensor() {
    let dir = Tmp::new("names");
    let one = |v: f32| v.to_le_bytes().to_vec();
    let bytes = file(&[
        ("logits", Dtype::F32, vec![1], one(1.0)),
        ("target", Dtype::F32, vec![1], one(2.0)),
    ]);
    // A ':' in the file's own name.
    let path = dir.write("a:b.safetensors", &bytes);
    let arg = |s: &str| PathBuf::from(format!("{}{s}", path.display()));
    assert_eq!(
        locate(&arg("")),
        Located {
            path: path.clone(),
            name: None
        }
    );
    assert_eq!(
        locate(&arg(":target")),
        Located {
            path: path.clone(),
            name: Some("target".into())
        }
    );
    let got = Source::open(&arg(":target"), false, false).unwrap();
    assert_eq!(got.floats().get(0), 2.0);
    let e = Source::open(&arg(""), false, false).unwrap_err().message();
    assert!(
        e.contains("holds 2 tensors, pick one") && e.contains("`logits`, `target`"),
        "{e}"
    );
    let e = Source::open(&arg(":nope"), false, false)
        .unwrap_err()
        .message();
    assert!(
        e.contains("no tensor `nope` (the file has `logits`, `target`)"),
        "{e}"
    );
    // A missing file with a name: the file is named missing.
    let e = Source::open(&dir.0.join("gone.safetensors:x"), false, false)
        .unwrap_err()
        .message();
    assert!(e.contains("gone.safetensors: No such file"), "{e}");
    // Names are for safetensors files only.
    let npy = dir.0.join("x.npy");
    crate::cli::npy::write_f32(&npy, &[1], &[1.0]).unwrap();
    let e = Source::open(&PathBuf::from(format!("{}:x", npy.display())), false, false)
        .unwrap_err()
        .message();
    assert!(e.contains("only in a .safetensors file"), "{e}");
    let empty = dir.write("empty.safetensors", &raw("{}", &[]));
    let e = Source::open(&empty, false, false).unwrap_err().message();
    assert!(e.contains("holds no tensor"), "{e}");
    // Many names are cut short.
    let many: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("t{i:02}"), one(i as f32)))
        .collect();
    let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = many
        .iter()
        .map(|(n, b)| (n.as_str(), Dtype::F32, vec![1], b.clone()))
        .collect();
    let path = dir.write("many.safetensors", &file(&tensors));
    let e = Source::open(&path, false, false).unwrap_err().message();
    assert!(
        e.contains("holds 40 tensors") && e.contains("24 more"),
        "{e}"
    );
}

#[test]
fn a_lying_header_is_an_error_that_names_the_file() {
    let t = |dtype: &str, shape: &str, a: u64, b: u64| {
        format!(r#""x":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{a},{b}]}}"#)
    };
    let eight = [0u8; 8];
    // Shorter than the length field, a length past the end, a huge length.
    assert!(err(&[1, 0, 0]).contains("truncated: 3 bytes"));
    let mut past = 100u64.to_le_bytes().to_vec();
    past.extend_from_slice(b"{}");
    assert!(err(&past).contains("says 100 bytes, more than the 2 the file holds"));
    let huge = u64::MAX.to_le_bytes();
    assert!(err(&huge).contains("more than the 100000000 allowed"));
    // Not UTF-8, not JSON, not an object, a bad tensor entry, bad metadata.
    assert!(err(&raw("\u{0}\u{ff}", &[])).contains("not a JSON object"));
    let mut bad_utf8 = 2u64.to_le_bytes().to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    assert!(err(&bad_utf8).contains("not UTF-8"));
    assert!(err(&raw("[1, 2]", &[])).contains("not a JSON object"));
    assert!(err(&raw(r#"{"x": 3}"#, &[])).contains("tensor `x`"));
    assert!(
        err(&raw(&format!("{{{}}}", t("F128", "[2]", 0, 8)), &eight))
            .contains("tensor `x`: unknown variant `F128`")
    );
    assert!(err(&raw(r#"{"__metadata__": {"a": 1}}"#, &[])).contains("`__metadata__`"));
    // Offsets past the end, backwards, a shape that does not match the bytes,
    // a shape that overflows (a huge declared tensor: nothing allocated).
    let e = err(&raw(&format!("{{{}}}", t("F32", "[4]", 0, 16)), &eight));
    assert!(e.contains("tensor `x`: data_offsets [0, 16] run past the end of the file (its data holds 8 bytes)"), "{e}");
    let e = err(&raw(&format!("{{{}}}", t("F32", "[2]", 8, 0)), &eight));
    assert!(e.contains("end before they start"), "{e}");
    let e = err(&raw(&format!("{{{}}}", t("F32", "[3]", 0, 8)), &eight));
    assert!(
        e.contains("shape [3] of F32 needs 12 bytes, its data_offsets [0, 8] hold 8"),
        "{e}"
    );
    let e = err(&raw(
        &format!("{{{}}}", t("F32", "[4611686018427387904, 8]", 0, 8)),
        &eight,
    ));
    assert!(e.contains("is too large"), "{e}");
    let e = err(&raw(
        &format!("{{{}}}", t("F32", "[1000000000000]", 0, 4_000_000_000_000)),
        &eight,
    ));
    assert!(e.contains("run past the end"), "{e}");
    // Overlapping tensors, a gap, a gap first, bytes after the last.
    let two = |a: (u64, u64), b: (u64, u64)| {
        raw(
            &format!(
                r#"{{"a":{{"dtype":"U8","shape":[{}],"data_offsets":[{},{}]}},"b":{{"dtype":"U8","shape":[{}],"data_offsets":[{},{}]}}}}"#,
                a.1 - a.0,
                a.0,
                a.1,
                b.1 - b.0,
                b.0,
                b.1
            ),
            &eight,
        )
    };
    let e = err(&two((0, 6), (4, 8)));
    assert!(
        e.contains("tensor `b`: data_offsets [4, 8] overlap those of `a` [0, 6]"),
        "{e}"
    );
    let e = err(&two((0, 3), (5, 8)));
    assert!(
        e.contains("tensor `b`: data_offsets [5, 8] leave a gap after those of `a` [0, 3]"),
        "{e}"
    );
    let e = err(&two((2, 5), (5, 8)));
    assert!(e.contains("gap before the first tensor"), "{e}");
    let e = err(&two((0, 2), (2, 5)));
    assert!(e.contains("3 bytes after the last tensor's data"), "{e}");
    // Out of order in the header is fine: the data's order is what counts.
    assert!(index(Path::new("m"), &two((4, 8), (0, 4))).is_ok());
    // Every file the crate refuses is refused here too.
    for bytes in [two((0, 6), (4, 8)), raw("{}", &eight), huge.to_vec()] {
        assert!(safetensors::SafeTensors::deserialize(&bytes).is_err());
        assert!(matches!(
            index(Path::new("m"), &bytes),
            Err(SafetensorsError::Tensor { .. }
                | SafetensorsError::Trailing { .. }
                | SafetensorsError::HeaderTooLarge { .. })
        ));
    }
}

#[test]
fn written_headers_read_back_through_the_crate() {
    for (dtype, st) in [
        (DType::F32, Dtype::F32),
        (DType::F16, Dtype::F16),
        (DType::Bf16, Dtype::BF16),
    ] {
        for shape in [vec![], vec![3], vec![2, 0, 5], vec![4, 3]] {
            let len: usize = shape.iter().product();
            let vals: Vec<f32> = (0..len).map(|i| i as f32 * 0.3 - 1.0).collect();
            let layout =
                Layout::new(Path::new("g.safetensors"), &shape, dtype, "grad_input").unwrap();
            assert_eq!(
                layout.header,
                encode_header("grad_input", st, &shape, len * dtype.size())
            );
            assert_eq!(layout.header.len() % 8, 0, "the data starts 8-byte aligned");
            let mut bytes = layout.header.clone();
            bytes.resize(layout.bytes() as usize, 0);
            layout.encode(&vals, &mut bytes[layout.header.len()..]);
            let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let view = file.tensor("grad_input").unwrap();
            assert_eq!((view.dtype(), view.shape()), (st, shape.as_slice()));
            let got = parse(Path::new("g"), &bytes).unwrap();
            assert_eq!(got.len(), 1);
            let back: Vec<f32> = match dtype {
                DType::F32 => got[0]
                    .1
                    .chunks(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                DType::F16 => got[0]
                    .1
                    .chunks(2)
                    .map(|c| f16::from_le_bytes(c.try_into().unwrap()).to_f32())
                    .collect(),
                DType::Bf16 => got[0]
                    .1
                    .chunks(2)
                    .map(|c| bf16::from_le_bytes(c.try_into().unwrap()).to_f32())
                    .collect(),
            };
            let want: Vec<f32> = vals
                .iter()
                .map(|&v| match dtype {
                    DType::F32 => v,
                    DType::F16 => f16::from_f32(v).to_f32(),
                    DType::Bf16 => bf16::from_f32(v).to_f32(),
                })
                .collect();
            assert_eq!(back, want);
        }
    }
    // numpy has no bfloat16: a .npy of bf16 is float32; f16 is <f2.
    let l = Layout::new(Path::new("g.npy"), &[2], DType::Bf16, "g").unwrap();
    assert_eq!(l.dtype, DType::F32);
    let l = Layout::new(Path::new("g.npy"), &[2], DType::F16, "g").unwrap();
    assert!(String::from_utf8_lossy(&l.header).contains("'descr': '<f2'"));
}

#[test]
fn names_with_control_characters_stay_on_one_line() {
    // A tensor named "a\nb" whose shape does not match its bytes, and the
    // list of names a missing one prints.
    let header = r#"{"a\nb":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    let text = err(&raw(header, &[0; 8]));
    assert!(text.contains("a\\nb"), "{text}");
    let bytes = file(&[("x\ty", Dtype::F32, vec![1], vec![0; 4])]);
    let index = index(Path::new("m.safetensors"), &bytes).unwrap();
    let missing = index
        .select(Path::new("m.safetensors"), Some("z\n"))
        .unwrap_err()
        .to_string();
    assert!(
        !missing.contains('\n') && missing.contains("x\\ty"),
        "{missing}"
    );
}
