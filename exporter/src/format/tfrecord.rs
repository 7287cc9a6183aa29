//! TFRecord: one file per robot and topic, one `tf.train.Example` per message, framed as
//! TensorFlow does (`u64` length, masked CRC32C of the length, the bytes, masked CRC32C of the
//! bytes; little endian). The protobuf is encoded here (it is four small messages).
//!
//! Features: `receive_time_ns`, `publish_time_ns`, `sequence` (`int64_list` of one), then one
//! feature per leaf field with its dotted path, arrays flattened into the list
//! (`waypoints.position.x` holds every waypoint's x): integers and `bool` as `int64_list`
//! (`uint64` above `i64::MAX` wraps, as TensorFlow has no unsigned list), floats as `float_list`
//! (TensorFlow's lists are 32-bit: `float64` is rounded to `float32`), strings as `bytes_list`,
//! byte arrays (`uint8[]`, `uint8[N]`) as one `bytes_list` entry. Every Example of a topic has the
//! same keys (an empty array gives an empty list).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{create_file, StreamMeta, TableWriter};
use crate::column::Batch;
use crate::error::{io_err, ExportError, Result};
use crate::plan::{Node, Plan};
use crate::value::Value;

/// CRC-32C (Castagnoli), reflected, as TFRecord uses.
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !data.iter().fold(!0u32, |c, b| TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8))
}

