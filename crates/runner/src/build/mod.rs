//! One build, from DOWNLOAD_SOURCE to FINALIZING.

use std::borrow::Cow;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use buildspec::plan::{Next, PlannedPhase};
use buildspec::{PhaseName, Plan};
use indexmap::IndexMap;
use jiff::Timestamp;

use self::log_file::LogFile;
use self::recorder::Recorder;
use crate::build::shell::runtime::Runtime;
use crate::build::shell::state::SessionState;
use crate::build::shell::{Session, SessionKind, SessionSpec};
use crate::env::Layers;
use crate::env::mask::Masker;
use crate::env::secrets::Providers;
use crate::events::{Event, Phase, Reporter};
use crate::outcome::{Context, ContextCode, Status};
use crate::platform;
use crate::stop::Stop;
use crate::store::{BuildRecord, PhaseRecord, StateDir, StateError};

mod cache;
mod cleanup;
mod commands;
mod log_file;
pub mod output;
mod phases;
pub(crate) mod processes;
mod recorder;
mod reports;
pub mod shell;
mod source;
mod stream;
mod upload;

pub use reports::summary_table;
pub use upload::{Destination, Packaging};

pub use crate::outcome::exit;

/// Everything a build needs to know before it starts.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The buildspec file.
    pub buildspec: PathBuf,
    /// The source directory (`CODEBUILD_SRC_DIR`).
    pub source_dir: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The project (default: the source directory's name).
    pub project: Option<String>,
    /// How commands share state.
    pub session: SessionKind,
    /// The build's time limit; `None` for none.
    pub timeout: Option<Duration>,
    /// How long a process has between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// How long UPLOAD_ARTIFACTS may take after a timeout or a stop.
    pub cleanup_timeout: Duration,
    /// `--env` and `--env-file` and the inherited environment.
    pub layers: Layers,
    /// Who started the build.
    pub initiator: String,
    /// Treat buildspec warnings as errors.
    pub strict: bool,
    /// Parameter Store and Secrets Manager values.
    pub providers: Providers,
    /// More values to mask (`--mask`), besides those from the providers.
    pub mask: Vec<String>,
    /// Whether this build is the only one of this process, so that every child of the process
    /// is the build's (the CLI runs one build per process). At the end the engine then ends
    /// and reaps them all, even those that cleared their environment.
    pub owns_children: bool,
    /// Whether the final record (and the build's number) is flushed to the disk before the
    /// build ends. A program that runs builds one after another may leave that to one
    /// [`StateDir::flush`] when it is done: a flush costs a short build as much as the rest of
    /// its files.
    pub flush_record: bool,
    /// Where artifact sets are written.
    pub artifacts: Destination,
    /// A folder per set, or a zip.
    pub packaging: Packaging,
    /// Where report files are copied (default: the build's `reports/` folder).
    pub reports: Option<PathBuf>,
    /// The cache directory (default: `cache/` in the state directory).
    pub cache_dir: Option<PathBuf>,
    /// For a build of a batch: the batch's id and this build's identifier
    /// (`CODEBUILD_BATCH_BUILD_IDENTIFIER`).
    pub batch: Option<(String, String)>,
    /// How the build was asked for, for the record (and `rerun`).
    pub request: Option<crate::request::BuildRequest>,
    /// The buildspec's name for the record, when the file run is a copy of it.
    pub buildspec_name: Option<String>,
    /// The build's uuid, when its starter chose it (to find the record of a runner that died);
    /// a new one otherwise.
    pub uuid: Option<String>,
    /// How many bytes of the build's output the log and the console keep; `None` for no limit.
    pub log_limit: Option<u64>,
}

/// The default of [`BuildOptions::log_limit`].
pub const DEFAULT_LOG_LIMIT: u64 = 100 * 1024 * 1024;

/// How a build ended.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The final record.
    pub record: BuildRecord,
    /// Where the record is.
    pub record_path: PathBuf,
    /// The exit code the CLI ends with.
    pub exit_code: i32,
    /// The buildspec's diagnostics, rendered (empty when there were none).
    pub diagnostics: String,
}

