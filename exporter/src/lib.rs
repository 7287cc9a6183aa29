//! fleetrec exporter stage: not built yet; its issue fills this crate.
