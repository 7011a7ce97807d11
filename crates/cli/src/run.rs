//! `buildspec run` and `buildspec inspect`.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use runner::request::BuildRequest;
use runner::store::StateDir;

use crate::args::{InspectArgs, RunArgs, state_dir};
use crate::error::CliError;
use crate::report::Console;
use crate::report::json::JsonReporter;
use crate::report::text::TextReporter;
use crate::{exit_codes, write_stdout};

/// The state directory for a command that reads records: created by nothing, with the builds
/// whose runner is gone completed first, so that none is shown IN_PROGRESS for ever.
pub(crate) fn read_state(given: Option<&PathBuf>, by: &str) -> Result<StateDir, CliError> {
    let state = StateDir::at(state_dir(given)?);
    complete_abandoned(&state, by);
    Ok(state)
}

/// Completes the builds of `state` whose runner is gone (killed, or its machine restarted),
/// ending what they left; each is said on stderr.
pub(crate) fn complete_abandoned(state: &StateDir, by: &str) {
    for record in runner::store::abandoned::recover(state, by) {
        eprintln!(
            "note: build {} was left {} by a runner that is gone; its record is completed: {}",
            record.id,
            runner::Status::InProgress.as_str(),
            record.status.as_str()
        );
    }
}

/// The one buildspec a `buildspec run` runs in this process (`Some(None)`: the default one), or
/// `None` when it runs many builds (several paths, a directory, or a scheduler, which runs even
/// one build as a job of its own).
pub(crate) fn single(args: &RunArgs) -> Option<Option<&std::path::Path>> {
    if args.many.executor.executor != crate::args::ExecutorArg::Local {
        return None;
    }
    match args.paths.as_slice() {
        [] => Some(None),
        [one_file] if !one_file.is_dir() => Some(Some(one_file.as_path())),
        _ => None,
    }
}

/// `buildspec run` of one buildspec in this process.
pub(crate) fn run(args: &RunArgs, file: Option<&std::path::Path>) -> Result<u8, CliError> {
    if let Ok(dir) = state_dir(args.options.state_dir.as_ref()) {
        complete_abandoned(&StateDir::at(dir), "buildspec run");
    }
    let request = args.options.request(file)?;
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    run_one(&request, &stop_on_signals()?, &mut out, Audience::Person)
}

/// A Slurm job's build: its request comes from a private file (`__request <file>`), removed
/// once read.
pub(crate) fn run_requested(file: &std::path::Path) -> Result<u8, CliError> {
    let request =
        runner::dispatch::slurm::take_request(file).map_err(|source| CliError::ReadFile {
            what: "the build's request",
            path: file.display().to_string(),
            source,
        })?;
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    run_one(
        &request,
        &stop_on_signals()?,
        &mut out,
        Audience::Dispatcher,
    )
}

/// The builds a dispatcher of many builds sends (`runner::dispatch::workers`), each run as `run` would
/// run it in a process of its own, one after another, until the dispatcher closes the pipe.
/// Their records are flushed to the disk together, before the worker ends.
pub(crate) fn serve_builds() -> Result<u8, CliError> {
    let stop = stop_on_signals()?;
    let mut input = runner::dispatch::workers::requests().map_err(CliError::Output)?;
    let token = runner::dispatch::workers::read_hello(&mut input).map_err(CliError::Output)?;
    let mut written = std::collections::BTreeSet::new();
    // A build's last lines and its end line go out in one write.
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    while let Some(request) =
        runner::dispatch::workers::read_request(&mut input).map_err(CliError::Output)?
    {
        written.insert(request.cwd.join(&request.state_dir));
        let code = crate::exit_code(run_one(&request, &stop, &mut out, Audience::Worker));
        // A stop that came after the build ended is not the next build's.
        stop.clear();
        out.write_all(&runner::dispatch::workers::end_line(&token, code))
            .and_then(|()| out.flush())
            .map_err(CliError::Output)?;
    }
    for dir in written {
        runner::store::StateDir::open(dir)?.flush()?;
    }
    Ok(exit_codes::SUCCESS)
}

/// Who reads what a build in this process reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Someone at the console, in the request's log format.
    Person,
    /// The dispatcher of a Slurm job, through the job's output file.
    Dispatcher,
    /// The dispatcher of a worker, which ran it with other builds: their records are flushed to
    /// the disk together, and the build's last lines go out with the worker's end line.
    Worker,
}

