//! The CLI's errors and their one mapping to exit codes.

use runner::dispatch::builds::BuildsError;
use runner::store::StateError;

use crate::exit_codes;

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A buildspec could not be read.
    #[error(transparent)]
    Read(#[from] buildspec::ReadError),
    /// `--env` or `--env-file` is malformed.
    #[error(transparent)]
    Env(#[from] runner::env::EnvError),
    /// A path to search does not exist.
    #[error("{path}: no such file or directory")]
    Missing { path: String },
    /// A directory could not be searched.
    #[error("cannot search {path}: {reason}")]
    Walk { path: String, reason: String },
    /// An `--exclude` glob is malformed.
    #[error("invalid --exclude glob `{glob}`: {reason}")]
    Exclude { glob: String, reason: String },
    /// The buildspec has errors (already printed).
    #[error("{path} is not a valid buildspec")]
    Invalid { path: String },
    /// The build could not be recorded.
    #[error(transparent)]
    Run(#[from] runner::RunError),
    /// The state directory is unusable.
    #[error(transparent)]
    State(#[from] StateError),
    /// What a build is asked with cannot be used.
    #[error(transparent)]
    Request(#[from] runner::request::RequestError),
    /// A --parameters or --secrets file cannot be used.
    #[error(transparent)]
    Providers(#[from] runner::env::secrets::ProviderError),
    /// The record (--record-file) or the exported variables (--exported-variables) could not
    /// be written.
    #[error("cannot write {what} to {path}: {source}")]
    WriteFile {
        /// What was written.
        what: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file the command line names cannot be read.
    #[error("cannot read {what} from {path}: {source}")]
    ReadFile {
        /// What was read.
        what: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The command line asks for something that cannot be done as asked.
    #[error("{0}")]
    Usage(String),
    /// Signal handlers could not be installed.
    #[error("cannot handle signals: {0}")]
    Signals(#[source] std::io::Error),
    /// No state directory could be chosen.
    #[error("no state directory: give --state-dir, or set HOME or XDG_STATE_HOME")]
    NoStateDir,
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
    /// A `report` query that cannot be answered as asked.
    #[error("{0}")]
    Query(String),
    /// `buildspec batch` of a file without a `batch:` section.
    #[error("{path} has no `batch:` section: run it with `buildspec run`")]
    NoBatch {
        /// The file.
        path: String,
    },
    /// `--only` names no build of the batch.
    #[error("the batch has no build `{id}`; its builds are: {}", known.join(", "))]
    UnknownBuild {
        /// What was asked.
        id: String,
        /// The batch's identifiers.
        known: Vec<String>,
    },
    /// Many builds could not be started.
    #[error(transparent)]
    Builds(#[from] runner::dispatch::builds::BuildsError),
    /// `--artifacts s3://...` with a wrong URL or incomplete AWS settings.
    #[error("--artifacts: {0}")]
    S3(#[from] runner::outputs::s3::S3Error),
}

/// A state directory's error: the user's when it names a build that is not there, or several.
fn state_code(e: &StateError) -> u8 {
    match e {
        StateError::NotFound(_) | StateError::Ambiguous { .. } => exit_codes::USAGE,
        _ => exit_codes::FAULT,
    }
}

impl CliError {
    /// The exit code this error ends the process with.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Read(_)
            | CliError::Providers(_)
            | CliError::Env(_)
            | CliError::Missing { .. }
            | CliError::Exclude { .. }
            | CliError::S3(_)
            | CliError::NoBatch { .. }
            | CliError::Query(_)
            | CliError::UnknownBuild { .. }
            | CliError::ReadFile { .. }
            | CliError::Usage(_)
            | CliError::Request(_)
            | CliError::Invalid { .. } => exit_codes::USAGE,
            CliError::Builds(e) => match e {
                BuildsError::NoSource(_) | BuildsError::Resume(_) | BuildsError::Request(_) => {
                    exit_codes::USAGE
                }
                BuildsError::State(e) => state_code(e),
                BuildsError::Executor(_) | BuildsError::Folder { .. } => exit_codes::FAULT,
            },
            CliError::State(e) => state_code(e),
            CliError::NoStateDir => exit_codes::USAGE,
            CliError::Walk { .. }
            | CliError::Output(_)
            | CliError::Run(_)
            | CliError::Signals(_)
            | CliError::WriteFile { .. } => exit_codes::FAULT,
        }
    }

    /// Prints the error and its causes to stderr.
    pub(crate) fn report(&self) {
        eprintln!("error: {self}");
        let mut source = std::error::Error::source(self);
        let message = self.to_string();
        while let Some(cause) = source {
            // Many messages already end with their cause; it is not said twice.
            let text = cause.to_string();
            if !message.contains(&text) {
                eprintln!("  caused by: {text}");
            }
            source = cause.source();
        }
    }
}
