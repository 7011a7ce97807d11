//! Builds as Slurm jobs: the [`Launcher`] that submits each build's `buildspec run` with
//! `sbatch`, follows the job with `scontrol show job -o` (and `sacct` once `scontrol` has
//! forgotten it), streams the job's output file as it grows, and says how the job ended.
//!
//! The binary, the buildspec, the source copy, the job's script and output, and the state
//! directory must be on a file system the compute nodes see at the same paths: the caller puts
//! them there. Slurm's own clients (`sbatch`, `scontrol`, `scancel`, `sacct`) are found on PATH.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::dispatch::{Ended, Job, Launched, Launcher, Output};
use crate::outcome::{ContextCode, Status, exit};
use crate::platform;
use crate::store::{Placement, Verdict};

/// How builds are submitted.
#[derive(Debug, Clone)]
pub struct SlurmConfig {
    /// Where the job scripts and the jobs' output files go (on the shared file system).
    pub jobs_dir: PathBuf,
    /// `sbatch --partition`.
    pub partition: Option<String>,
    /// `sbatch --account`.
    pub account: Option<String>,
    /// `sbatch --time`, in Slurm's own notation (minutes, `HH:MM:SS`, `D-HH`...).
    pub time: Option<String>,
    /// More `sbatch` arguments, as given.
    pub extra: Vec<String>,
    /// A job still pending after this long is cancelled, and its build recorded STOPPED.
    pub max_pending: Option<Duration>,
    /// How often a job's state is asked for.
    pub poll: Duration,
    /// How long a build asked to stop has before its job is cancelled outright: its runner's
    /// grace period and cleanup time, and a margin.
    pub stop_within: Duration,
}

/// The Slurm launcher.
#[derive(Debug, Clone)]
pub struct Slurm {
    config: Arc<SlurmConfig>,
}

/// A problem with Slurm itself (not with a build).
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// A Slurm client could not be run at all.
    #[error("cannot run `{program}` (is Slurm installed, and on PATH?): {source}")]
    Spawn {
        /// The client.
        program: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A Slurm client refused.
    #[error("`{program}` failed: {message}")]
    Refused {
        /// The client.
        program: &'static str,
        /// What it printed.
        message: String,
    },
}

impl From<SlurmError> for io::Error {
    fn from(e: SlurmError) -> Self {
        io::Error::other(e)
    }
}

/// The minimum `--time` a build gets when it has a timeout: its limit, its runner's grace and
/// cleanup time, and a minute more, so that the build's own timeout ends it first (TIMED_OUT, with
/// its artifacts), not Slurm's.
pub fn time_limit(timeout: Duration, margin: Duration) -> String {
    let minutes = (timeout + margin + Duration::from_secs(60))
        .as_secs()
        .div_ceil(60);
    minutes.to_string()
}

impl Slurm {
    /// A launcher with this configuration.
    pub fn new(config: SlurmConfig) -> Slurm {
        Slurm {
            config: Arc::new(config),
        }
    }

    /// Checks that the cluster answers, before any build is submitted.
    pub fn check(&self) -> Result<(), SlurmError> {
        run("sinfo", Command::new("sinfo").args(["-h", "-o", "%P"])).map(|_| ())
    }

    fn files(&self, job: &Job) -> (PathBuf, PathBuf) {
        let stem = match &job.record {
            Some(place) => place.uuid.clone(),
            None => crate::outputs::artifacts::folder_name(&job.id, "build"),
        };
        (
            self.config.jobs_dir.join(format!("{stem}.sh")),
            self.config.jobs_dir.join(format!("{stem}.out")),
        )
    }

    fn follow(&self, job_id: String, output: PathBuf, resumed: bool) -> Launched {
        let state = Arc::new(AtomicU8::new(RUNNING));
        let stopper = {
            let state = Arc::clone(&state);
            let job_id = job_id.clone();
            Box::new(move || {
                if state.swap(STOP_ASKED, Ordering::SeqCst) == RUNNING {
                    request_stop(&job_id);
                }
            }) as crate::dispatch::StopBuild
        };
        let watcher = Watcher {
            config: Arc::clone(&self.config),
            job_id: job_id.clone(),
            output,
            state,
            resumed,
        };
        Launched {
            handle: Some(job_id),
            stop: stopper,
            watch: Box::new(move |out| watcher.watch(out)),
        }
    }
}