/// One build in this process, as `request` asks for it.
pub(crate) fn run_one(
    request: &BuildRequest,
    stop: &runner::Stop,
    out: &mut dyn Write,
    audience: Audience,
) -> Result<u8, CliError> {
    // One build per process: every child of this process is the build's.
    let options = request.options(true, audience != Audience::Worker)?;
    // A record file that cannot be written is found out before the build, not after.
    if let Some(dir) = request
        .record_file
        .as_deref()
        .and_then(std::path::Path::parent)
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(CliError::Missing {
            path: dir.display().to_string(),
        });
    }
    if !options.source_dir.is_dir() {
        return Err(CliError::Missing {
            path: options.source_dir.display().to_string(),
        });
    }
    let outcome = match audience {
        Audience::Person if request.json_log => {
            let mut reporter = JsonReporter(Console::new(&mut *out));
            runner::run(&options, &mut reporter, stop)
        }
        Audience::Person => {
            let mut reporter = TextReporter(Console::new(&mut *out));
            runner::run(&options, &mut reporter, stop)
        }
        Audience::Dispatcher | Audience::Worker => {
            let mut reporter = runner::dispatch::channel::Sender::new(&mut *out);
            runner::run(&options, &mut reporter, stop)
        }
    };
    if audience != Audience::Worker {
        let _ = out.flush();
    }
    let outcome = outcome?;
    if !outcome.diagnostics.is_empty() {
        eprint!("{}", outcome.diagnostics);
    }
    if let Some(path) = &request.record_file {
        let mut json = serde_json::to_vec_pretty(&outcome.record).unwrap_or_default();
        json.push(b'\n');
        // Private, as the record in the state directory is; written through the path (a pipe,
        // /dev/stdout or a symlink stays what it is).
        write_private_through(path, &json).map_err(|source| CliError::WriteFile {
            what: "the record",
            path: path.display().to_string(),
            source,
        })?;
    }
    if let Some(path) = &request.exported_variables {
        std::fs::write(path, dotenv(&outcome.record.exported_variables)).map_err(|source| {
            CliError::WriteFile {
                what: "the exported variables",
                path: path.display().to_string(),
                source,
            }
        })?;
    }
    Ok(runner::outcome::exit::byte(outcome.exit_code))
}

/// Writes `bytes` to `path`, creating it readable by its owner alone (an existing file keeps
/// its permissions), through a link or a pipe as they are.
fn write_private_through(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}

/// `NAME=value` lines that both a POSIX shell (`set -a; . FILE`) and dotenv readers load: a
/// value that is not plain is single-quoted.
fn dotenv(variables: &indexmap::IndexMap<String, String>) -> String {
    let plain = |v: &str| {
        v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+,".contains(c))
    };
    let mut out = String::new();
    for (name, value) in variables {
        out.push_str(name);
        out.push('=');
        if plain(value) {
            out.push_str(value);
        } else {
            out.push_str(&runner::build::shell::state::quote(value));
        }
        out.push('\n');
    }
    out
}

/// A batch's record (`batch:<uuid>` or a unique prefix of it): its builds, and how each ended.
fn inspect_batch(state: &StateDir, prefix: &str, json: bool) -> Result<u8, CliError> {
    let matches = state.batches(prefix);
    let [batch] = matches.as_slice() else {
        return Err(CliError::State(if matches.is_empty() {
            runner::store::StateError::NotFound(format!("batch:{prefix}"))
        } else {
            runner::store::StateError::Ambiguous {
                query: format!("batch:{prefix}"),
                matches: matches.iter().map(|b| b.id.clone()).collect(),
            }
        }));
    };
    if json {
        let mut text = serde_json::to_string_pretty(batch).unwrap_or_default();
        text.push('\n');
        return write_stdout(&text);
    }
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "batch      {}", batch.id);
    let _ = writeln!(out, "status     {}", batch.status.as_str());
    let _ = writeln!(out, "kind       {}", batch.kind);
    let _ = writeln!(out, "buildspec  {}", batch.buildspec);
    let _ = writeln!(out, "builds");
    for build in &batch.builds {
        let _ = writeln!(
            out,
            "  {:<24} {:<10} {}{}",
            build.id,
            build.outcome.as_str(),
            build.build_id.as_deref().unwrap_or_default(),
            build
                .reason
                .as_deref()
                .map(|r| format!("({r})"))
                .unwrap_or_default()
        );
    }
    write_stdout(&out)
}

