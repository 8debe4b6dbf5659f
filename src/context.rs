//! The GPU context: device, queue, limits and the pipeline cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::adapters::{AdapterFilter, SkipReason};
use crate::error::{Error, Result};
use crate::gpu::{variant, Caps, TuneCache, Tuner, Variant};

/// A WGSL program: the shared prelude plus one family's kernels. Bindings
/// follow one convention: `reads` read-only storage buffers at 0.., then
/// `writes` read-write storage buffers, then the params uniform.
pub(crate) struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
    pub reads: u32,
    pub writes: u32,
}

macro_rules! kernel {
    ($name:literal, $reads:expr) => {
        kernel!($name, $reads, 1)
    };
    ($name:literal, $reads:expr, $writes:expr) => {
        Kernel {
            name: $name,
            source: concat!(
                include_str!("../shaders/common.wgsl"),
                include_str!(concat!("../shaders/", $name, ".wgsl"))
            ),
            reads: $reads,
            writes: $writes,
        }
    };
}

/// Reads input, target, weight, aux and the upstream gradient; writes the
/// items or partials, and the gradient: `point-scalar`, one f32 per load,
/// and the weight pre-pass.
pub(crate) const POINTWISE: Kernel = Kernel {
    name: "pointwise",
    source: concat!(
        include_str!("../shaders/common.wgsl"),
        include_str!("../shaders/pointwise.wgsl"),
        include_str!("../shaders/pointwise_scalar.wgsl")
    ),
    reads: 5,
    writes: 2,
};
/// `POINTWISE`'s losses as `point-vec4`: the same buffers bound as arrays of
/// vec4<f32>, hence a module of its own.
pub(crate) const POINTWISE_VEC4: Kernel = Kernel {
    name: "pointwise_vec4",
    source: concat!(
        include_str!("../shaders/common.wgsl"),
        include_str!("../shaders/pointwise.wgsl"),
        include_str!("../shaders/pointwise_vec4_f32.wgsl"),
        include_str!("../shaders/pointwise_vec4.wgsl")
    ),
    reads: 5,
    writes: 2,
};
/// `point-vec4` over f16 and bf16 tensors: four halves (8 bytes) per load.
pub(crate) const POINTWISE_VEC4_HALF: Kernel = Kernel {
    name: "pointwise_vec4_half",
    source: concat!(
        include_str!("../shaders/common.wgsl"),
        include_str!("../shaders/pointwise.wgsl"),
        include_str!("../shaders/pointwise_vec4_half.wgsl"),
        include_str!("../shaders/pointwise_vec4.wgsl")
    ),
    reads: 5,
    writes: 2,
};
/// Reads logits, targets, class weight and the upstream gradient; writes the
/// items or partials, the gradient, and the split rows' partial states.
pub(crate) const ROWS: Kernel = kernel!("rows", 4, 3);
/// The softmax-row kernels that share a row across a subgroup: `ROWS` with
/// the entry points that need `Features::SUBGROUP`, in a module of their own
/// so that `ROWS` still validates on a device without it.
pub(crate) const ROWS_SUBGROUP: Kernel = Kernel {
    name: "rows_subgroup",
    source: concat!(
        include_str!("../shaders/common.wgsl"),
        include_str!("../shaders/rows.wgsl"),
        include_str!("../shaders/rows_subgroup.wgsl")
    ),
    reads: 4,
    writes: 3,
};
/// Reads the two or three row tensors (or cosine_embedding's labels in the
/// third) and the upstream gradient; writes the items or partials, and up to
/// three gradients. The loss math (pairs.wgsl) with lanes of a workgroup per
/// row (pairs_lanes.wgsl).
pub(crate) const PAIRS: Kernel = Kernel {
    name: "pairs",
    source: concat!(
        include_str!("../shaders/common.wgsl"),
        include_str!("../shaders/pairs.wgsl"),
        include_str!("../shaders/pairs_lanes.wgsl")
    ),
    reads: 4,
    writes: 4,
};
/// `PAIRS` with a subgroup per row (pairs_subgroup.wgsl): built only on a
/// device with `Features::SUBGROUP`, whose operations the module needs.
pub(crate) const PAIRS_SUBGROUP: Kernel = Kernel {
    name: "pairs_subgroup",
    source: concat!(
        include_str!("../shaders/common.wgsl"),
        include_str!("../shaders/pairs.wgsl"),
        include_str!("../shaders/pairs_subgroup.wgsl")
    ),
    reads: 4,
    writes: 4,
};
/// Reads input, targets and the upstream or the per-class coefficients;
/// writes the output or the gradient, and the scratch.
pub(crate) const DICE: Kernel = kernel!("dice", 3, 2);
pub(crate) const FINALIZE: Kernel = kernel!("finalize", 1);
/// Rounds f32 gradients to f16 or bf16 for a caller's view of halves.
pub(crate) const PACK: Kernel = kernel!("pack", 1);
/// The benchmark's bandwidth yardstick (`cli::bench`).
#[cfg(feature = "cli")]
pub(crate) const COPY: Kernel = kernel!("copy", 1);

