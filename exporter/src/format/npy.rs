//! NumPy: one folder per robot and topic (`<robot>/<topic>/`) of `.npy` files (format 1.0, little
//! endian), which `numpy.load` opens:
//!
//! - `receive_time_ns.npy`, `publish_time_ns.npy`, `sequence.npy`: `uint64`, shape `(n,)`;
//! - one file per numeric field, named by its dotted path (`linear_acceleration.x.npy`), of the
//!   field's ROS width; fixed arrays add dimensions (`orientation_covariance.npy`: `(n, 9)`);
//! - a field inside a sequence (`ranges`, `data`, `fields.offset`) is ragged: `<field>.npy`
//!   holds every row's elements back to back and `<sequence>.offsets.npy` (`int64`, `(n + 1,)`)
//!   where row `i` starts and ends (`values[offsets[i]:offsets[i+1]]`);
//! - strings, and fields inside a sequence inside a fixed array or another sequence, are not
//!   numeric arrays: they are left out (the manifest lists them under `skipped_fields`).
//!
//! Files are streamed: the header is written with room for the final shape and completed at
//! the end, so memory stays bounded.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{create_file, StreamMeta, TableWriter};
use crate::column::{Batch, Column};
use crate::error::{io_err, ExportError, Result};
use crate::msgdef::Primitive;
use crate::plan::{ArrayLen, Node};

/// Header bytes reserved at the start of every file (magic, version, length, padded dict).
const HEADER_TOTAL: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Field(usize),
    Fixed,
    List,
}

struct NpyFile {
    path: PathBuf,
    out: BufWriter<File>,
    descr: &'static str,
    inner: Vec<usize>,
    rows: u64,
}

impl NpyFile {
    fn create(path: PathBuf, descr: &'static str, inner: Vec<usize>) -> Result<NpyFile> {
        let mut out = create_file(&path)?;
        out.write_all(&[b' '; HEADER_TOTAL]).map_err(io_err("write", &path))?;
        Ok(NpyFile { path, out, descr, inner, rows: 0 })
    }

    fn append(&mut self, bytes: &[u8], rows: u64) -> Result<()> {
        self.out.write_all(bytes).map_err(io_err("write", &self.path))?;
        self.rows += rows;
        Ok(())
    }

    fn finish(self) -> Result<PathBuf> {
        let NpyFile { path, out, descr, inner, rows } = self;
        let mut shape = format!("({rows},");
        for d in &inner {
            shape.push_str(&format!(" {d},"));
        }
        if !inner.is_empty() {
            shape.pop();
        }
        shape.push(')');
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        let hlen = HEADER_TOTAL - 10;
        if dict.len() + 1 > hlen {
            return Err(ExportError::Write {
                format: "npy",
                path,
                topic: String::new(),
                reason: format!("shape {shape} too long for the header"),
            });
        }
        let mut header = Vec::with_capacity(HEADER_TOTAL);
        header.extend_from_slice(b"\x93NUMPY\x01\x00");
        header.extend_from_slice(&(hlen as u16).to_le_bytes());
        header.extend_from_slice(dict.as_bytes());
        header.resize(HEADER_TOTAL - 1, b' ');
        header.push(b'\n');
        let mut file = out.into_inner().map_err(|e| ExportError::Io {
            op: "write",
            path: path.clone(),
            source: e.into_error(),
        })?;
        file.seek(SeekFrom::Start(0)).map_err(io_err("seek", &path))?;
        file.write_all(&header).map_err(io_err("write", &path))?;
        file.sync_all().map_err(io_err("fsync", &path))?;
        Ok(path)
    }
}

struct Leaf {
    nav: Vec<Step>,
    file: NpyFile,
}

struct ListOut {
    nav: Vec<Step>,
    file: NpyFile,
    next: i64,
}

/// The `.npy` folder of one topic.
pub struct NpyTable {
    times: [NpyFile; 3],
    leaves: Vec<Leaf>,
    lists: Vec<ListOut>,
    /// Fields left out (strings, doubly nested sequences).
    pub skipped: Vec<String>,
    buf: Vec<u8>,
}

