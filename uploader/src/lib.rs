//! fleetrec uploader stage: not built yet; its issue fills this crate.
