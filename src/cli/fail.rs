//! A failure of the CLI, and the exit code it gives.

use super::npy::NpyError;
use super::safetensors::SafetensorsError;

/// A failure of the CLI and its exit code: 2 for usage and input errors, 1
/// for the GPU, 3 for a GPU result that disagrees with the float64 reference.
#[derive(Clone, Debug)]
pub enum Fail {
    Usage(String),
    Gpu(String),
    Disagree(String),
}

impl Fail {
    pub fn message(self) -> String {
        match self {
            Fail::Usage(m) | Fail::Gpu(m) | Fail::Disagree(m) => m,
        }
    }

    /// The process's exit code.
    pub fn code(&self) -> u8 {
        match self {
            Fail::Usage(_) => 2,
            Fail::Gpu(_) => 1,
            Fail::Disagree(_) => 3,
        }
    }
}

impl From<crate::Error> for Fail {
    fn from(e: crate::Error) -> Self {
        use crate::Error::*;
        match e {
            NoAdapter(_) | Device(_) | Gpu { .. } | DeviceLost(_) | OutOfMemory(_) => {
                Fail::Gpu(e.to_string())
            }
            _ => Fail::Usage(e.to_string()),
        }
    }
}

impl From<NpyError> for Fail {
    fn from(e: NpyError) -> Self {
        Fail::Usage(e.to_string())
    }
}

impl From<SafetensorsError> for Fail {
    fn from(e: SafetensorsError) -> Self {
        Fail::Usage(e.to_string())
    }
}
