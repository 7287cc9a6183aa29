//! Output file names from robot and topic names, which come from the recording and so are
//! untrusted: every name is reduced to `[A-Za-z0-9_-]` components, so no name can leave the
//! output directory, start with a dot, or hold a separator; collisions get the topic id.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

/// Longest file stem produced (bytes); longer names are cut and get a hash suffix.
const MAX_STEM: usize = 96;

/// One path component made of `[A-Za-z0-9_-]` only, never empty.
pub fn sanitize_component(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if s.is_empty() {
        "_".to_string()
    } else {
        s
    }
}

/// A dotted field path with every component sanitised (`a.b.c`).
pub fn sanitize_dotted(name: &str) -> String {
    name.split('.').map(sanitize_component).collect::<Vec<_>>().join(".")
}

/// The file stem of a topic: its name without the leading `/<robot>/`, components joined by
/// `__` (`/robot1/camera/image_raw` -> `camera__image_raw`).
pub fn topic_stem(robot: &str, topic: &str) -> String {
    let prefix = format!("/{robot}/");
    let rel = if !robot.is_empty() && topic.starts_with(&prefix) { &topic[prefix.len()..] } else { topic };
    let parts: Vec<String> = rel.split('/').filter(|p| !p.is_empty()).map(sanitize_component).collect();
    let mut stem = if parts.is_empty() { "_".to_string() } else { parts.join("__") };
    if stem.len() > MAX_STEM {
        let h = fnv1a(topic.as_bytes());
        stem.truncate(MAX_STEM);
        stem.push_str(&format!("-{h:08x}"));
    }
    stem
}

fn fnv1a(b: &[u8]) -> u32 {
    // FNV-1a: a stable short hash, no dependency needed.
    b.iter().fold(0x811c_9dc5u32, |h, x| (h ^ u32::from(*x)).wrapping_mul(0x0100_0193))
}

/// Hands out unique relative paths (`<robot>/<stem><suffix>`).
#[derive(Debug, Default)]
pub struct NameAllocator {
    taken: HashSet<PathBuf>,
}

impl NameAllocator {
    /// A unique relative path for a topic; `id` disambiguates a collision.
    pub fn allocate(&mut self, robot: &str, topic: &str, suffix: &str, id: u32) -> PathBuf {
        let dir = sanitize_component(robot);
        let stem = topic_stem(robot, topic);
        let mut rel = Path::new(&dir).join(format!("{stem}{suffix}"));
        let mut n = 0u32;
        while self.taken.contains(&rel) {
            n += 1;
            rel = Path::new(&dir)
                .join(format!("{stem}-{id:08x}{}{suffix}", if n > 1 { format!("-{n}") } else { String::new() }));
        }
        self.taken.insert(rel.clone());
        rel
    }
}

/// Whether a relative path stays inside its base (only normal components).
pub fn is_contained(rel: &Path) -> bool {
    rel.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_inside() {
        let mut a = NameAllocator::default();
        for (robot, topic) in [
            ("r", "/../../etc/x"),
            ("..", "/../x"),
            ("r/../..", "/r/../../x"),
            ("", ""),
            ("r", "/"),
            ("r", "/a\0b/\\c:d"),
            ("r", &"/x".repeat(200)),
        ] {
            let rel = a.allocate(robot, topic, ".parquet", 7);
            assert!(is_contained(&rel), "{rel:?}");
            assert_eq!(rel.components().count(), 2, "{rel:?}");
            let s = rel.to_string_lossy();
            assert!(!s.starts_with('.') && !s.contains("/."), "{s}");
            assert!(s.len() < 200, "{s}");
        }
        assert_eq!(topic_stem("robot1", "/robot1/camera/image_raw"), "camera__image_raw");
        assert_eq!(topic_stem("robot1", "/robot1/imu"), "imu");
        assert_eq!(topic_stem("r", "/../../etc/x"), "________etc__x");
    }

    #[test]
    fn collisions_get_distinct_names() {
        let mut a = NameAllocator::default();
        let x = a.allocate("r", "/r/a.b", ".csv", 1);
        let y = a.allocate("r", "/r/a_b", ".csv", 2);
        let z = a.allocate("r", "/r/a?b", ".csv", 2);
        assert_ne!(x, y);
        assert_ne!(y, z);
        assert_ne!(x, z);
    }
}
