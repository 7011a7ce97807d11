//! The typed buildspec: every key of CodeBuild's format (reference §1), with locations.
//!
//! These types serialize with the format's own key names and derive the JSON Schema that
//! `buildspec schema` prints, so the schema editors use and the decoder cannot drift apart (a test
//! compares the two key by key).

use std::borrow::Cow;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Serialize;

use crate::span::{Span, Spanned};

/// A whole buildspec file.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(title = "AWS CodeBuild buildspec")]
pub struct Buildspec {
    /// `0.2` (recommended) or `0.1` (every command in its own shell).
    pub version: Spanned<Version>,
    /// The Linux user that runs every command, unless a phase says otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as: Option<Spanned<String>>,
    /// Shell and environment variables.
    #[serde(default)]
    pub env: Env,
    /// Proxy settings (recorded; they only matter behind an explicit proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Proxy>,
    /// A batch of builds: one of build-list, build-matrix, build-graph, build-fanout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<Batch>,
    /// The command phases. Required unless `batch` is present.
    #[serde(default)]
    pub phases: Phases,
    /// Report groups, by name or ARN.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "Option<IndexMap<String, ReportGroup>>")]
    pub reports: IndexMap<String, ReportGroup>,
    /// What the build leaves behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Artifacts>,
    /// Files kept between builds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
}

/// A supported buildspec version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Version {
    /// Every command runs in a separate shell; nothing carries over.
    #[serde(rename = "0.1")]
    V01,
    /// Variables and the working directory carry over between commands.
    #[serde(rename = "0.2")]
    V02,
}

impl Version {
    /// The version as written in a buildspec.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V01 => "0.1",
            Version::V02 => "0.2",
        }
    }
}

impl JsonSchema for Version {
    fn schema_name() -> Cow<'static, str> {
        "Version".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The buildspec version.",
            "enum": [0.2, 0.1, "0.2", "0.1"]
        })
    }
}

/// The `env` section.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Env {
    /// The shell that runs commands: `sh` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Spanned<Shell>>,
    /// Plain-text variables. Values are literal text: `$OTHER` is not expanded.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "Option<IndexMap<String, Spanned<ScalarText>>>")]
    pub variables: IndexMap<String, Spanned<ScalarText>>,
    /// Variables read from Systems Manager Parameter Store: name to parameter name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "Option<IndexMap<String, Spanned<String>>>")]
    pub parameter_store: IndexMap<String, Spanned<String>>,
    /// Variables read from Secrets Manager: name to `secret-id:json-key:version-stage:version-id`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "Option<IndexMap<String, Spanned<SecretRef>>>")]
    pub secrets_manager: IndexMap<String, Spanned<SecretRef>>,
    /// Variables whose final values the build exports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Option<Vec<Spanned<String>>>")]
    pub exported_variables: Vec<Spanned<String>>,
    /// Whether CodeBuild's git credential helper is available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_credential_helper: Option<Spanned<YesNo>>,
}

impl Env {
    /// Whether a variable comes from Parameter Store or Secrets Manager.
    pub fn is_secret(&self, name: &str) -> bool {
        self.parameter_store.contains_key(name) || self.secrets_manager.contains_key(name)
    }
}

/// The shells `env.shell` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Shell {
    /// `sh` or `/bin/sh`: dash on Debian and Ubuntu.
    #[serde(rename = "sh")]
    Sh,
    /// `bash` or `/bin/bash`.
    #[serde(rename = "bash")]
    Bash,
    /// `powershell.exe` (Windows images).
    #[serde(rename = "powershell.exe")]
    PowerShell,
    /// `cmd.exe` (Windows images).
    #[serde(rename = "cmd.exe")]
    Cmd,
}

impl Shell {
    /// The spellings accepted in a buildspec, for messages and the schema.
    pub const ACCEPTED: [&'static str; 6] = [
        "bash",
        "/bin/bash",
        "sh",
        "/bin/sh",
        "powershell.exe",
        "cmd.exe",
    ];

