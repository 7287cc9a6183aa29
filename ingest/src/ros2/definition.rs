//! Full message definitions in rosbag2's `ros2msg` schema form: the `.msg` text of a type,
//! then every nested type (depth first, each once) after a line of 80 `=` and `MSG: pkg/Type`.
//! Texts are read from `<prefix>/share/<pkg>/msg/<Type>.msg` for each prefix of
//! `AMENT_PREFIX_PATH`, the way rosbag2's MCAP writer resolves them.

use std::collections::HashSet;
use std::path::PathBuf;

/// Why a definition could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The type name is not `pkg/msg/Type` (or `pkg/Type`).
    #[error("`{0}` is not a message type name (pkg/msg/Type)")]
    BadTypeName(String),
    /// No prefix has the `.msg` file.
    #[error("no {package}/msg/{name}.msg under AMENT_PREFIX_PATH ({searched})")]
    NotFound {
        /// Package.
        package: String,
        /// Type.
        name: String,
        /// The prefixes searched.
        searched: String,
    },
}

const PRIMITIVES: &[&str] = &[
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
    "uint64", "string", "wstring",
];

/// Splits `pkg/msg/Type` or `pkg/Type` into (package, type).
pub fn split_type_name(type_name: &str) -> Option<(&str, &str)> {
    let mut parts = type_name.split('/');
    let (pkg, mid, name) = (parts.next()?, parts.next()?, parts.next());
    let (pkg, name) = match name {
        Some(name) if mid == "msg" => (pkg, name),
        Some(_) => return None,
        None => (pkg, mid),
    };
    (parts.next().is_none() && !pkg.is_empty() && !name.is_empty()).then_some((pkg, name))
}

/// Resolves `.msg` files through a list of install prefixes.
#[derive(Debug, Clone)]
pub struct DefinitionResolver {
    prefixes: Vec<PathBuf>,
}

impl DefinitionResolver {
    /// Uses the prefixes of `AMENT_PREFIX_PATH`.
    pub fn from_env() -> DefinitionResolver {
        let var = std::env::var_os("AMENT_PREFIX_PATH").unwrap_or_default();
        DefinitionResolver::new(std::env::split_paths(&var).filter(|p| !p.as_os_str().is_empty()).collect())
    }

    /// Uses the given prefixes, searched in order.
    pub fn new(prefixes: Vec<PathBuf>) -> DefinitionResolver {
        DefinitionResolver { prefixes }
    }

    fn read(&self, package: &str, name: &str) -> Result<String, DefinitionError> {
        for prefix in &self.prefixes {
            let path = prefix.join("share").join(package).join("msg").join(format!("{name}.msg"));
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Ok(text);
            }
        }
        Err(DefinitionError::NotFound {
            package: package.to_string(),
            name: name.to_string(),
            searched: self.prefixes.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
        })
    }

    /// The full `ros2msg` definition of `type_name` (`pkg/msg/Type`).
    pub fn full_definition(&self, type_name: &str) -> Result<String, DefinitionError> {
        let (package, name) =
            split_type_name(type_name).ok_or_else(|| DefinitionError::BadTypeName(type_name.to_string()))?;
        let text = self.read(package, name)?;
        let mut out = text.clone();
        let mut seen = HashSet::new();
        seen.insert(format!("{package}/{name}"));
        self.append_dependencies(package, &text, &mut seen, &mut out)?;
        Ok(out)
    }

    fn append_dependencies(
        &self,
        package: &str,
        text: &str,
        seen: &mut HashSet<String>,
        out: &mut String,
    ) -> Result<(), DefinitionError> {
        for (dep_pkg, dep_name) in field_types(package, text) {
            let key = format!("{dep_pkg}/{dep_name}");
            if !seen.insert(key.clone()) {
                continue;
            }
            let dep_text = self.read(&dep_pkg, &dep_name)?;
            out.push('\n');
            out.push_str(&"=".repeat(80));
            out.push_str("\nMSG: ");
            out.push_str(&key);
            out.push('\n');
            out.push_str(&dep_text);
            self.append_dependencies(&dep_pkg, &dep_text, seen, out)?;
        }
        Ok(())
    }
}

/// The non-primitive field types of a `.msg` text, in order, as (package, type).
fn field_types(package: &str, text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(ty) = line.split_whitespace().next() else { continue };
        // A constant (`int32 X=1`) is always primitive; strip arrays and string bounds.
        let base = ty.split('[').next().unwrap_or(ty);
        let base = base.split("<=").next().unwrap_or(base);
        if base.is_empty() || PRIMITIVES.contains(&base) {
            continue;
        }
        let (p, n) = match split_type_name(base) {
            Some((p, n)) if base.contains('/') => (p.to_string(), n.to_string()),
            _ if base == "Header" => ("std_msgs".to_string(), "Header".to_string()),
            _ => (package.to_string(), base.to_string()),
        };
        out.push((p, n));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &std::path::Path, pkg: &str, name: &str, text: &str) {
        let dir = root.join("share").join(pkg).join("msg");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.msg")), text).unwrap();
    }

    #[test]
    fn splits_type_names() {
        assert_eq!(split_type_name("std_msgs/msg/String"), Some(("std_msgs", "String")));
        assert_eq!(split_type_name("std_msgs/String"), Some(("std_msgs", "String")));
        assert_eq!(split_type_name("std_msgs/srv/X"), None);
        assert_eq!(split_type_name("x"), None);
    }

    #[test]
    fn nested_types_depth_first_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "a", "Top", "# top\nb/Mid m1\nLocal[] l\nb/Mid[<=3] m2\nint32 X=1\nstring<=5 s\n");
        write(root, "a", "Local", "float64 v\n");
        write(root, "b", "Mid", "builtin_interfaces/Time t\n");
        write(root, "builtin_interfaces", "Time", "int32 sec\nuint32 nanosec\n");
        let r = DefinitionResolver::new(vec![root.join("nothing"), root.to_path_buf()]);
        let sep = "=".repeat(80);
        let expected = format!(
            "# top\nb/Mid m1\nLocal[] l\nb/Mid[<=3] m2\nint32 X=1\nstring<=5 s\n\n{sep}\nMSG: b/Mid\nbuiltin_interfaces/Time t\n\n{sep}\nMSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n\n{sep}\nMSG: a/Local\nfloat64 v\n"
        );
        assert_eq!(r.full_definition("a/msg/Top").unwrap(), expected);
        assert!(matches!(r.full_definition("a/msg/Missing"), Err(DefinitionError::NotFound { .. })));
    }

    /// With the ROS 2 venv sourced, the resolved definitions have the structure of the ones
    /// shipped for the synthetic source (rosbag2's output; comments differ between releases).
    #[test]
    fn matches_shipped_definitions_when_ros_is_installed() {
        let skeleton = |def: &str| -> Vec<String> {
            def.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        };
        let r = DefinitionResolver::from_env();
        for ty in ["std_msgs/msg/String", "sensor_msgs/msg/Imu", "geometry_msgs/msg/PoseStamped"] {
            let Ok(def) = r.full_definition(ty) else { continue };
            let shipped = crate::synthetic::definition(ty).unwrap();
            assert_eq!(skeleton(&def), skeleton(shipped), "{ty}");
        }
    }
}