/// TFRecord's masked CRC: rotate right by 15 and add a constant.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Appends one framed record.
pub fn frame(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

#[derive(Debug, Clone, PartialEq)]
enum Feature {
    Int(Vec<i64>),
    Float(Vec<f32>),
    Bytes(Vec<Vec<u8>>),
}

impl Feature {
    fn clear(&mut self) {
        match self {
            Feature::Int(v) => v.clear(),
            Feature::Float(v) => v.clear(),
            Feature::Bytes(v) => v.clear(),
        }
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn len_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn encode_feature(f: &Feature, out: &mut Vec<u8>) {
    let mut list = Vec::new();
    let field = match f {
        Feature::Bytes(v) => {
            for b in v {
                len_field(&mut list, 1, b);
            }
            1
        }
        Feature::Float(v) => {
            if !v.is_empty() {
                let packed: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                len_field(&mut list, 1, &packed);
            }
            2
        }
        Feature::Int(v) => {
            if !v.is_empty() {
                let mut packed = Vec::new();
                for x in v {
                    varint(&mut packed, *x as u64);
                }
                len_field(&mut list, 1, &packed);
            }
            3
        }
    };
    len_field(out, field, &list);
}

/// Encodes a `tf.train.Example` with the features in order.
fn encode_example(names: &[String], feats: &[Feature]) -> Vec<u8> {
    let mut features = Vec::new();
    let mut entry = Vec::new();
    let mut fb = Vec::new();
    for (name, f) in names.iter().zip(feats) {
        entry.clear();
        fb.clear();
        len_field(&mut entry, 1, name.as_bytes());
        encode_feature(f, &mut fb);
        len_field(&mut entry, 2, &fb);
        len_field(&mut features, 1, &entry);
    }
    let mut example = Vec::with_capacity(features.len() + 8);
    len_field(&mut example, 1, &features);
    example
}

fn leaves(node: &Node, name: &str, out: &mut Vec<(String, Feature)>) {
    match node {
        Node::Prim(p) if p.is_float() => out.push((name.to_string(), Feature::Float(Vec::new()))),
        Node::Prim(_) => out.push((name.to_string(), Feature::Int(Vec::new()))),
        Node::String | Node::WString => out.push((name.to_string(), Feature::Bytes(Vec::new()))),
        Node::Array { .. } if node.is_byte_array() => out.push((name.to_string(), Feature::Bytes(Vec::new()))),
        Node::Array { elem, .. } => leaves(elem, name, out),
        Node::Struct(s) => {
            for (f, n) in &s.fields {
                let full = if name.is_empty() { f.clone() } else { format!("{name}.{f}") };
                leaves(n, &full, out);
            }
        }
    }
}

fn leaf_count(node: &Node) -> usize {
    match node {
        Node::Array { .. } if node.is_byte_array() => 1,
        Node::Array { elem, .. } => leaf_count(elem),
        Node::Struct(s) => s.fields.iter().map(|(_, n)| leaf_count(n)).sum(),
        _ => 1,
    }
}

fn fill(node: &Node, v: &Value, base: usize, feats: &mut [Feature]) {
    match (node, v) {
        (Node::Struct(s), Value::Struct(fields)) => {
            let mut at = base;
            for ((_, n), (_, fv)) in s.fields.iter().zip(fields) {
                fill(n, fv, at, feats);
                at += leaf_count(n);
            }
        }
        (Node::Array { elem, .. }, Value::Array(items)) => {
            for it in items {
                fill(elem, it, base, feats);
            }
        }
        (_, v) => {
            let Some(f) = feats.get_mut(base) else { return };
            match (f, v) {
                (Feature::Bytes(b), Value::Bytes(x)) => b.push(x.clone()),
                (Feature::Bytes(b), Value::String(s)) => b.push(s.as_bytes().to_vec()),
                (Feature::Float(l), Value::F32(x)) => l.push(*x),
                (Feature::Float(l), Value::F64(x)) => l.push(*x as f32),
                (Feature::Int(l), v) => l.push(int_of(v)),
                _ => {}
            }
        }
    }
}

fn int_of(v: &Value) -> i64 {
    match v {
        Value::Bool(x) => i64::from(*x),
        Value::I8(x) => i64::from(*x),
        Value::U8(x) => i64::from(*x),
        Value::I16(x) => i64::from(*x),
        Value::U16(x) => i64::from(*x),
        Value::I32(x) => i64::from(*x),
        Value::U32(x) => i64::from(*x),
        Value::I64(x) => *x,
        Value::U64(x) => *x as i64,
        _ => 0,
    }
}

/// The TFRecord file of one topic.
pub struct TfRecordTable {
    path: PathBuf,
    out: BufWriter<File>,
    plan: std::sync::Arc<Plan>,
    names: Vec<String>,
    feats: Vec<Feature>,
    buf: Vec<u8>,
}

impl TfRecordTable {
    /// Creates the (empty) file.
    pub fn create(path: &Path, meta: &StreamMeta) -> Result<TfRecordTable> {
        let mut all = vec![
            ("receive_time_ns".to_string(), Feature::Int(Vec::new())),
            ("publish_time_ns".to_string(), Feature::Int(Vec::new())),
            ("sequence".to_string(), Feature::Int(Vec::new())),
        ];
        leaves(&Node::Struct(meta.plan.root.clone()), "", &mut all);
        let (names, feats) = all.into_iter().unzip();
        Ok(TfRecordTable {
            path: path.to_path_buf(),
            out: create_file(path)?,
            plan: meta.plan.clone(),
            names,
            feats,
            buf: Vec::new(),
        })
    }
}

impl TableWriter for TfRecordTable {
    fn write(&mut self, batch: Batch) -> Result<()> {
        let root = Node::Struct(self.plan.root.clone());
        for row in 0..batch.rows() {
            self.feats.iter_mut().for_each(Feature::clear);
            for (i, v) in
                [batch.receive_time_ns[row], batch.publish_time_ns[row], batch.sequence[row]].into_iter().enumerate()
            {
                if let Some(Feature::Int(l)) = self.feats.get_mut(i) {
                    l.push(v as i64);
                }
            }
            let value = batch.data.value_at(&root, row);
            fill(&root, &value, 3, &mut self.feats);
            let example = encode_example(&self.names, &self.feats);
            self.buf.clear();
            frame(&mut self.buf, &example);
            self.out.write_all(&self.buf).map_err(io_err("write", &self.path))?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>> {
        let TfRecordTable { path, out, .. } = *self;
        let file = out.into_inner().map_err(|e| ExportError::Io {
            op: "write",
            path: path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err("fsync", &path))?;
        Ok(vec![path])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value_and_mask() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // TensorFlow's masking of a zero CRC is the constant alone.
        assert_eq!(0u32.rotate_right(15).wrapping_add(0xa282_ead8), 0xa282_ead8);
    }

    #[test]
    fn varints_and_example_bytes() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        let ex = encode_example(&["a".into()], &[Feature::Int(vec![1])]);
        // Example{features{feature{key:"a" value{int64_list{value:[1]}}}}}
        assert_eq!(ex, [0x0a, 0x0c, 0x0a, 0x0a, 0x0a, 0x01, b'a', 0x12, 0x05, 0x1a, 0x03, 0x0a, 0x01, 0x01]);
    }
}