impl Launcher for Slurm {
    fn launch(&self, job: &mut Job) -> io::Result<Launched> {
        let (script, output) = self.files(job);
        crate::store::create_private_dir(&self.config.jobs_dir)?;
        // The build's arguments (its `--env` values and values to mask among them) go in a
        // private file beside the script, never on the node's command line, which every user
        // of the node can read.
        let request = script.with_extension("request");
        let build = job
            .request
            .as_ref()
            .ok_or_else(|| io::Error::other("a Slurm job runs a build: this job has no request"))?;
        let json = serde_json::to_vec(build).map_err(io::Error::other)?;
        crate::store::write_private(&request, &json)?;
        crate::store::write_private(&script, job_script(&job.command, &request))?;
        // A job output file from an earlier try would be read as this one's; a new, private
        // one takes its place (Slurm writes into it, keeping its mode).
        crate::store::write_private(&output, b"")?;
        let c = &self.config;
        let mut sbatch = Command::new("sbatch");
        sbatch
            .arg("--parsable")
            .arg(format!("--job-name=buildspec:{}", job.id))
            .arg(format!("--output={}", output.display()))
            .arg(format!("--chdir={}", c.jobs_dir.display()))
            // A requeued job would run the build a second time under the same record.
            .arg("--no-requeue");
        if let Some(p) = &c.partition {
            sbatch.arg(format!("--partition={p}"));
        }
        if let Some(a) = &c.account {
            sbatch.arg(format!("--account={a}"));
        }
        if let Some(t) = &c.time {
            sbatch.arg(format!("--time={t}"));
        }
        sbatch.args(&c.extra).arg(&script);
        let printed = run("sbatch", &mut sbatch)?;
        // `--parsable` prints `id` or `id;cluster`.
        let job_id = printed
            .trim()
            .split(';')
            .next()
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
            .ok_or_else(|| SlurmError::Refused {
                program: "sbatch",
                message: format!("no job id in its answer {printed:?}"),
            })?
            .to_owned();
        Ok(self.follow(job_id, output, false))
    }

    fn attach(&self, job: &mut Job, handle: &str) -> io::Result<Launched> {
        let (_, output) = self.files(job);
        Ok(self.follow(handle.to_owned(), output, true))
    }
}

/// The job's script: the build's `buildspec`, exec'd so that Slurm's signals reach the runner,
/// reading its arguments from the private `request` file ([`REQUEST`]).
fn job_script(command: &Command, request: &Path) -> String {
    let mut script =
        String::from("#!/bin/sh\n# A build started by `buildspec --executor slurm`.\n");
    // The dispatcher's directory, where the node has it (every path the runner gets is
    // absolute): else the job's own, on the shared directory.
    if let Some(dir) = command.get_current_dir() {
        script.push_str(&format!(
            "cd {} 2>/dev/null || :\n",
            quote(&dir.to_string_lossy())
        ));
    }
    for (name, value) in command.get_envs() {
        match value {
            Some(v) => script.push_str(&format!(
                "export {}={}\n",
                name.to_string_lossy(),
                quote(&v.to_string_lossy())
            )),
            None => script.push_str(&format!("unset {}\n", name.to_string_lossy())),
        }
    }
    script.push_str("exec ");
    script.push_str(&quote(&command.get_program().to_string_lossy()));
    script.push(' ');
    script.push_str(REQUEST);
    script.push(' ');
    script.push_str(&quote(&request.to_string_lossy()));
    script.push('\n');
    script
}

/// The argument that makes `buildspec` read a build from a private file (its request, as JSON),
/// remove the file, and run it: a Slurm job's build.
pub const REQUEST: &str = "__request";

