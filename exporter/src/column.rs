//! Columnar batches decoded straight from CDR: one [`Column`] tree per topic mirrors its plan,
//! and each message appends one row, with no per-message tree of dynamic values. A message that
//! fails half-way is rolled back ([`Column::truncate`]), so a batch only ever holds whole rows.
//! Every output format reads these buffers: Arrow arrays are built from them without copying.

use crate::cdr::{CdrError, Cursor};
use crate::msgdef::Primitive;
use crate::plan::{ArrayLen, Node, Plan, StructNode};
use crate::value::Value;

/// Variable-length bytes with 32-bit offsets (Arrow `Utf8` / `Binary` layout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VarBytes {
    /// `len + 1` offsets into `data`, starting at 0.
    pub offsets: Vec<i32>,
    /// The bytes of every value, back to back.
    pub data: Vec<u8>,
}

impl VarBytes {
    fn new() -> VarBytes {
        VarBytes { offsets: vec![0], data: Vec::new() }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        let (Some(&a), Some(&b)) = (self.offsets.get(i), self.offsets.get(i + 1)) else { return &[] };
        self.data.get(a as usize..b as usize).unwrap_or(&[])
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), CdrError> {
        self.data.extend_from_slice(bytes);
        let end = i32::try_from(self.data.len()).map_err(|_| CdrError::ColumnOverflow)?;
        self.offsets.push(end);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.offsets.truncate(len + 1);
            let end = self.offsets.last().copied().unwrap_or(0) as usize;
            self.data.truncate(end);
        }
    }
}

/// Decoded values of one node for every row of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// `bool`.
    Bool(Vec<bool>),
    /// `int8`.
    I8(Vec<i8>),
    /// `uint8`, `byte`, `char`.
    U8(Vec<u8>),
    /// `int16`.
    I16(Vec<i16>),
    /// `uint16`.
    U16(Vec<u16>),
    /// `int32`.
    I32(Vec<i32>),
    /// `uint32`.
    U32(Vec<u32>),
    /// `int64`.
    I64(Vec<i64>),
    /// `uint64`.
    U64(Vec<u64>),
    /// `float32`.
    F32(Vec<f32>),
    /// `float64`.
    F64(Vec<f64>),
    /// `string` and `wstring` (as UTF-8).
    Str {
        /// The strings.
        values: VarBytes,
        /// `wstring` (UTF-16 on the wire).
        wide: bool,
    },
    /// A byte sequence `uint8[]` / `uint8[<=N]`.
    Bytes(VarBytes),
    /// A fixed byte array `uint8[N]`.
    FixedBytes {
        /// N.
        width: usize,
        /// `rows * N` bytes.
        data: Vec<u8>,
    },
    /// A nested message: one column per field (never empty).
    Struct(Vec<Column>),
    /// A sequence of anything but bytes.
    List {
        /// `rows + 1` offsets into the child.
        offsets: Vec<i32>,
        /// The elements of every row.
        child: Box<Column>,
        /// Smallest wire size of one element.
        min_elem: usize,
    },
    /// A fixed array of anything but bytes.
    FixedList {
        /// Elements per row.
        width: usize,
        /// `rows * width` elements.
        child: Box<Column>,
        /// Smallest wire size of one element.
        min_elem: usize,
    },
}

