//! The mergeable state of a reduced loss.
//!
//! Every reduction this crate offers is a function of a few sums: the loss
//! sum, the denominator (Σw, the count of non-ignored rows, ...), the batch
//! size for `batchmean`, and, for Dice, the per-class (Σp, Σt, Σ|p − t|)
//! before smp's rule. Sums over disjoint parts of a batch add up to the sums
//! over the whole batch, so partials from several calls (a stream of chunks,
//! shards on several GPUs or machines) merge into exactly what one call over
//! all the data gives, and [`Partial::value`] then applies the reduction
//! once: the weighted mean, the reference's NaN for an empty denominator and
//! Dice's empty-class rule all see the merged sums.

use crate::loss::Dice;
use serde::{Deserialize, Serialize};

use crate::cpu::dice::{dice, dice_grad};
use crate::error::{Error, Result};
use crate::loss::{Loss, Reduction, Rows};

/// Sums of one part of a batch. Serialises to JSON with non-finite sums as
/// the strings `"NaN"`, `"inf"` and `"-inf"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// The loss's name: partials of different losses never merge.
    pub loss: String,
    /// Σ loss (weighted where the loss is). 0 for Dice, whose state is `classes`.
    #[serde(with = "num")]
    pub sum: f64,
    /// Σ denominator: Σw for weighted means, the count of non-ignored rows
    /// (weighted) for the softmax-row losses, else the item count. 0 for Dice.
    #[serde(with = "num")]
    pub denom: f64,
    /// Σ `input.shape[0]` (1 for a 0-d input): the divisor of `batchmean`.
    pub batch: u64,
    /// Dice only: per class, (Σp, Σt, Σ|p − t|) over the part's kept pixels.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "classes")]
    pub classes: Option<Vec<[f64; 3]>>,
}

/// f32 values an output view must hold for a partial of `loss` with
/// `classes` classes (Dice) : `[value, Σ loss, denominator]`, and for Dice
/// `[value, Σ loss, C]` followed by (Σp, Σt, Σ|p − t|) per class.
pub fn partial_len(loss: &Loss, classes: usize) -> usize {
    match loss {
        Loss::Dice(_) => 3 + 3 * classes,
        Loss::Pointwise(_) | Loss::Rows(_) | Loss::Pairs(_) => 3,
    }
}

fn bad<T>(problem: String) -> Result<T> {
    Err(Error::Partial(problem))
}

impl Partial {
    /// An empty partial: the neutral element of [`merge`](Self::merge).
    pub fn empty(loss: &Loss, classes: usize) -> Partial {
        Partial {
            loss: loss.name().to_string(),
            sum: 0.0,
            denom: 0.0,
            batch: 0,
            classes: matches!(loss, Loss::Dice(Dice { .. })).then(|| vec![[0.0; 3]; classes]),
        }
    }

    /// Reads a partial from the output view of an evaluation reduced with
    /// `sum` or `mean` whose output held [`partial_len`] values. `batch` is
    /// the evaluated input's `shape[0]` (1 for a 0-d input).
    pub fn from_output(loss: &Loss, batch: u64, output: &[f32]) -> Result<Partial> {
        let name = loss.name().to_string();
        if output.len() < 3 {
            return bad(format!(
                "{name}: an output of {} values holds no partial (it needs 3)",
                output.len()
            ));
        }
        if !matches!(loss, Loss::Dice(Dice { .. })) {
            return Ok(Partial {
                loss: name,
                sum: output[1] as f64,
                denom: output[2] as f64,
                batch,
                classes: None,
            });
        }
        let c = output[2];
        let rest = &output[3..];
        if c.is_nan() || c < 0.0 || c as usize * 3 != rest.len() {
            return bad(format!(
                "dice: the output holds {} values, its partial needs 3 + 3 x {c} classes",
                output.len()
            ));
        }
        Ok(Partial {
            loss: name,
            sum: 0.0,
            denom: 0.0,
            batch,
            classes: Some(
                rest.chunks_exact(3)
                    .map(|s| [s[0] as f64, s[1] as f64, s[2] as f64])
                    .collect(),
            ),
        })
    }

