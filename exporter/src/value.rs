//! Dynamic message values, and a CDR encoder driven by a plan: what tests and tools use to make
//! payloads of any type and to look at one decoded message. The export path does not build
//! these (it decodes into [`crate::column::Column`]s).

use crate::msgdef::Primitive;
use crate::plan::{ArrayLen, Node, Plan};

/// One value of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `bool`.
    Bool(bool),
    /// `int8`.
    I8(i8),
    /// `uint8`, `byte`, `char`.
    U8(u8),
    /// `int16`.
    I16(i16),
    /// `uint16`.
    U16(u16),
    /// `int32`.
    I32(i32),
    /// `uint32`.
    U32(u32),
    /// `int64`.
    I64(i64),
    /// `uint64`.
    U64(u64),
    /// `float32`.
    F32(f32),
    /// `float64`.
    F64(f64),
    /// `string`, `wstring`.
    String(String),
    /// A byte array or sequence (`uint8[]`, `uint8[N]`, `byte[]`, `char[]`).
    Bytes(Vec<u8>),
    /// Any other array or sequence.
    Array(Vec<Value>),
    /// A message: its fields in order.
    Struct(Vec<(String, Value)>),
}

impl Value {
    /// The field `name` of a struct value.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(f) => f.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a dotted path of field names (`header.stamp.sec`).
    pub fn path(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(self, |v, name| v.field(name))
    }
}

/// Why a value does not encode with a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value does not match the plan at `{path}`: {reason}")]
pub struct EncodeError {
    /// Dotted path of the mismatch.
    pub path: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Encodes a message value as CDR with its encapsulation header, little or big endian.
pub fn encode(plan: &Plan, value: &Value, big_endian: bool) -> Result<Vec<u8>, EncodeError> {
    let mut w = Writer { buf: vec![0, if big_endian { 0 } else { 1 }, 0, 0], big_endian };
    w.node(&Node::Struct(plan.root.clone()), value, "")?;
    Ok(w.buf)
}

struct Writer {
    buf: Vec<u8>,
    big_endian: bool,
}

impl Writer {
    fn align(&mut self, n: usize) {
        let rel = self.buf.len() - 4;
        let pad = (n - rel % n) % n;
        self.buf.resize(self.buf.len() + pad, 0);
    }

    fn put<const N: usize>(&mut self, le: [u8; N], be: [u8; N]) {
        self.align(N);
        self.buf.extend_from_slice(if self.big_endian { &be } else { &le });
    }

    fn len(&mut self, n: usize, path: &str) -> Result<(), EncodeError> {
        let n = u32::try_from(n).map_err(|_| EncodeError { path: path.into(), reason: "longer than u32" })?;
        self.put(n.to_le_bytes(), n.to_be_bytes());
        Ok(())
    }

