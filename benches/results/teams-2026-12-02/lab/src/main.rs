use std::time::Instant;
use wgpu::util::DeviceExt;

fn cpu_ns() -> u64 {
    let mut t = 0;
    for e in std::fs::read_dir("/proc/self/task").unwrap() {
        let p = e.unwrap().path().join("schedstat");
        if let Ok(s) = std::fs::read_to_string(p) { t += s.split_whitespace().next().unwrap().parse::<u64>().unwrap(); }
    }
    t
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args[1].parse().unwrap();
    let groups: u32 = args[2].parse().unwrap();
    let runs: usize = args[3].parse().unwrap();
    let shaders = &args[4..];
    let inst = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(inst.request_adapter(&wgpu::RequestAdapterOptions::default())).unwrap();
    eprintln!("{:?}", adapter.get_info().name);
    let mut limits = wgpu::Limits::default();
    limits.max_storage_buffer_binding_size = adapter.limits().max_storage_buffer_binding_size;
    limits.max_buffer_size = adapter.limits().max_buffer_size;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: limits,
        required_features: adapter.features() & wgpu::Features::SUBGROUP,
        ..Default::default()
    })).unwrap();
    let mut s = 1u64;
    let mut rnd = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((s >> 40) as f32 / (1u64 << 24) as f32) * 6.0 - 3.0 };
    let x: Vec<f32> = (0..n).map(|_| rnd()).collect();
    let y: Vec<f32> = (0..n).map(|_| rnd()).collect();
    let want: f64 = x.iter().zip(&y).map(|(a, b)| { let d = *a as f64 - *b as f64; d * d }).sum();
    let st = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let bx = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: bytemuck::cast_slice(&x), usage: st });
    let by = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: bytemuck::cast_slice(&y), usage: st });
    let out_len = (n.max(groups as usize * 4) * 4) as u64;
    let bo = device.create_buffer(&wgpu::BufferDescriptor { label: None, size: out_len, usage: st, mapped_at_creation: false });
    let gx = groups.min(65535);
    let gy = groups.div_ceil(65535);
    let params = [n as u32, gx, groups, 0u32];
    let bp = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: bytemuck::cast_slice(&params), usage: wgpu::BufferUsages::UNIFORM });
    let rb = device.create_buffer(&wgpu::BufferDescriptor { label: None, size: groups as u64 * 16, usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
    for path in shaders {
        // Every kernel is k/head.wgsl (params, WG, the halving-tree sum) and its own file.
        let head = std::path::Path::new(path).with_file_name("head.wgsl");
        let src = std::fs::read_to_string(head).unwrap() + &std::fs::read_to_string(path).unwrap();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor { label: None, source: wgpu::ShaderSource::Wgsl(src.into()) });
        let pipe = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor { label: None, layout: None, module: &module, entry_point: Some("main"), compilation_options: Default::default(), cache: None });
        let bgl = pipe.get_bind_group_layout(0);
        let bg = device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &bgl, entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: bx.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: by.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 2, resource: bo.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 3, resource: bp.as_entire_binding() },
        ]});
        let mut times = vec![];
        let mut cpu = 0u64;
        for r in 0..runs + 1 {
            let mut enc = device.create_command_encoder(&Default::default());
            { let mut p = enc.begin_compute_pass(&Default::default()); p.set_pipeline(&pipe); p.set_bind_group(0, &bg, &[]); p.dispatch_workgroups(gx, gy, 1); }
            if r == runs { enc.copy_buffer_to_buffer(&bo, 0, &rb, 0, groups as u64 * 16); }
            let t = Instant::now();
            let c0 = cpu_ns();
            queue.submit([enc.finish()]);
            device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
            if r > 0 && r < runs + 1 { times.push(t.elapsed().as_secs_f64() * 1e3); cpu += cpu_ns() - c0; }
        }
        rb.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
        let got: f64 = {
            let v = rb.slice(..).get_mapped_range().unwrap();
            let f: &[f32] = bytemuck::cast_slice(&v);
            f.chunks(4).map(|c| c[0] as f64).sum()
        };
        rb.unmap();
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = times[times.len() / 2];
        println!("{:30} cpu {:8.3} ms  wall {:8.3} ms  {:6.2} GB/s(8B/el)  rel.err {:.2e}", path, cpu as f64 / 1e6 / runs as f64, med, n as f64 * 8.0 / med / 1e6, (got - want).abs() / want);
    }
}