    /// Adds `other`'s sums to this one's. Partials of different losses or of
    /// Dice with different class counts are refused, and `self` is unchanged.
    pub fn merge(&mut self, other: &Partial) -> Result<()> {
        if self.loss != other.loss {
            return bad(format!(
                "a {} partial does not merge with a {} partial",
                self.loss, other.loss
            ));
        }
        match (&mut self.classes, &other.classes) {
            (None, None) => {}
            (Some(a), Some(b)) if a.len() == b.len() => {
                for (a, b) in a.iter_mut().zip(b) {
                    for k in 0..3 {
                        a[k] += b[k];
                    }
                }
            }
            (a, b) => {
                let count = |c: Option<usize>| c.map_or("no".to_string(), |n| n.to_string());
                return bad(format!(
                    "{}: a partial with {} classes does not merge with one with {}",
                    self.loss,
                    count(a.as_ref().map(Vec::len)),
                    count(b.as_ref().map(Vec::len)),
                ));
            }
        }
        self.sum += other.sum;
        self.denom += other.denom;
        self.batch += other.batch;
        Ok(())
    }

    /// The reduced value, exactly as one call over all the merged data
    /// computes it (in f64): `mean` = sum / denominator (NaN for 0 / 0),
    /// `batchmean` = sum / batch, Dice: smp's rule per class on the merged
    /// sums, then the mean or sum over classes. `none` has no partial.
    pub fn value(&self, loss: &Loss, reduction: Reduction) -> Result<f64> {
        loss.validate(reduction)?;
        if loss.name() != self.loss {
            return bad(format!("a {} partial read as {}", self.loss, loss.name()));
        }
        if reduction == Reduction::None {
            return Err(Error::Reduction {
                loss: loss.name(),
                reduction: "none",
                supported: "mean, sum or batchmean: a partial holds sums, not items",
            });
        }
        if let Loss::Dice(Dice { .. }) = loss {
            let per_class = self.dice_items(loss)?;
            let total: f64 = per_class.iter().sum();
            return Ok(match reduction {
                Reduction::Mean => total / per_class.len() as f64,
                _ => total,
            });
        }
        Ok(match reduction {
            Reduction::Mean => self.sum / self.denom,
            Reduction::BatchMean => self.sum / self.batch as f64,
            _ => self.sum,
        })
    }

    /// Dice's per-class losses (its `none` result) from the merged sums.
    pub fn dice_items(&self, loss: &Loss) -> Result<Vec<f64>> {
        let Loss::Dice(Dice {
            smooth,
            eps,
            log_loss,
            ..
        }) = loss
        else {
            return bad(format!("{}: only dice has per-class items", loss.name()));
        };
        let Some(classes) = &self.classes else {
            return bad("dice: the partial holds no per-class sums".into());
        };
        Ok(classes
            .iter()
            .map(|&[sp, st, d]| dice(sp, st, d, *smooth as f64, *eps as f64, *log_loss))
            .collect())
    }
}

impl Partial {
    /// The upstream each item of a part of the batch gets, in f64, when the
    /// whole call's value (whose merged sums this partial holds) has upstream
    /// `g`: `g` for `sum` and `none`, `g / denom` for `mean` (0 for
    /// softmax_focal over a zero total weight, as its mean defines), `g /
    /// batch` for `batchmean`. The gradient of the whole call with respect
    /// to a part is then that part's `none` gradient with this upstream, so a
    /// batch streamed in chunks, split across adapters or across ranks gets
    /// its gradients a part at a time. Not for Dice, whose items are classes:
    /// see [`dice_coefficients`](Self::dice_coefficients).
    pub fn item_upstream(&self, loss: &Loss, reduction: Reduction, g: f64) -> Result<f64> {
        self.check(loss, reduction)?;
        if let Loss::Dice(_) = loss {
            return bad("dice: the upstream of its pixels comes from dice_coefficients".into());
        }
        Ok(match reduction {
            Reduction::None | Reduction::Sum => g,
            Reduction::Mean
                if self.denom == 0.0 && matches!(loss, Loss::Rows(Rows::SoftmaxFocal { .. })) =>
            {
                0.0
            }
            Reduction::Mean => g / self.denom,
            Reduction::BatchMean => g / self.batch as f64,
        })
    }