    /// Reads a spelling.
    pub fn parse(text: &str) -> Option<Shell> {
        match text {
            "bash" | "/bin/bash" => Some(Shell::Bash),
            "sh" | "/bin/sh" => Some(Shell::Sh),
            "powershell.exe" => Some(Shell::PowerShell),
            "cmd.exe" => Some(Shell::Cmd),
            _ => None,
        }
    }

    /// The program the runner starts.
    pub fn program(self) -> &'static str {
        match self {
            Shell::Sh => "sh",
            Shell::Bash => "bash",
            Shell::PowerShell => "powershell.exe",
            Shell::Cmd => "cmd.exe",
        }
    }

    /// Whether the shell exists only on Windows images.
    pub fn is_windows(self) -> bool {
        matches!(self, Shell::PowerShell | Shell::Cmd)
    }
}

impl JsonSchema for Shell {
    fn schema_name() -> Cow<'static, str> {
        "Shell".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "enum": Shell::ACCEPTED })
    }
}

/// A scalar read as the text the user wrote (`NO` stays `NO`, `0.10` stays `0.10`; an empty
/// value is the empty string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ScalarText(pub String);

impl JsonSchema for ScalarText {
    fn schema_name() -> Cow<'static, str> {
        "ScalarText".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Any scalar; its text is taken literally.",
            "type": ["string", "number", "boolean", "null"]
        })
    }
}

/// A yes/no flag; `true`/`false` are read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct YesNo(pub bool);

impl YesNo {
    /// Reads `yes`, `no`, `true`, `false` in any case.
    pub fn parse(text: &str) -> Option<YesNo> {
        match text.to_ascii_lowercase().as_str() {
            "yes" | "true" => Some(YesNo(true)),
            "no" | "false" => Some(YesNo(false)),
            _ => None,
        }
    }
}

impl JsonSchema for YesNo {
    fn schema_name() -> Cow<'static, str> {
        "YesNo".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "boolean" },
                { "enum": ["yes", "no", "Yes", "No", "YES", "NO", "true", "false", "True", "False"] }
            ]
        })
    }
}

/// A Secrets Manager reference: `secret-id[:json-key[:version-stage[:version-id]]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRef {
    /// The secret's name or ARN.
    pub secret_id: String,
    /// A key of the secret's JSON object; the whole secret when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_key: Option<String>,
    /// A staging label (`AWSCURRENT` when neither stage nor id is given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_stage: Option<String>,
    /// A version id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

impl SecretRef {
    /// Splits a reference. An ARN (`arn:aws:secretsmanager:region:account:secret:name`) keeps its
    /// own colons: the fields follow its seventh part.
    pub fn parse(text: &str) -> SecretRef {
        let parts: Vec<&str> = text.split(':').collect();
        let (id, rest) = if text.starts_with("arn:") && parts.len() >= 7 {
            (parts[..7].join(":"), &parts[7..])
        } else {
            (parts[0].to_owned(), &parts[1..])
        };
        let field = |i: usize| {
            rest.get(i)
                .filter(|s| !s.is_empty())
                .map(|s| (*s).to_owned())
        };
        SecretRef {
            secret_id: id,
            json_key: field(0),
            version_stage: field(1),
            version_id: field(2),
        }
    }
}

impl JsonSchema for SecretRef {
    fn schema_name() -> Cow<'static, str> {
        "SecretRef".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "secret-id:json-key:version-stage:version-id (all but the id optional).",
            "type": "string"
        })
    }
}

/// The `proxy` section.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Proxy {
    /// Upload artifacts through the proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_artifacts: Option<Spanned<YesNo>>,
    /// Send logs through the proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<Spanned<YesNo>>,
}

/// The four command phases, each optional.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Phases {
    /// Runs first; `runtime-versions` belongs here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install: Option<Phase>,
    /// Runs after INSTALL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_build: Option<Phase>,
    /// The build itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Phase>,
    /// Runs after BUILD, even when BUILD failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_build: Option<Phase>,
    /// Where `phases:` was written.
    #[serde(skip)]
    #[schemars(skip)]
    pub span: Option<Span>,
}

impl Phases {
    /// The phase of a name, if the buildspec has it.
    pub fn get(&self, name: PhaseName) -> Option<&Phase> {
        match name {
            PhaseName::Install => self.install.as_ref(),
            PhaseName::PreBuild => self.pre_build.as_ref(),
            PhaseName::Build => self.build.as_ref(),
            PhaseName::PostBuild => self.post_build.as_ref(),
        }
    }