#[derive(Clone, PartialEq, Eq, Hash)]
struct PipelineKey {
    kernel: &'static str,
    entry: &'static str,
    // Override constants as (name, f64 bits): specialisations never share an entry.
    constants: Vec<(&'static str, u64)>,
}

pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Owns the device and queue (or shares the caller's) and builds each pipeline
/// once. `Send + Sync`: one context serves many threads.
///
/// [`with_variant`](Self::with_variant) and
/// [`with_tune_cache`](Self::with_tune_cache) derive contexts that share its
/// device, queue, pipelines and counters, and choose kernel variants
/// otherwise.
pub struct Context {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    /// Why the device was lost, once it is: every later call reports it.
    pub(crate) lost: Arc<Mutex<Option<String>>>,
    modules: Arc<Mutex<HashMap<&'static str, wgpu::ShaderModule>>>,
    layouts: Arc<Mutex<HashMap<(u32, u32), wgpu::BindGroupLayout>>>,
    pipelines: Arc<Mutex<HashMap<PipelineKey, Arc<Pipeline>>>>,
    builds: Arc<AtomicUsize>,
    /// Buffers, bind groups, bind group layouts and query sets created.
    created: Arc<AtomicUsize>,
    pub(crate) submits: Arc<AtomicUsize>,
    /// What the device offers that a variant may need.
    pub(crate) caps: Caps,
    /// The variants forced per family (`WGPU_LOSS_VARIANT`, then
    /// `with_variant`), or why `WGPU_LOSS_VARIANT` could not be read: every
    /// evaluator of the context reports it.
    pub(crate) forced: Result<Vec<Variant>>,
    /// The choices of variants where none is forced.
    pub(crate) tuner: Arc<Tuner>,
}

fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (device, backend)
}

/// The contexts [`Context::all_with`] opened, best first, and the adapters
/// it left out with the reason.
pub struct Adapters {
    pub contexts: Vec<Context>,
    pub skipped: Vec<(wgpu::AdapterInfo, SkipReason)>,
}

impl Context {
    /// Lists the adapters wgpu finds, best first (discrete GPUs, then
    /// Vulkan/Metal/DX12 over GL). `WGPU_BACKEND` narrows the backends.
    pub fn adapters() -> Vec<wgpu::Adapter> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        adapters.sort_by_key(|a| rank(&a.get_info()));
        adapters
    }

