//! What the engine reports while a build runs. The engine never prints: it hands each event to a
//! [`Reporter`], and writes the same events to the build's log in CodeBuild's format.

use std::borrow::Cow;
use std::io::{self, Write};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The phases of a build, as CodeBuild names them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Waiting for a scheduler to start the build: recorded only for a build that never left
    /// the queue (a Slurm job cancelled while pending).
    Queued,
    /// Reading and checking the buildspec, resolving the environment.
    DownloadSource,
    /// `phases.install`.
    Install,
    /// `phases.pre_build`.
    PreBuild,
    /// `phases.build`.
    Build,
    /// `phases.post_build`.
    PostBuild,
    /// Collecting artifacts and reports.
    UploadArtifacts,
    /// Ending the build's processes and writing the record.
    Finalizing,
}

impl Phase {
    /// The name CodeBuild logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "QUEUED",
            Phase::DownloadSource => "DOWNLOAD_SOURCE",
            Phase::Install => "INSTALL",
            Phase::PreBuild => "PRE_BUILD",
            Phase::Build => "BUILD",
            Phase::PostBuild => "POST_BUILD",
            Phase::UploadArtifacts => "UPLOAD_ARTIFACTS",
            Phase::Finalizing => "FINALIZING",
        }
    }
}

impl From<buildspec::PhaseName> for Phase {
    fn from(name: buildspec::PhaseName) -> Self {
        match name {
            buildspec::PhaseName::Install => Phase::Install,
            buildspec::PhaseName::PreBuild => Phase::PreBuild,
            buildspec::PhaseName::Build => Phase::Build,
            buildspec::PhaseName::PostBuild => Phase::PostBuild,
        }
    }
}

pub use crate::outcome::{Context, Status};

/// One thing that happened. It borrows what it carries where it happens, and owns it where it
/// was read back (`Event<'static>`, from a worker's channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// The build has a record and is about to read its buildspec.
    BuildStarted {
        /// `project:uuid`.
        id: Cow<'a, str>,
        /// The project's build counter.
        number: u64,
        /// The project.
        project: Cow<'a, str>,
        /// The buildspec file.
        buildspec: Cow<'a, str>,
        /// The source directory.
        source: Cow<'a, str>,
        /// Where the record is.
        record_path: Cow<'a, str>,
        /// Where the log is.
        log_path: Cow<'a, str>,
    },
    /// A line of the agent's own log (`[Container] ... Processing environment variables`).
    Message {
        /// The text.
        text: Cow<'a, str>,
    },
    /// A phase begins.
    PhaseStarted {
        /// The phase.
        phase: Phase,
        /// 1 for the first run, 2 and up for RETRY attempts.
        attempt: u32,
    },
    /// A command begins.
    CommandStarted {
        /// Its phase.
        phase: Phase,
        /// The command, as written (masked).
        command: Cow<'a, str>,
        /// Its line in the buildspec.
        line: u32,
        /// Whether it is a `finally` command.
        finally: bool,
    },
    /// A line the build's processes wrote (stdout and stderr, in order).
    Output {
        /// The line, without its newline.
        #[serde(serialize_with = "lossy", deserialize_with = "text_bytes")]
        line: Cow<'a, [u8]>,
    },
    /// A command ended.
    CommandFinished {
        /// Its phase.
        phase: Phase,
        /// The command, as written (masked).
        command: Cow<'a, str>,
        /// Its exit status (128 + n for a signal).
        exit_code: i32,
        /// How long it ran, in milliseconds.
        #[serde(serialize_with = "millis", deserialize_with = "from_millis")]
        duration: Duration,
    },
    /// A phase ended.
    PhaseFinished {
        /// The phase.
        phase: Phase,
        /// How it ended.
        status: Status,
        /// Why, when it did not succeed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<Cow<'a, Context>>,
        /// How long it ran, in milliseconds.
        #[serde(serialize_with = "millis", deserialize_with = "from_millis")]
        duration: Duration,
    },
    /// The build ended; its record is complete.
    BuildFinished {
        /// How it ended.
        status: Status,
        /// The exit code the CLI ends with.
        exit_code: i32,
        /// How long it ran, in milliseconds.
        #[serde(serialize_with = "millis", deserialize_with = "from_millis")]
        duration: Duration,
    },
}