struct Walk<'a> {
    dir: &'a Path,
    leaves: Vec<Leaf>,
    lists: Vec<ListOut>,
    skipped: Vec<String>,
}

impl Walk<'_> {
    fn file(&self, name: &str, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}{suffix}.npy", crate::names::sanitize_dotted(name)))
    }

    fn node(
        &mut self,
        node: &Node,
        name: &str,
        nav: &mut Vec<Step>,
        dims: &[usize],
        ragged: Option<usize>,
    ) -> Result<()> {
        match node {
            Node::Prim(p) => {
                let file = NpyFile::create(self.file(name, ""), p.numpy_descr(), dims.to_vec())?;
                self.leaves.push(Leaf { nav: nav.clone(), file });
            }
            Node::String | Node::WString => self.skipped.push(name.to_string()),
            Node::Struct(s) => {
                for (i, (f, n)) in s.fields.iter().enumerate() {
                    nav.push(Step::Field(i));
                    self.node(n, &format!("{name}.{f}"), nav, dims, ragged)?;
                    nav.pop();
                }
            }
            Node::Array { elem, len: ArrayLen::Fixed(n) } => {
                let mut d = dims.to_vec();
                d.push(*n);
                if node.is_byte_array() {
                    let file = NpyFile::create(self.file(name, ""), Primitive::U8.numpy_descr(), d)?;
                    self.leaves.push(Leaf { nav: nav.clone(), file });
                } else {
                    nav.push(Step::Fixed);
                    self.node(elem, name, nav, &d, ragged)?;
                    nav.pop();
                }
            }
            Node::Array { elem, len: ArrayLen::Sequence { .. } } => {
                if ragged.is_some() || !dims.is_empty() {
                    self.skipped.push(name.to_string());
                    return Ok(());
                }
                let mut offsets = NpyFile::create(self.file(name, ".offsets"), "<i8", Vec::new())?;
                offsets.append(&0i64.to_le_bytes(), 1)?;
                self.lists.push(ListOut { nav: nav.clone(), file: offsets, next: 0 });
                let id = Some(self.lists.len() - 1);
                if node.is_byte_array() {
                    let file = NpyFile::create(self.file(name, ""), Primitive::U8.numpy_descr(), Vec::new())?;
                    self.leaves.push(Leaf { nav: nav.clone(), file });
                } else {
                    nav.push(Step::List);
                    self.node(elem, name, nav, &[], id)?;
                    nav.pop();
                }
            }
        }
        Ok(())
    }
}

impl NpyTable {
    /// Creates the folder `dir` and every file (empty).
    pub fn create(dir: &Path, meta: &StreamMeta) -> Result<NpyTable> {
        std::fs::create_dir_all(dir).map_err(io_err("create folder", dir))?;
        let times = [
            NpyFile::create(dir.join("receive_time_ns.npy"), "<u8", Vec::new())?,
            NpyFile::create(dir.join("publish_time_ns.npy"), "<u8", Vec::new())?,
            NpyFile::create(dir.join("sequence.npy"), "<u8", Vec::new())?,
        ];
        let mut w = Walk { dir, leaves: Vec::new(), lists: Vec::new(), skipped: Vec::new() };
        for (i, (f, n)) in meta.plan.root.fields.iter().enumerate() {
            w.node(n, f, &mut vec![Step::Field(i)], &[], None)?;
        }
        Ok(NpyTable { times, leaves: w.leaves, lists: w.lists, skipped: w.skipped, buf: Vec::new() })
    }
}

fn follow<'a>(root: &'a Column, nav: &[Step]) -> Option<&'a Column> {
    nav.iter().try_fold(root, |c, step| match (step, c) {
        (Step::Field(i), Column::Struct(ch)) => ch.get(*i),
        (Step::Fixed, Column::FixedList { child, .. }) | (Step::List, Column::List { child, .. }) => Some(&**child),
        _ => None,
    })
}

