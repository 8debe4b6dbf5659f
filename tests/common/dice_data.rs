//! Seeded dice data shared by the forward and gradient tests.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use wgpu_loss::{Dice, DiceMode, Inputs, Loss, Tensor};

use super::{rng, uniform};

/// Logits in [-6, 6] with some ±100, or probabilities with some exact 0 and 1.
pub fn predictions(r: &mut ChaCha8Rng, n: usize, from_logits: bool) -> Vec<f32> {
    let mut x = if from_logits {
        uniform(r, n, -6.0, 6.0)
    } else {
        uniform(r, n, 0.0, 1.0)
    };
    for i in (0..n).step_by(53) {
        x[i] = match (from_logits, i % 2) {
            (true, 0) => 100.0,
            (true, _) => -100.0,
            (false, v) => v as f32,
        };
    }
    x
}

/// 0/1 masks with some soft values and, if asked, some ignored (255) pixels.
pub fn masks(r: &mut ChaCha8Rng, n: usize, ignore: bool) -> Vec<f32> {
    (0..n)
        .map(|i| {
            if ignore && i % 13 == 4 {
                255.0
            } else if i % 11 == 3 {
                r.random_range(0.0..1.0)
            } else {
                r.random_range(0..2) as f32
            }
        })
        .collect()
}

/// Class indices in [0, C) (the last class left out when `absent`), some 255.
pub fn classes(r: &mut ChaCha8Rng, n: usize, c: usize, ignore: bool, absent: bool) -> Vec<i64> {
    let top = if absent && c > 1 { c - 1 } else { c };
    (0..n)
        .map(|i| {
            if ignore && i % 13 == 4 {
                255
            } else {
                r.random_range(0..top) as i64
            }
        })
        .collect()
}

/// Seeded predictions and targets for a dice loss on input (N, C, ...):
/// class indices (N, ...) in multiclass mode, 0/1 masks of the input's shape
/// otherwise; ignored pixels when the loss has an ignore_index, and with
/// `absent` the last class left out of the batch.
pub struct DiceData {
    x: Vec<f32>,
    shape: Vec<usize>,
    target: Target,
}

enum Target {
    Classes(Vec<i64>, Vec<usize>),
    Masks(Vec<f32>),
}

impl DiceData {
    pub fn new(loss: &Loss, shape: &[usize], seed: u64, absent: bool) -> Self {
        let Loss::Dice(Dice {
            mode,
            from_logits,
            ignore_index,
            ..
        }) = *loss
        else {
            panic!("{loss:?} is not dice")
        };
        let mut r = rng(seed);
        let n: usize = shape.iter().product();
        let x = predictions(&mut r, n, from_logits);
        let ignore = ignore_index.is_some();
        let target = if mode == DiceMode::Multiclass {
            let mut target_shape = vec![shape[0]];
            target_shape.extend_from_slice(&shape[2..]);
            let y = classes(&mut r, n / shape[1], shape[1], ignore, absent);
            Target::Classes(y, target_shape)
        } else {
            Target::Masks(masks(&mut r, n, ignore))
        };
        DiceData {
            x,
            shape: shape.to_vec(),
            target,
        }
    }

    pub fn inputs(&self) -> Inputs<'_> {
        let inputs = Inputs::new(Tensor::new(&self.x, &self.shape));
        match &self.target {
            Target::Classes(y, target_shape) => inputs.classes(y, target_shape),
            Target::Masks(y) => inputs.target(Tensor::new(y, &self.shape)),
        }
    }
}
