//! Many builds at once: a directory of buildspecs, or a `batch:` section.
//!
//! Each build runs in a runner process that runs no other build meanwhile (a `buildspec run` the
//! caller prepares, or a [`workers`] process that runs such builds one after another), so that a
//! build's signals, orphans and reaping stay its own, exactly as when it runs alone. The
//! scheduler starts builds as their dependencies allow, `parallel` at a time, passes their output
//! on line by line, and stops the rest when `fast_fail` says so: running builds are asked to stop
//! (their own grace period follows), and builds not yet started are recorded as not run.
//!
//! Where a build runs is the [`Launcher`]'s business: [`Local`] starts it as a child process of
//! this one, [`workers::Workers`] gives it to a worker process of this one, [`slurm::Slurm`]
//! submits it to a Slurm cluster. The scheduling is the same.

pub mod builds;
pub mod channel;
pub mod rerun;
pub mod slurm;
pub mod workers;

pub use crate::store::batch::{JobResult, Outcome};

use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::outcome::{ContextCode, Status, exit};
use crate::platform;
use crate::stop::Stop;
use crate::store::{BuildRecord, FreshRecord, Placement, StateDir, Verdict};

/// One build to run.
pub struct Job {
    /// Its identifier: the batch identifier, or the buildspec's path.
    pub id: String,
    /// Builds that must end well first.
    pub depend_on: Vec<String>,
    /// Whether its failure leaves the others going (and the batch green).
    pub ignore_failure: bool,
    /// What runs it, with its stdout free for the scheduler: for a build, the `buildspec`
    /// binary (and the folder to run it in), which gets `request`; otherwise any command,
    /// started as it is.
    pub command: Command,
    /// The build it runs, handed to its runner on a pipe or in a private file, never on a
    /// command line.
    pub request: Option<crate::request::BuildRequest>,
    /// Where that run's final record is read from: its `--record-file`, or its `build.json`
    /// (a record still in progress there is one its runner did not finish).
    pub record_file: PathBuf,
    /// What must happen just before it starts (its copy of the source, say).
    pub before: Option<Before>,
    /// Where its runner keeps its record (`--build-uuid`), so that a build whose runner died,
    /// or never started, still ends with a complete record.
    pub record: Option<RecordPlace>,
    /// For a resumed batch: the launcher's handle of the build started before (a Slurm job
    /// id), taken up instead of starting the build again.
    pub resume: Option<String>,
    /// For a resumed batch: how the build ended before; it is not run again.
    pub ended: Option<JobResult>,
}

/// Where a build's record lives, and what a record made for it would say.
#[derive(Debug, Clone)]
pub struct RecordPlace {
    /// The state directory.
    pub state_dir: StateDir,
    /// The build's uuid, given to its runner.
    pub uuid: String,
    /// What the record says of a build that never started.
    pub fresh: FreshRecord,
}

/// Starts builds and follows them to their end: on this machine, or through a scheduler.
pub trait Launcher: Sync {
    /// Starts the job's build (its `command`).
    fn launch(&self, job: &mut Job) -> io::Result<Launched>;

    /// Takes up a build a previous dispatcher started, by the handle it had.
    fn attach(&self, job: &mut Job, handle: &str) -> io::Result<Launched> {
        let _ = (job, handle);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this executor cannot take up builds it did not start",
        ))
    }
}

/// Asks a launched build to stop.
pub type StopBuild = Box<dyn Fn() + Send>;

/// Follows a launched build to its end, passing on what it prints.
pub type WatchBuild = Box<dyn FnOnce(&mut dyn FnMut(Output)) -> Ended + Send>;

/// A build a launcher started.
pub struct Launched {
    /// The launcher's name for it (a Slurm job id), kept so that a restarted dispatcher can take
    /// it up.
    pub handle: Option<String>,
    /// Asks the build to stop: its runner gets SIGTERM and its grace period.
    pub stop: StopBuild,
    /// Follows the build to its end on a thread of its own, passing on what it prints.
    pub watch: WatchBuild,
}

impl std::fmt::Debug for Launched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launched")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

/// What a running build gives the scheduler.
#[derive(Debug)]
pub enum Output {
    /// A line the build printed, without its newline.
    Line(Vec<u8>),
    /// What the executor says of the build (submitted, started on a node, ended).
    Note(String),
}

/// How a launched build ended, as its launcher saw it.
#[derive(Debug, Default)]
pub struct Ended {
    /// The runner's exit code (128 + n for a signal), when known.
    pub exit_code: Option<i32>,
    /// What the executor says of the end, for a record the runner could not finish.
    pub verdict: Option<Verdict>,
    /// Whether the verdict stands over the runner's own (a scheduler's time limit, a lost node).
    pub overrides: bool,
    /// Where it ran.
    pub placement: Option<Placement>,
}

