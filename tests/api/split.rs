//! One batch split across every adapter against the float64 CPU reference
//! and one call on each adapter alone. The tests ask for every backend and
//! CPU adapters (`AdapterFilter::EVERY`), so that a machine without a GPU
//! still splits across lavapipe (Vulkan) and llvmpipe (GL).

use std::sync::OnceLock;
use wgpu_loss::{Pointwise, Rows};

use crate::common::{close, rng, uniform};
use rand::Rng;
use wgpu_loss::split::{self, Split};
use wgpu_loss::{cpu, AdapterFilter, Context, Error, Inputs, Loss, Reduction, Tensor};

fn contexts() -> &'static [Context] {
    static ALL: OnceLock<Vec<Context>> = OnceLock::new();
    ALL.get_or_init(|| {
        let all = Context::all_with(AdapterFilter::EVERY)
            .expect("a wgpu adapter (install mesa-vulkan-drivers)")
            .contexts;
        let names: Vec<String> = all.iter().map(Context::adapter_name).collect();
        if all.len() < 2 {
            eprintln!("only one adapter ({names:?}): the split runs on it alone");
        } else {
            eprintln!("splitting across {names:?}");
        }
        all
    })
}

/// Checks the split against the reference, and each adapter alone against
/// it too, for `none`, `mean` and `sum`; the split must use every adapter.
fn split_matches(what: &str, loss: &Loss, inputs: &Inputs<'_>) {
    let all = contexts();
    for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
        let what = format!("{what} {}", reduction.name());
        let want = cpu::evaluate(loss, reduction, inputs).unwrap();
        let scale = want.items.iter().map(|v| v.abs()).sum::<f64>() * 1e-6;
        let Split { evaluation, shares } = split::evaluate(all, loss, reduction, inputs)
            .unwrap_or_else(|e| panic!("{what}: split: {e}"));
        let adapters: Vec<&str> = shares.iter().map(|s| s.adapter.as_str()).collect();
        assert_eq!(shares.len(), all.len(), "{what}: shares {adapters:?}");
        for (s, ctx) in shares.iter().zip(all) {
            assert_eq!(s.adapter, ctx.adapter_name(), "{what}: share order");
            assert!(!s.units.is_empty(), "{what}: empty share on {}", s.adapter);
        }
        let results =
            std::iter::once(("split".to_string(), evaluation)).chain(all.iter().map(|ctx| {
                let alone = ctx
                    .evaluate(loss, reduction, inputs)
                    .unwrap_or_else(|e| panic!("{what}: {}: {e}", ctx.adapter_name()));
                (ctx.adapter_name(), alone)
            }));
        for (by, got) in results {
            assert_eq!(got.items_shape, want.items_shape, "{what} ({by}): shape");
            if let Some(items) = &got.items {
                assert_eq!(items.len(), want.items.len(), "{what} ({by}): items");
                for (i, (g, w)) in items.iter().zip(&want.items).enumerate() {
                    assert!(
                        close(*g as f64, *w, 1e-6),
                        "{what} ({by}): item {i}: {g} vs {w}"
                    );
                }
            }
            assert!(
                close(got.value, want.value, 1e-6 + scale),
                "{what} ({by}): {} vs reference {}",
                got.value,
                want.value
            );
        }
    }
}

#[test]
fn split_mse_with_broadcast_weight() {
    let mut r = rng(11);
    let (rows, cols) = (2001, 7);
    let x = uniform(&mut r, rows * cols, -3.0, 3.0);
    let y = uniform(&mut r, rows * cols, -3.0, 3.0);
    let w = uniform(&mut r, cols, 0.0, 2.0);
    let (s, sw) = ([rows, cols], [cols]);
    let inputs = Inputs::new(Tensor::new(&x, &s)).target(Tensor::new(&y, &s));
    split_matches("mse", &Loss::Pointwise(Pointwise::Mse), &inputs);
    let weighted = inputs.weight(Tensor::new(&w, &sw));
    split_matches("mse weight", &Loss::Pointwise(Pointwise::Mse), &weighted);
}

#[test]
fn split_cross_entropy_with_weight_and_ignore_index() {
    let mut r = rng(12);
    let (n, c) = (1000, 10);
    let x = uniform(&mut r, n * c, -4.0, 4.0);
    // The first half entirely ignored: a share's own mean would be NaN, the
    // call's is over the other share's weights.
    let y: Vec<i64> = (0..n)
        .map(|i| {
            if i < n / 2 || i % 7 == 3 {
                -1
            } else {
                r.random_range(0..c as i64)
            }
        })
        .collect();
    let w = uniform(&mut r, c, 0.1, 2.0);
    let (sx, sy, sw) = ([n, c], [n], [c]);
    let inputs = Inputs::new(Tensor::new(&x, &sx))
        .classes(&y, &sy)
        .weight(Tensor::new(&w, &sw));
    for label_smoothing in [0.0, 0.1] {
        let ce = Loss::Rows(Rows::CrossEntropy {
            ignore_index: -1,
            label_smoothing,
        });
        split_matches(
            &format!("cross_entropy weight ignore_index smoothing {label_smoothing}"),
            &ce,
            &inputs,
        );
    }
}