/// Why a build could not even be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The state directory is unusable.
    #[error(transparent)]
    State(#[from] StateError),
    /// The log or the scripts cannot be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Runs one build, reporting its events, and returns its outcome. Only a state directory that
/// cannot be written is an error: every other failure is a build status in the record.
///
/// A request on `stop` (a signal) stops the build as a timeout does, with status STOPPED: the
/// running command's processes get SIGTERM, then SIGKILL after the grace period, no later command
/// phase runs, and UPLOAD_ARTIFACTS is still attempted. A second request kills at once and skips
/// the upload.
pub fn run(
    options: &BuildOptions,
    reporter: &mut dyn Reporter,
    stop: &Stop,
) -> Result<BuildOutcome, RunError> {
    let mut build = Build::create(options, reporter, stop)?;
    // A build whose first record cannot be written has started nothing.
    if let Err(error) = build.run() {
        build.remove_runtime_files();
        build.recorder.abandon();
        return Err(error.into());
    }
    build.finish()
}

/// Output lines kept to match a RETRY regex against.
const TAIL_LINES: usize = 100;
const TAIL_LINE_BYTES: usize = 4096;
/// The output pipe's buffer and the engine's read buffer: a fast command fills more per read.
const OUTPUT_PIPE_BYTES: i32 = 1024 * 1024;
/// How long a quiet build waits before it flushes the log and the console.
const FLUSH_AFTER: Duration = Duration::from_millis(10);
/// How long the end of a build waits for the last output after its processes are gone.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

struct Build<'r> {
    options: &'r BuildOptions,
    stop: &'r Stop,
    /// The signal that stopped the build.
    stopped: Option<i32>,
    /// A second stop request: everything was killed, and the upload is skipped.
    killed: bool,
    reporter: &'r mut dyn Reporter,
    runtime: Runtime,
    log: BufWriter<LogFile>,
    log_path: PathBuf,
    /// The record, and the one writer of its file.
    recorder: Recorder,
    started: Instant,
    /// When the running phase's current attempt began.
    attempt_started: Instant,
    deadline: Option<Instant>,
    diagnostics: String,
    /// Invalid buildspec: the exit code says so.
    invalid: bool,
    plan: Option<std::rc::Rc<Plan>>,
    session: Option<Session>,
    spec: Option<SessionSpec>,
    /// The variables and directory the next command starts with.
    shell_state: SessionState,
    /// Commands finished so far.
    commands_done: u64,
    /// The users of `run-as`, looked up.
    users: IndexMap<String, platform::RunAs>,
    /// Process groups of sessions that ended before the build (a phase with another user).
    retired_groups: Vec<u32>,
    /// The runner's own HOME, USER and LOGNAME, for the phases after a `run-as` phase.
    own_identity: [Option<String>; 3],
    /// The output on its way to the log and the console.
    pump: stream::Pump,
    masker: Masker,
    /// Variables whose values came from a provider: dumps show them as `***`.
    secret_names: Vec<String>,
    succeeding: bool,
    last_exit: i32,
    timed_out: bool,
    /// Whether this process is the subreaper of the build's orphans.
    subreaper: bool,
}

/// Removes a build's runtime folders when dropped (forgotten once the build has started).
struct RemoveOnDrop<'a>(&'a Runtime);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        self.0.remove();
    }
}

