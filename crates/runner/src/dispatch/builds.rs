//! Many builds asked for at once (the buildspecs of a directory, or a batch's builds): what each
//! one is asked with, where it runs (a copy of the source when builds run side by side or on a
//! scheduler's node), where its record goes, and the batch record that follows them. The caller
//! says what to run and shows the events; the scheduling is [`super::run_many`]'s.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{Before, Job, Launcher, ManyEvent, Ran, RecordPlace};
use crate::request::BuildRequest;
use crate::stop::Stop;
use crate::store::batch::{BatchRecord, MemberState};
use crate::store::{Invocation, StateDir, StateError};

/// One build of many.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its identifier: the batch's, or the buildspec's path.
    pub id: String,
    /// Its buildspec.
    pub buildspec: PathBuf,
    /// Variables over the buildspec's own (`--env`), in order.
    pub env: Vec<(String, String)>,
    /// Builds that must end well first.
    pub depend_on: Vec<String>,
    /// Whether its failure leaves the others going.
    pub ignore_failure: bool,
}

/// What the builds' batch is, when they are one.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    /// The buildspec whose `batch:` section it runs.
    pub buildspec: String,
    /// `build-list`, `build-matrix`, `build-graph` or `build-fanout`.
    pub kind: String,
    /// The builds as the buildspec defines them.
    pub planned: Vec<buildspec::batch::PlannedBuild>,
    /// The interrupted batch this run takes up (`--resume`; see [`interrupted_batch`]).
    pub resume: Option<BatchRecord>,
}

/// Where the builds run.
#[derive(Debug, Clone)]
pub enum Executor {
    /// Worker processes of this one.
    Local,
    /// Jobs of a Slurm cluster.
    Slurm(SlurmPlace),
}

