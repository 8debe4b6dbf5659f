//! Trains a softmax classifier entirely on the GPU: a shader of the program
//! computes the logits from the weights, `wgpu-loss` records cross_entropy's
//! fused value and gradient (d loss / d logits) into the same encoder, and a
//! second shader applies the SGD step from that gradient and the inputs.
//! Nothing is read back while training except the loss every `LOG_EVERY`
//! steps; the weights are read once at the end to report the accuracy.
//!
//! Run: `cargo run --release --example train`

use wgpu::util::DeviceExt;
use wgpu_loss::{
    BufferView, Context, DeviceInputs, DeviceTensor, DeviceUpstream, GradViews, Loss, Reduction,
};

const SHADER: &str = r#"
struct Dims { n: u32, d: u32, c: u32, lr: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;
@group(0) @binding(4) var<storage, read> dlogits: array<f32>;
@group(0) @binding(5) var<storage, read_write> w_rw: array<f32>;

// logits[r, k] = b[k] + Σ_j x[r, j] w[k, j]; row k of w is (w[k, 0..d], b[k]).
@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= dims.n * dims.c) { return; }
    let r = i / dims.c;
    let k = i % dims.c;
    let stride = dims.d + 1u;
    var z = w[k * stride + dims.d];
    for (var j = 0u; j < dims.d; j = j + 1u) {
        z = z + x[r * dims.d + j] * w[k * stride + j];
    }
    logits[i] = z;
}

// w[k, j] -= lr Σ_r dlogits[r, k] x[r, j] (x[r, d] = 1 for the bias). The
// loss's mean already divides dlogits by n.
@compute @workgroup_size(64)
fn update(@builtin(global_invocation_id) id: vec3<u32>) {
    let stride = dims.d + 1u;
    let i = id.x;
    if (i >= dims.c * stride) { return; }
    let k = i / stride;
    let j = i % stride;
    var g = 0.0;
    for (var r = 0u; r < dims.n; r = r + 1u) {
        var xv = 1.0;
        if (j < dims.d) { xv = x[r * dims.d + j]; }
        g = g + dlogits[r * dims.c + k] * xv;
    }
    w_rw[i] = w_rw[i] - dims.lr * g;
}
"#;

/// Samples, features, classes.
pub const N: usize = 1024;
pub const D: usize = 8;
pub const C: usize = 4;
pub const LR: f32 = 0.5;
pub const LOG_EVERY: usize = 10;
pub const SEED: u64 = 7;

/// What training gave.
pub struct Trained {
    /// (step, cross_entropy before that step's update), every `LOG_EVERY` steps and the last.
    pub losses: Vec<(usize, f32)>,
    /// Training accuracy of the final weights.
    pub accuracy: f32,
}

/// splitmix64: a seeded generator, so that every run sees the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-300), self.next());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Gaussian blobs: class k around its own random centre, unit noise.
/// Returns the N×D features and the N class indices.
pub fn data(seed: u64) -> (Vec<f32>, Vec<i32>) {
    let mut rng = Rng(seed);
    let centres: Vec<f64> = (0..C * D).map(|_| 4.0 * rng.next() - 2.0).collect();
    let mut x = Vec::with_capacity(N * D);
    let mut y = Vec::with_capacity(N);
    for r in 0..N {
        let k = r % C;
        y.push(k as i32);
        x.extend((0..D).map(|j| (centres[k * D + j] + rng.normal()) as f32));
    }
    (x, y)
}

