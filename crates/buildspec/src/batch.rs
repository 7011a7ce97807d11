//! The builds a `batch:` section starts.

use indexmap::IndexMap;
use serde::Serialize;

use crate::model::{Batch, BatchEnv, BatchTask};

/// One build of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PlannedBuild {
    /// `CODEBUILD_BATCH_BUILD_IDENTIFIER`.
    pub identifier: String,
    /// The buildspec it runs, when not the batch's own file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildspec: Option<String>,
    /// Variables set for it, over the buildspec's own.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub variables: IndexMap<String, String>,
    /// Builds that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depend_on: Vec<String>,
    /// Whether its failure leaves the batch green.
    #[serde(default)]
    pub ignore_failure: bool,
    /// The image CodeBuild would use (recorded only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The compute type CodeBuild would use (recorded only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_type: Option<String>,
}

/// The batch kind's key.
pub(crate) fn kind(batch: &Batch) -> &'static str {
    if batch.build_list.is_some() {
        "build-list"
    } else if batch.build_matrix.is_some() {
        "build-matrix"
    } else if batch.build_graph.is_some() {
        "build-graph"
    } else {
        "build-fanout"
    }
}

fn env_vars(env: &BatchEnv) -> IndexMap<String, String> {
    env.variables
        .iter()
        .map(|(k, v)| (k.clone(), v.value.0.clone()))
        .collect()
}

fn from_task(task: &BatchTask) -> PlannedBuild {
    PlannedBuild {
        identifier: task.identifier.value.clone(),
        buildspec: task.buildspec.as_ref().map(|b| b.value.clone()),
        variables: env_vars(&task.env),
        depend_on: task.depend_on.iter().map(|d| d.value.clone()).collect(),
        ignore_failure: task.ignore_failure.is_some_and(|f| f.value.0),
        image: task.env.image.as_ref().map(|i| i.value.clone()),
        compute_type: task.env.compute_type.as_ref().map(|c| c.value.clone()),
    }
}

/// Keeps letters, digits and `_`; anything else becomes `_`, so identifiers are safe in file
/// names and environment values.
fn sanitize(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('_');
    if trimmed.is_empty() {
        "empty".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn file_stem(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.strip_suffix(".yml")
        .or_else(|| name.strip_suffix(".yaml"))
        .unwrap_or(name)
}

/// Expands the batch into its builds, in the order they may start (a graph is listed as
/// written; the scheduler orders it).
pub fn expand(batch: &Batch) -> Vec<PlannedBuild> {
    if let Some(tasks) = batch.build_list.as_ref().or(batch.build_graph.as_ref()) {
        return tasks.iter().map(from_task).collect();
    }
    if let Some(fanout) = &batch.build_fanout {
        let ignore_failure = fanout.ignore_failure.is_some_and(|f| f.value.0);
        return (1..=fanout.parallelism.value)
            .map(|i| PlannedBuild {
                identifier: format!("fanout_{i}"),
                buildspec: None,
                variables: IndexMap::new(),
                depend_on: Vec::new(),
                ignore_failure,
                image: None,
                compute_type: None,
            })
            .collect();
    }
    let Some(matrix) = &batch.build_matrix else {
        return Vec::new();
    };
    // Each dimension is a list of (identifier part, how it changes the build).
    enum Set {
        Buildspec(String),
        Image(String),
        ComputeType(String),
        Variable(String, String),
    }
    let dynamic = &matrix.dynamic;
    let mut dimensions: Vec<Vec<(String, Set)>> = Vec::new();
    if !dynamic.buildspec.is_empty() {
        dimensions.push(
            dynamic
                .buildspec
                .iter()
                .map(|b| (sanitize(file_stem(b)), Set::Buildspec(b.value.clone())))
                .collect(),
        );
    }
    if !dynamic.env.image.is_empty() {
        dimensions.push(
            dynamic
                .env
                .image
                .iter()
                .map(|i| {
                    let short = i.rsplit('/').next().unwrap_or(i);
                    (sanitize(short), Set::Image(i.value.clone()))
                })
                .collect(),
        );
    }
    if !dynamic.env.compute_type.is_empty() {
        dimensions.push(
            dynamic
                .env
                .compute_type
                .iter()
                .map(|c| (sanitize(c), Set::ComputeType(c.value.clone())))
                .collect(),
        );
    }
    for (name, values) in &dynamic.env.variables {
        if values.is_empty() {
            continue;
        }
        dimensions.push(
            values
                .iter()
                .map(|v| {
                    (
                        format!("{}_{}", sanitize(name), sanitize(&v.value.0)),
                        Set::Variable(name.clone(), v.value.0.clone()),
                    )
                })
                .collect(),
        );
    }
    let base = &matrix.static_.env;
    let ignore_failure = matrix.static_.ignore_failure.is_some_and(|f| f.value.0);
    let mut builds = Vec::new();
    let mut combination = vec![0usize; dimensions.len()];
    loop {
        let mut build = PlannedBuild {
            identifier: String::new(),
            buildspec: None,
            variables: env_vars(base),
            depend_on: Vec::new(),
            ignore_failure,
            image: base.image.as_ref().map(|i| i.value.clone()),
            compute_type: base.compute_type.as_ref().map(|c| c.value.clone()),
        };
        let mut parts = Vec::new();
        for (d, &choice) in combination.iter().enumerate() {
            let (part, set) = &dimensions[d][choice];
            parts.push(part.clone());
            match set {
                Set::Buildspec(b) => build.buildspec = Some(b.clone()),
                Set::Image(i) => build.image = Some(i.clone()),
                Set::ComputeType(c) => build.compute_type = Some(c.clone()),
                Set::Variable(n, v) => {
                    build.variables.insert(n.clone(), v.clone());
                }
            }
        }
        build.identifier = if parts.is_empty() {
            "build_1".to_owned()
        } else {
            parts.join("_")
        };
        builds.push(build);
        // Advance the odometer; the last dimension turns fastest.
        let mut d = dimensions.len();
        loop {
            if d == 0 {
                return unique(builds);
            }
            d -= 1;
            combination[d] += 1;
            if combination[d] < dimensions[d].len() {
                break;
            }
            combination[d] = 0;
        }
    }
}

/// Makes identifiers unique when two values sanitize alike (`a.b` and `a_b`).
fn unique(mut builds: Vec<PlannedBuild>) -> Vec<PlannedBuild> {
    let mut seen: IndexMap<String, usize> = IndexMap::new();
    for build in &mut builds {
        let count = seen.entry(build.identifier.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            build.identifier = format!("{}_{}", build.identifier, count);
        }
    }
    builds
}