    /// Opens the best adapter, or the first whose name contains
    /// `WGPU_ADAPTER_NAME`, with the adapter's own limits. A
    /// `WGPU_LOSS_VARIANT` that names no variant (or two of one family) is an
    /// [`Error::Variant`].
    pub fn new() -> Result<Context> {
        variant::from_env()?;
        let wanted = std::env::var("WGPU_ADAPTER_NAME")
            .ok()
            .map(|s| s.to_lowercase());
        let adapters = Self::adapters();
        let adapter = match &wanted {
            Some(name) => adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(name)),
            None => adapters.into_iter().next(),
        };
        match adapter {
            Some(a) => Self::from_adapter(&a),
            None => Err(Error::NoAdapter(match wanted {
                Some(name) => format!("none matches WGPU_ADAPTER_NAME={name}"),
                None => "wgpu found no Vulkan, Metal, DX12 or GL adapter".into(),
            })),
        }
    }

    /// Opens one adapter per physical device, best first, each with its own
    /// device, to split batches across them (see [`crate::split`]): the
    /// default [`AdapterFilter`] of [`all_with`](Self::all_with), which
    /// tells what it left out.
    pub fn all() -> Result<Vec<Context>> {
        Self::all_with(AdapterFilter::default()).map(|a| a.contexts)
    }

    /// Opens the adapters that [`adapters`](Self::adapters) finds and
    /// `filter` keeps (see [`AdapterFilter::pick`]), best first, each with
    /// its own device, and lists the others with the reason. An adapter
    /// whose device fails to open is skipped too; if every kept one fails,
    /// the filter picks again among the rest (GL for a GPU whose Vulkan
    /// device would not open, a CPU adapter for a GPU that would not open),
    /// and the call fails only if none opens.
    pub fn all_with(filter: AdapterFilter) -> Result<Adapters> {
        variant::from_env()?;
        let adapters = Self::adapters();
        if adapters.is_empty() {
            return Err(Error::NoAdapter(
                "wgpu found no Vulkan, Metal, DX12 or GL adapter".into(),
            ));
        }
        let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
        let mut failed: Vec<Option<String>> = vec![None; adapters.len()];
        loop {
            let left: Vec<usize> = (0..adapters.len())
                .filter(|&i| failed[i].is_none())
                .collect();
            let picks = filter.pick(&left.iter().map(|&i| infos[i].clone()).collect::<Vec<_>>());
            let mut contexts = Vec::new();
            for (&i, pick) in left.iter().zip(&picks) {
                if pick.is_none() {
                    match Self::from_adapter(&adapters[i]) {
                        Ok(ctx) => contexts.push(ctx),
                        Err(e) => failed[i] = Some(e.to_string()),
                    }
                }
            }
            if !contexts.is_empty() {
                let mut skipped: Vec<(usize, SkipReason)> = left
                    .iter()
                    .zip(picks)
                    .filter_map(|(&i, pick)| pick.map(|why| (i, why)))
                    .collect();
                skipped.extend(
                    (0..adapters.len())
                        .filter_map(|i| failed[i].clone().map(|e| (i, SkipReason::Failed(e)))),
                );
                skipped.sort_by_key(|s| s.0);
                let skipped = skipped
                    .into_iter()
                    .map(|(i, why)| (infos[i].clone(), why))
                    .collect();
                return Ok(Adapters { contexts, skipped });
            }
            if failed.iter().all(Option::is_some) {
                let named: Vec<String> = (0..adapters.len())
                    .map(|i| {
                        let e = failed[i].as_deref().unwrap_or_default();
                        format!("{} ({:?}): {e}", infos[i].name, infos[i].backend)
                    })
                    .collect();
                return Err(Error::Device(named.join("; ")));
            }
        }
    }

    /// Opens a device on `adapter`, requesting its full limits so that large
    /// batches bind as much as the hardware allows, timestamp queries where
    /// offered so that benchmarks and the tuner can read GPU time, and
    /// subgroup operations where offered, which some kernel variants use.
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Result<Context> {
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP;
        let desc = wgpu::DeviceDescriptor {
            label: Some("wgpu-loss"),
            required_features: adapter.features() & wanted,
            required_limits: adapter.limits(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::Device(e.to_string()))?;
        let ctx = Self::from_device(device, queue, adapter.get_info());
        // Only a device the crate created gets our callback: a caller's device
        // keeps its own, and its loss surfaces through failed submissions.
        let lost = ctx.lost.clone();
        ctx.device.set_device_lost_callback(move |reason, message| {
            *lost.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("{reason:?}: {message}"));
        });
        Ok(ctx)
    }

    /// Shares the caller's device and queue. Variants that need subgroup
    /// operations run where the device was created with
    /// `Features::SUBGROUP`; `info` gives the subgroup sizes they plan for.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
    ) -> Context {
        let caps = Caps {
            subgroups: device.features().contains(wgpu::Features::SUBGROUP),
        };
        Context {
            device,
            queue,
            info,
            lost: Arc::new(Mutex::new(None)),
            modules: Default::default(),
            layouts: Default::default(),
            pipelines: Default::default(),
            builds: Default::default(),
            created: Default::default(),
            submits: Default::default(),
            caps,
            forced: variant::from_env(),
            tuner: Arc::new(Tuner::new(&TuneCache::FromEnv)),
        }
    }

    /// A context on the same device, queue and pipelines (its counters
    /// shared too) whose evaluators run `variant` for every loss of its
    /// family, in place of what `WGPU_LOSS_VARIANT` or the tuner would pick;
    /// other families keep theirs. A call the variant cannot run (see
    /// [`Context::variants`]) is an [`Error::Variant`].
    pub fn with_variant(&self, variant: Variant) -> Context {
        let mut ctx = self.sibling(self.tuner.clone());
        if let Ok(forced) = &mut ctx.forced {
            forced.retain(|v| v.family() != variant.family());
            forced.push(variant);
        }
        ctx
    }

    /// A context on the same device, queue and pipelines whose tuner keeps
    /// its choices in `cache` (starting from what that file holds, not from
    /// this context's choices).
    pub fn with_tune_cache(&self, cache: TuneCache) -> Context {
        self.sibling(Arc::new(Tuner::new(&cache)))
    }

    /// A context on the same device, queue and pipelines whose evaluators
    /// never time variants nor read the tuner's cache: they run the variant
    /// forced for the family, else the family's best guess. What a caller
    /// wants who must not wait for tuning, or who wants the same kernels on
    /// every machine (the tests, for one).
    pub fn untuned(&self) -> Context {
        self.sibling(Arc::new(Tuner::guessing()))
    }

    fn sibling(&self, tuner: Arc<Tuner>) -> Context {
        Context {
            device: self.device.clone(),
            queue: self.queue.clone(),
            info: self.info.clone(),
            lost: self.lost.clone(),
            modules: self.modules.clone(),
            layouts: self.layouts.clone(),
            pipelines: self.pipelines.clone(),
            builds: self.builds.clone(),
            created: self.created.clone(),
            submits: self.submits.clone(),
            caps: self.caps,
            forced: self.forced.clone(),
            tuner,
        }
    }

    /// The subgroup size the variants that use subgroups plan their grids
    /// for: the adapter's largest, within what WebGPU allows.
    pub(crate) fn subgroup_size(&self) -> usize {
        self.info.subgroup_max_size.clamp(
            wgpu::MINIMUM_SUBGROUP_MIN_SIZE,
            wgpu::MAXIMUM_SUBGROUP_MAX_SIZE,
        ) as usize
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// Whether GPU timestamps can time a run (see [`crate::Prepared::run_timed`]).
    pub fn has_timestamps(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// "name (backend)", as the CLI reports it.
    pub fn adapter_name(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// Largest number of f32 values one storage binding may hold.
    pub fn max_binding_elements(&self) -> usize {
        let limits = self.device.limits();
        limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size) as usize
            / 4
    }

    /// Number of pipelines built so far (each is built once).
    pub fn pipelines_built(&self) -> usize {
        self.pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Workgroups a pass should offer the adapter at least, where the data
    /// allow: a GPU needs thousands in flight to hide memory latency, while a
    /// CPU adapter (lavapipe) runs one per core at a time and pays for every
    /// workgroup's barriers, so fewer, longer workgroups serve it better.
    pub(crate) fn groups_wanted(&self) -> usize {
        match self.info.device_type {
            wgpu::DeviceType::Cpu => {
                4 * std::thread::available_parallelism().map_or(4, |n| n.get())
            }
            _ => 2048,
        }
    }

    /// Queue submits made through this context so far.
    pub fn submits(&self) -> usize {
        self.submits.load(Ordering::Relaxed)
    }

    /// GPU objects (buffers, bind groups, bind group layouts, query sets) the
    /// crate has created on this context so far. Every such creation goes
    /// through the methods below, so a steady count across calls shows that
    /// the calls reuse what they hold. Command encoders, which wgpu cannot
    /// reuse, and pipelines (see [`pipelines_built`](Self::pipelines_built))
    /// are not counted.
    pub fn gpu_objects_created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }

    pub(crate) fn create_buffer(&self, desc: &wgpu::BufferDescriptor<'_>) -> wgpu::Buffer {
        self.created.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer(desc)
    }

    pub(crate) fn create_bind_group(
        &self,
        desc: &wgpu::BindGroupDescriptor<'_>,
    ) -> wgpu::BindGroup {
        self.created.fetch_add(1, Ordering::Relaxed);
        self.device.create_bind_group(desc)
    }

    pub(crate) fn create_bind_group_layout(
        &self,
        desc: &wgpu::BindGroupLayoutDescriptor<'_>,
    ) -> wgpu::BindGroupLayout {
        self.created.fetch_add(1, Ordering::Relaxed);
        self.device.create_bind_group_layout(desc)
    }

    pub(crate) fn create_query_set(&self, desc: &wgpu::QuerySetDescriptor<'_>) -> wgpu::QuerySet {
        self.created.fetch_add(1, Ordering::Relaxed);
        self.device.create_query_set(desc)
    }

    fn layout(&self, reads: u32, writes: u32) -> wgpu::BindGroupLayout {
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        layouts
            .entry((reads, writes))
            .or_insert_with(|| {
                let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
                    binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                };
                let mut entries: Vec<_> =
                    (0..reads + writes).map(|b| storage(b, b < reads)).collect();
                entries.push(wgpu::BindGroupLayoutEntry {
                    binding: reads + writes,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                });
                self.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("wgpu-loss"),
                    entries: &entries,
                })
            })
            .clone()
    }

    /// The pipeline for `kernel`'s `entry` specialised with `constants`,
    /// built on first use. Shader errors become `Error::Gpu`.
    pub(crate) fn pipeline(
        &self,
        kernel: &Kernel,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<Pipeline>> {
        let key = PipelineKey {
            kernel: kernel.name,
            entry,
            constants: constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        };
        // Held across the build so that two threads never build the same pipeline.
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pipelines.get(&key) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        // A module is cached only once a pipeline built from it validated, so a
        // broken shader reports its own error on every attempt.
        let cached = self
            .modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(kernel.name)
            .cloned();
        let module = cached.unwrap_or_else(|| {
            self.device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(kernel.name),
                    source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
                })
        });
        let layout = self.layout(kernel.reads, kernel.writes);
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(kernel.name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        self.builds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let label = format!("wgpu_loss.{}.{}", kernel.name, entry);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(Error::gpu(format!("building {label}"), err));
        }
        self.modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kernel.name)
            .or_insert(module);
        let p = Arc::new(Pipeline { pipeline, layout });
        pipelines.insert(key, p.clone());
        Ok(p)
    }
}
