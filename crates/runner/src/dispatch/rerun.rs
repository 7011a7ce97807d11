//! `rerun`: the builds of a state directory asked for again, each from its record (the request
//! it keeps), and a batch's builds that never ran from their batch's record; their batches say
//! how they ended now, as a retried batch does on CodeBuild.

use std::path::PathBuf;
use std::process::Command;

use super::builds::{BuildsError, copy_tree, run_folder};
use super::{Before, Job, JobResult, ManyEvent, Outcome, Ran};
use crate::request::BuildRequest;
use crate::stop::Stop;
use crate::store::batch::BatchRecord;
use crate::store::query::QueryError;
use crate::store::{BuildRecord, Invocation, StateDir};

/// A build asked for again.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its identifier in the summary: its batch identifier, or its buildspec.
    pub id: String,
    /// Its batch's id and its identifier there.
    pub batch: Option<(String, String)>,
    /// The build, as it is asked for again.
    pub request: BuildRequest,
    /// Whether its record holds values masked out of its request: it cannot be asked for again.
    pub masked: bool,
    /// How messages name it: its buildspec and its build or batch id.
    pub name: String,
    /// Where its latest run was placed, when a scheduler ran it (`slurm job 42`).
    pub ran_on: Option<String>,
}

/// The builds to run again, and their batches.
#[derive(Debug)]
pub struct Selection {
    /// What runs again, in order.
    pub targets: Vec<Target>,
    /// What cannot: its request held values to mask.
    pub masked: Vec<Target>,
    /// The batches the targets belong to.
    pub batches: Vec<BatchRecord>,
}

/// The latest build of each buildspec (only those that did not succeed, with `failed_only`),
/// and the batch builds that never ran. `legacy` reads the command line an earlier version
/// recorded instead of a request.
pub fn select(
    state: &StateDir,
    failed_only: bool,
    legacy: &dyn Fn(&Invocation) -> Option<BuildRequest>,
) -> Result<Selection, QueryError> {
    let query = crate::store::query::Query {
        latest: true,
        ..crate::store::query::Query::default()
    };
    let latest = crate::store::query::list(state, &query)?;
    let selected: Vec<&BuildRecord> = latest
        .iter()
        .filter(|r| !failed_only || r.status != crate::Status::Succeeded)
        .collect();
    // The batches the builds belong to: a batch's build runs again in its batch, with what the
    // batch says of it (its dependencies, `ignore-failure`, `fast-fail`).
    let mut batches: Vec<BatchRecord> = Vec::new();
    for id in selected.iter().filter_map(|r| r.batch_id.as_ref()) {
        if !batches.iter().any(|b| &b.id == id)
            && let Ok(batch) = state.read_batch(id)
        {
            batches.push(batch);
        }
    }
    let request_of = |invocation: &Invocation| match &invocation.request {
        Some(request) => Some(request.for_rerun()),
        None => legacy(invocation),
    };
    let mut targets: Vec<Target> = selected
        .iter()
        .filter_map(|r| {
            let invocation = r.invocation.as_ref()?;
            Some(Target {
                id: r
                    .batch_identifier
                    .clone()
                    .unwrap_or_else(|| r.buildspec.clone()),
                batch: r.batch_id.clone().zip(r.batch_identifier.clone()),
                request: request_of(invocation)?,
                masked: invocation.masked,
                name: format!("{} ({})", r.buildspec, r.id),
                ran_on: r
                    .placement
                    .as_ref()
                    .map(|p| format!("{} job {}", p.executor, p.job_id)),
            })
        })
        .collect();
    let never = never_ran(&batches, &latest, &targets, &request_of);
    targets.extend(never);
    let (masked, targets) = targets.into_iter().partition(|t| t.masked);
    Ok(Selection {
        targets,
        masked,
        batches,
    })
}

