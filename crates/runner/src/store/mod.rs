//! Where builds are kept: the records (of builds and of batches) and the state directory that
//! holds them, the cache, the queries over the records, and the builds whose runner is gone.

pub mod abandoned;
pub mod batch;
pub mod cache;
mod error;
mod files;
pub mod query;
mod record;
mod state_dir;

pub use error::StateError;
pub use files::{create_private_dir, create_spread_dir, private_file, write_atomic, write_private};
pub(crate) use files::{overwrite_in_place, read_regular};
pub use record::{
    ArtifactRecord, BuildRecord, FreshRecord, Invocation, LogTruncated, PhaseRecord, Placement,
    ReportRecord, Verdict,
};
pub use state_dir::{StateDir, default_state_dir};
