//! `buildspec run` of several buildspecs, and `buildspec batch`: many builds, each a `buildspec
//! run` process of its own, scheduled by the engine (`runner::dispatch`), their lines prefixed with
//! the build's identifier, and a summary at the end.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use buildspec::Options;
use runner::dispatch::builds::{BatchPlan, Builds, Executor, Member, SlurmPlace};
use runner::dispatch::{JobResult, ManyEvent, Outcome};
use runner::request::BuildRequest;

use crate::args::{BatchArgs, ExecutorArg, LogFormat, ManyArgs, RunArgs, RunOptions};
use crate::error::CliError;
use crate::exit_codes;

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

/// The colours identifiers cycle through on a terminal.
const COLOURS: [u8; 6] = [36, 33, 35, 32, 34, 31];

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
    let mut view = View::new(&ids, json);
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
        crate::write_stdout(&summary(&ran.results))?;
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

/// What many builds show: their lines prefixed with their identifiers (as JSON events with a
/// `build` field in JSON mode) and, on a terminal, a live line of what runs.
struct View {
    json: bool,
    width: usize,
    colour: bool,
    index: std::collections::HashMap<String, usize>,
    progress: Option<Progress>,
    out: io::BufWriter<io::StdoutLock<'static>>,
    /// Lines are written as they come and flushed when the scheduler has nothing more to pass
    /// on: one write for what arrived together, not one per line. On a terminal they wait here
    /// instead, to go above the live line in one go.
    held: Vec<u8>,
}

impl View {
    fn new(ids: &[String], json: bool) -> View {
        let terminal = io::stdout().is_terminal();
        View {
            json,
            width: ids.iter().map(String::len).max().unwrap_or(0).min(40),
            colour: terminal && std::env::var_os("NO_COLOR").is_none(),
            index: ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i))
                .collect(),
            progress: (terminal && !json).then(|| Progress::new(ids.len())),
            out: io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
            held: Vec::new(),
        }
    }

    fn show(&mut self, event: &ManyEvent<'_>) {
        let json = self.json;
        if let Some(p) = self.progress.as_mut() {
            p.update(event);
        }
        let (id, line) = match *event {
            ManyEvent::Idle => {
                flush_above(self.progress.as_ref(), &mut self.out, &mut self.held);
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
        let mut text: &mut dyn Write = if self.progress.is_some() {
            &mut self.held
        } else {
            &mut self.out
        };
        let _ = if json {
            write_json_line(&mut text, id, &line)
        } else {
            let index = self.index.get(id).copied().unwrap_or(0);
            write_prefixed(
                &mut text,
                id,
                self.width,
                self.colour.then(|| COLOURS[index % COLOURS.len()]),
                &line,
            )
        };
        if self.held.len() >= 64 * 1024 {
            flush_above(self.progress.as_ref(), &mut self.out, &mut self.held);
        }
    }

    fn finish(mut self) {
        flush_above(self.progress.as_ref(), &mut self.out, &mut self.held);
        if let Some(p) = self.progress {
            p.bar.finish_and_clear();
        }
    }
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
    let mut view = View::new(&ids, false);
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
    crate::write_stdout(&summary(&ran.results))?;
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