impl<'r> Build<'r> {
    fn create(
        options: &'r BuildOptions,
        reporter: &'r mut dyn Reporter,
        stop: &'r Stop,
    ) -> Result<Self, RunError> {
        let mut state_dir = StateDir::open(&options.state_dir)?;
        if !options.flush_record {
            state_dir = state_dir.flushed_later();
        }
        let source_dir =
            std::path::absolute(&options.source_dir).unwrap_or_else(|_| options.source_dir.clone());
        let project = crate::env::project_name(options.project.as_deref(), &source_dir);
        let uuid = options
            .uuid
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let number = state_dir.next_number(&project)?;
        let dir = state_dir.build_dir(&uuid);
        // The scripts the shell runs, and the state files that pass values between commands.
        let runtime = Runtime::create(&uuid, &dir).map_err(|source| RunError::Io {
            path: format!("the runtime folder of build {uuid}"),
            source,
        })?;
        // A build that cannot start (a full disk, an unwritable state directory) leaves no
        // folder in memory behind it.
        let unstarted = RemoveOnDrop(&runtime);
        crate::store::create_private_dir(&dir).map_err(|source| RunError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let log_path = dir.join("build.log");
        let log = crate::store::private_file(&log_path).map_err(|source| RunError::Io {
            path: log_path.display().to_string(),
            source,
        })?;
        let now = Timestamp::now();
        // The values known to be secret before the buildspec is read are masked from the first
        // word the build writes; those of its parameters and secrets join them once read.
        let masker = Masker::new(crate::env::mask::known_secrets(
            &options.layers,
            &options.mask,
        ));
        let fresh = crate::store::FreshRecord {
            project,
            buildspec: options
                .buildspec_name
                .clone()
                .unwrap_or_else(|| options.buildspec.display().to_string()),
            source: source_dir.display().to_string(),
            initiator: options.initiator.clone(),
            session: options.session.as_str().to_owned(),
            batch: options.batch.clone(),
        };
        let mut record = BuildRecord::new(&uuid, number, &fresh, &log_path, now);
        record.invocation = options.request.clone().map(crate::store::Invocation::of);
        record.runner_pid = std::process::id();
        record.runner_start = platform::own_start();
        record.runner_boot = platform::boot_id();
        record.runner_host = platform::host_name();
        std::mem::forget(unstarted);
        let build = Build {
            options,
            stop,
            stopped: None,
            killed: false,
            reporter,
            runtime,
            log: BufWriter::with_capacity(64 * 1024, LogFile::new(log)),
            log_path,
            recorder: Recorder::new(state_dir, dir, record),
            started: Instant::now(),
            attempt_started: Instant::now(),
            deadline: options.timeout.map(|t| Instant::now() + t),
            diagnostics: String::new(),
            invalid: false,
            plan: None,
            session: None,
            spec: None,
            shell_state: SessionState::default(),
            commands_done: 0,
            users: IndexMap::new(),
            retired_groups: Vec::new(),
            own_identity: [None, None, None],
            pump: stream::Pump::new(options.log_limit),
            masker,
            secret_names: Vec::new(),
            succeeding: true,
            last_exit: 0,
            timed_out: false,
            // Before the first child: its orphans must come back to this process.
            subreaper: platform::become_subreaper(),
        };
        Ok(build)
    }

    fn record_path(&self) -> PathBuf {
        self.recorder.path()
    }

    /// Writes the record for the first time, and makes the build the state directory's last.
    ///
    /// Once the buildspec has been read and checked, before the cache is restored: until then
    /// the runner waits on nothing outside itself, and a one-command build writes its record
    /// twice, not three times. Before the console is flushed, which may wait on whatever reads
    /// it.
    fn record_started(&mut self) -> Result<(), StateError> {
        self.recorder.start(&self.masker)
    }

    /// Notes that the record changed. It is written before the runner next starts or waits on
    /// anything outside it ([`Self::save_record`]).
    fn record_changed(&mut self) {
        self.recorder.changed();
    }

    /// Writes the record if it changed; a failure to write is reported in the log and does not
    /// stop the build. Called before a command is started and before every wait on a command,
    /// a process or a transfer.
    ///
    /// The console and the log are flushed first, so that what the record says happened is
    /// shown before the wait. A phase's end does not flush by itself: the phases a build goes
    /// through without waiting (an empty `install`) would each cost a write of the console,
    /// which wakes whatever reads it, and of the log.
    pub(super) fn save_record(&mut self) {
        if !self.recorder.unsaved() {
            return;
        }
        self.flush();
        if let Err(e) = self.recorder.save(&self.masker) {
            self.message(&format!("warning: cannot save the build record: {e}"));
        }
    }

    fn emit_at(&mut self, time: Timestamp, event: &Event<'_>) {
        if self.masker.is_empty() {
            self.write_event(time, event);
        } else {
            // Every text an event carries is masked before anything is written.
            let masked = event.masked(&self.masker);
            self.write_event(time, &masked);
        }
    }

    fn write_event(&mut self, time: Timestamp, event: &Event<'_>) {
        // A log that cannot be written must not stop the build; the console still shows it.
        let _ = crate::events::write_log(&mut self.log, time, event);
        self.reporter.report(time, event);
    }

    fn emit(&mut self, event: &Event<'_>) {
        self.emit_at(Timestamp::now(), event);
    }

    fn message(&mut self, text: &str) {
        self.emit(&Event::Message { text: text.into() });
    }

    fn flush(&mut self) {
        self.flush_log();
        self.reporter.flush();
    }

    /// Writes out what the log holds; the first write that failed is said on the console (the
    /// log cannot hold it) and kept in the record.
    fn flush_log(&mut self) {
        let _ = self.log.flush();
        if let Some(e) = self.log.get_mut().take_failure() {
            let text = format!(
                "warning: cannot write the log {}: {e}; lines are missing from it",
                self.log_path.display()
            );
            self.reporter
                .report(Timestamp::now(), &Event::Message { text: text.into() });
            self.recorder.edit().log_incomplete = Some(e.to_string());
            self.record_changed();
        }
    }

    fn begin_phase(&mut self, phase: Phase, attempt: u32) {
        if attempt == 1 {
            self.recorder.edit().phases.push(PhaseRecord {
                phase,
                status: Status::InProgress,
                start_time: Timestamp::now(),
                end_time: None,
                duration_ms: None,
                contexts: Vec::new(),
                attempts: 1,
            });
        } else if let Some(last) = self.recorder.edit().phases.last_mut() {
            last.attempts = attempt;
        }
        self.attempt_started = Instant::now();
        self.emit(&Event::PhaseStarted { phase, attempt });
        self.record_changed();
    }

    fn end_phase(
        &mut self,
        phase: Phase,
        status: Status,
        context: Option<Context>,
        final_attempt: bool,
    ) {
        self.reap_orphans();
        let now = Timestamp::now();
        let mut duration = Duration::ZERO;
        if let Some(last) = self.recorder.edit().phases.last_mut() {
            if let Some(c) = &context {
                last.contexts.push(Context {
                    status_code: c.status_code.clone(),
                    message: self.masker.text(&c.message).into_owned(),
                });
            }
            duration = self.attempt_started.elapsed();
            if final_attempt {
                last.status = status;
                last.end_time = Some(now);
                let whole = now.duration_since(last.start_time).unsigned_abs();
                last.duration_ms = Some(u64::try_from(whole.as_millis()).unwrap_or(u64::MAX));
            }
        }
        self.emit(&Event::PhaseFinished {
            phase,
            status,
            context: context.map(Cow::Owned),
            duration,
        });
        self.record_changed();
    }

    fn run(&mut self) -> Result<(), StateError> {
        self.emit(&Event::BuildStarted {
            id: self.recorder.record().id.clone().into(),
            number: self.recorder.record().number,
            project: self.recorder.record().project.clone().into(),
            buildspec: self.recorder.record().buildspec.clone().into(),
            source: self.recorder.record().source.clone().into(),
            record_path: self.record_path().display().to_string().into(),
            log_path: self.log_path.display().to_string().into(),
        });
        self.message(&format!(
            "Running on buildspec {} (local build)",
            env!("CARGO_PKG_VERSION")
        ));
        if !self.download_source()? {
            return Ok(());
        }
        if let Some(plan) = self.plan.clone() {
            phases::run(self, &plan);
        }
        Ok(())
    }

    fn fail_download(&mut self, code: ContextCode, message: &str) {
        self.end_phase(
            Phase::DownloadSource,
            Status::Failed,
            Some(Context::new(code, message)),
            true,
        );
    }

    fn final_status(&self) -> Status {
        let statuses: Vec<Status> = self
            .recorder
            .record()
            .phases
            .iter()
            .map(|p| p.status)
            .collect();
        for s in [
            Status::Fault,
            Status::Stopped,
            Status::TimedOut,
            Status::Failed,
        ] {
            if statuses.contains(&s) {
                return s;
            }
        }
        Status::Succeeded
    }
}

/// The phase loop drives the build's real shell session.
impl phases::Shell for Build<'_> {
    type State = SessionState;

