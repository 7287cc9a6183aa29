//! Parser of ROS 2 message definitions in the `ros2msg` encoding: the `.msg` text of the topic's
//! type followed by the text of every dependency, each after a line of 80 `=` and a
//! `MSG: pkg/Type` line (what rosbag2 and MCAP store, and what a segment's topic record holds).
//!
//! Understood: comments, constants (skipped: they are not on the wire), default values (kept as
//! text, not needed to decode), the built-in types (`bool byte char int8..uint64 float32 float64
//! string wstring`, and ROS 1's `time`/`duration`), bounded strings `string<=N`, fixed arrays
//! `T[N]`, bounded sequences `T[<=N]`, unbounded sequences `T[]`, and type references
//! `pkg/Type`, `pkg/msg/Type`, a bare `Type` of the same package, and `Header`
//! (`std_msgs/msg/Header`). Type names are normalised to `pkg/msg/Type`.

use std::collections::HashMap;

/// A primitive ROS type, with its CDR size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Primitive {
    /// `bool`: one byte, 0 or 1.
    Bool,
    /// `int8`.
    I8,
    /// `uint8`, `byte` and `char` (all one unsigned byte in ROS 2).
    U8,
    /// `int16`.
    I16,
    /// `uint16`.
    U16,
    /// `int32`.
    I32,
    /// `uint32`.
    U32,
    /// `int64`.
    I64,
    /// `uint64`.
    U64,
    /// `float32`.
    F32,
    /// `float64`.
    F64,
}

impl Primitive {
    /// Size on the wire, which is also its CDR alignment.
    pub fn size(self) -> usize {
        match self {
            Primitive::Bool | Primitive::I8 | Primitive::U8 => 1,
            Primitive::I16 | Primitive::U16 => 2,
            Primitive::I32 | Primitive::U32 | Primitive::F32 => 4,
            Primitive::I64 | Primitive::U64 | Primitive::F64 => 8,
        }
    }

    /// Whether the value is a floating-point number.
    pub fn is_float(self) -> bool {
        matches!(self, Primitive::F32 | Primitive::F64)
    }

    fn from_name(name: &str) -> Option<Primitive> {
        Some(match name {
            "bool" => Primitive::Bool,
            "int8" => Primitive::I8,
            "uint8" | "byte" | "char" => Primitive::U8,
            "int16" => Primitive::I16,
            "uint16" => Primitive::U16,
            "int32" => Primitive::I32,
            "uint32" => Primitive::U32,
            "int64" => Primitive::I64,
            "uint64" => Primitive::U64,
            "float32" => Primitive::F32,
            "float64" => Primitive::F64,
            _ => return None,
        })
    }

    /// The numpy `dtype.str` of this primitive (little endian).
    pub fn numpy_descr(self) -> &'static str {
        match self {
            Primitive::Bool => "|b1",
            Primitive::I8 => "|i1",
            Primitive::U8 => "|u1",
            Primitive::I16 => "<i2",
            Primitive::U16 => "<u2",
            Primitive::I32 => "<i4",
            Primitive::U32 => "<u4",
            Primitive::I64 => "<i8",
            Primitive::U64 => "<u8",
            Primitive::F32 => "<f4",
            Primitive::F64 => "<f8",
        }
    }
}

/// The element type of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseType {
    /// A primitive.
    Primitive(Primitive),
    /// `string` or `string<=N`.
    String {
        /// The bound, if any (not enforced when decoding).
        bound: Option<u32>,
    },
    /// `wstring` or `wstring<=N` (UTF-16 code units on the wire).
    WString {
        /// The bound, if any.
        bound: Option<u32>,
    },
    /// ROS 1 `time` / `duration`: `{int32 sec, uint32 nanosec}` inline.
    Time,
    /// Another message type, normalised to `pkg/msg/Type`.
    Message(String),
}

/// How many elements a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayKind {
    /// A single value.
    Single,
    /// `T[N]`: exactly N elements, no length prefix.
    Fixed(u32),
    /// `T[<=N]`: a length-prefixed sequence of at most N elements.
    Bounded(u32),
    /// `T[]`: a length-prefixed sequence.
    Unbounded,
}

/// One field of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    /// Field name.
    pub name: String,
    /// Element type.
    pub base: BaseType,
    /// Array kind.
    pub array: ArrayKind,
    /// Default value as written in the definition, if any.
    pub default: Option<String>,
}