/// Runs the selected builds on this machine, `parallel` at a time (each on a copy of its source
/// when several run side by side, unless `in_place`), then updates their batches' records.
pub fn run(
    selection: Selection,
    state: &StateDir,
    exe: &std::path::Path,
    parallel: usize,
    in_place: bool,
    stop: &Stop,
    on_event: &mut dyn FnMut(ManyEvent<'_>),
) -> Result<Ran, BuildsError> {
    let Selection {
        targets, batches, ..
    } = selection;
    let run_id = uuid::Uuid::new_v4().to_string();
    let work = run_folder(state.root(), &run_id)?;
    // As for many builds: builds side by side each get a copy of their source.
    let copies = !in_place && parallel > 1 && targets.len() > 1;
    let copies_root = std::env::temp_dir().join(format!("buildspec-{run_id}"));
    if copies {
        let _ = crate::store::create_spread_dir(&copies_root);
    }
    let batch_of = |id: &str| batches.iter().find(|b| b.id == id);
    let planned = |(batch, identifier): &(String, String)| {
        batch_of(batch)?
            .planned
            .iter()
            .find(|p| &p.identifier == identifier)
    };
    let fast_fail = targets.iter().all(|t| {
        t.batch
            .as_ref()
            .and_then(|(b, _)| batch_of(b))
            .is_some_and(|b| b.fast_fail)
    });
    let mut jobs = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let plan = target.batch.as_ref().and_then(planned);
        // Dependencies count among the builds run again in the same batch; the others
        // succeeded already (or their failure is ignored).
        let depend_on = match (&plan, &target.batch) {
            (Some(p), Some((batch, _))) => p
                .depend_on
                .iter()
                .filter(|dep| {
                    targets.iter().any(|t| {
                        t.batch
                            .as_ref()
                            .is_some_and(|(b, identifier)| b == batch && identifier == *dep)
                    })
                })
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let mut request = target.request.clone();
        request.batch.clone_from(&target.batch);
        let cwd = request.cwd.clone();
        let before: Option<Before> = if copies {
            let source = cwd.join(&request.source);
            let copy = copies_root.join(format!("src-{i}"));
            request.source.clone_from(&copy);
            request.original_source = Some(source.clone());
            let skip = [Some(state.root().to_path_buf())];
            Some(Box::new(move || copy_tree(&source, &copy, &skip)))
        } else {
            None
        };
        let record_file: PathBuf = work.join(format!("{i}.json"));
        request.record_file = Some(record_file.clone());
        let mut command = Command::new(exe);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command.current_dir(&cwd);
        jobs.push(Job {
            id: target.id.clone(),
            depend_on,
            ignore_failure: plan.is_some_and(|p| p.ignore_failure),
            command,
            request: Some(request),
            record_file,
            before,
            record: None,
            resume: None,
            ended: None,
        });
    }
    let ran = super::run_many(
        jobs,
        parallel,
        fast_fail,
        &super::workers::Workers::new(),
        stop,
        on_event,
    );
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&copies_root);
    // A batch whose builds ran again says how they ended now, as a retried batch does on
    // CodeBuild.
    for mut batch in batches {
        // A batch still being dispatched keeps the record its dispatcher writes.
        if batch.dispatching() {
            continue;
        }
        let mine: Vec<&JobResult> = targets
            .iter()
            .zip(&ran.results)
            .filter(|(t, _)| t.batch.as_ref().is_some_and(|(b, _)| *b == batch.id))
            .map(|(_, result)| result)
            .collect();
        batch.update(&mine, ran.stopped.is_some());
        state.write_batch(&batch)?;
    }
    Ok(ran)
}

/// The builds of these batches that never ran (a dependency failed, or the batch stopped
/// first), and so have no record: each runs again from the invocation its batch record keeps,
/// unless it is among `targets` already or has run since in another batch.
fn never_ran(
    batches: &[BatchRecord],
    latest: &[BuildRecord],
    targets: &[Target],
    request_of: &dyn Fn(&Invocation) -> Option<BuildRequest>,
) -> Vec<Target> {
    let mut found = Vec::new();
    for batch in batches {
        for build in &batch.builds {
            let identifier = &build.id;
            let listed = targets.iter().any(|t| {
                t.batch
                    .as_ref()
                    .is_some_and(|(b, i)| *b == batch.id && i == identifier)
            });
            if build.outcome != Outcome::NotRun || listed {
                continue;
            }
            let Some(invocation) = batch
                .members
                .iter()
                .find(|m| &m.id == identifier)
                .and_then(|m| m.invocation.as_ref())
            else {
                continue;
            };
            let Some(request) = request_of(invocation) else {
                continue;
            };
            let buildspec = request.buildspec.display().to_string();
            let ran_since = latest.iter().any(|r| {
                r.batch_identifier.as_ref() == Some(identifier)
                    && r.buildspec == buildspec
                    && r.start_time > batch.start_time
            });
            if ran_since {
                continue;
            }
            found.push(Target {
                id: identifier.clone(),
                batch: Some((batch.id.clone(), identifier.clone())),
                request,
                masked: invocation.masked,
                name: format!("{buildspec} ({identifier} of {})", batch.id),
                ran_on: None,
            });
        }
    }
    found
}
