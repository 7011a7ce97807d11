//! How a build ends, in each form it is told: its status, CodeBuild's phase context codes, and
//! the exit code `buildspec` ends with ([docs/exit-codes.md]). The one table of each: the engine,
//! the dispatchers and the CLI all read from here.
//!
//! [docs/exit-codes.md]: https://example.invalid/buildspec/docs/exit-codes.md

use serde::Serialize;

/// The status of a phase or a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Still running (what a record says after the runner was killed).
    InProgress,
    /// Done, and well.
    Succeeded,
    /// A command failed, or the buildspec is invalid.
    Failed,
    /// The runner itself failed.
    Fault,
    /// The build ran past `--timeout`.
    TimedOut,
    /// The build was stopped by a signal.
    Stopped,
}

impl Status {
    /// The name CodeBuild uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "IN_PROGRESS",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::Fault => "FAULT",
            Status::TimedOut => "TIMED_OUT",
            Status::Stopped => "STOPPED",
        }
    }
}

/// Why a phase ended as it did: the code of CodeBuild's phase context (`Phase context status
/// code: COMMAND_EXECUTION_ERROR Message: …`), and the codes of ours beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextCode {
    /// A command exited non-zero.
    CommandExecutionError,
    /// The buildspec cannot be read, or does not check.
    YamlFileError,
    /// What the build was given cannot be used: a missing parameter, an artifact set that
    /// matches nothing, a user that does not exist.
    ClientError,
    /// The build ran past its time limit.
    BuildTimedOut,
    /// A stop request (a signal) ended the build.
    BuildStopped,
    /// The runner ended without finishing the build (ours).
    RunnerError,
    /// Slurm stopped answering about the build's job (ours).
    SlurmUnreachable,
    /// The build's Slurm job failed (ours).
    SlurmJobFailed,
    /// The node of the build's Slurm job failed (ours).
    SlurmNodeFail,
    /// The build's Slurm job ran out of memory (ours).
    SlurmOutOfMemory,
    /// The node of the build's Slurm job did not boot (ours).
    SlurmBootFail,
}

impl ContextCode {
    /// The code as the log and the record write it.
    pub fn as_str(self) -> &'static str {
        match self {
            ContextCode::CommandExecutionError => "COMMAND_EXECUTION_ERROR",
            ContextCode::YamlFileError => "YAML_FILE_ERROR",
            ContextCode::ClientError => "CLIENT_ERROR",
            ContextCode::BuildTimedOut => "BUILD_TIMED_OUT",
            ContextCode::BuildStopped => "BUILD_STOPPED",
            ContextCode::RunnerError => "RUNNER_ERROR",
            ContextCode::SlurmUnreachable => "SLURM_UNREACHABLE",
            ContextCode::SlurmJobFailed => "SLURM_JOB_FAILED",
            ContextCode::SlurmNodeFail => "SLURM_NODE_FAIL",
            ContextCode::SlurmOutOfMemory => "SLURM_OUT_OF_MEMORY",
            ContextCode::SlurmBootFail => "SLURM_BOOT_FAIL",
        }
    }
}

/// Why a phase ended as it did: CodeBuild's phase context. The code is kept as text, so that a
/// record of any version reads back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Context {
    /// `COMMAND_EXECUTION_ERROR`, `YAML_FILE_ERROR`, `CLIENT_ERROR`, `BUILD_TIMED_OUT`...
    pub status_code: String,
    /// CodeBuild's message.
    pub message: String,
}

impl Context {
    /// A context of `code` that says `message`.
    pub fn new(code: ContextCode, message: impl Into<String>) -> Context {
        Context {
            status_code: code.as_str().to_owned(),
            message: message.into(),
        }
    }

    /// The context of a phase that a stop request (`signal`) ended.
    pub fn stopped_by(signal: i32) -> Context {
        Context::new(
            ContextCode::BuildStopped,
            format!("Build stopped by {}", signal_name(signal)),
        )
    }
}

/// `SIGINT`, `SIGTERM`... for messages.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned())
}

/// The exit codes `buildspec` ends with (docs/exit-codes.md).
pub mod exit {
    use super::Status;

    /// The build succeeded (every build, of several; every file checked is valid).
    pub const SUCCEEDED: i32 = 0;
    /// A phase failed (of several builds: one without `ignore-failure`).
    pub const FAILED: i32 = 1;
    /// The buildspec is invalid, or the command line is wrong.
    pub const INVALID: i32 = 2;
    /// The runner itself failed.
    pub const FAULT: i32 = 3;
    /// The build timed out.
    pub const TIMED_OUT: i32 = 124;

    /// The exit code of a process ended by `signal`, as shells report it: 128 + the signal.
    pub fn of_signal(signal: i32) -> i32 {
        128 + signal
    }

    /// The exit code of a build that ended with `status`; `stopped_by` is the signal of the
    /// stop request that ended it (SIGTERM when not known), `invalid` whether its buildspec did
    /// not check.
    pub fn of(status: Status, stopped_by: Option<i32>, invalid: bool) -> i32 {
        match status {
            Status::Succeeded => SUCCEEDED,
            Status::Failed if invalid => INVALID,
            Status::Failed => FAILED,
            Status::TimedOut => TIMED_OUT,
            Status::Stopped => of_signal(stopped_by.unwrap_or(libc::SIGTERM)),
            Status::Fault | Status::InProgress => FAULT,
        }
    }

    /// An exit code as a process's (0 to 255; anything else is a fault).
    pub fn byte(code: i32) -> u8 {
        u8::try_from(code).unwrap_or(FAULT as u8)
    }
}
