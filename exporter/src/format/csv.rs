//! CSV: one file per robot and topic (RFC 4180, `\n` line ends, UTF-8). Columns:
//! `receive_time_ns,publish_time_ns,sequence`, then every scalar field with its dotted path
//! (`header.stamp.sec`), and every array or sequence (of any type) as one column holding a JSON
//! array (byte arrays as arrays of numbers, messages as objects). Floats are written in their
//! shortest round-trip form, always with a `.` or exponent (so readers infer a float column); non-finite ones as `NaN`, `inf`, `-inf` (JSON: `NaN`, `Infinity`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{create_file, StreamMeta, TableWriter};
use crate::column::{Batch, Column};
use crate::error::{io_err, Result};
use crate::plan::Node;
use crate::value::write_json;

/// One CSV column of the message.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Dotted name.
    pub name: String,
    /// Indices of the struct fields leading to it.
    pub path: Vec<usize>,
    /// Its plan node.
    pub node: Node,
}

/// The scalar and array leaves of a message, in field order, stopping at arrays.
pub fn leaves(fields: &[(String, Node)], prefix: &str, path: &mut Vec<usize>, out: &mut Vec<Leaf>) {
    for (i, (name, node)) in fields.iter().enumerate() {
        let full = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        path.push(i);
        match node {
            Node::Struct(s) => leaves(&s.fields, &full, path, out),
            _ => out.push(Leaf { name: full, path: path.clone(), node: node.clone() }),
        }
        path.pop();
    }
}

/// The column at a path of struct field indices.
pub fn column_at<'a>(root: &'a Column, path: &[usize]) -> Option<&'a Column> {
    path.iter().try_fold(root, |c, i| match c {
        Column::Struct(children) => children.get(*i),
        _ => None,
    })
}

/// The CSV file of one topic.
pub struct CsvTable {
    path: PathBuf,
    out: BufWriter<File>,
    leaves: Vec<Leaf>,
    line: String,
}

impl CsvTable {
    /// Creates the file and writes the header line.
    pub fn create(path: &Path, meta: &StreamMeta) -> Result<CsvTable> {
        let mut ls = Vec::new();
        leaves(&meta.plan.root.fields, "", &mut Vec::new(), &mut ls);
        let mut out = create_file(path)?;
        let mut header = super::arrow::TIME_COLUMNS.join(",");
        for l in &ls {
            header.push(',');
            push_csv_text(&mut header, &l.name);
        }
        header.push('\n');
        out.write_all(header.as_bytes()).map_err(io_err("write", path))?;
        Ok(CsvTable { path: path.to_path_buf(), out, leaves: ls, line: String::new() })
    }
}

impl TableWriter for CsvTable {
    fn write(&mut self, batch: Batch) -> Result<()> {
        use std::fmt::Write as _;
        let mut json = String::new();
        for row in 0..batch.rows() {
            let line = &mut self.line;
            line.clear();
            let _ =
                write!(line, "{},{},{}", batch.receive_time_ns[row], batch.publish_time_ns[row], batch.sequence[row]);
            for leaf in &self.leaves {
                line.push(',');
                let Some(col) = column_at(&batch.data, &leaf.path) else { continue };
                if !push_scalar(line, col, row) {
                    json.clear();
                    write_json(&col.value_at(&leaf.node, row), &mut json);
                    push_csv_text(line, &json);
                }
            }
            line.push('\n');
            self.out.write_all(line.as_bytes()).map_err(io_err("write", &self.path))?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>> {
        let CsvTable { path, out, .. } = *self;
        let file = out.into_inner().map_err(|e| crate::error::ExportError::Io {
            op: "write",
            path: path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err("fsync", &path))?;
        Ok(vec![path])
    }
}

/// Writes a scalar cell; false if the column is not a scalar.
pub(crate) fn push_scalar(line: &mut String, col: &Column, row: usize) -> bool {
    use std::fmt::Write as _;
    macro_rules! num {
        ($v:expr) => {{
            if let Some(x) = $v.get(row) {
                let _ = write!(line, "{x}");
            }
        }};
    }
    match col {
        Column::Bool(v) => line.push_str(if v.get(row).copied().unwrap_or_default() { "true" } else { "false" }),
        Column::I8(v) => num!(v),
        Column::U8(v) => num!(v),
        Column::I16(v) => num!(v),
        Column::U16(v) => num!(v),
        Column::I32(v) => num!(v),
        Column::U32(v) => num!(v),
        Column::I64(v) => num!(v),
        Column::U64(v) => num!(v),
        Column::F32(v) => push_float(line, v.get(row).map(|x| (f64::from(*x), format!("{x:?}")))),
        Column::F64(v) => push_float(line, v.get(row).map(|x| (*x, format!("{x:?}")))),
        Column::Str { values, .. } => push_csv_text(line, &String::from_utf8_lossy(values.get(row))),
        _ => return false,
    }
    true
}

fn push_float(line: &mut String, v: Option<(f64, String)>) {
    let Some((x, shortest)) = v else { return };
    if x.is_nan() {
        line.push_str("NaN");
    } else if x.is_infinite() {
        line.push_str(if x > 0.0 { "inf" } else { "-inf" });
    } else {
        line.push_str(&shortest);
    }
}

/// Appends a text cell, quoted when it holds a comma, quote, CR or LF (or is empty-looking).
pub fn push_csv_text(line: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        line.push('"');
        line.push_str(&s.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(s);
    }
}
