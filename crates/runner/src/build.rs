//! One build, from DOWNLOAD_SOURCE to FINALIZING.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use buildspec::plan::{Next, PlannedPhase};
use buildspec::{Command, OnFailure, PhaseName, Plan};
use indexmap::IndexMap;
use jiff::Timestamp;
use nix::sys::signal::Signal;

use crate::env::{self, BuildContext, Layers, Source};
use crate::events::{Context, Event, Phase, Reporter, Status};
use crate::mask::{MaskedStream, Masker};
use crate::output::LineBuffer;
use crate::platform;
use crate::record::{BuildRecord, PhaseRecord, StateDir, StateError, write_atomic};
use crate::secrets::Providers;
use crate::session::{Reply, Session, SessionKind, SessionSpec};
use crate::state::SessionState;
use crate::stop::Stop;

/// Exit codes by outcome (docs/exit-codes.md).
pub mod exit {
    /// The build succeeded.
    pub const SUCCEEDED: i32 = 0;
    /// A phase failed.
    pub const FAILED: i32 = 1;
    /// The buildspec is invalid (or the command line is wrong).
    pub const INVALID: i32 = 2;
    /// The runner itself failed.
    pub const FAULT: i32 = 3;
    /// The build timed out.
    pub const TIMED_OUT: i32 = 124;
}

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
}

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
    build.run();
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
    state_dir: StateDir,
    dir: PathBuf,
    scripts: PathBuf,
    log: BufWriter<File>,
    log_path: PathBuf,
    record: BuildRecord,
    started: Instant,
    /// When the running phase's current attempt began.
    attempt_started: Instant,
    deadline: Option<Instant>,
    diagnostics: String,
    /// Invalid buildspec: the exit code says so.
    invalid: bool,
    plan: Option<Plan>,
    session: Option<Session>,
    spec: Option<SessionSpec>,
    state: SessionState,
    output_read: Option<File>,
    output_write: Option<OwnedFd>,
    lines: LineBuffer,
    /// The start of the marker lines that delimit persistent commands' output.
    marker: Option<memchr::memmem::Finder<'static>>,
    /// Output read but not yet passed on (after a marker), from `pending_pos` on.
    pending_output: Vec<u8>,
    pending_pos: usize,
    /// Commands finished so far.
    commands_done: u64,
    /// The users of `run-as`, looked up.
    users: IndexMap<String, platform::RunAs>,
    /// Process groups of sessions that ended before the build (a phase with another user).
    retired_groups: Vec<u32>,
    /// The runner's own HOME, USER and LOGNAME, for the phases after a `run-as` phase.
    own_identity: [Option<String>; 3],
    stream: MaskedStream,
    read_buf: Vec<u8>,
    masker: Masker,
    /// Variables whose values came from a provider: dumps show them as `***`.
    secret_names: Vec<String>,
    tail: VecDeque<Vec<u8>>,
    succeeding: bool,
    last_exit: i32,
    timed_out: bool,
}

