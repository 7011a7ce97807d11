//! `buildspec run` of several buildspecs, and `buildspec batch`: many builds, each a `buildspec
//! run` process of its own, scheduled by the engine (`runner::dispatch`), their lines prefixed with
//! the build's identifier, and a summary at the end.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use buildspec::Options;
use runner::dispatch::{Job, JobResult, ManyEvent, Outcome};

use runner::dispatch::batch::BatchRecord;
use runner::request::BuildRequest;

use crate::args::{BatchArgs, ExecutorArg, LogFormat, ManyArgs, RunArgs, RunOptions, SessionArg};
use crate::error::CliError;
use crate::exit_codes;

/// One build to start.
struct Member {
    id: String,
    buildspec: PathBuf,
    /// Variables over the buildspec's own (`--env`), in order.
    env: Vec<(String, String)>,
    depend_on: Vec<String>,
    ignore_failure: bool,
    /// For a batch's build: `--batch-member <batch id> <identifier>`.
    batch: bool,
}

pub(crate) fn run_paths(args: &RunArgs) -> Result<u8, CliError> {
    let mut files = if args.paths.is_empty() {
        vec![args.options.build.buildspec(None)]
    } else {
        crate::check::discover(&args.paths, &args.exclude)?
    };
    // The state directory keeps each build's buildspec as run, and the shared directory the
    // copies a scheduler's builds run: those are not builds to run.
    let skip = [
        state_dir(&args.options, &args.many).ok(),
        args.many.executor.shared_dir.clone(),
    ];
    for dir in skip.iter().flatten().filter_map(|d| d.canonicalize().ok()) {
        files.retain(|f| !f.canonicalize().is_ok_and(|f| f.starts_with(&dir)));
    }
    // A directory named on the command line with no buildspec in it is a mistake (a typo, a
    // checkout that failed), not a reason to run the others and succeed.
    for dir in args.paths.iter().filter(|p| p.is_dir()) {
        if !files.iter().any(|f| f.starts_with(dir)) {
            return Err(CliError::Usage(format!(
                "{} holds no buildspec: nothing runs",
                dir.display()
            )));
        }
    }
    if files.is_empty() {
        return Err(CliError::Missing {
            path: format!(
                "a buildspec in {}",
                args.paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let members = files
        .into_iter()
        .map(|file| Member {
            id: file.display().to_string(),
            buildspec: file,
            env: Vec::new(),
            depend_on: Vec::new(),
            ignore_failure: false,
            batch: false,
        })
        .collect();
    run_members(&args.options, &args.many, members, false, None)
}

/// What a batch's record says of the batch itself.
struct BatchInfo {
    buildspec: String,
    kind: &'static str,
    fast_fail: bool,
    planned: Vec<buildspec::batch::PlannedBuild>,
    /// The interrupted batch this run takes up (`--resume`).
    resume: Option<BatchRecord>,
}

pub(crate) fn run_batch(args: &BatchArgs) -> Result<u8, CliError> {
    let options = &args.options;
    let file = options.build.buildspec(args.file.as_deref());
    let checked = buildspec::check_file(
        &file,
        &Options {
            strict: options.build.strict,
        },
    )?;
    let Some(plan) = checked.plan() else {
        eprint!("{}", checked.render());
        return Err(CliError::Invalid {
            path: checked.source.name.clone(),
        });
    };
    let Some(batch) = plan.batch else {
        return Err(CliError::NoBatch {
            path: file.display().to_string(),
        });
    };
    let source = options.build.source_dir();
    let mut members: Vec<Member> = batch
        .builds
        .iter()
        .map(|b| {
            let env: Vec<(String, String)> = b
                .variables
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Member {
                id: b.identifier.clone(),
                // A member's buildspec is a path in the source, as on CodeBuild.
                buildspec: b
                    .buildspec
                    .as_ref()
                    .map_or_else(|| file.clone(), |p| source.join(p)),
                env,
                depend_on: b.depend_on.clone(),
                ignore_failure: b.ignore_failure,
                batch: true,
            }
        })
        .collect();
    if let Some(only) = &args.only {
        if !members.iter().any(|m| &m.id == only) {
            return Err(CliError::UnknownBuild {
                id: only.clone(),
                known: members.iter().map(|m| m.id.clone()).collect(),
            });
        }
        members.retain(|m| &m.id == only);
        members.iter_mut().for_each(|m| m.depend_on.clear());
    }
    let resume = if args.resume {
        if args.many.executor.executor == ExecutorArg::Local {
            return Err(CliError::Query(
                "--resume takes up the jobs of a scheduler (--executor slurm): local builds end \
                 with their dispatcher"
                    .to_owned(),
            ));
        }
        Some(interrupted_batch(
            &state_dir(options, &args.many)?,
            &file.display().to_string(),
        )?)
    } else {
        None
    };
    let batch_info = BatchInfo {
        buildspec: file.display().to_string(),
        kind: batch.kind,
        fast_fail: batch.fast_fail,
        planned: batch.builds.clone(),
        resume,
    };
    run_members(
        options,
        &args.many,
        members,
        batch.fast_fail,
        Some(batch_info),
    )
}

/// The colours identifiers cycle through on a terminal.
const COLOURS: [u8; 6] = [36, 33, 35, 32, 34, 31];

fn run_members(
    options: &RunOptions,
    many: &ManyArgs,
    members: Vec<Member>,
    fast_fail: bool,
    mut batch: Option<BatchInfo>,
) -> Result<u8, CliError> {
    // The values to mask of a --mask-file are read once, here, and go to each build with the
    // others.
    let resolved;
    let options = if options.mask_file.is_some() {
        resolved = RunOptions {
            mask: options.masks()?,
            mask_file: None,
            ..options.clone()
        };
        &resolved
    } else {
        options
    };
    // Options about one build's own files have no single build to apply to.
    for (given, flag) in [
        (options.record_file.is_some(), "--record-file"),
        (options.exported_variables.is_some(), "--exported-variables"),
    ] {
        if given {
            return Err(CliError::Query(format!(
                "{flag} applies to a single build; with several, each build's record is in the \
                 state directory: see `buildspec report` and `buildspec inspect`"
            )));
        }
    }
    let state_dir = state_dir(options, many)?;
    crate::run::complete_abandoned(
        &runner::store::StateDir::at(&state_dir),
        if batch.is_some() {
            "buildspec batch"
        } else {
            "buildspec run"
        },
    );
    let resume = batch.as_mut().and_then(|b| b.resume.take());
    let run_id = resume
        .as_ref()
        .map(|j| j.id.trim_start_matches("batch:").to_owned())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let parallel = parallel(&many.side_by_side);
    let source = options.build.source_dir();
    if !source.is_dir() {
        return Err(CliError::Missing {
            path: source.display().to_string(),
        });
    }
    let slurm = many.executor.executor == ExecutorArg::Slurm;
    // Where a scheduler's node leaves each build's final record: a runner on this machine writes
    // it where the dispatcher reads it, in the state directory.
    let work = slurm.then(|| run_folder(&state_dir, &run_id)).transpose()?;
    // Builds side by side must not see each other's files: each gets a copy of the source. A
    // scheduler's node sees only the shared directory: the copy goes there.
    let copies = !many.side_by_side.in_place && (slurm || (parallel > 1 && members.len() > 1));
    let project = runner::env::project_name(options.build.project.as_deref(), &source);
    let (exe, copies_root, launcher): (PathBuf, PathBuf, Box<dyn runner::dispatch::Launcher>) =
        if slurm {
            let shared = shared_dir(many)?;
            let run_dir = shared.join("runs").join(&run_id);
            let launcher = slurm_launcher(options, many, run_dir.join("jobs"))?;
            (shared_binary(&shared)?, run_dir, Box::new(launcher))
        } else {
            (
                std::env::current_exe().map_err(CliError::Output)?,
                // The copies live outside the source (which may hold the state directory).
                std::env::temp_dir().join(format!("buildspec-{run_id}")),
                Box::new(runner::dispatch::workers::Workers::new()),
            )
        };
    let state = runner::store::StateDir::open(&state_dir)?;
    if copies {
        // Made here once; a copy that cannot be made says so as its build's start fails.
        let _ = runner::store::create_spread_dir(&copies_root);
    }
    let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let mut jobs = Vec::with_capacity(members.len());
    let mut journal_members = Vec::with_capacity(members.len());
    // What every build is asked with, before its own source, variables and destinations.
    let base = options.request(None)?;
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
            (true, false) => (
                std::path::absolute(&member.buildspec).unwrap_or_else(|_| member.buildspec.clone()),
                None,
            ),
            (false, _) => (member.buildspec.clone(), None),
        };
        let mut command = Command::new(&exe);
        // Its own process group: a terminal's Ctrl-C reaches this process alone, which passes
        // one stop request on; two would end a build at once, without its grace period.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut request = member_request(
            &base,
            &buildspec,
            &state_dir,
            &build_source,
            &project,
            &member,
        );
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
            request.original_source =
                Some(std::path::absolute(&source).unwrap_or_else(|_| source.clone()));
        }
        if slurm {
            // Where the dispatcher was, for the build's record (and `rerun`), when the node
            // has it.
            command.current_dir(&request.cwd);
        }
        let batch_id = format!("batch:{run_id}");
        if member.batch {
            request.batch = Some((batch_id.clone(), member.id.clone()));
        }
        let before: Option<runner::dispatch::Before> = copies.then(|| {
            let from = source.clone();
            let to = build_source.clone();
            let skip = [Some(state_dir.clone()), many.executor.shared_dir.clone()];
            Box::new(move || {
                copy_tree(&from, &to, &skip)?;
                if let Some((spec, copy)) = copied_spec {
                    if let Some(dir) = copy.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::copy(spec, copy)?;
                }
                Ok(())
            }) as runner::dispatch::Before
        });
        journal_members.push(runner::dispatch::batch::MemberState {
            id: member.id.clone(),
            build_uuid: uuid.clone(),
            handle: handle.clone(),
            invocation: member
                .batch
                .then(|| member_invocation(&base, &state_dir, &source, &project, &member)),
        });
        jobs.push(Job {
            record: Some(runner::dispatch::RecordPlace {
                state_dir: state.clone(),
                uuid,
                fresh: runner::store::FreshRecord {
                    project: project.clone(),
                    buildspec: member.buildspec.display().to_string(),
                    source: std::path::absolute(&source)
                        .unwrap_or_else(|_| source.clone())
                        .display()
                        .to_string(),
                    initiator: runner::env::initiator(),
                    session: session_name(options.session).to_owned(),
                    batch: member.batch.then(|| (batch_id.clone(), member.id.clone())),
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
    let json = options.log_format == LogFormat::Json;
    let started = resume
        .as_ref()
        .map_or_else(jiff::Timestamp::now, |j| j.start_time);
    let executor = if slurm { "slurm" } else { "local" };
    let mut record = batch.map(|info| BatchRecord {
        id: format!("batch:{run_id}"),
        buildspec: info.buildspec,
        kind: info.kind.to_owned(),
        fast_fail: info.fast_fail,
        planned: info.planned,
        status: runner::Status::InProgress,
        start_time: started,
        end_time: None,
        executor: executor.to_owned(),
        dispatcher_pid: std::process::id(),
        builds: resume.map(|j| j.builds).unwrap_or_default(),
        members: journal_members,
    });
    if let Some(record) = &record {
        state.write_batch(record)?;
    }
    // The batch record follows the builds as they end, written at most once a tick (it holds
    // every build: written at each end, a large batch would write a quadratic amount), and at
    // once when a scheduler names a build's job, which is what --resume needs.
    let mut unwritten = false;
    let mut journal = |event: &ManyEvent<'_>| {
        let Some(record) = record.as_mut() else {
            return;
        };
        match event {
            ManyEvent::Launched {
                id,
                handle: Some(handle),
            } => {
                if let Some(m) = record.members.iter_mut().find(|m| m.id == *id) {
                    m.handle = Some((*handle).to_owned());
                }
            }
            ManyEvent::Finished { result } => {
                record.builds.retain(|b| b.id != result.id);
                record.builds.push((*result).clone());
                unwritten = true;
                return;
            }
            ManyEvent::Tick if unwritten => {}
            _ => return,
        }
        unwritten = false;
        // The journal is a convenience for --resume: a failure to write it costs nothing else.
        let _ = state.write_batch(record);
    };
    let ran = execute(
        jobs,
        &ids,
        parallel,
        fast_fail,
        json,
        launcher.as_ref(),
        &mut journal,
    )?;
    let results = &ran.results;
    if let Some(work) = &work {
        let _ = std::fs::remove_dir_all(work);
    }
    let _ = std::fs::remove_dir_all(&copies_root);
    let failed = results
        .iter()
        .any(|r| r.outcome != Outcome::Succeeded && !r.ignore_failure);
    if let Some(mut record) = record {
        record.builds = results.clone();
        record.end(ran.stopped.is_some());
        state.write_batch(&record)?;
    }
    if json {
        let mut line = serde_json::to_string(&serde_json::json!({
            "event": "summary",
            "time": jiff::Timestamp::now(),
            "stopped": ran.stopped,
            "builds": results,
        }))
        .unwrap_or_default();
        line.push('\n');
        crate::write_stdout(&line)?;
    } else {
        crate::write_stdout(&summary(results))?;
    }
    Ok(exit_code(&ran, failed))
}

/// The state directory: `--state-dir`, else (on a scheduler) the shared directory's `state/`,
/// else the user's.
fn state_dir(options: &RunOptions, many: &ManyArgs) -> Result<PathBuf, CliError> {
    match (&options.state_dir, &many.executor.shared_dir) {
        (None, Some(shared)) if many.executor.executor == ExecutorArg::Slurm => {
            Ok(shared.join("state"))
        }
        (given, _) => crate::args::state_dir(given.as_ref()),
    }
}

fn shared_dir(many: &ManyArgs) -> Result<PathBuf, CliError> {
    let shared = many.executor.shared_dir.as_ref().ok_or_else(|| {
        CliError::Query(
            "--executor slurm needs --shared-dir DIR: a directory the compute nodes see at the \
             same path, for the binary, the buildspecs, the copies of the source and the records"
                .to_owned(),
        )
    })?;
    std::fs::create_dir_all(shared).map_err(|e| {
        CliError::Executor(format!(
            "cannot create the shared directory {}: {e}",
            shared.display()
        ))
    })?;
    std::path::absolute(shared).map_err(CliError::Output)
}

/// This binary on the shared directory, copied once per version of it (by size and mtime), so
/// that every node runs the dispatcher's own runner.
fn shared_binary(shared: &Path) -> Result<PathBuf, CliError> {
    let exe = std::env::current_exe().map_err(CliError::Output)?;
    let fault = |e: io::Error| {
        CliError::Executor(format!(
            "cannot copy the binary to {}: {e}",
            shared.display()
        ))
    };
    let meta = std::fs::metadata(&exe).map_err(fault)?;
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
    runner::store::create_private_dir(&bin).map_err(fault)?;
    let partial = bin.join(format!(".buildspec.{}.partial", std::process::id()));
    std::fs::copy(&exe, &partial)
        .and_then(|_| std::fs::rename(&partial, &target))
        .map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            fault(e)
        })?;
    Ok(target)
}

fn slurm_launcher(
    options: &RunOptions,
    many: &ManyArgs,
    jobs_dir: PathBuf,
) -> Result<runner::dispatch::slurm::Slurm, CliError> {
    let e = &many.executor;
    let after_stop = options.grace + options.cleanup_timeout;
    let launcher = runner::dispatch::slurm::Slurm::new(runner::dispatch::slurm::SlurmConfig {
        jobs_dir,
        partition: e.slurm_partition.clone(),
        account: e.slurm_account.clone(),
        time: e.slurm_time.clone().or_else(|| {
            (!options.timeout.is_zero())
                .then(|| runner::dispatch::slurm::time_limit(options.timeout, after_stop))
        }),
        extra: e.slurm_arg.clone(),
        max_pending: e.max_pending,
        poll: Duration::from_millis(200),
        stop_within: after_stop + Duration::from_secs(30),
    });
    launcher
        .check()
        .map_err(|e| CliError::Executor(e.to_string()))?;
    Ok(launcher)
}

/// The latest batch of `buildspec` that did not end, and whose dispatcher is gone.
fn interrupted_batch(state_dir: &Path, buildspec: &str) -> Result<BatchRecord, CliError> {
    let found = runner::store::StateDir::at(state_dir)
        .batches("")
        .into_iter()
        .filter(|b| {
            b.status == runner::Status::InProgress
                && b.buildspec == buildspec
                && b.executor == "slurm"
        })
        .max_by_key(|b| b.start_time);
    let batch = found.ok_or_else(|| {
        CliError::Query(format!(
            "no interrupted Slurm batch of {buildspec} to resume in {}",
            state_dir.join("batches").display()
        ))
    })?;
    if batch.dispatching() {
        return Err(CliError::Query(format!(
            "{} is still being dispatched by process {}",
            batch.id, batch.dispatcher_pid
        )));
    }
    Ok(batch)
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

/// The session's name, as `--session` and the record write it.
fn session_name(session: SessionArg) -> &'static str {
    runner::SessionKind::from(session).as_str()
}

/// 128 + the signal when a stop request ended the builds, as for one build; else 1 when a
/// build that counts failed.
fn exit_code(ran: &runner::dispatch::Ran, failed: bool) -> u8 {
    match ran.stopped {
        Some(signal) => runner::outcome::exit::byte(runner::outcome::exit::of_signal(signal)),
        None if failed => exit_codes::FAILED,
        None => exit_codes::SUCCESS,
    }
}

/// Runs the jobs, showing their lines prefixed with their identifiers (as JSON events with a
/// `build` field in JSON mode) and, on a terminal, a live line of what runs.
fn execute(
    jobs: Vec<Job>,
    ids: &[String],
    parallel: usize,
    fast_fail: bool,
    json: bool,
    launcher: &dyn runner::dispatch::Launcher,
    also: &mut dyn FnMut(&ManyEvent<'_>),
) -> Result<runner::dispatch::Ran, CliError> {
    let stop = crate::run::stop_on_signals()?;
    let width = ids.iter().map(String::len).max().unwrap_or(0).min(40);
    let terminal = io::stdout().is_terminal();
    let colour = terminal && std::env::var_os("NO_COLOR").is_none();
    let mut progress = (terminal && !json).then(|| Progress::new(ids.len()));
    let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    // Lines are written as they come and flushed when the scheduler has nothing more to pass
    // on: one write for what arrived together, not one per line. On a terminal they wait in
    // `held` instead, to go above the live line in one go.
    let mut held = Vec::new();
    let index: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let ran =
        runner::dispatch::run_many(jobs, parallel, fast_fail, launcher, &stop, &mut |event| {
            also(&event);
            if let Some(p) = progress.as_mut() {
                p.update(&event);
            }
            let (id, line) = match event {
                ManyEvent::Idle => {
                    flush_above(progress.as_ref(), &mut out, &mut held);
                    return;
                }
                ManyEvent::Line { id, line } => (id, line.to_vec()),
                ManyEvent::Note { id, text } if json => (
                    id,
                    serde_json::to_vec(&serde_json::json!({
                        "event": "executor",
                        "time": jiff::Timestamp::now(),
                        "message": text,
                    }))
                    .unwrap_or_default(),
                ),
                ManyEvent::Note { id, text } => (id, format!("[executor] {text}").into_bytes()),
                ManyEvent::Started { id } if !json => (id, b"started".to_vec()),
                ManyEvent::Finished { result } if !json && result.outcome == Outcome::NotRun => (
                    result.id.as_str(),
                    format!("not run: {}", result.reason.as_deref().unwrap_or("")).into_bytes(),
                ),
                _ => return,
            };
            let mut text: &mut dyn Write = if progress.is_some() {
                &mut held
            } else {
                &mut out
            };
            let _ = if json {
                write_json_line(&mut text, id, &line)
            } else {
                let index = index.get(id).copied().unwrap_or(0);
                write_prefixed(
                    &mut text,
                    id,
                    width,
                    colour.then(|| COLOURS[index % COLOURS.len()]),
                    &line,
                )
            };
            if held.len() >= 64 * 1024 {
                flush_above(progress.as_ref(), &mut out, &mut held);
            }
        });
    flush_above(progress.as_ref(), &mut out, &mut held);
    if let Some(p) = progress {
        p.bar.finish_and_clear();
    }
    Ok(ran)
}

/// Writes out what is held and flushes, above the live line when there is one (drawn again
/// below).
fn flush_above(progress: Option<&Progress>, out: &mut impl Write, held: &mut Vec<u8>) {
    if progress.is_some() && held.is_empty() {
        return;
    }
    let mut write = || {
        let _ = out.write_all(held);
        let _ = out.flush();
        held.clear();
    };
    match progress {
        Some(p) => p.bar.suspend(write),
        None => write(),
    }
}

/// The live line on a terminal: how many builds are done, and which run in which phase.
struct Progress {
    bar: indicatif::ProgressBar,
    running: Vec<(String, String, std::time::Instant)>,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar,
            running: Vec::new(),
        }
    }

    fn update(&mut self, event: &ManyEvent<'_>) {
        match event {
            ManyEvent::Started { id } => {
                self.running.push((
                    (*id).to_owned(),
                    "starting".to_owned(),
                    std::time::Instant::now(),
                ));
            }
            ManyEvent::Line { id, line } => {
                let text = String::from_utf8_lossy(line);
                if let Some(phase) = text.split("Entering phase ").nth(1)
                    && let Some(entry) = self.running.iter_mut().find(|r| r.0 == *id)
                {
                    entry.1 = phase.trim().to_owned();
                }
            }
            ManyEvent::Finished { result } => {
                self.running.retain(|r| r.0 != result.id);
                self.bar.inc(1);
            }
            ManyEvent::Launched { .. }
            | ManyEvent::Note { .. }
            | ManyEvent::Tick
            | ManyEvent::Idle => {}
        }
        let message: Vec<String> = self
            .running
            .iter()
            .map(|(id, phase, since)| format!("{id} {phase} {}s", since.elapsed().as_secs()))
            .collect();
        self.bar.set_message(message.join(", "));
    }
}

/// A build `rerun` starts again: from its latest record, or, for a batch's build that never
/// ran, from its batch record.
struct Target {
    /// Its identifier in the summary.
    id: String,
    /// Its batch's id and its identifier there.
    batch: Option<(String, String)>,
    /// The build, as it is asked for again.
    request: BuildRequest,
    /// Whether its record holds values masked out of its request: it cannot be asked for again.
    masked: bool,
    /// How messages name it.
    name: String,
    /// Where its latest run was placed, when a scheduler ran it (`slurm job 42`).
    ran_on: Option<String>,
}

pub(crate) fn rerun(args: &crate::args::RerunArgs) -> Result<u8, CliError> {
    let state_dir = crate::args::state_dir(args.state_dir.as_ref())?;
    let state = runner::store::StateDir::open(&state_dir)?;
    let query = runner::store::query::Query {
        latest: true,
        ..runner::store::query::Query::default()
    };
    let latest =
        runner::store::query::list(&state, &query).map_err(|e| CliError::Query(e.to_string()))?;
    let selected: Vec<&runner::store::BuildRecord> = latest
        .iter()
        .filter(|r| !args.failed || r.status != runner::Status::Succeeded)
        .collect();
    // The batches the builds belong to: a batch's build runs again in its batch, with what the
    // batch says of it (its dependencies, `ignore-failure`, `fast-fail`).
    let mut batches: Vec<BatchRecord> = Vec::new();
    for id in selected.iter().filter_map(|r| r.batch_id.as_ref()) {
        if !batches.iter().any(|b| &b.id == id)
            && let Ok(batch) = state.read_batch(id)
        {
            batches.push(batch);
        }
    }
    let mut targets: Vec<Target> = selected
        .iter()
        .filter_map(|r| {
            Some(Target {
                id: r
                    .batch_identifier
                    .clone()
                    .unwrap_or_else(|| r.buildspec.clone()),
                batch: r.batch_id.clone().zip(r.batch_identifier.clone()),
                request: request_of(r.invocation.as_ref()?)?,
                masked: r.invocation.as_ref()?.masked,
                name: format!("{} ({})", r.buildspec, r.id),
                ran_on: r
                    .placement
                    .as_ref()
                    .map(|p| format!("{} job {}", p.executor, p.job_id)),
            })
        })
        .collect();
    targets.extend(never_ran(&batches, &latest, &targets));
    // A build whose arguments held values to mask cannot be run again from its record.
    let mut skipped = String::new();
    targets.retain(|t| {
        if t.masked {
            skipped.push_str(&format!(
                "Not run again: {}: its arguments held values to mask (--mask); run it again by hand\n",
                t.name
            ));
        }
        !t.masked
    });
    // `rerun` runs builds here: a build that ran on a cluster is not moved without a word.
    for target in &targets {
        if let Some(there) = &target.ran_on {
            skipped.push_str(&format!(
                "Runs on this machine: {} ran as {there}; `rerun` runs builds here (to run it on \
                 the cluster again, use `run` or `batch` with `--executor`)\n",
                target.name
            ));
        }
    }
    if !skipped.is_empty() {
        crate::write_stdout(&skipped)?;
    }
    if targets.is_empty() {
        crate::write_stdout("Nothing to run again.\n")?;
        return Ok(exit_codes::SUCCESS);
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let work = run_folder(&state_dir, &run_id)?;
    let exe = std::env::current_exe().map_err(CliError::Output)?;
    let parallel = parallel(&args.side_by_side);
    // As for `run`: builds side by side each get a copy of their source.
    let copies = !args.side_by_side.in_place && parallel > 1 && targets.len() > 1;
    let copies_root = std::env::temp_dir().join(format!("buildspec-{run_id}"));
    if copies {
        let _ = runner::store::create_spread_dir(&copies_root);
    }
    let batch_of = |id: &str| batches.iter().find(|b| b.id == id);
    let planned = |(batch, identifier): &(String, String)| {
        batch_of(batch)?
            .planned
            .iter()
            .find(|p| &p.identifier == identifier)
    };
    let fast_fail = targets.iter().all(|t| {
        t.batch
            .as_ref()
            .and_then(|(b, _)| batch_of(b))
            .is_some_and(|b| b.fast_fail)
    });
    let mut ids = Vec::new();
    let mut jobs = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let plan = target.batch.as_ref().and_then(planned);
        // Dependencies count among the builds run again in the same batch; the others
        // succeeded already (or their failure is ignored).
        let depend_on = match (&plan, &target.batch) {
            (Some(p), Some((batch, _))) => p
                .depend_on
                .iter()
                .filter(|dep| {
                    targets.iter().any(|t| {
                        t.batch
                            .as_ref()
                            .is_some_and(|(b, identifier)| b == batch && identifier == *dep)
                    })
                })
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let mut request = target.request.clone();
        request.batch.clone_from(&target.batch);
        let cwd = request.cwd.clone();
        let before: Option<runner::dispatch::Before> = if copies {
            let source = cwd.join(&request.source);
            let copy = copies_root.join(format!("src-{i}"));
            request.source.clone_from(&copy);
            request.original_source = Some(source.clone());
            let skip = [Some(state_dir.clone())];
            Some(Box::new(move || copy_tree(&source, &copy, &skip)))
        } else {
            None
        };
        let record_file = work.join(format!("{i}.json"));
        request.record_file = Some(record_file.clone());
        let mut command = Command::new(&exe);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command.current_dir(&cwd);
        ids.push(target.id.clone());
        jobs.push(Job {
            id: target.id.clone(),
            depend_on,
            ignore_failure: plan.is_some_and(|p| p.ignore_failure),
            command,
            request: Some(request),
            record_file,
            before,
            record: None,
            resume: None,
            ended: None,
        });
    }
    let ran = execute(
        jobs,
        &ids,
        parallel,
        fast_fail,
        false,
        &runner::dispatch::workers::Workers::new(),
        &mut |_| {},
    )?;
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&copies_root);
    // A batch whose builds ran again says how they ended now, as a retried batch does on
    // CodeBuild.
    for mut batch in batches {
        // A batch still being dispatched keeps the record its dispatcher writes.
        if batch.dispatching() {
            continue;
        }
        let mine: Vec<&JobResult> = targets
            .iter()
            .zip(&ran.results)
            .filter(|(t, _)| t.batch.as_ref().is_some_and(|(b, _)| *b == batch.id))
            .map(|(_, result)| result)
            .collect();
        batch.update(&mine, ran.stopped.is_some());
        state.write_batch(&batch)?;
    }
    crate::write_stdout(&summary(&ran.results))?;
    let failed = ran
        .results
        .iter()
        .any(|r| r.outcome != Outcome::Succeeded && !r.ignore_failure);
    Ok(exit_code(&ran, failed))
}

/// The builds of these batches that never ran (a dependency failed, or the batch stopped
/// first), and so have no record: each runs again from the invocation its batch record keeps,
/// unless it is among `targets` already or has run since in another batch.
fn never_ran(
    batches: &[BatchRecord],
    latest: &[runner::store::BuildRecord],
    targets: &[Target],
) -> Vec<Target> {
    let mut found = Vec::new();
    for journal in batches {
        for build in &journal.builds {
            let identifier = &build.id;
            let listed = targets.iter().any(|t| {
                t.batch
                    .as_ref()
                    .is_some_and(|(b, i)| *b == journal.id && i == identifier)
            });
            if build.outcome != Outcome::NotRun || listed {
                continue;
            }
            let Some(invocation) = journal
                .members
                .iter()
                .find(|m| &m.id == identifier)
                .and_then(|m| m.invocation.clone())
            else {
                continue;
            };
            let Some(request) = request_of(&invocation) else {
                continue;
            };
            let buildspec = request.buildspec.display().to_string();
            let ran_since = latest.iter().any(|r| {
                r.batch_identifier.as_ref() == Some(identifier)
                    && r.buildspec == buildspec
                    && r.start_time > journal.start_time
            });
            if ran_since {
                continue;
            }
            found.push(Target {
                id: identifier.clone(),
                batch: Some((journal.id.clone(), identifier.clone())),
                request,
                masked: invocation.masked,
                name: format!("{buildspec} ({identifier} of {})", journal.id),
                ran_on: None,
            });
        }
    }
    found
}

/// A folder for one run's per-build files (their records as they end).
fn run_folder(state_dir: &Path, run_id: &str) -> Result<PathBuf, CliError> {
    let work = state_dir.join("runs").join(run_id);
    runner::store::create_private_dir(&work).map_err(|source| CliError::WriteFile {
        what: "the run's folder",
        path: work.display().to_string(),
        source,
    })?;
    Ok(work)
}

/// `--jobs`, or the number of cores.
fn parallel(side_by_side: &crate::args::SideBySide) -> usize {
    side_by_side
        .jobs
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
}

/// Copies the source for one build, as it is (modes, links, hidden files), leaving out the
/// state and shared directories when they lie inside: their files change while builds run (the
/// copies themselves among them).
fn copy_tree(from: &Path, to: &Path, skip: &[Option<PathBuf>]) -> io::Result<()> {
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

/// The build a recorded invocation asks for again: its request (a record of this version), or
/// its command line read as `buildspec run` reads it (a record of an earlier version). `None`
/// when it can no longer be read.
fn request_of(invocation: &runner::store::Invocation) -> Option<BuildRequest> {
    if let Some(request) = &invocation.request {
        return Some(request.for_rerun());
    }
    use clap::Parser as _;
    let given = std::iter::once("buildspec").chain(invocation.args.iter().map(String::as_str));
    let crate::args::Command::Run(args) = crate::args::Cli::try_parse_from(given).ok()?.command
    else {
        return None;
    };
    let mut request = args
        .options
        .request(args.paths.first().map(PathBuf::as_path))
        .ok()?;
    request.cwd = PathBuf::from(&invocation.cwd);
    Some(request)
}

/// What a batch's build records as its `invocation`: its build on the original source, without
/// what belongs to one run, and nothing in clear that is to be masked.
fn member_invocation(
    base: &BuildRequest,
    state_dir: &Path,
    source: &Path,
    project: &str,
    member: &Member,
) -> runner::store::Invocation {
    let request = member_request(base, &member.buildspec, state_dir, source, project, member);
    let secrets = request.layers().map_or_else(
        |_| request.mask.clone(),
        |layers| runner::env::mask::known_secrets(&layers, &request.mask),
    );
    runner::store::Invocation::of(request).masked_by(&runner::env::mask::Masker::new(secrets))
}

/// The build of one of many: this run's request, with the build's buildspec, source, variables
/// and destinations. Every path is absolute: a scheduler's node starts the build elsewhere.
fn member_request(
    base: &BuildRequest,
    buildspec: &Path,
    state_dir: &Path,
    source: &Path,
    project: &str,
    member: &Member,
) -> BuildRequest {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut request = base.clone();
    request.buildspec = buildspec.to_path_buf();
    request.source = abs(source);
    request.project = Some(project.to_owned());
    request.state_dir = abs(state_dir);
    request
        .env
        .extend(member.env.iter().map(|(k, v)| format!("{k}={v}")));
    request.env_file = base.env_file.as_deref().map(abs);
    request.parameters = base.parameters.as_deref().map(abs);
    request.secrets = base.secrets.as_deref().map(abs);
    request.cache_dir = base.cache_dir.as_deref().map(abs);
    // Each build's sets and reports under its own folder, so that builds do not overwrite
    // each other's `primary`.
    let folder = runner::outputs::artifacts::folder_name(&member.id, "build");
    request.artifacts = base.artifacts.as_deref().map(|dest| {
        if dest.starts_with("s3://") {
            format!("{}/{folder}", dest.trim_end_matches('/'))
        } else {
            abs(&Path::new(dest).join(&folder)).display().to_string()
        }
    });
    request.reports = base.reports.as_deref().map(|r| abs(&r.join(&folder)));
    request
}

fn write_prefixed(
    out: &mut impl Write,
    id: &str,
    width: usize,
    colour: Option<u8>,
    line: &[u8],
) -> io::Result<()> {
    match colour {
        Some(c) => write!(out, "\x1b[{c}m{id:<width$}\x1b[0m | ")?,
        None => write!(out, "{id:<width$} | ")?,
    }
    out.write_all(line)?;
    out.write_all(b"\n")
}

/// A build's JSON event with its identifier added; a line that is not an event passes as text.
fn write_json_line(out: &mut impl Write, id: &str, line: &[u8]) -> io::Result<()> {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line) {
        Ok(mut event) => {
            event.insert("build".to_owned(), serde_json::Value::from(id));
            serde_json::to_writer(&mut *out, &event).map_err(io::Error::from)?;
            out.write_all(b"\n")
        }
        Err(_) => {
            let event = serde_json::json!({"build": id, "event": "text", "text": String::from_utf8_lossy(line)});
            serde_json::to_writer(&mut *out, &event).map_err(io::Error::from)?;
            out.write_all(b"\n")
        }
    }
}

/// The table at the end: each build, its status, how long it took, and where it failed.
fn summary(results: &[JobResult]) -> String {
    use std::fmt::Write as _;
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    let mut out = format!(
        "\n{} build(s): {} succeeded, {} failed, {} not run\n",
        results.len(),
        count(Outcome::Succeeded),
        count(Outcome::Failed),
        count(Outcome::NotRun)
    );
    let width = results.iter().map(|r| r.id.len()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        out,
        "{:<width$}  {:<10}  {:>8}  WHERE",
        "BUILD", "STATUS", "TIME"
    );
    for r in results {
        let status = match (&r.record, r.outcome) {
            (Some(record), Outcome::Succeeded | Outcome::Failed) => record.status.as_str(),
            (_, outcome) => outcome.as_str(),
        };
        let status = if r.ignore_failure && r.outcome != Outcome::Succeeded {
            format!("{status} (ignored)")
        } else {
            status.to_owned()
        };
        let time = if r.outcome == Outcome::NotRun {
            String::new()
        } else {
            format!("{:.1}s", r.duration_ms as f64 / 1000.0)
        };
        let place = match (&r.record, &r.reason) {
            (_, Some(reason)) => reason.clone(),
            (Some(record), None) => runner::store::query::failed_phase(record).unwrap_or_default(),
            (None, None) => String::new(),
        };
        let _ = writeln!(out, "{:<width$}  {status:<10}  {time:>8}  {place}", r.id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::request_of;
    use std::path::PathBuf;

    #[test]
    fn an_earlier_versions_recorded_command_line_is_read_as_a_request() {
        // Records of earlier versions keep `buildspec run`'s arguments: their source, buildspec
        // and values are found as the command line gave them.
        let table: &[(&[&str], &str, &str)] = &[
            (&["run", "a.yml", "--source", "src"], "src", "a.yml"),
            (&["run", "--source=src", "a.yml"], "src", "a.yml"),
            (&["run", "a.yml"], ".", "a.yml"),
            // A value that looks like the flag is not taken for it.
            (
                &["run", "--env", "X=--source", "--source", "s"],
                "s",
                "s/buildspec.yml",
            ),
        ];
        for (given, source, buildspec) in table {
            let invocation = runner::store::Invocation {
                cwd: "/work".to_owned(),
                args: given.iter().map(|s| (*s).to_owned()).collect(),
                request: None,
                masked: false,
            };
            let request = request_of(&invocation).expect("readable");
            assert_eq!(request.source, PathBuf::from(source), "{given:?}");
            assert_eq!(request.buildspec, PathBuf::from(buildspec), "{given:?}");
            assert_eq!(request.cwd, PathBuf::from("/work"), "{given:?}");
        }
        let odd = runner::store::Invocation {
            cwd: "/work".to_owned(),
            args: vec!["inspect".to_owned(), "--last".to_owned()],
            request: None,
            masked: false,
        };
        assert!(request_of(&odd).is_none());
    }
}