impl Column {
    /// An empty column for `node`.
    pub fn for_node(node: &Node) -> Column {
        match node {
            Node::Prim(p) => match p {
                Primitive::Bool => Column::Bool(Vec::new()),
                Primitive::I8 => Column::I8(Vec::new()),
                Primitive::U8 => Column::U8(Vec::new()),
                Primitive::I16 => Column::I16(Vec::new()),
                Primitive::U16 => Column::U16(Vec::new()),
                Primitive::I32 => Column::I32(Vec::new()),
                Primitive::U32 => Column::U32(Vec::new()),
                Primitive::I64 => Column::I64(Vec::new()),
                Primitive::U64 => Column::U64(Vec::new()),
                Primitive::F32 => Column::F32(Vec::new()),
                Primitive::F64 => Column::F64(Vec::new()),
            },
            Node::String => Column::Str { values: VarBytes::new(), wide: false },
            Node::WString => Column::Str { values: VarBytes::new(), wide: true },
            Node::Struct(s) => Column::for_struct(s),
            Node::Array { len, .. } if node.is_byte_array() => match len {
                ArrayLen::Fixed(n) => Column::FixedBytes { width: *n, data: Vec::new() },
                ArrayLen::Sequence { .. } => Column::Bytes(VarBytes::new()),
            },
            Node::Array { elem, len } => {
                let child = Box::new(Column::for_node(elem));
                let min_elem = elem.min_wire_size();
                match len {
                    ArrayLen::Fixed(n) => Column::FixedList { width: *n, child, min_elem },
                    ArrayLen::Sequence { .. } => Column::List { offsets: vec![0], child, min_elem },
                }
            }
        }
    }

    /// An empty column for a message type.
    pub fn for_struct(s: &StructNode) -> Column {
        Column::Struct(s.fields.iter().map(|(_, n)| Column::for_node(n)).collect())
    }