/// Trains for `steps` SGD steps on the full batch.
pub fn run(steps: usize) -> Result<Trained, Box<dyn std::error::Error>> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))?;
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))?;
    let ctx = Context::from_device(device.clone(), queue.clone(), adapter.get_info());

    let (xs, ys) = data(SEED);
    let storage = wgpu::BufferUsages::STORAGE;
    let init = |label: &str, contents: &[u8], usage| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage,
        })
    };
    let empty = |label: &str, floats: usize, usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: 4 * floats as u64,
            usage,
            mapped_at_creation: false,
        })
    };
    let x = init("x", bytemuck::cast_slice(&xs), storage);
    let labels = init("labels", bytemuck::cast_slice(&ys), storage);
    let copy_src = storage | wgpu::BufferUsages::COPY_SRC;
    let weights = init("weights", &[0u8; 4 * C * (D + 1)], copy_src);
    let dims = [N as u32, D as u32, C as u32, LR.to_bits()];
    let dims = init(
        "dims",
        bytemuck::cast_slice(&dims),
        wgpu::BufferUsages::UNIFORM,
    );
    let logits = empty("logits", N * C, storage);
    let dlogits = empty("dlogits", N * C, storage);
    // dL/dloss = 1, kept on the device so that no encode uploads it.
    let one = init("upstream", bytemuck::bytes_of(&1.0f32), storage);
    let loss = empty("loss", 4, copy_src);
    let readback = empty(
        "readback",
        C * (D + 1),
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    );

    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("train"),
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
    let (forward, update) = (pipeline("forward"), pipeline("update"));
    let bind = |p: &wgpu::ComputePipeline, buffers: &[(u32, &wgpu::Buffer)]| {
        let entries: Vec<_> = buffers
            .iter()
            .map(|(binding, b)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: b.as_entire_binding(),
            })
            .collect();
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &p.get_bind_group_layout(0),
            entries: &entries,
        })
    };
    let forward_bind = bind(
        &forward,
        &[(0, &x), (1, &weights), (2, &logits), (3, &dims)],
    );
    let update_bind = bind(
        &update,
        &[(0, &x), (3, &dims), (4, &dlogits), (5, &weights)],
    );
    let dispatch = |encoder: &mut wgpu::CommandEncoder,
                    p: &wgpu::ComputePipeline,
                    b: &wgpu::BindGroup,
                    threads: usize| {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(p);
        pass.set_bind_group(0, b, &[]);
        pass.dispatch_workgroups(threads.div_ceil(64) as u32, 1, 1);
    };

    let (logits_shape, labels_shape) = ([N, C], [N]);
    let inputs = DeviceInputs::new(DeviceTensor::new(BufferView::whole(&logits), &logits_shape))
        .classes(DeviceTensor::new(BufferView::whole(&labels), &labels_shape));
    let ce = ctx.grad_evaluator(
        &Loss::from_name("cross_entropy").ok_or("cross_entropy")?,
        Reduction::Mean,
        &inputs,
    )?;
    let grads = GradViews::new(BufferView::whole(&dlogits));
    let upstream = DeviceUpstream::Buffer(BufferView::new(&one, 0, 1));

    // Blocks until the GPU is done and returns the first `floats` of `src`.
    let read = |mut encoder: wgpu::CommandEncoder, src: &wgpu::Buffer, floats: usize| {
        let bytes = 4 * floats as u64;
        encoder.copy_buffer_to_buffer(src, 0, &readback, 0, bytes);
        queue.submit([encoder.finish()]);
        let slice = readback.slice(..bytes);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        device.poll(wgpu::PollType::wait_indefinitely())?;
        let out: Vec<f32> = bytemuck::cast_slice(&slice.get_mapped_range()?).to_vec();
        readback.unmap();
        Ok::<_, Box<dyn std::error::Error>>(out)
    };

    let mut losses = vec![];
    let mut encoder = device.create_command_encoder(&Default::default());
    for step in 0..steps {
        dispatch(&mut encoder, &forward, &forward_bind, N * C);
        ce.encode_with_grad(
            &mut encoder,
            &inputs,
            upstream,
            BufferView::whole(&loss),
            &grads,
        )?;
        dispatch(&mut encoder, &update, &update_bind, C * (D + 1));
        if step % LOG_EVERY == 0 || step + 1 == steps {
            let done = std::mem::replace(
                &mut encoder,
                device.create_command_encoder(&Default::default()),
            );
            losses.push((step, read(done, &loss, 1)?[0]));
        }
    }
    let w = read(encoder, &weights, C * (D + 1))?;

    let correct = (0..N)
        .filter(|&r| {
            let score = |k: usize| {
                let row = &w[k * (D + 1)..(k + 1) * (D + 1)];
                row[D] + (0..D).map(|j| xs[r * D + j] * row[j]).sum::<f32>()
            };
            let best = (0..C)
                .max_by(|&a, &b| score(a).total_cmp(&score(b)))
                .unwrap_or(0);
            best as i32 == ys[r]
        })
        .count();
    Ok(Trained {
        losses,
        accuracy: correct as f32 / N as f32,
    })
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let trained = run(200)?;
    for (step, loss) in &trained.losses {
        println!("step {step:>4}: cross_entropy {loss:.4}");
    }
    println!(
        "training accuracy {:.1}% ({N} samples, {D} features, {C} classes)",
        100.0 * trained.accuracy
    );
    Ok(())
}