impl<'r> Build<'r> {
    fn create(
        options: &'r BuildOptions,
        reporter: &'r mut dyn Reporter,
        stop: &'r Stop,
    ) -> Result<Self, RunError> {
        let state_dir = StateDir::open(&options.state_dir)?;
        let source_dir =
            std::path::absolute(&options.source_dir).unwrap_or_else(|_| options.source_dir.clone());
        let project = options.project.clone().unwrap_or_else(|| {
            source_dir
                .file_name()
                .map_or_else(|| "local".to_owned(), |n| n.to_string_lossy().into_owned())
        });
        let uuid = uuid::Uuid::new_v4().to_string();
        let number = state_dir.next_number(&project)?;
        let dir = state_dir.build_dir(&uuid);
        // The scripts the shell runs, and the state files that pass values between commands,
        // live in memory when the machine allows: creating a file on a journaled disk costs more
        // than running a trivial command, and the state files hold secrets in clear.
        let scripts = crate::session::runtime_dir(&uuid).unwrap_or_else(|| dir.join("scripts"));
        crate::record::create_private_dir(&scripts).map_err(|source| RunError::Io {
            path: scripts.display().to_string(),
            source,
        })?;
        crate::record::create_private_dir(&dir).map_err(|source| RunError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let log_path = dir.join("build.log");
        let log = crate::record::private_file(&log_path).map_err(|source| RunError::Io {
            path: log_path.display().to_string(),
            source,
        })?;
        let now = Timestamp::now();
        let record = BuildRecord {
            id: format!("{project}:{uuid}"),
            uuid: uuid.clone(),
            number,
            project,
            buildspec: options.buildspec.display().to_string(),
            source: source_dir.display().to_string(),
            status: Status::InProgress,
            start_time: now,
            end_time: None,
            initiator: options.initiator.clone(),
            session: options.session.as_str().to_owned(),
            phases: Vec::new(),
            artifacts: Vec::new(),
            exported_variables: IndexMap::new(),
            log_path: log_path.display().to_string(),
            exit_code: None,
            runner_pid: std::process::id(),
            runner_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let build = Build {
            options,
            stop,
            stopped: None,
            killed: false,
            reporter,
            state_dir,
            dir,
            scripts,
            log: BufWriter::with_capacity(64 * 1024, log),
            log_path,
            record,
            started: Instant::now(),
            attempt_started: Instant::now(),
            deadline: options.timeout.map(|t| Instant::now() + t),
            diagnostics: String::new(),
            invalid: false,
            plan: None,
            session: None,
            spec: None,
            state: SessionState::default(),
            output_read: None,
            output_write: None,
            lines: LineBuffer::default(),
            marker: None,
            pending_output: Vec::new(),
            pending_pos: 0,
            commands_done: 0,
            users: IndexMap::new(),
            retired_groups: Vec::new(),
            own_identity: [None, None, None],
            stream: MaskedStream::default(),
            read_buf: vec![0u8; OUTPUT_PIPE_BYTES as usize],
            masker: Masker::default(),
            secret_names: Vec::new(),
            tail: VecDeque::new(),
            succeeding: true,
            last_exit: 0,
            timed_out: false,
        };
        build.save()?;
        build.state_dir.set_last(&uuid)?;
        platform::become_subreaper();
        Ok(build)
    }

    fn record_path(&self) -> PathBuf {
        self.dir.join("build.json")
    }

    fn save(&self) -> Result<(), StateError> {
        let mut json = serde_json::to_vec_pretty(&self.record).unwrap_or_default();
        json.push(b'\n');
        write_atomic(&self.record_path(), &json)
    }

    /// Saves the record; a failure to save is reported in the log and does not stop the build.
    fn checkpoint(&mut self) {
        if let Err(e) = self.save() {
            self.message(&format!("warning: cannot save the build record: {e}"));
        }
    }

    fn emit_at(&mut self, time: Timestamp, event: &Event<'_>) {
        if self.masker.is_empty() {
            self.write_event(time, event);
            return;
        }
        // Every text an event carries is masked before anything is written.
        let m = &self.masker;
        match *event {
            Event::Message { text } => {
                let text = m.text(text).into_owned();
                self.write_event(time, &Event::Message { text: &text });
            }
            Event::Output { line } => {
                let line = m.bytes(line).into_owned();
                self.write_event(time, &Event::Output { line: &line });
            }
            Event::CommandStarted {
                phase,
                command,
                line,
                finally,
            } => {
                let command = m.text(command).into_owned();
                self.write_event(
                    time,
                    &Event::CommandStarted {
                        phase,
                        command: &command,
                        line,
                        finally,
                    },
                );
            }
            Event::CommandFinished {
                phase,
                command,
                exit_code,
                duration,
            } => {
                let command = m.text(command).into_owned();
                self.write_event(
                    time,
                    &Event::CommandFinished {
                        phase,
                        command: &command,
                        exit_code,
                        duration,
                    },
                );
            }
            Event::PhaseFinished {
                phase,
                status,
                context: Some(context),
                duration,
            } => {
                let context = Context {
                    status_code: context.status_code.clone(),
                    message: m.text(&context.message).into_owned(),
                };
                self.write_event(
                    time,
                    &Event::PhaseFinished {
                        phase,
                        status,
                        context: Some(&context),
                        duration,
                    },
                );
            }
            _ => self.write_event(time, event),
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
        self.emit(&Event::Message { text });
    }

    fn flush(&mut self) {
        let _ = self.log.flush();
        self.reporter.flush();
    }

    fn begin_phase(&mut self, phase: Phase, attempt: u32) {
        if attempt == 1 {
            self.record.phases.push(PhaseRecord {
                phase,
                status: Status::InProgress,
                start_time: Timestamp::now(),
                end_time: None,
                duration_ms: None,
                contexts: Vec::new(),
                attempts: 1,
            });
        } else if let Some(last) = self.record.phases.last_mut() {
            last.attempts = attempt;
        }
        self.attempt_started = Instant::now();
        self.emit(&Event::PhaseStarted { phase, attempt });
        self.checkpoint();
    }

    fn end_phase(
        &mut self,
        phase: Phase,
        status: Status,
        context: Option<Context>,
        final_attempt: bool,
    ) {
        if let Some(session) = self.session.as_ref() {
            platform::reap(session.pgid(), &[]);
        }
        let now = Timestamp::now();
        let mut duration = Duration::ZERO;
        if let Some(last) = self.record.phases.last_mut() {
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
            context: context.as_ref(),
            duration,
        });
        self.flush();
        self.checkpoint();
    }

    fn run(&mut self) {
        self.emit(&Event::BuildStarted {
            id: &self.record.id.clone(),
            number: self.record.number,
            project: &self.record.project.clone(),
            buildspec: &self.record.buildspec.clone(),
            source: &self.record.source.clone(),
            record_path: &self.record_path().display().to_string(),
            log_path: &self.log_path.display().to_string(),
        });
        self.message(&format!(
            "Running on buildspec {} (local build)",
            env!("CARGO_PKG_VERSION")
        ));
        if !self.download_source() {
            return;
        }
        let mut next = Next::Phase(PhaseName::Install);
        loop {
            match next {
                Next::Phase(name) => {
                    let (status, after) = self.command_phase(name);
                    match status {
                        Status::Succeeded => next = after,
                        Status::TimedOut | Status::Stopped => {
                            // The upload gets its own time, whatever is left of the build's.
                            self.deadline = Some(Instant::now() + self.options.cleanup_timeout);
                            next = if self.killed {
                                Next::Finalizing
                            } else {
                                Next::UploadArtifacts
                            };
                        }
                        _ => next = after,
                    }
                }
                Next::UploadArtifacts => {
                    self.upload_artifacts();
                    break;
                }
                Next::Finalizing => break,
            }
        }
    }

    /// Reads and checks the buildspec and prepares the environment. False when the build cannot
    /// go on.
    fn download_source(&mut self) -> bool {
        self.begin_phase(Phase::DownloadSource, 1);
        let source = self.record.source.clone();
        self.message(&format!("CODEBUILD_SRC_DIR={source}"));
        let yaml_location = std::path::absolute(&self.options.buildspec)
            .unwrap_or_else(|_| self.options.buildspec.clone());
        self.message(&format!("YAML location is {}", yaml_location.display()));
        let checked = match buildspec::check_file(
            &self.options.buildspec,
            &buildspec::Options {
                strict: self.options.strict,
            },
        ) {
            Ok(checked) => checked,
            Err(error) => {
                let message = match &error {
                    buildspec::ReadError::Io { source, .. }
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        "YAML file does not exist".to_owned()
                    }
                    other => other.to_string(),
                };
                self.invalid = true;
                self.fail_download(
                    "YAML_FILE_ERROR",
                    &format!("{message}: {}", self.options.buildspec.display()),
                );
                return false;
            }
        };
        let _ = crate::record::write_private(&self.dir.join("buildspec.yml"), &checked.source.text);
        if !checked.diagnostics.is_empty() {
            self.diagnostics = checked.render();
            for d in &checked.diagnostics {
                let at = d
                    .span
                    .map(|s| format!(":{}:{}", s.line, s.column))
                    .unwrap_or_default();
                let severity = if d.is_error() { "error" } else { "warning" };
                self.message(&format!(
                    "{}{at}: {severity}[{}]: {}",
                    checked.source.name,
                    d.code.as_str(),
                    d.message
                ));
            }
        }
        let Some(plan) = checked.plan() else {
            self.invalid = true;
            let first = checked.diagnostics.iter().find(|d| d.is_error());
            let message = first.map_or_else(String::new, |d| match d.span {
                Some(s) => format!("{} at line {} column {}", d.message, s.line, s.column),
                None => d.message.clone(),
            });
            self.fail_download("YAML_FILE_ERROR", &message);
            return false;
        };
        let spec_env = checked
            .buildspec
            .as_ref()
            .map(|b| b.env.clone())
            .unwrap_or_default();
        self.message("Processing environment variables");
        // Values from Parameter Store and Secrets Manager, masked everywhere from now on.
        let mut secret_values: IndexMap<String, String> = IndexMap::new();
        for (name, parameter) in &spec_env.parameter_store {
            match self.options.providers.parameter(&parameter.value) {
                Ok(value) => {
                    secret_values.insert(name.clone(), value.to_owned());
                }
                Err(message) => {
                    self.fail_download(
                        "CLIENT_ERROR",
                        &format!("{message} (for {name}; give it with --parameters FILE)"),
                    );
                    return false;
                }
            }
        }
        for (name, reference) in &spec_env.secrets_manager {
            match self.options.providers.secret(&reference.value) {
                Ok(value) => {
                    secret_values.insert(name.clone(), value);
                }
                Err(message) => {
                    self.fail_download(
                        "CLIENT_ERROR",
                        &format!("{message} (for {name}; give it with --secrets FILE)"),
                    );
                    return false;
                }
            }
        }
        // CodeBuild also hides AWS credentials; locally they come from the environment.
        let credentials: Vec<String> = [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ]
        .iter()
        .filter_map(|name| {
            self.options
                .layers
                .overrides
                .iter()
                .chain(&self.options.layers.env_file)
                .chain(&self.options.layers.inherited)
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        })
        .collect();
        self.masker = Masker::new(
            secret_values
                .values()
                .chain(self.options.mask.iter())
                .chain(credentials.iter()),
        );
        self.secret_names = secret_values.keys().cloned().collect();
        if plan.shell.is_windows() {
            self.fail_download(
                "CLIENT_ERROR",
                &format!(
                    "{} is a Windows shell; the local runner runs POSIX shells",
                    plan.shell.program()
                ),
            );
            return false;
        }
        let install = plan.phase(PhaseName::Install);
        if install.runtime_versions.is_empty() {
            self.message("No runtime version selected in buildspec.");
        } else {
            let wanted: Vec<String> = install
                .runtime_versions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            self.message(&format!(
                "Skipping install of runtimes. Runtime version selection is not supported by this build image (the local machine's own are used; requested: {})",
                wanted.join(", ")
            ));
        }
        self.message(&format!("Moving to directory {source}"));
        match &plan.cache {
            None => self.message("Cache is not defined in the buildspec"),
            Some(_) => self.message("Skip cache due to: the local runner does not cache yet"),
        }
        let present: Vec<&PlannedPhase> = plan.phases.iter().filter(|p| p.present).collect();
        self.message(&format!("Phases found in YAML: {}", present.len()));
        let lines: Vec<String> = present
            .iter()
            .map(|p| format!(" {}: {} commands", p.name.upper(), p.commands.len()))
            .collect();
        for line in lines {
            self.message(&line);
        }

        // The environment: the layers, then CodeBuild's variables with this build's values.
        let context = BuildContext {
            project: self.record.project.clone(),
            source_dir: source.clone(),
            initiator: self.options.initiator.clone(),
            region: env::region(&self.options.layers, &spec_env),
            build_uuid: Some(self.record.uuid.clone()),
            build_number: Some(self.record.number),
            start_time_ms: Some(
                self.record
                    .start_time
                    .as_millisecond()
                    .try_into()
                    .unwrap_or(0),
            ),
            source_version: git_head(Path::new(&source)),
            batch_identifier: None,
        };
        let mut layers = self.options.layers.clone();
        layers.codebuild = env::codebuild_variables(&context);
        let (variables, warnings) = env::resolve(&spec_env, &layers);
        for w in warnings {
            self.message(&format!("warning: {}", w.message));
        }
        self.state = SessionState {
            variables: variables
                .into_iter()
                .filter_map(|v| {
                    let value = match v.source {
                        Source::ParameterStore | Source::SecretsManager => {
                            secret_values.get(&v.name).cloned()
                        }
                        _ => v.value,
                    };
                    value.map(|value| (v.name, value))
                })
                .collect(),
            cwd: source,
        };
        self.own_identity =
            ["HOME", "USER", "LOGNAME"].map(|n| self.state.variables.get(n).cloned());
        let dump = env_dump(&self.state, &self.secret_names, &self.masker);
        let _ = crate::record::create_private_dir(&self.dir.join("env"));
        let _ = crate::record::write_private(&self.dir.join("env").join("start.env"), dump);
        // Version 0.1 carries nothing between commands, whatever session was asked for.
        let kind = if plan.session_state {
            self.options.session
        } else {
            if self.options.session == SessionKind::Persistent {
                self.message("Version 0.1 runs every command in a fresh shell: --session persistent does not apply");
            }
            SessionKind::Compat
        };
        if let Some(batch) = &plan.batch {
            self.message(&format!(
                "This buildspec has a batch section ({} builds); `buildspec run` runs its phases once, as a single build",
                batch.builds.len()
            ));
        }
        // run-as: each user is looked up now, so that a build that cannot switch users fails
        // before anything runs. The runner's own user needs no switch.
        let me = platform::current_user();
        let mut names: Vec<&str> = plan
            .phases
            .iter()
            .filter_map(|p| p.run_as.as_deref())
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            if me.as_deref() == Some(name) {
                continue;
            }
            if !platform::is_root() {
                self.fail_download(
                    "CLIENT_ERROR",
                    &format!(
                        "run-as {name} needs the runner to run as root; it runs as {}",
                        me.as_deref().unwrap_or("another user")
                    ),
                );
                return false;
            }
            match platform::lookup_user(name) {
                Ok(user) => {
                    self.users.insert(name.to_owned(), user);
                }
                Err(message) => {
                    self.fail_download("CLIENT_ERROR", &message);
                    return false;
                }
            }
        }
        self.record.session = kind.as_str().to_owned();
        // Every command's script is written now, so that running a command costs no file
        // writes; the record keeps them all in one file.
        let mut record_scripts = String::new();
        for phase in &plan.phases {
            for (finally, list) in [(false, &phase.commands), (true, &phase.finally)] {
                for (index, command) in list.iter().enumerate() {
                    let id = script_id(phase.name, finally, index);
                    let text = crate::session::script(&command.text, command.line, kind);
                    record_scripts.push_str(&format!(
                        "#### {id}.sh (buildspec line {})\n{text}",
                        command.line
                    ));
                    if let Err(e) = std::fs::write(self.scripts.join(format!("{id}.sh")), text) {
                        self.end_phase(
                            Phase::DownloadSource,
                            Status::Fault,
                            Some(Context {
                                status_code: "CLIENT_ERROR".to_owned(),
                                message: format!(
                                    "cannot write the command scripts in {}: {e}",
                                    self.scripts.display()
                                ),
                            }),
                            true,
                        );
                        return false;
                    }
                }
            }
        }
        let _ = crate::record::write_private(&self.dir.join("scripts.sh"), record_scripts);
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.spec = Some(SessionSpec {
            shell: plan.shell.program().to_owned(),
            kind,
            stateless: !plan.session_state,
            scripts: self.scripts.clone(),
            name: self.options.buildspec.file_name().map_or_else(
                || "buildspec".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            ),
            user: None,
            token: token.clone(),
        });
        if kind == SessionKind::Persistent {
            self.marker = Some(
                memchr::memmem::Finder::new(format!("\x1ebs:{token}:").as_bytes()).into_owned(),
            );
        }
        self.plan = Some(plan);
        self.end_phase(Phase::DownloadSource, Status::Succeeded, None, true);
        true
    }

