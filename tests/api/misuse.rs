//! Misuse of the API: every wrong call is a typed error whose message names
//! the argument and says what was expected and what was given (the table in
//! docs/errors.md), never a panic, an abort or a huge allocation.

use crate::common::device::buffer;
use crate::common::{ctx, rejects};
use wgpu_loss::{
    BufferView, Context, DeviceInputs, DeviceTensor, Error, Inputs, Loss, Reduction, Tensor,
};
use wgpu_loss::{Pairs, Pointwise};

#[test]
fn messages_name_the_argument_and_both_values() {
    let x = [0.5f32; 6];
    let xy = |xs: &'static [usize], ys: &'static [usize]| {
        Inputs::new(Tensor::new(&x[..xs.iter().product::<usize>()], xs))
            .target(Tensor::new(&x[..ys.iter().product::<usize>()], ys))
    };
    rejects(
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::Mean,
        &xy(&[6], &[3]),
        &["target", "[3]", "[6]"],
    );
    let short = Inputs::new(Tensor::new(&x[..5], &[6])).target(Tensor::new(&x, &[6]));
    rejects(
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::Mean,
        &short,
        &["input", "6", "5"],
    );
    let ce = Loss::from_name("cross_entropy").unwrap();
    let classes = Inputs::new(Tensor::new(&x, &[2, 3])).classes(&[0, 7], &[2]);
    rejects(
        &ce,
        Reduction::Mean,
        &classes,
        &["target[1]", "7", "[0, 3)", "-100"],
    );
    let weighted = Inputs::new(Tensor::new(&x, &[2, 3]))
        .classes(&[0, 1], &[2])
        .weight(Tensor::new(&x[..2], &[2]));
    rejects(&ce, Reduction::Mean, &weighted, &["weight", "[3]", "[2]"]);
    rejects(
        &Loss::Pointwise(Pointwise::Huber { delta: -1.0 }),
        Reduction::Mean,
        &xy(&[6], &[6]),
        &["delta", "> 0", "-1"],
    );
    rejects(
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::BatchMean,
        &xy(&[6], &[6]),
        &["batchmean", "mse", "none, mean or sum"],
    );
    let bad = [0.5f32, 2.0];
    let bce = Inputs::new(Tensor::new(&bad, &[2])).target(Tensor::new(&bad[..1], &[1]));
    rejects(
        &Loss::Pointwise(Pointwise::Bce),
        Reduction::Mean,
        &bce,
        &["target", "[1]", "[2]"],
    );
    rejects(
        &Loss::Pointwise(Pointwise::LogCosh),
        Reduction::Mean,
        &xy(&[6], &[6]).weight(Tensor::new(&x, &[6])),
        &["weight", "not used"],
    );
    rejects(
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::Mean,
        &Inputs::new(Tensor::new(&x, &[6])),
        &["target", "required"],
    );
}

#[test]
fn shapes_that_declare_more_than_their_data() {
    // A dim of 0 leaves the other dims free: 2^40 rows of nothing.
    let huge = [1usize << 40, 0];
    let pairs = Inputs::new(Tensor::new(&[], &huge)).target(Tensor::new(&[], &huge));
    let e = rejects(
        &Loss::Pairs(Pairs::CosineEmbedding { margin: 0.0 }),
        Reduction::Mean,
        &pairs,
        &["input", "65536"],
    );
    assert!(matches!(e, Error::Shape { name: "input", .. }), "{e}");
    let ce = Loss::from_name("cross_entropy").unwrap();
    rejects(&ce, Reduction::Sum, &pairs, &["input"]);
    let t = Loss::from_name("triplet_margin").unwrap();
    let trip = Inputs::new(Tensor::new(&[], &huge))
        .positive(Tensor::new(&[], &huge))
        .negative(Tensor::new(&[], &huge));
    rejects(&t, Reduction::None, &trip, &["input"]);
    // Dims whose product overflows, with a 0 that makes the product "0".
    let overflow = [0usize, 1 << 40, 1 << 40];
    let e = rejects(
        &Loss::Pointwise(Pointwise::Mse),
        Reduction::Mean,
        &Inputs::new(Tensor::new(&[], &overflow)).target(Tensor::new(&[], &overflow)),
        &["input", "fits"],
    );
    assert!(matches!(e, Error::Shape { name: "input", .. }), "{e}");
    // A few empty rows are fine: the reference gives their values.
    let few = [3usize, 0];
    let ok = Inputs::new(Tensor::new(&[], &few)).target(Tensor::new(&[], &few));
    crate::common::check(
        "3 empty pairs",
        &Loss::Pairs(Pairs::CosineEmbedding { margin: 0.0 }),
        Reduction::None,
        &ok,
    );
}

