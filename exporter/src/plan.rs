//! A message definition compiled once into a decoding plan: a tree of nodes with every type
//! reference resolved, empty messages given ROS 2's placeholder field, and the smallest wire size
//! of every node precomputed so hostile lengths are rejected before anything is allocated.

use std::collections::HashMap;
use std::sync::Arc;

use crate::msgdef::{parse_definitions, ArrayKind, BaseType, DefinitionError, Definitions, Primitive};

/// Field that rosidl adds to a message without fields (it is on the wire).
pub const EMPTY_STRUCT_FIELD: &str = "structure_needs_at_least_one_member";

/// Deepest nesting of message types accepted (a cycle or a hostile definition stops here).
const MAX_DEPTH: usize = 64;

/// A node of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A primitive.
    Prim(Primitive),
    /// `string` (bounded or not).
    String,
    /// `wstring` (bounded or not).
    WString,
    /// A nested message.
    Struct(Arc<StructNode>),
    /// An array or sequence.
    Array {
        /// Element node.
        elem: Box<Node>,
        /// Fixed length, or length-prefixed.
        len: ArrayLen,
    },
}

/// Length of an array node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayLen {
    /// `T[N]`.
    Fixed(usize),
    /// `T[]` or `T[<=N]` (the bound is not enforced when decoding).
    Sequence {
        /// The declared bound.
        bound: Option<u32>,
    },
}

/// A message type: named fields in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructNode {
    /// `pkg/msg/Type`.
    pub type_name: String,
    /// Fields in wire order (never empty: see [`EMPTY_STRUCT_FIELD`]).
    pub fields: Vec<(String, Node)>,
}

impl Node {
    /// Fewest bytes one value of this node takes on the wire (ignoring alignment).
    pub fn min_wire_size(&self) -> usize {
        match self {
            Node::Prim(p) => p.size(),
            Node::String | Node::WString => 4,
            Node::Struct(s) => s.fields.iter().fold(0usize, |a, (_, n)| a.saturating_add(n.min_wire_size())),
            Node::Array { elem, len: ArrayLen::Fixed(n) } => elem.min_wire_size().saturating_mul(*n),
            Node::Array { len: ArrayLen::Sequence { .. }, .. } => 4,
        }
    }

    /// Whether this is an array of bytes (`uint8`, `byte`, `char`), exported as binary.
    pub fn is_byte_array(&self) -> bool {
        matches!(self, Node::Array { elem, .. } if **elem == Node::Prim(Primitive::U8))
    }
}

/// A compiled topic type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The root message.
    pub root: Arc<StructNode>,
    /// The payload is not decoded: the plan is a single `cdr` bytes field holding it.
    pub raw: bool,
}

/// Why a definition cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The text does not parse.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// A referenced type is not in the definition text.
    #[error("type {missing} (used by {used_by}) is not in the definition")]
    MissingType {
        /// The missing type.
        missing: String,
        /// Where it is referenced.
        used_by: String,
    },
    /// Types nest deeper than allowed, or refer to themselves.
    #[error("message types nest deeper than {MAX_DEPTH} levels at {0} (recursive definition?)")]
    TooDeep(String),
}

/// Name of the single field of a raw plan.
pub const RAW_FIELD: &str = "cdr";

impl Plan {
    /// Parses and compiles the definition of `type_name`.
    pub fn compile(type_name: &str, definition: &str) -> Result<Plan, PlanError> {
        let defs = parse_definitions(type_name, definition)?;
        Plan::from_definitions(&defs)
    }

    /// Compiles parsed definitions.
    pub fn from_definitions(defs: &Definitions) -> Result<Plan, PlanError> {
        let mut memo = HashMap::new();
        let root = compile_struct(defs, &defs.root, "(topic)", &mut memo, 0)?;
        Ok(Plan { root, raw: false })
    }

