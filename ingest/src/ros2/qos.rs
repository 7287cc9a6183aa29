//! QoS of a recording subscription, adapted to the topic's publishers the way rosbag2 does:
//! reliable only if every publisher is reliable (a reliable reader does not match a best-effort
//! writer), transient local only if every publisher is (so late-joining history is received),
//! keep-last with a depth of at least the largest publisher depth and [`MIN_DEPTH`].

use r2r::qos::{DurabilityPolicy, ReliabilityPolicy};
use r2r::QosProfile;

/// The smallest history depth of a recording subscription: the ingest thread drains the
/// middleware queue once per wait, so it absorbs bursts between two takes.
pub const MIN_DEPTH: usize = 500;

/// The subscription QoS for a topic whose publishers offer `offered`.
pub fn adapt(offered: &[QosProfile]) -> QosProfile {
    let all = |f: &dyn Fn(&QosProfile) -> bool| !offered.is_empty() && offered.iter().all(f);
    let reliable = all(&|q| matches!(q.reliability, ReliabilityPolicy::Reliable));
    let transient = all(&|q| matches!(q.durability, DurabilityPolicy::TransientLocal));
    let depth = offered.iter().map(|q| q.depth).max().unwrap_or(0).max(MIN_DEPTH);
    let q = QosProfile::default().keep_last(depth);
    let q = if reliable { q.reliable() } else { q.best_effort() };
    if transient {
        q.transient_local()
    } else {
        q.volatile()
    }
}

/// Whether two subscription profiles have the same reliability and durability (the policies
/// that decide which publishers match and whether history is received).
pub fn same_policies(a: &QosProfile, b: &QosProfile) -> bool {
    let rel = |q: &QosProfile| matches!(q.reliability, ReliabilityPolicy::Reliable);
    let tl = |q: &QosProfile| matches!(q.durability, DurabilityPolicy::TransientLocal);
    rel(a) == rel(b) && tl(a) == tl(b)
}

/// The QoS text announced with a topic (same keys as the synthetic source's).
pub fn describe(q: &QosProfile) -> String {
    let reliability = match q.reliability {
        ReliabilityPolicy::Reliable => "reliable",
        ReliabilityPolicy::BestEffort => "best_effort",
        _ => "other",
    };
    let durability = match q.durability {
        DurabilityPolicy::TransientLocal => "transient_local",
        DurabilityPolicy::Volatile => "volatile",
        _ => "other",
    };
    format!("reliability: {reliability}\ndurability: {durability}\nhistory: keep_last\ndepth: {}\n", q.depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapts_to_publishers() {
        let rel_tl = QosProfile::default().reliable().transient_local().keep_last(5);
        let be = QosProfile::default().best_effort().volatile().keep_last(2000);
        let q = adapt(std::slice::from_ref(&rel_tl));
        assert!(matches!(q.reliability, ReliabilityPolicy::Reliable));
        assert!(matches!(q.durability, DurabilityPolicy::TransientLocal));
        assert_eq!(q.depth, MIN_DEPTH);
        let q = adapt(&[rel_tl.clone(), be]);
        assert!(matches!(q.reliability, ReliabilityPolicy::BestEffort));
        assert!(matches!(q.durability, DurabilityPolicy::Volatile));
        assert_eq!(q.depth, 2000);
        assert!(describe(&q).contains("reliability: best_effort\n"));
        // A best-effort publisher joining a reliable transient-local topic needs a new reader.
        let before = adapt(std::slice::from_ref(&rel_tl));
        assert!(!same_policies(&before, &q));
        assert!(same_policies(&before, &adapt(&[rel_tl.clone(), rel_tl.keep_last(100)])));
    }
}