    fn fail_download(&mut self, code: &str, message: &str) {
        self.end_phase(
            Phase::DownloadSource,
            Status::Failed,
            Some(Context {
                status_code: code.to_owned(),
                message: message.to_owned(),
            }),
            true,
        );
    }

    /// Runs a command phase with its retries; returns its status and where the build goes next.
    fn command_phase(&mut self, name: PhaseName) -> (Status, Next) {
        let phase = Phase::from(name);
        let Some(planned) = self.plan.as_ref().map(|p| p.phase(name).clone()) else {
            return (Status::Fault, Next::Finalizing);
        };
        self.use_user(planned.run_as.as_deref());
        let attempts = planned.retries + 1;
        let start_state = self.state.clone();
        let pattern = match &planned.on_failure {
            Some(OnFailure::Retry {
                pattern: Some(p), ..
            }) => regex::Regex::new(p).ok(),
            _ => None,
        };
        for attempt in 1..=attempts {
            self.begin_phase(phase, attempt);
            // The first failure of the attempt, and whether it will be retried: decided once,
            // from the failing command's own output, before `finally` adds any.
            let mut failure: Option<(String, bool)> = None;
            let mut interrupted = None;
            let last_attempt = attempt == attempts;
            'commands: for (list, finally) in [(&planned.commands, false), (&planned.finally, true)]
            {
                for (index, result) in self.run_list(phase, name, list, finally) {
                    let command = &list[index];
                    match result {
                        Ok(0) => {}
                        Ok(code) => {
                            let message = format!(
                                "Error while executing command: {}. Reason: exit status {code}",
                                command.text
                            );
                            if failure.is_none() {
                                let retrying = !last_attempt
                                    && self.retry_matches(
                                        pattern.as_ref(),
                                        &message,
                                        planned.on_failure.as_ref(),
                                    );
                                if !retrying {
                                    // The build fails the moment a command fails for good, so
                                    // the phase's own `finally` already sees 0.
                                    self.succeeding = false;
                                }
                                failure = Some((message, retrying));
                            }
                            // A failed command skips the rest of its list; `finally` still runs.
                            if finally {
                                break 'commands;
                            }
                            break;
                        }
                        Err(status) => {
                            interrupted = Some(status);
                            break 'commands;
                        }
                    }
                }
            }
            if let Some(status) = interrupted {
                let context = match status {
                    Status::TimedOut => Context {
                        status_code: "BUILD_TIMED_OUT".to_owned(),
                        message: "Build has timed out. ".to_owned(),
                    },
                    Status::Stopped => Context {
                        status_code: "BUILD_STOPPED".to_owned(),
                        message: format!(
                            "Build stopped by {}",
                            signal_name(self.stopped.unwrap_or(15))
                        ),
                    },
                    _ => Context {
                        status_code: "CLIENT_ERROR".to_owned(),
                        message: "the shell session could not run the command".to_owned(),
                    },
                };
                self.succeeding = false;
                self.end_phase(phase, status, Some(context), true);
                return (status, Next::Finalizing);
            }
            match failure {
                None => {
                    self.end_phase(phase, Status::Succeeded, None, true);
                    return (Status::Succeeded, buildspec::plan::after_success(name));
                }
                Some((message, retrying)) => {
                    let context = Context {
                        status_code: "COMMAND_EXECUTION_ERROR".to_owned(),
                        message,
                    };
                    if retrying {
                        self.end_phase(phase, Status::Failed, Some(context), false);
                        self.message(&format!(
                            "Phase {} failed; retrying from the state it started with (attempt {} of {attempts})",
                            phase.as_str(),
                            attempt + 1
                        ));
                        self.state = start_state.clone();
                        continue;
                    }
                    self.succeeding = false;
                    self.end_phase(phase, Status::Failed, Some(context), true);
                    return (
                        Status::Failed,
                        buildspec::plan::after_failure(name, planned.on_failure.as_ref()),
                    );
                }
            }
        }
        (Status::Failed, Next::Finalizing)
    }