    /// Number of values (rows at the top level).
    pub fn len(&self) -> usize {
        match self {
            Column::Bool(v) => v.len(),
            Column::I8(v) => v.len(),
            Column::U8(v) => v.len(),
            Column::I16(v) => v.len(),
            Column::U16(v) => v.len(),
            Column::I32(v) => v.len(),
            Column::U32(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::U64(v) => v.len(),
            Column::F32(v) => v.len(),
            Column::F64(v) => v.len(),
            Column::Str { values, .. } | Column::Bytes(values) => values.len(),
            Column::FixedBytes { width, data } => data.len().checked_div(*width).unwrap_or(0),
            Column::Struct(c) => c.first().map_or(0, Column::len),
            Column::List { offsets, .. } => offsets.len().saturating_sub(1),
            Column::FixedList { width, child, .. } => child.len().checked_div(*width).unwrap_or(0),
        }
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes held (to bound a batch's memory).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Column::Bool(v) => v.len(),
            Column::I8(v) => v.len(),
            Column::U8(v) => v.len(),
            Column::I16(v) => v.len() * 2,
            Column::U16(v) => v.len() * 2,
            Column::I32(v) => v.len() * 4,
            Column::U32(v) => v.len() * 4,
            Column::I64(v) => v.len() * 8,
            Column::U64(v) => v.len() * 8,
            Column::F32(v) => v.len() * 4,
            Column::F64(v) => v.len() * 8,
            Column::Str { values, .. } | Column::Bytes(values) => values.data.len() + values.offsets.len() * 4,
            Column::FixedBytes { data, .. } => data.len(),
            Column::Struct(c) => c.iter().map(Column::heap_bytes).sum(),
            Column::List { offsets, child, .. } => offsets.len() * 4 + child.heap_bytes(),
            Column::FixedList { child, .. } => child.heap_bytes(),
        }
    }

    /// Keeps the first `len` values (rolls back a partly decoded row).
    pub fn truncate(&mut self, len: usize) {
        match self {
            Column::Bool(v) => v.truncate(len),
            Column::I8(v) => v.truncate(len),
            Column::U8(v) => v.truncate(len),
            Column::I16(v) => v.truncate(len),
            Column::U16(v) => v.truncate(len),
            Column::I32(v) => v.truncate(len),
            Column::U32(v) => v.truncate(len),
            Column::I64(v) => v.truncate(len),
            Column::U64(v) => v.truncate(len),
            Column::F32(v) => v.truncate(len),
            Column::F64(v) => v.truncate(len),
            Column::Str { values, .. } | Column::Bytes(values) => values.truncate(len),
            Column::FixedBytes { width, data } => data.truncate(len.saturating_mul(*width)),
            Column::Struct(c) => c.iter_mut().for_each(|c| c.truncate(len)),
            Column::List { offsets, child, .. } => {
                if len + 1 < offsets.len() {
                    offsets.truncate(len + 1);
                }
                let end = offsets.last().copied().unwrap_or(0) as usize;
                child.truncate(end);
            }
            Column::FixedList { width, child, .. } => child.truncate(len.saturating_mul(*width)),
        }
    }

    /// Takes the values out, leaving an empty column of the same shape.
    pub fn take(&mut self) -> Column {
        let mut empty = self.empty_like();
        std::mem::swap(self, &mut empty);
        empty
    }

    /// Appends `len` values of `src` starting at `start` (a column of the same shape, e.g. the
    /// same plan's column of another batch). Returns false, appending nothing past the mismatch,
    /// if the shapes differ or the range is out of bounds.
    pub fn extend_from(&mut self, src: &Column, start: usize, len: usize) -> bool {
        let Some(end) = start.checked_add(len) else { return false };
        macro_rules! slice {
            ($d:expr, $s:expr) => {{
                match $s.get(start..end) {
                    Some(x) => {
                        $d.extend_from_slice(x);
                        true
                    }
                    None => false,
                }
            }};
        }
        match (self, src) {
            (Column::Bool(d), Column::Bool(s)) => slice!(d, s),
            (Column::I8(d), Column::I8(s)) => slice!(d, s),
            (Column::U8(d), Column::U8(s)) => slice!(d, s),
            (Column::I16(d), Column::I16(s)) => slice!(d, s),
            (Column::U16(d), Column::U16(s)) => slice!(d, s),
            (Column::I32(d), Column::I32(s)) => slice!(d, s),
            (Column::U32(d), Column::U32(s)) => slice!(d, s),
            (Column::I64(d), Column::I64(s)) => slice!(d, s),
            (Column::U64(d), Column::U64(s)) => slice!(d, s),
            (Column::F32(d), Column::F32(s)) => slice!(d, s),
            (Column::F64(d), Column::F64(s)) => slice!(d, s),
            (Column::Str { values: d, .. }, Column::Str { values: s, .. }) | (Column::Bytes(d), Column::Bytes(s)) => {
                if end > s.len() {
                    return false;
                }
                (start..end).all(|i| d.push(s.get(i)).is_ok())
            }
            (Column::FixedBytes { width: dw, data: d }, Column::FixedBytes { width: sw, data: s }) if dw == sw => {
                match s.get(start.saturating_mul(*sw)..end.saturating_mul(*sw)) {
                    Some(x) => {
                        d.extend_from_slice(x);
                        true
                    }
                    None => false,
                }
            }
            (Column::Struct(d), Column::Struct(s)) if d.len() == s.len() => {
                d.iter_mut().zip(s).all(|(d, s)| d.extend_from(s, start, len))
            }
            (
                Column::List { offsets: d_off, child: d_child, .. },
                Column::List { offsets: s_off, child: s_child, .. },
            ) => {
                for row in start..end {
                    let (Some(&a), Some(&b)) = (s_off.get(row), s_off.get(row + 1)) else { return false };
                    let (a, b) = (a as usize, b as usize);
                    if b < a || !d_child.extend_from(s_child, a, b - a) {
                        return false;
                    }
                    let Ok(o) = i32::try_from(d_child.len()) else { return false };
                    d_off.push(o);
                }
                true
            }
            (
                Column::FixedList { width: dw, child: d_child, .. },
                Column::FixedList { width: sw, child: s_child, .. },
            ) if dw == sw => d_child.extend_from(s_child, start.saturating_mul(*sw), len.saturating_mul(*sw)),
            _ => false,
        }
    }

    /// An empty column of the same shape.
    pub fn empty_like(&self) -> Column {
        match self {
            Column::Bool(_) => Column::Bool(Vec::new()),
            Column::I8(_) => Column::I8(Vec::new()),
            Column::U8(_) => Column::U8(Vec::new()),
            Column::I16(_) => Column::I16(Vec::new()),
            Column::U16(_) => Column::U16(Vec::new()),
            Column::I32(_) => Column::I32(Vec::new()),
            Column::U32(_) => Column::U32(Vec::new()),
            Column::I64(_) => Column::I64(Vec::new()),
            Column::U64(_) => Column::U64(Vec::new()),
            Column::F32(_) => Column::F32(Vec::new()),
            Column::F64(_) => Column::F64(Vec::new()),
            Column::Str { wide, .. } => Column::Str { values: VarBytes::new(), wide: *wide },
            Column::Bytes(_) => Column::Bytes(VarBytes::new()),
            Column::FixedBytes { width, .. } => Column::FixedBytes { width: *width, data: Vec::new() },
            Column::Struct(c) => Column::Struct(c.iter().map(Column::empty_like).collect()),
            Column::List { child, min_elem, .. } => {
                Column::List { offsets: vec![0], child: Box::new(child.empty_like()), min_elem: *min_elem }
            }
            Column::FixedList { width, child, min_elem } => {
                Column::FixedList { width: *width, child: Box::new(child.empty_like()), min_elem: *min_elem }
            }
        }
    }

    /// Decodes one value from the cursor and appends it.
    fn decode_one(&mut self, c: &mut Cursor<'_>) -> Result<(), CdrError> {
        macro_rules! one {
            ($v:expr, $t:ty, $n:literal) => {{
                let b = c.prim::<$n>()?;
                $v.push(if c.big_endian() { <$t>::from_be_bytes(b) } else { <$t>::from_le_bytes(b) });
            }};
        }
        match self {
            Column::Bool(v) => v.push(c.prim::<1>()?[0] != 0),
            Column::I8(v) => one!(v, i8, 1),
            Column::U8(v) => v.push(c.prim::<1>()?[0]),
            Column::I16(v) => one!(v, i16, 2),
            Column::U16(v) => one!(v, u16, 2),
            Column::I32(v) => one!(v, i32, 4),
            Column::U32(v) => one!(v, u32, 4),
            Column::I64(v) => one!(v, i64, 8),
            Column::U64(v) => one!(v, u64, 8),
            Column::F32(v) => one!(v, f32, 4),
            Column::F64(v) => one!(v, f64, 8),
            Column::Str { values, wide: false } => {
                let len = c.read_len(1)?;
                let offset = c.position();
                let mut b = c.take(len)?;
                if let [rest @ .., 0] = b {
                    b = rest;
                }
                if std::str::from_utf8(b).is_err() {
                    return Err(CdrError::BadString { offset });
                }
                values.push(b)?;
            }
            Column::Str { values, wide: true } => {
                let len = c.read_len(2)?;
                let offset = c.position();
                let b = c.take(len * 2)?;
                let be = c.big_endian();
                let mut units: Vec<u16> = b
                    .chunks_exact(2)
                    .map(|u| if be { u16::from_be_bytes([u[0], u[1]]) } else { u16::from_le_bytes([u[0], u[1]]) })
                    .collect();
                if units.last() == Some(&0) {
                    units.pop();
                }
                let s = String::from_utf16(&units).map_err(|_| CdrError::BadString { offset })?;
                values.push(s.as_bytes())?;
            }
            Column::Bytes(values) => {
                let len = c.read_len(1)?;
                values.push(c.take(len)?)?;
            }
            Column::FixedBytes { width, data } => data.extend_from_slice(c.take(*width)?),
            Column::Struct(fields) => {
                for f in fields {
                    f.decode_one(c)?;
                }
            }
            Column::List { offsets, child, min_elem } => {
                let n = c.read_len((*min_elem).max(1))?;
                child.decode_many(n, c)?;
                offsets.push(i32::try_from(child.len()).map_err(|_| CdrError::ColumnOverflow)?);
            }
            Column::FixedList { width, child, min_elem } => {
                c.check_fits(*width, *min_elem)?;
                child.decode_many(*width, c)?;
            }
        }
        Ok(())
    }

    /// Decodes `n` consecutive values (bulk copy for primitives).
    fn decode_many(&mut self, n: usize, c: &mut Cursor<'_>) -> Result<(), CdrError> {
        if n == 0 {
            return Ok(());
        }
        macro_rules! bulk {
            ($v:expr, $t:ty, $n:literal) => {{
                c.align($n)?;
                let bytes = c.take(n.checked_mul($n).ok_or(CdrError::Truncated { offset: c.position(), need: n })?)?;
                let be = c.big_endian();
                $v.reserve(n);
                $v.extend(bytes.chunks_exact($n).map(|ch| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(ch);
                    if be {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    }
                }));
            }};
        }
        match self {
            Column::Bool(v) => v.extend(c.take(n)?.iter().map(|b| *b != 0)),
            Column::U8(v) => v.extend_from_slice(c.take(n)?),
            Column::I8(v) => bulk!(v, i8, 1),
            Column::I16(v) => bulk!(v, i16, 2),
            Column::U16(v) => bulk!(v, u16, 2),
            Column::I32(v) => bulk!(v, i32, 4),
            Column::U32(v) => bulk!(v, u32, 4),
            Column::I64(v) => bulk!(v, i64, 8),
            Column::U64(v) => bulk!(v, u64, 8),
            Column::F32(v) => bulk!(v, f32, 4),
            Column::F64(v) => bulk!(v, f64, 8),
            other => {
                for _ in 0..n {
                    other.decode_one(c)?;
                }
            }
        }
        Ok(())
    }

