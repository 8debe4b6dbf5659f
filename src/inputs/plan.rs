//! Validation of a call against its loss's catalog entry and shape rules,
//! shared by the GPU path and the CPU reference: `plan` checks a call once and
//! describes its geometry for the family that evaluates it.

use std::borrow::Cow;

use super::tensors::{
    Broadcast, DicePlan, Floats, Geometry, Inputs, PairsPlan, Plan, PointPlan, RowsPlan, Target,
    Tensor, Widths,
};
use crate::error::{Error, Result};
use crate::loss::{Dice, DiceMode, Loss, Need, Pairs, Pointwise, Reduction, Rows, TensorName};

/// Dice keeps per-class sums on the host and the device.
pub const MAX_DICE_CLASSES: usize = 65_536;

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn check_len(name: &'static str, data_len: usize, shape: &[usize]) -> Result<()> {
    if data_len != numel(shape) {
        return Err(Error::DataLength {
            name,
            shape: shape.to_vec(),
            expected: numel(shape),
            actual: data_len,
        });
    }
    Ok(())
}

struct Checker<'i, 'a> {
    loss: &'static str,
    inputs: &'i Inputs<'a>,
    /// False for tensors that live on the device: only their shapes are known.
    values: bool,
}

impl<'a> Checker<'_, 'a> {
    fn shape_err<T>(&self, name: &'static str, expected: String, actual: &[usize]) -> Result<T> {
        Err(Error::Shape {
            loss: self.loss,
            name,
            expected,
            actual: actual.to_vec(),
        })
    }

    fn missing<T>(&self, name: &'static str) -> Result<T> {
        Err(Error::Missing {
            loss: self.loss,
            name,
        })
    }

    /// Rejects tensors the loss would silently ignore, as its catalog entry
    /// lists what it reads.
    fn unexpected(&self, loss: &Loss) -> Result<()> {
        let takes = loss.entry().tensors;
        match TensorName::ALL.into_iter().find(|&t| {
            t != TensorName::Input
                && self.inputs.shape(t).is_some()
                && !takes.iter().any(|(n, _)| *n == t)
        }) {
            Some(name) => Err(Error::Unexpected {
                loss: self.loss,
                name: name.name(),
            }),
            None => Ok(()),
        }
    }

    /// Requires the tensors the catalog entry says the loss cannot do without.
    fn required(&self, loss: &Loss) -> Result<()> {
        let takes = loss.entry().tensors;
        match takes
            .iter()
            .find(|(t, need)| *need == Need::Required && self.inputs.shape(*t).is_none())
        {
            Some((name, _)) => self.missing(name.name()),
            None => Ok(()),
        }
    }

    fn float_target(&self) -> Result<Tensor<'a>> {
        match self.inputs.target {
            Some(Target::Float(t)) => Ok(t),
            Some(Target::Class { shape, .. }) => {
                self.shape_err("target", "a float tensor, got class indices".into(), shape)
            }
            None => self.missing("target"),
        }
    }

    fn same_shape(&self, name: &'static str, t: &Tensor<'_>) -> Result<()> {
        if t.shape != self.inputs.input.shape {
            return self.shape_err(
                name,
                format!("{:?} (the input's shape)", self.inputs.input.shape),
                t.shape,
            );
        }
        Ok(())
    }

    /// PyTorch broadcasting of `t` against `shape`, aligned on trailing dims.
    fn broadcast(
        &self,
        name: &'static str,
        t: Tensor<'a>,
        shape: &[usize],
    ) -> Result<Broadcast<'a>> {
        let bad = || self.shape_err(name, format!("broadcastable to {shape:?}"), t.shape);
        if t.shape.len() > shape.len()
            && t.shape[..t.shape.len() - shape.len()]
                .iter()
                .any(|&d| d != 1)
        {
            return bad();
        }
        let offset = shape.len() as isize - t.shape.len() as isize;
        let mut block: Option<(usize, usize)> = None;
        let mut contiguous = true;
        for (k, &d) in t.shape.iter().enumerate() {
            let pos = k as isize + offset;
            if pos < 0 {
                continue;
            }
            let pos = pos as usize;
            if d != 1 && d != shape[pos] {
                return bad();
            }
            // A dim of 1 in both shapes lies inside a block as well as outside:
            // [2, 1, 2] against itself is one block, not two.
            if d == 1 && shape[pos] == 1 {
                if let Some((lo, hi)) = block {
                    if hi == pos {
                        block = Some((lo, pos + 1));
                    }
                }
                continue;
            }
            if d != 1 {
                block = match block {
                    None => Some((pos, pos + 1)),
                    Some((lo, hi)) if hi == pos => Some((lo, pos + 1)),
                    Some(b) => {
                        contiguous = false;
                        Some(b)
                    }
                };
            }
        }
        if numel(shape) == 0 {
            return Ok(Broadcast {
                data: t.data.to_f32(),
                inner: 1,
                len: numel(t.shape).max(1),
                expanded: false,
            });
        }
        match block {
            None => Ok(Broadcast {
                data: t.data.to_f32(),
                inner: 1,
                len: 1,
                expanded: false,
            }),
            Some((lo, hi)) if contiguous => Ok(Broadcast {
                data: t.data.to_f32(),
                inner: numel(&shape[hi..]),
                len: numel(&shape[lo..hi]),
                expanded: false,
            }),
            Some(_) if !self.values => self.shape_err(
                name,
                format!("broadcastable to {shape:?} with its non-1 dims adjacent (a device tensor is not expanded)"),
                t.shape,
            ),
            Some(_) => {
                // General case: expand through the strides of `t` aligned to `shape`.
                let mut strides = vec![0usize; shape.len()];
                let mut s = 1;
                for (k, &d) in t.shape.iter().enumerate().rev() {
                    let pos = k as isize + offset;
                    if pos >= 0 && d != 1 {
                        strides[pos as usize] = s;
                    }
                    s *= d;
                }
                let n = numel(shape);
                let mut out = Vec::with_capacity(n);
                let mut idx = vec![0usize; shape.len()];
                for _ in 0..n {
                    out.push(t.data.get(idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()));
                    for d in (0..shape.len()).rev() {
                        idx[d] += 1;
                        if idx[d] < shape[d] {
                            break;
                        }
                        idx[d] = 0;
                    }
                }
                Ok(Broadcast {
                    data: Cow::Owned(out),
                    inner: 1,
                    len: n,
                    expanded: true,
                })
            }
        }
    }

    fn classes(&self, data: &[i64], classes: usize, ignore_index: i64) -> Result<()> {
        if !self.values {
            return Ok(());
        }
        for (index, &value) in data.iter().enumerate() {
            if value != ignore_index && (value < 0 || value as u64 >= classes as u64) {
                return Err(Error::ClassOutOfRange {
                    loss: self.loss,
                    index,
                    value,
                    classes,
                    ignore_index,
                });
            }
        }
        Ok(())
    }

    /// gaussian_nll's variance: the input's shape, or it with the last dim
    /// 1 or left out (one variance per row of the last dim); no value < 0.
    fn variance(&self, var: Tensor<'a>) -> Result<Broadcast<'a>> {
        let s = self.inputs.input.shape;
        let rows = s.split_last().map_or(&[][..], |(_, rest)| rest);
        let last = s.last().copied().unwrap_or(1);
        let per_row = var.shape == rows
            || (var.shape.len() == s.len() && var.shape.split_last() == Some((&1, rows)));
        let b = if var.shape == s {
            Broadcast {
                data: var.data.to_f32(),
                inner: 1,
                len: numel(s).max(1),
                expanded: false,
            }
        } else if per_row && !s.is_empty() {
            Broadcast {
                data: var.data.to_f32(),
                inner: last.max(1),
                len: numel(rows).max(1),
                expanded: false,
            }
        } else {
            return self.shape_err(
                "var",
                format!("{s:?}, or it with the last dim 1 or left out"),
                var.shape,
            );
        };
        if self.values {
            if let Some(index) = var.data.iter().position(|v| v < 0.0) {
                return Err(Error::Negative {
                    loss: self.loss,
                    name: "var",
                    index,
                    value: var.data.get(index),
                });
            }
        }
        Ok(b)
    }

    fn unit_range(&self, name: &'static str, data: Floats<'_>) -> Result<()> {
        if !self.values {
            return Ok(());
        }
        match data.iter().position(|v| !(0.0..=1.0).contains(&v)) {
            Some(index) => Err(Error::OutOfUnitRange {
                loss: self.loss,
                name,
                index,
                value: data.get(index),
            }),
            None => Ok(()),
        }
    }

    /// `(N, C, d1..dK)` (or `(C)`) → (N, C, inner).
    fn class_dims(&self) -> Result<(usize, usize, usize)> {
        let s = self.inputs.input.shape;
        match s.len() {
            0 => self.shape_err("input", "(C), (N, C) or (N, C, d1, ..)".into(), s),
            1 => Ok((1, s[0], 1)),
            _ => Ok((s[0], s[1], numel(&s[2..]))),
        }
    }

    /// The class-index target shape that goes with the input: input without dim 1.
    fn class_target_shape(&self) -> Vec<usize> {
        let s = self.inputs.input.shape;
        if s.len() <= 1 {
            vec![]
        } else {
            let mut t = vec![s[0]];
            t.extend_from_slice(&s[2..]);
            t
        }
    }

    fn class_weight(&self, classes: usize) -> Result<()> {
        if let Some(w) = &self.inputs.weight {
            if w.shape != [classes] {
                return self.shape_err("weight", format!("[{classes}] (one per class)"), w.shape);
            }
        }
        Ok(())
    }
}