    /// Whether a failure is retried: always for RETRY and RETRY-N, for RETRY-regex only when the
    /// regex matches the failure message or the command's last output lines.
    fn retry_matches(
        &self,
        pattern: Option<&regex::Regex>,
        message: &str,
        on_failure: Option<&OnFailure>,
    ) -> bool {
        match on_failure {
            Some(OnFailure::Retry { pattern: None, .. }) => true,
            Some(OnFailure::Retry {
                pattern: Some(_), ..
            }) => pattern.is_some_and(|re| {
                re.is_match(message)
                    || self
                        .tail
                        .iter()
                        .any(|line| re.is_match(&String::from_utf8_lossy(line)))
            }),
            _ => false,
        }
    }

    /// Makes the next command run as `name` (`run-as`; `None` or the runner's own user: no
    /// switch). A session of another user ends first; its background processes stay, as they
    /// would on CodeBuild, and are ended with the build.
    fn use_user(&mut self, name: Option<&str>) {
        let wanted = name.and_then(|n| self.users.get(n)).cloned();
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        if spec.user == wanted {
            return;
        }
        spec.user = wanted.clone();
        // HOME, USER and LOGNAME follow the user: its own in its phases, the runner's after.
        for (name, own) in [("HOME", 0), ("USER", 1), ("LOGNAME", 2)] {
            let value = match &wanted {
                Some(user) => Some(if own == 0 {
                    user.home.clone()
                } else {
                    user.name.clone()
                }),
                None => self.own_identity[own].clone(),
            };
            match value {
                Some(value) => {
                    self.state.variables.insert(name.to_owned(), value);
                }
                None => {
                    self.state.variables.remove(name);
                }
            }
        }
        if let Some(session) = self.session.take() {
            self.retired_groups.push(session.pgid());
            let (mut child, mut status) = session.close();
            if wait_eof(&mut status, self.options.grace) {
                let _ = child.wait();
            } else {
                let _ = platform::signal_group(
                    self.retired_groups[self.retired_groups.len() - 1],
                    Signal::SIGKILL,
                );
                let _ = child.wait();
            }
        }
    }

    fn ensure_session(&mut self) -> io::Result<()> {
        if self.session.is_some() {
            return Ok(());
        }
        if self.output_write.is_none() {
            let (read, write) = platform::pipe()?;
            platform::set_nonblocking(platform::borrow(&read))?;
            platform::enlarge_pipe(platform::borrow(&read), OUTPUT_PIPE_BYTES);
            self.output_read = Some(File::from(read));
            self.output_write = Some(write);
        }
        let spec = self
            .spec
            .clone()
            .ok_or_else(|| io::Error::other("no session spec"))?;
        let output = self
            .output_write
            .as_ref()
            .ok_or_else(|| io::Error::other("no output pipe"))?;
        self.session = Some(Session::start(spec, &self.state, output)?);
        Ok(())
    }

    /// Runs a list of commands (a phase's `commands` or its `finally`) until one fails; returns
    /// the result of each command that ran, in order. `Err` carries the status that interrupts
    /// the build (TIMED_OUT, STOPPED, FAULT).
    fn run_list(
        &mut self,
        phase: Phase,
        name: PhaseName,
        list: &[Command],
        finally: bool,
    ) -> Vec<(usize, Result<i32, Status>)> {
        let persistent = self
            .spec
            .as_ref()
            .is_some_and(|s| s.kind == SessionKind::Persistent);
        if persistent {
            return self.run_pipelined(phase, name, list, finally);
        }
        let mut results = Vec::new();
        for (index, command) in list.iter().enumerate() {
            let id = script_id(name, finally, index);
            let result = self.run_command(phase, &id, &command.text, command.line, finally);
            let go_on = matches!(result, Ok(0));
            results.push((index, result));
            if !go_on {
                break;
            }
        }
        results
    }