#[test]
fn split_dice_with_absent_class() {
    let mut r = rng(13);
    let (n, c, hw) = (8, 4, 100);
    let x = uniform(&mut r, n * c * hw, -3.0, 3.0);
    // Class 2 only in the first entry (absent from the later shares), class 3
    // nowhere: smp's empty-class rule applies to the merged sums only.
    let y: Vec<i64> = (0..n * hw)
        .map(|i| r.random_range(0..if i < hw { 3 } else { 2 }))
        .collect();
    let (sx, sy) = ([n, c, 10, 10], [n, 10, 10]);
    let inputs = Inputs::new(Tensor::new(&x, &sx)).classes(&y, &sy);
    split_matches(
        "dice multiclass",
        &Loss::from_name("dice").unwrap(),
        &inputs,
    );
}

#[test]
fn split_triplet_margin_with_nan_rows() {
    let mut r = rng(15);
    let (rows, d) = (400, 8);
    let mut a = uniform(&mut r, rows * d, -1.0, 1.0);
    let p = uniform(&mut r, rows * d, -1.0, 1.0);
    let n = uniform(&mut r, rows * d, -1.0, 1.0);
    // A NaN row in each share: its item and every mean stay NaN (a GL
    // compiler that assumes no NaN once turned the hinge into 0 here).
    a[10 * d] = f32::NAN;
    a[300 * d + 3] = f32::NAN;
    let s = [rows, d];
    let inputs = Inputs::new(Tensor::new(&a, &s))
        .positive(Tensor::new(&p, &s))
        .negative(Tensor::new(&n, &s));
    split_matches(
        "triplet_margin NaN rows",
        &Loss::from_name("triplet_margin").unwrap(),
        &inputs,
    );
}

#[test]
fn split_small_and_empty_batches() {
    let all = contexts();
    // One row: one share, on the best adapter.
    let x = [0.5f32, 1.5, -1.0];
    let y = [2i64];
    let inputs = Inputs::new(Tensor::new(&x, &[1, 3])).classes(&y, &[1]);
    let ce = Loss::from_name("cross_entropy").unwrap();
    let got = split::evaluate(all, &ce, Reduction::Mean, &inputs).unwrap();
    assert_eq!(got.shares.len(), 1);
    assert_eq!(got.shares[0].adapter, all[0].adapter_name());
    let want = cpu::evaluate(&ce, Reduction::Mean, &inputs).unwrap();
    assert!(close(got.evaluation.value, want.value, 1e-6));
    // No rows: the mean of nothing.
    let inputs = Inputs::new(Tensor::new(&[], &[0, 3])).classes(&[], &[0]);
    let got = split::evaluate(all, &ce, Reduction::Mean, &inputs).unwrap();
    assert!(got.evaluation.value.is_nan(), "{:?}", got.evaluation);
    let got = split::evaluate(all, &ce, Reduction::Sum, &inputs).unwrap();
    assert_eq!(got.evaluation.value, 0.0);
    assert!(matches!(
        split::evaluate(&[], &ce, Reduction::Sum, &inputs),
        Err(Error::NoAdapter(_))
    ));
}

#[test]
fn split_errors_name_the_whole_tensor() {
    let (n, c) = (100, 3);
    let x = vec![0.0f32; n * c];
    let mut y = vec![1i64; n];
    y[97] = 5;
    let (sx, sy) = ([n, c], [n]);
    let inputs = Inputs::new(Tensor::new(&x, &sx)).classes(&y, &sy);
    let ce = Loss::from_name("cross_entropy").unwrap();
    let err = split::evaluate(contexts(), &ce, Reduction::Mean, &inputs).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ClassOutOfRange {
                index: 97,
                value: 5,
                ..
            }
        ),
        "{err:?}"
    );
}

/// The adapters `Context::all` opens (what the CLI's `--adapters all` splits
/// across) and those it leaves out, as "name (backend)".
fn default_adapters() -> (Vec<String>, Vec<String>) {
    let opened: Vec<String> = contexts().iter().map(Context::adapter_name).collect();
    let infos: Vec<wgpu::AdapterInfo> = Context::adapters().iter().map(|a| a.get_info()).collect();
    let picks = AdapterFilter::default().pick(&infos);
    let (mut kept, mut skipped) = (vec![], vec![]);
    for (info, pick) in infos.iter().zip(picks) {
        let name = format!("{} ({:?})", info.name, info.backend);
        match pick {
            None if opened.contains(&name) => kept.push(name),
            _ => skipped.push(name),
        }
    }
    (kept, skipped)
}

