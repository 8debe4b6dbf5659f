//! Every loss at 2^16 and 2^20 input elements: the GPU with its inputs already
//! on the device (dispatch, submit and the readback of the scalar), against
//! the float64 CPU reference. Throughput counts each input byte read once.
//! `cargo bench -- mse` runs one loss; `wgpu-loss bench` gives the bandwidth
//! against a copy kernel instead.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgpu_loss::cli::synthetic;
use wgpu_loss::{cpu, Context, Loss, Reduction};

const SIZES: [usize; 2] = [1 << 16, 1 << 20];

fn losses(c: &mut Criterion) {
    let ctx = match Context::new() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("skipping GPU benchmarks: {e}");
            return;
        }
    };
    eprintln!("adapter: {}", ctx.adapter_name());
    for name in Loss::names() {
        let loss = Loss::from_name(name).expect("a catalog name");
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(1));
        for n in SIZES {
            let batch = synthetic::batch(&loss, n, 1);
            let inputs = batch.inputs();
            group.throughput(Throughput::Bytes(batch.bytes() as u64));
            match ctx.prepare(&loss, Reduction::Mean, &inputs) {
                Ok(prepared) => {
                    group.bench_function(BenchmarkId::new("gpu", n), |b| {
                        b.iter(|| prepared.run().expect("gpu run").value)
                    });
                }
                Err(e) => eprintln!("{name} at {n}: no GPU run: {e}"),
            }
            group.bench_function(BenchmarkId::new("cpu_reference", n), |b| {
                b.iter(|| {
                    cpu::evaluate(&loss, Reduction::Mean, &inputs)
                        .expect("cpu run")
                        .value
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, losses);
criterion_main!(benches);