#[test]
fn device_shapes_beyond_the_buffer_limit_are_typed_errors() {
    let b = buffer(ctx(), &[0f32; 64]);
    let limit = (ctx().device().limits().max_buffer_size / 4) as usize;
    let cases: [(Loss, Vec<usize>, Vec<usize>, bool); 4] = [
        (
            Loss::Pointwise(Pointwise::Mse),
            vec![1 << 42],
            vec![1 << 42],
            false,
        ),
        (
            Loss::from_name("cross_entropy").unwrap(),
            vec![1 << 34, 2],
            vec![1 << 34],
            true,
        ),
        (
            Loss::Pairs(Pairs::CosineEmbedding { margin: 0.0 }),
            vec![1 << 40, 1],
            vec![1 << 40, 1],
            false,
        ),
        (
            Loss::from_name("nll").unwrap(),
            vec![2, 1 << 33],
            vec![2],
            true,
        ),
    ];
    for (loss, xs, ys, classes) in &cases {
        for r in [Reduction::None, Reduction::Mean] {
            let x = DeviceTensor::new(BufferView::new(&b, 0, 64), xs);
            let y = DeviceTensor::new(BufferView::new(&b, 0, 64), ys);
            let inputs = if *classes {
                DeviceInputs::new(x).classes(y)
            } else {
                DeviceInputs::new(x).target(y)
            };
            let e = ctx()
                .evaluator(loss, r, &inputs)
                .err()
                .expect("a size error");
            match &e {
                Error::TooLarge { name, limit: l, .. } => {
                    assert_eq!(*l, limit);
                    assert!(e.to_string().contains(name), "{e}");
                }
                other => panic!("{loss:?} {xs:?}: {other}"),
            }
        }
    }
}

/// Two devices of one instance: a buffer of the other one is named.
#[test]
fn a_buffer_of_another_device_is_a_typed_error() {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).unwrap();
    let open = || {
        let (d, q) = pollster::block_on(adapter.request_device(&Default::default())).unwrap();
        Context::from_device(d, q, adapter.get_info())
    };
    let (mine, theirs) = (open(), open());
    let x = buffer(&mine, &[0.5f32; 64]);
    let y = buffer(&theirs, &[2.0f32; 64]);
    let y_mine = buffer(&mine, &[2.0f32; 64]);
    let out = buffer(&mine, &[0f32; 64]);
    let out_theirs = buffer(&theirs, &[0f32; 64]);
    let s = [64usize];
    let t = |b| DeviceTensor::new(BufferView::whole(b), &s);
    let good = DeviceInputs::new(t(&x)).target(t(&y_mine));
    let ev = mine
        .evaluator(&Loss::Pointwise(Pointwise::Mse), Reduction::Mean, &good)
        .unwrap();
    let mut encoder = crate::common::device::encoder(&mine);
    let foreign = DeviceInputs::new(t(&x)).target(t(&y));
    let e = ev
        .encode(&mut encoder, &foreign, BufferView::whole(&out))
        .unwrap_err();
    assert!(matches!(e, Error::Buffer { name: "target", .. }), "{e}");
    assert!(e.to_string().contains("another device"), "{e}");
    let e = ev
        .encode(&mut encoder, &good, BufferView::whole(&out_theirs))
        .unwrap_err();
    assert!(matches!(e, Error::Buffer { name: "output", .. }), "{e}");
    // The evaluator still works with the right buffers afterwards.
    ev.encode(&mut encoder, &good, BufferView::whole(&out))
        .unwrap();
    let got = crate::common::device::read(&mine, encoder, &out, 1);
    assert_eq!(got[0], 2.25);
}
