//! Host inputs cut into chunks along a loss's natural unit, so that a batch
//! larger than the device (or than RAM, memory-mapped) is evaluated a chunk at
//! a time and the chunks' [`Partial`](crate::Partial)s merged.
//!
//! The unit is what a loss never splits: an element for the pointwise losses
//! (a group of Q predictions for `quantile` with a list), a batch entry
//! (dim 0) for the softmax-row losses and Dice, a row for the pair losses.
//! Tensors indexed like the input are sliced with it; a pointwise broadcast
//! tensor is kept whole when it repeats along the trailing dims (chunks then
//! hold whole periods), else each chunk gets its part expanded.

use crate::loss::{Pointwise, TensorName};
use std::borrow::Cow;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::inputs::{plan, plan_shapes, Broadcast, Floats, Geometry, Inputs, Target, Tensor};
use crate::loss::{Loss, Reduction};

/// Roles in the order of `DeviceInputs::named`: a chunk's tensors are
/// indexed by their position here.
pub(crate) const ROLES: [TensorName; 8] = TensorName::ALL;

/// A chunk's shape for `m` units.
#[derive(Clone, Debug)]
enum Rule {
    /// `[m, rest..]`.
    Lead(Vec<usize>),
    /// `[m / l, l]`: elements in rows of a broadcast period.
    Split(usize),
    /// The tensor's own shape: a call without a batch dim is one unit.
    Fixed(Vec<usize>),
}

impl Rule {
    fn shape(&self, m: usize) -> Vec<usize> {
        match self {
            Rule::Lead(rest) => std::iter::once(m).chain(rest.iter().copied()).collect(),
            Rule::Split(l) => vec![m / l, *l],
            Rule::Fixed(shape) => shape.clone(),
        }
    }
}

