//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run AWS CodeBuild buildspec files anywhere: check them, plan them, run them.
#[derive(Debug, Parser)]
#[command(
    name = "buildspec",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(after_help = "\
Examples:
  buildspec check                       Check ./buildspec.yml
  buildspec check . --exclude vendor    Check every buildspec below this directory
  buildspec plan buildspec.yml          Show what a run would do, without running anything
  buildspec run                         Run ./buildspec.yml as CodeBuild would
  buildspec run specs/ --jobs 4         Run every buildspec below specs/, 4 at a time
  buildspec batch                       Run the builds of the batch: section
  buildspec report --failed --since 1d  List the builds that failed today
  buildspec schema > buildspec.schema.json

Exit codes: 0 success, 1 build failed, 2 usage error or invalid buildspec, 3 internal fault,
124 timed out, 128+n stopped by signal n (130 SIGINT, 143 SIGTERM, 129 SIGHUP, 131 SIGQUIT).")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check buildspec files without running them.
    #[command(after_help = "\
Examples:
  buildspec check
  buildspec check ci/buildspec-test.yml ci/buildspec-deploy.yml
  buildspec check . --exclude 'node_modules' --exclude 'examples/**'
  buildspec check --strict --format json infra/

A directory is searched recursively for *.yml and *.yaml files that look like buildspecs (in a git
repository, .gitignore is honoured): a top-level `version` beside `phases`, `batch` or `artifacts`. Files named on the
command line are always checked.

Exit status: 0 when no file has an error, 2 otherwise.")]
    Check(CheckArgs),
    /// Run a buildspec as CodeBuild would.
    #[command(after_help = "\
Examples:
  buildspec run
  buildspec run ci/buildspec.yml --env STAGE=dev --env-file ci/project.env
  buildspec run tests/specs/ --jobs 4 --exclude 'slow/**'
  buildspec run --session persistent --timeout 20m
  buildspec run --log-format json | jq -c 'select(.event == \"phase_finished\")'

The build's record and log are kept in the state directory (--state-dir, default
$XDG_STATE_HOME/buildspec or ~/.local/state/buildspec); `buildspec inspect --last` shows the record.

Exit status: 0 SUCCEEDED, 1 FAILED, 2 invalid buildspec or usage, 3 FAULT, 124 TIMED_OUT,
128+n STOPPED by signal n (130 SIGINT, 143 SIGTERM, 129 SIGHUP, 131 SIGQUIT).")]
    Run(Box<RunArgs>),
    /// Run the builds of a buildspec's `batch:` section.
    #[command(after_help = "\
Examples:
  buildspec batch
  buildspec batch ci/buildspec.yml --jobs 4
  buildspec batch --only linux_node_20

build-list, build-matrix (the product of its dynamic lists), build-graph (a build starts when the
builds it depends on succeeded) and build-fanout run as separate builds, --jobs at a time, each with
CODEBUILD_BATCH_BUILD_IDENTIFIER set. fast-fail stops running builds when one fails.

Exit status: 0 when every build without ignore-failure succeeded, 1 otherwise, 2 usage error.")]
    Batch(Box<BatchArgs>),
    /// Show a build's record.
    #[command(after_help = "\