    pub(crate) fn slot(&mut self, name: PhaseName) -> &mut Option<Phase> {
        match name {
            PhaseName::Install => &mut self.install,
            PhaseName::PreBuild => &mut self.pre_build,
            PhaseName::Build => &mut self.build,
            PhaseName::PostBuild => &mut self.post_build,
        }
    }

    /// Whether no phase is written.
    pub fn is_empty(&self) -> bool {
        PhaseName::ALL.iter().all(|n| self.get(*n).is_none())
    }
}

/// The command phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PhaseName {
    /// `install`
    Install,
    /// `pre_build`
    PreBuild,
    /// `build`
    Build,
    /// `post_build`
    PostBuild,
}

impl PhaseName {
    /// Every phase, in run order.
    pub const ALL: [PhaseName; 4] = [
        PhaseName::Install,
        PhaseName::PreBuild,
        PhaseName::Build,
        PhaseName::PostBuild,
    ];

    /// The name as written in a buildspec (`pre_build`).
    pub fn key(self) -> &'static str {
        match self {
            PhaseName::Install => "install",
            PhaseName::PreBuild => "pre_build",
            PhaseName::Build => "build",
            PhaseName::PostBuild => "post_build",
        }
    }

    /// The name as CodeBuild logs it (`PRE_BUILD`).
    pub fn upper(self) -> &'static str {
        match self {
            PhaseName::Install => "INSTALL",
            PhaseName::PreBuild => "PRE_BUILD",
            PhaseName::Build => "BUILD",
            PhaseName::PostBuild => "POST_BUILD",
        }
    }

    /// Reads a key, in any case.
    pub fn parse(key: &str) -> Option<PhaseName> {
        PhaseName::ALL
            .into_iter()
            .find(|p| p.key().eq_ignore_ascii_case(key))
    }

    /// The phase after this one, if any.
    pub fn next(self) -> Option<PhaseName> {
        match self {
            PhaseName::Install => Some(PhaseName::PreBuild),
            PhaseName::PreBuild => Some(PhaseName::Build),
            PhaseName::Build => Some(PhaseName::PostBuild),
            PhaseName::PostBuild => None,
        }
    }
}

/// One phase.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Phase {
    /// The user for this phase's commands (overrides the top-level `run-as`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as: Option<Spanned<String>>,
    /// What happens when a command fails: ABORT, CONTINUE, or a RETRY form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Spanned<OnFailure>>,
    /// Runtimes to select (install only): name to version.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "Option<IndexMap<String, Spanned<ScalarText>>>")]
    pub runtime_versions: IndexMap<String, Spanned<ScalarText>>,
    /// The commands, run in order until one fails.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Command>>")]
    pub commands: Vec<Command>,
    /// Commands run after `commands`, whether or not one failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Option<Vec<Command>>")]
    pub finally: Vec<Command>,
    /// Where the phase's key was written.
    #[serde(skip)]
    #[schemars(skip)]
    pub span: Span,
}

/// One command: a list item, run as one shell script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    /// The text, verbatim (a `|` block keeps its newlines).
    pub text: String,
    /// The line the command starts on.
    pub line: u32,
    /// The column the command starts at.
    #[serde(skip)]
    pub column: u32,
}

impl JsonSchema for Command {
    fn schema_name() -> Cow<'static, str> {
        "Command".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A shell command. Quote it when it contains `: ` or starts with a YAML indicator.",
            "type": "string"
        })
    }
}

/// `on-failure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop the build: no later phase runs and artifacts are not uploaded.
    Abort,
    /// Go on to the next phase; the build still fails.
    Continue,
    /// Run the whole phase again, up to `count` more times, when `pattern` (if any) matches.
    Retry {
        /// How many more attempts (3 when not written; 0 to 100).
        count: u32,
        /// A regex matched against the failure message and the command's last output lines.
        pattern: Option<String>,
    },
}