    /// Value `row` as a dynamic [`Value`] (`node` gives the field names).
    pub fn value_at(&self, node: &Node, row: usize) -> Value {
        match (self, node) {
            (Column::Bool(v), _) => Value::Bool(v.get(row).copied().unwrap_or_default()),
            (Column::I8(v), _) => Value::I8(v.get(row).copied().unwrap_or_default()),
            (Column::U8(v), _) => Value::U8(v.get(row).copied().unwrap_or_default()),
            (Column::I16(v), _) => Value::I16(v.get(row).copied().unwrap_or_default()),
            (Column::U16(v), _) => Value::U16(v.get(row).copied().unwrap_or_default()),
            (Column::I32(v), _) => Value::I32(v.get(row).copied().unwrap_or_default()),
            (Column::U32(v), _) => Value::U32(v.get(row).copied().unwrap_or_default()),
            (Column::I64(v), _) => Value::I64(v.get(row).copied().unwrap_or_default()),
            (Column::U64(v), _) => Value::U64(v.get(row).copied().unwrap_or_default()),
            (Column::F32(v), _) => Value::F32(v.get(row).copied().unwrap_or_default()),
            (Column::F64(v), _) => Value::F64(v.get(row).copied().unwrap_or_default()),
            (Column::Str { values, .. }, _) => Value::String(String::from_utf8_lossy(values.get(row)).into_owned()),
            (Column::Bytes(values), _) => Value::Bytes(values.get(row).to_vec()),
            (Column::FixedBytes { width, data }, _) => {
                let start = row.saturating_mul(*width);
                Value::Bytes(data.get(start..start.saturating_add(*width)).unwrap_or(&[]).to_vec())
            }
            (Column::Struct(cols), Node::Struct(s)) => Value::Struct(
                cols.iter().zip(&s.fields).map(|(c, (name, n))| (name.clone(), c.value_at(n, row))).collect(),
            ),
            (Column::List { offsets, child, .. }, Node::Array { elem, .. }) => {
                let (a, b) = (offsets.get(row).copied().unwrap_or(0), offsets.get(row + 1).copied().unwrap_or(0));
                Value::Array((a..b).map(|i| child.value_at(elem, i as usize)).collect())
            }
            (Column::FixedList { width, child, .. }, Node::Array { elem, .. }) => {
                let start = row.saturating_mul(*width);
                Value::Array((start..start + width).map(|i| child.value_at(elem, i)).collect())
            }
            _ => Value::Array(Vec::new()),
        }
    }
}