Examples:
  buildspec inspect --last
  buildspec inspect 3f2a            (a unique prefix of a build's id)
  buildspec inspect --last --json | jq .phases")]
    Inspect(InspectArgs),
    /// List builds from their records.
    #[command(after_help = "\
Examples:
  buildspec report
  buildspec report --failed --since 2h
  buildspec report --filter status=FAILED,TIMED_OUT --filter project=api --count 20
  buildspec report --latest --format id,status,duration,failed_phase --terse --no-header
  buildspec report --junit builds.xml

Fields: id, number, project, buildspec, status, start_time, end_time, duration, failed_phase,
exit_code, initiator, session, batch, identifier, source.")]
    Report(ReportArgs),
    /// Run the latest build of each buildspec again, with the same arguments.
    #[command(after_help = "\
Examples:
  buildspec rerun --failed
  buildspec rerun --jobs 4")]
    Rerun(RerunArgs),
    /// Print where a build keeps its record, log, artifacts, reports, scripts or environment.
    #[command(after_help = "\
Examples:
  less $(buildspec path --last --log)
  ls $(buildspec path 3f2a --artifacts)")]
    Path(PathArgs),
    /// Show what a run would do, executing nothing.
    #[command(after_help = "\
Examples:
  buildspec plan
  buildspec plan ci/buildspec.yml --env STAGE=prod --env-file ci/project.env
  buildspec plan --format json | jq '.phases[] | {name, next_on_failure}'

Nothing is executed: not the commands, and not `artifacts.name` or `cache.key` expressions,
which are shown as written. Secrets are shown as ***.")]
    Plan(PlanArgs),
    /// Print the JSON Schema of the buildspec format (for editors).
    #[command(after_help = "\
Examples:
  buildspec schema > .vscode/buildspec.schema.json

With yaml-language-server, add to the top of a buildspec:
  # yaml-language-server: $schema=./buildspec.schema.json")]
    Schema,
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  buildspec completions bash > ~/.local/share/bash-completion/completions/buildspec
  buildspec completions zsh > ~/.zfunc/_buildspec
  buildspec completions fish > ~/.config/fish/completions/buildspec.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Text for people, JSON for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Buildspec files, or directories to search [default: ./buildspec.yml].
    pub(crate) paths: Vec<PathBuf>,
    /// Skip paths matching this glob (relative to the searched directory); repeatable.
    #[arg(long, value_name = "GLOB")]
    pub(crate) exclude: Vec<String>,
    /// Treat warnings (unknown keys, key case, duplicate keys) as errors.
    #[arg(long)]
    pub(crate) strict: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

/// How `run` writes its log to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum LogFormat {
    /// CodeBuild's log lines.
    #[default]
    Text,
    /// One JSON event per line.
    Json,
}

/// The shell session kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum SessionArg {
    /// A fresh shell per command, variables and directory carried over (CodeBuild's behaviour).
    #[default]
    Compat,
    /// One shell for the whole build: functions, options and traps persist too.
    Persistent,
}

impl From<SessionArg> for runner::SessionKind {
    fn from(session: SessionArg) -> Self {
        match session {
            SessionArg::Compat => runner::SessionKind::Compat,
            SessionArg::Persistent => runner::SessionKind::Persistent,
        }
    }
}

/// How artifact sets are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum PackagingArg {
    /// A folder per set.
    #[default]
    None,
    /// One zip per set.
    Zip,
}

/// What a build is made of, for `run` and `plan` alike.
#[derive(Debug, Clone, Args)]
pub(crate) struct BuildArgs {
    /// The source directory, CODEBUILD_SRC_DIR [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub(crate) source: Option<PathBuf>,
    /// Set a variable, over every other layer; repeatable.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub(crate) env: Vec<String>,
    /// Read variables from a file of NAME=VALUE lines (# comments).
    #[arg(long, value_name = "FILE")]
    pub(crate) env_file: Option<PathBuf>,
    /// Start from an empty environment instead of this process's.
    #[arg(long)]
    pub(crate) clean_env: bool,
    /// The project name, in CODEBUILD_BUILD_ID [default: the source directory's name].
    #[arg(long, value_name = "NAME")]
    pub(crate) project: Option<String>,
    /// Treat buildspec warnings (unknown keys, key case, duplicate keys) as errors.
    #[arg(long)]
    pub(crate) strict: bool,
}

impl BuildArgs {
    /// The buildspec: the one given, else (as on CodeBuild) buildspec.yml at the root of the
    /// source.
    pub(crate) fn buildspec(&self, file: Option<&std::path::Path>) -> PathBuf {
        file.map(PathBuf::from).unwrap_or_else(|| {
            self.source.as_deref().map_or_else(
                || PathBuf::from("buildspec.yml"),
                |s| s.join("buildspec.yml"),
            )
        })
    }

    /// The source directory as given (`.` by default).
    pub(crate) fn source_dir(&self) -> PathBuf {
        self.source.clone().unwrap_or_else(|| PathBuf::from("."))
    }

    /// The environment layers the command line gives: `--env`, `--env-file`, and the inherited
    /// environment unless `--clean-env`.
    pub(crate) fn layers(&self) -> Result<runner::env::Layers, runner::env::EnvError> {
        runner::env::Layers::given(&self.env, self.env_file.as_deref(), self.clean_env)
    }
}

impl From<PackagingArg> for runner::build::Packaging {
    fn from(packaging: PackagingArg) -> Self {
        match packaging {
            PackagingArg::None => runner::build::Packaging::None,
            PackagingArg::Zip => runner::build::Packaging::Zip,
        }
    }
}

