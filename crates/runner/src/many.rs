//! Many builds at once: a directory of buildspecs, or a `batch:` section.
//!
//! Each build runs in its own process (a `buildspec run` the caller prepares), so that a build's
//! signals, orphans and reaping stay its own, exactly as when it runs alone. The scheduler starts
//! builds as their dependencies allow, `parallel` at a time, passes their output on line by line,
//! and stops the rest when `fast_fail` says so: running builds get SIGTERM (their own grace
//! period follows), and builds not yet started are recorded as not run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use nix::sys::signal::Signal;
use serde::Serialize;

use crate::platform;
use crate::record::BuildRecord;
use crate::stop::Stop;

/// One build to run.
pub struct Job {
    /// Its identifier: the batch identifier, or the buildspec's path.
    pub id: String,
    /// Builds that must end well first.
    pub depend_on: Vec<String>,
    /// Whether its failure leaves the others going (and the batch green).
    pub ignore_failure: bool,
    /// The `buildspec run` that runs it, with its stdout free for the scheduler.
    pub command: Command,
    /// Where that run writes its record (`--record-file`).
    pub record_file: PathBuf,
    /// What must happen just before it starts (its copy of the source, say).
    pub before: Option<Before>,
}

/// Work done just before a build starts; its error keeps the build from starting.
pub type Before = Box<dyn FnOnce() -> std::io::Result<()> + Send>;

/// How one build of many ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// It ran and succeeded.
    Succeeded,
    /// It ran and did not succeed (failed, timed out, stopped, fault).
    Failed,
    /// It never started: a dependency failed, or the batch stopped first.
    NotRun,
}

/// A build's result, for the summary and the batch record.
#[derive(Debug, Clone, Serialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// Whether its failure is ignored.
    pub ignore_failure: bool,
    /// How long it ran.
    pub duration_ms: u64,
}

/// What the scheduler reports as it goes.
#[derive(Debug)]
pub enum ManyEvent<'a> {
    /// A build started.
    Started {
        /// Its identifier.
        id: &'a str,
    },
    /// A line a build printed (without its newline).
    Line {
        /// The build's identifier.
        id: &'a str,
        /// The line.
        line: &'a [u8],
    },
    /// A build ended, or will not run.
    Finished {
        /// Its result.
        result: &'a JobResult,
    },
}

enum Message {
    Line(usize, Vec<u8>),
    Exited(usize, Option<i32>),
    Stop(i32),
}

/// What a run of many builds ends with.
#[derive(Debug)]
pub struct Ran {
    /// Each build's result, in the order the jobs were given.
    pub results: Vec<JobResult>,
    /// The signal of a stop request, when one stopped the builds.
    pub stopped: Option<i32>,
}