impl Event<'_> {
    /// The event with every secret in what it carries masked; borrowed where there was none.
    pub fn masked<'e>(&'e self, masker: &crate::env::mask::Masker) -> Event<'e> {
        self.map(|t| masker.text(t), |b| masker.bytes(b))
    }

    /// The same event, borrowing what this one holds.
    pub fn borrowed(&self) -> Event<'_> {
        self.map(Cow::Borrowed, Cow::Borrowed)
    }

    /// The event with `text` applied to each of its texts and `bytes` to its output line.
    fn map<'e>(
        &'e self,
        text: impl Fn(&'e str) -> Cow<'e, str>,
        bytes: impl Fn(&'e [u8]) -> Cow<'e, [u8]>,
    ) -> Event<'e> {
        match self {
            Event::BuildStarted {
                id,
                number,
                project,
                buildspec,
                source,
                record_path,
                log_path,
            } => Event::BuildStarted {
                id: text(id),
                number: *number,
                project: text(project),
                buildspec: text(buildspec),
                source: text(source),
                record_path: text(record_path),
                log_path: text(log_path),
            },
            Event::Message { text: t } => Event::Message { text: text(t) },
            Event::PhaseStarted { phase, attempt } => Event::PhaseStarted {
                phase: *phase,
                attempt: *attempt,
            },
            Event::CommandStarted {
                phase,
                command,
                line,
                finally,
            } => Event::CommandStarted {
                phase: *phase,
                command: text(command),
                line: *line,
                finally: *finally,
            },
            Event::Output { line } => Event::Output { line: bytes(line) },
            Event::CommandFinished {
                phase,
                command,
                exit_code,
                duration,
            } => Event::CommandFinished {
                phase: *phase,
                command: text(command),
                exit_code: *exit_code,
                duration: *duration,
            },
            Event::PhaseFinished {
                phase,
                status,
                context,
                duration,
            } => Event::PhaseFinished {
                phase: *phase,
                status: *status,
                context: context.as_deref().map(|c| match text(&c.message) {
                    Cow::Borrowed(_) => Cow::Borrowed(c),
                    Cow::Owned(message) => Cow::Owned(Context {
                        status_code: c.status_code.clone(),
                        message,
                    }),
                }),
                duration: *duration,
            },
            Event::BuildFinished {
                status,
                exit_code,
                duration,
            } => Event::BuildFinished {
                status: *status,
                exit_code: *exit_code,
                duration: *duration,
            },
        }
    }
}

fn lossy<S: Serializer>(line: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(line))
}

fn text_bytes<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, [u8]>, D::Error> {
    Ok(Cow::Owned(String::deserialize(d)?.into_bytes()))
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Ok(Duration::from_millis(u64::deserialize(d)?))
}

