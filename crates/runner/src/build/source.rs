//! DOWNLOAD_SOURCE: the buildspec read and checked, the providers' values, the environment,
//! the users of `run-as`, and every command's script written.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use buildspec::PhaseName;
use buildspec::plan::PlannedPhase;
use indexmap::IndexMap;

use super::{Build, env_dump, git_head, script_id};
use crate::build::shell::state::SessionState;
use crate::build::shell::{SessionKind, SessionSpec};
use crate::env::mask::Masker;
use crate::env::{self, BuildContext, Source};
use crate::events::Phase;
use crate::outcome::{Context, ContextCode, Status};
use crate::platform;
use crate::store::StateError;

impl Build<'_> {
    /// Reads and checks the buildspec, prepares the environment and writes the first record.
    /// False when the build cannot go on; an error when its record cannot be written.
    pub(super) fn download_source(&mut self) -> Result<bool, StateError> {
        self.begin_phase(Phase::DownloadSource, 1);
        let source = self.recorder.record().source.clone();
        self.message(&format!("CODEBUILD_SRC_DIR={source}"));
        let yaml_location = std::path::absolute(&self.options.buildspec)
            .unwrap_or_else(|_| self.options.buildspec.clone());
        self.message(&format!("YAML location is {}", yaml_location.display()));
        if let Some(outside) = self.links_out_of_source() {
            self.invalid = true;
            self.fail_download(
                ContextCode::YamlFileError,
                &format!(
                    "{} is a link out of the source directory (to {}): a buildspec in the source \
                     must lie in it",
                    self.options.buildspec.display(),
                    outside.display()
                ),
            );
            return Ok(false);
        }
        let checked = match buildspec::check_file(
            &self.options.buildspec,
            &buildspec::Options {
                strict: self.options.strict,
            },
        ) {
            Ok(checked) => checked,
            Err(error) => {
                let message = match &error {
                    buildspec::ReadError::Io { source, .. }
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        "YAML file does not exist".to_owned()
                    }
                    other => other.to_string(),
                };
                self.invalid = true;
                self.fail_download(
                    ContextCode::YamlFileError,
                    &format!("{message}: {}", self.options.buildspec.display()),
                );
                return Ok(false);
            }
        };
        // The copy is masked with the values known so far (`--mask`, AWS credentials), and again
        // below once the parameters and secrets are known.
        let _ = crate::store::write_private(
            &self.recorder.dir().join("buildspec.yml"),
            self.masker.text(&checked.source.text).as_bytes(),
        );
        if !checked.diagnostics.is_empty() {
            self.diagnostics = checked.render();
            for d in &checked.diagnostics {
                let at = d
                    .span
                    .map(|s| format!(":{}:{}", s.line, s.column))
                    .unwrap_or_default();
                let severity = if d.is_error() { "error" } else { "warning" };
                self.message(&format!(
                    "{}{at}: {severity}[{}]: {}",
                    checked.source.name,
                    d.code.as_str(),
                    d.message
                ));
            }
        }
        let Some(plan) = checked.plan() else {
            self.invalid = true;
            let first = checked.diagnostics.iter().find(|d| d.is_error());
            let message = first.map_or_else(String::new, |d| match d.span {
                Some(s) => format!("{} at line {} column {}", d.message, s.line, s.column),
                None => d.message.clone(),
            });
            self.fail_download(ContextCode::YamlFileError, &message);
            return Ok(false);
        };
        let spec_env = checked
            .buildspec
            .as_ref()
            .map(|b| b.env.clone())
            .unwrap_or_default();
        self.message("Processing environment variables");
        // Values from Parameter Store and Secrets Manager, masked everywhere from now on.
        let mut secret_values: IndexMap<String, String> = IndexMap::new();
        for (name, parameter) in &spec_env.parameter_store {
            match self.options.providers.parameter(&parameter.value) {
                Ok(value) => {
                    secret_values.insert(name.clone(), value.to_owned());
                }
                Err(message) => {
                    self.fail_download(
                        ContextCode::ClientError,
                        &format!("{message} (for {name}; give it with --parameters FILE)"),
                    );
                    return Ok(false);
                }
            }
        }
        for (name, reference) in &spec_env.secrets_manager {
            match self.options.providers.secret(&reference.value) {
                Ok(value) => {
                    secret_values.insert(name.clone(), value);
                }
                Err(message) => {
                    self.fail_download(
                        ContextCode::ClientError,
                        &format!("{message} (for {name}; give it with --secrets FILE)"),
                    );
                    return Ok(false);
                }
            }
        }
        // The `--mask` values and AWS credentials, masked since the build began.
        let known = crate::env::mask::known_secrets(&self.options.layers, &self.options.mask);
        // A JSON secret read whole may be taken apart by the build (`jq .password`): its string
        // values are masked one by one too.
        // Short values (an id, `true`) would mask common words: only values of 6 or more
        // characters are taken.
        let leaves: Vec<String> = secret_values
            .values()
            .flat_map(|v| json_strings(v))
            .filter(|s| s.chars().count() >= 6)
            .collect();
        if !secret_values.is_empty() {
            self.masker = Masker::new(
                secret_values
                    .values()
                    .chain(known.iter())
                    .chain(leaves.iter()),
            );
            // A parameter's value may be written in the buildspec too.
            let masked = self.masker.text(&checked.source.text).into_owned();
            let _ = crate::store::write_private(&self.recorder.dir().join("buildspec.yml"), masked);
        }
        self.secret_names = secret_values.keys().cloned().collect();
        if plan.shell.is_windows() {
            self.fail_download(
                ContextCode::ClientError,
                &format!(
                    "{} is a Windows shell; the local runner runs POSIX shells",
                    plan.shell.program()
                ),
            );
            return Ok(false);
        }
        let install = plan.phase(PhaseName::Install);
        if install.runtime_versions.is_empty() {
            self.message("No runtime version selected in buildspec.");
        } else {
            let wanted: Vec<String> = install
                .runtime_versions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            self.message(&format!(
                "Skipping install of runtimes. Runtime version selection is not supported by this build image (the local machine's own are used; requested: {})",
                wanted.join(", ")
            ));
        }
        self.message(&format!("Moving to directory {source}"));
        let present: Vec<&PlannedPhase> = plan.phases.iter().filter(|p| p.present).collect();
        self.message(&format!("Phases found in YAML: {}", present.len()));
        let lines: Vec<String> = present
            .iter()
            .map(|p| format!(" {}: {} commands", p.name.upper(), p.commands.len()))
            .collect();
        for line in lines {
            self.message(&line);
        }

        // The environment: the layers, then CodeBuild's variables with this build's values.
        let context = BuildContext {
            project: self.recorder.record().project.clone(),
            source_dir: source.clone(),
            initiator: self.options.initiator.clone(),
            region: env::region(&self.options.layers, &spec_env),
            build_uuid: Some(self.recorder.record().uuid.clone()),
            build_number: Some(self.recorder.record().number),
            start_time_ms: Some(
                self.recorder
                    .record()
                    .start_time
                    .as_millisecond()
                    .try_into()
                    .unwrap_or(0),
            ),
            source_version: git_head(Path::new(&source)),
            batch_identifier: self.options.batch.as_ref().map(|b| b.1.clone()),
        };
        let mut layers = self.options.layers.clone();
        layers.codebuild = env::codebuild_variables(&context);
        let (variables, warnings) = env::resolve(&spec_env, &layers);
        for w in warnings {
            self.message(&format!("warning: {}", w.message));
        }
        self.shell_state = SessionState {
            variables: variables
                .into_iter()
                // PWD and its kin belong to the shell, which sets them from its directory.
                .filter(|v| !crate::build::shell::state::SHELL_OWNED.contains(&v.name.as_str()))
                .filter_map(|v| {
                    let value = match v.source {
                        Source::ParameterStore | Source::SecretsManager => {
                            secret_values.get(&v.name).cloned()
                        }
                        _ => v.value,
                    };
                    value.map(|value| (v.name, value))
                })
                .collect(),
            cwd: source,
        };
        self.own_identity =
            ["HOME", "USER", "LOGNAME"].map(|n| self.shell_state.variables.get(n).cloned());
        let dump = env_dump(&self.shell_state, &self.secret_names, &self.masker);
        self.write_dump("start.env", &dump);
        // Version 0.1 carries nothing between commands, whatever session was asked for.
        let kind = if plan.session_state {
            self.options.session
        } else {
            if self.options.session == SessionKind::Persistent {
                self.message("Version 0.1 runs every command in a fresh shell: --session persistent does not apply");
            }
            SessionKind::Compat
        };
        if let Some((batch, identifier)) = &self.options.batch {
            self.message(&format!("Build {identifier} of {batch}"));
        } else if let Some(batch) = &plan.batch {
            self.message(&format!(
                "This buildspec has a batch section ({} builds); `buildspec run` runs its phases once, as a single build",
                batch.builds.len()
            ));
        }
        // run-as: each user is looked up now, so that a build that cannot switch users fails
        // before anything runs. The runner's own user needs no switch.
        let me = platform::current_user();
        let mut names: Vec<&str> = plan
            .phases
            .iter()
            .filter_map(|p| p.run_as.as_deref())
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            if me.as_deref() == Some(name) {
                continue;
            }
            if !platform::is_root() {
                self.fail_download(
                    ContextCode::ClientError,
                    &format!(
                        "run-as {name} needs the runner to run as root; it runs as {}",
                        me.as_deref().unwrap_or("another user")
                    ),
                );
                return Ok(false);
            }
            match platform::lookup_user(name) {
                Ok(user) => {
                    self.users.insert(name.to_owned(), user);
                }
                Err(message) => {
                    self.fail_download(ContextCode::ClientError, &message);
                    return Ok(false);
                }
            }
        }
        // Each run-as user's phases get a runtime folder of their own.
        let users: Vec<&platform::RunAs> = self.users.values().collect();
        if let Err(e) = self.runtime.add_users(&self.recorder.record().uuid, &users) {
            self.fail_download(
                ContextCode::ClientError,
                &format!("cannot make the runtime folders of the run-as users: {e}"),
            );
            return Ok(false);
        }
        self.recorder.edit().session = kind.as_str().to_owned();
        // Every compat command's script is written now, into the runtime folder of its phase's
        // user, so that running a command costs no file writes (a persistent session gets each
        // list as one script when it runs). The record keeps them all in one file.
        let mut record_scripts = String::new();
        let mut written = 0usize;
        for phase in &plan.phases {
            let user = phase.run_as.as_deref().and_then(|n| self.users.get(n));
            let dir = self.runtime.dir(user);
            for (finally, list) in [(false, &phase.commands), (true, &phase.finally)] {
                for (index, command) in list.iter().enumerate() {
                    let id = script_id(phase.name, finally, index);
                    let _ = writeln!(
                        record_scripts,
                        "#### {id}.sh (buildspec line {})",
                        command.line
                    );
                    let text = crate::build::shell::script(&command.text, kind);
                    record_scripts.push_str(&text);
                    if kind == SessionKind::Persistent {
                        continue;
                    }
                    // A buildspec of many thousands of commands takes a while to write out: a
                    // stop request is not kept waiting for it.
                    written += 1;
                    if written.is_multiple_of(1024)
                        && let Some(signal) = self.stop.take()
                    {
                        self.stopped = Some(signal);
                        self.end_phase(
                            Phase::DownloadSource,
                            Status::Stopped,
                            Some(Context::stopped_by(signal)),
                            true,
                        );
                        return Ok(false);
                    }
                    let name = format!("{id}.sh");
                    if let Err(e) =
                        crate::build::shell::runtime::write(&dir, user, &name, text.as_bytes())
                    {
                        self.end_phase(
                            Phase::DownloadSource,
                            Status::Fault,
                            Some(Context::new(
                                ContextCode::ClientError,
                                format!(
                                    "cannot write the command scripts in {}: {e}",
                                    dir.display()
                                ),
                            )),
                            true,
                        );
                        return Ok(false);
                    }
                }
            }
        }
        let _ = crate::store::write_private(
            &self.recorder.dir().join("scripts.sh"),
            self.masker.text(&record_scripts).as_bytes(),
        );
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.spec = Some(SessionSpec {
            shell: crate::build::shell::resolve_shell(
                plan.shell.program(),
                self.shell_state.variables.get("PATH").map(String::as_str),
            ),
            kind,
            stateless: !plan.session_state,
            scripts: self.runtime.dir(None),
            name: self.options.buildspec.file_name().map_or_else(
                || "buildspec".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            ),
            user: None,
            token: token.clone(),
        });
        if kind == SessionKind::Compat {
            self.pump.error_lines = self
                .spec
                .as_ref()
                .map(|spec| crate::build::shell::ErrorLines::new(&spec.name));
        }
        if kind == SessionKind::Persistent {
            self.pump.marker = Some(
                memchr::memmem::Finder::new(format!("\x1ebs:{token}:").as_bytes()).into_owned(),
            );
        }
        self.plan = Some(std::rc::Rc::new(plan));
        // A build whose record cannot be written starts nothing, not even a cache restore.
        self.record_started()?;
        // The cache is restored as the first phase's user, who will use what it restores: its
        // key is evaluated and its files written as that user.
        let first = self
            .plan
            .as_ref()
            .and_then(|p| p.phase(PhaseName::Install).run_as.clone());
        self.use_user(first.as_deref());
        self.restore_cache();
        self.end_phase(Phase::DownloadSource, Status::Succeeded, None, true);
        Ok(true)
    }
}

impl Build<'_> {
    /// Where the buildspec leads, when it lies in the source directory and is a link (or behind
    /// one) to a file outside it. The source is the build's input: a checkout whose
    /// `buildspec.yml` links to `/etc/shadow`, or to the runner's credentials, would have the
    /// runner read that file and quote its lines in diagnostics, in a log others may read. A
    /// buildspec named outside the source is the user's own choice.
    fn links_out_of_source(&self) -> Option<std::path::PathBuf> {
        let source = std::path::absolute(&self.options.source_dir).ok()?;
        let given = std::path::absolute(&self.options.buildspec).ok()?;
        let climbs = given
            .components()
            .any(|c| c == std::path::Component::ParentDir);
        if climbs || !given.starts_with(&source) {
            return None;
        }
        let real = given.canonicalize().ok()?;
        let real_source = source.canonicalize().ok()?;
        (!real.starts_with(&real_source)).then_some(real)
    }
}

/// The string values of a JSON object or array, at any depth; nothing for other text.
fn json_strings(text: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if text.trim_start().starts_with(['{', '['])
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
    {
        walk(&value, &mut out);
    }
    out
}