/// One topic's decoded rows: the message header fields and the message columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Receive time of each row, ns since the epoch.
    pub receive_time_ns: Vec<u64>,
    /// Publish (or header) time of each row, 0 if unknown.
    pub publish_time_ns: Vec<u64>,
    /// Per-topic sequence number of each row.
    pub sequence: Vec<u64>,
    /// The message fields, a [`Column::Struct`] matching the plan's root.
    pub data: Column,
}

impl Batch {
    /// An empty batch for a plan.
    pub fn new(plan: &Plan) -> Batch {
        Batch {
            receive_time_ns: Vec::new(),
            publish_time_ns: Vec::new(),
            sequence: Vec::new(),
            data: Column::for_struct(&plan.root),
        }
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.sequence.len()
    }

    /// Approximate bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.rows() * 24 + self.data.heap_bytes()
    }

    /// Decodes one message (or, for a raw plan, stores its payload) as a new row. On error the
    /// batch is left exactly as it was.
    pub fn push(&mut self, plan: &Plan, times: (u64, u64, u64), payload: &[u8]) -> Result<(), CdrError> {
        let rows = self.rows();
        let res = if plan.raw {
            match &mut self.data {
                Column::Struct(cols) => match cols.first_mut() {
                    Some(Column::Bytes(v)) => v.push(payload),
                    _ => Err(CdrError::ColumnOverflow),
                },
                _ => Err(CdrError::ColumnOverflow),
            }
        } else {
            Cursor::new(payload).and_then(|mut c| self.data.decode_one(&mut c))
        };
        match res {
            Ok(()) => {
                self.receive_time_ns.push(times.0);
                self.publish_time_ns.push(times.1);
                self.sequence.push(times.2);
                Ok(())
            }
            Err(e) => {
                self.data.truncate(rows);
                Err(e)
            }
        }
    }

    /// Appends `len` rows of `src` (a batch of the same plan) starting at row `start`. Returns
    /// false if the shapes differ or the rows are out of range (then the batch may hold a partial
    /// row in its data columns: do not use it further).
    pub fn extend_from(&mut self, src: &Batch, start: usize, len: usize) -> bool {
        let Some(end) = start.checked_add(len).filter(|e| *e <= src.rows()) else { return false };
        if !self.data.extend_from(&src.data, start, len) {
            return false;
        }
        self.receive_time_ns.extend_from_slice(&src.receive_time_ns[start..end]);
        self.publish_time_ns.extend_from_slice(&src.publish_time_ns[start..end]);
        self.sequence.extend_from_slice(&src.sequence[start..end]);
        true
    }

    /// Takes the rows out, leaving an empty batch.
    pub fn take(&mut self) -> Batch {
        Batch {
            receive_time_ns: std::mem::take(&mut self.receive_time_ns),
            publish_time_ns: std::mem::take(&mut self.publish_time_ns),
            sequence: std::mem::take(&mut self.sequence),
            data: self.data.take(),
        }
    }
}

/// Decodes one payload into a [`Value`] (tests, tools; the export path uses [`Batch`]).
pub fn decode_value(plan: &Plan, payload: &[u8]) -> Result<Value, CdrError> {
    let mut b = Batch::new(plan);
    b.push(plan, (0, 0, 0), payload)?;
    Ok(b.data.value_at(&Node::Struct(plan.root.clone()), 0))
}
