//! Arrow schema of a plan and Arrow arrays from decoded columns (no copy of the value buffers).
//!
//! Types keep the ROS widths: `int8..uint64` -> `Int8..UInt64`, `float32/64` -> `Float32/64`,
//! `bool` -> `Boolean`, `string`/`wstring` -> `Utf8`, `uint8[]`/`byte[]` -> `Binary`, `uint8[N]`
//! -> `FixedSizeBinary(N)`, other `T[]`/`T[<=N]` -> `List<T>`, `T[N]` -> `FixedSizeList<T, N>`,
//! messages -> `Struct`. Nothing is nullable. The table's columns are `receive_time_ns`,
//! `publish_time_ns`, `sequence` (all `UInt64`), then the message's fields.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray, ListArray, PrimitiveArray,
    RecordBatch, StringArray, StructArray, UInt64Array,
};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef};

use crate::column::{Batch, Column, VarBytes};
use crate::msgdef::Primitive;
use crate::plan::{ArrayLen, Node, Plan};

/// Names of the three leading columns.
pub const TIME_COLUMNS: [&str; 3] = ["receive_time_ns", "publish_time_ns", "sequence"];

/// The Arrow type of a node.
pub fn data_type(node: &Node) -> DataType {
    match node {
        Node::Prim(p) => match p {
            Primitive::Bool => DataType::Boolean,
            Primitive::I8 => DataType::Int8,
            Primitive::U8 => DataType::UInt8,
            Primitive::I16 => DataType::Int16,
            Primitive::U16 => DataType::UInt16,
            Primitive::I32 => DataType::Int32,
            Primitive::U32 => DataType::UInt32,
            Primitive::I64 => DataType::Int64,
            Primitive::U64 => DataType::UInt64,
            Primitive::F32 => DataType::Float32,
            Primitive::F64 => DataType::Float64,
        },
        Node::String | Node::WString => DataType::Utf8,
        Node::Struct(s) => DataType::Struct(struct_fields(&s.fields)),
        Node::Array { len, .. } if node.is_byte_array() => match len {
            ArrayLen::Fixed(n) => DataType::FixedSizeBinary(i32::try_from(*n).unwrap_or(i32::MAX)),
            ArrayLen::Sequence { .. } => DataType::Binary,
        },
        Node::Array { elem, len } => {
            let item = Arc::new(Field::new("item", data_type(elem), false));
            match len {
                ArrayLen::Fixed(n) => DataType::FixedSizeList(item, i32::try_from(*n).unwrap_or(i32::MAX)),
                ArrayLen::Sequence { .. } => DataType::List(item),
            }
        }
    }
}

pub(crate) fn struct_fields(fields: &[(String, Node)]) -> Fields {
    fields.iter().map(|(name, n)| Field::new(name, data_type(n), false)).collect()
}

/// The table schema of a topic, with the topic's name, type and definition as metadata.
pub fn schema(plan: &Plan, metadata: HashMap<String, String>) -> SchemaRef {
    let mut fields: Vec<Field> = TIME_COLUMNS.iter().map(|n| Field::new(*n, DataType::UInt64, false)).collect();
    fields.extend(struct_fields(&plan.root.fields).iter().map(|f| f.as_ref().clone()));
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// Moves a batch's rows into a record batch of `schema`.
pub fn record_batch(schema: &SchemaRef, plan: &Plan, batch: Batch) -> Result<RecordBatch, ArrowError> {
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(batch.receive_time_ns)),
        Arc::new(UInt64Array::from(batch.publish_time_ns)),
        Arc::new(UInt64Array::from(batch.sequence)),
    ];
    let Column::Struct(children) = batch.data else {
        return Err(ArrowError::SchemaError("message column is not a struct".into()));
    };
    for (c, (_, node)) in children.into_iter().zip(&plan.root.fields) {
        cols.push(array(c, node)?);
    }
    RecordBatch::try_new(schema.clone(), cols)
}

fn offsets(v: Vec<i32>) -> Result<OffsetBuffer<i32>, ArrowError> {
    if v.is_empty() {
        return Ok(OffsetBuffer::new_empty());
    }
    if v.windows(2).any(|w| w[0] > w[1]) || v.first().is_some_and(|x| *x < 0) {
        return Err(ArrowError::InvalidArgumentError("offsets not monotonic".into()));
    }
    Ok(OffsetBuffer::new(ScalarBuffer::from(v)))
}

fn var_parts(v: VarBytes) -> Result<(OffsetBuffer<i32>, Buffer), ArrowError> {
    Ok((offsets(v.offsets)?, Buffer::from_vec(v.data)))
}

/// Moves a column into an Arrow array of the node's type.
pub fn array(col: Column, node: &Node) -> Result<ArrayRef, ArrowError> {
    macro_rules! prim {
        ($v:expr, $t:ty) => {
            Arc::new(PrimitiveArray::<$t>::new(ScalarBuffer::from($v), None)) as ArrayRef
        };
    }
    use arrow_array::types::*;
    Ok(match (col, node) {
        (Column::Bool(v), _) => Arc::new(BooleanArray::from(v)),
        (Column::I8(v), _) => prim!(v, Int8Type),
        (Column::U8(v), _) => prim!(v, UInt8Type),
        (Column::I16(v), _) => prim!(v, Int16Type),
        (Column::U16(v), _) => prim!(v, UInt16Type),
        (Column::I32(v), _) => prim!(v, Int32Type),
        (Column::U32(v), _) => prim!(v, UInt32Type),
        (Column::I64(v), _) => prim!(v, Int64Type),
        (Column::U64(v), _) => prim!(v, UInt64Type),
        (Column::F32(v), _) => prim!(v, Float32Type),
        (Column::F64(v), _) => prim!(v, Float64Type),
        (Column::Str { values, .. }, _) => {
            let (o, d) = var_parts(values)?;
            Arc::new(StringArray::try_new(o, d, None)?)
        }
        (Column::Bytes(values), _) => {
            let (o, d) = var_parts(values)?;
            Arc::new(BinaryArray::try_new(o, d, None)?)
        }
        (Column::FixedBytes { width, data }, _) => {
            let w = i32::try_from(width).map_err(|e| ArrowError::InvalidArgumentError(e.to_string()))?;
            Arc::new(FixedSizeBinaryArray::try_new(w, Buffer::from_vec(data), None)?)
        }
        (Column::Struct(children), Node::Struct(s)) => {
            let fields = struct_fields(&s.fields);
            let arrays =
                children.into_iter().zip(&s.fields).map(|(c, (_, n))| array(c, n)).collect::<Result<_, _>>()?;
            Arc::new(StructArray::try_new(fields, arrays, None)?)
        }
        (Column::List { offsets: o, child, .. }, Node::Array { elem, .. }) => {
            let item = Arc::new(Field::new("item", data_type(elem), false));
            Arc::new(ListArray::try_new(item, offsets(o)?, array(*child, elem)?, None)?)
        }
        (Column::FixedList { width, child, .. }, Node::Array { elem, .. }) => {
            let item = Arc::new(Field::new("item", data_type(elem), false));
            let w = i32::try_from(width).map_err(|e| ArrowError::InvalidArgumentError(e.to_string()))?;
            Arc::new(FixedSizeListArray::try_new(item, w, array(*child, elem)?, None)?)
        }
        _ => return Err(ArrowError::SchemaError("column does not match its plan".into())),
    })
}
