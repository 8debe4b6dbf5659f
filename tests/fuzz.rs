//! A bounded fuzzer on stable Rust for the `.npy` and `.safetensors`
//! readers and the CLI's argument handling (cargo-fuzz needs a nightly
//! toolchain).
//!
//! A seeded mutator rewrites the committed corpus (fuzz/corpus/npy/*.npy,
//! fuzz/corpus/safetensors/*.safetensors, fuzz/corpus/cli/*.txt: one
//! argument per line) with bit flips, truncation, byte insertion, header
//! edits (huge or negative shapes, lying lengths and offsets, swapped
//! dtypes, Fortran order, versions) and argument shuffles, drops and
//! garbage. Every input must give Ok or a clear error: a panic fails the test
//! (each call runs under catch_unwind), and so does any single allocation over
//! 64 MiB (a counting global allocator), which only a header trusted before
//! the file length was checked could ask for.
//!
//! CI runs a few seconds; a longer run:
//!     FUZZ_SECONDS=600 FUZZ_SEED=$RANDOM cargo test --release --test fuzz -- --nocapture

// The binary and `wgpu_loss::cli` exist only with the `cli` feature.
#![cfg(feature = "cli")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wgpu_loss::cli::source::Source;
use wgpu_loss::cli::{check_args, npy, safetensors};

/// The largest single allocation since the last reset.
static LARGEST: AtomicUsize = AtomicUsize::new(0);
const ALLOCATION_LIMIT: usize = 64 << 20;

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        if layout.size() > ALLOCATION_LIMIT {
            // Refused rather than attempted: the test reports it.
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        LARGEST.fetch_max(size, Ordering::Relaxed);
        if size > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn budget() -> Duration {
    let secs = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

fn seed(salt: u64) -> u64 {
    let base = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15u64);
    (base ^ salt) | 1
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(dir: &str, ext: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(root().join("fuzz/corpus").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the {dir} corpus is empty");
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Header texts a mutation may splice in for the original's.
const SHAPES: [&str; 11] = [
    "(1099511627776, 0)",
    "(4294967296, 4294967296)",
    "(18446744073709551615,)",
    "(0, 18446744073709551615, 2)",
    "(-1,)",
    "(3,",
    "()",
    "(100000000000,)",
    "(2, 3, 4, 5, 6, 7, 8, 9)",
    "((1,),)",
    "(1 2)",
];
const DTYPES: [&str; 12] = [
    "'<f4'",
    "'>f8'",
    "'<i8'",
    "'|b1'",
    "'<c8'",
    "'<U3'",
    "'|O'",
    "'<f2'",
    "'<u8'",
    "'<V4'",
    "[('a', '<f4')]",
    "'x'",
];

fn find(hay: &[u8], needle: &str) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w == needle.as_bytes())
}

fn splice(bytes: &[u8], from: &str, to: &str, with: &str) -> Vec<u8> {
    match find(bytes, from) {
        Some(a) => match find(&bytes[a..], to) {
            Some(b) => {
                let mut out = bytes[..a].to_vec();
                out.extend_from_slice(with.as_bytes());
                out.extend_from_slice(&bytes[a + b..]);
                out
            }
            None => bytes.to_vec(),
        },
        None => bytes.to_vec(),
    }
}

/// One byte-level mutation of `b`: a flipped bit, a truncation, or a run
/// (shorter than `run`) of one of `fill`'s bytes inserted anywhere.
fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>, fill: &[u8], run: usize) {
    match rng.below(3) {
        0 if !b.is_empty() => {
            let at = rng.below(b.len());
            b[at] ^= 1 << rng.below(8);
        }
        1 => b.truncate(rng.below(b.len() + 1)),
        _ => {
            let at = rng.below(b.len() + 1);
            let n = rng.below(run);
            let byte = *rng.pick(fill);
            b.splice(at..at, std::iter::repeat_n(byte, n));
        }
    }
}

fn mutate_npy(rng: &mut Rng, good: &[u8]) -> Vec<u8> {
    let mut b = good.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(10) {
            0..=2 => mutate_bytes(rng, &mut b, &[0u8, 0xff, b'(', b',', b' ', b'\'', b'9'], 64),
            3 => {
                b = splice(
                    &b,
                    "'shape': ",
                    "}",
                    &format!("'shape': {}, ", rng.pick(&SHAPES)),
                )
            }
            4 => {
                b = splice(
                    &b,
                    "'descr': ",
                    ",",
                    &format!("'descr': {}", rng.pick(&DTYPES)),
                )
            }
            5 => b = splice(&b, "False", ",", "True"),
            // The header length field: lies in both directions.
            6 if b.len() > 10 => {
                let v = [0u16, 1, 0x7fff, 0xffff, (b.len() as u16).wrapping_add(7)];
                b[8..10].copy_from_slice(&rng.pick(&v).to_le_bytes());
            }
            7 if b.len() > 7 => b[6] = *rng.pick(&[0u8, 1, 2, 3, 4, 255]),
            8 => {
                let extra = rng.below(40);
                b.extend((0..extra).map(|_| rng.next() as u8));
            }
            _ if !b.is_empty() => {
                let at = rng.below(b.len());
                b[at] = rng.next() as u8;
            }
            _ => {}
        }
    }
    b
}