/// Runs builds as child processes of this one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Launcher for Local {
    fn launch(&self, job: &mut Job) -> io::Result<Launched> {
        platform::default_signals(&mut job.command);
        let child = job
            .command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        Ok(Launched {
            handle: None,
            stop: Box::new(move || platform::signal_each(&[pid], Signal::SIGTERM)),
            watch: Box::new(move |output| watch(child, output)),
        })
    }
}

/// Work done just before a build starts; its error keeps the build from starting.
pub type Before = Box<dyn FnOnce() -> std::io::Result<()> + Send>;

/// What the scheduler reports as it goes.
#[derive(Debug)]
pub enum ManyEvent<'a> {
    /// A build is about to start.
    Started {
        /// Its identifier.
        id: &'a str,
    },
    /// A build was started (or taken up), with the launcher's handle of it.
    Launched {
        /// Its identifier.
        id: &'a str,
        /// The launcher's name for it (a Slurm job id).
        handle: Option<&'a str>,
    },
    /// What the executor says of a build.
    Note {
        /// The build's identifier.
        id: &'a str,
        /// The note.
        text: &'a str,
    },
    /// What a build's runner reported.
    Build {
        /// The build's identifier.
        id: &'a str,
        /// When it happened.
        time: jiff::Timestamp,
        /// What happened.
        event: &'a crate::events::Event<'a>,
    },
    /// A line a build's runner printed that is no event (without its newline): a message of
    /// its own, or the output of a command run as it is.
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
    /// A quarter of a second ([`TICK`]) passed since the last tick, whatever else happened: the
    /// moment to refresh what shows elapsed time, or to write what was held back.
    Tick,
    /// Everything that came so far has been passed on, and the scheduler waits for more: the
    /// moment to flush what was written (a write per line cost more than the line's build).
    Idle,
}

/// How often [`ManyEvent::Tick`] comes.
pub const TICK: Duration = Duration::from_millis(250);

enum Message {
    Output(usize, Output),
    Exited(usize, Box<Ended>),
    Stop(i32),
}

/// The threads that follow launched builds, kept for the next build once theirs has ended: a
/// thread per build cost a thread's start and end, and its stack's mapping, per build.
struct Watchers {
    /// The builds to follow; each idle thread waits on it in turn. `None` once closed.
    queue: Mutex<Option<mpsc::Sender<(usize, WatchBuild)>>>,
    receiver: Arc<Mutex<mpsc::Receiver<(usize, WatchBuild)>>>,
    /// Threads waiting for a build and not yet promised one.
    idle: Arc<AtomicUsize>,
}

impl Watchers {
    fn new() -> Watchers {
        let (queue, receiver) = mpsc::channel();
        Watchers {
            queue: Mutex::new(Some(queue)),
            receiver: Arc::new(Mutex::new(receiver)),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Follows job `i` on an idle thread, or on a new one when none is idle.
    fn watch<'scope>(
        &self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        i: usize,
        watch: WatchBuild,
        send: &mpsc::Sender<Message>,
    ) {
        // An idle thread is promised this build, so that two builds launched at once never
        // wait on the same thread. Threads are alike: which one takes it does not matter.
        let promised = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if !promised {
            let receiver = Arc::clone(&self.receiver);
            let idle = Arc::clone(&self.idle);
            let send = send.clone();
            scope.spawn(move || {
                loop {
                    // Poisoned only if a thread panicked while holding it, and then none can go on.
                    let next = receiver.lock().ok().and_then(|r| r.recv().ok());
                    let Some((i, watch)) = next else { return };
                    let ended = watch(&mut |out| {
                        let _ = send.send(Message::Output(i, out));
                    });
                    // Idle before the scheduler hears of the end, so that the build it starts
                    // next finds this thread.
                    idle.fetch_add(1, Ordering::AcqRel);
                    let _ = send.send(Message::Exited(i, Box::new(ended)));
                }
            });
        }
        if let Ok(queue) = self.queue.lock()
            && let Some(queue) = queue.as_ref()
        {
            let _ = queue.send((i, watch));
        }
    }

    /// Ends the idle threads once the builds are over.
    fn close(&self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
    }
}

/// What a run of many builds ends with.
#[derive(Debug)]
pub struct Ran {
    /// Each build's result, in the order the jobs were given.
    pub results: Vec<JobResult>,
    /// The signal of a stop request, when one stopped the builds.
    pub stopped: Option<i32>,
}

impl Ran {
    /// Whether a build that counts (one without `ignore-failure`) did not succeed.
    pub fn failed(&self) -> bool {
        self.results
            .iter()
            .any(|r| r.outcome != Outcome::Succeeded && !r.ignore_failure)
    }

