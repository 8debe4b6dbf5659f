//! The loss catalog: every loss is declared here once, as a variant of its
//! family's enum (typed parameters, the API) and one [`Entry`] (name,
//! tensors, gradients, parameters with their domains and help). Everything
//! else that knows about a loss — the CLI's flags and `--json`, the shape
//! checks, the kernels' ids, the CPU twin — matches on the family enum, so a
//! new loss that one of them forgets is a compile error, and the generic parts
//! (names, defaults, parameter checks, flags) come from the entry.
//!
//! Each loss has one name everywhere: its entry's `name` is the CLI name, the
//! WGSL function, the CPU twin `cpu::<family>::<name>` and the shader's id
//! constant in upper case. docs/adding-a-loss.md walks through adding one.

mod catalog;
mod entry;
mod family;

pub use catalog::CATALOG;
pub use entry::{Domain, Entry, Need, Param, TargetKind, TensorName, Value};
pub use family::{Dice, DiceMode, Loss, Pairs, Pointwise, Reduction, Rows};

use crate::error::{Error, Result};

/// A parameter field of a loss, borrowed for writing.
enum Field<'a> {
    F32(&'a mut f32),
    Bool(&'a mut bool),
    Int(&'a mut i64),
    OptInt(&'a mut Option<i64>),
    List(&'a mut Option<Vec<f32>>),
    Mode(&'a mut DiceMode),
}

impl Field<'_> {
    fn get(&self) -> Value {
        match self {
            Field::F32(v) => Value::F32(**v),
            Field::Bool(v) => Value::Bool(**v),
            Field::Int(v) => Value::Int(**v),
            Field::OptInt(v) => Value::OptInt(**v),
            Field::List(v) => Value::List((*v).clone()),
            Field::Mode(v) => Value::Mode(**v),
        }
    }

    /// False when `value` is of another kind than the field.
    fn set(&mut self, value: Value) -> bool {
        match (self, value) {
            (Field::F32(f), Value::F32(v)) => **f = v,
            (Field::Bool(f), Value::Bool(v)) => **f = v,
            (Field::Int(f), Value::Int(v)) => **f = v,
            (Field::OptInt(f), Value::OptInt(v)) => **f = v,
            (Field::OptInt(f), Value::Int(v)) => **f = Some(v),
            (Field::List(f), Value::List(v)) => **f = v,
            (Field::Mode(f), Value::Mode(v)) => **f = v,
            _ => return false,
        }
        true
    }
}

fn unknown_param(loss: &'static str, name: &str) -> Error {
    Error::Param {
        loss,
        name: "parameter",
        expected: "one the loss takes",
        value: name.to_string(),
    }
}

fn entry(name: &str) -> &'static Entry {
    CATALOG
        .iter()
        .find(|e| e.name == name)
        .expect("every loss has a catalog entry")
}

impl Loss {
    /// Every loss's name, in the catalog's order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        CATALOG.iter().map(|e| e.name)
    }

    /// The loss with the reference's default parameters.
    pub fn from_name(name: &str) -> Option<Loss> {
        CATALOG
            .iter()
            .find(|e| e.name == name)
            .map(|e| (e.default)())
    }

    pub fn name(&self) -> &'static str {
        match self {
            Loss::Pointwise(l) => l.name(),
            Loss::Rows(l) => l.name(),
            Loss::Pairs(l) => l.name(),
            Loss::Dice(l) => l.name(),
        }
    }

    /// The loss's catalog entry.
    pub fn entry(&self) -> &'static Entry {
        entry(self.name())
    }

    /// The parameter fields, in the order of `entry().params`.
    fn fields(&mut self) -> Vec<Field<'_>> {
        use Field::*;
        match self {
            Loss::Pointwise(l) => match l {
                Pointwise::Mse | Pointwise::L1 | Pointwise::LogCosh => vec![],
                Pointwise::Bce | Pointwise::BceWithLogits => vec![],
                Pointwise::Huber { delta } => vec![F32(delta)],
                Pointwise::SmoothL1 { beta } => vec![F32(beta)],
                Pointwise::Quantile { quantiles } => vec![List(quantiles)],
                Pointwise::SigmoidFocal { alpha, gamma } => vec![F32(alpha), F32(gamma)],
                Pointwise::KlDiv { log_target } => vec![Bool(log_target)],
                Pointwise::PoissonNll {
                    log_input,
                    full,
                    eps,
                } => vec![Bool(log_input), Bool(full), F32(eps)],
                Pointwise::GaussianNll { full, eps } => vec![Bool(full), F32(eps)],
            },
            Loss::Rows(l) => match l {
                Rows::CrossEntropy {
                    ignore_index,
                    label_smoothing,
                } => vec![Int(ignore_index), F32(label_smoothing)],
                Rows::Nll { ignore_index } => vec![Int(ignore_index)],
                Rows::SoftmaxFocal {
                    gamma,
                    ignore_index,
                } => vec![F32(gamma), Int(ignore_index)],
            },
            Loss::Pairs(l) => match l {
                Pairs::CosineEmbedding { margin } => vec![F32(margin)],
                Pairs::TripletMargin {
                    margin,
                    p,
                    eps,
                    swap,
                } => vec![F32(margin), F32(p), F32(eps), Bool(swap)],
            },
            Loss::Dice(d) => vec![
                Mode(&mut d.mode),
                Bool(&mut d.from_logits),
                F32(&mut d.smooth),
                F32(&mut d.eps),
                OptInt(&mut d.ignore_index),
                Bool(&mut d.log_loss),
            ],
        }
    }

    /// The parameters and their values, in the catalog's order.
    pub fn params(&self) -> Vec<(&'static Param, Value)> {
        let params = self.entry().params;
        let mut copy = self.clone();
        params
            .iter()
            .zip(copy.fields())
            .map(|(p, f)| (p, f.get()))
            .collect()
    }

    /// Sets parameter `name`. An unknown name or a value of another kind is
    /// `Error::Param`; the domain is checked by [`validate`](Self::validate).
    pub fn set(&mut self, name: &str, value: Value) -> Result<()> {
        let entry = self.entry();
        let loss = entry.name;
        let Some(k) = entry.params.iter().position(|p| p.name == name) else {
            return Err(unknown_param(loss, name));
        };
        let param = &entry.params[k];
        let shown = format!("{value:?}");
        if self.fields()[k].set(value) {
            Ok(())
        } else {
            Err(Error::Param {
                loss,
                name: param.name,
                expected: "a value of the parameter's kind",
                value: shown,
            })
        }
    }

    /// Sets parameter `name` from text, as a command line gives it: a number,
    /// `true`/`false` (no text: true), a comma-separated list, a mode name.
    /// The domain is checked by [`validate`](Self::validate).
    pub fn set_text(&mut self, name: &str, text: Option<&str>) -> Result<()> {
        let entry = self.entry();
        let Some((param, current)) = self.params().into_iter().find(|(p, _)| p.name == name) else {
            return Err(unknown_param(entry.name, name));
        };
        let bad = |expected: &'static str| Error::Param {
            loss: entry.name,
            name: param.name,
            expected,
            value: text.unwrap_or("").to_string(),
        };
        let number = |t: &str| t.trim().parse::<f32>().map_err(|_| bad("a number"));
        let int = |t: &str| t.trim().parse::<i64>().map_err(|_| bad("an integer"));
        let value = match (current, text) {
            (Value::Bool(_), None) => Value::Bool(true),
            (Value::Bool(_), Some(t)) => match t {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(bad("true or false")),
            },
            (_, None) => return Err(bad("a value")),
            (Value::F32(_), Some(t)) => Value::F32(number(t)?),
            (Value::Int(_), Some(t)) => Value::Int(int(t)?),
            (Value::OptInt(_), Some(t)) => Value::OptInt(Some(int(t)?)),
            (Value::List(_), Some(t)) => Value::List(Some(
                t.split(',').map(number).collect::<Result<Vec<f32>>>()?,
            )),
            (Value::Mode(_), Some(t)) => Value::Mode(
                DiceMode::from_name(t).ok_or_else(|| bad("binary, multiclass or multilabel"))?,
            ),
        };
        self.set(name, value)
    }

    /// Whether the target may be class indices.
    pub fn takes_classes(&self) -> bool {
        match self.entry().target {
            TargetKind::Classes | TargetKind::ClassesOrFloats => true,
            TargetKind::ByMode => matches!(
                self,
                Loss::Dice(Dice {
                    mode: DiceMode::Multiclass,
                    ..
                })
            ),
            TargetKind::Floats | TargetKind::None => false,
        }
    }

    /// Checks the parameters against their domains (the reference's checks,
    /// plus: no NaN anywhere).
    pub fn validate(&self, reduction: Reduction) -> Result<()> {
        let loss = self.name();
        if reduction == Reduction::BatchMean
            && !matches!(self, Loss::Pointwise(Pointwise::KlDiv { .. }))
        {
            return Err(Error::Reduction {
                loss,
                reduction: "batchmean",
                supported: "none, mean or sum",
            });
        }
        for (param, value) in self.params() {
            let bad = |shown: String| {
                Err(Error::Param {
                    loss,
                    name: param.name,
                    expected: param.domain.expected(),
                    value: shown,
                })
            };
            match value {
                Value::F32(v) if !param.domain.accepts(v as f64) => return bad(v.to_string()),
                Value::List(Some(q)) if q.is_empty() => {
                    return Err(Error::Param {
                        loss,
                        name: param.name,
                        expected: "a non-empty list",
                        value: "[]".into(),
                    })
                }
                Value::List(Some(q)) => {
                    if let Some(v) = q.iter().find(|v| !param.domain.accepts(**v as f64)) {
                        return bad(v.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_round_trips_and_lists_its_fields() {
        for e in CATALOG {
            let loss = (e.default)();
            assert_eq!(loss.name(), e.name);
            assert_eq!(Loss::from_name(e.name).unwrap(), loss);
            let mut copy = loss.clone();
            assert_eq!(copy.fields().len(), e.params.len(), "{}", e.name);
            assert!(loss.validate(Reduction::Mean).is_ok(), "{}", e.name);
            for (param, value) in loss.params() {
                let mut l = loss.clone();
                l.set(param.name, value).unwrap();
                assert_eq!(l, loss);
            }
        }
        let names: Vec<_> = Loss::names().collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_an_error() {
        let mut l = Loss::from_name("huber").unwrap();
        assert!(l.set("delta", Value::Bool(true)).is_err());
        assert!(l.set("beta", Value::F32(1.0)).is_err());
        assert!(l.set("delta", Value::F32(2.0)).is_ok());
        assert_eq!(l, Pointwise::Huber { delta: 2.0 }.into());
    }
}
