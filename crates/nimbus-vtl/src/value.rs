//! Template values, with Java's rendering (`[a, b]`, `{k=v}`) and Velocity's truthiness.

use std::fmt::Write;

/// A value in a template. Maps keep insertion order, as Java's `LinkedHashMap` does.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Java's `null`; also what an undefined reference evaluates to.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (Java's `Integer` and `Long` both map here).
    Int(i64),
    /// A floating-point number; whole numbers render with `.0`, as Java's `Double` does.
    Float(f64),
    /// A string.
    Str(String),
    /// A list (Java's `ArrayList`).
    List(Vec<Value>),
    /// A map, in insertion order; keys are kept unique (`put` replaces in place).
    Map(Vec<(String, Value)>),
}

impl Value {
    /// Converts JSON: integers that fit an `i64` become [`Value::Int`], other numbers
    /// [`Value::Float`], objects keep their key order.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => Value::List(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Converts back to JSON (a non-finite float becomes `null`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Value::from(*f),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::List(l) => serde_json::Value::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// Velocity 1.7: only null and false are false.
    pub fn truthy(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(false))
    }

    /// A map's value under `key`; `None` for a missing key or a value that is not a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Java's `toString()`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.render_into(&mut s);
        s
    }

    fn render_into(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => {
                if f.fract() == 0.0 && f.abs() < 1e16 {
                    let _ = write!(out, "{f:.1}");
                } else {
                    let _ = write!(out, "{f}");
                }
            }
            Value::Str(s) => out.push_str(s),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.render_into(out);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push('=');
                    v.render_into(out);
                }
                out.push('}');
            }
        }
    }

    /// The number as a float; `None` for anything that is not a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as an integer: floats truncated toward zero, strings parsed after trimming; `None`
    /// otherwise.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) => Some(*f as i64),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_like_java() {
        let v = Value::Map(vec![
            (
                "a".into(),
                Value::List(vec![Value::Int(1), Value::Str("x".into())]),
            ),
            ("b".into(), Value::Float(2.0)),
        ]);
        assert_eq!(v.render(), "{a=[1, x], b=2.0}");
        assert!(Value::Str(String::new()).truthy());
        assert!(!Value::Null.truthy());
    }
}