    /// The exit code of the run: 128 + the signal when a stop request ended the builds, as for
    /// one build; else that of a failed build when one that counts failed.
    pub fn exit_code(&self) -> i32 {
        match self.stopped {
            Some(signal) => exit::of_signal(signal),
            None if self.failed() => exit::FAILED,
            None => exit::SUCCEEDED,
        }
    }
}

/// Runs `jobs`, at most `parallel` at once, in the order given where dependencies allow; returns
/// their results in that order. A build whose dependency failed (without `ignore_failure`) does
/// not start; with `fast_fail`, such a failure stops every running build and starts no other.
/// A request on `stop` does the same, whatever `fast_fail` says.
pub fn run_many(
    mut jobs: Vec<Job>,
    parallel: usize,
    fast_fail: bool,
    launcher: &dyn Launcher,
    stop: &Stop,
    on_event: &mut dyn FnMut(ManyEvent<'_>),
) -> Ran {
    let parallel = parallel.max(1);
    // Builds a resumed batch already saw end are not run again.
    let mut results: Vec<Option<JobResult>> = jobs.iter_mut().map(|j| j.ended.take()).collect();
    for result in results.iter().flatten() {
        on_event(ManyEvent::Finished { result });
    }
    let mut running: Vec<(usize, StopBuild, Instant)> = Vec::new();
    let mut halted: Option<String> = None;
    let mut stopped: Option<i32> = None;
    let mut handles: Vec<Option<String>> = vec![None; jobs.len()];
    let (send, receive) = mpsc::channel::<Message>();
    let watchers = Watchers::new();
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
        // Whether a build ended, or a stop came, since the jobs were last looked over: a line
        // changes nothing, and looking over every job at every line is quadratic in a large run.
        let mut changed = true;
        let mut next_tick = Instant::now() + TICK;
        loop {
            if changed {
                changed = false;
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
                        // Its own dependents, earlier in the order, are looked over again.
                        changed = true;
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
                    // A dependency that did not end well blocks it (the look above, next time,
                    // records it as not run), even one that failed to start in this very look.
                    let ready = jobs[i].depend_on.iter().all(|dep| {
                        jobs.iter().position(|j| &j.id == dep).is_none_or(|found| {
                            results[found].as_ref().is_some_and(|r| {
                                r.outcome == Outcome::Succeeded || r.ignore_failure
                            })
                        })
                    });
                    if !ready {
                        continue;
                    }
                    on_event(ManyEvent::Started { id: &jobs[i].id });
                    match start(&mut jobs[i], launcher) {
                        Ok(launched) => {
                            on_event(ManyEvent::Launched {
                                id: &jobs[i].id,
                                handle: launched.handle.as_deref(),
                            });
                            handles[i] = launched.handle;
                            running.push((i, launched.stop, Instant::now()));
                            watchers.watch(scope, i, launched.watch, &send);
                        }
                        Err(e) => {
                            // Its dependents are looked over again before anything else.
                            changed = true;
                            let mut result = not_run(&jobs[i], format!("cannot start: {e}"));
                            result.outcome = Outcome::Failed;
                            // The build has a record and a log all the same, that say why.
                            if let Some(place) = &jobs[i].record {
                                let verdict = Verdict {
                                    status: Status::Fault,
                                    status_code: ContextCode::ClientError,
                                    message: format!("the build could not be started: {e}"),
                                    exit_code: None,
                                };
                                if let Ok(record) = place.state_dir.complete(
                                    &place.uuid,
                                    &place.fresh,
                                    Some(&verdict),
                                    true,
                                    None,
                                ) {
                                    result.build_id = Some(record.id.clone());
                                    result.status = Some(record.status);
                                    result.record = Some(record);
                                }
                            }
                            on_event(ManyEvent::Finished { result: &result });
                            results[i] = Some(result);
                        }
                    }
                }
                // A look that changed something looks again before it waits.
                if changed {
                    continue;
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
                    changed = true;
                    continue;
                }
            }
            let message = match receive.try_recv() {
                Ok(message) => Some(message),
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    on_event(ManyEvent::Idle);
                    let wait = next_tick.saturating_duration_since(Instant::now());
                    match receive.recv_timeout(wait) {
                        Ok(message) => Some(message),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + TICK;
                on_event(ManyEvent::Tick);
            }
            let Some(message) = message else { continue };
            match message {
                Message::Output(i, Output::Line(line)) => match channel::read(&line) {
                    Some((time, event)) => on_event(ManyEvent::Build {
                        id: &jobs[i].id,
                        time,
                        event: &event,
                    }),
                    None => on_event(ManyEvent::Line {
                        id: &jobs[i].id,
                        line: &line,
                    }),
                },
                Message::Output(i, Output::Note(text)) => on_event(ManyEvent::Note {
                    id: &jobs[i].id,
                    text: &text,
                }),
                Message::Stop(signal) => {
                    changed = true;
                    stopped.get_or_insert(signal);
                    halted.get_or_insert_with(|| "the builds were stopped".to_owned());
                    for (_, stop, _) in &running {
                        stop();
                    }
                }
                Message::Exited(i, ended) => {
                    changed = true;
                    let started = running
                        .iter()
                        .position(|r| r.0 == i)
                        .map(|at| running.remove(at).2);
                    let result = JobResult {
                        handle: handles[i].take(),
                        duration_ms: started.map_or(0, |s| {
                            u64::try_from(s.elapsed().as_millis()).unwrap_or(u64::MAX)
                        }),
                        ..conclude(&jobs[i], *ended)
                    };
                    if result.outcome == Outcome::Failed && !result.ignore_failure && fast_fail {
                        halted.get_or_insert_with(|| format!("fast-fail: {} failed", result.id));
                        for (_, stop, _) in &running {
                            stop();
                        }
                    }
                    on_event(ManyEvent::Finished { result: &result });
                    results[i] = Some(result);
                }
            }
        }
        // The waiting thread sees end-of-file on its pipe, the idle watchers an empty queue.
        quit_write.take();
        watchers.close();
    });
    Ran {
        results: results.into_iter().flatten().collect(),
        stopped,
    }
}

