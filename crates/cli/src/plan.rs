//! `buildspec plan`: the dry run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use buildspec::model::{ArtifactSet, YesNo};
use buildspec::{Next, Options, Plan};
use runner::env::{self, BuildContext, Source, Variable};
use serde::Serialize;

use crate::args::{Format, PlanArgs};
use crate::error::CliError;
use crate::{exit_codes, write_stdout};

#[derive(Serialize)]
struct PlanOutput<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    source_dir: String,
    project: &'a str,
    environment: &'a [Variable],
    warnings: Vec<String>,
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(crate) fn run(args: &PlanArgs) -> Result<u8, CliError> {
    let file = args.build.buildspec(args.file.as_deref());
    let checked = buildspec::check_file(
        &file,
        &Options {
            strict: args.build.strict,
        },
    )?;
    let Some(plan) = checked.plan() else {
        eprint!("{}", checked.render());
        return Err(CliError::Invalid {
            path: checked.source.name.clone(),
        });
    };
    let mut warnings: Vec<String> = checked
        .diagnostics
        .iter()
        .map(|d| {
            let at = d
                .span
                .map(|s| format!(":{}:{}", s.line, s.column))
                .unwrap_or_default();
            format!("{}{at}: {}", checked.source.name, d.message)
        })
        .collect();

    let source_dir = absolute(&args.build.source_dir());
    let project = env::project_name(args.build.project.as_deref(), &source_dir);
    let context = BuildContext {
        project,
        source_dir: source_dir.display().to_string(),
        initiator: env::initiator(),
        region: None,
        ..BuildContext::default()
    };
    let mut layers = args.build.layers()?;
    layers.codebuild = env::codebuild_variables(&context);
    let spec_env = checked
        .buildspec
        .as_ref()
        .map(|b| b.env.clone())
        .unwrap_or_default();
    let (variables, env_warnings) = env::resolve(&spec_env, &layers);
    warnings.extend(env_warnings.into_iter().map(|w| w.message));

    let text = match args.format {
        Format::Json => {
            let output = PlanOutput {
                plan: &plan,
                source_dir: source_dir.display().to_string(),
                project: &context.project,
                environment: &variables,
                warnings,
            };
            let mut text = serde_json::to_string_pretty(&output).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Text => render(
            &plan,
            &source_dir,
            &context.project,
            &variables,
            &warnings,
            args.all_env,
        ),
    };
    write_stdout(&text)?;
    Ok(exit_codes::SUCCESS)
}

fn flag(value: Option<&buildspec::Spanned<YesNo>>) -> bool {
    value.is_some_and(|v| v.value.0)
}

/// The winning layer, what it refers to, and the layers it overrides.
fn describe_source(var: &Variable) -> String {
    let mut source = var.source.label().to_owned();
    if let Some(reference) = &var.reference {
        let _ = write!(source, " {reference}");
    }
    if !var.shadows.is_empty() {
        let labels: Vec<&str> = var.shadows.iter().map(|s| s.label()).collect();
        let _ = write!(source, " (over {})", labels.join(", "));
    }
    source
}

fn shown_value(var: &Variable) -> String {
    if var.secret {
        return "***".to_owned();
    }
    match &var.value {
        Some(v) if v.is_empty() => "\"\"".to_owned(),
        Some(v) => v.replace('\n', "\\n"),
        None => "(assigned when the build starts)".to_owned(),
    }
}

fn indent_command(text: &str, line: u32) -> String {
    let mut out = String::new();
    for (i, l) in text.trim_end_matches('\n').split('\n').enumerate() {
        if i == 0 {
            let _ = writeln!(out, "    {line:>4}  {l}");
        } else {
            let _ = writeln!(out, "          {l}");
        }
    }
    out
}

fn render_set(out: &mut String, id: &str, set: &ArtifactSet) {
    let files: Vec<&str> = set.files.0.iter().map(|f| f.as_str()).collect();
    let _ = writeln!(
        out,
        "  {id}: {}",
        if files.is_empty() {
            "(no files)".to_owned()
        } else {
            files.join(", ")
        }
    );
    if let Some(base) = &set.base_directory {
        let _ = writeln!(out, "      base-directory: {}", base.as_str());
    }
    if flag(set.discard_paths.as_ref()) {
        let _ = writeln!(out, "      discard-paths: yes");
    }
    if !set.exclude_paths.0.is_empty() {
        let excluded: Vec<&str> = set.exclude_paths.0.iter().map(|f| f.as_str()).collect();
        let _ = writeln!(out, "      exclude-paths: {}", excluded.join(", "));
    }
    if let Some(name) = &set.name {
        let _ = writeln!(
            out,
            "      name: {} (evaluated by the shell at upload)",
            name.as_str()
        );
    }
    if flag(set.enable_symlinks.as_ref()) {
        let _ = writeln!(out, "      enable-symlinks: yes");
    }
    if let Some(prefix) = &set.s3_prefix {
        let _ = writeln!(out, "      s3-prefix: {}", prefix.as_str());
    }
}

pub(crate) fn render(
    plan: &Plan,
    source_dir: &Path,
    project: &str,
    variables: &[Variable],
    warnings: &[String],
    all_env: bool,
) -> String {
    let mut out = String::new();
    let state = if plan.session_state {
        "variables and directory carry over between commands"
    } else {
        "every command in a fresh shell (version 0.1)"
    };
    let _ = writeln!(
        out,
        "Plan for {} (version {}, shell {}; {state})",
        plan.file,
        plan.version.as_str(),
        plan.shell.program()
    );
    let _ = writeln!(out, "Source directory: {}", source_dir.display());
    let _ = writeln!(out, "Project: {project}");
    if plan.shell.is_windows() {
        let _ = writeln!(
            out,
            "Note: {} is a Windows shell; a local run needs it on the PATH",
            plan.shell.program()
        );
    }
    for warning in warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out.push('\n');

    if let Some(batch) = &plan.batch {
        let _ = writeln!(
            out,
            "Batch ({}, fast-fail {}): {} to start",
            batch.kind,
            if batch.fast_fail { "yes" } else { "no" },
            if batch.builds.len() == 1 {
                "1 build".to_owned()
            } else {
                format!("{} builds", batch.builds.len())
            }
        );
        for build in &batch.builds {
            let mut line = format!("  {}", build.identifier);
            if let Some(b) = &build.buildspec {
                let _ = write!(line, "  buildspec={b}");
            }
            for (k, v) in &build.variables {
                let _ = write!(line, "  {k}={v}");
            }
            if !build.depend_on.is_empty() {
                let _ = write!(line, "  after {}", build.depend_on.join(", "));
            }
            if build.ignore_failure {
                line.push_str("  (ignore-failure)");
            }
            // Image and compute type are CodeBuild's; recorded, not acted on.
            if let Some(image) = &build.image {
                let _ = write!(line, "  image={image}");
            }
            if let Some(compute) = &build.compute_type {
                let _ = write!(line, "  compute-type={compute}");
            }
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }

    let _ = writeln!(out, "Phases");
    for phase in &plan.phases {
        let mut header = format!("  {}", phase.name.upper());
        if !phase.present {
            header.push_str("  (absent: reported SUCCEEDED, runs nothing)");
        } else {
            if let Some(user) = &phase.run_as {
                let _ = write!(header, "  run-as {user}");
            }
            if let Some(on_failure) = &phase.on_failure {
                let _ = write!(header, "  on-failure {}", on_failure.to_text());
            }
        }
        let _ = writeln!(out, "{header}");
        for (runtime, version) in &phase.runtime_versions {
            let _ = writeln!(
                out,
                "    runtime {runtime} {version} (not installed: the machine's own is used)"
            );
        }
        for command in &phase.commands {
            out.push_str(&indent_command(&command.text, command.line));
        }
        if !phase.finally.is_empty() {
            let _ = writeln!(out, "    finally:");
            for command in &phase.finally {
                out.push_str(&indent_command(&command.text, command.line));
            }
        }
    }
    let upload = if plan.artifacts.is_empty() {
        "  (no artifacts)"
    } else {
        ""
    };
    let _ = writeln!(out, "  UPLOAD_ARTIFACTS{upload}");
    for (id, set) in &plan.artifacts {
        render_set(&mut out, &format!("  {id}"), set);
    }
    for (name, group) in &plan.reports {
        let files: Vec<&str> = group.files.0.iter().map(|f| f.as_str()).collect();
        let format = group.format().name();
        let _ = writeln!(out, "    report {name} ({format}): {}", files.join(", "));
    }
    if let Some(cache) = &plan.cache {
        let paths: Vec<&str> = cache.paths.0.iter().map(|p| p.as_str()).collect();
        let _ = writeln!(
            out,
            "  Cache: {}",
            if paths.is_empty() {
                "(no paths)".to_owned()
            } else {
                paths.join(", ")
            }
        );
        if let Some(key) = &cache.key {
            let _ = writeln!(out, "    key: {} (evaluated by the shell)", key.as_str());
        }
        if !cache.fallback_keys.is_empty() {
            let keys: Vec<&str> = cache.fallback_keys.iter().map(|k| k.as_str()).collect();
            let _ = writeln!(out, "    fallback-keys: {}", keys.join(", "));
        }
        if let Some(action) = &cache.action {
            let action = match action.value {
                buildspec::model::CacheAction::Restore => "restore only",
                buildspec::model::CacheAction::Save => "save only",
            };
            let _ = writeln!(out, "    action: {action}");
        }
    }
    if !plan.exported_variables.is_empty() {
        let _ = writeln!(
            out,
            "  Exported variables (final values): {}",
            plan.exported_variables.join(", ")
        );
    }
    out.push('\n');

    let _ = writeln!(out, "Transitions");
    let _ = writeln!(out, "  {:<16} {:<18} on failure", "phase", "on success");
    for phase in &plan.phases {
        let mut failure = phase.next_on_failure.as_str().to_owned();
        if phase.retries > 0 {
            failure = format!("retry up to {}x, then {failure}", phase.retries);
        }
        if phase.next_on_failure == Next::Finalizing {
            failure.push_str(" (no upload)");
        }
        let _ = writeln!(
            out,
            "  {:<16} {:<18} {failure}",
            phase.name.upper(),
            phase.next_on_success.as_str()
        );
    }
    let _ = writeln!(
        out,
        "  {:<16} {:<18} FINALIZING (the build fails)",
        "UPLOAD_ARTIFACTS", "FINALIZING"
    );
    let _ = writeln!(
        out,
        "  A failed command sets CODEBUILD_BUILD_SUCCEEDING=0 for everything that still runs."
    );
    out.push('\n');

    let _ = writeln!(
        out,
        "Environment (highest first: runner, --env, --env-file, codebuild, buildspec, parameter-store, secrets-manager, inherited, default)"
    );
    let shown: Vec<&Variable> = variables
        .iter()
        .filter(|v| all_env || v.source != Source::Inherited)
        .collect();
    let hidden = variables.len() - shown.len();
    let sources: Vec<String> = shown.iter().map(|v| describe_source(v)).collect();
    let name_width = shown
        .iter()
        .map(|v| v.name.len())
        .max()
        .unwrap_or(0)
        .min(32);
    let source_width = sources.iter().map(String::len).max().unwrap_or(0).min(40);
    for (var, source) in shown.iter().zip(&sources) {
        let _ = writeln!(
            out,
            "  {:<name_width$}  {:<source_width$}  {}",
            var.name,
            source,
            shown_value(var)
        );
    }
    if hidden > 0 {
        let _ = writeln!(
            out,
            "  (+ {hidden} inherited variables; --all-env lists them)"
        );
    }
    out
}
