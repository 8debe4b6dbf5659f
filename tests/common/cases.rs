//! Reads the PyTorch-generated case files (tests/fixtures/*.json, made by the
//! scripts in scripts/): the loss, its parameters, the tensors and what
//! PyTorch gave.

use serde_json::Value;
use wgpu_loss::{DiceMode, Inputs, Loss, Reduction, Target, Tensor};

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

pub fn loss_of(case: &Value) -> Loss {
    let mut loss = Loss::from_name(case["loss"].as_str().unwrap()).expect("a known loss");
    let params = case["params"].as_object().unwrap();
    let f = |k: &str| params.get(k).map(|v| num(v) as f32);
    let b = |k: &str| params.get(k).and_then(Value::as_bool);
    let i = |k: &str| params.get(k).and_then(Value::as_i64);
    match &mut loss {
        Loss::Huber { delta } => *delta = f("delta").unwrap_or(*delta),
        Loss::SmoothL1 { beta } => *beta = f("beta").unwrap_or(*beta),
        Loss::Quantile { quantiles } => {
            *quantiles = params.get("quantiles").map(|q| {
                q.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| num(v) as f32)
                    .collect()
            })
        }
        Loss::SigmoidFocal { alpha, gamma } => {
            *alpha = f("alpha").unwrap_or(*alpha);
            *gamma = f("gamma").unwrap_or(*gamma);
        }
        Loss::KlDiv { log_target } => *log_target = b("log_target").unwrap_or(*log_target),
        Loss::CrossEntropy {
            ignore_index,
            label_smoothing,
        } => {
            *ignore_index = i("ignore_index").unwrap_or(*ignore_index);
            *label_smoothing = f("label_smoothing").unwrap_or(*label_smoothing);
        }
        Loss::Nll { ignore_index } => *ignore_index = i("ignore_index").unwrap_or(*ignore_index),
        Loss::SoftmaxFocal {
            gamma,
            ignore_index,
        } => {
            *gamma = f("gamma").unwrap_or(*gamma);
            *ignore_index = i("ignore_index").unwrap_or(*ignore_index);
        }
        Loss::CosineEmbedding { margin } => *margin = f("margin").unwrap_or(*margin),
        Loss::TripletMargin {
            margin,
            p,
            eps,
            swap,
        } => {
            *margin = f("margin").unwrap_or(*margin);
            *p = f("p").unwrap_or(*p);
            *eps = f("eps").unwrap_or(*eps);
            *swap = b("swap").unwrap_or(*swap);
        }
        Loss::Dice {
            mode,
            from_logits,
            smooth,
            eps,
            ignore_index,
            log_loss,
        } => {
            if let Some(m) = params.get("mode") {
                *mode = DiceMode::from_name(m.as_str().unwrap()).expect("a dice mode");
            }
            *from_logits = b("from_logits").unwrap_or(*from_logits);
            *smooth = f("smooth").unwrap_or(*smooth);
            *eps = f("eps").unwrap_or(*eps);
            *ignore_index = i("ignore_index").or(*ignore_index);
            *log_loss = b("log_loss").unwrap_or(*log_loss);
        }
        _ => {}
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

pub const ROLES: [&str; 7] = [
    "input",
    "target",
    "weight",
    "pos_weight",
    "labels",
    "positive",
    "negative",
];

impl CaseTensors {
    pub fn of(case: &Value) -> Self {
        CaseTensors {
            tensors: ROLES
                .iter()
                .filter_map(|r| tensor(case, r).map(|t| (*r, t)))
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
            if !t.ints.is_empty() && !matches!(loss, Loss::CosineEmbedding { .. }) {
                Target::Class {
                    data: &t.ints,
                    shape: &t.shape,
                }
            } else {
                Target::Float(Tensor::new(&t.floats, &t.shape))
            }
        });
        inputs.weight = float("weight");
        inputs.pos_weight = float("pos_weight");
        inputs.labels = float("labels");
        inputs.positive = float("positive");
        inputs.negative = float("negative");
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
