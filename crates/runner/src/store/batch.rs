//! The record of a batch (`<state>/batches/<uuid>.json`): what the batch is, how each of its
//! builds ended (their [`JobResult`]s), and what a dispatcher that takes it up (`--resume`) or `rerun` needs of it.
//! It is written when the batch starts and again as its builds start and end.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::outcome::Status;
use crate::store::{BuildRecord, Invocation};

/// A batch, as its record says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchRecord {
    /// `batch:<uuid>`.
    pub id: String,
    /// The buildspec whose `batch:` section it runs.
    pub buildspec: String,
    /// `build-list`, `build-matrix`, `build-graph` or `build-fanout`.
    #[serde(default)]
    pub kind: String,
    /// Whether a failure stops the other builds.
    #[serde(default)]
    pub fast_fail: bool,
    /// IN_PROGRESS while it runs, then SUCCEEDED, FAILED or STOPPED.
    pub status: Status,
    /// When it started.
    pub start_time: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// `local` or `slurm`.
    #[serde(default)]
    pub executor: String,
    /// The dispatcher's process, to tell an interrupted batch from a running one.
    #[serde(default)]
    pub dispatcher_pid: u32,
    /// The builds that ended, in the order they ended until the batch is over, then in the
    /// batch's order.
    #[serde(default)]
    pub builds: Vec<JobResult>,
    /// Each build's record uuid and, once started, the executor's handle of it.
    #[serde(default)]
    pub members: Vec<MemberState>,
    /// The builds as the buildspec defines them: their variables, and the `image` and
    /// `compute-type` CodeBuild would use, recorded only.
    #[serde(default)]
    pub planned: Vec<buildspec::batch::PlannedBuild>,
}

/// A batch's build as its dispatcher knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberState {
    /// Its identifier.
    pub id: String,
    /// The uuid its record takes.
    pub build_uuid: String,
    /// The executor's handle of it (a Slurm job id), once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// How it is asked for, as its record would say: `rerun` starts a build that never ran
    /// (and so has no record) from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation: Option<Invocation>,
}

impl BatchRecord {
    /// Whether the batch is still being dispatched: it is not over, and the process that
    /// dispatches it is there.
    pub fn dispatching(&self) -> bool {
        self.status == Status::InProgress
            && self.dispatcher_pid != 0
            && crate::platform::process_alive(self.dispatcher_pid)
    }

    /// Its uuid, the name of its record's file.
    pub fn uuid(&self) -> &str {
        self.id.trim_start_matches("batch:")
    }

    /// Puts new results of its builds in the record (a build that ran again replaces its old
    /// result), and the batch's status after them.
    pub fn update(&mut self, results: &[&JobResult], stopped: bool) {
        for result in results {
            match self.builds.iter_mut().find(|b| b.id == result.id) {
                Some(old) => *old = (*result).clone(),
                None => self.builds.push((*result).clone()),
            }
        }
        self.end(stopped);
    }

    /// Ends the batch: its status from its builds' (STOPPED after a stop request, else FAILED
    /// when a build without `ignore-failure` did not succeed), and its end time.
    pub fn end(&mut self, stopped: bool) {
        let failed = self
            .builds
            .iter()
            .any(|b| b.outcome != Outcome::Succeeded && !b.ignore_failure);
        self.status = match (stopped, failed) {
            (true, _) => Status::Stopped,
            (false, true) => Status::Failed,
            (false, false) => Status::Succeeded,
        };
        self.end_time = Some(Timestamp::now());
    }
}

/// How one build of many ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// It ran and succeeded.
    Succeeded,
    /// It ran and did not succeed (failed, timed out, stopped, fault).
    Failed,
    /// It never started: a dependency failed, or the batch stopped first.
    NotRun,
}

impl Outcome {
    /// The name the batch record and the summary use.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "SUCCEEDED",
            Outcome::Failed => "FAILED",
            Outcome::NotRun => "NOT_RUN",
        }
    }
}

/// A build's result, for the summary and the batch record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    /// The build's identifier.
    pub id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Its process's exit code, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its record, when it ran far enough to write one.
    #[serde(skip)]
    pub record: Option<BuildRecord>,
    /// The record's build id (`project:uuid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// The record's status, when there is a record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The launcher's handle (a Slurm job id), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Whether its failure is ignored.
    pub ignore_failure: bool,
    /// How long it ran.
    pub duration_ms: u64,
}
