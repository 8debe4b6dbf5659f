//! A wgpu program that keeps its predictions on the GPU: a compute shader of
//! its own writes predictions for several candidate scales, `wgpu-loss`
//! records the MSE of each into the program's command encoder, and a second
//! shader of the program picks the best candidate from those losses on the
//! GPU. Only the winner (two floats) is ever read back.
//!
//! Run: `cargo run --release --example pipeline`

use wgpu::util::DeviceExt;
use wgpu_loss::Pointwise;
use wgpu_loss::{BufferView, Context, DeviceInputs, DeviceTensor, Loss, Reduction};

const SHADER: &str = r#"
@group(0) @binding(0) var<storage, read_write> pred: array<f32>;
@group(0) @binding(1) var<storage, read> losses: array<f32>;
@group(0) @binding(2) var<storage, read_write> best: array<f32>;
@group(0) @binding(3) var<uniform> scale: vec4<f32>;

// The model: pred = scale * sin(i / 1000).
@compute @workgroup_size(256)
fn predict(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&pred)) {
        pred[id.x] = scale.x * sin(f32(id.x) * 0.001);
    }
}

// Losses sit 64 floats apart (256-byte aligned outputs); candidate k had scale k * scale.y.
@compute @workgroup_size(1)
fn pick() {
    var k_best = 0u;
    for (var k = 1u; k < u32(scale.z); k = k + 1u) {
        if (losses[64u * k] < losses[64u * k_best]) { k_best = k; }
    }
    best[0] = f32(k_best) * scale.y;
    best[1] = losses[64u * k_best];
}
"#;

/// Returns (the best scale, its MSE, every candidate's scale) for `n` targets.
pub fn run(n: usize) -> Result<(f32, f32), Box<dyn std::error::Error>> {
    // The program's own device; wgpu-loss shares it.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))?;
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))?;
    let ctx = Context::from_device(device.clone(), queue.clone(), adapter.get_info());

    let candidates = 8u32;
    let step = 0.5f32;
    // Targets: 2.5 * sin(i / 1000) plus a deterministic wiggle.
    let targets: Vec<f32> = (0..n)
        .map(|i| 2.5 * (i as f32 * 0.001).sin() + 0.01 * ((i * 7919) % 13) as f32 - 0.06)
        .collect();
    let storage = wgpu::BufferUsages::STORAGE;
    let target = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("targets"),
        contents: bytemuck::cast_slice(&targets),
        usage: storage,
    });
    let pred = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("pred"),
        size: 4 * n as u64,
        usage: storage,
        mapped_at_creation: false,
    });
    let losses = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("losses"),
        size: 256 * candidates as u64,
        usage: storage,
        mapped_at_creation: false,
    });
    let best = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("best"),
        size: 16,
        usage: storage | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });

    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("program"),
        source: wgpu::ShaderSource::Wgsl(SHADER.into()),
    });
    let pipeline = |entry: &str| {
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        })
    };
    let (predict, pick) = (pipeline("predict"), pipeline("pick"));

    // One evaluator for the shapes, reused for every candidate.
    let shape = [n];
    let inputs = DeviceInputs::new(DeviceTensor::new(BufferView::whole(&pred), &shape))
        .target(DeviceTensor::new(BufferView::whole(&target), &shape));
    let mse = ctx.evaluator(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &inputs)?;

    let mut encoder = device.create_command_encoder(&Default::default());
    let mut uniforms = Vec::new();
    for k in 0..candidates {
        let scale = [k as f32 * step, step, candidates as f32, 0.0];
        let u = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("scale"),
            contents: bytemuck::cast_slice(&scale),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &predict.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: pred.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: u.as_entire_binding(),
                },
            ],
        });
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&predict);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups((n as u32).div_ceil(256), 1, 1);
        }
        // The loss of candidate k goes to losses[64 k]; nothing is read back.
        mse.encode(
            &mut encoder,
            &inputs,
            BufferView::new(&losses, 256 * k as u64, 1),
        )?;
        uniforms.push(u);
    }
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pick.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 1,
                resource: losses.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: best.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: uniforms[candidates as usize - 1].as_entire_binding(),
            },
        ],
    });
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pick);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    encoder.copy_buffer_to_buffer(&best, 0, &readback, 0, 16);
    queue.submit([encoder.finish()]);

    let slice = readback.slice(..);
    slice.map_async(wgpu::MapMode::Read, |_| {});
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let view = slice.get_mapped_range()?;
    let out: Vec<f32> = bytemuck::cast_slice(&view).to_vec();
    Ok((out[0], out[1]))
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (scale, loss) = run(1 << 20)?;
    println!("best scale {scale} with mse {loss:.6}, chosen on the GPU from 8 candidates");
    Ok(())
}