/// Runs `f` under catch_unwind and the allocation counter; the first
/// failure names the input.
fn guarded(what: &str, f: impl FnOnce()) -> Result<(), String> {
    LARGEST.store(0, Ordering::Relaxed);
    let outcome = catch_unwind(AssertUnwindSafe(f));
    let largest = LARGEST.load(Ordering::Relaxed);
    match outcome {
        Err(p) => Err(format!(
            "{what}: panicked: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
        Ok(()) if largest > ALLOCATION_LIMIT => Err(format!(
            "{what}: asked for one allocation of {largest} bytes"
        )),
        Ok(()) => Ok(()),
    }
}

#[test]
fn npy_reader_never_panics_nor_trusts_a_header() {
    let files = corpus("npy", "npy");
    // The corpus itself reads back, but for the files named reject_*.
    for (path, bytes) in &files {
        let reject = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("reject_");
        assert_eq!(
            npy::parse(path, bytes).is_err(),
            reject,
            "{}",
            path.display()
        );
    }
    let mut rng = Rng(seed(1));
    let start = Instant::now();
    let (mut runs, mut errors) = (0usize, 0usize);
    let dir = std::env::temp_dir().join(format!("wgpu-loss-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let on_disk = dir.join("m.npy");
    while start.elapsed() < budget() || runs < 200 {
        let (path, good) = rng.pick(&files);
        let bytes = mutate_npy(&mut rng, good);
        let mut failed = false;
        let what = format!("{} mutated to {} bytes", path.display(), bytes.len());
        let r = guarded(&what, || {
            let parsed = npy::parse("m.npy", &bytes);
            if let Err(e) = &parsed {
                // One line that names the file.
                let text = e.to_string();
                assert!(text.contains("m.npy") && !text.contains('\n'), "{text}");
                failed = true;
            }
            // The file reader takes another path through the header.
            std::fs::write(&on_disk, &bytes).unwrap();
            assert_eq!(npy::read(&on_disk).is_err(), parsed.is_err());
        });
        if let Err(e) = r {
            std::fs::write(root().join("target/fuzz-npy-crash.npy"), &bytes).ok();
            panic!("{e} (input saved as target/fuzz-npy-crash.npy)");
        }
        runs += 1;
        errors += failed as usize;
    }
    std::fs::remove_dir_all(&dir).ok();
    println!("npy: {runs} mutated files, {errors} rejected");
}

fn mutate_args(rng: &mut Rng, good: &[String], npys: &[String]) -> Vec<String> {
    const GARBAGE: [&str; 22] = [
        "--reduction",
        "batchmean",
        "nonsense",
        "--delta",
        "-0",
        "nan",
        "inf",
        "1e40",
        "--quantiles",
        ",,",
        "0.5,x",
        "--ignore-index",
        "-9223372036854775808",
        "99999999999999999999",
        "--mode",
        "multilabel",
        "--from-logits",
        "maybe",
        "--out",
        "/nonexistent/x.npy",
        "--",
        "--help",
    ];
    let mut a = good.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(6) {
            0 if a.len() > 2 => {
                let at = 2 + rng.below(a.len() - 2);
                a.remove(at);
            }
            1 => {
                let at = 1 + rng.below(a.len());
                a.insert(at.min(a.len()), rng.pick(&GARBAGE).to_string());
            }
            2 if a.len() > 3 => {
                let (i, j) = (2 + rng.below(a.len() - 2), 2 + rng.below(a.len() - 2));
                a.swap(i, j);
            }
            3 if a.len() > 2 => {
                // Another file for some flag: wrong dtype, wrong shape.
                let at = 2 + rng.below(a.len() - 2);
                a[at] = rng.pick(npys).clone();
            }
            4 if a.len() > 1 => {
                let names: Vec<&str> = wgpu_loss::Loss::names().collect();
                let name = *rng.pick(&names);
                a[1] = name.to_string();
            }
            _ if a.len() > 2 => {
                let at = 2 + rng.below(a.len() - 2);
                let mut s = a[at].clone().into_bytes();
                if !s.is_empty() {
                    let k = rng.below(s.len());
                    let alphabet = b"-0.9e,x_=\x7f";
                    s[k] = alphabet[rng.below(alphabet.len())];
                }
                a[at] = String::from_utf8_lossy(&s).into_owned();
            }
            _ => {}
        }
    }
    a
}

#[test]
fn cli_arguments_never_panic() {
    // The corpus names files relative to the repository root.
    std::env::set_current_dir(root()).unwrap();
    let lists: Vec<Vec<String>> = corpus("cli", "txt")
        .into_iter()
        .map(|(_, b)| {
            let text = String::from_utf8(b).unwrap();
            std::iter::once("wgpu-loss".to_string())
                .chain(text.lines().map(str::to_string))
                .collect()
        })
        .collect();
    let relative = |p: &Path| {
        p.strip_prefix(root())
            .unwrap_or(Path::new(""))
            .display()
            .to_string()
    };
    let mut npys: Vec<String> = corpus("npy", "npy")
        .into_iter()
        .map(|(p, _)| relative(&p))
        .collect();
    // Safetensors files alone, with a name they hold, and with one they do not.
    for (p, _) in corpus("safetensors", "safetensors") {
        let p = relative(&p);
        npys.extend([
            p.clone(),
            format!("{p}:logits"),
            format!("{p}:x"),
            format!("{p}:nope"),
        ]);
    }
    // Every eval list of the corpus is a valid call.
    for args in &lists {
        if args[1] == "eval" {
            check_args(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
    let mut rng = Rng(seed(2));
    let start = Instant::now();
    let (mut runs, mut errors) = (0usize, 0usize);
    while start.elapsed() < budget() || runs < 200 {
        let good = rng.pick(&lists).clone();
        let args = mutate_args(&mut rng, &good, &npys);
        let mut failed = false;
        let r = guarded(&format!("{args:?}"), || {
            failed = check_args(&args).is_err();
        });
        if let Err(e) = r {
            panic!("{e}");
        }
        runs += 1;
        errors += failed as usize;
    }
    println!("cli: {runs} mutated argument lists, {errors} rejected");
}

/// Header texts a mutation may splice in for a tensor's shape, offsets or dtype.
const ST_SHAPES: [&str; 6] = [
    "[1099511627776,0]",
    "[4294967296,4294967296]",
    "[18446744073709551615]",
    "[-1]",
    "[3",
    "[100000000000]",
];
const ST_OFFSETS: [&str; 6] = [
    "[0,18446744073709551615]",
    "[8,0]",
    "[0,4398046511104]",
    "[1,3]",
    "[0]",
    "[0,8,16]",
];
const ST_DTYPES: [&str; 8] = [
    "\"F64\"",
    "\"C64\"",
    "\"U64\"",
    "\"F8_E4M3\"",
    "\"F4\"",
    "\"BOOL\"",
    "\"F128\"",
    "3",
];

fn mutate_safetensors(rng: &mut Rng, good: &[u8]) -> Vec<u8> {
    let mut b = good.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(9) {
            0..=2 => mutate_bytes(rng, &mut b, &[0u8, 0xff, b'{', b'"', b' ', b',', b'9'], 32),
            3 => {
                b = splice(
                    &b,
                    "\"shape\":",
                    ",\"data",
                    &format!("\"shape\":{}", rng.pick(&ST_SHAPES)),
                )
            }
            4 => {
                b = splice(
                    &b,
                    "\"data_offsets\":",
                    "}",
                    &format!("\"data_offsets\":{}", rng.pick(&ST_OFFSETS)),
                )
            }
            5 => {
                b = splice(
                    &b,
                    "\"dtype\":",
                    ",",
                    &format!("\"dtype\":{}", rng.pick(&ST_DTYPES)),
                )
            }
            // The header length field: lies in both directions.
            6 if b.len() >= 8 => {
                let len = u64::from_le_bytes(b[..8].try_into().unwrap());
                let v = [
                    0,
                    1,
                    len.wrapping_add(1),
                    len.wrapping_sub(1),
                    u64::MAX,
                    100_000_000,
                    100_000_001,
                ];
                b[..8].copy_from_slice(&rng.pick(&v).to_le_bytes());
            }
            7 => {
                let extra = rng.below(24);
                b.extend((0..extra).map(|_| rng.next() as u8));
            }
            _ if !b.is_empty() => {
                let at = rng.below(b.len());
                b[at] = rng.next() as u8;
            }
            _ => {}
        }
    }
    b
}

#[test]
fn safetensors_reader_never_panics_nor_trusts_a_header() {
    let files = corpus("safetensors", "safetensors");
    // The corpus itself reads back, but for the files named reject_*, and
    // the crate agrees.
    for (path, bytes) in &files {
        let reject = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("reject_");
        assert_eq!(
            safetensors::parse(path, bytes).is_err(),
            reject,
            "{}",
            path.display()
        );
        assert_eq!(
            ::safetensors::SafeTensors::deserialize(bytes).is_err(),
            reject,
            "{}",
            path.display()
        );
    }
    let mut rng = Rng(seed(3));
    let start = Instant::now();
    let (mut runs, mut errors) = (0usize, 0usize);
    let dir = std::env::temp_dir().join(format!("wgpu-loss-fuzz-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let on_disk = dir.join("m.safetensors");
    while start.elapsed() < budget() || runs < 200 {
        let (path, good) = rng.pick(&files);
        let bytes = mutate_safetensors(&mut rng, good);
        let mut failed = false;
        let what = format!("{} mutated to {} bytes", path.display(), bytes.len());
        let r = guarded(&what, || {
            let parsed = safetensors::parse(Path::new("m.safetensors"), &bytes);
            let one_line = |text: String| {
                assert!(
                    text.contains("m.safetensors") && !text.contains('\n'),
                    "{text}"
                );
            };
            if let Err(e) = &parsed {
                one_line(e.to_string());
                failed = true;
            }
            // What the reader accepts, the crate accepts.
            if parsed.is_ok() {
                assert!(::safetensors::SafeTensors::deserialize(&bytes).is_ok());
            }
            // Through the file: each tensor, as floats and as classes,
            // read whole and mapped.
            std::fs::write(&on_disk, &bytes).unwrap();
            let names: Vec<String> = match &parsed {
                Ok(t) => t.iter().map(|(info, _)| info.name.clone()).collect(),
                Err(_) => vec![],
            };
            let args = std::iter::once(on_disk.clone()).chain(
                names
                    .iter()
                    .map(|n| PathBuf::from(format!("{}:{n}", on_disk.display()))),
            );
            for arg in args {
                for (classes, mapped) in [(false, false), (true, true)] {
                    if let Err(e) = Source::open(&arg, classes, mapped) {
                        one_line(e.message());
                    }
                }
            }
        });
        if let Err(e) = r {
            let _ = std::fs::create_dir_all(root().join("target"));
            std::fs::write(root().join("target/fuzz-st-crash.safetensors"), &bytes).ok();
            panic!("{e} (input saved as target/fuzz-st-crash.safetensors)");
        }
        runs += 1;
        errors += failed as usize;
    }
    std::fs::remove_dir_all(&dir).ok();
    println!("safetensors: {runs} mutated files, {errors} rejected");
}
