//! The build's environment: the layers it is made of, their precedence, and where each variable
//! came from (decisions §5).

pub mod mask;
pub mod secrets;

use std::path::Path;

use buildspec::model::Env;
use serde::Serialize;

/// Where a variable's value comes from, highest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The runner's own build state (`CODEBUILD_BUILD_SUCCEEDING`, `CODEBUILD_LAST_EXIT`): nothing
    /// overrides it.
    Runner,
    /// `--env NAME=VALUE`, like a start-build override.
    Override,
    /// `--env-file FILE`, like project variables.
    EnvFile,
    /// A CodeBuild variable with its local value.
    Codebuild,
    /// The buildspec's `env.variables`.
    Buildspec,
    /// The buildspec's `env.parameter-store`.
    ParameterStore,
    /// The buildspec's `env.secrets-manager`.
    SecretsManager,
    /// The runner's own environment.
    Inherited,
    /// A default for a variable nobody set (`AWS_REGION`).
    Default,
}

impl Source {
    /// How the source is named in plans and records.
    pub fn label(self) -> &'static str {
        match self {
            Source::Runner => "runner",
            Source::Override => "--env",
            Source::EnvFile => "--env-file",
            Source::Codebuild => "codebuild",
            Source::Buildspec => "buildspec",
            Source::ParameterStore => "parameter-store",
            Source::SecretsManager => "secrets-manager",
            Source::Inherited => "inherited",
            Source::Default => "default",
        }
    }
}

/// One variable of the resolved environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variable {
    /// Its name.
    pub name: String,
    /// Its value; `None` when it is only known once the build starts (a build id) or is fetched
    /// from a secret store.
    pub value: Option<String>,
    /// The layer whose value wins.
    pub source: Source,
    /// Lower layers that also set it, and lose.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadows: Vec<Source>,
    /// Whether the value is a secret, shown as `***` everywhere.
    pub secret: bool,
    /// What the value refers to when it is not literal (a parameter name, a secret reference).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The layers an environment is made from, apart from the buildspec's own.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    /// `--env` assignments, in the order given (a later one wins).
    pub overrides: Vec<(String, String)>,
    /// `--env-file` assignments.
    pub env_file: Vec<(String, String)>,
    /// CodeBuild's variables; `None` for values assigned when the build starts.
    pub codebuild: Vec<(String, Option<String>)>,
    /// The inherited environment (empty with `--clean-env`).
    pub inherited: Vec<(String, String)>,
}

impl Layers {
    /// The layers a build is asked with: `--env` assignments, the `--env-file`, and the
    /// runner's own environment unless `clean_env`.
    pub fn given(
        env: &[String],
        env_file: Option<&std::path::Path>,
        clean_env: bool,
    ) -> Result<Layers, EnvError> {
        Ok(Layers {
            overrides: env
                .iter()
                .map(|e| parse_assignment(e))
                .collect::<Result<_, _>>()?,
            env_file: match env_file {
                Some(path) => parse_env_file(path)?,
                None => Vec::new(),
            },
            codebuild: Vec::new(),
            inherited: if clean_env {
                Vec::new()
            } else {
                std::env::vars().collect()
            },
        })
    }
}

/// Variables whose value the runner owns while the build runs.
pub const RUNNER_OWNED: [&str; 2] = ["CODEBUILD_BUILD_SUCCEEDING", "CODEBUILD_LAST_EXIT"];

/// A problem with the environment the user gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvWarning {
    /// The variable.
    pub name: String,
    /// What is wrong.
    pub message: String,
}

