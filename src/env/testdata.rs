//! One deterministic data generator for tests, benchmarks and the demo, so
//! that every measurement and every assertion is made on the same data.

use crate::env::environment::Environment;
use crate::value::{Complex, ComplexTensor, Edge, Function, Record, Tensor, Value};

/// A small, fast, seeded generator (SplitMix64); not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// `n` standard normal samples.
pub fn normal(n: usize, seed: u64) -> Vec<f64> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.normal()).collect()
}

/// `sin(linspace(0, 100, n))`: the spec's smooth benchmark signal.
pub fn smooth(n: usize) -> Vec<f64> {
    let step = if n > 1 { 100.0 / (n - 1) as f64 } else { 0.0 };
    (0..n).map(|i| (i as f64 * step).sin()).collect()
}

/// An environment holding every type of value, nested ones included,
/// special floats included (NaN with a payload, -0.0, infinities).
pub fn every_type() -> Environment {
    let mut env = Environment::new();
    let mut props = Record::new();
    props.insert("weight", Value::Number(2.5));
    props.insert("label", Value::from("road"));
    let mut rec = Record::new();
    rec.insert("name", Value::from("model A"));
    rec.insert(
        "coef",
        Value::Tensor(Tensor::from_vec(vec![1.0, -0.0, f64::INFINITY])),
    );
    rec.insert("inner", Value::Record(props.clone()));
    env.set("null", Value::Null);
    env.set("number", Value::Number(42.0));
    env.set("nan", Value::Number(f64::from_bits(0x7FF8_0000_DEAD_BEEF)));
    env.set("neg_zero", Value::Number(-0.0));
    env.set("flag", Value::Boolean(true));
    env.set("text", Value::from("héllo, wörld"));
    env.set("z", Value::Complex(Complex::new(1.0, -2.0)));
    env.set(
        "mixed",
        Value::Vector(vec![
            Value::Number(1.0),
            Value::from("two"),
            Value::Vector(vec![Value::Boolean(false), Value::Null]),
            Value::Tensor(Tensor::new(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).expect("2x2")),
        ]),
    );
    env.set(
        "matrix",
        Value::Tensor(Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).expect("2x3")),
    );
    env.set(
        "empty",
        Value::Tensor(Tensor::new(vec![0, 4], vec![]).expect("0x4")),
    );
    env.set(
        "spectrum",
        Value::ComplexTensor(ComplexTensor::from_vec(vec![
            Complex::new(1.0, 0.0),
            Complex::new(0.0, -1.0),
            Complex::new(f64::NAN, -0.0),
        ])),
    );
    env.set("model", Value::Record(rec));
    env.set("sin_ref", Value::Function(Function::Builtin("sin".into())));
    env.set(
        "road",
        Value::Edge(Edge {
            from: "A".into(),
            to: "B".into(),
            directed: true,
            properties: props,
        }),
    );
    env.set("counter", Value::new_ref(Value::Number(7.0)));
    env.set_constant("PI", Value::Number(std::f64::consts::PI));
    env.set_constant("E", Value::Number(std::f64::consts::E));
    env
}

/// `n` small bindings cycling a number, a short string, a 16-element tensor
/// and a two-field record, named `v000000`, `v000001`, ...
pub fn many_small(n: usize) -> Environment {
    let mut env = Environment::new();
    for i in 0..n {
        let v = match i % 4 {
            0 => Value::Number(i as f64),
            1 => Value::String(format!("item {i}")),
            2 => Value::Tensor(Tensor::from_vec((0..16).map(|k| (i + k) as f64).collect())),
            _ => {
                let mut r = Record::new();
                r.insert("id", Value::Number(i as f64));
                r.insert("ok", Value::Boolean(i % 3 == 0));
                Value::Record(r)
            }
        };
        env.set(format!("v{i:06}"), v);
    }
    env
}

/// Workload W1's shape: one large tensor `data` plus three small bindings
/// (a string, a number and a two-field record).
pub fn tensor_workspace(data: Tensor) -> Environment {
    let mut env = Environment::new();
    env.set("data", Value::Tensor(data));
    env.set("label", Value::from("benchmark run"));
    env.set("step", Value::Number(1000.0));
    let mut cfg = Record::new();
    cfg.insert("lr", Value::Number(0.001));
    cfg.insert("name", Value::from("adam"));
    env.set("config", Value::Record(cfg));
    env
}

/// A standard-normal tensor of `rows x cols`.
pub fn normal_tensor(rows: usize, cols: usize, seed: u64) -> Tensor {
    Tensor::new(vec![rows, cols], normal(rows * cols, seed)).expect("shape matches")
}