/// Validates parameters, shapes and values of a call and describes its geometry.
pub fn plan<'a>(loss: &Loss, reduction: Reduction, inputs: &Inputs<'a>) -> Result<Plan<'a>> {
    bounded(loss, inputs, plan_checked(loss, reduction, inputs, true)?)
}

/// Validates parameters and shapes only: for tensors on the device, whose
/// `data` are empty and whose values the kernels check instead.
pub fn plan_shapes<'a>(loss: &Loss, reduction: Reduction, inputs: &Inputs<'a>) -> Result<Plan<'a>> {
    bounded(loss, inputs, plan_checked(loss, reduction, inputs, false)?)
}

/// Results beyond the input's values: an input with a dim of 0 still
/// declares rows (`(N, 0)` pairs, `(N, 0)` probability rows), which the
/// result would hold without any data behind them.
pub const MAX_EMPTY_ITEMS: usize = 65_536;

fn bounded<'a>(loss: &Loss, inputs: &Inputs<'a>, plan: Plan<'a>) -> Result<Plan<'a>> {
    let items = plan
        .items_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    let values = numel(inputs.input.shape);
    match items {
        Some(n) if n <= values.max(MAX_EMPTY_ITEMS) => Ok(plan),
        _ => Err(Error::Shape {
            loss: loss.name(),
            name: "input",
            expected: format!(
                "at most {MAX_EMPTY_ITEMS} result items ({:?}) beyond its {values} values",
                plan.items_shape
            ),
            actual: inputs.input.shape.to_vec(),
        }),
    }
}

