//! The build record (`build.json`): what a build did, how each phase ended and why, where its
//! sets and reports went, and how it was started.

use std::path::Path;

use indexmap::IndexMap;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::events::Phase;
use crate::outcome::{Context, ContextCode, Status};
use crate::request::BuildRequest;

/// One phase of a build, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// The phase.
    pub phase: Phase,
    /// How it ended (IN_PROGRESS while it runs).
    pub status: Status,
    /// When it started.
    pub start_time: Timestamp,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// How long it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Why it ended as it did (empty on success).
    pub contexts: Vec<Context>,
    /// How many times it ran (more than 1 with RETRY).
    pub attempts: u32,
}

/// An artifact set and its files (filled by the artifact upload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// `primary` or the secondary identifier.
    pub identifier: String,
    /// `artifacts.name`, as the shell evaluated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the set was written: a folder, or a zip.
    pub location: String,
    /// `none` (a folder) or `zip`.
    pub packaging: String,
    /// Its files, with their sizes and digests.
    pub files: Vec<crate::outputs::artifacts::FileRecord>,
    /// Where it was uploaded (`s3://bucket/key`), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<String>,
}

/// One report group, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRecord {
    /// The group's name (or ARN), as the buildspec writes it.
    pub name: String,
    /// The files' format.
    pub format: String,
    /// SUCCEEDED (every test passed, or coverage read), FAILED (a test failed, or a file could
    /// not be read), INCOMPLETE (no file matched).
    pub status: String,
    /// Where the group's files were copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The files, relative to the location.
    pub files: Vec<String>,
    /// What the files say, all files merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<crate::outputs::reports::Summary>,
    /// Why the group is FAILED or INCOMPLETE, when it is not a failing test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Output past the log's limit: counted, not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTruncated {
    /// The limit, in bytes.
    pub limit: u64,
    /// Lines of output not kept.
    pub lines: u64,
    /// Their bytes (newlines counted).
    pub bytes: u64,
}

/// How a build was started, so that `buildspec rerun` can start it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    /// The working directory.
    pub cwd: String,
    /// The arguments of a `buildspec run` after the program's name, as records of earlier
    /// versions keep it (this one keeps `request`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The build as it was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<BuildRequest>,
    /// Whether it had values to mask: they are not there to run the build again with.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub masked: bool,
}

impl Invocation {
    /// A build asked for with `request`.
    pub fn of(request: BuildRequest) -> Invocation {
        Invocation {
            cwd: request.cwd.display().to_string(),
            args: Vec::new(),
            request: Some(request),
            masked: false,
        }
    }

    /// The invocation with every value `masker` hides replaced by `***`; `masked` says whether
    /// one was.
    pub fn masked_by(&self, masker: &crate::env::mask::Masker) -> Invocation {
        let mut masked = self.masked;
        let args = self
            .args
            .iter()
            .map(|arg| {
                let shown = masker.text(arg);
                masked |= shown != arg.as_str();
                shown.into_owned()
            })
            .collect();
        let request = self.request.as_ref().map(|r| {
            let (request, hid) = r.masked_by(masker);
            masked |= hid;
            request
        });
        Invocation {
            cwd: masker.text(&self.cwd).into_owned(),
            args,
            request,
            masked,
        }
    }
}

/// Everything known about a build. `build.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// `project:uuid`, as `CODEBUILD_BUILD_ID`.
    pub id: String,
    /// The uuid alone (the record's folder name).
    pub uuid: String,
    /// The project's build counter, as `CODEBUILD_BUILD_NUMBER`.
    pub number: u64,
    /// The project.
    pub project: String,
    /// The buildspec file, as given.
    pub buildspec: String,
    /// The source directory.
    pub source: String,
    /// The build's status.
    pub status: Status,
    /// When it started.
    pub start_time: Timestamp,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// Who started it.
    pub initiator: String,
    /// `compat` or `persistent`.
    pub session: String,
    /// The phases that ran, in order; a phase that did not run is absent.
    pub phases: Vec<PhaseRecord>,
    /// The artifact sets.
    pub artifacts: Vec<ArtifactRecord>,
    /// The report groups.
    #[serde(default)]
    pub reports: Vec<ReportRecord>,
    /// The batch it belongs to (`batch:<uuid>`), for a build of a batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Its identifier in the batch (`CODEBUILD_BATCH_BUILD_IDENTIFIER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_identifier: Option<String>,
    /// How it was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation: Option<Invocation>,
    /// Final values of `env.exported-variables`.
    pub exported_variables: IndexMap<String, String>,
    /// The log file.
    pub log_path: String,
    /// Why lines are missing from the log (the first write that failed, such as a full disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_incomplete: Option<String>,
    /// The output the log did not keep, past its limit (`--log-limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_truncated: Option<LogTruncated>,
    /// The exit code the CLI ended with, once the build is over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The runner's process id, to tell a crashed build from a running one.
    pub runner_pid: u32,
    /// When the runner process started (clock ticks after boot): with the pid, the boot and
    /// the machine, what tells that the runner of a build still IN_PROGRESS is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_start: Option<u64>,
    /// The boot of the machine the runner ran on (`/proc/sys/kernel/random/boot_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_boot: Option<String>,
    /// The machine the runner ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_host: Option<String>,
    /// The runner's version.
    pub runner_version: String,
    /// Where it ran, when a scheduler ran it (`--executor slurm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Processes of the build that could not be ended when it finished (by pid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unended_processes: Vec<u32>,
}