/// SIGINT, SIGTERM, SIGHUP (the terminal went away) and SIGQUIT stop the build (the engine ends
/// its processes and writes the record) instead of ending this process at once; the exit code is
/// 128 + the signal.
pub(crate) fn stop_on_signals() -> Result<runner::Stop, CliError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let mut stop = runner::Stop::none();
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
        let (read, write) = io::pipe().map_err(CliError::Signals)?;
        signal_hook::low_level::pipe::register(signal, write).map_err(CliError::Signals)?;
        stop.add(read.into(), signal).map_err(CliError::Signals)?;
    }
    Ok(stop)
}

pub(crate) fn inspect(args: &InspectArgs) -> Result<u8, CliError> {
    let state = read_state(args.state_dir.as_ref(), "buildspec inspect")?;
    if let Some(batch) = args.build.as_deref().and_then(|b| b.strip_prefix("batch:")) {
        return inspect_batch(&state, batch, args.json);
    }
    let record = state.find(if args.last {
        None
    } else {
        args.build.as_deref()
    })?;
    if args.json {
        let mut text = serde_json::to_string_pretty(&record).unwrap_or_default();
        text.push('\n');
        return write_stdout(&text);
    }
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(out, "build      {} (#{})", record.id, record.number);
    let _ = writeln!(out, "status     {}", record.status.as_str());
    let _ = writeln!(out, "buildspec  {}", record.buildspec);
    let _ = writeln!(out, "source     {}", record.source);
    let _ = writeln!(out, "started    {}", record.start_time);
    if let Some(end) = record.end_time {
        let _ = writeln!(out, "ended      {end}");
    }
    let _ = writeln!(out, "log        {}", record.log_path);
    if let Some(why) = &record.log_incomplete {
        let _ = writeln!(out, "           incomplete: {why}");
    }
    if let Some(p) = &record.placement {
        let mut line = format!("{} job {}", p.executor, p.job_id);
        for (what, value) in [
            ("on", &p.node),
            ("partition", &p.partition),
            ("account", &p.account),
        ] {
            if let Some(value) = value {
                line.push_str(&format!(" {what} {value}"));
            }
        }
        if let Some(wait) = p.queue_wait_ms {
            line.push_str(&format!(", {:.1}s in the queue", wait as f64 / 1000.0));
        }
        line.push_str(&format!(", ended {}", p.state));
        if let Some(reason) = &p.reason {
            line.push_str(&format!(" ({reason})"));
        }
        let _ = writeln!(out, "ran as     {line}");
    }
    let _ = writeln!(out, "phases");
    for phase in &record.phases {
        let duration = phase
            .duration_ms
            .map(|d| format!("{:.1}s", d as f64 / 1000.0))
            .unwrap_or_default();
        let attempts = if phase.attempts > 1 {
            format!(" ({} attempts)", phase.attempts)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {:<16} {:<11} {duration:>8}{attempts}",
            phase.phase.as_str(),
            phase.status.as_str()
        );
        for context in &phase.contexts {
            // A multi-line command keeps its lines, indented under the phase.
            let message = context.message.replace('\n', "\n      ");
            let _ = writeln!(out, "    {}: {message}", context.status_code);
        }
    }
    if !record.artifacts.is_empty() {
        let _ = writeln!(out, "artifacts");
        for set in &record.artifacts {
            let bytes: u64 = set.files.iter().map(|f| f.size).sum();
            let uploaded = set
                .uploaded
                .as_deref()
                .map(|u| format!(", uploaded to {u}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<16} {} file(s), {bytes} bytes in {}{uploaded}",
                set.identifier,
                set.files.len(),
                set.location
            );
        }
    }
    if !record.reports.is_empty() {
        // The same table the build printed at its end, without its heading.
        let table = runner::build::summary_table(&record.reports);
        let _ = writeln!(out, "reports");
        for line in table.lines().skip(1) {
            let _ = writeln!(out, "{line}");
        }
    }
    if !record.exported_variables.is_empty() {
        let _ = writeln!(out, "exported");
        for (k, v) in &record.exported_variables {
            let _ = writeln!(out, "  {k}={v}");
        }
    }
    write_stdout(&out)
}