    /// A persistent session gets the whole list at once, so each command starts without a
    /// round trip to the runner; the marker the driver writes before each command tells the
    /// runner where that command's output begins.
    fn run_pipelined(
        &mut self,
        phase: Phase,
        name: PhaseName,
        list: &[Command],
        finally: bool,
    ) -> Vec<(usize, Result<i32, Status>)> {
        let mut results: Vec<(usize, Result<i32, Status>)> = Vec::new();
        // The first command not yet run, and the one running (started, not finished).
        let mut next = 0;
        'session: while next < list.len() {
            if let Some(signal) = self.stop.take() {
                self.stopped = Some(signal);
                self.message(&format!("Build stopped by {}", signal_name(signal)));
                results.push((next, Err(Status::Stopped)));
                return results;
            }
            if let Err(e) = self.ensure_session() {
                self.message(&format!("cannot start the shell: {e}"));
                results.push((next, Err(Status::Fault)));
                return results;
            }
            let ids: Vec<String> = (next..list.len())
                .map(|i| script_id(name, finally, i))
                .collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let sent = match self.session.as_mut() {
                Some(session) => {
                    session.send_batch(&refs, self.succeeding, self.last_exit, &self.state)
                }
                None => Err(io::Error::other("no session")),
            };
            if let Err(e) = sent {
                self.message(&format!("cannot send the commands to the shell: {e}"));
                results.push((next, Err(Status::Fault)));
                return results;
            }
            let mut running: Option<(usize, Instant)> = None;
            // A marker seen while draining the output of the command before it.
            let mut marker: Option<String> = None;
            loop {
                // Output first: up to the next marker, which starts the next command.
                let id = match marker.take() {
                    Some(id) => Some(id),
                    None => self.pump_output().1,
                };
                if let Some(id) = id {
                    if let Some((index, started)) = running.take() {
                        // Its status was written before the next marker: it is there to read.
                        match self.reply_now() {
                            Ok(code) => {
                                self.finish_command(phase, &list[index], code, started);
                                results.push((index, Ok(code)));
                                if code != 0 {
                                    return results;
                                }
                            }
                            Err(status) => {
                                results.push((index, Err(status)));
                                return results;
                            }
                        }
                    }
                    let Some(index) =
                        (next..list.len()).find(|i| script_id(name, finally, *i) == id)
                    else {
                        continue;
                    };
                    self.start_command(phase, &list[index], finally);
                    running = Some((index, Instant::now()));
                    next = index + 1;
                    continue;
                }
                let reply = match self.session.as_mut().map(Session::poll_reply) {
                    Some(Ok(reply)) => reply,
                    Some(Err(e)) => {
                        self.message(&format!("the shell session failed: {e}"));
                        results.push((running.map_or(next, |(i, _)| i), Err(Status::Fault)));
                        return results;
                    }
                    None => Reply::DriverExited(255),
                };
                match reply {
                    Reply::Done(code, state) => {
                        if let Some(state) = state {
                            self.state = state;
                        }
                        // All of its output is in the pipe; a marker may follow it.
                        let (_, after) = self.pump_output();
                        marker = after;
                        let Some((index, started)) = running.take() else {
                            continue;
                        };
                        self.finish_command(phase, &list[index], code, started);
                        results.push((index, Ok(code)));
                        if code != 0 || index + 1 == list.len() {
                            return results;
                        }
                        continue;
                    }
                    Reply::DriverExited(code) => {
                        // The command ended the shell: its status is the shell's. The rest of
                        // the list goes to a new shell, from the last reported state.
                        self.read_output();
                        if let Some(session) = self.session.take() {
                            let (mut child, _) = session.close();
                            let _ = child.wait();
                        }
                        let (index, started) = running.take().unwrap_or((next, Instant::now()));
                        if index == next {
                            self.start_command(phase, &list[index], finally);
                        }
                        self.finish_command(phase, &list[index], code, started);
                        results.push((index, Ok(code)));
                        next = index + 1;
                        if code != 0 {
                            return results;
                        }
                        continue 'session;
                    }
                    Reply::Pending => {}
                }
                if let Some(status) = self.wait_for_output_or_reply() {
                    results.push((running.map_or(next, |(i, _)| i), Err(status)));
                    return results;
                }
            }
        }
        results
    }

    /// Collects the build's orphans that ended (as PID 1, or as subreaper, they are ours; the
    /// driver is not: its handle waits for it). Every few commands: looking costs more than a
    /// trivial command, and a few zombies for a moment cost nothing.
    fn reap_now_and_then(&mut self) {
        self.commands_done += 1;
        if self.commands_done % 16 == 1
            && let Some(session) = self.session.as_ref()
        {
            platform::reap(session.pgid(), &[]);
        }
    }

    fn start_command(&mut self, phase: Phase, command: &Command, finally: bool) {
        self.emit(&Event::CommandStarted {
            phase,
            command: &command.text,
            line: command.line,
            finally,
        });
        self.tail.clear();
    }

    fn finish_command(&mut self, phase: Phase, command: &Command, code: i32, started: Instant) {
        self.pass_output(&[], true);
        self.last_exit = code;
        self.reap_now_and_then();
        self.emit(&Event::CommandFinished {
            phase,
            command: &command.text,
            exit_code: code,
            duration: started.elapsed(),
        });
    }

    /// The driver's reply that must already be in its pipe (the next command's marker came after
    /// it).
    fn reply_now(&mut self) -> Result<i32, Status> {
        loop {
            match self.session.as_mut().map(Session::poll_reply) {
                Some(Ok(Reply::Done(code, state))) => {
                    if let Some(state) = state {
                        self.state = state;
                    }
                    return Ok(code);
                }
                Some(Ok(Reply::DriverExited(code))) => return Ok(code),
                Some(Ok(Reply::Pending)) => {
                    let Some(session) = self.session.as_ref() else {
                        return Err(Status::Fault);
                    };
                    if platform::wait_readable(&[platform::borrow(session.status_fd())], None)
                        .is_err()
                    {
                        return Err(Status::Fault);
                    }
                }
                _ => return Err(Status::Fault),
            }
        }
    }

    /// Waits for output, the driver's reply, a stop request or the deadline. `Some` is the status
    /// that ends the wait for good (TIMED_OUT, STOPPED, FAULT).
    fn wait_for_output_or_reply(&mut self) -> Option<Status> {
        let timeout = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        if timeout == Some(Duration::ZERO) {
            self.timed_out = true;
            self.message("Build timed out: stopping the running command");
            self.stop_processes();
            return Some(Status::TimedOut);
        }
        if let Some(signal) = self.stop.take() {
            self.stopped = Some(signal);
            self.message(&format!(
                "Build stopped by {}: stopping the running command",
                signal_name(signal)
            ));
            self.stop_processes();
            return Some(Status::Stopped);
        }
        let quick = timeout.map_or(FLUSH_AFTER, |t| t.min(FLUSH_AFTER));
        let mut woken = self.poll_only(Some(quick));
        if matches!(woken, Ok(false)) && timeout != Some(quick) {
            self.flush();
            woken = self.poll_only(timeout.map(|t| t.saturating_sub(quick)));
        }
        if let Err(e) = woken {
            self.message(&format!("cannot wait for the command: {e}"));
            return Some(Status::Fault);
        }
        None
    }

    /// Waits until the output, the driver's status or a stop request is ready, reading nothing
    /// (the caller reads the output, markers included).
    fn poll_only(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        let Some(output) = self.output_read.as_ref() else {
            return Ok(false);
        };
        let mut fds = vec![platform::borrow(output)];
        if let Some(session) = self.session.as_ref() {
            fds.push(platform::borrow(session.status_fd()));
        }
        fds.extend(self.stop.fds());
        Ok(platform::wait_readable(&fds, timeout)?
            .iter()
            .any(|r| r.readable))
    }

    /// Runs one command; `Err` carries the status that interrupts the build (TIMED_OUT, FAULT).
    fn run_command(
        &mut self,
        phase: Phase,
        id: &str,
        text: &str,
        line: u32,
        finally: bool,
    ) -> Result<i32, Status> {
        if let Some(signal) = self.stop.take() {
            self.stopped = Some(signal);
            self.message(&format!("Build stopped by {}", signal_name(signal)));
            return Err(Status::Stopped);
        }
        self.emit(&Event::CommandStarted {
            phase,
            command: text,
            line,
            finally,
        });
        self.tail.clear();
        let started = Instant::now();
        if let Err(e) = self.ensure_session() {
            self.message(&format!("cannot start the shell: {e}"));
            self.emit(&Event::CommandFinished {
                phase,
                command: text,
                exit_code: 127,
                duration: started.elapsed(),
            });
            return Err(Status::Fault);
        }
        let sent = match self.session.as_mut() {
            Some(session) => session.send(id, self.succeeding, self.last_exit, &self.state),
            None => Err(io::Error::other("no session")),
        };
        if let Err(e) = sent {
            self.message(&format!("cannot send the command to the shell: {e}"));
            return Err(Status::Fault);
        }
        let code = match self.wait_for_reply() {
            Ok(code) => code,
            Err(status) => {
                self.emit(&Event::CommandFinished {
                    phase,
                    command: text,
                    exit_code: 128 + 15,
                    duration: started.elapsed(),
                });
                return Err(status);
            }
        };
        self.drain_output();
        self.pass_output(&[], true);
        self.last_exit = code;
        self.reap_now_and_then();
        self.emit(&Event::CommandFinished {
            phase,
            command: text,
            exit_code: code,
            duration: started.elapsed(),
        });
        Ok(code)
    }

    /// Waits for the driver's reply, streaming output meanwhile.
    fn wait_for_reply(&mut self) -> Result<i32, Status> {
        loop {
            let reply = match self.session.as_mut().map(Session::poll_reply) {
                Some(Ok(reply)) => reply,
                Some(Err(e)) => {
                    self.message(&format!("the shell session failed: {e}"));
                    return Err(Status::Fault);
                }
                None => return Err(Status::Fault),
            };
            match reply {
                Reply::Done(code, state) => {
                    if let Some(state) = state {
                        self.state = state;
                    }
                    return Ok(code);
                }
                Reply::DriverExited(code) => {
                    // The command ended the shell (persistent `exit`, or a signal to the group):
                    // its status is the shell's, and the next command gets a new shell that
                    // starts from the last reported state.
                    if let Some(session) = self.session.take() {
                        let (mut child, _) = session.close();
                        let _ = child.wait();
                    }
                    return Ok(code);
                }
                Reply::Pending => {}
            }
            let timeout = self
                .deadline
                .map(|d| d.saturating_duration_since(Instant::now()));
            if timeout == Some(Duration::ZERO) {
                self.timed_out = true;
                self.message("Build timed out: stopping the running command");
                self.stop_processes();
                return Err(Status::TimedOut);
            }
            if let Some(signal) = self.stop.take() {
                self.stopped = Some(signal);
                self.message(&format!(
                    "Build stopped by {}: stopping the running command",
                    signal_name(signal)
                ));
                self.stop_processes();
                return Err(Status::Stopped);
            }
            // Flushing the log and the console costs two writes: a command that answers within
            // a few milliseconds does not need it, one that runs longer gets it before the wait.
            let quick = timeout.map_or(FLUSH_AFTER, |t| t.min(FLUSH_AFTER));
            let mut woken = self.wait(Some(quick), true);
            if matches!(woken, Ok(false)) && timeout != Some(quick) {
                self.flush();
                woken = self.wait(timeout.map(|t| t.saturating_sub(quick)), true);
            }
            if let Err(e) = woken {
                self.message(&format!("cannot wait for the command: {e}"));
                return Err(Status::Fault);
            }
        }
    }

    /// Waits until the output, the driver's status pipe (`with_status`) or a stop request is
    /// ready, or `timeout` passes, and reads the output that arrived. True when something woke
    /// it.
    fn wait(&mut self, timeout: Option<Duration>, with_status: bool) -> io::Result<bool> {
        let Some(output) = self.output_read.as_ref() else {
            return Ok(false);
        };
        let mut fds = vec![platform::borrow(output)];
        if with_status && let Some(session) = self.session.as_ref() {
            fds.push(platform::borrow(session.status_fd()));
        }
        fds.extend(self.stop.fds());
        let ready = platform::wait_readable(&fds, timeout)?;
        let output_ready = ready[0].readable;
        let any = ready.iter().any(|r| r.readable);
        if output_ready {
            self.read_output();
        }
        Ok(any)
    }

    /// Reads what the output pipe holds now, as lines (marker lines of a persistent session
    /// are taken out). Returns false at end-of-file.
    fn read_output(&mut self) -> bool {
        if self.marker.is_some() {
            loop {
                let (open, marker) = self.pump_output();
                if marker.is_none() {
                    return open;
                }
            }
        }
        // The pipe and the buffer (one for the whole build: zeroing 64 KiB per read would cost
        // more than a trivial command) are taken out while the bytes are passed on.
        let Some(mut output) = self.output_read.take() else {
            return false;
        };
        let mut buf = std::mem::take(&mut self.read_buf);
        let open = loop {
            match output.read(&mut buf) {
                Ok(0) => break false,
                Ok(n) => {
                    self.pass_output(&buf[..n], false);
                    if n < buf.len() {
                        break true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        self.read_buf = buf;
        self.output_read = Some(output);
        open
    }

    /// Passes on the output that is there, up to the next command marker of a persistent
    /// session. Returns whether the pipe is still open, and the id of the marker it stopped at.
    fn pump_output(&mut self) -> (bool, Option<String>) {
        let Some(finder) = self.marker.clone() else {
            return (self.read_output(), None);
        };
        let marker = finder.needle();
        let mut open = true;
        loop {
            // The unread part starts at `pending_pos`: consuming moves it, so a driver that is
            // many commands ahead costs no copying.
            let pending = std::mem::take(&mut self.pending_output);
            let unread = &pending[self.pending_pos..];
            if let Some(pos) = finder.find(unread) {
                let id_start = pos + marker.len();
                if let Some(nl) = memchr::memchr(b'\n', &unread[id_start..]) {
                    let id = String::from_utf8_lossy(&unread[id_start..id_start + nl]).into_owned();
                    self.pass_output(&unread[..pos], false);
                    self.pending_pos += id_start + nl + 1;
                    self.pending_output = pending;
                    return (open, Some(id));
                }
            }
            // Everything but what may be the start of a marker goes on now.
            let keep = partial_marker(unread, marker);
            if keep > 0 {
                self.pass_output(&unread[..keep], false);
                self.pending_pos += keep;
            }
            self.pending_output = pending;
            if self.pending_pos == self.pending_output.len() {
                self.pending_output.clear();
                self.pending_pos = 0;
            } else if self.pending_pos > 64 * 1024 {
                self.pending_output.drain(..self.pending_pos);
                self.pending_pos = 0;
            }
            if !open {
                return (false, None);
            }
            let Some(mut output) = self.output_read.take() else {
                return (false, None);
            };
            let mut buf = std::mem::take(&mut self.read_buf);
            let read = loop {
                match output.read(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other,
                }
            };
            match read {
                Ok(0) => open = false,
                Ok(n) => self.pending_output.extend_from_slice(&buf[..n]),
                Err(_) => {
                    self.read_buf = buf;
                    self.output_read = Some(output);
                    return (true, None);
                }
            }
            self.read_buf = buf;
            self.output_read = Some(output);
        }
    }

    /// Passes output on: masked as a stream, split into lines, to the log, the console and the
    /// tail kept for RETRY patterns. `end` also passes on what was held back: the bytes kept
    /// for masking, and a last line without a newline.
    fn pass_output(&mut self, bytes: &[u8], end: bool) {
        let (log, reporter, tail, masker, stream, lines) = (
            &mut self.log,
            &mut *self.reporter,
            &mut self.tail,
            &self.masker,
            &mut self.stream,
            &mut self.lines,
        );
        let now = Timestamp::now();
        let mut to_lines = |bytes: &[u8]| {
            lines.feed(bytes, &mut |line| {
                output_line(log, reporter, tail, now, line)
            });
        };
        stream.feed(masker, bytes, &mut to_lines);
        if end {
            stream.flush(masker, &mut to_lines);
            lines.flush(&mut |line| output_line(log, reporter, tail, now, line));
        }
    }

    /// Reads everything already written: a finished command's output is all in the pipe.
    fn drain_output(&mut self) {
        self.read_output();
    }

    /// SIGTERM to the build's process group, SIGKILL after the grace period.
    fn stop_processes(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let pgid = session.pgid();
        let _ = platform::signal_group(pgid, Signal::SIGTERM);
        let (mut child, _status) = session.close();
        // The console must say why the build waits before it waits.
        self.flush();
        let grace_end = Instant::now() + self.options.grace;
        while platform::group_alive(pgid) && Instant::now() < grace_end && !self.killed {
            // As PID 1 or subreaper, the group's dead are our children: a zombie still counts
            // as a member until it is reaped.
            platform::reap(pgid, &[]);
            let _ = self.wait(
                Some(
                    grace_end
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(50)),
                ),
                false,
            );
            if let Some(signal) = self.stop.take() {
                // A second request does not wait for the grace period.
                self.stopped.get_or_insert(signal);
                self.killed = true;
                self.message(&format!(
                    "{} again: killing the build's processes now",
                    signal_name(signal)
                ));
            }
            let _ = child.try_wait();
        }
        if platform::group_alive(pgid) {
            let _ = platform::signal_group(pgid, Signal::SIGKILL);
        }
        let _ = child.wait();
    }

    /// Streams output until `until` or end-of-file.
    fn wait_output_until(&mut self, until: Option<Instant>) -> bool {
        let Some(output) = self.output_read.as_ref() else {
            return false;
        };
        let timeout = until.map(|u| u.saturating_duration_since(Instant::now()));
        match platform::wait_readable(&[platform::borrow(output)], timeout) {
            Ok(ready) if ready[0].readable => self.read_output(),
            _ => true,
        }
    }

    fn upload_artifacts(&mut self) {
        self.begin_phase(Phase::UploadArtifacts, 1);
        let sets = self.plan.as_ref().map_or(0, |p| p.artifacts.len());
        if sets > 0 {
            self.message("Artifact collection is not implemented yet: skipping upload");
        }
        self.end_phase(Phase::UploadArtifacts, Status::Succeeded, None, true);
    }

    /// Ends every process of the build, captures the exported variables, and completes the record.
    fn finish(mut self) -> Result<BuildOutcome, RunError> {
        self.begin_phase(Phase::Finalizing, 1);
        if let Some(session) = self.session.take() {
            let pgid = session.pgid();
            let (mut child, mut status) = session.close();
            // The driver leaves its loop when its request pipe closes; once its status pipe
            // reads end-of-file it is exiting, and is reaped so that it no longer counts as a
            // member of the group.
            if wait_eof(&mut status, self.options.grace) {
                let _ = child.wait();
            }
            // Background processes the build left behind.
            if platform::group_alive(pgid) {
                self.flush();
                let _ = platform::signal_group(pgid, Signal::SIGTERM);
                let grace_end = Instant::now() + self.options.grace;
                while platform::group_alive(pgid) && Instant::now() < grace_end && !self.killed {
                    let _ = self.wait(Some(Duration::from_millis(20)), false);
                    let _ = child.try_wait();
                    platform::reap(pgid, &[]);
                    if let Some(signal) = self.stop.take() {
                        // A stop request while the build's leftovers get their grace period:
                        // the first is noted, a second ends them at once.
                        if self.stopped.replace(signal).is_some() {
                            self.killed = true;
                        }
                    }
                }
                if platform::group_alive(pgid) {
                    let _ = platform::signal_group(pgid, Signal::SIGKILL);
                }
            }
            let _ = child.wait();
            platform::reap(pgid, &[]);
        }
        // Sessions of earlier run-as users may have left background processes in their groups.
        for pgid in std::mem::take(&mut self.retired_groups) {
            if platform::group_alive(pgid) {
                let _ = platform::signal_group(pgid, Signal::SIGTERM);
                let grace_end = Instant::now() + self.options.grace;
                while platform::group_alive(pgid) && Instant::now() < grace_end && !self.killed {
                    let _ = self.wait(Some(Duration::from_millis(20)), false);
                    platform::reap(pgid, &[]);
                }
                let _ = platform::signal_group(pgid, Signal::SIGKILL);
                platform::reap(pgid, &[]);
            }
        }
        // Processes that left the group (`setsid`, double forks) still carry the build's id.
        self.sweep();
        // Our write end closes; the pipe ends when the last process holding it is gone.
        self.output_write = None;
        let drain_end = Instant::now() + DRAIN_LIMIT;
        while Instant::now() < drain_end {
            if !self.wait_output_until(Some(drain_end)) {
                break;
            }
        }
        self.pass_output(&[], true);

        if let Some(plan) = &self.plan {
            let exported: IndexMap<String, String> = plan
                .exported_variables
                .iter()
                .map(|name| {
                    (
                        name.clone(),
                        // A value that holds a secret is not exported in clear either.
                        self.masker
                            .text(self.state.variables.get(name).map_or("", String::as_str))
                            .into_owned(),
                    )
                })
                .collect();
            self.record.exported_variables = exported;
        }
        let _ = crate::record::write_private(
            &self.dir.join("env").join("end.env"),
            env_dump(&self.state, &self.secret_names, &self.masker),
        );
        // The runtime files go: the state report and update hold values in clear.
        if self.scripts.starts_with(&self.dir) {
            Session::scrub(&self.scripts);
        } else {
            let _ = std::fs::remove_dir_all(&self.scripts);
        }

        // A stop request that arrived after the last command (or while FINALIZING waited) is
        // the user's word too: the build ends STOPPED.
        if let Some(signal) = self.stop.take() {
            self.stopped.get_or_insert(signal);
        }
        let stopped_late = self.stopped.is_some()
            && !self
                .record
                .phases
                .iter()
                .any(|p| p.status == Status::Stopped);
        if stopped_late {
            let context = Context {
                status_code: "BUILD_STOPPED".to_owned(),
                message: format!(
                    "Build stopped by {}",
                    signal_name(self.stopped.unwrap_or(15))
                ),
            };
            self.end_phase(Phase::Finalizing, Status::Stopped, Some(context), true);
        } else {
            self.end_phase(Phase::Finalizing, Status::Succeeded, None, true);
        }
        let status = self.final_status();
        let exit_code = match status {
            Status::Succeeded => exit::SUCCEEDED,
            Status::Failed if self.invalid => exit::INVALID,
            Status::Failed => exit::FAILED,
            Status::TimedOut => exit::TIMED_OUT,
            Status::Stopped => 128 + self.stopped.unwrap_or(15),
            Status::Fault | Status::InProgress => exit::FAULT,
        };
        let now = Timestamp::now();
        self.record.status = status;
        self.record.end_time = Some(now);
        self.record.exit_code = Some(exit_code);
        self.message(&format!(
            "Build complete: {} (exit code {exit_code}); record {}",
            status.as_str(),
            self.record_path().display()
        ));
        self.emit(&Event::BuildFinished {
            status,
            exit_code,
            duration: self.started.elapsed(),
        });
        self.flush();
        self.save()?;
        Ok(BuildOutcome {
            record_path: self.record_path(),
            record: self.record,
            exit_code,
            diagnostics: self.diagnostics,
        })
    }

    /// Ends every process still carrying this build's `CODEBUILD_BUILD_ID`: SIGTERM, then
    /// SIGKILL after the grace period; and reaps the orphans that ended.
    fn sweep(&mut self) {
        let marker = format!("CODEBUILD_BUILD_ID={}", self.record.id).into_bytes();
        let mut left = platform::processes_with(&marker);
        if left.is_empty() {
            return;
        }
        self.message(&format!(
            "Ending {} process(es) the build left outside its process group",
            left.len()
        ));
        self.flush();
        platform::signal_each(&left, Signal::SIGTERM);
        let mut all = left.clone();
        let grace_end = Instant::now() + self.options.grace;
        loop {
            platform::reap(0, &all);
            left = platform::processes_with(&marker);
            all.extend(
                left.iter()
                    .filter(|p| !all.contains(p))
                    .copied()
                    .collect::<Vec<_>>(),
            );
            if left.is_empty() {
                break;
            }
            if Instant::now() >= grace_end || self.killed {
                platform::signal_each(&left, Signal::SIGKILL);
                // SIGKILL is not refused, but it lands asynchronously: wait (briefly) until the
                // processes are zombies, so that they can be reaped.
                let kill_end = Instant::now() + Duration::from_secs(1);
                while !platform::processes_with(&marker).is_empty() && Instant::now() < kill_end {
                    let _ = self.wait(Some(Duration::from_millis(5)), false);
                }
                platform::reap(0, &all);
                break;
            }
            let _ = self.wait(Some(Duration::from_millis(20)), false);
            if self.stop.take().is_some() {
                self.killed = true;
            }
        }
    }

    fn final_status(&self) -> Status {
        let statuses: Vec<Status> = self.record.phases.iter().map(|p| p.status).collect();
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

/// One line of the build's output (masked already) to the log, the reporter and the tail kept for RETRY
/// patterns.
fn output_line(
    log: &mut BufWriter<File>,
    reporter: &mut dyn Reporter,
    tail: &mut VecDeque<Vec<u8>>,
    time: Timestamp,
    line: &[u8],
) {
    push_tail(tail, line);
    let event = Event::Output { line };
    let _ = crate::events::write_log(log, time, &event);
    reporter.report(time, &event);
}

fn push_tail(tail: &mut VecDeque<Vec<u8>>, line: &[u8]) {
    if tail.len() == TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(line[..line.len().min(TAIL_LINE_BYTES)].to_vec());
}

/// `SIGINT`, `SIGTERM`... for messages.
fn signal_name(signal: i32) -> String {
    Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned())
}

/// Where a possible command marker begins at the end of `bytes` (a marker cut by a read), or
/// `bytes.len()`: the bytes before it can go on.
fn partial_marker(bytes: &[u8], marker: &[u8]) -> usize {
    if let Some(pos) = memchr::memmem::find(bytes, marker) {
        // A whole marker whose line has not ended yet.
        return pos;
    }
    match memchr::memrchr(marker[0], bytes) {
        Some(pos) if marker.starts_with(&bytes[pos..]) => pos,
        _ => bytes.len(),
    }
}

/// The script of a phase's command: `build-3`, `post_build-finally-1`.
fn script_id(phase: PhaseName, finally: bool, index: usize) -> String {
    let list = if finally { "finally-" } else { "" };
    format!("{}-{list}{}", phase.key(), index + 1)
}

/// Waits until `pipe` reads end-of-file, at most `limit`.
fn wait_eof(pipe: &mut File, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 256];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if platform::wait_readable(&[platform::borrow(pipe)], Some(left)).is_err() {
            return false;
        }
    }
}

/// `NAME=value` lines, sorted, values of more than one line quoted.
fn env_dump(state: &SessionState, secrets: &[String], masker: &Masker) -> String {
    let mut out = String::new();
    for (name, value) in &state.variables {
        out.push_str(name);
        out.push('=');
        if secrets.contains(name) {
            out.push_str(crate::mask::MASK);
        } else {
            out.push_str(&crate::state::quote(&masker.text(value)));
        }
        out.push('\n');
    }
    out
}

/// The checkout's commit, read from `.git` without running git.
fn git_head(source: &Path) -> Option<String> {
    let git = source.join(".git");
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref: ") else {
        return Some(head.to_owned());
    };
    if let Ok(commit) = std::fs::read_to_string(git.join(reference)) {
        return Some(commit.trim().to_owned());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed
        .lines()
        .find(|l| l.ends_with(reference))
        .and_then(|l| l.split(' ').next())
        .map(str::to_owned)
}