/// Whether a process (a dispatcher of an earlier run, say) is still there.
pub fn process_alive(pid: u32) -> bool {
    platform::process_alive(pid)
}

fn not_run(job: &Job, reason: String) -> JobResult {
    JobResult {
        id: job.id.clone(),
        outcome: Outcome::NotRun,
        exit_code: None,
        reason: Some(reason),
        record: None,
        build_id: None,
        status: None,
        handle: None,
        ignore_failure: job.ignore_failure,
        duration_ms: 0,
    }
}

/// A build's result once its runner is gone: its record, completed when the runner could not
/// finish it or the executor has the last word, and the outcome the record says.
fn conclude(job: &Job, ended: Ended) -> JobResult {
    let own = std::fs::read(&job.record_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<BuildRecord>(&bytes).ok())
        .filter(|record| record.status != Status::InProgress);
    let needs_completing = own.is_none() || ended.overrides || ended.placement.is_some();
    let mut reason = None;
    let record = match (&job.record, needs_completing) {
        (Some(place), true) => {
            // A runner that ended without its record: it was killed, or never started.
            let verdict = ended.verdict.or_else(|| {
                own.is_none().then(|| match ended.exit_code {
                    Some(code) if code > 128 => Verdict {
                        status: Status::Stopped,
                        status_code: ContextCode::BuildStopped,
                        message: format!(
                            "the runner was killed by signal {} before it finished the build",
                            code - 128
                        ),
                        exit_code: Some(code),
                    },
                    code => Verdict {
                        status: Status::Fault,
                        status_code: ContextCode::RunnerError,
                        message: format!(
                            "the runner ended (exit code {}) without finishing the build",
                            code.map_or_else(|| "unknown".to_owned(), |c| c.to_string())
                        ),
                        exit_code: None,
                    },
                })
            });
            // A runner on this machine that died mid-build left its processes and runtime
            // folders: they end with it. (A scheduler's node is another machine's business.)
            if own.is_none() && ended.placement.is_none() {
                crate::store::abandoned::end_what_is_left(&place.state_dir, &place.uuid);
            }
            match place.state_dir.complete(
                &place.uuid,
                &place.fresh,
                verdict.as_ref(),
                ended.overrides,
                ended.placement,
            ) {
                Ok(record) => Some(record),
                Err(e) => {
                    reason = Some(format!("its record cannot be completed: {e}"));
                    own
                }
            }
        }
        _ => own,
    };
    // The record's word is final; without one, the exit code's.
    let succeeded = match &record {
        Some(r) if r.status != Status::InProgress => r.status == Status::Succeeded,
        _ => ended.exit_code == Some(0),
    };
    JobResult {
        id: job.id.clone(),
        outcome: if succeeded {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        },
        exit_code: record
            .as_ref()
            .and_then(|r| r.exit_code)
            .filter(|_| ended.overrides || ended.exit_code.is_none())
            .or(ended.exit_code),
        reason,
        build_id: record.as_ref().map(|r| r.id.clone()),
        status: record.as_ref().map(|r| r.status),
        record,
        handle: None,
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

fn start(job: &mut Job, launcher: &dyn Launcher) -> io::Result<Launched> {
    if let Some(handle) = job.resume.take() {
        // Its source was prepared when it was first started.
        job.before = None;
        return launcher.attach(job, &handle);
    }
    if let Some(before) = job.before.take() {
        before()?;
    }
    launcher.launch(job)
}

/// Passes a build's output on, line by line, and returns its exit code.
fn watch(mut child: Child, output: &mut dyn FnMut(Output)) -> Ended {
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
                    output(Output::Line(line.clone()));
                }
            }
        }
    }
    let code = child.wait().ok().and_then(|s| {
        use std::os::unix::process::ExitStatusExt as _;
        s.code().or_else(|| s.signal().map(exit::of_signal))
    });
    Ended {
        exit_code: code,
        ..Ended::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, program: &str, depend_on: &[&str]) -> Job {
        let mut command = Command::new(program);
        command.stdout(Stdio::null());
        Job {
            id: id.to_owned(),
            depend_on: depend_on.iter().map(|d| (*d).to_owned()).collect(),
            ignore_failure: false,
            command,
            request: None,
            record_file: PathBuf::from("/nonexistent/record.json"),
            before: None,
            record: None,
            resume: None,
            ended: None,
        }
    }

    #[test]
    fn a_failure_leaves_every_build_down_its_chain_not_run_and_says_why() {
        // Listed against the chain's order: `last` needs `middle`, which needs `first`.
        let jobs = vec![
            job("last", "true", &["middle"]),
            job("middle", "true", &["first"]),
            job("first", "false", &[]),
        ];
        let ran = run_many(jobs, 1, false, &Local, &Stop::none(), &mut |_| {});
        let outcome: Vec<(&str, Outcome, Option<&str>)> = ran
            .results
            .iter()
            .map(|r| (r.id.as_str(), r.outcome, r.reason.as_deref()))
            .collect();
        assert_eq!(
            outcome,
            [
                ("last", Outcome::NotRun, Some("middle did not succeed")),
                ("middle", Outcome::NotRun, Some("first did not succeed")),
                ("first", Outcome::Failed, None),
            ]
        );
    }

    #[test]
    fn a_build_that_cannot_start_leaves_its_dependents_not_run() {
        // The first cannot start (no such program): the second, next in the same look over
        // the jobs, must not start on it.
        let jobs = vec![
            job("first", "/nonexistent/program", &[]),
            job("second", "true", &["first"]),
            job("third", "true", &[]),
        ];
        let ran = run_many(jobs, 2, false, &Local, &Stop::none(), &mut |_| {});
        let outcome: Vec<(&str, Outcome)> = ran
            .results
            .iter()
            .map(|r| (r.id.as_str(), r.outcome))
            .collect();
        assert_eq!(
            outcome,
            [
                ("first", Outcome::Failed),
                ("second", Outcome::NotRun),
                ("third", Outcome::Succeeded),
            ],
            "{:?}",
            ran.results
        );
    }

    #[test]
    fn builds_side_by_side_are_followed_side_by_side_on_reused_threads() {
        // `slow` ends only once `quick` and `next` were both seen to end. Were a build's
        // watcher to wait behind another build's (as a thread promised twice would), their ends
        // would never come, and `slow` would fail at its timeout instead.
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let mut slow = job("slow", "timeout", &[]);
        slow.command
            .args(["20", "sh", "-c", "read -r line < \"$0\""])
            .arg(&fifo);
        let jobs = vec![slow, job("quick", "true", &[]), job("next", "true", &[])];
        let mut ended = Vec::new();
        let ran = run_many(jobs, 2, false, &Local, &Stop::none(), &mut |event| {
            if let ManyEvent::Finished { result } = event {
                ended.push(result.id.clone());
                if ended == ["quick", "next"] {
                    // `slow` is reading the FIFO: opening it for writing does not wait.
                    std::fs::write(&fifo, "go\n").expect("write the fifo");
                }
            }
        });
        assert_eq!(ended, ["quick", "next", "slow"]);
        assert!(
            ran.results.iter().all(|r| r.outcome == Outcome::Succeeded),
            "{:?}",
            ran.results
        );
    }
}