    fn node(&mut self, node: &Node, v: &Value, path: &str) -> Result<(), EncodeError> {
        let bad = |reason| Err(EncodeError { path: path.to_string(), reason });
        match (node, v) {
            (Node::Prim(p), v) => self.prim(*p, v, path),
            (Node::String, Value::String(s)) => {
                self.len(s.len() + 1, path)?;
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
                Ok(())
            }
            (Node::WString, Value::String(s)) => {
                let units: Vec<u16> = s.encode_utf16().collect();
                self.len(units.len(), path)?;
                for u in units {
                    self.buf.extend_from_slice(&if self.big_endian { u.to_be_bytes() } else { u.to_le_bytes() });
                }
                Ok(())
            }
            (Node::Struct(s), Value::Struct(fields)) => {
                if fields.len() != s.fields.len() {
                    return bad("wrong number of fields");
                }
                for ((name, n), (vname, fv)) in s.fields.iter().zip(fields) {
                    if name != vname {
                        return bad("field names differ");
                    }
                    self.node(n, fv, &format!("{path}.{name}"))?;
                }
                Ok(())
            }
            (Node::Array { len, .. }, Value::Bytes(b)) if node.is_byte_array() => {
                match len {
                    ArrayLen::Fixed(n) if *n != b.len() => return bad("fixed array length differs"),
                    ArrayLen::Fixed(_) => {}
                    ArrayLen::Sequence { .. } => self.len(b.len(), path)?,
                }
                self.buf.extend_from_slice(b);
                Ok(())
            }
            (Node::Array { elem, len }, Value::Array(items)) => {
                match len {
                    ArrayLen::Fixed(n) if *n != items.len() => return bad("fixed array length differs"),
                    ArrayLen::Fixed(_) => {}
                    ArrayLen::Sequence { .. } => self.len(items.len(), path)?,
                }
                for (i, it) in items.iter().enumerate() {
                    self.node(elem, it, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            _ => bad("value kind differs from the type"),
        }
    }

    fn prim(&mut self, p: Primitive, v: &Value, path: &str) -> Result<(), EncodeError> {
        match (p, v) {
            (Primitive::Bool, Value::Bool(x)) => self.buf.push(u8::from(*x)),
            (Primitive::I8, Value::I8(x)) => self.put(x.to_le_bytes(), x.to_be_bytes()),
            (Primitive::U8, Value::U8(x)) => self.buf.push(*x),
            (Primitive::I16, Value::I16(x)) => self.put(x.to_le_bytes(), x.to_be_bytes()),
            (Primitive::U16, Value::U16(x)) => self.put(x.to_le_bytes(), x.to_be_bytes()),
            (Primitive::I32, Value::I32(x)) => self.put(x.to_le_bytes(), x.to_be_bytes()),
            (Primitive::U32, Value::U32(x)) => self.put(x.to_le_bytes(), x.to_be_bytes()),
            (Primitive::I64, Value::I64(x)) => self.put(x.to_le_bytes(), x.to_be_bytes()),
            (Primitive::U64, Value::U64(x)) => self.put(x.to_le_bytes(), x.to_be_bytes()),
            (Primitive::F32, Value::F32(x)) => self.put(x.to_le_bytes(), x.to_be_bytes()),
            (Primitive::F64, Value::F64(x)) => self.put(x.to_le_bytes(), x.to_be_bytes()),
            _ => return Err(EncodeError { path: path.to_string(), reason: "primitive type differs" }),
        }
        Ok(())
    }
}

/// Appends `v` as JSON (non-finite floats as `NaN`, `Infinity`, `-Infinity`, which Python's
/// `json` and pandas read; bytes as an array of numbers).
pub fn write_json(v: &Value, out: &mut String) {
    use std::fmt::Write;
    match v {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::I8(x) => push_display(out, x),
        Value::U8(x) => push_display(out, x),
        Value::I16(x) => push_display(out, x),
        Value::U16(x) => push_display(out, x),
        Value::I32(x) => push_display(out, x),
        Value::U32(x) => push_display(out, x),
        Value::I64(x) => push_display(out, x),
        Value::U64(x) => push_display(out, x),
        Value::F32(x) => write_float(out, f64::from(*x), &format!("{x:?}"), x.is_finite()),
        Value::F64(x) => write_float(out, *x, &format!("{x:?}"), x.is_finite()),
        Value::String(s) => {
            let _ = write!(out, "{}", serde_json::Value::String(s.clone()));
        }
        Value::Bytes(b) => {
            out.push('[');
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_display(out, x);
            }
            out.push(']');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(x, out);
            }
            out.push(']');
        }
        Value::Struct(fields) => {
            out.push('{');
            for (i, (name, x)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "\"{name}\":");
                write_json(x, out);
            }
            out.push('}');
        }
    }
}

fn push_display(out: &mut String, x: impl std::fmt::Display) {
    use std::fmt::Write;
    let _ = write!(out, "{x}");
}

fn write_float(out: &mut String, x: f64, shortest: &str, finite: bool) {
    if finite {
        out.push_str(shortest);
    } else if x.is_nan() {
        out.push_str("NaN");
    } else if x > 0.0 {
        out.push_str("Infinity");
    } else {
        out.push_str("-Infinity");
    }
}