/// Runs `jobs`, at most `parallel` at once, in the order given where dependencies allow; returns
/// their results in that order. A build whose dependency failed (without `ignore_failure`) does
/// not start; with `fast_fail`, such a failure stops every running build and starts no other.
/// A request on `stop` does the same, whatever `fast_fail` says.
pub fn run_many(
    mut jobs: Vec<Job>,
    parallel: usize,
    fast_fail: bool,
    stop: &Stop,
    on_event: &mut dyn FnMut(ManyEvent<'_>),
) -> Ran {
    let parallel = parallel.max(1);
    let mut results: Vec<Option<JobResult>> = (0..jobs.len()).map(|_| None).collect();
    let mut running: Vec<(usize, u32, Instant)> = Vec::new();
    let mut halted: Option<String> = None;
    let mut stopped: Option<i32> = None;
    let (send, receive) = mpsc::channel::<Message>();
    std::thread::scope(|scope| {
        // Stop requests arrive on pipes: a thread waits on them and passes them on. It also
        // waits on a pipe of its own, closed when the builds are over, so that it ends at once.
        let quit = std::io::pipe().ok();
        let (quit_read, mut quit_write) = match quit {
            Some((read, write)) => (Some(read), Some(write)),
            None => (None, None),
        };
        if stop.fds().next().is_some()
            && let Some(quit_read) = quit_read
        {
            let send = send.clone();
            scope.spawn(move || {
                loop {
                    let mut fds: Vec<_> = stop.fds().collect();
                    fds.push(platform::borrow(&quit_read));
                    let Ok(ready) = platform::wait_readable(&fds, None) else {
                        return;
                    };
                    if ready.last().is_some_and(|q| q.readable) {
                        return;
                    }
                    if ready.iter().any(|r| r.readable)
                        && let Some(signal) = stop.take()
                    {
                        let _ = send.send(Message::Stop(signal));
                    }
                }
            });
        }
        loop {
            // Builds whose dependencies failed will never run.
            for i in 0..jobs.len() {
                if results[i].is_some() || running.iter().any(|r| r.0 == i) {
                    continue;
                }
                let blocked = jobs[i].depend_on.iter().find_map(|dep| {
                    let found = jobs.iter().position(|j| &j.id == dep)?;
                    let result = results[found].as_ref()?;
                    (result.outcome != Outcome::Succeeded && !result.ignore_failure)
                        .then(|| format!("{dep} did not succeed"))
                });
                let reason = blocked.or_else(|| halted.clone());
                if let Some(reason) = reason {
                    let result = not_run(&jobs[i], reason);
                    on_event(ManyEvent::Finished { result: &result });
                    results[i] = Some(result);
                }
            }
            // Start what may start.
            for i in 0..jobs.len() {
                if running.len() >= parallel || halted.is_some() {
                    break;
                }
                if results[i].is_some() || running.iter().any(|r| r.0 == i) {
                    continue;
                }
                let ready = jobs[i].depend_on.iter().all(|dep| {
                    jobs.iter()
                        .position(|j| &j.id == dep)
                        .is_none_or(|found| results[found].is_some())
                });
                if !ready {
                    continue;
                }
                on_event(ManyEvent::Started { id: &jobs[i].id });
                match spawn(&mut jobs[i]) {
                    Ok(child) => {
                        running.push((i, child.id(), Instant::now()));
                        let send = send.clone();
                        scope.spawn(move || watch(i, child, &send));
                    }
                    Err(e) => {
                        let mut result = not_run(&jobs[i], format!("cannot start: {e}"));
                        result.outcome = Outcome::Failed;
                        on_event(ManyEvent::Finished { result: &result });
                        results[i] = Some(result);
                    }
                }
            }
            if running.is_empty() {
                if results.iter().all(Option::is_some) {
                    break;
                }
                // Nothing runs and nothing can start: what is left waits on builds that will
                // never end well (a dependency cycle is refused by validation).
                let stuck = results.iter().position(Option::is_none);
                if let Some(i) = stuck {
                    let result = not_run(&jobs[i], "its dependencies never ran".to_owned());
                    on_event(ManyEvent::Finished { result: &result });
                    results[i] = Some(result);
                }
                continue;
            }
            let Ok(message) = receive.recv() else { break };
            match message {
                Message::Line(i, line) => on_event(ManyEvent::Line {
                    id: &jobs[i].id,
                    line: &line,
                }),
                Message::Stop(signal) => {
                    stopped.get_or_insert(signal);
                    halted.get_or_insert_with(|| "the builds were stopped".to_owned());
                    for (_, pid, _) in &running {
                        platform::signal_each(&[*pid], Signal::SIGTERM);
                    }
                }
                Message::Exited(i, code) => {
                    let started = running
                        .iter()
                        .position(|r| r.0 == i)
                        .map(|at| running.remove(at).2);
                    let record = std::fs::read(&jobs[i].record_file)
                        .ok()
                        .and_then(|bytes| serde_json::from_slice::<BuildRecord>(&bytes).ok());
                    let outcome = if code == Some(0) {
                        Outcome::Succeeded
                    } else {
                        Outcome::Failed
                    };
                    let result = JobResult {
                        id: jobs[i].id.clone(),
                        outcome,
                        exit_code: code,
                        reason: None,
                        build_id: record.as_ref().map(|r| r.id.clone()),
                        record,
                        ignore_failure: jobs[i].ignore_failure,
                        duration_ms: started.map_or(0, |s| {
                            u64::try_from(s.elapsed().as_millis()).unwrap_or(u64::MAX)
                        }),
                    };
                    if outcome == Outcome::Failed && !result.ignore_failure && fast_fail {
                        halted.get_or_insert_with(|| format!("fast-fail: {} failed", result.id));
                        for (_, pid, _) in &running {
                            platform::signal_each(&[*pid], Signal::SIGTERM);
                        }
                    }
                    on_event(ManyEvent::Finished { result: &result });
                    results[i] = Some(result);
                }
            }
        }
        // The waiting thread sees end-of-file on its pipe.
        quit_write.take();
    });
    Ran {
        results: results.into_iter().flatten().collect(),
        stopped,
    }
}

fn not_run(job: &Job, reason: String) -> JobResult {
    JobResult {
        id: job.id.clone(),
        outcome: Outcome::NotRun,
        exit_code: None,
        reason: Some(reason),
        record: None,
        build_id: None,
        ignore_failure: job.ignore_failure,
        duration_ms: 0,
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("depend_on", &self.depend_on)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

fn spawn(job: &mut Job) -> std::io::Result<Child> {
    if let Some(before) = job.before.take() {
        before()?;
    }
    job.command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
}

/// Passes a build's output on, line by line, then its exit code.
fn watch(i: usize, mut child: Child, send: &mpsc::Sender<Message>) {
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::with_capacity(64 * 1024, stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    let _ = send.send(Message::Line(i, line.clone()));
                }
            }
        }
    }
    let code = child.wait().ok().and_then(|s| {
        use std::os::unix::process::ExitStatusExt as _;
        s.code().or_else(|| s.signal().map(|n| 128 + n))
    });
    let _ = send.send(Message::Exited(i, code));
}
