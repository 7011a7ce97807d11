//! Questions over the records of the state directory: which builds, filtered how, shown how.

use std::fmt::Write as _;
use std::fs;

use jiff::Timestamp;

use crate::events::Status;
use crate::store::{BuildRecord, StateDir, StateError};

/// The record fields `--filter` and `--format` know, in the order `--format` shows by default.
pub const FIELDS: &[&str] = &[
    "id",
    "number",
    "project",
    "buildspec",
    "status",
    "start_time",
    "end_time",
    "duration",
    "failed_phase",
    "exit_code",
    "initiator",
    "session",
    "batch",
    "identifier",
    "source",
];

/// The columns shown when `--format` is not given.
pub const DEFAULT_FIELDS: &[&str] = &[
    "id",
    "status",
    "start_time",
    "duration",
    "buildspec",
    "failed_phase",
];

/// A field's value in a record, as `report` shows it and `--filter` compares it.
pub fn field(record: &BuildRecord, name: &str) -> Option<String> {
    Some(match name {
        "id" => record.id.clone(),
        "uuid" => record.uuid.clone(),
        "number" => record.number.to_string(),
        "project" => record.project.clone(),
        "buildspec" => record.buildspec.clone(),
        "status" => record.status.as_str().to_owned(),
        "start_time" => record.start_time.to_string(),
        "end_time" => record.end_time.map(|t| t.to_string()).unwrap_or_default(),
        "duration" => record
            .end_time
            .map(|end| {
                let d = end.duration_since(record.start_time).unsigned_abs();
                format!("{:.1}s", d.as_secs_f64())
            })
            .unwrap_or_default(),
        "failed_phase" => failed_phase(record).unwrap_or_default(),
        "exit_code" => record.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        "initiator" => record.initiator.clone(),
        "session" => record.session.clone(),
        "batch" => record.batch_id.clone().unwrap_or_default(),
        "identifier" => record.batch_identifier.clone().unwrap_or_default(),
        "source" => record.source.clone(),
        _ => return None,
    })
}

/// The first phase that did not succeed, as `PHASE: message`.
pub fn failed_phase(record: &BuildRecord) -> Option<String> {
    record
        .phases
        .iter()
        .find(|p| !matches!(p.status, Status::Succeeded | Status::InProgress))
        .map(|p| {
            let message = p
                .contexts
                .first()
                .map(|c| c.message.lines().next().unwrap_or("").to_owned())
                .unwrap_or_default();
            format!("{}: {message}", p.phase.as_str())
        })
}

/// Which builds a report lists.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// `field=value[,value]`: the field must equal one of the values.
    pub filters: Vec<(String, Vec<String>)>,
    /// Builds started at or after.
    pub since: Option<Timestamp>,
    /// Builds started before.
    pub until: Option<Timestamp>,
    /// Only the latest build of each buildspec and batch identifier, taken before the other
    /// filters apply.
    pub latest: bool,
    /// At most this many builds, the most recent.
    pub count: Option<usize>,
}

/// A problem with a query itself.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A field that records do not have.
    #[error("unknown field `{name}`: the fields are {}", FIELDS.join(", "))]
    UnknownField {
        /// The field asked for.
        name: String,
    },
    /// The records could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

impl Query {
    /// Checks the query's fields.
    pub fn validate(&self) -> Result<(), QueryError> {
        for (name, _) in &self.filters {
            if !FIELDS.contains(&name.as_str()) {
                return Err(QueryError::UnknownField { name: name.clone() });
            }
        }
        Ok(())
    }

    fn admits(&self, record: &BuildRecord) -> bool {
        if self.since.is_some_and(|t| record.start_time < t)
            || self.until.is_some_and(|t| record.start_time >= t)
        {
            return false;
        }
        self.filters.iter().all(|(name, values)| {
            field(record, name).is_some_and(|v| values.iter().any(|w| w.eq_ignore_ascii_case(&v)))
        })
    }
}

/// Every record of the state directory that the query admits, oldest first. Records that cannot
/// be read (a build being created, a file cut short by a crash) are skipped.
pub fn list(state: &StateDir, query: &Query) -> Result<Vec<BuildRecord>, QueryError> {
    query.validate()?;
    let dir = state.root().join("builds");
    let paths: Vec<_> = match fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("build.json"))
            .collect(),
        Err(_) => Vec::new(),
    };
    // Reading and parsing thousands of small files: a few threads hide each other's waits.
    let workers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(1, 8);
    let chunk = paths.len().div_ceil(workers).max(1);
    let mut records: Vec<BuildRecord> = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .filter_map(|p| fs::read(p).ok())
                        .filter_map(|bytes| serde_json::from_slice::<BuildRecord>(&bytes).ok())
                        .filter(|r| query.latest || query.admits(r))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .flatten()
            .collect()
    });
    records.sort_by(|a, b| a.start_time.cmp(&b.start_time).then(a.id.cmp(&b.id)));
    // The latest build of each buildspec first, then the filters: `--latest --failed` lists
    // the buildspecs whose latest build failed, not each one's latest failure.
    if query.latest {
        let mut seen = std::collections::HashSet::new();
        let mut latest: Vec<BuildRecord> = records
            .into_iter()
            .rev()
            .filter(|r| seen.insert((r.buildspec.clone(), r.batch_identifier.clone())))
            .filter(|r| query.admits(r))
            .collect();
        latest.reverse();
        records = latest;
    }
    if let Some(n) = query.count {
        let skip = records.len().saturating_sub(n);
        records.drain(..skip);
    }
    Ok(records)
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot hold at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Builds as JUnit XML, so that other CI systems show them natively: a test suite per build, a
/// test case per phase; a phase that did not succeed is a failure with its context.
pub fn junit(records: &[BuildRecord]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"buildspec\">\n",
    );
    for record in records {
        let failures = record
            .phases
            .iter()
            .filter(|p| !matches!(p.status, Status::Succeeded | Status::InProgress))
            .count();
        let seconds = |ms: Option<u64>| ms.unwrap_or(0) as f64 / 1000.0;
        let total: u64 = record.phases.iter().filter_map(|p| p.duration_ms).sum();
        let name = record
            .batch_identifier
            .clone()
            .unwrap_or_else(|| record.buildspec.clone());
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" id=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{:.3}\" timestamp=\"{}\">",
            xml_escape(&name),
            xml_escape(&record.id),
            record.phases.len(),
            seconds(Some(total)),
            record.start_time
        );
        for phase in &record.phases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml_escape(&name),
                phase.phase.as_str(),
                seconds(phase.duration_ms)
            );
            if matches!(phase.status, Status::Succeeded | Status::InProgress) {
                out.push_str("/>\n");
                continue;
            }
            let message = phase
                .contexts
                .first()
                .map(|c| format!("{}: {}", c.status_code, c.message))
                .unwrap_or_else(|| phase.status.as_str().to_owned());
            let _ = writeln!(
                out,
                ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                phase.status.as_str(),
                xml_escape(&message),
                xml_escape(&message)
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
