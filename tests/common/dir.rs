//! A fresh temporary directory per test, removed when dropped, with `.npy`
//! and `.safetensors` writers: shared by the test binaries that run the CLI on files
//! (tests/streamed.rs, tests/mpi.rs include it with `#[path]`).

use std::fs;
use std::path::PathBuf;

use wgpu_loss::cli::npy;

pub struct Dir(PathBuf);

impl Dir {
    /// `<temp>/wgpu-loss-<binary>-<pid>-<name>`, emptied first.
    pub fn new(binary: &str, name: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("wgpu-loss-{binary}-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    pub fn path(&self, file: &str) -> String {
        self.0.join(file).to_str().unwrap().to_string()
    }

    pub fn f32(&self, file: &str, shape: &[usize], data: &[f32]) -> String {
        npy::write_f32(self.path(file), shape, data).unwrap();
        self.path(file)
    }

    pub fn i64(&self, file: &str, shape: &[usize], data: &[i64]) -> String {
        npy::write_i64(self.path(file), shape, data).unwrap();
        self.path(file)
    }

    /// A `.safetensors` file of bf16 `logits` (rows, c), i64 `classes` and
    /// a bf16 class `weight`, each rounded from the f32 given; its path.
    pub fn bf16_batch(
        &self,
        file: &str,
        logits: &[f32],
        c: usize,
        classes: &[i64],
        weight: &[f32],
    ) -> String {
        use safetensors::{tensor::TensorView, Dtype};
        let bf16 = |v: &[f32]| -> Vec<u8> {
            v.iter()
                .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
                .collect()
        };
        let (l, w) = (bf16(logits), bf16(weight));
        let k: Vec<u8> = classes.iter().flat_map(|c| c.to_le_bytes()).collect();
        let views = vec![
            (
                "logits",
                TensorView::new(Dtype::BF16, vec![classes.len(), c], &l).unwrap(),
            ),
            (
                "classes",
                TensorView::new(Dtype::I64, vec![classes.len()], &k).unwrap(),
            ),
            (
                "weight",
                TensorView::new(Dtype::BF16, vec![weight.len()], &w).unwrap(),
            ),
        ];
        fs::write(
            self.path(file),
            safetensors::serialize(views, None).unwrap(),
        )
        .unwrap();
        self.path(file)
    }

    /// The file names in the directory, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
