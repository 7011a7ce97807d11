//! Checks that span several keys: exported secrets, secret references, the batch's shape and its
//! graph.

use std::collections::{HashMap, HashSet};

use crate::diagnostic::{Code, Diagnostic};
use crate::model::{BatchTask, Buildspec};

/// Runs every cross-field check, adding to `out`.
pub(crate) fn validate(spec: &Buildspec, out: &mut Vec<Diagnostic>) {
    exported_variables(spec, out);
    secret_references(spec, out);
    if let Some(batch) = &spec.batch {
        let kinds: Vec<&str> = [
            batch.build_list.as_ref().map(|_| "build-list"),
            batch.build_matrix.as_ref().map(|_| "build-matrix"),
            batch.build_graph.as_ref().map(|_| "build-graph"),
            batch.build_fanout.as_ref().map(|_| "build-fanout"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match kinds.len() {
            1 => {}
            0 => out.push(
                Diagnostic::error(Code::BatchKind, batch.span, "`batch` defines no builds")
                    .with_help(
                        "add one of `build-list`, `build-matrix`, `build-graph` or `build-fanout`",
                    ),
            ),
            _ => out.push(
                Diagnostic::error(
                    Code::BatchKind,
                    batch.span,
                    format!(
                        "`batch` may define one kind of batch, but this one has {}",
                        kinds.join(", ")
                    ),
                )
                .with_help("keep one of them; split the others into their own buildspec"),
            ),
        }
        if let Some(tasks) = &batch.build_list {
            identifiers(tasks, out);
        }
        if let Some(tasks) = &batch.build_graph {
            identifiers(tasks, out);
            graph(tasks, out);
        }
    }
}

fn exported_variables(spec: &Buildspec, out: &mut Vec<Diagnostic>) {
    for name in &spec.env.exported_variables {
        if spec.env.parameter_store.contains_key(name.as_str()) {
            out.push(
                Diagnostic::error(
                    Code::ExportedSecret,
                    name.span,
                    format!(
                        "`{}` comes from Parameter Store and cannot be exported",
                        name.as_str()
                    ),
                )
                .with_note("CodeBuild does not export Parameter Store or Secrets Manager values"),
            );
        } else if spec.env.secrets_manager.contains_key(name.as_str()) {
            out.push(
                Diagnostic::error(
                    Code::ExportedSecret,
                    name.span,
                    format!(
                        "`{}` comes from Secrets Manager and cannot be exported",
                        name.as_str()
                    ),
                )
                .with_note("CodeBuild does not export Parameter Store or Secrets Manager values"),
            );
        } else if name.starts_with("AWS_") {
            out.push(Diagnostic::error(
                Code::ExportedSecret,
                name.span,
                format!(
                    "`{}` cannot be exported: names beginning with `AWS_` are reserved",
                    name.as_str()
                ),
            ));
        }
    }
}

fn secret_references(spec: &Buildspec, out: &mut Vec<Diagnostic>) {
    for (name, reference) in &spec.env.secrets_manager {
        if reference.secret_id.is_empty() {
            out.push(Diagnostic::error(
                Code::InvalidSecretReference,
                reference.span,
                format!("the Secrets Manager reference of `{name}` has no secret id"),
            ));
        }
        if reference.version_stage.is_some() && reference.version_id.is_some() {
            out.push(
                Diagnostic::error(
                    Code::InvalidSecretReference,
                    reference.span,
                    format!("the Secrets Manager reference of `{name}` gives both a version stage and a version id"),
                )
                .with_help("keep one: `secret-id:json-key:version-stage` or `secret-id:json-key::version-id`"),
            );
        }
    }
}

fn identifiers(tasks: &[BatchTask], out: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for task in tasks {
        if let Some(line) = seen.insert(task.identifier.as_str(), task.identifier.span.line) {
            out.push(
                Diagnostic::error(
                    Code::DuplicateIdentifier,
                    task.identifier.span,
                    format!(
                        "two builds of the batch are named `{}`",
                        task.identifier.as_str()
                    ),
                )
                .with_note(format!("the first is on line {line}")),
            );
        }
    }
}

fn graph(tasks: &[BatchTask], out: &mut Vec<Diagnostic>) {
    let known: HashSet<&str> = tasks.iter().map(|t| t.identifier.as_str()).collect();
    for task in tasks {
        for dep in &task.depend_on {
            if !known.contains(dep.as_str()) {
                let mut diagnostic = Diagnostic::error(
                    Code::UnknownDependency,
                    dep.span,
                    format!(
                        "`{}` depends on `{}`, which is not a build of this graph",
                        task.identifier.as_str(),
                        dep.as_str()
                    ),
                );
                if let Some(s) = tasks
                    .iter()
                    .map(|t| t.identifier.as_str())
                    .min_by_key(|k| strsim::levenshtein(k, dep))
                    .filter(|k| strsim::levenshtein(k, dep) <= 2)
                {
                    diagnostic = diagnostic.with_help(format!("did you mean `{s}`?"));
                }
                out.push(diagnostic);
            }
        }
    }
    // Depth-first search for a cycle; each cycle is reported once, at the task that closes it.
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.identifier.as_str(), i))
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; tasks.len()];
    let mut reported: HashSet<Vec<usize>> = HashSet::new();
    for start in 0..tasks.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative DFS: (task, next dependency to visit).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let deps = &tasks[node].depend_on;
            if *next < deps.len() {
                let dep_span = deps[*next].span;
                let target = index.get(deps[*next].as_str()).copied();
                *next += 1;
                let Some(target) = target else { continue };
                match marks[target] {
                    Mark::New => {
                        marks[target] = Mark::Active;
                        stack.push((target, 0));
                    }
                    Mark::Active => {
                        let from = stack.iter().position(|(n, _)| *n == target).unwrap_or(0);
                        let cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                        let mut key = cycle.clone();
                        key.sort_unstable();
                        if reported.insert(key) {
                            let mut names: Vec<&str> = cycle
                                .iter()
                                .map(|i| tasks[*i].identifier.as_str())
                                .collect();
                            names.push(tasks[target].identifier.as_str());
                            out.push(
                                Diagnostic::error(
                                    Code::GraphCycle,
                                    dep_span,
                                    format!("the build-graph has a cycle: {}", names.join(" -> ")),
                                )
                                .with_help(
                                    "a build cannot depend, directly or through others, on itself",
                                ),
                            );
                        }
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                stack.pop();
            }
        }
    }
}