/// Every dim's product must fit in usize, also skipping dims of 0, so that
/// any part of a shape can be multiplied out.
fn check_shape(loss: &Loss, name: &'static str, shape: &[usize]) -> Result<()> {
    let fits = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .is_some_and(|n| n <= isize::MAX as usize);
    if fits {
        Ok(())
    } else {
        Err(Error::Shape {
            loss: loss.name(),
            name,
            expected: "dims whose product (zeros left out) fits in memory".into(),
            actual: shape.to_vec(),
        })
    }
}

fn plan_checked<'a>(
    loss: &Loss,
    reduction: Reduction,
    inputs: &Inputs<'a>,
    values: bool,
) -> Result<Plan<'a>> {
    loss.validate(reduction)?;
    for name in TensorName::ALL {
        if let Some(shape) = inputs.shape(name) {
            check_shape(loss, name.name(), shape)?;
        }
    }
    let c = Checker {
        loss: loss.name(),
        inputs,
        values,
    };
    if values {
        for name in TensorName::ALL {
            if let (Some(shape), Some(len)) = (inputs.shape(name), inputs.data_len(name)) {
                check_len(name.name(), len, shape)?;
            }
        }
    }
    c.unexpected(loss)?;
    match loss {
        Loss::Pointwise(l) => point_plan(&c, l),
        Loss::Rows(l) => rows_plan(&c, l),
        Loss::Pairs(l) => pairs_plan(&c, l),
        Loss::Dice(l) => dice_plan(&c, l),
    }
}