/// `wgpu-loss eval --adapters all`: the same value as the reference, the
/// adapters that took a share in the JSON and those left out with the
/// reason, and items in batch order.
#[test]
fn cli_adapters_all() {
    use std::process::Command;
    let bin = env!("CARGO_BIN_EXE_wgpu-loss");
    let dir = std::env::temp_dir().join(format!("wgpu-loss-split-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let mut r = rng(14);
    let (n, c) = (300, 5);
    let x = uniform(&mut r, n * c, -3.0, 3.0);
    let y: Vec<i64> = (0..n)
        .map(|i| {
            if i % 5 == 0 {
                7
            } else {
                r.random_range(0..c as i64)
            }
        })
        .collect();
    let w = uniform(&mut r, c, 0.5, 2.0);
    wgpu_loss::cli::npy::write_f32(dir.join("x.npy"), &[n, c], &x).unwrap();
    wgpu_loss::cli::npy::write_i64(dir.join("y.npy"), &[n], &y).unwrap();
    wgpu_loss::cli::npy::write_f32(dir.join("w.npy"), &[c], &w).unwrap();
    let (xs, ys, ws, out) = (path("x.npy"), path("y.npy"), path("w.npy"), path("out.npy"));
    let args = |reduction: &'static str, adapters: &'static str| {
        vec![
            "eval",
            "cross_entropy",
            "--input",
            &xs,
            "--target",
            &ys,
            "--weight",
            &ws,
            "--ignore-index",
            "7",
            "--reduction",
            reduction,
            "--adapters",
            adapters,
            "--json",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let run = |args: &[String]| Command::new(bin).args(args).output().unwrap();
    let json = |args: &[String]| {
        let o = run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{args:?}: {err}");
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let ce = Loss::Rows(Rows::CrossEntropy {
        ignore_index: 7,
        label_smoothing: 0.0,
    });
    let (sx, sy, sw) = ([n, c], [n], [c]);
    let inputs = Inputs::new(Tensor::new(&x, &sx))
        .classes(&y, &sy)
        .weight(Tensor::new(&w, &sw));
    let (names, skipped) = default_adapters();

    let doc = json(&args("mean", "all"));
    let want = cpu::evaluate(&ce, Reduction::Mean, &inputs).unwrap().value;
    assert!(close(doc["value"].as_f64().unwrap(), want, 1e-6), "{doc}");
    assert_eq!(doc["adapters"], serde_json::json!(names), "{doc}");
    let listed: Vec<String> = doc["skipped"]
        .as_array()
        .unwrap_or_else(|| panic!("no skipped list: {doc}"))
        .iter()
        .map(|s| {
            assert!(!s["reason"].as_str().unwrap_or("").is_empty(), "{s}");
            format!(
                "{} ({})",
                s["name"].as_str().unwrap(),
                s["backend"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(listed, skipped, "{doc}");
    let one = json(&args("mean", "one"));
    assert_eq!(one["adapters"].as_array().map(Vec::len), Some(1), "{one}");

    let mut none = args("none", "all");
    none.extend(["--out".to_string(), out.clone()]);
    let doc = json(&none);
    assert_eq!(doc["adapters"], serde_json::json!(names), "{doc}");
    let want = cpu::evaluate(&ce, Reduction::None, &inputs).unwrap();
    let got = wgpu_loss::cli::npy::read(&out).unwrap().into_f32();
    assert_eq!(got.len(), want.items.len());
    for (i, (g, w)) in got.iter().zip(&want.items).enumerate() {
        assert!(close(*g as f64, *w, 1e-6), "item {i}: {g} vs {w}");
    }

    // A bad value is a usage error, exit 2; files beyond the budget are
    // streamed, each share in chunks.
    let o = run(&args("mean", "some"));
    assert_eq!(o.status.code(), Some(2));
    let mut big = args("mean", "all");
    big.extend(["--budget-mb".to_string(), "0.01".to_string()]);
    let doc = json(&big);
    let want = cpu::evaluate(&ce, Reduction::Mean, &inputs).unwrap().value;
    assert!(close(doc["value"].as_f64().unwrap(), want, 1e-6), "{doc}");
    assert!(doc["chunks"].as_u64().unwrap() > 1, "{doc}");
    std::fs::remove_dir_all(&dir).ok();
}