/// Reads a size: a number of bytes, or with a unit (`K`, `M`, `G`, `KiB`, `MiB`, `GiB`, in
/// powers of 1024); `0` for none.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => {
            return Err(format!(
                "`{text}` is not a size: write it like 100MiB, 2G or 512K"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("`{text}` is not a size: write it like 100MiB, 2G or 512K"))
}

/// A `--mask` value, refused when too short to be a secret.
pub(crate) fn mask_value(text: &str) -> Result<String, String> {
    runner::env::mask::check_value(text)
}

impl RunOptions {
    /// The build this command line asks for, of the buildspec `file` (the default one when
    /// `None`): the one place arguments become a request.
    pub(crate) fn request(
        &self,
        file: Option<&std::path::Path>,
    ) -> Result<runner::request::BuildRequest, crate::error::CliError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Ok(runner::request::BuildRequest {
            cwd: std::env::current_dir().unwrap_or_default(),
            buildspec: self.build.buildspec(file),
            source: self.build.source_dir(),
            state_dir: state_dir(self.state_dir.as_ref())?,
            project: self.build.project.clone(),
            session: self.session.into(),
            timeout_ms: ms(self.timeout),
            grace_ms: ms(self.grace),
            cleanup_timeout_ms: ms(self.cleanup_timeout),
            env: self.build.env.clone(),
            env_file: self.build.env_file.clone(),
            clean_env: self.build.clean_env,
            strict: self.build.strict,
            parameters: self.parameters.clone(),
            secrets: self.secrets.clone(),
            mask: self.mask.clone(),
            mask_file: self.mask_file.clone(),
            artifacts: self
                .artifacts
                .as_ref()
                .map(|a| a.to_string_lossy().into_owned()),
            packaging: self.packaging.into(),
            reports: self.reports.clone(),
            cache_dir: self.cache_dir.clone(),
            json_log: self.log_format == LogFormat::Json,
            log_limit: (self.log_limit > 0).then_some(self.log_limit),
            record_file: self.record_file.clone(),
            exported_variables: self.exported_variables.clone(),
            batch: None,
            uuid: None,
            buildspec_name: None,
            original_source: None,
        })
    }
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Buildspec files, or directories to search; several run as separate builds [default:
    /// buildspec.yml in the source directory].
    pub(crate) paths: Vec<PathBuf>,
    /// Skip paths matching this glob when searching directories; repeatable.
    #[arg(long, value_name = "GLOB")]
    pub(crate) exclude: Vec<String>,
    #[command(flatten)]
    pub(crate) many: ManyArgs,
    #[command(flatten)]
    pub(crate) options: RunOptions,
}

/// How many builds run together, and where.
#[derive(Debug, Args)]
pub(crate) struct ManyArgs {
    #[command(flatten)]
    pub(crate) side_by_side: SideBySide,
    #[command(flatten)]
    pub(crate) executor: ExecutorArgs,
}

/// How many builds run at once, and whether they share their source.
#[derive(Debug, Args)]
pub(crate) struct SideBySide {
    /// How many builds run at once [default: the number of cores].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) jobs: Option<u64>,
    /// Builds that run side by side share the source directory instead of each getting a copy.
    #[arg(long)]
    pub(crate) in_place: bool,
}

/// Where builds run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum ExecutorArg {
    /// On this machine, each build a child process.
    #[default]
    Local,
    /// As Slurm jobs (sbatch), each running `buildspec run` on a compute node.
    Slurm,
}

/// Where many builds run, and how they are submitted to a scheduler.
#[derive(Debug, Args)]
#[command(next_help_heading = "Executor")]
pub(crate) struct ExecutorArgs {
    /// Where the builds run.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) executor: ExecutorArg,
    /// With --executor slurm: a directory the compute nodes see at the same path. The binary,
    /// the buildspecs, the copies of the source and the job files go there, and the state
    /// directory defaults to its state/.
    #[arg(long, value_name = "DIR", env = "BUILDSPEC_SHARED_DIR")]
    pub(crate) shared_dir: Option<PathBuf>,
    /// The Slurm partition to submit to (sbatch --partition).
    #[arg(long, value_name = "NAME")]
    pub(crate) slurm_partition: Option<String>,
    /// The Slurm account to charge (sbatch --account).
    #[arg(long, value_name = "NAME")]
    pub(crate) slurm_account: Option<String>,
    /// The jobs' time limit in Slurm's notation (sbatch --time) [default: the build timeout,
    /// its grace and cleanup time, and a minute].
    #[arg(long, value_name = "TIME")]
    pub(crate) slurm_time: Option<String>,
    /// Another sbatch argument, as it is (`--slurm-arg=--qos=low`); repeatable.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub(crate) slurm_arg: Vec<String>,
    /// Cancel a job still waiting in the queue after this long; its build is STOPPED.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) max_pending: Option<Duration>,
}