impl OnFailure {
    /// Default number of retries for `RETRY` and `RETRY-<regex>`.
    pub const DEFAULT_RETRIES: u32 = 3;
    /// Largest accepted retry count.
    pub const MAX_RETRIES: u32 = 100;

    /// Reads `ABORT`, `CONTINUE`, `RETRY`, `RETRY-N`, `RETRY-regex`, `RETRY-N-regex`. The count
    /// is checked by the caller, which knows where the value was written.
    pub fn parse(text: &str) -> Option<OnFailure> {
        match text {
            "ABORT" => return Some(OnFailure::Abort),
            "CONTINUE" => return Some(OnFailure::Continue),
            "RETRY" => {
                return Some(OnFailure::Retry {
                    count: Self::DEFAULT_RETRIES,
                    pattern: None,
                });
            }
            _ => {}
        }
        let rest = text.strip_prefix("RETRY-")?;
        if rest.is_empty() {
            return None;
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (count, pattern) = if digits == 0 {
            (Self::DEFAULT_RETRIES, Some(rest))
        } else {
            let count = rest[..digits].parse().unwrap_or(u32::MAX);
            match &rest[digits..] {
                "" => (count, None),
                tail => match tail.strip_prefix('-') {
                    Some(pattern) if !pattern.is_empty() => (count, Some(pattern)),
                    // `RETRY-3x` is a regex that happens to start with a digit.
                    _ => (Self::DEFAULT_RETRIES, Some(rest)),
                },
            }
        };
        Some(OnFailure::Retry {
            count,
            pattern: pattern.map(str::to_owned),
        })
    }

    /// The value as a buildspec writes it.
    pub fn to_text(&self) -> String {
        match self {
            OnFailure::Abort => "ABORT".to_owned(),
            OnFailure::Continue => "CONTINUE".to_owned(),
            OnFailure::Retry { count, pattern } => match pattern {
                None => format!("RETRY-{count}"),
                Some(p) => format!("RETRY-{count}-{p}"),
            },
        }
    }
}

impl Serialize for OnFailure {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_text())
    }
}

impl JsonSchema for OnFailure {
    fn schema_name() -> Cow<'static, str> {
        "OnFailure".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "ABORT, CONTINUE, RETRY, RETRY-<count>, RETRY-<regex> or RETRY-<count>-<regex>.",
            "type": "string",
            "pattern": "^(ABORT|CONTINUE|RETRY(-.+)?)$"
        })
    }
}

/// A list of paths or globs; a single string is read as a list of one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PathList(pub Vec<Spanned<String>>);

impl JsonSchema for PathList {
    fn schema_name() -> Cow<'static, str> {
        "PathList".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" } },
                { "type": "null" }
            ]
        })
    }
}

/// A report group.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ReportGroup {
    /// Report files (globs).
    pub files: PathList,
    /// Where the globs are resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_directory: Option<Spanned<String>>,
    /// Flatten the collected files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discard_paths: Option<Spanned<YesNo>>,
    /// The format of the files (JUNITXML when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_format: Option<Spanned<ReportFormat>>,
}

impl ReportGroup {
    /// The files' format: `file-format`, or JUNITXML when it is absent (as on CodeBuild).
    pub fn format(&self) -> ReportFormat {
        self.file_format
            .as_ref()
            .map_or(ReportFormat::Junitxml, |f| f.value)
    }
}

/// The report file formats CodeBuild reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReportFormat {
    /// JUnit XML (test).
    Junitxml,
    /// NUnit 2 XML (test).
    Nunitxml,
    /// NUnit 3 XML (test).
    Nunit3xml,
    /// TestNG XML (test).
    Testngxml,
    /// Cucumber JSON (test).
    Cucumberjson,
    /// Visual Studio TRX (test).
    Visualstudiotrx,
    /// Clover XML (coverage).
    Cloverxml,
    /// Cobertura XML (coverage).
    Coberturaxml,
    /// JaCoCo XML (coverage).
    Jacocoxml,
    /// SimpleCov JSON (coverage).
    Simplecov,
    /// LCOV info (coverage).
    Lcovinfo,
}