fn point_plan<'a>(c: &Checker<'_, 'a>, loss: &Pointwise) -> Result<Plan<'a>> {
    let inputs = c.inputs;
    let input = inputs.input;
    let n = numel(input.shape);
    let point = |per_target, weight, aux: Option<(Broadcast<'a>, Option<TensorName>)>| {
        let (aux, aux_tensor) = match aux {
            Some((b, t)) => (Some(b), t),
            None => (None, None),
        };
        let batch = input.shape.first().copied().unwrap_or(1);
        let read = [Some(input), inputs.float(TensorName::Target), inputs.weight]
            .into_iter()
            .chain([aux_tensor.and_then(|name| inputs.float(name))])
            .flatten()
            .map(|t| t.dtype());
        Ok(Plan {
            geometry: Geometry::Point(PointPlan {
                loss: loss.clone(),
                n,
                per_target,
                weight,
                aux,
                aux_tensor,
                batch,
                widths: Widths::of(read),
            }),
            items_shape: input.shape.to_vec(),
        })
    };
    let t = c.float_target()?;
    c.required(&Loss::Pointwise(loss.clone()))?;
    let weight = inputs
        .weight
        .map(|w| c.broadcast("weight", w, input.shape))
        .transpose()?;
    match loss {
        Pointwise::Quantile { quantiles: Some(q) } => {
            let s = input.shape;
            if s.last() != Some(&q.len()) || t.shape != &s[..s.len() - 1] {
                return c.shape_err(
                    "target",
                    format!(
                        "the input's shape without its last dim of {} quantiles",
                        q.len()
                    ),
                    t.shape,
                );
            }
            let aux = Broadcast {
                data: Cow::Owned(q.clone()),
                inner: 1,
                len: q.len(),
                expanded: false,
            };
            point(q.len(), None, Some((aux, None)))
        }
        Pointwise::GaussianNll { .. } => {
            c.same_shape("target", &t)?;
            let var = inputs.var.expect("required by the catalog");
            let var = c.variance(var)?;
            point(1, None, Some((var, Some(TensorName::Var))))
        }
        Pointwise::Bce => {
            c.same_shape("target", &t)?;
            c.unit_range("input", input.data)?;
            c.unit_range("target", t.data)?;
            point(1, weight, None)
        }
        Pointwise::BceWithLogits => {
            c.same_shape("target", &t)?;
            let pw = inputs
                .pos_weight
                .map(|p| c.broadcast("pos_weight", p, input.shape))
                .transpose()?;
            point(1, weight, pw.map(|b| (b, Some(TensorName::PosWeight))))
        }
        Pointwise::Mse
        | Pointwise::L1
        | Pointwise::Huber { .. }
        | Pointwise::SmoothL1 { .. }
        | Pointwise::LogCosh
        | Pointwise::Quantile { quantiles: None }
        | Pointwise::SigmoidFocal { .. }
        | Pointwise::KlDiv { .. }
        | Pointwise::PoissonNll { .. } => {
            c.same_shape("target", &t)?;
            point(1, weight, None)
        }
    }
}

