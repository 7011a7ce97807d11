//! The buildspec engine: it runs a buildspec the way CodeBuild does. It never prints: it emits
//! [`events::Event`]s to a [`events::Reporter`], and writes each build's record and log to the
//! state directory.

#![warn(missing_docs)]

pub mod abandoned;
pub mod artifacts;
pub mod build;
pub mod cache;
pub mod env;
pub mod events;
pub mod many;
pub mod mask;
pub mod outcome;
pub mod output;
mod platform;
mod process;
pub mod query;
pub mod record;
pub mod reports;
mod runtime;
pub mod s3;
pub mod secrets;
pub mod session;
pub mod slurm;
pub mod state;
pub mod stop;
pub mod workers;

pub use build::{BuildOptions, BuildOutcome, RunError, run};
pub use events::{Event, Phase, Reporter, Status};
pub use session::SessionKind;
pub use stop::Stop;
