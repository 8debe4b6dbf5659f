//! What a `.npy` file gives, and why one could not be read or written.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The elements of an array: float16 as `f16`, other floats as `f32`,
/// integers and bools as `i64`.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
    I64(Vec<i64>),
}

/// A C-order array read from a `.npy` file; `shape` is `[]` for a 0-d array.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Data,
    /// The file's dtype, e.g. `<f8`.
    pub dtype: String,
}

impl Array {
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::F16(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_int(&self) -> bool {
        matches!(self.data, Data::I64(_))
    }

    /// The elements as `f32` (integers and float16 converted).
    pub fn into_f32(self) -> Vec<f32> {
        match self.data {
            Data::F32(v) => v,
            Data::F16(v) => v.into_iter().map(half::f16::to_f32).collect(),
            Data::I64(v) => v.into_iter().map(|x| x as f32).collect(),
        }
    }
}

/// Why a `.npy` file could not be read or written. Each message is one line
/// that names the file.
#[derive(Debug, Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a .npy file (it does not start with \\x93NUMPY)")]
    NotNpy { path: PathBuf },
    #[error("{path}: malformed .npy header: {reason}")]
    Header { path: PathBuf, reason: String },
    #[error("{path}: Fortran-order arrays are not supported (save with np.ascontiguousarray)")]
    FortranOrder { path: PathBuf },
    #[error("{path}: unsupported dtype {descr} ({kind}); use float16, float32, float64 or an integer type")]
    Dtype {
        path: PathBuf,
        descr: String,
        kind: &'static str,
    },
    #[error("{path}: truncated: shape {shape:?} of {descr} needs {expected} data bytes, the file holds {actual}")]
    Truncated {
        path: PathBuf,
        shape: Vec<usize>,
        descr: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: {extra} unexpected bytes after the data of shape {shape:?} ({descr})")]
    Trailing {
        path: PathBuf,
        shape: Vec<usize>,
        descr: String,
        extra: u64,
    },
    #[error("{path}: shape {shape:?} and {len} values disagree")]
    Length {
        path: PathBuf,
        shape: Vec<usize>,
        len: usize,
    },
}

impl NpyError {
    pub(super) fn header(path: &Path, reason: impl Into<String>) -> Self {
        NpyError::Header {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