fn rows_plan<'a>(c: &Checker<'_, 'a>, loss: &Rows) -> Result<Plan<'a>> {
    let inputs = c.inputs;
    let (Rows::CrossEntropy { ignore_index, .. }
    | Rows::Nll { ignore_index }
    | Rows::SoftmaxFocal { ignore_index, .. }) = loss;
    let (batch, classes, inner) = c.class_dims()?;
    c.class_weight(classes)?;
    let items_shape = c.class_target_shape();
    let prob_target = match inputs.target {
        Some(Target::Class { data, shape }) => {
            if shape != items_shape.as_slice() {
                return c.shape_err(
                    "target",
                    format!("{items_shape:?} (the input without its class dim)"),
                    shape,
                );
            }
            c.classes(data, classes, *ignore_index)?;
            false
        }
        Some(Target::Float(t)) if matches!(loss, Rows::CrossEntropy { .. }) => {
            c.same_shape("target", &t)?;
            if *ignore_index >= 0 {
                return Err(Error::Param {
                    loss: c.loss,
                    name: "ignore_index",
                    expected: "negative with probability targets",
                    value: ignore_index.to_string(),
                });
            }
            true
        }
        Some(Target::Float(t)) => {
            return c.shape_err("target", "class indices (int)".into(), t.shape)
        }
        None => return c.missing("target"),
    };
    Ok(Plan {
        geometry: Geometry::Rows(RowsPlan {
            loss: loss.clone(),
            rows: batch * inner,
            classes,
            inner,
            prob_target,
            weight: inputs.weight.is_some(),
        }),
        items_shape,
    })
}

fn pairs_plan<'a>(c: &Checker<'_, 'a>, loss: &Pairs) -> Result<Plan<'a>> {
    let inputs = c.inputs;
    let s = inputs.input.shape;
    let (rows, dim, items_shape) = match s.len() {
        1 => (1, s[0], vec![]),
        2 => (s[0], s[1], vec![s[0]]),
        _ => return c.shape_err("input", "(N, D) or (D)".into(), s),
    };
    c.required(&Loss::Pairs(loss.clone()))?;
    match loss {
        Pairs::CosineEmbedding { .. } => {
            let t = c.float_target()?;
            c.same_shape("target", &t)?;
            if let Some(l) = &inputs.labels {
                if l.shape != items_shape.as_slice() {
                    return c.shape_err(
                        "labels",
                        format!("{items_shape:?} (one per pair)"),
                        l.shape,
                    );
                }
            }
        }
        Pairs::TripletMargin { .. } => {
            for name in [TensorName::Positive, TensorName::Negative] {
                let t = inputs.float(name).expect("required by the catalog");
                c.same_shape(name.name(), &t)?;
            }
        }
    }
    Ok(Plan {
        geometry: Geometry::Pairs(PairsPlan {
            loss: loss.clone(),
            rows,
            dim,
            labels: inputs.labels.is_some(),
        }),
        items_shape,
    })
}

fn dice_plan<'a>(c: &Checker<'_, 'a>, loss: &Dice) -> Result<Plan<'a>> {
    let inputs = c.inputs;
    let s = inputs.input.shape;
    let n = numel(s);
    let (batch, classes, inner) = match loss.mode {
        DiceMode::Binary => {
            let t = c.float_target()?;
            c.same_shape("target", &t)?;
            let batch = s.first().copied().unwrap_or(1);
            (batch, 1, n.checked_div(batch).unwrap_or(0))
        }
        DiceMode::Multilabel | DiceMode::Multiclass => {
            if s.len() < 2 {
                return c.shape_err("input", "(N, C, ...)".into(), s);
            }
            // The result holds one value per class even for an empty batch.
            if s[1] > MAX_DICE_CLASSES {
                return c.shape_err(
                    "input",
                    format!("at most {MAX_DICE_CLASSES} classes in dim 1"),
                    s,
                );
            }
            let dims = (s[0], s[1], numel(&s[2..]));
            if loss.mode == DiceMode::Multilabel {
                let t = c.float_target()?;
                c.same_shape("target", &t)?;
            } else {
                match inputs.target {
                    Some(Target::Class { data, shape }) => {
                        let want = c.class_target_shape();
                        if shape != want.as_slice() {
                            return c.shape_err(
                                "target",
                                format!("{want:?} (the input without its class dim)"),
                                shape,
                            );
                        }
                        c.classes(data, dims.1, loss.ignore_index.unwrap_or(i64::MIN))?;
                    }
                    Some(Target::Float(t)) => {
                        return c.shape_err("target", "class indices (int)".into(), t.shape)
                    }
                    None => return c.missing("target"),
                }
            }
            dims
        }
    };
    Ok(Plan {
        geometry: Geometry::Dice(DicePlan {
            loss: loss.clone(),
            batch,
            classes,
            inner,
        }),
        items_shape: vec![classes],
    })
}
