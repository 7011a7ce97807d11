//! The buildspec engine: it runs a buildspec the way CodeBuild does. It never prints: it emits
//! [`events::Event`]s to a [`events::Reporter`], and writes each build's record and log to the
//! state directory.
//!
//! - [`build`]: one build, from DOWNLOAD_SOURCE to FINALIZING: the phase loop, the shell session
//!   and its runtime folders, the output, the upload;
//! - [`env`]: the build's environment, its parameters and secrets, and masking;
//! - [`store`]: where builds are kept: the records, the state directory, the cache, the queries;
//! - [`dispatch`]: many builds at once, in worker processes or on Slurm;
//! - [`outputs`]: what a build leaves: artifact sets, test reports, S3 uploads;
//! - [`events`] and [`outcome`]: what the engine reports, and how a build ends;
//! - `platform`: everything below std (the only `unsafe` code).

#![warn(missing_docs)]

pub mod build;
pub mod dispatch;
pub mod env;
pub mod events;
pub mod outcome;
pub mod outputs;
mod platform;
pub mod request;
pub mod stop;
pub mod store;

pub use build::shell::SessionKind;
pub use build::{BuildOptions, BuildOutcome, RunError, run};
pub use events::{Event, Phase, Reporter, Status};
pub use stop::Stop;
