//! Every loss at about 2^20 input elements: the GPU with its inputs already on
//! the device (dispatch, submit and the readback of the scalar), against the
//! float64 CPU reference. Throughput counts each input byte read once.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgpu_loss::{cpu, synthetic, Context, Loss, Reduction};

const N: usize = 1 << 20;

fn losses(c: &mut Criterion) {
    let ctx = match Context::new() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("skipping GPU benchmarks: {e}");
            return;
        }
    };
    eprintln!("adapter: {}", ctx.adapter_name());
    for name in Loss::NAMES {
        let loss = Loss::from_name(name).expect("a catalog name");
        let batch = synthetic::batch(&loss, N, 1);
        let inputs = batch.inputs();
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.warm_up_time(std::time::Duration::from_millis(500));
        group.measurement_time(std::time::Duration::from_secs(2));
        group.throughput(Throughput::Bytes(batch.bytes() as u64));
        match ctx.prepare(&loss, Reduction::Mean, &inputs) {
            Ok(prepared) => {
                group.bench_function("gpu", |b| b.iter(|| prepared.run().expect("gpu run").value));
            }
            Err(e) => eprintln!("{name}: no GPU run: {e}"),
        }
        group.bench_function("cpu_reference", |b| {
            b.iter(|| {
                cpu::evaluate(&loss, Reduction::Mean, &inputs)
                    .expect("cpu run")
                    .value
            })
        });
        group.finish();
    }
}

criterion_group!(benches, losses);
criterion_main!(benches);
