//! The build record (`build.json`) and the state directory that holds one folder per build.
//!
//! ```text
//! <state>/builds/<uuid>/build.json    the record, replaced atomically as the phases change
//!                      /build.log     CodeBuild's log format
//!                      /buildspec.yml the buildspec as run
//!                      /scripts.sh    the generated command scripts, one after the other
//!                      /env/          the environment at the start and at the end, secrets as ***
//! <state>/projects/<project>.counter  build numbers, allocated under a file lock
//! <state>/last                        the uuid of the most recently started build
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::events::Phase;
use crate::outcome::{Context, ContextCode, Status, exit};

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
    pub files: Vec<crate::artifacts::FileRecord>,
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
    pub summary: Option<crate::reports::Summary>,
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
    /// The arguments after the program's name, `--mask` values replaced by `***`.
    pub args: Vec<String>,
    /// Whether `args` had values to mask: they are not there to run the build again with.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub masked: bool,
}

impl Invocation {
    /// The invocation with every value `masker` hides replaced by `***` in its arguments;
    /// `masked` says whether one was.
    pub fn masked_by(&self, masker: &crate::mask::Masker) -> Invocation {
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
        Invocation {
            cwd: masker.text(&self.cwd).into_owned(),
            args,
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
    pub fn masked_by(&self, masker: &crate::mask::Masker) -> BuildRecord {
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
            if let Some(crate::reports::Summary::Test(t)) = &mut group.summary {
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

fn out_of_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

fn io_error<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> StateError + 'p {
    move |source| StateError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    /// Whether final records and build numbers are flushed to the disk as they are written.
    flush_each: bool,
}

impl StateDir {
    /// Opens (and creates) a state directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<StateDir, StateError> {
        let root = root.into();
        for dir in [root.join("builds"), root.join("projects")] {
            create_private_dir(&dir).map_err(io_error("cannot create", &dir))?;
        }
        // Each build's folder is a hierarchy of its own.
        crate::platform::spread_subdirectories(&root.join("builds"));
        Ok(StateDir {
            root,
            flush_each: true,
        })
    }

    /// A state directory to read, as it is: nothing is created (a command that only reads
    /// records leaves no state directory where there was none).
    pub fn at(root: impl Into<PathBuf>) -> StateDir {
        StateDir {
            root: root.into(),
            flush_each: true,
        }
    }

    /// The same directory, whose final records and build numbers are not flushed to the disk
    /// one by one: [`StateDir::flush`] flushes them all later.
    pub fn flushed_later(self) -> StateDir {
        StateDir {
            flush_each: false,
            ..self
        }
    }

    /// Whether final records are flushed as they are written.
    pub fn flushes(&self) -> bool {
        self.flush_each
    }

    /// Flushes what was written to the directory's filesystem to the disk.
    pub fn flush(&self) -> Result<(), StateError> {
        crate::platform::sync_filesystem(&self.root).map_err(io_error("cannot flush", &self.root))
    }

    /// The directory's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a build.
    pub fn build_dir(&self, uuid: &str) -> PathBuf {
        self.root.join("builds").join(uuid)
    }

    /// Allocates the next build number of a project. The counter file is locked while it is read
    /// and written, so runners that start at the same moment get distinct numbers.
    pub fn next_number(&self, project: &str) -> Result<u64, StateError> {
        let name: String = project
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.root.join("projects").join(format!("{name}.counter"));
        let mut file = open_to_write_over(&path)?;
        file.lock().map_err(io_error("cannot lock", &path))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(io_error("cannot read", &path))?;
        let number = text.trim().parse::<u64>().unwrap_or(0) + 1;
        // Written over the old number, which is never longer, rather than truncated first:
        // freeing and allocating the file's block for every build is what costs, not the write.
        let new = format!("{number}\n");
        file.rewind()
            .and_then(|_| file.write_all(new.as_bytes()))
            .and_then(|()| {
                if text.len() > new.len() {
                    file.set_len(new.len() as u64)
                } else {
                    Ok(())
                }
            })
            .and_then(|()| {
                if self.flush_each {
                    file.sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(io_error("cannot write", &path))?;
        // The lock is released when the file is closed.
        Ok(number)
    }

    /// Records which build started last. Written over the old uuid, which has the same length,
    /// in one write: replacing the file instead (a new file renamed over it) cost every build a
    /// file's creation and deletion, which a journal-less ext4 makes slower with every file
    /// deleted in the minutes before. A reader that catches the write half done reads again
    /// ([`Self::find`]).
    pub fn set_last(&self, uuid: &str) -> Result<(), StateError> {
        use std::os::unix::fs::FileExt;
        let path = self.root.join("last");
        let line = format!("{uuid}\n");
        let file = open_to_write_over(&path)?;
        file.write_all_at(line.as_bytes(), 0)
            .and_then(|()| {
                // Only a file written otherwise (by hand, or a uuid of another form) is longer.
                if file.metadata()?.len() > line.len() as u64 {
                    file.set_len(line.len() as u64)?;
                }
                Ok(())
            })
            .map_err(io_error("cannot write", &path))
    }

    /// The uuid `last` holds. A read that caught a write half done names no build; the next
    /// read, a moment later, finds the whole uuid.
    fn last(&self) -> Result<BuildRecord, StateError> {
        let path = self.root.join("last");
        let mut attempts = 0;
        loop {
            let uuid =
                fs::read_to_string(&path).map_err(|_| StateError::NotFound("--last".to_owned()))?;
            // Only a uuid names a build: anything else in `last` (written by hand, or half
            // written) is not a path to follow.
            if uuid::Uuid::parse_str(uuid.trim()).is_err() {
                if attempts < 3 {
                    attempts += 1;
                    continue;
                }
                return Err(StateError::NotFound("--last".to_owned()));
            }
            match self.read(uuid.trim()) {
                Err(StateError::Io { .. }) if attempts < 3 => attempts += 1,
                read => return read,
            }
        }
    }

    /// Reads a record.
    pub fn read(&self, uuid: &str) -> Result<BuildRecord, StateError> {
        let path = self.build_dir(uuid).join("build.json");
        let text = fs::read(&path).map_err(io_error("cannot read", &path))?;
        serde_json::from_slice(&text).map_err(|source| StateError::Corrupt {
            path: path.display().to_string(),
            source,
        })
    }

    /// Finds a build by uuid, `project:uuid` id, a unique prefix of either, or `--last`.
    pub fn find(&self, query: Option<&str>) -> Result<BuildRecord, StateError> {
        let Some(query) = query else {
            return self.last();
        };
        // `project:uuid` must match its project too; a bare uuid (or prefix) matches any.
        let (project, wanted) = match query.rsplit_once(':') {
            Some((project, uuid)) => (Some(project), uuid),
            None => (None, query),
        };
        let dir = self.root.join("builds");
        let mut matches = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(query.to_owned()));
            }
            listed => listed.map_err(io_error("cannot list", &dir))?,
        };
        for entry in entries {
            let entry = entry.map_err(io_error("cannot list", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(wanted) {
                matches.push(name);
            }
        }
        if let Some(project) = project {
            matches.retain(|uuid| self.read(uuid).is_ok_and(|r| r.project == project));
        }
        if let Some(exact) = matches.iter().find(|m| *m == wanted) {
            return self.read(exact);
        }
        match matches.len() {
            0 => Err(StateError::NotFound(query.to_owned())),
            1 => self.read(&matches[0]),
            _ => Err(StateError::Ambiguous {
                query: query.to_owned(),
                matches,
            }),
        }
    }
}

impl StateDir {
    fn leases_dir(&self) -> PathBuf {
        self.root.join("running")
    }

    /// Takes the lease of a build that starts (`running/<uuid>`): it says the build's record
    /// may be left IN_PROGRESS by a runner that dies, for [`crate::abandoned::recover`] to find.
    pub(crate) fn lease(&self, uuid: &str) -> Result<(), StateError> {
        let dir = self.leases_dir();
        let path = dir.join(uuid);
        match private_file(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_private_dir(&dir).map_err(io_error("cannot create", &dir))?;
                private_file(&path).map_err(io_error("cannot create", &path))?;
            }
            made => {
                made.map_err(io_error("cannot create", &path))?;
            }
        }
        Ok(())
    }

    /// Lets go of a build's lease: its record is final.
    pub(crate) fn release(&self, uuid: &str) {
        let _ = fs::remove_file(self.leases_dir().join(uuid));
    }

    /// The builds that hold a lease: running, or left IN_PROGRESS by a runner that died.
    pub(crate) fn leases(&self) -> Vec<String> {
        fs::read_dir(self.leases_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| uuid::Uuid::parse_str(name).is_ok())
            .collect()
    }

    /// Claims a lease for this process, so that of two commands that found the same dead
    /// build one ends it; false when another got there first.
    pub(crate) fn claim(&self, uuid: &str) -> bool {
        let dir = self.leases_dir();
        let claimed = dir.join(format!(".ending-{uuid}-{}", std::process::id()));
        let won = fs::rename(dir.join(uuid), &claimed).is_ok();
        if won {
            let _ = fs::remove_file(claimed);
        }
        won
    }

    /// Completes the record of build `uuid` after its runner is gone. A record still IN_PROGRESS
    /// (the runner was killed) ends with the verdict: its open phase closed with the verdict's
    /// context, the end time and exit code set, a line added to the log. A record that ended
    /// takes the verdict's status only when `overrides` (the scheduler ended the build for a
    /// reason of its own, such as its time limit). A build that never wrote a record (it never
    /// started) gets one, with an empty phase list, and a log that says why. The placement, when
    /// given, is recorded in every case.
    pub fn complete(
        &self,
        uuid: &str,
        fresh: &FreshRecord,
        verdict: Option<&Verdict>,
        overrides: bool,
        placement: Option<Placement>,
    ) -> Result<BuildRecord, StateError> {
        let dir = self.build_dir(uuid);
        let log_path = dir.join("build.log");
        let now = Timestamp::now();
        let mut record = match self.read(uuid) {
            Ok(record) => record,
            Err(StateError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                create_private_dir(&dir).map_err(io_error("cannot create", &dir))?;
                let number = self.next_number(&fresh.project)?;
                let mut record = BuildRecord::new(uuid, number, fresh, &log_path, now);
                // It never left the queue: the verdict closes that phase.
                record.phases.push(PhaseRecord {
                    phase: Phase::Queued,
                    status: Status::InProgress,
                    start_time: now,
                    end_time: None,
                    duration_ms: None,
                    contexts: Vec::new(),
                    attempts: 1,
                });
                record
            }
            Err(e) => return Err(e),
        };
        let unfinished = record.status == Status::InProgress;
        if let Some(verdict) = verdict.filter(|_| unfinished || overrides) {
            record.status = verdict.status;
            let context = Context::new(verdict.status_code, verdict.message.clone());
            match record
                .phases
                .iter_mut()
                .rev()
                .find(|p| p.end_time.is_none())
            {
                Some(phase) => {
                    phase.status = verdict.status;
                    phase.end_time = Some(now);
                    phase.duration_ms = Some(
                        u64::try_from(now.duration_since(phase.start_time).as_millis().max(0))
                            .unwrap_or(0),
                    );
                    phase.contexts.push(context);
                }
                None => {
                    if let Some(phase) = record.phases.last_mut() {
                        phase.contexts.push(context);
                    }
                }
            }
            record.end_time.get_or_insert(now);
            record.exit_code = Some(
                verdict
                    .exit_code
                    .unwrap_or_else(|| exit::of(verdict.status, None, false)),
            );
            let line = format!(
                "[Container] {} {}: {}\n",
                crate::events::log_time(now),
                verdict.status_code.as_str(),
                verdict.message
            );
            let appended = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&log_path)
                .and_then(|mut log| log.write_all(line.as_bytes()));
            appended.map_err(io_error("cannot write", &log_path))?;
        }
        if placement.is_some() {
            record.placement = placement;
        }
        let mut json = serde_json::to_vec_pretty(&record).unwrap_or_default();
        json.push(b'\n');
        write_atomic(&dir.join("build.json"), &json, true)?;
        self.release(uuid);
        Ok(record)
    }
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

/// Opens (or creates) a private file to read and to write over in place, keeping what it holds.
fn open_to_write_over(path: &Path) -> Result<File, StateError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_error("cannot open", path))
}

/// Writes a file by writing a temporary file beside it and renaming it over, so that a reader (or
/// a crashed or killed runner) sees the old content or the new, never half of it. With `sync`,
/// the content is on the disk before the rename, so that it survives a power loss too: that costs
/// a disk flush (milliseconds on a real disk), kept for the final record. On a full disk, the
/// content is written over the file's own blocks when it fits in them
/// ([`overwrite_in_place`]): not atomic, but a record that stayed as it was would be wrong.
pub fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StateError> {
    // Unique per process and per call: threads of one runner may write the same file at once.
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    let result = (|| {
        let mut file = private_file(&tmp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_data()?;
        }
        fs::rename(&tmp, path)
    })();
    result.or_else(|source| {
        let _ = fs::remove_file(&tmp);
        // A full disk has no room for the new copy; the file's own blocks may hold it.
        if out_of_space(&source) && overwrite_in_place(path, bytes, sync).is_ok() {
            return Ok(());
        }
        Err(StateError::Io {
            action: "cannot write",
            path: path.display().to_string(),
            source,
        })
    })
}

/// Writes `bytes` over an existing file's own blocks: the last resort for a record when the disk
/// has no room for a new copy. Only when they fit in what the file already has (so no block is
/// allocated), and not atomic: a reader at that moment can see part of it.
pub(crate) fn overwrite_in_place(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let file = OpenOptions::new().write(true).open(path)?;
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > file.metadata()?.blocks().saturating_mul(512) {
        return Err(io::ErrorKind::StorageFull.into());
    }
    file.write_all_at(bytes, 0)?;
    file.set_len(len)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

/// Creates a directory (and its parents) that only its owner can read: records and logs may
/// hold what a build printed, and the environment dumps what it was given.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Creates a private directory (0700), if missing, whose subdirectories are unrelated trees (the
/// copies of the source that builds run side by side, in the temporary directory or a shared
/// one, which other users may read): on ext2, ext3 and ext4 they are spread over the disk as the
/// state directory's build folders are ([`StateDir::open`]).
pub fn create_spread_dir(path: &Path) -> io::Result<()> {
    create_private_dir(path)?;
    crate::platform::spread_subdirectories(path);
    Ok(())
}

/// Creates (or truncates) a file only its owner can read or write.
pub fn private_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Writes a file only its owner can read or write.
pub fn write_private(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    private_file(path)?.write_all(bytes.as_ref())
}

/// Reads a file that someone else may have put in place: only a regular file (a link is not
/// followed, a FIFO is not waited on) of at most `limit` bytes; `None` when there is none.
pub(crate) fn read_regular(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    let mut bytes = Vec::new();
    (&file).take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::other(format!("it is larger than {limit} bytes")));
    }
    Ok(Some(bytes))
}

/// The user's state directory: `$XDG_STATE_HOME/buildspec`, else `~/.local/state/buildspec`.
pub fn default_state_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("buildspec"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".local/state/buildspec"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_across_threads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let state = state.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|_| state.next_number("p").expect("number"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=200).collect::<Vec<_>>());
        assert_eq!(state.next_number("other").expect("number"), 1);
    }
}