    fn enter(&mut self, phase: &PlannedPhase) {
        self.use_user(phase.run_as.as_deref());
    }

    fn begin(&mut self, phase: Phase, attempt: u32) {
        self.begin_phase(phase, attempt);
    }

    fn end(&mut self, phase: Phase, status: Status, context: Option<Context>, last: bool) {
        self.end_phase(phase, status, context, last);
    }

    fn run_commands(
        &mut self,
        phase: &PlannedPhase,
        list: &[buildspec::Command],
        finally: bool,
    ) -> Vec<(usize, phases::Ran)> {
        self.run_list(Phase::from(phase.name), phase.name, list, finally)
    }

    fn output_matches(&self, pattern: &regex::Regex) -> bool {
        self.pump
            .tail
            .iter()
            .any(|line| pattern.is_match(&String::from_utf8_lossy(line)))
    }

    fn fail(&mut self) {
        self.succeeding = false;
    }

    fn state(&self) -> SessionState {
        self.shell_state.clone()
    }

    fn restore(&mut self, state: SessionState) {
        self.shell_state = state;
    }

    fn interrupted(&self, status: Status) -> Context {
        match status {
            Status::TimedOut => Context::new(ContextCode::BuildTimedOut, "Build has timed out. "),
            Status::Stopped => Context::stopped_by(self.stopped.unwrap_or(libc::SIGTERM)),
            _ => Context::new(
                ContextCode::ClientError,
                "the shell session could not run the command",
            ),
        }
    }