#[derive(Debug, Args)]
pub(crate) struct BatchArgs {
    /// The buildspec with the `batch:` section [default: buildspec.yml in the source directory].
    pub(crate) file: Option<PathBuf>,
    /// Run only the build with this identifier.
    #[arg(long, value_name = "ID")]
    pub(crate) only: Option<String>,
    /// Take up the latest interrupted batch of this buildspec (with --executor slurm): its jobs
    /// are followed again, not submitted again; builds that ended keep their results.
    #[arg(long, conflicts_with = "only")]
    pub(crate) resume: bool,
    #[command(flatten)]
    pub(crate) many: ManyArgs,
    #[command(flatten)]
    pub(crate) options: RunOptions,
}

/// What one build is run with; `run` and `batch` pass them on to each build.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunOptions {
    #[command(flatten)]
    pub(crate) build: BuildArgs,
    /// Where build records and logs are kept.
    #[arg(long, value_name = "DIR", env = "BUILDSPEC_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// How commands share state.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) session: SessionArg,
    /// How the log is written to stdout.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) log_format: LogFormat,
    /// The build's time limit, like 90s, 5m or 1h; 0 for none.
    #[arg(long, value_name = "DURATION", default_value = "60m", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// How long processes have between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) grace: Duration,
    /// How long the artifact upload may take after a timeout or a stop.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub(crate) cleanup_timeout: Duration,
    /// Parameter Store values: a YAML or JSON map of parameter names to values.
    #[arg(long, value_name = "FILE")]
    pub(crate) parameters: Option<PathBuf>,
    /// Secrets Manager values: a YAML or JSON map of secret ids to values (a string, or a map
    /// for JSON secrets).
    #[arg(long, value_name = "FILE")]
    pub(crate) secrets: Option<PathBuf>,
    /// A value to replace with *** everywhere the build's output and records are written (at
    /// least 4 characters); repeatable. On a shared machine, prefer --mask-file: a command
    /// line can be read by every user.
    #[arg(long, value_name = "VALUE", value_parser = mask_value)]
    pub(crate) mask: Vec<String>,
    /// How much of the build's output the log and the console keep (100MiB, 2G, 512K; 0 for no
    /// limit): what it prints past that is counted, not kept.
    #[arg(long, value_name = "SIZE", default_value = "100MiB", value_parser = parse_size)]
    pub(crate) log_limit: u64,
    /// Values to mask, one per line, as --mask takes them.
    #[arg(long, value_name = "FILE", env = "BUILDSPEC_MASK_FILE")]
    pub(crate) mask_file: Option<PathBuf>,
    /// Also write the final record (build.json) to FILE, whatever the build's outcome.
    #[arg(long, value_name = "FILE")]
    pub(crate) record_file: Option<PathBuf>,
    /// Where artifact sets go, each under its name or identifier: a folder, or
    /// s3://bucket/prefix (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_S3_FORCE_PATH_STYLE) [default: the build's artifacts/ folder in the state
    /// directory].
    #[arg(long, value_name = "DIR|S3URL")]
    pub(crate) artifacts: Option<PathBuf>,
    /// Write each artifact set as a folder or as one zip.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) packaging: PackagingArg,
    /// Where report files are copied, each group in its own folder [default: the build's
    /// reports/ folder in the state directory].
    #[arg(long, value_name = "DIR")]
    pub(crate) reports: Option<PathBuf>,
    /// The cache directory: `cache.paths` are restored from it before INSTALL and saved to it
    /// after the build [default: cache/ in the state directory].
    #[arg(long, value_name = "DIR", env = "BUILDSPEC_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Write the final values of `env.exported-variables` to FILE, as dotenv lines.
    #[arg(long, value_name = "FILE")]
    pub(crate) exported_variables: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// A build id (project:uuid), its uuid, or a unique prefix.
    #[arg(required_unless_present = "last", conflicts_with = "last")]
    pub(crate) build: Option<String>,
    /// The most recently started build.
    #[arg(long)]
    pub(crate) last: bool,
    /// Print the record as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Where build records are kept.
    #[arg(long, value_name = "DIR", env = "BUILDSPEC_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RerunArgs {
    /// Only the builds whose latest run did not succeed.
    #[arg(long)]
    pub(crate) failed: bool,
    // Builds run again on this machine: each one's arguments say how it ran, not where.
    #[command(flatten)]
    pub(crate) side_by_side: SideBySide,
    /// Where build records are kept.
    #[arg(long, value_name = "DIR", env = "BUILDSPEC_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Only builds whose FIELD is one of the values; repeatable.
    #[arg(long, value_name = "FIELD=VALUE[,VALUE]")]
    pub(crate) filter: Vec<String>,
    /// Only builds started since: a time (2026-11-22T10:00:00Z) or a duration ago (90m, 2d).
    #[arg(long, value_name = "WHEN")]
    pub(crate) since: Option<String>,
    /// Only builds started before: a time or a duration ago.
    #[arg(long, value_name = "WHEN")]
    pub(crate) until: Option<String>,
    /// Only builds that did not succeed.
    #[arg(long, conflicts_with = "succeeded")]
    pub(crate) failed: bool,
    /// Only builds that succeeded.
    #[arg(long)]
    pub(crate) succeeded: bool,
    /// Only the latest build of each buildspec (and batch identifier).
    #[arg(long)]
    pub(crate) latest: bool,
    /// At most N builds, the most recent.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<usize>,
    /// The columns, comma-separated.
    #[arg(long, value_name = "FIELDS", value_delimiter = ',')]
    pub(crate) format: Vec<String>,
    /// Columns separated by `|`, without padding.
    #[arg(long)]
    pub(crate) terse: bool,
    /// Leave out the header line.
    #[arg(long)]
    pub(crate) no_header: bool,
    /// The records as a JSON array.
    #[arg(long, conflicts_with_all = ["terse", "junit"])]
    pub(crate) json: bool,
    /// Also write the builds as JUnit XML to FILE (a test suite per build, a test case per phase).
    #[arg(long, value_name = "FILE")]
    pub(crate) junit: Option<PathBuf>,
    /// Where build records are kept.
    #[arg(long, value_name = "DIR", env = "BUILDSPEC_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").args(["log", "record", "artifacts", "reports", "scripts", "env"])))]
