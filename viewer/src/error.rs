//! The viewer's errors.

use std::net::SocketAddr;

use shared::plane::PlaneError;

/// Why the viewer could not attach, serve or show.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    /// The shared-memory plane could not be opened.
    #[error(transparent)]
    Plane(#[from] PlaneError),
    /// The metrics endpoint could not listen.
    #[error("metrics endpoint {addr}: {source}")]
    MetricsBind {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("starting thread `{name}`: {source}")]
    Thread {
        /// The thread's name.
        name: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// Writing a snapshot failed (stdout closed).
    #[error("writing a snapshot")]
    Output(#[source] std::io::Error),
    /// The UI toolkit failed.
    #[error("user interface: {0}")]
    Ui(String),
}

/// The viewer's result type.
pub type Result<T, E = ViewerError> = std::result::Result<T, E>;