    /// The plan of a topic exported undecoded: one `cdr` field with the payload bytes.
    pub fn raw(type_name: &str) -> Plan {
        let node = Node::Array { elem: Box::new(Node::Prim(Primitive::U8)), len: ArrayLen::Sequence { bound: None } };
        Plan {
            root: Arc::new(StructNode { type_name: type_name.to_string(), fields: vec![(RAW_FIELD.into(), node)] }),
            raw: true,
        }
    }
}

fn compile_struct(
    defs: &Definitions,
    name: &str,
    used_by: &str,
    memo: &mut HashMap<String, Arc<StructNode>>,
    depth: usize,
) -> Result<Arc<StructNode>, PlanError> {
    if let Some(s) = memo.get(name) {
        return Ok(s.clone());
    }
    if depth > MAX_DEPTH {
        return Err(PlanError::TooDeep(name.to_string()));
    }
    let builtin_time = name == "builtin_interfaces/msg/Time" || name == "builtin_interfaces/msg/Duration";
    if builtin_time && !defs.types.contains_key(name) {
        return Ok(time_struct(name));
    }
    let def = defs
        .types
        .get(name)
        .ok_or_else(|| PlanError::MissingType { missing: name.to_string(), used_by: used_by.to_string() })?;
    let mut fields = Vec::with_capacity(def.fields.len().max(1));
    for f in &def.fields {
        let elem = match &f.base {
            BaseType::Primitive(p) => Node::Prim(*p),
            BaseType::String { .. } => Node::String,
            BaseType::WString { .. } => Node::WString,
            BaseType::Time => Node::Struct(time_struct("builtin_interfaces/msg/Time")),
            BaseType::Message(m) => Node::Struct(compile_struct(defs, m, name, memo, depth + 1)?),
        };
        let node = match f.array {
            ArrayKind::Single => elem,
            ArrayKind::Fixed(n) => Node::Array { elem: Box::new(elem), len: ArrayLen::Fixed(n as usize) },
            ArrayKind::Bounded(b) => Node::Array { elem: Box::new(elem), len: ArrayLen::Sequence { bound: Some(b) } },
            ArrayKind::Unbounded => Node::Array { elem: Box::new(elem), len: ArrayLen::Sequence { bound: None } },
        };
        fields.push((f.name.clone(), node));
    }
    if fields.is_empty() {
        fields.push((EMPTY_STRUCT_FIELD.to_string(), Node::Prim(Primitive::U8)));
    }
    let s = Arc::new(StructNode { type_name: name.to_string(), fields });
    memo.insert(name.to_string(), s.clone());
    Ok(s)
}

fn time_struct(name: &str) -> Arc<StructNode> {
    Arc::new(StructNode {
        type_name: name.to_string(),
        fields: vec![("sec".into(), Node::Prim(Primitive::I32)), ("nanosec".into(), Node::Prim(Primitive::U32))],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_recursive_types_are_errors() {
        assert!(matches!(Plan::compile("a/B", "C c"), Err(PlanError::MissingType { .. })));
        let sep = "=".repeat(80);
        let rec = format!("C c\n{sep}\nMSG: a/C\nB b\n");
        assert!(matches!(Plan::compile("a/B", &rec), Err(PlanError::TooDeep(_))));
    }

    #[test]
    fn empty_message_gets_placeholder_and_time_is_builtin() {
        let p = Plan::compile("std_msgs/Empty", "# nothing\n").unwrap();
        assert_eq!(p.root.fields[0].0, EMPTY_STRUCT_FIELD);
        let p = Plan::compile("a/B", "builtin_interfaces/Time t\ntime u\n").unwrap();
        assert_eq!(p.root.fields.len(), 2);
        assert_eq!(p.root.min_wire_size_for_test(), 16);
    }

    impl StructNode {
        fn min_wire_size_for_test(&self) -> usize {
            Node::Struct(Arc::new(self.clone())).min_wire_size()
        }
    }
}