    /// Dice: each class's (d/dΣp, d/dΣ|p − t|) of the whole call's value for
    /// upstream `g` (each class's loss gets `g`, or `g / C` for `mean`), from
    /// the merged per-class sums; a pixel's gradient follows from them and
    /// its own values alone (`cpu::gradient_of_part`, `Context::gradient_of_part`).
    pub fn dice_coefficients(
        &self,
        loss: &Loss,
        reduction: Reduction,
        g: f64,
    ) -> Result<Vec<(f64, f64)>> {
        self.check(loss, reduction)?;
        let Loss::Dice(Dice {
            smooth,
            eps,
            log_loss,
            ..
        }) = loss
        else {
            return bad(format!("{}: only dice has class coefficients", loss.name()));
        };
        let Some(classes) = &self.classes else {
            return bad("dice: the partial holds no per-class sums".into());
        };
        let g = match reduction {
            Reduction::Mean => g / classes.len() as f64,
            _ => g,
        };
        Ok(classes
            .iter()
            .map(|&[sp, st, d]| dice_grad(sp, st, d, *smooth as f64, *eps as f64, *log_loss, g))
            .collect())
    }

    /// `loss` and `reduction` fit this partial.
    fn check(&self, loss: &Loss, reduction: Reduction) -> Result<()> {
        loss.validate(reduction)?;
        if loss.name() != self.loss {
            return bad(format!("a {} partial read as {}", self.loss, loss.name()));
        }
        Ok(())
    }

    /// The sums as f64 values, in a fixed order: `[sum, denom, batch]` then
    /// each class's (Σp, Σt, Σ|p − t|). Element-wise sums of these over
    /// parts are the merged partial's ([`from_sums`](Self::from_sums)): what
    /// an all-reduce adds up.
    pub fn to_sums(&self) -> Vec<f64> {
        let mut out = vec![self.sum, self.denom, self.batch as f64];
        for c in self.classes.iter().flatten() {
            out.extend_from_slice(c);
        }
        out
    }

    /// A partial of `loss` from values laid out as [`to_sums`](Self::to_sums)
    /// gives them; for Dice, 3 per class after the first 3.
    pub fn from_sums(loss: &Loss, sums: &[f64]) -> Result<Partial> {
        let dice = matches!(loss, Loss::Dice(Dice { .. }));
        if sums.len() < 3 || (!dice && sums.len() != 3) || !(sums.len() - 3).is_multiple_of(3) {
            return bad(format!(
                "{}: {} sums are no partial (3, or 3 + 3 per class for dice)",
                loss.name(),
                sums.len()
            ));
        }
        let batch = sums[2];
        if !(batch >= 0.0 && batch.fract() == 0.0 && batch < 2f64.powi(53)) {
            return bad(format!("{}: a batch of {batch} entries", loss.name()));
        }
        Ok(Partial {
            loss: loss.name().to_string(),
            sum: sums[0],
            denom: sums[1],
            batch: batch as u64,
            classes: dice.then(|| {
                sums[3..]
                    .chunks_exact(3)
                    .map(|c| [c[0], c[1], c[2]])
                    .collect()
            }),
        })
    }
}

/// A JSON number, or "NaN" / "inf" / "-inf" (JSON has no non-finite numbers).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Num {
    Number(f64),
    Text(String),
}

impl Num {
    fn from(v: f64) -> Num {
        if v.is_finite() {
            Num::Number(v)
        } else {
            Num::Text(
                if v.is_nan() {
                    "NaN"
                } else if v > 0.0 {
                    "inf"
                } else {
                    "-inf"
                }
                .into(),
            )
        }
    }

    fn get(self) -> Result<f64, String> {
        match self {
            Num::Number(v) => Ok(v),
            Num::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                _ => Err(format!("`{t}` is not a number")),
            },
        }
    }
}

mod num {
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        super::Num::from(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        super::Num::deserialize(d)?.get().map_err(D::Error::custom)
    }
}

mod classes {
    use super::Num;
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<[f64; 3]>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref()
            .map(|c| {
                c.iter()
                    .map(|t| t.map(Num::from))
                    .collect::<Vec<[Num; 3]>>()
            })
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<[f64; 3]>>, D::Error> {
        let Some(raw) = Option::<Vec<[Num; 3]>>::deserialize(d)? else {
            return Ok(None);
        };
        raw.into_iter()
            .map(|[a, b, c]| Ok([a.get()?, b.get()?, c.get()?]))
            .collect::<Result<Vec<_>, String>>()
            .map(Some)
            .map_err(D::Error::custom)
    }
}