/// Appends the values of a primitive column as little-endian bytes; the number of scalars.
fn le_bytes(col: &Column, out: &mut Vec<u8>) -> usize {
    macro_rules! put {
        ($v:expr) => {{
            out.reserve($v.len() * std::mem::size_of_val(&$v.first().copied().unwrap_or_default()));
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
            $v.len()
        }};
    }
    match col {
        Column::Bool(v) => {
            out.extend(v.iter().map(|b| u8::from(*b)));
            v.len()
        }
        Column::U8(v) => {
            out.extend_from_slice(v);
            v.len()
        }
        Column::I8(v) => put!(v),
        Column::I16(v) => put!(v),
        Column::U16(v) => put!(v),
        Column::I32(v) => put!(v),
        Column::U32(v) => put!(v),
        Column::I64(v) => put!(v),
        Column::U64(v) => put!(v),
        Column::F32(v) => put!(v),
        Column::F64(v) => put!(v),
        Column::Bytes(v) => {
            out.extend_from_slice(&v.data);
            v.data.len()
        }
        Column::FixedBytes { data, .. } => {
            out.extend_from_slice(data);
            data.len()
        }
        _ => 0,
    }
}

impl TableWriter for NpyTable {
    fn write(&mut self, batch: Batch) -> Result<()> {
        let rows = batch.rows() as u64;
        for (file, v) in self.times.iter_mut().zip([&batch.receive_time_ns, &batch.publish_time_ns, &batch.sequence]) {
            self.buf.clear();
            for x in v {
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            file.append(&self.buf, rows)?;
        }
        for list in &mut self.lists {
            let offsets: &[i32] = match follow(&batch.data, &list.nav) {
                Some(Column::List { offsets, .. }) => offsets,
                Some(Column::Bytes(v)) => &v.offsets,
                _ => &[],
            };
            self.buf.clear();
            let base = list.next;
            for o in offsets.iter().skip(1) {
                list.next = base + i64::from(*o);
                self.buf.extend_from_slice(&list.next.to_le_bytes());
            }
            list.file.append(&self.buf, offsets.len().saturating_sub(1) as u64)?;
        }
        for leaf in &mut self.leaves {
            let Some(col) = follow(&batch.data, &leaf.nav) else { continue };
            self.buf.clear();
            let n = le_bytes(col, &mut self.buf) as u64;
            let inner: u64 = leaf.file.inner.iter().map(|d| *d as u64).product::<u64>().max(1);
            leaf.file.append(&self.buf, n / inner)?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>> {
        let NpyTable { times, leaves, lists, .. } = *self;
        let mut files = Vec::new();
        for f in times {
            files.push(f.finish()?);
        }
        for l in lists {
            files.push(l.file.finish()?);
        }
        for l in leaves {
            files.push(l.file.finish()?);
        }
        Ok(files)
    }
}

/// Fields of a plan that the `.npy` export leaves out (strings, sequences in fixed arrays or
/// in other sequences).
pub fn skipped_fields(plan: &crate::plan::Plan) -> Vec<String> {
    fn walk(node: &Node, name: &str, in_array: bool, out: &mut Vec<String>) {
        match node {
            Node::Prim(_) => {}
            Node::String | Node::WString => out.push(name.to_string()),
            Node::Struct(s) => s.fields.iter().for_each(|(f, n)| walk(n, &format!("{name}.{f}"), in_array, out)),
            Node::Array { len: ArrayLen::Fixed(_), .. } if node.is_byte_array() => {}
            Node::Array { elem, len: ArrayLen::Fixed(_) } => walk(elem, name, true, out),
            Node::Array { .. } if in_array => out.push(name.to_string()),
            Node::Array { .. } if node.is_byte_array() => {}
            Node::Array { elem, .. } => walk(elem, name, true, out),
        }
    }
    let mut out = Vec::new();
    for (f, n) in &plan.root.fields {
        walk(n, f, false, &mut out);
    }
    out
}
