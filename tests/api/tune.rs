//! The tuner (src/gpu/tune.rs): its choice kept per key in a cache file and
//! read back by a later context, a hand-edited entry obeyed, a stale entry
//! or a corrupt file timed again rather than an error, `TuneCache::Off`,
//! small calls untimed, and variants forced through `Context::with_variant`.
//! The environment variables (`WGPU_LOSS_CACHE`, `WGPU_LOSS_VARIANT`) are
//! tested through the CLI, in processes of their own (tests/cli.rs).

use std::path::{Path, PathBuf};

use serde_json::Value;
use wgpu_loss::{
    cpu, BufferView, Context, DeviceInputs, DeviceTensor, Error, Inputs, Loss, Pairs, Reduction,
    Tensor, TuneCache, Variant, TUNE_MIN_ELEMENTS,
};

use crate::common::device::buffer;
use crate::common::{close, ctx, rng, uniform};

fn cosine() -> Loss {
    Loss::Pairs(Pairs::CosineEmbedding { margin: 0.0 })
}

/// A fresh directory per test, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("wgpu-loss-tune-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("tune.json")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tuned context on the test device whose tuner keeps its choices in `path`.
fn tuned(path: &Path) -> Context {
    ctx().with_tune_cache(TuneCache::At(path.to_path_buf()))
}

/// Two tensors of `rows` rows of `dim` values.
struct Rows {
    shape: [usize; 2],
    a: Vec<f32>,
    b: Vec<f32>,
}

impl Rows {
    fn new(rows: usize, dim: usize) -> Rows {
        let mut r = rng(rows as u64 + dim as u64);
        Rows {
            shape: [rows, dim],
            a: uniform(&mut r, rows * dim, -1.0, 1.0),
            b: uniform(&mut r, rows * dim, -1.0, 1.0),
        }
    }

    fn inputs(&self) -> Inputs<'_> {
        Inputs::new(Tensor::new(&self.a, &self.shape)).target(Tensor::new(&self.b, &self.shape))
    }
}

fn entries(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(file["version"], 1, "{text}");
    file["entries"].as_array().unwrap().clone()
}

fn names(variants: &[Variant]) -> Vec<String> {
    variants.iter().map(|v| v.name().to_string()).collect()
}

/// The variant a build of this call on `ctx` runs, checked against the
/// reference on the way.
fn built(ctx: &Context, rows: &Rows) -> Variant {
    let inputs = rows.inputs();
    let prepared = ctx.prepare(&cosine(), Reduction::Mean, &inputs).unwrap();
    let got = prepared.run().unwrap().value;
    let want = cpu::evaluate(&cosine(), Reduction::Mean, &inputs)
        .unwrap()
        .value;
    assert!(close(got, want, 1e-6), "{got} vs {want}");
    prepared.evaluator().variant()
}

#[test]
fn choices_round_trip_through_the_cache_file() {
    let dir = Dir::new("round-trip");
    let path = dir.file();
    let first = tuned(&path);
    assert_eq!(first.tune_cache_path(), Some(path.as_path()));
    let rows = Rows::new(300, 256);
    let eligible = first
        .variants(&cosine(), Reduction::Mean, &rows.inputs())
        .unwrap();
    assert!(eligible.len() > 1, "{eligible:?}");
    let choice = first
        .tune(&cosine(), Reduction::Mean, &rows.inputs())
        .unwrap();
    assert!(eligible.contains(&choice));

    // One entry for the key, in the documented format.
    let e = entries(&path);
    assert_eq!(e.len(), 1, "{e:?}");
    let info = ctx().adapter_info();
    assert_eq!(e[0]["adapter"], info.name.as_str());
    assert_eq!(e[0]["driver"], info.driver.as_str());
    assert_eq!(e[0]["backend"], format!("{:?}", info.backend).as_str());
    assert_eq!(e[0]["family"], "pairs");
    assert_eq!(e[0]["loss"], "cosine_embedding");
    assert_eq!(e[0]["dtype"], "f32");
    assert_eq!(e[0]["rows_log2"], 9, "300 rows: bucket 2^9");
    assert_eq!(e[0]["row_len_log2"], 8);
    assert_eq!(e[0]["grad"], false);
    assert_eq!(e[0]["variant"], choice.name());
    let candidates: Vec<String> = serde_json::from_value(e[0]["candidates"].clone()).unwrap();
    assert_eq!(candidates, names(&eligible));
    let ms: Vec<f64> = serde_json::from_value(e[0]["ms"].clone()).unwrap();
    assert_eq!(ms.len(), candidates.len());
    assert!(ms.iter().all(|t| t.is_finite() && *t > 0.0), "{ms:?}");

    // The same bucket (400 rows) builds with the choice, untimed.
    assert_eq!(built(&first, &Rows::new(400, 256)), choice);
    assert_eq!(entries(&path).len(), 1);

    // A later context reads the file. Edited to another candidate, the entry
    // decides what it builds: no timing, the file's word.
    let other = *eligible.iter().find(|v| **v != choice).unwrap();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &format!("\"variant\": \"{choice}\""),
        &format!("\"variant\": \"{other}\""),
    );
    std::fs::write(&path, text).unwrap();
    assert_eq!(built(&tuned(&path), &Rows::new(300, 256)), other);

    // The fused call and another bucket are keys of their own.
    let later = tuned(&path);
    let grad = later
        .tune_with_grad(&cosine(), Reduction::Mean, &rows.inputs())
        .unwrap();
    let wide = Rows::new(70, 1000);
    const { assert!(70 * 1000 >= TUNE_MIN_ELEMENTS) };
    let v = built(&later, &wide);
    let e = entries(&path);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e
        .iter()
        .any(|x| x["grad"] == true && x["variant"] == grad.name()));
    assert!(e
        .iter()
        .any(|x| x["row_len_log2"] == 10 && x["variant"] == v.name()));
    // Nothing but the file in the directory: written whole, then renamed.
    let files: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(files.len(), 1);
}