impl ReportFormat {
    /// Every format, as a buildspec writes it.
    pub const ALL: [(&'static str, ReportFormat); 11] = [
        ("JUNITXML", ReportFormat::Junitxml),
        ("NUNITXML", ReportFormat::Nunitxml),
        ("NUNIT3XML", ReportFormat::Nunit3xml),
        ("TESTNGXML", ReportFormat::Testngxml),
        ("CUCUMBERJSON", ReportFormat::Cucumberjson),
        ("VISUALSTUDIOTRX", ReportFormat::Visualstudiotrx),
        ("CLOVERXML", ReportFormat::Cloverxml),
        ("COBERTURAXML", ReportFormat::Coberturaxml),
        ("JACOCOXML", ReportFormat::Jacocoxml),
        ("SIMPLECOV", ReportFormat::Simplecov),
        ("LCOVINFO", ReportFormat::Lcovinfo),
    ];

    /// The name a buildspec writes (`JUNITXML`).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("JUNITXML", |(n, _)| n)
    }

    /// Reads a format name, in any case (CodeBuild's matching is case-insensitive).
    pub fn parse(text: &str) -> Option<ReportFormat> {
        Self::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text.trim()))
            .map(|(_, f)| *f)
    }

    /// Whether the format holds code coverage rather than test results.
    pub fn is_coverage(self) -> bool {
        matches!(
            self,
            ReportFormat::Cloverxml
                | ReportFormat::Coberturaxml
                | ReportFormat::Jacocoxml
                | ReportFormat::Simplecov
                | ReportFormat::Lcovinfo
        )
    }
}

impl JsonSchema for ReportFormat {
    fn schema_name() -> Cow<'static, str> {
        "ReportFormat".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = ReportFormat::ALL.iter().map(|(n, _)| *n).collect();
        json_schema!({
            "description": "Case-insensitive.",
            "type": "string",
            "anyOf": [ { "enum": names }, { "pattern": "^(?i)[a-z0-9]+$" } ]
        })
    }
}

/// The `artifacts` section: the primary set and any secondary sets.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Artifacts {
    /// The primary set's files (required, even when only secondary artifacts are used).
    pub files: PathList,
    /// The artifact's name, evaluated by the build's shell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Spanned<String>>,
    /// Flatten the collected files into the artifact's root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discard_paths: Option<Spanned<YesNo>>,
    /// Where `files` are resolved (one directory, or a glob of several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_directory: Option<Spanned<String>>,
    /// Paths to leave out, relative to the base directory.
    #[serde(default, skip_serializing_if = "is_empty_paths")]
    pub exclude_paths: PathList,
    /// Keep symlinks as links (zip packaging).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_symlinks: Option<Spanned<YesNo>>,
    /// A prefix for the artifact's location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_prefix: Option<Spanned<String>>,
    /// Further artifact sets, by identifier.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "Option<IndexMap<String, ArtifactSet>>")]
    pub secondary_artifacts: IndexMap<String, ArtifactSet>,
}

fn is_empty_paths(paths: &PathList) -> bool {
    paths.0.is_empty()
}

/// One set of artifacts (the primary set has the same keys plus `secondary-artifacts`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ArtifactSet {
    /// Files to collect (globs).
    pub files: PathList,
    /// The set's name, evaluated by the build's shell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Spanned<String>>,
    /// Flatten the collected files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discard_paths: Option<Spanned<YesNo>>,
    /// Where `files` are resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_directory: Option<Spanned<String>>,
    /// Paths to leave out.
    #[serde(default, skip_serializing_if = "is_empty_paths")]
    pub exclude_paths: PathList,
    /// Keep symlinks as links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_symlinks: Option<Spanned<YesNo>>,
    /// A prefix for the set's location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_prefix: Option<Spanned<String>>,
}

impl Artifacts {
    /// The primary set, without the secondary ones.
    pub fn primary(&self) -> ArtifactSet {
        ArtifactSet {
            files: self.files.clone(),
            name: self.name.clone(),
            discard_paths: self.discard_paths,
            base_directory: self.base_directory.clone(),
            exclude_paths: self.exclude_paths.clone(),
            enable_symlinks: self.enable_symlinks,
            s3_prefix: self.s3_prefix.clone(),
        }
    }
}