/// Resolves the environment: each name once, with the layer that wins and the ones it shadows.
/// Variables are sorted by name.
pub fn resolve(env: &Env, layers: &Layers) -> (Vec<Variable>, Vec<EnvWarning>) {
    let mut warnings = Vec::new();
    // Highest precedence first; a name's first entry wins.
    let mut entries: Vec<Variable> = Vec::new();
    let mut push =
        |name: &str, value: Option<String>, source: Source, reference: Option<String>| {
            entries.push(Variable {
                name: name.to_owned(),
                value,
                source,
                shadows: Vec::new(),
                secret: matches!(source, Source::ParameterStore | Source::SecretsManager),
                reference,
            });
        };
    for (name, value) in layers
        .codebuild
        .iter()
        .filter(|(n, _)| RUNNER_OWNED.contains(&n.as_str()))
    {
        push(name, value.clone(), Source::Runner, None);
    }
    for (name, value) in layers.overrides.iter().rev() {
        if RUNNER_OWNED.contains(&name.as_str()) {
            warnings.push(EnvWarning {
                name: name.clone(),
                message: format!(
                    "`{name}` is the runner's own build state; the value given is ignored"
                ),
            });
            continue;
        }
        if name.starts_with("CODEBUILD_") {
            warnings.push(EnvWarning {
                name: name.clone(),
                message: format!("`{name}` overrides a CodeBuild variable"),
            });
        }
        push(name, Some(value.clone()), Source::Override, None);
    }
    for (name, value) in layers.env_file.iter().rev() {
        push(name, Some(value.clone()), Source::EnvFile, None);
    }
    for (name, value) in layers
        .codebuild
        .iter()
        .filter(|(n, _)| !RUNNER_OWNED.contains(&n.as_str()))
    {
        push(name, value.clone(), Source::Codebuild, None);
    }
    for (name, value) in &env.variables {
        push(name, Some(value.value.0.clone()), Source::Buildspec, None);
    }
    for (name, parameter) in &env.parameter_store {
        push(
            name,
            None,
            Source::ParameterStore,
            Some(parameter.value.clone()),
        );
    }
    for (name, reference) in &env.secrets_manager {
        let r = &reference.value;
        let mut text = r.secret_id.clone();
        for part in [&r.json_key, &r.version_stage, &r.version_id] {
            text.push(':');
            text.push_str(part.as_deref().unwrap_or(""));
        }
        push(
            name,
            None,
            Source::SecretsManager,
            Some(text.trim_end_matches(':').to_owned()),
        );
    }
    for (name, value) in &layers.inherited {
        push(name, Some(value.clone()), Source::Inherited, None);
    }
    // Both names default to the region the layers give (by either name), else us-east-1, so
    // that they agree with each other and with CODEBUILD_BUILD_ARN.
    let default_region = region(layers, env).unwrap_or_else(|| "us-east-1".to_owned());
    for name in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        push(name, Some(default_region.clone()), Source::Default, None);
    }
    let mut resolved: indexmap::IndexMap<String, Variable> = indexmap::IndexMap::new();
    for entry in entries {
        match resolved.get_mut(&entry.name) {
            Some(existing) => {
                if existing.source != entry.source && !existing.shadows.contains(&entry.source) {
                    existing.shadows.push(entry.source);
                }
            }
            None => {
                resolved.insert(entry.name.clone(), entry);
            }
        }
    }
    let mut variables: Vec<Variable> = resolved.into_values().collect();
    variables.sort_by(|a, b| a.name.cmp(&b.name));
    (variables, warnings)
}

/// What the CodeBuild variables are made from.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// The project name (`--project`; the source directory's name by default).
    pub project: String,
    /// The source directory, absolute.
    pub source_dir: String,
    /// Who started the build (`$USER`).
    pub initiator: String,
    /// The region, when the environment gives none.
    pub region: Option<String>,
    /// The build's UUID, once the build starts.
    pub build_uuid: Option<String>,
    /// The build's number, once allocated.
    pub build_number: Option<u64>,
    /// The start time in Unix milliseconds, once the build starts.
    pub start_time_ms: Option<u128>,
    /// The checkout's commit, when the source is a git checkout.
    pub source_version: Option<String>,
    /// The batch identifier, in a batch.
    pub batch_identifier: Option<String>,
}