/// A Slurm cluster's jobs, and the directory its nodes share with this machine.
#[derive(Debug, Clone)]
pub struct SlurmPlace {
    /// A directory the nodes see at the same path: the binary, the copies, the records.
    pub shared: PathBuf,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time`; by default the build's timeout and its time to stop.
    pub time: Option<String>,
    /// Further `sbatch` arguments.
    pub extra: Vec<String>,
    /// How long a job may wait in the queue before it is cancelled (its build STOPPED).
    pub max_pending: Option<Duration>,
}

/// Many builds to run.
#[derive(Debug, Clone)]
pub struct Builds {
    /// What every build is asked with, before its own buildspec, variables and destinations;
    /// its source and state directory are the builds'.
    pub base: BuildRequest,
    /// The builds, in order.
    pub members: Vec<Member>,
    /// Whether a failure stops the others.
    pub fast_fail: bool,
    /// The batch they are, if one.
    pub batch: Option<BatchPlan>,
    /// At most this many at once.
    pub parallel: usize,
    /// Whether builds side by side share the source instead of each having a copy.
    pub in_place: bool,
    /// Where they run.
    pub executor: Executor,
    /// The runner binary: each build runs in a process of its own of it.
    pub exe: PathBuf,
}

/// Why builds could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BuildsError {
    /// The source directory does not exist.
    #[error("{0}: no such file or directory")]
    NoSource(String),
    /// The request cannot be used (a --mask-file that cannot be read).
    #[error(transparent)]
    Request(#[from] crate::request::RequestError),
    /// The state directory is unusable.
    #[error(transparent)]
    State(#[from] StateError),
    /// The executor cannot be used (Slurm unreachable, the shared directory unwritable).
    #[error("{0}")]
    Executor(String),
    /// No batch can be resumed as asked.
    #[error("{0}")]
    Resume(String),
    /// A folder of the run could not be made.
    #[error("cannot create {what} {path}: {source}")]
    Folder {
        /// What it is for.
        what: &'static str,
        /// The folder.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Runs the builds, passing each event to `on_event`, and keeps a batch's record as they end.
pub fn run(
    builds: Builds,
    stop: &Stop,
    on_event: &mut dyn FnMut(ManyEvent<'_>),
) -> Result<Ran, BuildsError> {
    let Builds {
        mut base,
        members,
        fast_fail,
        mut batch,
        parallel,
        in_place,
        executor,
        exe,
    } = builds;
    // The values to mask of a --mask-file are read once, here, and go to each build with the
    // others.
    base.mask = base.masks()?;
    base.mask_file = None;
    let source = base.source.clone();
    if !source.is_dir() {
        return Err(BuildsError::NoSource(source.display().to_string()));
    }
    let state_dir = base.state_dir.clone();
    let resume = batch.as_mut().and_then(|b| b.resume.take());
    let run_id = resume
        .as_ref()
        .map(|j| j.id.trim_start_matches("batch:").to_owned())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let slurm = matches!(executor, Executor::Slurm(_));
    // Where a scheduler's node leaves each build's final record: a runner on this machine writes
    // it where the dispatcher reads it, in the state directory.
    let work = slurm.then(|| run_folder(&state_dir, &run_id)).transpose()?;
    // Builds side by side must not see each other's files: each gets a copy of the source. A
    // scheduler's node sees only the shared directory: the copy goes there.
    let copies = !in_place && (slurm || (parallel > 1 && members.len() > 1));
    let project = crate::env::project_name(base.project.as_deref(), &source);
    let shared = match &executor {
        Executor::Slurm(place) => Some(place.shared.clone()),
        Executor::Local => None,
    };
    let (exe, copies_root, launcher): (PathBuf, PathBuf, Box<dyn Launcher>) = match executor {
        Executor::Slurm(place) => {
            let shared = shared_dir(&place.shared)?;
            let run_dir = shared.join("runs").join(&run_id);
            let launcher = slurm_launcher(&base, place, run_dir.join("jobs"))?;
            (shared_binary(&exe, &shared)?, run_dir, Box::new(launcher))
        }
        Executor::Local => (
            exe,
            // The copies live outside the source (which may hold the state directory).
            std::env::temp_dir().join(format!("buildspec-{run_id}")),
            Box::new(super::workers::Workers::new()),
        ),
    };
    let state = StateDir::open(&state_dir)?;
    if copies {
        // Made here once; a copy that cannot be made says so as its build's start fails.
        let _ = crate::store::create_spread_dir(&copies_root);
    }
    let batch_id = format!("batch:{run_id}");
    let mut jobs = Vec::with_capacity(members.len());
    let mut member_states = Vec::with_capacity(members.len());
    for (i, member) in members.into_iter().enumerate() {
        let build_source = if copies {
            copies_root.join(format!("src-{i}"))
        } else {
            source.clone()
        };
        let before_state = resume
            .as_ref()
            .and_then(|j| j.members.iter().find(|m| m.id == member.id));
        let uuid = before_state.map_or_else(
            || uuid::Uuid::new_v4().to_string(),
            |m| m.build_uuid.clone(),
        );
        let ended = resume
            .as_ref()
            .and_then(|j| j.builds.iter().find(|b| b.id == member.id))
            .cloned();
        let handle = before_state
            .and_then(|m| m.handle.clone())
            .filter(|_| ended.is_none());
        // On a scheduler the buildspec is read on the node: from the copy of the source it
        // lies in, else from a copy beside it.
        let (buildspec, copied_spec) = match (slurm, copies) {
            (true, true) => match buildspec_in_copy(&member.buildspec, &source, &build_source) {
                Some(inside) => (inside, None),
                None => {
                    let copy = copies_root
                        .join("buildspecs")
                        .join(format!("{i}-{}", file_name(&member.buildspec)));
                    (copy.clone(), Some((member.buildspec.clone(), copy)))
                }
            },
            (true, false) => (absolute(&member.buildspec), None),
            (false, _) => (member.buildspec.clone(), None),
        };
        let mut command = Command::new(&exe);
        // Its own process group: a terminal's Ctrl-C reaches this process alone, which passes
        // one stop request on; two would end a build at once, without its grace period.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut request = member_request(&base, &buildspec, &build_source, &project, &member);
        let record_file = match &work {
            Some(work) => {
                let file = work.join(format!("{i}.json"));
                request.record_file = Some(file.clone());
                file
            }
            None => state.build_dir(&uuid).join("build.json"),
        };
        request.uuid = Some(uuid.clone());
        if buildspec != member.buildspec {
            request.buildspec_name = Some(member.buildspec.display().to_string());
        }
        if copies {
            request.original_source = Some(absolute(&source));
        }
        if slurm {
            // Where the dispatcher was, for the build's record (and `rerun`), when the node
            // has it.
            command.current_dir(&request.cwd);
        }
        let in_batch = batch
            .is_some()
            .then(|| (batch_id.clone(), member.id.clone()));
        request.batch.clone_from(&in_batch);
        let before: Option<Before> = copies.then(|| {
            let from = source.clone();
            let to = build_source.clone();
            let skip = [Some(state_dir.clone()), shared.clone()];
            Box::new(move || {
                copy_tree(&from, &to, &skip)?;
                if let Some((spec, copy)) = copied_spec {
                    if let Some(dir) = copy.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::copy(spec, copy)?;
                }
                Ok(())
            }) as Before
        });
        member_states.push(MemberState {
            id: member.id.clone(),
            build_uuid: uuid.clone(),
            handle: handle.clone(),
            invocation: batch
                .is_some()
                .then(|| member_invocation(&base, &source, &project, &member)),
        });
        jobs.push(Job {
            record: Some(RecordPlace {
                state_dir: state.clone(),
                uuid,
                fresh: crate::store::FreshRecord {
                    project: project.clone(),
                    buildspec: member.buildspec.display().to_string(),
                    source: absolute(&source).display().to_string(),
                    initiator: crate::env::initiator(),
                    session: base.session.as_str().to_owned(),
                    batch: in_batch,
                },
            }),
            id: member.id,
            depend_on: member.depend_on,
            ignore_failure: member.ignore_failure,
            command,
            request: Some(request),
            record_file,
            before,
            resume: handle,
            ended,
        });
    }
    let started = resume
        .as_ref()
        .map_or_else(jiff::Timestamp::now, |j| j.start_time);
    let mut record = batch.map(|plan| BatchRecord {
        id: batch_id.clone(),
        buildspec: plan.buildspec,
        kind: plan.kind,
        fast_fail,
        planned: plan.planned,
        status: crate::Status::InProgress,
        start_time: started,
        end_time: None,
        executor: if slurm { "slurm" } else { "local" }.to_owned(),
        dispatcher_pid: std::process::id(),
        builds: resume.map(|j| j.builds).unwrap_or_default(),
        members: member_states,
    });
    if let Some(record) = &record {
        state.write_batch(record)?;
    }
    // The batch record follows the builds as they end, written at most once a tick (it holds
    // every build: written at each end, a large batch would write a quadratic amount), and at
    // once when a scheduler names a build's job, which is what --resume needs.
    let mut unwritten = false;
    let ran = super::run_many(
        jobs,
        parallel,
        fast_fail,
        launcher.as_ref(),
        stop,
        &mut |event| {
            if let Some(record) = record.as_mut() {
                let write = match &event {
                    ManyEvent::Launched {
                        id,
                        handle: Some(handle),
                    } => {
                        if let Some(m) = record.members.iter_mut().find(|m| m.id == *id) {
                            m.handle = Some((*handle).to_owned());
                        }
                        true
                    }
                    ManyEvent::Finished { result } => {
                        record.builds.retain(|b| b.id != result.id);
                        record.builds.push((*result).clone());
                        unwritten = true;
                        false
                    }
                    ManyEvent::Tick => unwritten,
                    _ => false,
                };
                if write {
                    unwritten = false;
                    // A convenience for --resume: a failure to write it costs nothing else.
                    let _ = state.write_batch(record);
                }
            }
            on_event(event);
        },
    );
    if let Some(work) = &work {
        let _ = std::fs::remove_dir_all(work);
    }
    let _ = std::fs::remove_dir_all(&copies_root);
    if let Some(mut record) = record {
        record.builds.clone_from(&ran.results);
        record.end(ran.stopped.is_some());
        state.write_batch(&record)?;
    }
    Ok(ran)
}

/// The latest batch of `buildspec` a Slurm dispatcher started, that did not end, and whose
/// dispatcher is gone: what `--resume` takes up.
pub fn interrupted_batch(state_dir: &Path, buildspec: &str) -> Result<BatchRecord, BuildsError> {
    let found = StateDir::at(state_dir)
        .batches("")
        .into_iter()
        .filter(|b| {
            b.status == crate::Status::InProgress
                && b.buildspec == buildspec
                && b.executor == "slurm"
        })
        .max_by_key(|b| b.start_time);
    let batch = found.ok_or_else(|| {
        BuildsError::Resume(format!(
            "no interrupted Slurm batch of {buildspec} to resume in {}",
            state_dir.join("batches").display()
        ))
    })?;
    if batch.dispatching() {
        return Err(BuildsError::Resume(format!(
            "{} is still being dispatched by process {}",
            batch.id, batch.dispatcher_pid
        )));
    }
    Ok(batch)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn shared_dir(shared: &Path) -> Result<PathBuf, BuildsError> {
    std::fs::create_dir_all(shared)
        .and_then(|()| std::path::absolute(shared))
        .map_err(|e| {
            BuildsError::Executor(format!(
                "cannot create the shared directory {}: {e}",
                shared.display()
            ))
        })
}

/// The runner binary on the shared directory, copied once per version of it (by size and
/// mtime), so that every node runs the dispatcher's own runner.
fn shared_binary(exe: &Path, shared: &Path) -> Result<PathBuf, BuildsError> {
    let fault = |e: io::Error| {
        BuildsError::Executor(format!(
            "cannot copy the binary to {}: {e}",
            shared.display()
        ))
    };
    let meta = std::fs::metadata(exe).map_err(fault)?;
    let stamp = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let bin = shared.join("bin");
    let target = bin.join(format!("buildspec-{}-{stamp}", meta.len()));
    if target.is_file() {
        return Ok(target);
    }
    crate::store::create_private_dir(&bin).map_err(fault)?;
    let partial = bin.join(format!(".buildspec.{}.partial", std::process::id()));
    std::fs::copy(exe, &partial)
        .and_then(|_| std::fs::rename(&partial, &target))
        .map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            fault(e)
        })?;
    Ok(target)
}

fn slurm_launcher(
    base: &BuildRequest,
    place: SlurmPlace,
    jobs_dir: PathBuf,
) -> Result<super::slurm::Slurm, BuildsError> {
    let after_stop = Duration::from_millis(base.grace_ms.saturating_add(base.cleanup_timeout_ms));
    let timeout = Duration::from_millis(base.timeout_ms);
    let launcher = super::slurm::Slurm::new(super::slurm::SlurmConfig {
        jobs_dir,
        partition: place.partition,
        account: place.account,
        time: place.time.or_else(|| {
            (!timeout.is_zero()).then(|| super::slurm::time_limit(timeout, after_stop))
        }),
        extra: place.extra,
        max_pending: place.max_pending,
        poll: Duration::from_millis(200),
        stop_within: after_stop + Duration::from_secs(30),
    });
    launcher
        .check()
        .map_err(|e| BuildsError::Executor(e.to_string()))?;
    Ok(launcher)
}

/// A folder for one run's per-build files (their records as they end).
pub(crate) fn run_folder(state_dir: &Path, run_id: &str) -> Result<PathBuf, BuildsError> {
    let work = state_dir.join("runs").join(run_id);
    crate::store::create_private_dir(&work).map_err(|source| BuildsError::Folder {
        what: "the run's folder",
        path: work.display().to_string(),
        source,
    })?;
    Ok(work)
}

/// Where a buildspec inside the source lies in the source's copy.
fn buildspec_in_copy(spec: &Path, source: &Path, copy: &Path) -> Option<PathBuf> {
    let spec = spec.canonicalize().ok()?;
    let source = source.canonicalize().ok()?;
    spec.strip_prefix(&source).ok().map(|r| copy.join(r))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || "buildspec.yml".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Copies the source for one build, as it is (modes, links, hidden files), leaving out the
/// state and shared directories when they lie inside: their files change while builds run (the
/// copies themselves among them).
pub(crate) fn copy_tree(from: &Path, to: &Path, skip: &[Option<PathBuf>]) -> io::Result<()> {
    let skip: Vec<PathBuf> = skip
        .iter()
        .flatten()
        .filter_map(|s| s.canonicalize().ok())
        .collect();
    let walk = walkdir::WalkDir::new(from).into_iter().filter_entry(|e| {
        // Only a directory can be skipped: files need no system call.
        !e.file_type().is_dir()
            || skip.is_empty()
            || !e.path().canonicalize().is_ok_and(|p| skip.contains(&p))
    });
    for entry in walk {
        let entry = entry.map_err(io::Error::from)?;
        let relative = entry.path().strip_prefix(from).map_err(io::Error::other)?;
        let target = to.join(relative);
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// What a batch's build records as its `invocation`: its build on the original source, without
/// what belongs to one run, and nothing in clear that is to be masked.
fn member_invocation(
    base: &BuildRequest,
    source: &Path,
    project: &str,
    member: &Member,
) -> Invocation {
    let request = member_request(base, &member.buildspec, source, project, member);
    let secrets = request.layers().map_or_else(
        |_| request.mask.clone(),
        |layers| crate::env::mask::known_secrets(&layers, &request.mask),
    );
    Invocation::of(request).masked_by(&crate::env::mask::Masker::new(secrets))
}

/// The build of one of many: the base request, with the build's buildspec, source, variables
/// and destinations. Every path is absolute: a scheduler's node starts the build elsewhere.
fn member_request(
    base: &BuildRequest,
    buildspec: &Path,
    source: &Path,
    project: &str,
    member: &Member,
) -> BuildRequest {
    let mut request = base.clone();
    request.buildspec = buildspec.to_path_buf();
    request.source = absolute(source);
    request.project = Some(project.to_owned());
    request.state_dir = absolute(&base.state_dir);
    request
        .env
        .extend(member.env.iter().map(|(k, v)| format!("{k}={v}")));
    request.env_file = base.env_file.as_deref().map(absolute);
    request.parameters = base.parameters.as_deref().map(absolute);
    request.secrets = base.secrets.as_deref().map(absolute);
    request.cache_dir = base.cache_dir.as_deref().map(absolute);
    // Each build's sets and reports under its own folder, so that builds do not overwrite
    // each other's `primary`.
    let folder = crate::outputs::artifacts::folder_name(&member.id, "build");
    request.artifacts = base.artifacts.as_deref().map(|dest| {
        if dest.starts_with("s3://") {
            format!("{}/{folder}", dest.trim_end_matches('/'))
        } else {
            absolute(&Path::new(dest).join(&folder))
                .display()
                .to_string()
        }
    });
    request.reports = base.reports.as_deref().map(|r| absolute(&r.join(&folder)));
    request
}