pub(crate) struct PathArgs {
    /// A build id (project:uuid), its uuid, or a unique prefix.
    #[arg(required_unless_present = "last", conflicts_with = "last")]
    pub(crate) build: Option<String>,
    /// The most recently started build.
    #[arg(long)]
    pub(crate) last: bool,
    /// The log (build.log).
    #[arg(long)]
    pub(crate) log: bool,
    /// The record (build.json).
    #[arg(long)]
    pub(crate) record: bool,
    /// The folder of the artifact sets.
    #[arg(long)]
    pub(crate) artifacts: bool,
    /// The folder of the report groups.
    #[arg(long)]
    pub(crate) reports: bool,
    /// The generated command scripts.
    #[arg(long)]
    pub(crate) scripts: bool,
    /// The environment dumps (env/start.env, env/end.env).
    #[arg(long)]
    pub(crate) env: bool,
    /// Where build records are kept.
    #[arg(long, value_name = "DIR", env = "BUILDSPEC_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// The buildspec [default: buildspec.yml in the source directory].
    pub(crate) file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) build: BuildArgs,
    /// List inherited variables too (text output lists only those a buildspec layer overrides).
    #[arg(long)]
    pub(crate) all_env: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

/// A build's uuid, as the state directory names its folder: nothing else may become a path.
/// Reads `90s`, `5m`, `1h30m`; `0` means no limit.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write it like 90s, 5m or 1h30m"))?;
    Duration::try_from(parsed).map_err(|_| format!("`{text}` is negative"))
}

/// The state directory: `--state-dir` (or `BUILDSPEC_STATE_DIR`), else the user's.
pub(crate) fn state_dir(given: Option<&PathBuf>) -> Result<PathBuf, crate::error::CliError> {
    given
        .cloned()
        .or_else(runner::store::default_state_dir)
        .ok_or(crate::error::CliError::NoStateDir)
}
