//! Reads the PyTorch-generated case files (tests/fixtures/*.json, made by the
//! scripts in scripts/): the loss, its parameters, the tensors and what
//! PyTorch gave.

use serde_json::Value;
use wgpu_loss::{bf16, f16, DType, DiceMode, Inputs, Loss, Reduction, Target, Tensor};
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

/// A tensor of a case: floats, the ints too for an int64 one, and the half
/// values for a float16 or bfloat16 one.
pub struct Owned {
    pub shape: Vec<usize>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
    pub halves: Option<Halves>,
}

/// The elements of a half-precision tensor of a case, as the library takes them.
pub enum Halves {
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

/// `values` in the half type `to` makes. Each must be a value of that type:
/// the case files store a half tensor's exact values, and one that the type
/// rounds is a fixture bug, not a rounding to accept.
fn halves<H: Copy>(
    what: &str,
    values: &[f32],
    to: impl Fn(f32) -> H,
    back: impl Fn(H) -> f32,
) -> Vec<H> {
    values
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let h = to(v);
            let r = back(h);
            assert!(
                r.to_bits() == v.to_bits() || (r.is_nan() && v.is_nan()),
                "{what}[{k}] = {v:e} is not a value of its dtype (it reads back as {r:e})"
            );
            h
        })
        .collect()
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
    let floats: Vec<f32> = data.iter().map(|v| num(v) as f32).collect();
    let what = format!("{}: {name}", case["name"]);
    let halves = match t["dtype"].as_str() {
        Some("float16") => Some(Halves::F16(halves(
            &what,
            &floats,
            f16::from_f32,
            f16::to_f32,
        ))),
        Some("bfloat16") => Some(Halves::Bf16(halves(
            &what,
            &floats,
            bf16::from_f32,
            bf16::to_f32,
        ))),
        Some("float32" | "int64") => None,
        other => panic!("{what}: unknown dtype {other:?}"),
    };
    Some(Owned {
        shape,
        floats,
        ints,
        halves,
    })
}

impl Owned {
    /// The tensor as the library takes it, in its own dtype.
    pub fn tensor(&self) -> Tensor<'_> {
        match &self.halves {
            None => Tensor::new(&self.floats, &self.shape),
            Some(Halves::F16(h)) => Tensor::new(h, &self.shape),
            Some(Halves::Bf16(h)) => Tensor::new(h, &self.shape),
        }
    }

    /// The dtype of a float tensor (an int64 one's floats are f32).
    pub fn dtype(&self) -> DType {
        match self.halves {
            None => DType::F32,
            Some(Halves::F16(_)) => DType::F16,
            Some(Halves::Bf16(_)) => DType::Bf16,
        }
    }
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

    /// True when some float tensor of the case is held in `dtype`.
    pub fn has(&self, dtype: DType) -> bool {
        self.tensors
            .iter()
            .any(|(_, t)| t.ints.is_empty() && t.dtype() == dtype)
    }

    /// The inputs of the case; an int64 target is class indices.
    pub fn inputs(&self, loss: &Loss) -> Inputs<'_> {
        let float = |r: &str| self.get(r).map(Owned::tensor);
        let mut inputs = Inputs::new(float("input").expect("an input"));
        inputs.target = self.get("target").map(|t| {
            if !t.ints.is_empty() && !matches!(loss, Loss::Pairs(Pairs::CosineEmbedding { .. })) {
                Target::Class {
                    data: &t.ints,
                    shape: &t.shape,
                }
            } else {
                Target::Float(t.tensor())
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
