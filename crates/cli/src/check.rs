//! `buildspec check`: find buildspecs, check them, report every problem.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use buildspec::{Checked, Options};
use serde::Serialize;

use crate::args::{CheckArgs, Format};
use crate::error::CliError;
use crate::{exit_codes, write_stdout};

/// The files to check: named files as they are, directories searched for buildspecs.
pub(crate) fn discover(paths: &[PathBuf], excludes: &[String]) -> Result<Vec<PathBuf>, CliError> {
    let default = [PathBuf::from("buildspec.yml")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|_| CliError::Missing {
            path: path.display().to_string(),
        })?;
        if !meta.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut overrides = ignore::overrides::OverrideBuilder::new(path);
        for glob in excludes {
            overrides
                .add(&format!("!{glob}"))
                .map_err(|e| CliError::Exclude {
                    glob: glob.clone(),
                    // The glob is added negated; show the user's own.
                    reason: e
                        .to_string()
                        .replace(&format!("'!{glob}'"), &format!("'{glob}'")),
                })?;
        }
        let overrides = overrides.build().map_err(|e| CliError::Exclude {
            glob: excludes.join(" "),
            reason: e.to_string(),
        })?;
        let mut found = Vec::new();
        // Hidden directories are searched: `.codebuild/` is a common home for buildspecs.
        let walker = ignore::WalkBuilder::new(path)
            .hidden(false)
            .filter_entry(|e| e.file_name() != ".git")
            .overrides(overrides)
            .build();
        for entry in walker {
            let entry = entry.map_err(|e| CliError::Walk {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let p = entry.path();
            let is_yaml = p.extension().is_some_and(|e| e == "yml" || e == "yaml");
            if entry.file_type().is_some_and(|t| t.is_file()) && is_yaml && looks_like_buildspec(p)
            {
                found.push(p.to_path_buf());
            }
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

fn looks_like_buildspec(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() <= buildspec::MAX_SOURCE_BYTES as u64)
        && std::fs::read_to_string(path).is_ok_and(|t| buildspec::looks_like_buildspec(&t))
}

#[derive(Serialize)]
struct FileReport<'a> {
    path: &'a str,
    valid: bool,
    errors: usize,
    warnings: usize,
    diagnostics: &'a [buildspec::Diagnostic],
}

#[derive(Serialize)]
struct Report<'a> {
    valid: bool,
    files: Vec<FileReport<'a>>,
}

pub(crate) fn run(args: &CheckArgs) -> Result<u8, CliError> {
    let files = discover(&args.paths, &args.exclude)?;
    let options = Options {
        strict: args.strict,
    };
    let mut checked: Vec<Checked> = Vec::with_capacity(files.len());
    for file in &files {
        match buildspec::check_file(file, &options) {
            Ok(c) => checked.push(c),
            // A file that cannot be read is reported like a file with an error.
            Err(error) => checked.push(unreadable(file, &error)),
        }
    }
    let valid = checked.iter().all(|c| !c.has_errors());
    let text = match args.format {
        Format::Json => {
            let report = Report {
                valid,
                files: checked
                    .iter()
                    .map(|c| {
                        let (errors, warnings) = c.counts();
                        FileReport {
                            path: &c.source.name,
                            valid: errors == 0,
                            errors,
                            warnings,
                            diagnostics: &c.diagnostics,
                        }
                    })
                    .collect(),
            };
            let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Text => render_text(&checked),
    };
    write_stdout(&text)?;
    Ok(if valid {
        exit_codes::SUCCESS
    } else {
        exit_codes::USAGE
    })
}

fn unreadable(file: &Path, error: &buildspec::ReadError) -> Checked {
    let code = match error {
        buildspec::ReadError::TooLarge { .. } => buildspec::Code::YamlBudget,
        _ => buildspec::Code::NotABuildspec,
    };
    Checked {
        source: buildspec::SourceFile::new(file.display().to_string(), ""),
        buildspec: None,
        diagnostics: vec![buildspec::Diagnostic::error(code, None, error.to_string())],
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub(crate) fn render_text(checked: &[Checked]) -> String {
    let mut out = String::new();
    let (mut bad, mut total_errors, mut total_warnings) = (0, 0, 0);
    for c in checked {
        let (errors, warnings) = c.counts();
        total_errors += errors;
        total_warnings += warnings;
        if errors == 0 {
            if warnings == 0 {
                let _ = writeln!(out, "ok      {}", c.source.name);
            } else {
                let _ = writeln!(
                    out,
                    "ok      {} ({})",
                    c.source.name,
                    plural(warnings, "warning")
                );
            }
        } else {
            bad += 1;
            let mut counts = plural(errors, "error");
            if warnings > 0 {
                let _ = write!(counts, ", {}", plural(warnings, "warning"));
            }
            let _ = writeln!(out, "invalid {} ({counts})", c.source.name);
        }
        if !c.diagnostics.is_empty() {
            out.push('\n');
            out.push_str(&c.render());
            out.push('\n');
        }
    }
    if checked.is_empty() {
        out.push_str("no buildspec files found\n");
    } else if checked.len() > 1 || bad > 0 {
        let _ = writeln!(
            out,
            "checked {}: {} valid, {} invalid ({}, {})",
            plural(checked.len(), "file"),
            checked.len() - bad,
            bad,
            plural(total_errors, "error"),
            plural(total_warnings, "warning"),
        );
    }
    out
}
