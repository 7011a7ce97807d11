//! The engine with real shells and real processes: sessions, phases, output, records.

mod artifacts;
mod cache;
mod output;
mod phases;
mod processes;
mod records;
mod reports;
mod run_as;
mod s3;
mod secrets;
mod sessions;
mod trust;

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use runner::env::Layers;
use runner::events::{Event, Phase, Reporter, Status};
use runner::store::{BuildRecord, PhaseRecord};
use runner::{BuildOptions, SessionKind};

/// What a build reported, kept for assertions.
#[derive(Default)]
pub(crate) struct Collected {
    /// The log as the console shows it.
    pub(crate) log: String,
    /// Output lines only.
    pub(crate) output: Vec<String>,
    /// Phases started, with their attempt.
    pub(crate) phases: Vec<(Phase, u32)>,
}

impl Reporter for Collected {
    fn report(&mut self, time: Timestamp, event: &Event<'_>) {
        let mut bytes = Vec::new();
        runner::events::write_log(&mut bytes, time, event).expect("write to memory");
        self.log.push_str(&String::from_utf8_lossy(&bytes));
        match event {
            Event::Output { line } => self.output.push(String::from_utf8_lossy(line).into_owned()),
            Event::PhaseStarted { phase, attempt } => self.phases.push((*phase, *attempt)),
            _ => {}
        }
    }
}

/// A source directory with a buildspec, and a state directory beside it.
pub(crate) struct Fixture {
    /// Kept alive for the fixture's life: dropping it deletes the directories.
    _root: tempfile::TempDir,
    pub(crate) options: BuildOptions,
}

/// The outcome of a build and what it reported.
pub(crate) struct Ran {
    pub(crate) record: BuildRecord,
    pub(crate) exit_code: i32,
    pub(crate) events: Collected,
    pub(crate) record_path: PathBuf,
}

impl Fixture {
    pub(crate) fn new(yaml: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("src");
        std::fs::create_dir(&source).expect("mkdir src");
        std::fs::write(source.join("buildspec.yml"), yaml).expect("write buildspec");
        let options = BuildOptions {
            buildspec: source.join("buildspec.yml"),
            source_dir: source,
            state_dir: dir.path().join("state"),
            project: Some("test".to_owned()),
            session: SessionKind::Compat,
            timeout: Some(Duration::from_secs(60)),
            grace: Duration::from_secs(2),
            cleanup_timeout: Duration::from_secs(30),
            layers: Layers {
                // As from an interactive shell: PATH, and a PWD that is not the source.
                inherited: vec![
                    ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
                    ("PWD".to_owned(), "/".to_owned()),
                ],
                ..Layers::default()
            },
            initiator: "tester".to_owned(),
            strict: false,
            providers: runner::env::secrets::Providers::default(),
            mask: Vec::new(),
            owns_children: false,
            flush_record: true,
            artifacts: runner::build::Destination::BuildDir,
            packaging: runner::build::Packaging::None,
            reports: None,
            cache_dir: None,
            batch: None,
            request: None,
            uuid: None,
            log_limit: Some(runner::build::DEFAULT_LOG_LIMIT),
            buildspec_name: None,
        };
        Fixture {
            _root: dir,
            options,
        }
    }

    pub(crate) fn source(&self) -> &Path {
        &self.options.source_dir
    }

    pub(crate) fn persistent(mut self) -> Self {
        self.options.session = SessionKind::Persistent;
        self
    }

    pub(crate) fn run(&self) -> Ran {
        let mut events = Collected::default();
        let outcome = runner::run(&self.options, &mut events, &runner::Stop::none())
            .expect("the build is recorded");
        Ran {
            record: outcome.record,
            exit_code: outcome.exit_code,
            events,
            record_path: outcome.record_path,
        }
    }
}

impl Ran {
    /// Phases in the record, with their status.
    pub(crate) fn phases(&self) -> Vec<(Phase, Status)> {
        self.record
            .phases
            .iter()
            .map(|p| (p.phase, p.status))
            .collect()
    }

    /// The record of one phase, which must have run.
    #[track_caller]
    pub(crate) fn phase(&self, phase: Phase) -> &PhaseRecord {
        self.record
            .phases
            .iter()
            .find(|p| p.phase == phase)
            .unwrap_or_else(|| panic!("{phase:?} is not in the record"))
    }

    /// Output lines that start with `prefix`, with the prefix removed.
    pub(crate) fn said(&self, prefix: &str) -> Vec<&str> {
        self.events
            .output
            .iter()
            .filter_map(|l| l.strip_prefix(prefix))
            .collect()
    }

    /// The first output line that holds `text`.
    #[track_caller]
    pub(crate) fn line_with(&self, text: &str) -> &str {
        self.events
            .output
            .iter()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no output line holds {text:?}"))
    }

    /// Checks that the log has `text`.
    #[track_caller]
    pub(crate) fn logged(&self, text: &str) -> &Self {
        assert!(
            self.events.log.contains(text),
            "the log lacks {text:?}:\n{}",
            self.events.log
        );
        self
    }

    #[track_caller]
    pub(crate) fn expect(&self, status: Status) -> &Self {
        assert_eq!(
            self.record.status, status,
            "build status; log:\n{}",
            self.events.log
        );
        self
    }
}

/// Runs a buildspec in a compat session.
pub(crate) fn run(yaml: &str) -> Ran {
    Fixture::new(yaml).run()
}