/// One message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgDef {
    /// `pkg/msg/Type`.
    pub name: String,
    /// Fields in wire order (constants excluded).
    pub fields: Vec<FieldDef>,
}

/// Every type of a definition text, and which one is the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definitions {
    /// The topic's type, `pkg/msg/Type`.
    pub root: String,
    /// Every type found, by normalised name.
    pub types: HashMap<String, MsgDef>,
}

/// Why a definition text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The type name is not `pkg/Type` or `pkg/msg/Type`.
    #[error("bad type name `{0}` (expected pkg/msg/Type)")]
    BadTypeName(String),
    /// A line does not parse.
    #[error("line {line} of the definition of {type_name}: {reason}: `{text}`")]
    BadLine {
        /// Type whose block holds the line.
        type_name: String,
        /// 1-based line number in the whole text.
        line: usize,
        /// The line.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A dependency block has no `MSG:` line.
    #[error("dependency block at line {line} has no `MSG: pkg/Type` line")]
    MissingMsgLine {
        /// 1-based line of the separator before the block.
        line: usize,
    },
}

/// Normalises `pkg/Type` or `pkg/msg/Type` to `pkg/msg/Type`.
pub fn normalize_type_name(name: &str) -> Result<String, DefinitionError> {
    let parts: Vec<&str> = name.trim().split('/').collect();
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match parts.as_slice() {
        [pkg, ty] if ok(pkg) && ok(ty) => Ok(format!("{pkg}/msg/{ty}")),
        [pkg, kind, ty] if ok(pkg) && ok(kind) && ok(ty) => Ok(format!("{pkg}/{kind}/{ty}")),
        _ => Err(DefinitionError::BadTypeName(name.to_string())),
    }
}

fn package_of(type_name: &str) -> &str {
    type_name.split('/').next().unwrap_or("")
}

fn is_separator(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 3 && t.bytes().all(|b| b == b'=')
}

/// Parses a full `ros2msg` definition of `root_type`.
pub fn parse_definitions(root_type: &str, text: &str) -> Result<Definitions, DefinitionError> {
    let root = normalize_type_name(root_type)?;
    let mut types = HashMap::new();
    let mut current = root.clone();
    let mut fields = Vec::new();
    let mut expect_msg_line: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        if is_separator(raw) {
            types.insert(current.clone(), MsgDef { name: current.clone(), fields: std::mem::take(&mut fields) });
            expect_msg_line = Some(line_no);
            continue;
        }
        let content = strip_comment(raw).trim();
        if content.is_empty() {
            continue;
        }
        if expect_msg_line.is_some() {
            let Some(name) = content.strip_prefix("MSG:") else {
                return Err(DefinitionError::MissingMsgLine { line: expect_msg_line.unwrap_or(line_no) });
            };
            current = normalize_type_name(name)?;
            expect_msg_line = None;
            continue;
        }
        if let Some(f) = parse_field_line(content, package_of(&current)).map_err(|reason| DefinitionError::BadLine {
            type_name: current.clone(),
            line: line_no,
            text: raw.to_string(),
            reason,
        })? {
            fields.push(f);
        }
    }
    if let Some(line) = expect_msg_line {
        return Err(DefinitionError::MissingMsgLine { line });
    }
    // The first block wins if a type appears twice (rosbag2 never repeats one).
    types.entry(current.clone()).or_insert(MsgDef { name: current, fields });
    Ok(Definitions { root, types })
}

/// Removes a `#` comment that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') => return &line[..i],
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    line
}

/// Parses one non-empty, comment-free line; `Ok(None)` for a constant.
fn parse_field_line(line: &str, package: &str) -> Result<Option<FieldDef>, &'static str> {
    let (type_tok, rest) = line.split_once(char::is_whitespace).ok_or("expected `type name`")?;
    let rest = rest.trim_start();
    let name_end = rest.find(|c: char| c.is_whitespace() || c == '=').unwrap_or(rest.len());
    let (name, after) = rest.split_at(name_end);
    if name.is_empty() {
        return Err("missing field name");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("bad field name");
    }
    let after = after.trim();
    if after.starts_with('=') {
        return Ok(None); // a constant
    }
    let (base_tok, array) = split_array(type_tok)?;
    let base = parse_base(base_tok, package)?;
    let default = (!after.is_empty()).then(|| after.to_string());
    Ok(Some(FieldDef { name: name.to_string(), base, array, default }))
}