/// Receives events as they happen. `flush` is called before the engine waits, so that a
/// buffering reporter shows everything so far.
pub trait Reporter {
    /// One event, with the time it happened.
    fn report(&mut self, time: Timestamp, event: &Event<'_>);
    /// Nothing more is coming for a while.
    fn flush(&mut self) {}
}

/// A reporter that drops everything (for tests and embedding).
#[derive(Debug, Default)]
pub struct Discard;

impl Reporter for Discard {
    fn report(&mut self, _: Timestamp, _: &Event<'_>) {}
}

/// The time as CodeBuild's agent logs it: `2026/01/28 20:48:56.460102`, UTC.
pub fn log_time(time: Timestamp) -> String {
    let seconds = time.strftime("%Y/%m/%d %H:%M:%S");
    format!("{seconds}.{:06}", time.subsec_microsecond())
}

/// Writes an event as CodeBuild's log shows it: `[Container] <time> <text>` for the agent's lines,
/// command output as it is, and a blank line after each command's output.
pub fn write_log(out: &mut impl Write, time: Timestamp, event: &Event<'_>) -> io::Result<()> {
    let agent = |out: &mut dyn Write, text: &str| -> io::Result<()> {
        writeln!(out, "[Container] {} {text}", log_time(time))
    };
    match event {
        Event::BuildStarted { .. } => Ok(()),
        Event::Message { text } => agent(out, text),
        Event::PhaseStarted { phase, attempt } => match (phase, attempt) {
            (Phase::DownloadSource, _) => agent(out, "Phase is DOWNLOAD_SOURCE"),
            (_, 1) => agent(out, &format!("Entering phase {}", phase.as_str())),
            (_, n) => agent(
                out,
                &format!("Entering phase {} (attempt {n})", phase.as_str()),
            ),
        },
        Event::CommandStarted { command, .. } => agent(out, &format!("Running command {command}")),
        Event::Output { line } => {
            out.write_all(line)?;
            out.write_all(b"\n")
        }
        Event::CommandFinished {
            command, exit_code, ..
        } => {
            out.write_all(b"\n")?;
            if *exit_code != 0 {
                agent(
                    out,
                    &format!("Command did not exit successfully {command} exit status {exit_code}"),
                )?;
            }
            Ok(())
        }
        Event::PhaseFinished {
            phase,
            status,
            context,
            ..
        } => {
            agent(
                out,
                &format!(
                    "Phase complete: {} State: {}",
                    phase.as_str(),
                    status.as_str()
                ),
            )?;
            let (code, message) = context
                .as_deref()
                .map_or(("", ""), |c| (c.status_code.as_str(), c.message.as_str()));
            // CodeBuild writes two spaces after "code:" when there is no code.
            agent(
                out,
                &format!("Phase context status code: {code} Message: {message}"),
            )
        }
        Event::BuildFinished { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_event_hides_every_secret_it_carries_and_copies_nothing_without_one() {
        let masker = crate::env::mask::Masker::new(["hunter22"]);
        let context = Context {
            status_code: "COMMAND_EXECUTION_ERROR".into(),
            message: "Error while executing command: echo hunter22. Reason: exit status 1".into(),
        };
        let events = [
            Event::Message {
                text: "x=hunter22".into(),
            },
            Event::CommandStarted {
                phase: Phase::Build,
                command: "echo hunter22".into(),
                line: 1,
                finally: false,
            },
            Event::Output {
                line: Cow::Borrowed(b"hunter22!"),
            },
            Event::CommandFinished {
                phase: Phase::Build,
                command: "echo hunter22".into(),
                exit_code: 1,
                duration: Duration::ZERO,
            },
            Event::PhaseFinished {
                phase: Phase::Build,
                status: Status::Failed,
                context: Some(Cow::Borrowed(&context)),
                duration: Duration::ZERO,
            },
        ];
        for event in &events {
            let masked = serde_json::to_string(&event.masked(&masker)).expect("json");
            assert!(
                !masked.contains("hunter22") && masked.contains("***"),
                "{masked}"
            );
        }
        let clean = Event::Message {
            text: "nothing secret".into(),
        };
        assert!(matches!(
            clean.masked(&masker),
            Event::Message {
                text: Cow::Borrowed(_)
            }
        ));
    }

    #[test]
    fn log_time_is_codebuilds() {
        let time: Timestamp = "2026-01-28T20:48:56.460102Z".parse().expect("timestamp");
        assert_eq!(log_time(time), "2026/01/28 20:48:56.460102");
    }

    #[test]
    fn log_lines() {
        let time: Timestamp = "2026-01-28T20:48:56Z".parse().expect("timestamp");
        let mut out = Vec::new();
        let context = Context {
            status_code: "COMMAND_EXECUTION_ERROR".into(),
            message: "Error while executing command: false. Reason: exit status 1".into(),
        };
        for event in [
            Event::PhaseStarted {
                phase: Phase::Build,
                attempt: 1,
            },
            Event::CommandStarted {
                phase: Phase::Build,
                command: "false".into(),
                line: 5,
                finally: false,
            },
            Event::CommandFinished {
                phase: Phase::Build,
                command: "false".into(),
                exit_code: 1,
                duration: Duration::ZERO,
            },
            Event::PhaseFinished {
                phase: Phase::Build,
                status: Status::Failed,
                context: Some(Cow::Borrowed(&context)),
                duration: Duration::ZERO,
            },
            Event::PhaseFinished {
                phase: Phase::PostBuild,
                status: Status::Succeeded,
                context: None,
                duration: Duration::ZERO,
            },
        ] {
            write_log(&mut out, time, &event).expect("write");
        }
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "\
[Container] 2026/01/28 20:48:56.000000 Entering phase BUILD
[Container] 2026/01/28 20:48:56.000000 Running command false

[Container] 2026/01/28 20:48:56.000000 Command did not exit successfully false exit status 1
[Container] 2026/01/28 20:48:56.000000 Phase complete: BUILD State: FAILED
[Container] 2026/01/28 20:48:56.000000 Phase context status code: COMMAND_EXECUTION_ERROR Message: Error while executing command: false. Reason: exit status 1
[Container] 2026/01/28 20:48:56.000000 Phase complete: POST_BUILD State: SUCCEEDED
[Container] 2026/01/28 20:48:56.000000 Phase context status code:  Message: 
"
        );
    }
}
