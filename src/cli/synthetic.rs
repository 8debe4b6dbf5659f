//! Seeded synthetic batches of realistic shape for every loss: what the CLI's
//! `demo`, the benchmarks and examples evaluate.

use crate::inputs::{bf16, f16, DType, Floats, Inputs, Target, Tensor};
use crate::loss::{Dice, Pairs, Pointwise, Rows};
use crate::loss::{DiceMode, Loss};

/// Owned tensors for one loss; `inputs()` borrows them.
#[derive(Clone, Debug)]
pub struct Batch {
    pub loss: Loss,
    pub input: (Vec<f32>, Vec<usize>),
    pub target: Option<(Vec<f32>, Vec<usize>)>,
    pub classes: Option<(Vec<i64>, Vec<usize>)>,
    pub positive: Option<(Vec<f32>, Vec<usize>)>,
    pub negative: Option<(Vec<f32>, Vec<usize>)>,
    pub var: Option<(Vec<f32>, Vec<usize>)>,
}

impl Batch {
    pub fn inputs(&self) -> Inputs<'_> {
        fn t(v: &(Vec<f32>, Vec<usize>)) -> Tensor<'_> {
            Tensor::new(&v.0, &v.1)
        }
        let mut i = Inputs::new(t(&self.input));
        i.target = match (&self.target, &self.classes) {
            (_, Some((d, s))) => Some(Target::Class { data: d, shape: s }),
            (Some(v), None) => Some(Target::Float(t(v))),
            _ => None,
        };
        i.positive = self.positive.as_ref().map(t);
        i.negative = self.negative.as_ref().map(t);
        i.var = self.var.as_ref().map(t);
        i
    }

    /// Bytes a kernel must read: every input once.
    pub fn bytes(&self) -> usize {
        let f = |v: &Option<(Vec<f32>, Vec<usize>)>| v.as_ref().map_or(0, |v| v.0.len() * 4);
        self.input.0.len() * 4
            + f(&self.target)
            + f(&self.positive)
            + f(&self.negative)
            + f(&self.var)
            + self.classes.as_ref().map_or(0, |c| c.0.len() * 4)
    }
}

/// A tensor's values in one dtype, owned.
#[derive(Clone, Debug)]
pub enum Values {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl Values {
    /// `values` rounded to `dtype` (to nearest, ties to even).
    pub fn cast(values: &[f32], dtype: DType) -> Values {
        match dtype {
            DType::F32 => Values::F32(values.to_vec()),
            DType::F16 => Values::F16(values.iter().map(|&v| f16::from_f32(v)).collect()),
            DType::Bf16 => Values::Bf16(values.iter().map(|&v| bf16::from_f32(v)).collect()),
        }
    }

    pub fn floats(&self) -> Floats<'_> {
        match self {
            Values::F32(v) => Floats::F32(v),
            Values::F16(v) => Floats::F16(v),
            Values::Bf16(v) => Floats::Bf16(v),
        }
    }
}

/// A batch with its float tensors in another dtype ([`Batch::cast`]).
#[derive(Clone, Debug)]
pub struct Cast<'b> {
    batch: &'b Batch,
    tensors: [Option<Values>; 5],
}

impl Batch {
    /// The batch with every float tensor rounded to `dtype` (class indices
    /// stay as they are): what a model's half-precision output holds.
    pub fn cast(&self, dtype: DType) -> Cast<'_> {
        let cast = |t: Option<&(Vec<f32>, Vec<usize>)>| t.map(|t| Values::cast(&t.0, dtype));
        Cast {
            batch: self,
            tensors: [
                cast(Some(&self.input)),
                cast(self.target.as_ref()),
                cast(self.positive.as_ref()),
                cast(self.negative.as_ref()),
                cast(self.var.as_ref()),
            ],
        }
    }
}

impl Cast<'_> {
    pub fn inputs(&self) -> Inputs<'_> {
        let b = self.batch;
        let shapes = [
            Some(&b.input.1),
            b.target.as_ref().map(|t| &t.1),
            b.positive.as_ref().map(|t| &t.1),
            b.negative.as_ref().map(|t| &t.1),
            b.var.as_ref().map(|t| &t.1),
        ];
        let [input, target, positive, negative, var] =
            std::array::from_fn(|k| match (&self.tensors[k], shapes[k]) {
                (Some(v), Some(s)) => Some(Tensor::new(v.floats(), s)),
                _ => None,
            });
        let mut i = Inputs::new(input.expect("every batch has an input"));
        i.target = match &b.classes {
            Some((d, s)) => Some(Target::Class { data: d, shape: s }),
            None => target.map(Target::Float),
        };
        i.positive = positive;
        i.negative = negative;
        i.var = var;
        i
    }

    /// Bytes a kernel must read: every input once, in its dtype.
    pub fn bytes(&self) -> usize {
        let floats: usize = self
            .tensors
            .iter()
            .flatten()
            .map(|v| v.floats().bytes().len())
            .sum();
        floats + self.batch.classes.as_ref().map_or(0, |c| c.0.len() * 4)
    }
}

/// SplitMix64: small, seeded, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    fn floats(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.range(lo, hi)).collect()
    }
}

/// Classes of the row losses in synthetic batches.
pub const CLASSES: usize = 1000;
/// Embedding width of the pair losses in synthetic batches.
pub const DIM: usize = 256;

