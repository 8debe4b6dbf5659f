use std::fs;

use std::path::Path;

use super::header::MAGIC;
use super::write::encode_header;
use super::*;
use crate::DType;

fn npy(descr: &str, fortran: bool, shape: &str, body: &[u8]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}\n",
        if fortran { "True" } else { "False" }
    );
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn round_trip_and_header_layout() {
    let dir = std::env::temp_dir().join(format!("wgpu-loss-npy-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    for shape in [vec![], vec![3], vec![2, 3], vec![0, 4]] {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
        let path = dir.join("a.npy");
        write_f32(&path, &shape, &data).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(
            (bytes.len() - n * 4) % 64,
            0,
            "data starts on a 64-byte boundary"
        );
        let a = read(&path).unwrap();
        assert_eq!(a.shape, shape);
        assert_eq!(a.data, Data::F32(data));
    }
    write_i64(dir.join("c.npy"), &[2], &[-3, 7]).unwrap();
    assert_eq!(
        read(dir.join("c.npy")).unwrap().data,
        Data::I64(vec![-3, 7])
    );
    assert!(matches!(
        write_f32(dir.join("b.npy"), &[2, 2], &[1.0]),
        Err(NpyError::Length { .. })
    ));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn converts_types_and_byte_orders() {
    let f8: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    assert_eq!(
        parse("x", &npy(">f8", false, "(2,)", &f8)).unwrap().data,
        Data::F32(vec![1.5, -2.0])
    );
    // float16 either way round stays float16.
    let halves = [1.5f32, -65504.0, 6.0e-8].map(half::f16::from_f32);
    for (descr, bytes) in [
        (
            "<f2",
            halves
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        ),
        (">f2", halves.iter().flat_map(|v| v.to_be_bytes()).collect()),
    ] {
        assert_eq!(
            parse("x", &npy(descr, false, "(3,)", &bytes)).unwrap().data,
            Data::F16(halves.to_vec()),
            "{descr}"
        );
    }
    let i2: Vec<u8> = [-5i16, 300].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        parse("x", &npy("<i2", false, "(2,)", &i2)).unwrap().data,
        Data::I64(vec![-5, 300])
    );
    let i4: Vec<u8> = [-7i32].iter().flat_map(|v| v.to_be_bytes()).collect();
    assert_eq!(
        parse("x", &npy(">i4", false, "(1,)", &i4)).unwrap().data,
        Data::I64(vec![-7])
    );
    let u4: Vec<u8> = u32::MAX.to_le_bytes().to_vec();
    assert_eq!(
        parse("x", &npy("<u4", false, "()", &u4)).unwrap().data,
        Data::I64(vec![u32::MAX as i64])
    );
    assert_eq!(
        parse("x", &npy("|b1", false, "(2,)", &[0, 5]))
            .unwrap()
            .data,
        Data::I64(vec![0, 1])
    );
    assert_eq!(
        parse("x", &npy("|u1", true, "(2,)", &[0, 255]))
            .unwrap()
            .data,
        Data::I64(vec![0, 255])
    );
}

#[test]
fn rejects_bad_files() {
    let err = |bytes: &[u8]| parse("f.npy", bytes).unwrap_err().to_string();
    assert!(err(b"hello").contains("not a .npy"));
    assert!(err(&npy("<f4", false, "(3,)", &[0; 8])).contains("truncated"));
    assert!(err(&npy("<f4", false, "(3,)", &[0; 16])).contains("unexpected bytes"));
    assert!(err(&npy("<f4", true, "(2, 2)", &[0; 16])).contains("Fortran"));
    assert!(err(&npy("<c8", false, "(1,)", &[0; 8])).contains("complex"));
    assert!(err(&npy("<U3", false, "(1,)", &[0; 12])).contains("unicode"));
    assert!(err(&npy("<f4", false, "(4294967296, 4294967296)", &[])).contains("too large"));
    assert!(err(&npy("<f4", false, "(0, 4294967296, 4294967296)", &[])).contains("too large"));
    assert!(err(&npy("<f4", false, "(-1,)", &[])).contains("negative"));
    assert!(err(&npy("<f4", false, "(99999999999999999999999,)", &[])).contains("too large"));
    let mut huge = MAGIC.to_vec();
    huge.extend_from_slice(&[2, 0, 0xff, 0xff, 0xff, 0xff]);
    assert!(err(&huge).contains("header of"));
    let deep = format!("{}{}", "(".repeat(100), ")".repeat(100));
    assert!(err(&npy("<f4", false, &deep, &[])).contains("nests"));
    // Every prefix of a valid file is an error, never a panic.
    let good = npy("<f8", false, "(2, 2)", &[0; 32]);
    for cut in 0..good.len() {
        assert!(parse("f.npy", &good[..cut]).is_err());
    }
}

#[test]
fn mapped_files_are_read_in_place_or_converted() {
    let dir = std::env::temp_dir().join(format!("wgpu-loss-npy-map-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let data: Vec<f32> = (0..1000).map(|i| i as f32 * 0.25).collect();
    write_f32(dir.join("f.npy"), &[10, 100], &data).unwrap();
    let m = Mapped::open(dir.join("f.npy")).unwrap();
    assert_eq!(
        (m.shape(), m.dtype(), m.data_bytes()),
        (&[10, 100][..], "<f4", 4000)
    );
    assert_eq!(m.f32(), Some(&data[..]));
    assert_eq!(m.i64(), None);
    m.release(0..2, 2);
    assert_eq!(
        m.f32(),
        Some(&data[..]),
        "released pages read back the same"
    );
    write_i64(dir.join("i.npy"), &[3], &[-1, 5, 7]).unwrap();
    let m = Mapped::open(dir.join("i.npy")).unwrap();
    assert_eq!(m.i64(), Some(&[-1i64, 5, 7][..]));
    // Big-endian and unaligned data are converted instead.
    let f8: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    fs::write(dir.join("b.npy"), npy(">f8", false, "(2,)", &f8)).unwrap();
    let m = Mapped::open(dir.join("b.npy")).unwrap();
    assert_eq!(m.f32(), None);
    assert_eq!(m.to_array().data, Data::F32(vec![1.5, -2.0]));
    fs::write(dir.join("t.npy"), npy("<f4", false, "(3,)", &[0; 8])).unwrap();
    assert!(matches!(
        Mapped::open(dir.join("t.npy")),
        Err(NpyError::Truncated { .. })
    ));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mutated_files_never_panic() {
    let good = npy("<i4", false, "(3, 2)", &[1; 24]);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut bytes = good.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() % bytes.len() as u64) as usize;
            let alphabet = b"0123456789(),:' {}<>|fiuLTF\x00\xff";
            bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize];
        }
        let _ = parse("f.npy", &bytes);
    }
}

