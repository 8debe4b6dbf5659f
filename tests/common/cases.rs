//! Reads the PyTorch-generated case files (tests/fixtures/*.json, made by the
//! scripts in scripts/): the loss, its parameters, the tensors and what
//! PyTorch gave.

use serde_json::Value;
use wgpu_loss::{DiceMode, Inputs, Loss, Reduction, Target, Tensor};
use wgpu_loss::{Pairs, TensorName, Value as ParamValue};

/// A number of the case files: "NaN", "inf" and "-inf" are strings there.
pub fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("a number"),
        Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => panic!("unexpected number string {other}"),
        },
        other => panic!("unexpected value {other}"),
    }
}

/// The cases of `tests/fixtures/<file>`.
pub fn load(file: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

/// The case's loss: the catalog's defaults with the case's parameters set.
pub fn loss_of(case: &Value) -> Loss {
    let mut loss = Loss::from_name(case["loss"].as_str().unwrap()).expect("a known loss");
    for (name, v) in case["params"].as_object().unwrap() {
        let (_, current) = loss
            .params()
            .into_iter()
            .find(|(p, _)| p.name == name)
            .unwrap_or_else(|| panic!("{}: no parameter {name}", loss.name()));
        let value = match current {
            ParamValue::F32(_) => ParamValue::F32(num(v) as f32),
            ParamValue::Bool(_) => ParamValue::Bool(v.as_bool().unwrap()),
            ParamValue::Int(_) => ParamValue::Int(v.as_i64().unwrap()),
            ParamValue::OptInt(_) => ParamValue::OptInt(v.as_i64()),
            ParamValue::List(_) => ParamValue::List(
                v.as_array()
                    .map(|q| q.iter().map(|x| num(x) as f32).collect()),
            ),
            ParamValue::Mode(_) => {
                ParamValue::Mode(DiceMode::from_name(v.as_str().unwrap()).expect("a dice mode"))
            }
        };
        loss.set(name, value).unwrap();
    }
    loss
}

pub fn reduction_of(case: &Value) -> Reduction {
    Reduction::from_name(case["reduction"].as_str().unwrap()).unwrap()
}

/// A tensor of a case: floats, and the ints too for an int64 one.
pub struct Owned {
    pub shape: Vec<usize>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
}

pub fn tensor(case: &Value, name: &str) -> Option<Owned> {
    let t = case["tensors"].get(name)?;
    let shape = t["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = t["data"].as_array().unwrap();
    let ints = if t["dtype"] == "int64" {
        data.iter().map(|v| v.as_i64().unwrap()).collect()
    } else {
        vec![]
    };
    Some(Owned {
        shape,
        floats: data.iter().map(|v| num(v) as f32).collect(),
        ints,
    })
}

/// Every tensor of a case, by role.
pub struct CaseTensors {
    tensors: Vec<(&'static str, Owned)>,
}

impl CaseTensors {
    pub fn of(case: &Value) -> Self {
        CaseTensors {
            tensors: TensorName::ALL
                .iter()
                .filter_map(|r| tensor(case, r.name()).map(|t| (r.name(), t)))
                .collect(),
        }
    }

    fn get(&self, role: &str) -> Option<&Owned> {
        self.tensors.iter().find(|t| t.0 == role).map(|t| &t.1)
    }

    /// The inputs of the case; an int64 target is class indices.
    pub fn inputs(&self, loss: &Loss) -> Inputs<'_> {
        let float = |r: &str| self.get(r).map(|t| Tensor::new(&t.floats, &t.shape));
        let mut inputs = Inputs::new(float("input").expect("an input"));
        inputs.target = self.get("target").map(|t| {
            if !t.ints.is_empty() && !matches!(loss, Loss::Pairs(Pairs::CosineEmbedding { .. })) {
                Target::Class {
                    data: &t.ints,
                    shape: &t.shape,
                }
            } else {
                Target::Float(Tensor::new(&t.floats, &t.shape))
            }
        });
        for name in TensorName::ALL {
            if name == TensorName::Target || name == TensorName::Input {
                continue;
            }
            if let Some(t) = float(name.name()) {
                inputs = inputs.with(name, t);
            }
        }
        inputs
    }
}

/// PyTorch's value, and its `none` items when the case has them.
pub fn expected(case: &Value) -> (f64, Option<Vec<f64>>) {
    let e = &case["expected"];
    (
        num(&e["value"]),
        e.get("none")
            .map(|v| v.as_array().unwrap().iter().map(num).collect()),
    )
}

/// What autograd gave for each tensor of the case: d(value)/d(tensor), for
/// `none` the gradient of the items' sum.
pub fn grads(case: &Value) -> Vec<(String, Vec<f64>)> {
    case["grads"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(tensor, g)| {
            let g = g.as_array().unwrap().iter().map(num).collect();
            (tensor.clone(), g)
        })
        .collect()
}

/// The float64 twin against float64 PyTorch: the same non-finite value, or
/// equal up to summation order.
pub fn tight(got: f64, want: f64) -> bool {
    if !got.is_finite() || !want.is_finite() {
        return super::close(got, want, 0.0);
    }
    (got - want).abs() <= 1e-7 * want.abs() + 1e-9
}