/// A batch of about `n` input elements for `loss` (its shape rounded to whole
/// rows), with the loss's own parameters kept.
pub fn batch(loss: &Loss, n: usize, seed: u64) -> Batch {
    let mut r = Rng(seed);
    let n = n.max(1);
    let mut b = Batch {
        loss: loss.clone(),
        input: (vec![], vec![]),
        target: None,
        classes: None,
        positive: None,
        negative: None,
        var: None,
    };
    match loss {
        Loss::Pointwise(Pointwise::Bce) => {
            b.input = (r.floats(n, 0.0, 1.0), vec![n]);
            b.target = Some((
                (0..n).map(|_| (r.unit() < 0.5) as u8 as f32).collect(),
                vec![n],
            ));
        }
        Loss::Pointwise(Pointwise::BceWithLogits)
        | Loss::Pointwise(Pointwise::SigmoidFocal { .. }) => {
            b.input = (r.floats(n, -8.0, 8.0), vec![n]);
            b.target = Some((
                (0..n).map(|_| (r.unit() < 0.3) as u8 as f32).collect(),
                vec![n],
            ));
        }
        Loss::Pointwise(Pointwise::KlDiv { log_target }) => {
            let (rows, c) = (n.div_ceil(64), 64);
            let mut x = r.floats(rows * c, -3.0, 3.0);
            let mut y = r.floats(rows * c, -3.0, 3.0);
            for row in 0..rows {
                for v in [&mut x, &mut y] {
                    let s = &mut v[row * c..(row + 1) * c];
                    let lse = s.iter().map(|a| (*a as f64).exp()).sum::<f64>().ln() as f32;
                    s.iter_mut().for_each(|a| *a -= lse);
                }
            }
            if !log_target {
                y.iter_mut().for_each(|a| *a = a.exp());
            }
            b.input = (x, vec![rows, c]);
            b.target = Some((y, vec![rows, c]));
        }
        Loss::Pointwise(Pointwise::PoissonNll { log_input, .. }) => {
            // Counts around a rate in (0, 8]: the log of it, or the rate itself.
            let rates = r.floats(n, 0.05, 8.0);
            let counts = rates
                .iter()
                .map(|&l| (l + r.range(-2.0, 2.0)).max(0.0).round())
                .collect();
            let x = if *log_input {
                rates.iter().map(|v| v.ln()).collect()
            } else {
                rates
            };
            b.input = (x, vec![n]);
            b.target = Some((counts, vec![n]));
        }
        Loss::Pointwise(Pointwise::GaussianNll { .. }) => {
            b.input = (r.floats(n, -3.0, 3.0), vec![n]);
            b.target = Some((r.floats(n, -3.0, 3.0), vec![n]));
            b.var = Some((r.floats(n, 0.01, 4.0), vec![n]));
        }
        Loss::Pointwise(Pointwise::Quantile { quantiles: Some(q) }) => {
            let rows = n.div_ceil(q.len());
            b.input = (r.floats(rows * q.len(), -2.0, 2.0), vec![rows, q.len()]);
            b.target = Some((r.floats(rows, -2.0, 2.0), vec![rows]));
        }
        Loss::Rows(Rows::CrossEntropy { .. })
        | Loss::Rows(Rows::Nll { .. })
        | Loss::Rows(Rows::SoftmaxFocal { .. }) => {
            let rows = n.div_ceil(CLASSES);
            b.input = (r.floats(rows * CLASSES, -6.0, 6.0), vec![rows, CLASSES]);
            b.classes = Some((
                (0..rows)
                    .map(|_| (r.next() % CLASSES as u64) as i64)
                    .collect(),
                vec![rows],
            ));
        }
        Loss::Pairs(Pairs::CosineEmbedding { .. }) | Loss::Pairs(Pairs::TripletMargin { .. }) => {
            let rows = n.div_ceil(DIM);
            let shape = vec![rows, DIM];
            b.input = (r.floats(rows * DIM, -1.0, 1.0), shape.clone());
            let other = (r.floats(rows * DIM, -1.0, 1.0), shape.clone());
            if matches!(loss, Loss::Pairs(Pairs::CosineEmbedding { .. })) {
                b.target = Some(other);
            } else {
                b.positive = Some(other);
                b.negative = Some((r.floats(rows * DIM, -1.0, 1.0), shape));
            }
        }
        Loss::Dice(Dice { mode, .. }) => {
            let (batch, c) = (4, if *mode == DiceMode::Binary { 1 } else { 4 });
            let pixels = n.div_ceil(batch * c);
            b.input = (
                r.floats(batch * c * pixels, -4.0, 4.0),
                vec![batch, c, pixels],
            );
            if *mode == DiceMode::Multiclass {
                b.classes = Some((
                    (0..batch * pixels)
                        .map(|_| (r.next() % c as u64) as i64)
                        .collect(),
                    vec![batch, pixels],
                ));
            } else {
                b.target = Some((
                    (0..batch * c * pixels)
                        .map(|_| (r.unit() < 0.4) as u8 as f32)
                        .collect(),
                    vec![batch, c, pixels],
                ));
            }
        }
        _ => {
            b.input = (r.floats(n, -3.0, 3.0), vec![n]);
            b.target = Some((r.floats(n, -3.0, 3.0), vec![n]));
        }
    }
    b
}