    fn say(&mut self, text: &str) {
        self.message(text);
    }

    fn after_interruption(&mut self, _status: Status) -> Next {
        // The interrupted driver left its last state behind.
        self.recover_state();
        // The upload gets its own time, whatever is left of the build's.
        self.deadline = Some(Instant::now() + self.options.cleanup_timeout);
        if self.killed {
            Next::Finalizing
        } else {
            Next::UploadArtifacts
        }
    }

    fn upload(&mut self) {
        self.upload_artifacts();
    }
}

/// The script of a phase's command: `build-3`, `post_build-finally-1`.
fn script_id(phase: PhaseName, finally: bool, index: usize) -> String {
    let list = if finally { "finally-" } else { "" };
    format!("{}-{list}{}", phase.key(), index + 1)
}

/// `NAME=value` lines, sorted, values of more than one line quoted.
fn env_dump(state: &SessionState, secrets: &[String], masker: &Masker) -> String {
    let mut out = String::new();
    for (name, value) in &state.variables {
        out.push_str(name);
        out.push('=');
        if secrets.contains(name) {
            out.push_str(crate::env::mask::MASK);
        } else {
            out.push_str(&crate::build::shell::state::quote(&masker.text(value)));
        }
        out.push('\n');
    }
    out
}

/// The checkout's commit, read from `.git` without running git. The checkout is the build's
/// input, which a root runner reads before anything runs: its files are read only as regular
/// files (no link followed, no FIFO waited on, a few KiB at most), a reference only under
/// `refs/`, and only a commit id comes out, so that a `.git/HEAD` that links to, or a reference
/// that climbs to, a file the build may not read passes nothing of it into the build's
/// variables.
fn git_head(source: &Path) -> Option<String> {
    const LIMIT: u64 = 4096;
    let git = source.join(".git");
    let read = |path: &Path| {
        crate::store::read_regular(path, LIMIT)
            .ok()
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    };
    let is_commit =
        |text: &str| matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit());
    let head = read(&git.join("HEAD"))?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref: ") else {
        return is_commit(head).then(|| head.to_owned());
    };
    let reference = reference.trim();
    let safe = reference.starts_with("refs/")
        && reference
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if !safe {
        return None;
    }
    if let Some(commit) = read(&git.join(reference)) {
        let commit = commit.trim();
        return is_commit(commit).then(|| commit.to_owned());
    }
    let packed = read_packed_refs(&git.join("packed-refs"))?;
    packed
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(_, name)| *name == reference)
        .map(|(commit, _)| commit)
        .filter(|commit| is_commit(commit))
        .map(str::to_owned)
}

/// `packed-refs`, which may be large in a big repository, read as `git_head` reads the rest.
fn read_packed_refs(path: &Path) -> Option<String> {
    crate::store::read_regular(path, 64 * 1024 * 1024)
        .ok()
        .flatten()
        .and_then(|bytes| String::from_utf8(bytes).ok())
}
