//! `buildspec run` of several buildspecs, and `buildspec batch`: many builds, each a `buildspec
//! run` process of its own, scheduled by the engine (`runner::dispatch`), their lines prefixed with
//! the build's identifier, and a summary at the end.

use std::path::{Path, PathBuf};

use buildspec::Options;
use runner::dispatch::builds::{BatchPlan, Builds, Executor, Member, SlurmPlace};
use runner::request::BuildRequest;

use crate::args::{BatchArgs, ExecutorArg, LogFormat, ManyArgs, RunArgs, RunOptions};
use crate::error::CliError;
use crate::exit_codes;
use crate::report::{self, prefixed::Prefixed};

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
        })
        .collect();
    run_members(&args.options, &args.many, members, false, None)
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
        Some(runner::dispatch::builds::interrupted_batch(
            &state_dir(options, &args.many)?,
            &file.display().to_string(),
        )?)
    } else {
        None
    };
    let batch_info = BatchPlan {
        buildspec: file.display().to_string(),
        kind: batch.kind.to_owned(),
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

fn run_members(
    options: &RunOptions,
    many: &ManyArgs,
    members: Vec<Member>,
    fast_fail: bool,
    batch: Option<BatchPlan>,
) -> Result<u8, CliError> {
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
    let e = &many.executor;
    let executor = match e.executor {
        ExecutorArg::Local => Executor::Local,
        ExecutorArg::Slurm => Executor::Slurm(SlurmPlace {
            shared: shared_dir(many)?.to_path_buf(),
            partition: e.slurm_partition.clone(),
            account: e.slurm_account.clone(),
            time: e.slurm_time.clone(),
            extra: e.slurm_arg.clone(),
            max_pending: e.max_pending,
        }),
    };
    let mut base = options.request(None)?;
    base.state_dir = state_dir;
    let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let json = options.log_format == LogFormat::Json;
    let builds = Builds {
        base,
        members,
        fast_fail,
        batch,
        parallel: parallel(&many.side_by_side),
        in_place: many.side_by_side.in_place,
        executor,
        exe: std::env::current_exe().map_err(CliError::Output)?,
    };
    let stop = crate::run::stop_on_signals()?;
    let mut view = Prefixed::new(&ids, json);
    let ran = runner::dispatch::builds::run(builds, &stop, &mut |event| view.show(&event))?;
    view.finish();
    if json {
        let mut line = serde_json::to_string(&serde_json::json!({
            "event": "summary",
            "time": jiff::Timestamp::now(),
            "stopped": ran.stopped,
            "builds": ran.results,
        }))
        .unwrap_or_default();
        line.push('\n');
        crate::write_stdout(&line)?;
    } else {
        crate::write_stdout(&report::summary::table(&ran.results))?;
    }
    Ok(runner::outcome::exit::byte(ran.exit_code()))
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

fn shared_dir(many: &ManyArgs) -> Result<&Path, CliError> {
    many.executor.shared_dir.as_deref().ok_or_else(|| {
        CliError::Query(
            "--executor slurm needs --shared-dir DIR: a directory the compute nodes see at the \
             same path, for the binary, the buildspecs, the copies of the source and the records"
                .to_owned(),
        )
    })
}

pub(crate) fn rerun(args: &crate::args::RerunArgs) -> Result<u8, CliError> {
    let state_dir = crate::args::state_dir(args.state_dir.as_ref())?;
    let state = runner::store::StateDir::open(&state_dir)?;
    let selection = runner::dispatch::rerun::select(&state, args.failed, &legacy_request)
        .map_err(|e| CliError::Query(e.to_string()))?;
    let mut skipped = String::new();
    for target in &selection.masked {
        skipped.push_str(&format!(
            "Not run again: {}: its arguments held values to mask (--mask); run it again by hand\n",
            target.name
        ));
    }
    // `rerun` runs builds here: a build that ran on a cluster is not moved without a word.
    for target in &selection.targets {
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
    if selection.targets.is_empty() {
        crate::write_stdout("Nothing to run again.\n")?;
        return Ok(exit_codes::SUCCESS);
    }
    let ids: Vec<String> = selection.targets.iter().map(|t| t.id.clone()).collect();
    let exe = std::env::current_exe().map_err(CliError::Output)?;
    let stop = crate::run::stop_on_signals()?;
    let mut view = Prefixed::new(&ids, false);
    let ran = runner::dispatch::rerun::run(
        selection,
        &state,
        &exe,
        parallel(&args.side_by_side),
        args.side_by_side.in_place,
        &stop,
        &mut |event| view.show(&event),
    )?;
    view.finish();
    crate::write_stdout(&report::summary::table(&ran.results))?;
    Ok(runner::outcome::exit::byte(ran.exit_code()))
}

/// `--jobs`, or the number of cores.
fn parallel(side_by_side: &crate::args::SideBySide) -> usize {
    side_by_side
        .jobs
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
}

/// The build a record of an earlier version asks for again: its command line, read as
/// `buildspec run` reads it. `None` when it can no longer be read.
fn legacy_request(invocation: &runner::store::Invocation) -> Option<BuildRequest> {
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

#[cfg(test)]
mod tests {
    use super::legacy_request;
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
            let request = legacy_request(&invocation).expect("readable");
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
        assert!(legacy_request(&odd).is_none());
    }
}