/// Written a part at a time, in any order, by the creator and by a joined
/// writer, the file holds the bytes `write_f32` writes; until it is finished
/// only its temporary file exists, and a dropped one leaves nothing.
#[test]
fn out_files_match_whole_writes() {
    let dir = std::env::temp_dir().join(format!("wgpu-loss-npy-out-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    // Several pages, so that written pages are dropped on the way.
    let shape = [3, 5000];
    let data: Vec<f32> = (0..15_000).map(|i| (i as f32).sin() * 1e3).collect();
    write_f32(dir.join("whole.npy"), &shape, &data).unwrap();
    let layout = |name: &str, dtype| Layout::new(Path::new(name), &shape, dtype, "g").unwrap();
    assert_eq!(
        layout("w.npy", DType::F32).header,
        encode_header("<f4", &shape)
    );
    // Every layout: in parts, by two writers, the bytes of the whole write.
    for (name, dtype) in [
        ("parts.npy", DType::F32),
        ("parts16.npy", DType::F16),
        ("parts.safetensors", DType::Bf16),
        ("parts16.safetensors", DType::F16),
        ("parts32.safetensors", DType::F32),
    ] {
        let l = layout(name, dtype);
        let whole = dir.join(format!("whole-{name}"));
        write_layout(&whole, &l, &data).unwrap();
        let path = dir.join(name);
        let mut out = OutFile::create(&path, &l).unwrap();
        assert!(!path.exists() && out.tmp().exists());
        out.write(9_000, &data[9_000..]).unwrap();
        let mut other = OutFile::join(&path, out.tmp(), &l).unwrap();
        other.write(4_001, &data[4_001..9_000]).unwrap();
        other.flush().unwrap();
        drop(other);
        out.write(0, &data[..4_001]).unwrap();
        assert!(out.write(14_999, &data[..2]).is_err(), "past the end");
        let seven = Layout::new(Path::new(name), &[7], dtype, "g").unwrap();
        assert!(
            OutFile::join(&path, out.tmp(), &seven).is_err(),
            "another shape"
        );
        out.finish().unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            fs::read(&whole).unwrap(),
            "{name}"
        );
        fs::remove_file(&whole).unwrap();
        if name == "parts.npy" {
            assert_eq!(
                fs::read(&path).unwrap(),
                fs::read(dir.join("whole.npy")).unwrap()
            );
        }
        fs::remove_file(&path).unwrap();
    }
    let dropped = OutFile::create(
        dir.join("dropped.npy"),
        &Layout::new(Path::new("d.npy"), &[4], DType::F32, "g").unwrap(),
    )
    .unwrap();
    drop(dropped);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["whole.npy"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unsupported_dtype_with_control_characters_is_one_line() {
    let bytes = npy("\n<f8\t", false, "(1,)", &[0; 8]);
    let e = parse("m.npy", &bytes).unwrap_err().to_string();
    assert!(e.contains("unsupported dtype") && !e.contains('\n'), "{e}");
    assert!(e.contains("\\n<f8\\t"), "{e}");
}