/// The `cache` section.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Cache {
    /// Paths to keep between builds.
    #[serde(default)]
    pub paths: PathList,
    /// The exact key of this cache, evaluated by the shell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Spanned<String>>,
    /// Prefixes tried when `key` has no entry (at most five).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Option<Vec<Spanned<String>>>")]
    pub fallback_keys: Vec<Spanned<String>>,
    /// `restore`, `save`, or both when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Spanned<CacheAction>>,
}

/// `cache.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CacheAction {
    /// Only restore.
    Restore,
    /// Only save.
    Save,
}

/// The `batch` section.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Batch {
    /// Stop running builds when one fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast_fail: Option<Spanned<YesNo>>,
    /// Builds that run in parallel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_list: Option<Vec<BatchTask>>,
    /// Builds made from every combination of the dynamic values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_matrix: Option<BuildMatrix>,
    /// Builds with dependencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_graph: Option<Vec<BatchTask>>,
    /// N identical builds that share the tests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_fanout: Option<BuildFanout>,
    /// Where `batch:` was written.
    #[serde(skip)]
    #[schemars(skip)]
    pub span: Span,
}

/// One build of a build-list or build-graph.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BatchTask {
    /// The build's identifier, unique in the batch.
    pub identifier: Spanned<String>,
    /// Another buildspec file for this build (this file when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buildspec: Option<Spanned<String>>,
    /// Overrides of the build environment.
    #[serde(default)]
    pub env: BatchEnv,
    /// Identifiers of builds that must finish first (build-graph).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Option<Vec<Spanned<String>>>")]
    pub depend_on: Vec<Spanned<String>>,
    /// A failure of this build does not fail the batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_failure: Option<Spanned<YesNo>>,
    /// Session Manager access (recorded, not acted on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug_session: Option<Spanned<YesNo>>,
}

/// A batch build's environment overrides. Image, compute type and fleet are recorded, not acted
/// on: the runner uses the machine it runs on.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BatchEnv {
    /// Compute type (recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_type: Option<Spanned<String>>,
    /// Image (recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Spanned<String>>,
    /// Privileged mode (recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged_mode: Option<Spanned<YesNo>>,
    /// Environment type (recorded).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<Spanned<String>>,
    /// Reserved-capacity fleet (recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<Spanned<String>>,
    /// Variables for this build, over the buildspec's own.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "Option<IndexMap<String, Spanned<ScalarText>>>")]
    pub variables: IndexMap<String, Spanned<ScalarText>>,
}

/// `build-matrix`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BuildMatrix {
    /// Settings shared by every build of the matrix.
    #[serde(default, rename = "static")]
    pub static_: MatrixStatic,
    /// The lists whose Cartesian product makes the builds.
    #[serde(default)]
    pub dynamic: MatrixDynamic,
}

/// `build-matrix.static`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MatrixStatic {
    /// A failure of these builds does not fail the batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_failure: Option<Spanned<YesNo>>,
    /// Environment shared by every build.
    #[serde(default)]
    pub env: BatchEnv,
    /// Session Manager access (recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug_session: Option<Spanned<YesNo>>,
}

/// `build-matrix.dynamic`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MatrixDynamic {
    /// Buildspec files, one build each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Option<Vec<Spanned<String>>>")]
    pub buildspec: Vec<Spanned<String>>,
    /// Environment lists.
    #[serde(default)]
    pub env: MatrixDynamicEnv,
}

/// `build-matrix.dynamic.env`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MatrixDynamicEnv {
    /// Compute types (recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Option<Vec<Spanned<String>>>")]
    pub compute_type: Vec<Spanned<String>>,
    /// Images (recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Option<Vec<Spanned<String>>>")]
    pub image: Vec<Spanned<String>>,
    /// Variables, each with its list of values.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "Option<IndexMap<String, Vec<Spanned<ScalarText>>>>")]
    pub variables: IndexMap<String, Vec<Spanned<ScalarText>>>,
}

/// `build-fanout`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BuildFanout {
    /// How many identical builds.
    pub parallelism: Spanned<u32>,
    /// A failure of these builds does not fail the batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_failure: Option<Spanned<YesNo>>,
}
