use thiserror::Error;

/// Everything that can go wrong, typed so that callers can react to it.
/// No call panics on bad input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    #[error("no GPU adapter found ({0}); on Debian/Ubuntu without a GPU run `apt-get install -y mesa-vulkan-drivers`")]
    NoAdapter(String),
    #[error("could not open the GPU device: {0}")]
    Device(String),
    /// wgpu reported an error: `context` says what the crate was doing, and
    /// `source` is wgpu's own error where it gave one.
    #[error("GPU error: {context}{}", source.as_ref().map(|s| format!(": {s}")).unwrap_or_default())]
    Gpu {
        context: String,
        #[source]
        source: Option<GpuSource>,
    },
    #[error("the GPU device is lost ({0}); create a new context")]
    DeviceLost(String),
    #[error("the GPU is out of memory: {0}")]
    OutOfMemory(String),
    #[error("{loss}: `{name}` is required")]
    Missing {
        loss: &'static str,
        name: &'static str,
    },
    #[error("{loss}: `{name}` is not used by this loss")]
    Unexpected {
        loss: &'static str,
        name: &'static str,
    },
    #[error("`{name}`: shape {shape:?} needs {expected} values, got {actual}")]
    DataLength {
        name: &'static str,
        shape: Vec<usize>,
        expected: usize,
        actual: usize,
    },
    #[error("{loss}: `{name}` has shape {actual:?}, expected {expected}")]
    Shape {
        loss: &'static str,
        name: &'static str,
        expected: String,
        actual: Vec<usize>,
    },
    #[error("{loss}: `{name}` must be {expected}, got {value}")]
    Param {
        loss: &'static str,
        name: &'static str,
        expected: &'static str,
        value: String,
    },
    #[error("{loss}: target[{index}] = {value} is not a class in [0, {classes}) nor ignore_index {ignore_index}")]
    ClassOutOfRange {
        loss: &'static str,
        index: usize,
        value: i64,
        classes: usize,
        ignore_index: i64,
    },
    #[error("{loss}: `{name}`[{index}] = {value} is outside [0, 1]")]
    OutOfUnitRange {
        loss: &'static str,
        name: &'static str,
        index: usize,
        value: f32,
    },
    #[error("{loss}: `{name}`[{index}] = {value} is negative")]
    Negative {
        loss: &'static str,
        name: &'static str,
        index: usize,
        value: f32,
    },
    #[error("{loss}: reduction `{reduction}` is not supported (use {supported})")]
    Reduction {
        loss: &'static str,
        reduction: &'static str,
        supported: &'static str,
    },
    #[error("buffer `{name}`: {problem}")]
    Buffer { name: &'static str, problem: String },
    #[error("a per-item upstream gradient needs reduction `none`, not `{reduction}`")]
    UpstreamReduction { reduction: &'static str },
    #[error("the upstream gradient has {actual} values, expected {expected} (one per loss item)")]
    UpstreamLength { expected: usize, actual: usize },
    #[error("{loss}: `{name}` has {len} elements, more than the adapter can bind ({limit}); split the batch")]
    TooLarge {
        loss: &'static str,
        name: &'static str,
        len: usize,
        limit: usize,
    },
    /// Partials that do not merge, or an output that holds none.
    #[error("partial: {0}")]
    Partial(String),
    /// A kernel variant that does not exist, that is forced twice for one
    /// family, or that cannot run the call's shape on this adapter (see
    /// [`crate::Variant`]).
    #[error("kernel variant `{name}`: {problem}")]
    Variant { name: String, problem: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// wgpu's error behind an [`Error::Gpu`], shared so that `Error` stays
/// `Clone`; two are equal when their messages are.
#[derive(Clone, Debug)]
pub struct GpuSource(pub std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>);

impl std::fmt::Display for GpuSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for GpuSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for GpuSource {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Error {
    /// An `Error::Gpu` for `context` caused by wgpu's error `source`.
    pub(crate) fn gpu(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Gpu {
            context: context.into(),
            source: Some(GpuSource(std::sync::Arc::new(source))),
        }
    }

    /// An `Error::Gpu` with no error of wgpu's behind it.
    pub(crate) fn gpu_msg(context: impl Into<String>) -> Error {
        Error::Gpu {
            context: context.into(),
            source: None,
        }
    }
}
