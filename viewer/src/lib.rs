//! fleetrec viewer: attaches to a running pipeline through the shared-memory status of every
//! stage and shows it. [`Dashboard`] reads and merges the statuses into a [`Snapshot`]; the
//! Slint window ([`ViewerApp`]), the `--headless --json` output ([`headless`]) and the
//! Prometheus endpoint ([`metrics`]) all render that one snapshot. The viewer sends nothing to
//! the stages but control requests, so it attaches and detaches without disturbing them.

pub mod dashboard;
pub mod diagnostics;
pub mod error;
pub mod export_request;
pub mod format;
pub mod headless;
pub mod metrics;
pub mod snapshot;
#[cfg(feature = "testing")]
pub mod testing;
pub mod ui;

pub use dashboard::Dashboard;
pub use error::{Result, ViewerError};
pub use slint;
pub use snapshot::{ExportSnapshot, RobotSnapshot, Snapshot, StageSnapshot, SyncSnapshot, TopicCounters, TopicRow};
pub use ui::ViewerApp;
