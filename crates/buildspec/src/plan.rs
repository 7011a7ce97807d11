//! The validated plan: what a run does, in order, with the transitions that apply.

use indexmap::IndexMap;
use serde::Serialize;

use crate::batch::{self, PlannedBuild};
use crate::model::{
    ArtifactSet, Buildspec, Cache, Command, OnFailure, PhaseName, ReportGroup, Shell, Version,
};

/// Where a build goes after a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A command phase.
    Phase(PhaseName),
    /// The artifact upload (then FINALIZING).
    UploadArtifacts,
    /// The end: no further command phase, no upload.
    Finalizing,
}

impl Next {
    /// The name CodeBuild logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Next::Phase(p) => p.upper(),
            Next::UploadArtifacts => "UPLOAD_ARTIFACTS",
            Next::Finalizing => "FINALIZING",
        }
    }
}

impl Serialize for Next {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The phase that runs after `phase` succeeds.
pub fn after_success(phase: PhaseName) -> Next {
    phase.next().map_or(Next::UploadArtifacts, Next::Phase)
}

/// The phase that runs after `phase` fails (after its last retry), following CodeBuild's
/// transition table and the project's answers for ABORT (decisions §3).
pub fn after_failure(phase: PhaseName, on_failure: Option<&OnFailure>) -> Next {
    match on_failure {
        Some(OnFailure::Abort) => Next::Finalizing,
        Some(OnFailure::Continue) => after_success(phase),
        Some(OnFailure::Retry { .. }) | None => match phase {
            PhaseName::Install | PhaseName::PreBuild => Next::Finalizing,
            PhaseName::Build => Next::Phase(PhaseName::PostBuild),
            PhaseName::PostBuild => Next::UploadArtifacts,
        },
    }
}

/// One phase as it will run. Absent phases are planned too: CodeBuild reports them SUCCEEDED.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedPhase {
    /// The phase.
    pub name: PhaseName,
    /// Whether the buildspec writes it.
    pub present: bool,
    /// The user its commands run as, when not the runner's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// `on-failure` as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    /// How many more times the phase runs after a failure.
    pub retries: u32,
    /// Requested runtimes (install).
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub runtime_versions: IndexMap<String, String>,
    /// The commands.
    pub commands: Vec<Command>,
    /// The `finally` commands.
    pub finally: Vec<Command>,
    /// Where the build goes when the phase succeeds.
    pub next_on_success: Next,
    /// Where the build goes when the phase fails.
    pub next_on_failure: Next,
}

/// Everything a run will do, with nothing executed.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The buildspec file.
    pub file: String,
    /// Its version.
    pub version: Version,
    /// Whether state carries between commands (0.2) or not (0.1).
    pub session_state: bool,
    /// The shell that runs commands.
    pub shell: Shell,
    /// The top-level `run-as`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// The four phases, in run order.
    pub phases: Vec<PlannedPhase>,
    /// Variables whose final values are exported.
    pub exported_variables: Vec<String>,
    /// Artifact sets: `primary` first, then the secondary ones by identifier.
    pub artifacts: IndexMap<String, ArtifactSet>,
    /// Report groups.
    pub reports: IndexMap<String, ReportGroup>,
    /// The cache rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    /// The builds a `batch:` section starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchPlan>,
}

/// A batch: its policy and its builds.
#[derive(Debug, Clone, Serialize)]
pub struct BatchPlan {
    /// `build-list`, `build-matrix`, `build-graph` or `build-fanout`.
    pub kind: &'static str,
    /// Stop running builds when one fails.
    pub fast_fail: bool,
    /// The builds, as written (a graph's scheduler orders them by `depend_on`).
    pub builds: Vec<PlannedBuild>,
}

impl Plan {
    /// Plans a buildspec that passed validation.
    pub fn new(file: &str, spec: &Buildspec) -> Plan {
        let top_run_as = spec.run_as.as_ref().map(|r| r.value.clone());
        let phases = PhaseName::ALL
            .into_iter()
            .map(|name| {
                let phase = spec.phases.get(name);
                let on_failure = phase
                    .and_then(|p| p.on_failure.as_ref())
                    .map(|o| o.value.clone());
                let retries = match &on_failure {
                    Some(OnFailure::Retry { count, .. }) => *count,
                    _ => 0,
                };
                PlannedPhase {
                    name,
                    present: phase.is_some(),
                    run_as: phase
                        .and_then(|p| p.run_as.as_ref().map(|r| r.value.clone()))
                        .or_else(|| top_run_as.clone()),
                    next_on_success: after_success(name),
                    next_on_failure: after_failure(name, on_failure.as_ref()),
                    on_failure,
                    retries,
                    runtime_versions: phase
                        .map(|p| {
                            p.runtime_versions
                                .iter()
                                .map(|(k, v)| (k.clone(), v.value.0.clone()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    commands: phase.map(|p| p.commands.clone()).unwrap_or_default(),
                    finally: phase.map(|p| p.finally.clone()).unwrap_or_default(),
                }
            })
            .collect();
        let mut artifacts = IndexMap::new();
        if let Some(a) = &spec.artifacts {
            artifacts.insert("primary".to_owned(), a.primary());
            for (id, set) in &a.secondary_artifacts {
                artifacts.insert(id.clone(), set.clone());
            }
        }
        Plan {
            file: file.to_owned(),
            version: spec.version.value,
            session_state: spec.version.value == Version::V02,
            shell: spec.env.shell.as_ref().map_or(Shell::Sh, |s| s.value),
            run_as: top_run_as,
            phases,
            exported_variables: spec
                .env
                .exported_variables
                .iter()
                .map(|v| v.value.clone())
                .collect(),
            artifacts,
            reports: spec.reports.clone(),
            cache: spec.cache.clone(),
            batch: spec.batch.as_ref().map(|b| BatchPlan {
                kind: batch::kind(b),
                fast_fail: b.fast_fail.is_some_and(|f| f.value.0),
                builds: batch::expand(b),
            }),
        }
    }

    /// A phase of the plan.
    pub fn phase(&self, name: PhaseName) -> &PlannedPhase {
        // The plan always holds the four phases in order.
        &self.phases[name as usize]
    }
}
