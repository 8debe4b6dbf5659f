//! Caller-owned buffers for the encode API, and a context whose storage
//! bindings are small, so that slicing can be tested on small inputs.

use std::sync::OnceLock;

use wgpu::util::DeviceExt;
use wgpu_loss::Context;

use super::ctx;

/// llvmpipe through GL (wgpu's GLES backend, GLSL from the same WGSL), where
/// the machine has it.
pub fn gl_ctx() -> Option<&'static Context> {
    static GL: OnceLock<Option<Context>> = OnceLock::new();
    GL.get_or_init(|| {
        let gl = Context::adapters()
            .into_iter()
            .find(|a| a.get_info().backend == wgpu::Backend::Gl)?;
        Some(Context::from_adapter(&gl).expect("a device on the GL adapter"))
    })
    .as_ref()
}

/// Storage bindings of this many bytes in `small_ctx`.
pub const SMALL_BINDING: u64 = 1 << 18;

/// A context on the same adapter whose bindings hold `SMALL_BINDING / 4`
/// values: inputs of a few hundred thousand values take several slices.
pub fn small_ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| small_binding_ctx(SMALL_BINDING / 4))
}

/// A new context on the adapter of `ctx()` whose storage bindings hold only
/// `values` f32, so that small inputs already need many slices.
pub fn small_binding_ctx(values: u64) -> Context {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let info = ctx().adapter_info().clone();
    let adapter = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .find(|a| a.get_info().name == info.name && a.get_info().backend == info.backend)
        .expect("the test adapter");
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: 4 * values,
        ..adapter.limits()
    };
    let desc = wgpu::DeviceDescriptor {
        label: Some("small bindings"),
        // As `Context::from_adapter` asks, so that subgroup kernels run here too.
        required_features: adapter.features() & wgpu::Features::SUBGROUP,
        required_limits: limits,
        ..Default::default()
    };
    let (device, queue) =
        pollster::block_on(adapter.request_device(&desc)).expect("a device with small limits");
    Context::from_device(device, queue, info).untuned()
}

/// A storage buffer of `ctx` holding `data` (at least 16 bytes), readable
/// by `read`.
pub fn buffer<T: bytemuck::Pod>(ctx: &Context, data: &[T]) -> wgpu::Buffer {
    buffer_with(ctx, data, 0, STORAGE | wgpu::BufferUsages::COPY_SRC)
}

pub const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE;

/// A buffer of `usage` holding `data` from byte `offset` on, zeros before it,
/// at least 16 bytes in all.
pub fn buffer_with<T: bytemuck::Pod>(
    ctx: &Context,
    data: &[T],
    offset: usize,
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    let mut bytes = vec![0u8; offset];
    bytes.extend_from_slice(bytemuck::cast_slice(data));
    bytes.resize(bytes.len().max(16), 0);
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("test"),
            contents: &bytes,
            usage,
        })
}

pub fn encoder(ctx: &Context) -> wgpu::CommandEncoder {
    ctx.device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
}

/// Submits `encoder` and reads back the first `len` f32 of `buffer`.
pub fn read(
    ctx: &Context,
    mut encoder: wgpu::CommandEncoder,
    buffer: &wgpu::Buffer,
    len: usize,
) -> Vec<f32> {
    let bytes = 4 * len.max(1) as u64;
    let staging = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("test readback"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
    ctx.queue().submit([encoder.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.expect("map"));
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("poll");
    let view = staging.slice(..).get_mapped_range().expect("mapped");
    bytemuck::cast_slice::<u8, f32>(&view)[..len].to_vec()
}

/// Submits `encoder` and reads back all of `buffer`.
pub fn read_all(ctx: &Context, encoder: wgpu::CommandEncoder, buffer: &wgpu::Buffer) -> Vec<f32> {
    read(ctx, encoder, buffer, buffer.size() as usize / 4)
}

/// The error of a misused buffer: its message names `name` and holds `words`.
pub fn expect_misuse(r: wgpu_loss::Result<()>, name: &str, words: &str) -> wgpu_loss::Error {
    let e = r.expect_err("misuse accepted");
    let text = e.to_string();
    assert!(text.contains(name) && text.contains(words), "{text}");
    e
}