impl BuildRecord {
    /// The record of a build that starts at `now` (IN_PROGRESS, no phase yet), with its log at
    /// `log_path`; the runner's identity and the invocation are its starter's to fill in.
    pub fn new(
        uuid: &str,
        number: u64,
        fresh: &FreshRecord,
        log_path: &Path,
        now: Timestamp,
    ) -> BuildRecord {
        BuildRecord {
            id: format!("{}:{uuid}", fresh.project),
            uuid: uuid.to_owned(),
            number,
            project: fresh.project.clone(),
            buildspec: fresh.buildspec.clone(),
            source: fresh.source.clone(),
            status: Status::InProgress,
            start_time: now,
            end_time: None,
            initiator: fresh.initiator.clone(),
            session: fresh.session.clone(),
            phases: Vec::new(),
            artifacts: Vec::new(),
            reports: Vec::new(),
            batch_id: fresh.batch.as_ref().map(|b| b.0.clone()),
            batch_identifier: fresh.batch.as_ref().map(|b| b.1.clone()),
            invocation: None,
            exported_variables: IndexMap::new(),
            log_path: log_path.display().to_string(),
            log_incomplete: None,
            log_truncated: None,
            exit_code: None,
            runner_pid: 0,
            runner_start: None,
            runner_boot: None,
            runner_host: None,
            runner_version: env!("CARGO_PKG_VERSION").to_owned(),
            placement: None,
            unended_processes: Vec::new(),
        }
    }

    /// The record with every value `masker` hides replaced by `***`, in every text it holds
    /// (a secret may reach an artifact's name, a path, a test's failure message): what the
    /// state directory, `--record-file` and the queries see.
    pub fn masked_by(&self, masker: &crate::env::mask::Masker) -> BuildRecord {
        let mut record = self.clone();
        if masker.is_empty() {
            return record;
        }
        let mask = |text: &mut String| {
            if let std::borrow::Cow::Owned(masked) = masker.text(text) {
                *text = masked;
            }
        };
        for text in [
            &mut record.id,
            &mut record.project,
            &mut record.buildspec,
            &mut record.source,
            &mut record.initiator,
            &mut record.log_path,
        ] {
            mask(text);
        }
        record.batch_identifier.iter_mut().for_each(mask);
        record.log_incomplete.iter_mut().for_each(mask);
        record.invocation = record.invocation.map(|i| i.masked_by(masker));
        for phase in &mut record.phases {
            for context in &mut phase.contexts {
                mask(&mut context.message);
            }
        }
        for set in &mut record.artifacts {
            set.name.iter_mut().for_each(mask);
            mask(&mut set.location);
            set.uploaded.iter_mut().for_each(mask);
            for file in &mut set.files {
                mask(&mut file.path);
                file.link.iter_mut().for_each(mask);
            }
        }
        for group in &mut record.reports {
            mask(&mut group.name);
            group.location.iter_mut().for_each(mask);
            group.files.iter_mut().for_each(mask);
            group.error.iter_mut().for_each(mask);
            if let Some(crate::outputs::reports::Summary::Test(t)) = &mut group.summary {
                for failure in &mut t.failures {
                    mask(&mut failure.name);
                    failure.suite.iter_mut().for_each(mask);
                    failure.message.iter_mut().for_each(mask);
                    failure.file.iter_mut().for_each(mask);
                }
            }
        }
        for value in record.exported_variables.values_mut() {
            mask(value);
        }
        record
    }
}

/// Where a scheduler ran a build, and how its job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// `slurm`.
    pub executor: String,
    /// The scheduler's job id.
    pub job_id: String,
    /// The node (or nodes) it ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The partition (queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// The account it was charged to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// How long it waited in the queue, from submission to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_wait_ms: Option<u64>,
    /// The job's final state (`COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, `NODE_FAIL`...).
    pub state: String,
    /// The scheduler's reason, when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The job's exit code as the scheduler reports it (`exit:signal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<String>,
}

/// What to write into the record of a build whose runner could not finish it (killed, never
/// started), or whose scheduler ended it with a verdict of its own (a time limit, a lost node).
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The status the build ends with.
    pub status: Status,
    /// The phase context's code (`BUILD_STOPPED`, `BUILD_TIMED_OUT`, `SLURM_JOB_FAILED`...).
    pub status_code: ContextCode,
    /// The phase context's message: what happened, in words.
    pub message: String,
    /// The exit code the build ends with, when known (the runner died of signal 9: 137);
    /// otherwise the status's own.
    pub exit_code: Option<i32>,
}

/// What a record made by [`StateDir::complete`] for a build that never started says of it.
#[derive(Debug, Clone, Default)]
pub struct FreshRecord {
    /// The project.
    pub project: String,
    /// The buildspec, as given.
    pub buildspec: String,
    /// The source directory.
    pub source: String,
    /// Who started it.
    pub initiator: String,
    /// `compat` or `persistent`.
    pub session: String,
    /// The batch's id and the build's identifier, for a build of a batch.
    pub batch: Option<(String, String)>,
}
