//! The `.npy` files of a streamed, split or distributed evaluation, mapped:
//! little-endian float32 and int64 data are used in place, so a file larger
//! than RAM costs only the pages being read.

use std::ops::Range;

use wgpu_loss::cli::args::{tensor_flag, Files};
use wgpu_loss::cli::npy::{Data, Mapped};
use wgpu_loss::cli::Fail;
use wgpu_loss::{Inputs, Loss, Tensor, TensorName};

enum Values {
    /// Native-endian float32 or int64, used in place.
    Mapped,
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// One file: mapped, and converted whole where its dtype cannot be used in place.
struct Source {
    map: Mapped,
    values: Values,
}

impl Source {
    fn open(name: TensorName, path: &std::path::Path, classes: bool) -> Result<Source, Fail> {
        let map =
            Mapped::open(path).map_err(|e| Fail::Usage(format!("--{}: {e}", tensor_flag(name))))?;
        let values = if (classes && map.i64().is_some()) || map.f32().is_some() {
            Values::Mapped
        } else {
            let a = map.to_array();
            if classes && a.is_int() {
                match a.data {
                    Data::I64(v) => Values::I64(v),
                    _ => unreachable!("is_int"),
                }
            } else {
                Values::F32(a.into_f32())
            }
        };
        Ok(Source { map, values })
    }

    fn floats(&self) -> &[f32] {
        match &self.values {
            Values::Mapped => self.map.f32().unwrap_or_default(),
            Values::F32(v) => v,
            Values::I64(_) => &[],
        }
    }

    fn classes(&self) -> Option<&[i64]> {
        match &self.values {
            Values::Mapped => self.map.i64(),
            Values::I64(v) => Some(v),
            Values::F32(_) => None,
        }
    }
}

/// Every file of one evaluation, mapped, in [`TensorName::ALL`]'s order.
pub struct Sources {
    sources: Vec<(TensorName, Source)>,
}

impl Sources {
    /// Maps every file; messages name the flag and the file.
    pub fn open(loss: &Loss, files: &Files) -> Result<Sources, Fail> {
        let mut sources = vec![];
        for (name, path) in &files.paths {
            let classes = *name == TensorName::Target && loss.takes_classes();
            sources.push((*name, Source::open(*name, path, classes)?));
        }
        Ok(Sources { sources })
    }

    /// The files as the inputs of one call.
    pub fn inputs(&self) -> Inputs<'_> {
        let mut inputs = Inputs::default();
        for (name, source) in &self.sources {
            inputs = match source.classes() {
                Some(data) => inputs.classes(data, source.map.shape()),
                None => inputs.with(*name, Tensor::new(source.floats(), source.map.shape())),
            };
        }
        inputs
    }

    /// The shape of a tensor's file.
    pub fn shape(&self, name: TensorName) -> Option<&[usize]> {
        self.sources
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.map.shape())
    }

    /// Bytes of data in all the files.
    pub fn data_bytes(&self) -> u64 {
        self.sources.iter().map(|(_, s)| s.map.data_bytes()).sum()
    }

    /// Drops the pages of units `done` (of `total`) of every file from this
    /// process (see [`Mapped::release`]): read by everything that needed
    /// them.
    pub fn release(&self, done: Range<usize>, total: usize) {
        for (_, s) in &self.sources {
            s.map.release(done.clone(), total);
        }
    }
}
