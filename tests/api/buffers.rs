//! The encode layer on caller-owned buffers: results agree with the slice
//! API, and every misuse of a buffer is a typed error naming it.

use crate::common::{close, ctx};
use wgpu::util::DeviceExt;
use wgpu_loss::Pointwise;
use wgpu_loss::{BufferView, DeviceInputs, DeviceTensor, Error, Loss, Reduction};

fn buffer(data: &[f32], usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx()
        .device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(data),
            usage,
        })
}

fn read(buffer: &wgpu::Buffer, encoder: wgpu::CommandEncoder, len: usize) -> Vec<f32> {
    let staging = ctx().device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 4 * len as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = encoder;
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, 4 * len as u64);
    ctx().queue().submit([encoder.finish()]);
    staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    ctx()
        .device()
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    let view = staging.slice(..).get_mapped_range().unwrap();
    bytemuck::cast_slice(&view).to_vec()
}

const S: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE;

#[test]
fn views_at_offsets_inside_larger_buffers() {
    // Predictions at element 64 of a larger buffer, targets at 128, output at 64.
    let n = 1000;
    let mut host = vec![9.0f32; 64 + n + 7];
    let mut targets = vec![-9.0f32; 128 + n];
    for i in 0..n {
        host[64 + i] = (i as f32 * 0.37).sin();
        targets[128 + i] = (i as f32 * 0.11).cos();
    }
    let x = buffer(&host, S);
    let y = buffer(&targets, S);
    let out = buffer(&[0.0; 128], S | wgpu::BufferUsages::COPY_SRC);
    let shape = [n];
    let inputs = DeviceInputs::new(DeviceTensor::new(BufferView::new(&x, 256, n), &shape))
        .target(DeviceTensor::new(BufferView::new(&y, 512, n), &shape));
    let ev = ctx()
        .evaluator(
            &Loss::Pointwise(Pointwise::Huber { delta: 0.5 }),
            Reduction::Mean,
            &inputs,
        )
        .unwrap();
    let mut encoder = ctx().device().create_command_encoder(&Default::default());
    ev.encode(&mut encoder, &inputs, BufferView::new(&out, 256, 3))
        .unwrap();
    let got = read(&out, encoder, 128);
    let host_inputs = wgpu_loss::Inputs::new(wgpu_loss::Tensor::new(&host[64..64 + n], &shape))
        .target(wgpu_loss::Tensor::new(&targets[128..], &shape));
    let want = wgpu_loss::cpu::evaluate(
        &Loss::Pointwise(Pointwise::Huber { delta: 0.5 }),
        Reduction::Mean,
        &host_inputs,
    )
    .unwrap();
    assert!(
        close(got[64] as f64, want.value, 1e-6),
        "{} vs {}",
        got[64],
        want.value
    );
    assert_eq!(got[66], n as f32, "the denominator follows the value");
    assert_eq!(got[0], 0.0, "nothing is written outside the output view");
}

#[test]
fn every_buffer_misuse_is_a_typed_error() {
    let n = 100;
    let data = vec![0.5f32; 256];
    let good = buffer(&data, S);
    let uniform = buffer(&data, wgpu::BufferUsages::UNIFORM);
    let out = buffer(&[0.0; 64], S);
    let shape = [n];
    let t = |b, offset, len| DeviceTensor::new(BufferView::new(b, offset, len), &shape);
    let base = DeviceInputs::new(t(&good, 0, n)).target(t(&good, 0, n));
    let ev = ctx()
        .evaluator(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &base)
        .unwrap();
    let encode = |inputs: &DeviceInputs<'_>, output: BufferView<'_>| {
        let mut encoder = ctx().device().create_command_encoder(&Default::default());
        ev.encode(&mut encoder, inputs, output)
    };
    assert!(encode(&base, BufferView::whole(&out)).is_ok());

    let expect = |r: wgpu_loss::Result<()>, name: &str, words: &str| {
        let e = r.expect_err("misuse accepted");
        let text = e.to_string();
        assert!(text.contains(name) && text.contains(words), "{text}");
        e
    };
    let e = expect(
        encode(
            &DeviceInputs::new(t(&uniform, 0, n)).target(t(&good, 0, n)),
            BufferView::whole(&out),
        ),
        "input",
        "STORAGE",
    );
    assert!(matches!(e, Error::Buffer { name: "input", .. }));
    expect(
        encode(
            &DeviceInputs::new(t(&good, 4, n)).target(t(&good, 0, n)),
            BufferView::whole(&out),
        ),
        "input",
        "multiple of 256",
    );
    expect(
        encode(
            &DeviceInputs::new(t(&good, 0, n)).target(t(&good, 768, n)),
            BufferView::whole(&out),
        ),
        "target",
        "exceeds its size",
    );
    let e = expect(
        encode(
            &DeviceInputs::new(t(&good, 0, n - 1)).target(t(&good, 0, n)),
            BufferView::whole(&out),
        ),
        "input",
        "",
    );
    assert!(matches!(
        e,
        Error::DataLength {
            name: "input",
            expected: 100,
            actual: 99,
            ..
        }
    ));
    expect(
        encode(&base, BufferView::new(&out, 0, 0)),
        "output",
        "needs 1",
    );
    expect(
        encode(&base, BufferView::whole(&uniform)),
        "output",
        "STORAGE",
    );
    let other_shape = [n / 2, 2];
    let reshaped = DeviceInputs::new(DeviceTensor::new(
        BufferView::new(&good, 0, n),
        &other_shape,
    ))
    .target(DeviceTensor::new(
        BufferView::new(&good, 0, n),
        &other_shape,
    ));
    expect(
        encode(&reshaped, BufferView::whole(&out)),
        "input",
        "built for",
    );
    let classes = DeviceInputs::new(t(&good, 0, n)).classes(t(&good, 0, n));
    expect(
        encode(&classes, BufferView::whole(&out)),
        "target",
        "class indices",
    );
    // Building an evaluator checks the shapes against the loss.
    let bad = DeviceInputs::new(t(&good, 0, n))
        .target(DeviceTensor::new(BufferView::new(&good, 0, 50), &[50]));
    let e = ctx()
        .evaluator(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &bad)
        .err()
        .expect("a shape error");
    assert!(matches!(e, Error::Shape { name: "target", .. }), "{e}");
}
