//! `buildspec`: run AWS CodeBuild buildspec files anywhere.

mod args;
mod check;
mod error;
mod exit_codes;
mod many;
mod plan;
mod query;
mod report;
mod run;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};
use crate::error::CliError;

fn main() -> ExitCode {
    // A dispatcher's worker is not a command anyone types: it stays out of clap, so that no help
    // and no completion script offers it (clap_complete lists hidden subcommands).
    let given: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let [worker] = given.as_slice()
        && worker == runner::dispatch::workers::WORKER
    {
        return ExitCode::from(exit_code(run::serve_builds()));
    }
    // A Slurm job's build: its request comes from a private file, not the node's `ps`.
    if let [request, file] = given.as_slice()
        && request == runner::dispatch::slurm::REQUEST
    {
        return ExitCode::from(exit_code(run::run_requested(std::path::Path::new(file))));
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Run(args) => match run::single(&args) {
            Some(file) => run::run(&args, file),
            None => many::run_paths(&args),
        },
        Command::Batch(args) => many::run_batch(&args),
        Command::Inspect(args) => run::inspect(&args),
        Command::Report(args) => query::report(&args),
        Command::Path(args) => query::path(&args),
        Command::Rerun(args) => many::rerun(&args),
        Command::Schema => write_stdout(&buildspec::schema::json_schema()),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "buildspec",
                &mut std::io::stdout(),
            );
            Ok(exit_codes::SUCCESS)
        }
    };
    ExitCode::from(exit_code(result))
}

/// The exit code of a command's result; an error is reported on stderr.
pub(crate) fn exit_code(result: Result<u8, CliError>) -> u8 {
    match result {
        Ok(code) => code,
        Err(error) => {
            error.report();
            error.exit_code()
        }
    }
}

/// Writes text to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn write_stdout(text: &str) -> Result<u8, CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(exit_codes::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(exit_codes::SUCCESS),
        Err(e) => Err(CliError::Output(e)),
    }
}