#[test]
fn stale_entries_and_corrupt_files_are_timed_again() {
    let dir = Dir::new("stale");
    let path = dir.file();
    let rows = Rows::new(300, 256);
    let eligible = ctx()
        .with_tune_cache(TuneCache::Off)
        .variants(&cosine(), Reduction::Mean, &rows.inputs())
        .unwrap();
    // An entry timed among other candidates than today's is stale.
    let info = ctx().adapter_info();
    let stale = serde_json::json!({
        "version": 1,
        "entries": [{
            "adapter": info.name, "driver": info.driver,
            "backend": format!("{:?}", info.backend),
            "family": "pairs", "loss": "cosine_embedding", "dtype": "f32",
            "rows_log2": 9, "row_len_log2": 8, "grad": false,
            "candidates": ["pair-nowhere", "pair-thread"], "variant": "pair-nowhere",
            "ms": [1.0, 2.0],
        }],
    });
    std::fs::write(&path, stale.to_string()).unwrap();
    built(&tuned(&path), &rows);
    let e = entries(&path);
    assert_eq!(e.len(), 1);
    let candidates: Vec<String> = serde_json::from_value(e[0]["candidates"].clone()).unwrap();
    assert_eq!(candidates, names(&eligible), "timed again: {e:?}");

    // A file that is not JSON, or of another version, is no error: the call
    // runs, its key is timed, and the file is written anew.
    for text in ["{ not json", "{\"version\": 2, \"entries\": []}", ""] {
        std::fs::write(&path, text).unwrap();
        built(&tuned(&path), &rows);
        assert_eq!(entries(&path).len(), 1, "after {text:?}");
    }
    // A directory where the file should be: nothing is written, nothing fails.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    built(&tuned(&path), &rows);
    assert!(path.is_dir());
}

#[test]
fn off_keeps_choices_in_memory_and_small_calls_are_not_timed() {
    let off = ctx().with_tune_cache(TuneCache::Off);
    assert_eq!(off.tune_cache_path(), None);
    let rows = Rows::new(300, 256);
    let choice = off
        .tune(&cosine(), Reduction::Mean, &rows.inputs())
        .unwrap();
    assert_eq!(
        off.tune(&cosine(), Reduction::Mean, &rows.inputs())
            .unwrap(),
        choice
    );
    assert_eq!(built(&off, &rows), choice);

    // Below TUNE_MIN_ELEMENTS a build takes the best guess, and writes no file.
    let dir = Dir::new("small");
    let path = dir.file();
    let small = Rows::new(10, 256);
    const { assert!(10 * 256 < TUNE_MIN_ELEMENTS) };
    let c = tuned(&path);
    let guess = c
        .variants(&cosine(), Reduction::Mean, &small.inputs())
        .unwrap()[0];
    assert_eq!(built(&c, &small), guess);
    assert!(!path.exists());
    // So does an untuned context, at any size.
    let untuned = ctx().untuned();
    let guess = untuned
        .variants(&cosine(), Reduction::Mean, &rows.inputs())
        .unwrap()[0];
    assert_eq!(built(&untuned, &rows), guess);
    assert_eq!(
        untuned
            .tune(&cosine(), Reduction::Mean, &rows.inputs())
            .unwrap(),
        guess
    );
}

#[test]
fn a_forced_variant_is_built_and_never_timed() {
    let dir = Dir::new("forced");
    let path = dir.file();
    let base = tuned(&path);
    for (rows, dim) in [(300, 256), (70, 2000)] {
        let data = Rows::new(rows, dim);
        let eligible = base
            .variants(&cosine(), Reduction::Mean, &data.inputs())
            .unwrap();
        for v in eligible {
            let forced = base.with_variant(v);
            assert_eq!(
                forced
                    .variants(&cosine(), Reduction::Mean, &data.inputs())
                    .unwrap(),
                [v]
            );
            assert_eq!(built(&forced, &data), v);
            assert_eq!(
                forced
                    .tune(&cosine(), Reduction::Mean, &data.inputs())
                    .unwrap(),
                v
            );
            // On caller buffers too.
            let shape = [rows, dim];
            let (a, b) = (buffer(ctx(), &data.a), buffer(ctx(), &data.b));
            let device = DeviceInputs::new(DeviceTensor::new(
                BufferView::new(&a, 0, rows * dim),
                &shape,
            ))
            .target(DeviceTensor::new(
                BufferView::new(&b, 0, rows * dim),
                &shape,
            ));
            let ev = forced
                .grad_evaluator(&cosine(), Reduction::Sum, &device)
                .unwrap();
            assert_eq!(ev.variant(), v);
        }
    }
    assert!(!path.exists(), "nothing was timed");
    // Every name parses back, and a bad one is an Error::Variant.
    for v in Variant::all() {
        assert_eq!(v.name().parse::<Variant>().unwrap(), v);
        assert_eq!(Variant::from_name(&v.to_string()), Some(v));
    }
    assert!(matches!(
        "pair-everything".parse::<Variant>(),
        Err(Error::Variant { .. })
    ));
}