/// The build's region: `AWS_REGION`, else `AWS_DEFAULT_REGION`, from the highest layer that sets
/// one (`--env`, `--env-file`, the buildspec, the inherited environment); `None` for the default.
pub fn region(layers: &Layers, spec: &Env) -> Option<String> {
    let spec_vars: Vec<(String, String)> = spec
        .variables
        .iter()
        .map(|(k, v)| (k.clone(), v.value.0.clone()))
        .collect();
    let ordered: [&[(String, String)]; 4] = [
        &layers.overrides,
        &layers.env_file,
        &spec_vars,
        &layers.inherited,
    ];
    ordered.iter().find_map(|layer| {
        ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|name| {
                // Within a layer the last assignment wins, as it does for the variable itself.
                layer
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
    })
}

/// CodeBuild's variables with their local values (decisions §5); `None` where the value is only
/// known once the build starts.
pub fn codebuild_variables(ctx: &BuildContext) -> Vec<(String, Option<String>)> {
    let region = ctx.region.clone().unwrap_or_else(|| "us-east-1".to_owned());
    let id = ctx
        .build_uuid
        .as_ref()
        .map(|u| format!("{}:{u}", ctx.project));
    let mut vars = vec![
        ("CODEBUILD_BUILD_ID".to_owned(), id.clone()),
        (
            "CODEBUILD_BUILD_ARN".to_owned(),
            id.map(|id| format!("arn:aws:codebuild:{region}:000000000000:build/{id}")),
        ),
        (
            "CODEBUILD_BUILD_NUMBER".to_owned(),
            ctx.build_number.map(|n| n.to_string()),
        ),
        ("CODEBUILD_SRC_DIR".to_owned(), Some(ctx.source_dir.clone())),
        (
            "CODEBUILD_START_TIME".to_owned(),
            ctx.start_time_ms.map(|t| t.to_string()),
        ),
        (
            "CODEBUILD_INITIATOR".to_owned(),
            Some(ctx.initiator.clone()),
        ),
        ("CODEBUILD_LOCAL_BUILD".to_owned(), Some("true".to_owned())),
        (
            "CODEBUILD_BUILD_SUCCEEDING".to_owned(),
            Some("1".to_owned()),
        ),
        ("CODEBUILD_LAST_EXIT".to_owned(), Some("0".to_owned())),
    ];
    if let Some(version) = &ctx.source_version {
        vars.push((
            "CODEBUILD_RESOLVED_SOURCE_VERSION".to_owned(),
            Some(version.clone()),
        ));
        vars.push(("CODEBUILD_SOURCE_VERSION".to_owned(), Some(version.clone())));
    }
    if let Some(identifier) = &ctx.batch_identifier {
        vars.push((
            "CODEBUILD_BATCH_BUILD_IDENTIFIER".to_owned(),
            Some(identifier.clone()),
        ));
    }
    vars
}

/// A `NAME=VALUE` that is not one.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// `--env` without `=`, or with an invalid name.
    #[error("`{text}` is not NAME=VALUE: {reason}")]
    Assignment {
        /// What was given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A line of an env file that is not `NAME=VALUE`.
    #[error("{path}:{line}: `{text}` is not NAME=VALUE: {reason}")]
    FileLine {
        /// The env file.
        path: String,
        /// Its 1-based line.
        line: usize,
        /// The line's text.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The env file cannot be read.
    #[error("cannot read env file {path}: {source}")]
    Read {
        /// The env file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn split_assignment(text: &str) -> Result<(String, String), &'static str> {
    let Some((name, value)) = text.split_once('=') else {
        return Err("there is no `=`");
    };
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err("a name is letters, digits and `_`, not starting with a digit");
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Reads one `--env NAME=VALUE`.
pub fn parse_assignment(text: &str) -> Result<(String, String), EnvError> {
    split_assignment(text).map_err(|reason| EnvError::Assignment {
        text: text.to_owned(),
        reason,
    })
}

/// Reads an env file as `codebuild_build.sh -e` does: `NAME=VALUE` a line, blank lines and `#`
/// comments skipped, quotes kept as written.
pub fn parse_env_file(path: &Path) -> Result<Vec<(String, String)>, EnvError> {
    let text = std::fs::read_to_string(path).map_err(|source| EnvError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let assignment = split_assignment(trimmed.trim_end_matches('\r')).map_err(|reason| {
            EnvError::FileLine {
                path: path.display().to_string(),
                line: i + 1,
                text: line.to_owned(),
                reason,
            }
        })?;
        out.push(assignment);
    }
    Ok(out)
}

/// A build's project (`CODEBUILD_BUILD_ID`'s first part): the one given, else the name of the
/// source directory (`local` for `/`).
pub fn project_name(given: Option<&str>, source_dir: &std::path::Path) -> String {
    if let Some(project) = given {
        return project.to_owned();
    }
    std::path::absolute(source_dir)
        .ok()
        .and_then(|dir| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "local".to_owned())
}

/// Who starts a build (`CODEBUILD_INITIATOR`): `$USER`, else `local`.
pub fn initiator() -> String {
    std::env::var("USER").unwrap_or_else(|_| "local".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_env(yaml: &str) -> Env {
        let checked = buildspec::check(
            buildspec::SourceFile::new("t.yml", yaml),
            &buildspec::Options::default(),
        );
        assert!(!checked.has_errors(), "{}", checked.render());
        checked.buildspec.map(|b| b.env).unwrap_or_default()
    }

    fn find<'a>(vars: &'a [Variable], name: &str) -> &'a Variable {
        vars.iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn precedence_is_override_then_file_then_buildspec_then_inherited() {
        let env = spec_env(
            "version: 0.2\nenv:\n  variables:\n    A: spec\n    B: spec\n    C: spec\n    D: spec\nphases: {}\n",
        );
        let layers = Layers {
            overrides: vec![("A".into(), "cli".into())],
            env_file: vec![("A".into(), "file".into()), ("B".into(), "file".into())],
            codebuild: vec![],
            inherited: vec![("C".into(), "host".into()), ("E".into(), "host".into())],
        };
        let (vars, warnings) = resolve(&env, &layers);
        assert!(warnings.is_empty());
        let a = find(&vars, "A");
        assert_eq!(
            (a.value.as_deref(), a.source),
            (Some("cli"), Source::Override)
        );
        assert_eq!(a.shadows, vec![Source::EnvFile, Source::Buildspec]);
        assert_eq!(find(&vars, "B").value.as_deref(), Some("file"));
        assert_eq!(find(&vars, "C").value.as_deref(), Some("spec"));
        assert_eq!(find(&vars, "C").shadows, vec![Source::Inherited]);
        assert_eq!(find(&vars, "D").source, Source::Buildspec);
        assert_eq!(find(&vars, "E").source, Source::Inherited);
        assert_eq!(
            find(&vars, "AWS_REGION").value.as_deref(),
            Some("us-east-1")
        );
    }

    #[test]
    fn later_override_wins_and_runner_state_cannot_be_overridden() {
        let env = spec_env("version: 0.2\nphases: {}\n");
        let layers = Layers {
            overrides: vec![
                ("X".into(), "1".into()),
                ("X".into(), "2".into()),
                ("CODEBUILD_BUILD_SUCCEEDING".into(), "0".into()),
                ("CODEBUILD_WEBHOOK_TRIGGER".into(), "branch/main".into()),
            ],
            codebuild: vec![("CODEBUILD_BUILD_SUCCEEDING".into(), Some("1".into()))],
            ..Layers::default()
        };
        let (vars, warnings) = resolve(&env, &layers);
        assert_eq!(find(&vars, "X").value.as_deref(), Some("2"));
        assert_eq!(
            find(&vars, "CODEBUILD_BUILD_SUCCEEDING").value.as_deref(),
            Some("1")
        );
        assert_eq!(
            find(&vars, "CODEBUILD_WEBHOOK_TRIGGER").source,
            Source::Override
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn secrets_are_marked_and_carry_their_reference() {
        let env = spec_env(
            "version: 0.2\nenv:\n  parameter-store:\n    TOKEN: /ci/token\n  secrets-manager:\n    PW: db:password\nphases: {}\n",
        );
        let (vars, _) = resolve(&env, &Layers::default());
        let token = find(&vars, "TOKEN");
        assert!(token.secret && token.value.is_none());
        assert_eq!(token.reference.as_deref(), Some("/ci/token"));
        assert_eq!(find(&vars, "PW").reference.as_deref(), Some("db:password"));
    }

    #[test]
    fn env_file_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vars.env");
        std::fs::write(&path, "# comment\n\nA=1\nB=\"quoted\"\n  C=x=y\n").expect("write");
        let vars = parse_env_file(&path).expect("parse");
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"quoted\"".into()),
                ("C".into(), "x=y".into())
            ]
        );
        std::fs::write(&path, "A=1\nnot an assignment\n").expect("write");
        let error = parse_env_file(&path).expect_err("bad line");
        assert!(error.to_string().contains("vars.env:2:"), "{error}");
    }

    #[test]
    fn assignments() {
        assert_eq!(
            parse_assignment("A=b=c").expect("ok"),
            ("A".into(), "b=c".into())
        );
        assert!(parse_assignment("A").is_err());
        assert!(parse_assignment("1A=x").is_err());
        assert!(parse_assignment("A-B=x").is_err());
    }
}
