//! Seeded dice data shared by the forward and gradient tests.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::uniform;

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