#[derive(Clone, Debug)]
enum Values<'a> {
    /// A tensor's own elements (any dtype).
    Floats(Floats<'a>),
    /// Values the plan made: an upcast or expanded broadcast.
    F32(Cow<'a, [f32]>),
    I64(&'a [i64]),
}

/// How one role's tensor is cut.
#[derive(Clone, Debug, Default)]
enum Cut<'a> {
    #[default]
    Absent,
    /// The same tensor in every chunk.
    Whole(Cow<'a, [f32]>, Vec<usize>),
    /// `per_unit` values per unit, from unit 0 on.
    Slice {
        values: Values<'a>,
        per_unit: usize,
        rule: Rule,
    },
    /// A pointwise broadcast, expanded over each chunk's elements.
    Expand(Broadcast<'a>, Rule),
}

/// Inputs cut into chunks of at most a given number of input values (at
/// least one unit each). Cutting checks the shapes and lengths only; each
/// [`chunk`](Chunks::chunk) checks its own values, so a memory-mapped file is
/// read once, chunk by chunk.
#[derive(Clone, Debug)]
pub struct Chunks<'a> {
    loss: Loss,
    reduction: Reduction,
    cuts: [Cut<'a>; 8],
    units: usize,
    step: usize,
    /// Chunks start on multiples of this many units: the period of a
    /// pointwise broadcast kept whole, else 1.
    quantum: usize,
    batch: u64,
    items_shape: Vec<usize>,
}

/// One chunk: its units and its inputs.
#[derive(Debug)]
pub struct Chunk<'c> {
    pub index: usize,
    pub units: Range<usize>,
    values: [Option<Values<'c>>; 8],
    shapes: [Vec<usize>; 8],
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl<'a> Chunks<'a> {
    /// Validates the call's parameters, shapes and lengths and cuts it into
    /// chunks of at most `chunk_elems` input values.
    pub fn new(
        loss: &Loss,
        reduction: Reduction,
        inputs: &Inputs<'a>,
        chunk_elems: usize,
    ) -> Result<Chunks<'a>> {
        for role in ROLES {
            let len = match (role, inputs.target) {
                (TensorName::Target, Some(Target::Class { data, shape })) => {
                    Some((data.len(), shape))
                }
                _ => inputs.float(role).map(|t| (t.data.len(), t.shape)),
            };
            if let Some((len, shape)) = len {
                if len != numel(shape) {
                    return Err(Error::DataLength {
                        name: role.name(),
                        shape: shape.to_vec(),
                        expected: numel(shape),
                        actual: len,
                    });
                }
            }
        }
        // Shapes only: values are checked chunk by chunk. A broadcast whose
        // non-1 dims are apart needs the host's expansion, which `plan` does.
        let plan = match plan_shapes(loss, reduction, inputs) {
            Ok(p) => p,
            Err(_) => plan(loss, reduction, inputs)?,
        };
        let shape = inputs.input.shape;
        let batch = shape.first().map_or(1, |&n| n as u64);
        let chunk_elems = chunk_elems.max(1);
        let mut cuts: [Cut<'a>; 8] = Default::default();
        let f32s = |t: Tensor<'a>| Values::Floats(t.data);
        let target_values = match inputs.target {
            Some(Target::Float(t)) => Some(f32s(t)),
            Some(Target::Class { data, .. }) => Some(Values::I64(data)),
            None => None,
        };
        let optional = ROLES.map(|role| match role {
            TensorName::Input | TensorName::Target => None,
            _ => inputs.float(role),
        });
        let (units, step, quantum) = match plan.geometry {
            Geometry::Point(p) => {
                let q = p.per_target;
                if let Pointwise::Quantile { quantiles: Some(_) } = p.loss {
                    // quantile with a list: a unit is one target and its Q predictions.
                    cuts[0] = Cut::Slice {
                        values: f32s(inputs.input),
                        per_unit: q,
                        rule: Rule::Lead(vec![q]),
                    };
                    cuts[1] = Cut::Slice {
                        values: target_values.expect("validated by plan"),
                        per_unit: 1,
                        rule: Rule::Lead(vec![]),
                    };
                    (p.n / q, (chunk_elems / q).max(1), 1)
                } else {
                    // A broadcast repeating along the trailing dims with a period
                    // that fits a chunk stays whole; chunks then hold whole periods.
                    let role = |t: TensorName| ROLES.iter().position(|r| *r == t);
                    // The aux broadcast is cut like the tensor the plan says it reads.
                    let broadcasts = [
                        (role(TensorName::Weight), p.weight),
                        (p.aux_tensor.and_then(role), p.aux),
                    ];
                    let period = broadcasts
                        .iter()
                        .filter_map(|(_, b)| b.as_ref())
                        .find(|b| b.inner == 1 && b.len > 1 && b.len < p.n && b.len <= chunk_elems)
                        .map(|b| b.len);
                    let rule = period.map_or(Rule::Lead(vec![]), Rule::Split);
                    let l = period.unwrap_or(1);
                    let slice = |values| Cut::Slice {
                        values,
                        per_unit: 1,
                        rule: rule.clone(),
                    };
                    cuts[0] = slice(f32s(inputs.input));
                    cuts[1] = slice(target_values.expect("validated by plan"));
                    for (role, b) in broadcasts {
                        let (Some(role), Some(b)) = (role, b) else {
                            continue;
                        };
                        cuts[role] = if b.len == 1 {
                            Cut::Whole(b.data, vec![1])
                        } else if b.inner == 1 && b.len == p.n {
                            slice(Values::F32(b.data))
                        } else if b.inner == 1 && b.len == l {
                            Cut::Whole(b.data, vec![l])
                        } else {
                            Cut::Expand(b, rule.clone())
                        };
                    }
                    (p.n, (chunk_elems / l).max(1) * l, l)
                }
            }
            geometry => {
                // Dim 0 is the unit, unless the input has no batch dim:
                // (C) rows, a (D) pair, a 0-d binary Dice input.
                let batched = match geometry {
                    Geometry::Rows(_) | Geometry::Pairs(_) => shape.len() >= 2,
                    Geometry::Dice(_) | Geometry::Point(_) => !shape.is_empty(),
                };
                let units = if batched { shape[0] } else { 1 };
                let cut = |values: Values<'a>, shape: &[usize]| {
                    let (per_unit, rule) = if batched {
                        (numel(&shape[1..]), Rule::Lead(shape[1..].to_vec()))
                    } else {
                        (numel(shape), Rule::Fixed(shape.to_vec()))
                    };
                    Cut::Slice {
                        values,
                        per_unit,
                        rule,
                    }
                };
                cuts[0] = cut(f32s(inputs.input), shape);
                if let (Some(values), Some(t)) = (target_values, inputs.target) {
                    cuts[1] = cut(values, t.shape());
                }
                for (role, t) in optional.into_iter().enumerate() {
                    let Some(t) = t else { continue };
                    cuts[role] = match (role, &geometry) {
                        // The class weight of the softmax-row losses: one per class.
                        (2, Geometry::Rows(_)) => Cut::Whole(t.data.to_f32(), t.shape.to_vec()),
                        _ => cut(f32s(t), t.shape),
                    };
                }
                let per_unit = if batched {
                    numel(&shape[1..])
                } else {
                    numel(shape)
                };
                (units, (chunk_elems / per_unit.max(1)).max(1), 1)
            }
        };
        Ok(Chunks {
            loss: loss.clone(),
            reduction,
            cuts,
            units,
            step,
            quantum,
            batch,
            items_shape: plan.items_shape,
        })
    }

    /// The number of chunks (1 for an empty batch).
    pub fn len(&self) -> usize {
        self.units.div_ceil(self.step).max(1)
    }

    /// Never: an empty batch is one empty chunk, whose result is the
    /// reduction of nothing (`mean` NaN, `sum` 0).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Units in all: elements, quantile groups, batch entries or rows.
    pub fn units(&self) -> usize {
        self.units
    }

    /// Units per chunk (the last may hold fewer).
    pub fn units_per_chunk(&self) -> usize {
        self.step
    }

    /// What every chunk's first unit is a multiple of, and so every
    /// [`span`](Self::span)'s bounds but the batch's end: the period of a
    /// pointwise broadcast that chunks keep whole, else 1.
    pub fn quantum(&self) -> usize {
        self.quantum
    }

    /// `units`' share of the values of a tensor with `len` values in all:
    /// where a part's items or its gradient start in the whole result.
    pub fn offset(&self, units: usize, len: usize) -> usize {
        if self.units == 0 {
            return 0;
        }
        (len as u128 * units as u128 / self.units as u128) as usize
    }

    /// The whole input's `shape[0]` (1 for a 0-d input), `batchmean`'s divisor.
    pub fn batch(&self) -> u64 {
        self.batch
    }

    /// The shape of the whole call's `none` result.
    pub fn items_shape(&self) -> &[usize] {
        &self.items_shape
    }

    pub fn loss(&self) -> &Loss {
        &self.loss
    }

    pub fn reduction(&self) -> Reduction {
        self.reduction
    }

    /// Whether `role` (an index into [`ROLES`]) is the same tensor in every chunk.
    pub(crate) fn is_whole(&self, role: usize) -> bool {
        matches!(self.cuts[role], Cut::Whole(..))
    }

    /// Chunk `index` (< `len()`), its values checked as `plan` checks them;
    /// an error's element index counts from the start of the whole tensor.
    pub fn chunk(&self, index: usize) -> Result<Chunk<'_>> {
        let start = (index * self.step).min(self.units);
        let end = (start + self.step).min(self.units);
        let chunk = self.slice(index, start, end);
        plan(&self.loss, self.reduction, &chunk.inputs())
            .map_err(|e| self.whole_index(e, start))?;
        Ok(chunk)
    }

    /// The units `units` as one part (its `index` is 0), for a part of the
    /// batch that is cut into chunks again: an adapter's or an MPI rank's
    /// share. Its values are not read here; the chunks it is cut into check
    /// them (their indices then count from the part's start). Both bounds
    /// must be multiples of [`quantum`](Self::quantum), or the end the
    /// batch's end.
    pub fn span(&self, units: Range<usize>) -> Result<Chunk<'_>> {
        let fits = |u: usize| u.is_multiple_of(self.quantum) || u == self.units;
        if units.start > units.end
            || units.end > self.units
            || !fits(units.start)
            || !fits(units.end)
        {
            return Err(Error::Partial(format!(
                "{}: units {}..{} are not a part of a batch of {} units in steps of {}",
                self.loss.name(),
                units.start,
                units.end,
                self.units,
                self.quantum
            )));
        }
        Ok(self.slice(0, units.start, units.end))
    }

    /// Units `start..end`, sliced.
    fn slice(&self, index: usize, start: usize, end: usize) -> Chunk<'_> {
        let m = end - start;
        let mut values: [Option<Values<'_>>; 8] = Default::default();
        let mut shapes: [Vec<usize>; 8] = Default::default();
        for (role, cut) in self.cuts.iter().enumerate() {
            let (v, s) = match cut {
                Cut::Absent => continue,
                Cut::Whole(data, shape) => (Values::F32(Cow::Borrowed(&data[..])), shape.clone()),
                Cut::Slice {
                    values,
                    per_unit,
                    rule,
                } => {
                    let range = start * per_unit..end * per_unit;
                    let v = match values {
                        Values::Floats(d) => Values::Floats(d.slice(range)),
                        Values::F32(d) => Values::F32(Cow::Borrowed(&d[range])),
                        Values::I64(d) => Values::I64(&d[range]),
                    };
                    (v, rule.shape(m))
                }
                Cut::Expand(b, rule) => (
                    Values::F32(Cow::Owned((start..end).map(|g| b.at(g)).collect())),
                    rule.shape(m),
                ),
            };
            values[role] = Some(v);
            shapes[role] = s;
        }
        Chunk {
            index,
            units: start..end,
            values,
            shapes,
        }
    }

    /// A chunk's value error, its index moved to the whole tensor.
    fn whole_index(&self, e: Error, start: usize) -> Error {
        let offset = |role: usize| match &self.cuts[role] {
            Cut::Slice { per_unit, .. } => start * per_unit,
            Cut::Expand(..) => start,
            _ => 0,
        };
        match e {
            Error::ClassOutOfRange {
                loss,
                index,
                value,
                classes,
                ignore_index,
            } => Error::ClassOutOfRange {
                loss,
                index: index + offset(1),
                value,
                classes,
                ignore_index,
            },
            Error::OutOfUnitRange {
                loss,
                name,
                index,
                value,
            } => Error::OutOfUnitRange {
                loss,
                name,
                index: index + offset(ROLES.iter().position(|r| r.name() == name).unwrap_or(0)),
                value,
            },
            e => e,
        }
    }
}

impl<'c> Chunk<'c> {
    /// The chunk as the inputs of one call.
    pub fn inputs(&self) -> Inputs<'_> {
        let float = |role: usize| match &self.values[role] {
            Some(Values::Floats(d)) => Some(Tensor::new(*d, &self.shapes[role])),
            Some(Values::F32(d)) => Some(Tensor::new(&d[..], &self.shapes[role])),
            _ => None,
        };
        let mut inputs = Inputs::new(float(0).unwrap_or_default());
        inputs.target = match &self.values[1] {
            Some(Values::Floats(_) | Values::F32(_)) => float(1).map(Target::Float),
            Some(Values::I64(d)) => Some(Target::Class {
                data: d,
                shape: &self.shapes[1],
            }),
            None => None,
        };
        for (r, name) in ROLES.iter().enumerate().skip(2) {
            if let Some(t) = float(r) {
                inputs = inputs.with(*name, t);
            }
        }
        inputs
    }

    /// The float values of `role`.
    pub(crate) fn floats(&self, role: usize) -> Option<Floats<'_>> {
        match &self.values[role] {
            Some(Values::Floats(d)) => Some(*d),
            Some(Values::F32(d)) => Some(Floats::F32(d)),
            _ => None,
        }
    }

    pub(crate) fn classes(&self) -> Option<&[i64]> {
        match &self.values[1] {
            Some(Values::I64(d)) => Some(d),
            _ => None,
        }
    }

    pub(crate) fn shape(&self, role: usize) -> &[usize] {
        &self.shapes[role]
    }
}