/// Reads the build a [`REQUEST`] file holds, and removes the file: it may hold secrets.
pub fn take_request(path: &Path) -> io::Result<crate::request::BuildRequest> {
    let bytes = crate::store::read_regular(path, 64 * 1024 * 1024)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the request file is gone"))?;
    let _ = std::fs::remove_file(path);
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A word for `sh`, in single quotes.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Runs a Slurm client and returns what it printed.
fn run(program: &'static str, command: &mut Command) -> Result<String, SlurmError> {
    platform::default_signals(command);
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SlurmError::Spawn { program, source })?;
    if !out.status.success() {
        let mut message = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if message.is_empty() {
            message = format!("exit status {}", out.status);
        }
        return Err(SlurmError::Refused { program, message });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The runner gets SIGTERM, as a local build does, and its grace period; a job still pending
/// has nothing to signal and is cancelled.
fn request_stop(job_id: &str) {
    let signalled = run(
        "scancel",
        Command::new("scancel").args(["--batch", "--signal=TERM", job_id]),
    );
    if signalled.is_err() {
        let _ = run("scancel", Command::new("scancel").arg(job_id));
    }
}

const RUNNING: u8 = 0;
const STOP_ASKED: u8 = 1;
const CANCELLED_PENDING: u8 = 2;
const KILLED: u8 = 3;

struct Watcher {
    config: Arc<SlurmConfig>,
    job_id: String,
    output: PathBuf,
    state: Arc<AtomicU8>,
    /// Taken up from an earlier dispatcher, not submitted by this one.
    resumed: bool,
}

/// What Slurm says of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobInfo {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`...
    pub state: String,
    /// Why it is in that state (`None` as Slurm writes it is left out).
    pub reason: Option<String>,
    /// `exit:signal`.
    pub exit_code: Option<String>,
    /// The node list.
    pub node: Option<String>,
    /// The partition.
    pub partition: Option<String>,
    /// The account.
    pub account: Option<String>,
    /// When it was submitted, in the cluster's local time.
    pub submit_time: Option<String>,
    /// When it started, in the cluster's local time.
    pub start_time: Option<String>,
}

impl JobInfo {
    /// Reads the one line of `scontrol show job -o`.
    pub fn from_scontrol(line: &str) -> JobInfo {
        let mut info = JobInfo::default();
        let known = |v: &str| {
            (!v.is_empty() && v != "None" && v != "(null)" && v != "Unknown" && v != "N/A")
                .then(|| v.to_owned())
        };
        for field in line.split_whitespace() {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            match key {
                "JobState" => info.state = value.to_owned(),
                "Reason" => info.reason = known(value),
                "ExitCode" => info.exit_code = known(value),
                "NodeList" => info.node = known(value),
                "Partition" => info.partition = known(value),
                "Account" => info.account = known(value),
                "SubmitTime" => info.submit_time = known(value),
                "StartTime" => info.start_time = known(value),
                _ => {}
            }
        }
        info
    }

    /// Reads the line of `sacct -n -P -X -o State,ExitCode,NodeList,Partition,Account,Submit,Start`.
    pub fn from_sacct(line: &str) -> Option<JobInfo> {
        let fields: Vec<&str> = line.trim().split('|').collect();
        let [state, exit, node, partition, account, submit, start] = fields.as_slice() else {
            return None;
        };
        let known =
            |v: &str| (!v.is_empty() && v != "None" && v != "Unknown").then(|| v.to_owned());
        // sacct writes `CANCELLED by 0`.
        let state = state.split_whitespace().next()?.to_owned();
        Some(JobInfo {
            state,
            reason: None,
            exit_code: known(exit),
            node: known(node).filter(|n| n != "None assigned"),
            partition: known(partition),
            account: known(account),
            submit_time: known(submit),
            start_time: known(start),
        })
    }

    /// Whether the job is over. `COMPLETING` is not: its processes are still ending.
    pub fn is_over(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "" | "PENDING"
                | "RUNNING"
                | "CONFIGURING"
                | "COMPLETING"
                | "SUSPENDED"
                | "REQUEUED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "RESIZING"
                | "SIGNALING"
                | "STAGE_OUT"
                | "STOPPED"
                | "RESV_DEL_HOLD"
        )
    }

    /// The exit code and the signal of `exit:signal`.
    fn exit_and_signal(&self) -> (Option<i32>, i32) {
        let Some((exit, signal)) = self.exit_code.as_deref().and_then(|c| c.split_once(':')) else {
            return (None, 0);
        };
        (exit.parse().ok(), signal.parse().unwrap_or(0))
    }

    /// How long it waited in the queue.
    fn queue_wait(&self) -> Option<Duration> {
        let parse = |t: &str| t.parse::<jiff::civil::DateTime>().ok();
        let submit = parse(self.submit_time.as_deref()?)?;
        let start = parse(self.start_time.as_deref()?)?;
        let span = submit.until(start).ok()?;
        let seconds = span.total(jiff::Unit::Second).ok()?;
        (seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
    }
}

/// The build status a job's final state means, what the record says of it, and whether that
/// stands over what the runner recorded itself (Slurm ended the build, not the build itself).
pub fn verdict(job_id: &str, info: &JobInfo) -> Option<(Verdict, bool)> {
    let (exit, signal) = info.exit_and_signal();
    let how = match (exit, signal) {
        (_, s) if s > 0 => format!("signal {s}"),
        (Some(e), _) => format!("exit status {e}"),
        (None, _) => "no exit status".to_owned(),
    };
    let reason = info
        .reason
        .as_deref()
        .map(|r| format!(", reason {r}"))
        .unwrap_or_default();
    let said = |status, code: ContextCode, overrides: bool| {
        Some((
            Verdict {
                status,
                status_code: code,
                message: format!("Slurm job {job_id} ended {} ({how}{reason})", info.state),
                exit_code: None,
            },
            overrides,
        ))
    };
    match info.state.as_str() {
        "COMPLETED" => None,
        "FAILED" => said(Status::Failed, ContextCode::SlurmJobFailed, false),
        "CANCELLED" | "PREEMPTED" => said(Status::Stopped, ContextCode::BuildStopped, true),
        "TIMEOUT" | "DEADLINE" => said(Status::TimedOut, ContextCode::BuildTimedOut, true),
        "NODE_FAIL" => said(Status::Fault, ContextCode::SlurmNodeFail, true),
        "OUT_OF_MEMORY" => said(Status::Fault, ContextCode::SlurmOutOfMemory, true),
        "BOOT_FAIL" => said(Status::Fault, ContextCode::SlurmBootFail, true),
        _ => said(Status::Fault, ContextCode::SlurmJobFailed, false),
    }
}

impl Watcher {
    fn watch(self, out: &mut dyn FnMut(Output)) -> Ended {
        let started = Instant::now();
        let mut tail = Tail::new(&self.output);
        out(Output::Note(format!(
            "Slurm job {} {}",
            self.job_id,
            if self.resumed {
                "taken up"
            } else {
                "submitted"
            }
        )));
        let mut seen_running = false;
        let mut stop_asked_at: Option<Instant> = None;
        let mut failing_since: Option<Instant> = None;
        let mut next_query = Instant::now();
        loop {
            // The log is read at every tick; the controller is asked less often as the job
            // gets older, so that long builds by the hundred do not flood it, while the end of
            // a build is noticed within a small share of its time.
            if Instant::now() < next_query {
                tail.read(out);
                std::thread::sleep(self.config.poll);
                continue;
            }
            next_query = Instant::now() + query_interval(self.config.poll, started.elapsed());
            let info = self.query();
            tail.read(out);
            match info {
                Ok(Some(info)) => {
                    failing_since = None;
                    if !seen_running && info.state != "PENDING" {
                        seen_running = true;
                        let wait = info
                            .queue_wait()
                            .map(|w| format!(" after {:.1}s in the queue", w.as_secs_f64()))
                            .unwrap_or_default();
                        let node = info.node.as_deref().unwrap_or("?");
                        out(Output::Note(format!(
                            "Slurm job {} running on {node}{wait}",
                            self.job_id
                        )));
                    }
                    if info.is_over() {
                        tail.finish(out);
                        return self.ended(&info, out);
                    }
                    if info.state == "PENDING"
                        && let Some(limit) = self.config.max_pending
                        && started.elapsed() > limit
                        && self.state.load(Ordering::SeqCst) == RUNNING
                    {
                        self.state.store(CANCELLED_PENDING, Ordering::SeqCst);
                        out(Output::Note(format!(
                            "Slurm job {} still pending after {}s (--max-pending): cancelling it",
                            self.job_id,
                            limit.as_secs()
                        )));
                        let _ = run("scancel", Command::new("scancel").arg(&self.job_id));
                    }
                }
                Ok(None) => {
                    // Slurm no longer knows the job (purged after MinJobAge, or never had
                    // it): the record alone says how the build ended.
                    tail.finish(out);
                    out(Output::Note(format!(
                        "Slurm no longer knows job {}; its build's record says how it ended",
                        self.job_id
                    )));
                    return Ended::default();
                }
                Err(e) => {
                    // The controller may be restarting: ask again, for a while.
                    let since = *failing_since.get_or_insert_with(|| {
                        out(Output::Note(format!(
                            "cannot ask Slurm about job {}: {e}; asking again",
                            self.job_id
                        )));
                        Instant::now()
                    });
                    if since.elapsed() > UNREACHABLE_LIMIT {
                        tail.finish(out);
                        return Ended {
                            exit_code: None,
                            verdict: Some(Verdict {
                                status: Status::Fault,
                                status_code: ContextCode::SlurmUnreachable,
                                message: format!(
                                    "Slurm did not answer about job {} for {}s: {e}",
                                    self.job_id,
                                    UNREACHABLE_LIMIT.as_secs()
                                ),
                                exit_code: None,
                            }),
                            overrides: false,
                            placement: None,
                        };
                    }
                }
            }
            if self.state.load(Ordering::SeqCst) == STOP_ASKED {
                let at = *stop_asked_at.get_or_insert_with(Instant::now);
                if at.elapsed() > self.config.stop_within {
                    self.state.store(KILLED, Ordering::SeqCst);
                    let _ = run("scancel", Command::new("scancel").arg(&self.job_id));
                }
            }
            std::thread::sleep(self.config.poll);
        }
    }

    /// The job's state: `None` when Slurm does not know the job.
    fn query(&self) -> Result<Option<JobInfo>, SlurmError> {
        match run(
            "scontrol",
            Command::new("scontrol").args(["show", "job", "-o", &self.job_id]),
        ) {
            Ok(text) => Ok(text
                .lines()
                .find(|l| l.contains("JobState="))
                .map(JobInfo::from_scontrol)),
            Err(SlurmError::Refused { message, .. }) if message.contains("Invalid job id") => {
                Ok(self.sacct())
            }
            Err(e) => Err(e),
        }
    }

    /// The accounting database's word on a job `scontrol` has forgotten, where there is one.
    fn sacct(&self) -> Option<JobInfo> {
        let text = run(
            "sacct",
            Command::new("sacct").args([
                "-n",
                "-P",
                "-X",
                "-j",
                &self.job_id,
                "-o",
                "State,ExitCode,NodeList,Partition,Account,Submit,Start",
            ]),
        )
        .ok()?;
        text.lines().find_map(JobInfo::from_sacct)
    }

    fn ended(&self, info: &JobInfo, out: &mut dyn FnMut(Output)) -> Ended {
        let (exit, signal) = info.exit_and_signal();
        let exit_code = if signal > 0 {
            Some(exit::of_signal(signal))
        } else {
            exit
        };
        out(Output::Note(format!(
            "Slurm job {} ended {} (exit code {})",
            self.job_id,
            info.state,
            info.exit_code.as_deref().unwrap_or("unknown")
        )));
        let placement = Placement {
            executor: "slurm".to_owned(),
            job_id: self.job_id.clone(),
            node: info.node.clone(),
            partition: info.partition.clone(),
            account: info.account.clone(),
            queue_wait_ms: info
                .queue_wait()
                .map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
            state: info.state.clone(),
            reason: info.reason.clone(),
            exit_code: info.exit_code.clone(),
        };
        let (verdict, overrides) = match self.state.load(Ordering::SeqCst) {
            CANCELLED_PENDING => (
                Some(Verdict {
                    status: Status::Stopped,
                    status_code: ContextCode::BuildStopped,
                    message: format!(
                        "Slurm job {} was still pending after --max-pending {}s, and was cancelled",
                        self.job_id,
                        self.config.max_pending.map_or(0, |d| d.as_secs())
                    ),
                    exit_code: None,
                }),
                true,
            ),
            // Asked to stop: the runner's own STOPPED stands; a job that had to be cancelled
            // outright, or was still pending, was stopped all the same.
            STOP_ASKED | KILLED => (
                Some(Verdict {
                    status: Status::Stopped,
                    status_code: ContextCode::BuildStopped,
                    message: format!(
                        "Slurm job {} was stopped ({} {})",
                        self.job_id,
                        info.state,
                        info.exit_code.as_deref().unwrap_or("")
                    ),
                    exit_code: None,
                }),
                info.state == "CANCELLED",
            ),
            _ => match verdict(&self.job_id, info) {
                Some((v, o)) => (Some(v), o),
                None => (None, false),
            },
        };
        Ended {
            exit_code,
            verdict,
            overrides,
            placement: Some(placement),
        }
    }
}

/// How long to wait before asking Slurm about a job again: the poll interval at first, then a
/// fortieth of the job's age (2.5 % of its time at the most), up to 5 seconds.
fn query_interval(poll: Duration, age: Duration) -> Duration {
    (age / 40).clamp(poll, Duration::from_secs(5).max(poll))
}

/// How long Slurm may not answer before a build is given up as FAULT.
const UNREACHABLE_LIMIT: Duration = Duration::from_secs(300);
/// The longest line passed on whole; a longer one is passed on in pieces of this size.
const MAX_LINE: usize = 1024 * 1024;

/// Reads what a job's output file gained since the last read, line by line.
struct Tail {
    path: PathBuf,
    file: Option<File>,
    offset: u64,
    partial: Vec<u8>,
    buf: Vec<u8>,
}

impl Tail {
    fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_owned(),
            file: None,
            offset: 0,
            partial: Vec::new(),
            buf: vec![0; 64 * 1024],
        }
    }

    fn read(&mut self, out: &mut dyn FnMut(Output)) {
        if self.file.is_none() {
            // The file appears when the job starts.
            self.file = File::open(&self.path).ok();
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        loop {
            let n = match file.read(&mut self.buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            self.offset += n as u64;
            let mut rest = &self.buf[..n];
            while let Some(at) = memchr::memchr(b'\n', rest) {
                self.partial.extend_from_slice(&rest[..at]);
                out(Output::Line(std::mem::take(&mut self.partial)));
                rest = &rest[at + 1..];
            }
            self.partial.extend_from_slice(rest);
            if self.partial.len() >= MAX_LINE {
                out(Output::Line(std::mem::take(&mut self.partial)));
            }
        }
    }

    /// The last read, and a last line without its newline.
    fn finish(&mut self, out: &mut dyn FnMut(Output)) {
        self.read(out);
        if !self.partial.is_empty() {
            out(Output::Line(std::mem::take(&mut self.partial)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCONTROL: &str = "JobId=7 JobName=buildspec:a UserId=root(0) GroupId=root(0) \
        Account=(null) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 \
        SubmitTime=2026-12-02T07:43:35 StartTime=2026-12-02T07:43:38 EndTime=Unknown \
        Partition=debug NodeList=vm BatchHost=vm";

    #[test]
    fn scontrol_lines_are_read_field_by_field() {
        let info = JobInfo::from_scontrol(SCONTROL);
        assert_eq!(info.state, "FAILED");
        assert_eq!(info.reason.as_deref(), Some("NonZeroExitCode"));
        assert_eq!(info.exit_code.as_deref(), Some("3:0"));
        assert_eq!(info.node.as_deref(), Some("vm"));
        assert_eq!(info.partition.as_deref(), Some("debug"));
        assert_eq!(info.account, None);
        assert_eq!(info.queue_wait(), Some(Duration::from_secs(3)));
        assert!(info.is_over());
    }

    #[test]
    fn sacct_lines_are_read_too() {
        let info = JobInfo::from_sacct(
            "CANCELLED by 0|0:15|vm|debug|research|2026-12-02T07:43:35|2026-12-02T07:43:36\n",
        )
        .expect("a line");
        assert_eq!(info.state, "CANCELLED");
        assert_eq!(info.account.as_deref(), Some("research"));
        assert_eq!(info.queue_wait(), Some(Duration::from_secs(1)));
        assert_eq!(JobInfo::from_sacct("not|enough"), None);
    }

    #[test]
    fn every_final_state_has_its_build_status() {
        let table = [
            ("PENDING", "0:0", None),
            ("RUNNING", "0:0", None),
            ("COMPLETING", "0:0", None),
            ("COMPLETED", "0:0", Some(None)),
            ("FAILED", "3:0", Some(Some((Status::Failed, false)))),
            ("FAILED", "0:9", Some(Some((Status::Failed, false)))),
            ("CANCELLED", "0:15", Some(Some((Status::Stopped, true)))),
            ("TIMEOUT", "0:15", Some(Some((Status::TimedOut, true)))),
            ("NODE_FAIL", "0:0", Some(Some((Status::Fault, true)))),
            ("OUT_OF_MEMORY", "0:125", Some(Some((Status::Fault, true)))),
            ("PREEMPTED", "0:15", Some(Some((Status::Stopped, true)))),
            ("BOOT_FAIL", "0:0", Some(Some((Status::Fault, true)))),
        ];
        for (state, exit, expected) in table {
            let info = JobInfo {
                state: state.to_owned(),
                exit_code: Some(exit.to_owned()),
                reason: Some("Why".to_owned()),
                ..JobInfo::default()
            };
            match expected {
                None => assert!(!info.is_over(), "{state} is not over"),
                Some(expected) => {
                    assert!(info.is_over(), "{state} is over");
                    let got = verdict("9", &info).map(|(v, o)| {
                        assert!(
                            v.message
                                .starts_with(&format!("Slurm job 9 ended {state} ("))
                        );
                        assert!(v.message.ends_with(", reason Why)"), "{}", v.message);
                        (v.status, o)
                    });
                    assert_eq!(got, expected, "{state} {exit}");
                }
            }
        }
    }

    #[test]
    fn the_job_script_execs_the_runner_on_its_private_request() {
        let mut command = Command::new("/shared/bin/buildspec");
        command.current_dir("/shared/src 1");
        let script = job_script(&command, Path::new("/shared/jobs/it's.request"));
        assert!(
            script.contains("cd '/shared/src 1' 2>/dev/null || :\n"),
            "{script}"
        );
        assert!(
            script.ends_with(
                "exec '/shared/bin/buildspec' __request '/shared/jobs/it'\\''s.request'\n"
            ),
            "{script}"
        );
    }

    #[test]
    fn a_request_file_gives_its_build_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("job.request");
        crate::store::write_private(&path, br#"{"cwd":"/w","buildspec":"b.yml","source":".","state_dir":"/s","session":"compat","timeout_ms":0,"grace_ms":1,"cleanup_timeout_ms":1,"env":["TOKEN=s3cr3t"]}"#)
            .expect("write");
        let request = take_request(&path).expect("read");
        assert_eq!(request.env, ["TOKEN=s3cr3t"]);
        assert!(!path.exists(), "a request is removed once read");
        assert!(take_request(&path).is_err());
    }

    #[test]
    fn slurm_is_asked_less_often_as_a_job_gets_older() {
        let poll = Duration::from_millis(200);
        let table = [(0, 200), (8, 200), (10, 250), (100, 2500), (3600, 5000)];
        for (age, interval) in table {
            assert_eq!(
                query_interval(poll, Duration::from_secs(age)),
                Duration::from_millis(interval),
                "at {age}s"
            );
        }
    }

    #[test]
    fn the_time_limit_leaves_the_build_its_own_timeout_first() {
        assert_eq!(
            time_limit(Duration::from_secs(3600), Duration::from_secs(310)),
            "67"
        );
        assert_eq!(time_limit(Duration::from_secs(1), Duration::ZERO), "2");
    }

    #[test]
    fn a_tail_passes_on_whole_lines_as_the_file_grows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("job.out");
        let mut tail = Tail::new(&path);
        let mut lines = Vec::new();
        let mut collect = |o: Output| {
            if let Output::Line(l) = o {
                lines.push(String::from_utf8_lossy(&l).into_owned());
            }
        };
        tail.read(&mut collect);
        std::fs::write(&path, "one\ntw").expect("write");
        tail.read(&mut collect);
        std::fs::write(&path, "one\ntwo\nthree").expect("write");
        tail.read(&mut collect);
        tail.finish(&mut collect);
        assert_eq!(lines, ["one", "two", "three"]);
    }
}