fn split_array(tok: &str) -> Result<(&str, ArrayKind), &'static str> {
    let Some(open) = tok.find('[') else {
        return Ok((tok, ArrayKind::Single));
    };
    let inner = tok[open + 1..].strip_suffix(']').ok_or("unterminated `[`")?;
    let base = &tok[..open];
    let kind = if inner.is_empty() {
        ArrayKind::Unbounded
    } else if let Some(n) = inner.strip_prefix("<=") {
        ArrayKind::Bounded(n.trim().parse().map_err(|_| "bad sequence bound")?)
    } else {
        ArrayKind::Fixed(inner.trim().parse().map_err(|_| "bad array size")?)
    };
    Ok((base, kind))
}

fn parse_base(tok: &str, package: &str) -> Result<BaseType, &'static str> {
    if let Some(p) = Primitive::from_name(tok) {
        return Ok(BaseType::Primitive(p));
    }
    let bound = |s: &str| -> Result<Option<u32>, &'static str> {
        match s {
            "" => Ok(None),
            b => b.strip_prefix("<=").and_then(|n| n.trim().parse().ok()).map(Some).ok_or("bad string bound"),
        }
    };
    if let Some(b) = tok.strip_prefix("wstring") {
        return Ok(BaseType::WString { bound: bound(b)? });
    }
    if let Some(b) = tok.strip_prefix("string") {
        if b.is_empty() || b.starts_with("<=") {
            return Ok(BaseType::String { bound: bound(b)? });
        }
    }
    match tok {
        "time" | "duration" => return Ok(BaseType::Time),
        "Header" => return Ok(BaseType::Message("std_msgs/msg/Header".into())),
        _ => {}
    }
    if tok.contains('/') {
        return normalize_type_name(tok).map(BaseType::Message).map_err(|_| "bad type name");
    }
    if tok.is_empty() || !tok.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("bad type name");
    }
    Ok(BaseType::Message(format!("{package}/msg/{tok}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_constants_defaults_and_arrays() {
        let text = "# comment\nint32 FOO=3\nstring BAR = \"x#y\"\nfloat64 x 0 # default\nuint8[] data\n\
                    float64[9] cov\nstring<=10 s\nint16[<=4] small\nHeader header\nPoint p\ngeometry_msgs/Pose q\n\
                    time t\nstring<=5[<=3] names\n";
        let d = parse_definitions("geometry_msgs/Test", text).unwrap();
        assert_eq!(d.root, "geometry_msgs/msg/Test");
        let f = &d.types["geometry_msgs/msg/Test"].fields;
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["x", "data", "cov", "s", "small", "header", "p", "q", "t", "names"]);
        assert_eq!(f[0].default.as_deref(), Some("0"));
        assert_eq!(f[1].array, ArrayKind::Unbounded);
        assert_eq!(f[2].array, ArrayKind::Fixed(9));
        assert_eq!(f[3].base, BaseType::String { bound: Some(10) });
        assert_eq!(f[4].array, ArrayKind::Bounded(4));
        assert_eq!(f[5].base, BaseType::Message("std_msgs/msg/Header".into()));
        assert_eq!(f[6].base, BaseType::Message("geometry_msgs/msg/Point".into()));
        assert_eq!(f[7].base, BaseType::Message("geometry_msgs/msg/Pose".into()));
        assert_eq!(f[8].base, BaseType::Time);
        assert_eq!((f[9].base.clone(), f[9].array), (BaseType::String { bound: Some(5) }, ArrayKind::Bounded(3)));
    }

    #[test]
    fn dependency_blocks() {
        let text = format!("std_msgs/Header header\n{}\nMSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n{}\nMSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n", "=".repeat(80), "=".repeat(80));
        let d = parse_definitions("a/msg/B", &text).unwrap();
        assert_eq!(d.types.len(), 3);
        assert_eq!(d.types["builtin_interfaces/msg/Time"].fields.len(), 2);
        assert_eq!(
            d.types["std_msgs/msg/Header"].fields[0].base,
            BaseType::Message("builtin_interfaces/msg/Time".into())
        );
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(parse_definitions("a/B", "int32").is_err());
        assert!(parse_definitions("a/B", "int32[x] a").is_err());
        assert!(parse_definitions("a/B", "int32 9a").is_err());
        assert!(parse_definitions("a/B", &format!("int32 a\n{}\nint32 b\n", "=".repeat(80))).is_err());
        assert!(parse_definitions("nope", "int32 a").is_err());
    }
}
