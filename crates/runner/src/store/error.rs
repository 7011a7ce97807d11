//! What can go wrong with the state directory.

use std::io;
use std::path::Path;

/// A problem with the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// An I/O error on a path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A record that is not valid JSON.
    #[error("{path} is not a build record: {source}")]
    Corrupt {
        /// The path.
        path: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// No build matches the query.
    #[error("no build matches `{0}`")]
    NotFound(String),
    /// Several builds match a prefix.
    #[error("`{query}` matches several builds: {}", matches.join(", "))]
    Ambiguous {
        /// What was asked.
        query: String,
        /// What it matches.
        matches: Vec<String>,
    },
}

impl StateError {
    /// Whether the disk (or the user's quota) is full.
    pub(crate) fn is_out_of_space(&self) -> bool {
        matches!(
            self,
            StateError::Io { source, .. } if out_of_space(source)
        )
    }
}

pub(super) fn out_of_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

pub(super) fn io_error<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(io::Error) -> StateError + 'p {
    move |source| StateError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}
