//! `buildspec report` and `buildspec path`: questions over the records.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use runner::store::query::{self, Query};

use crate::args::{PathArgs, ReportArgs};
use crate::error::CliError;
use crate::write_stdout;

/// `2026-11-22T10:00:00Z`, or a duration ago (`90m`, `2d`, `1h30m`).
fn when(text: &str) -> Result<jiff::Timestamp, CliError> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let span: jiff::SignedDuration = text
        .parse::<jiff::Span>()
        .ok()
        .and_then(|s| {
            s.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .ok()
        })
        .or_else(|| text.parse().ok())
        .ok_or_else(|| {
            CliError::Query(format!(
                "`{text}` is neither a time (2026-11-22T10:00:00Z) nor a duration (90m, 2d)"
            ))
        })?;
    jiff::Timestamp::now()
        .checked_sub(span)
        .map_err(|e| CliError::Query(e.to_string()))
}

pub(crate) fn report(args: &ReportArgs) -> Result<u8, CliError> {
    let state = crate::run::read_state(args.state_dir.as_ref(), "buildspec report")?;
    let mut filters = Vec::new();
    for filter in &args.filter {
        let Some((name, values)) = filter.split_once('=') else {
            return Err(CliError::Query(format!(
                "--filter {filter}: write it FIELD=VALUE[,VALUE]"
            )));
        };
        filters.push((
            name.trim().to_owned(),
            values.split(',').map(|v| v.trim().to_owned()).collect(),
        ));
    }
    if args.failed {
        filters.push((
            "status".to_owned(),
            ["FAILED", "FAULT", "TIMED_OUT", "STOPPED"]
                .map(str::to_owned)
                .to_vec(),
        ));
    }
    if args.succeeded {
        filters.push(("status".to_owned(), vec!["SUCCEEDED".to_owned()]));
    }
    let query = Query {
        filters,
        since: args.since.as_deref().map(when).transpose()?,
        until: args.until.as_deref().map(when).transpose()?,
        latest: args.latest,
        count: args.count,
    };
    let records = query::list(&state, &query).map_err(|e| CliError::Query(e.to_string()))?;
    if let Some(path) = &args.junit {
        std::fs::write(path, query::junit(&records)).map_err(|source| CliError::WriteFile {
            what: "the JUnit report",
            path: path.display().to_string(),
            source,
        })?;
    }
    if args.json {
        let mut text = serde_json::to_string_pretty(&records).unwrap_or_default();
        text.push('\n');
        return write_stdout(&text);
    }
    let columns: Vec<&str> = if args.format.is_empty() {
        query::DEFAULT_FIELDS.to_vec()
    } else {
        args.format.iter().map(String::as_str).collect()
    };
    if let Some(unknown) = columns.iter().find(|c| !query::FIELDS.contains(c)) {
        return Err(CliError::Query(format!(
            "unknown field `{unknown}`: the fields are {}",
            query::FIELDS.join(", ")
        )));
    }
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(records.len() + 1);
    if !args.no_header {
        rows.push(columns.iter().map(|c| c.to_uppercase()).collect());
    }
    for record in &records {
        rows.push(
            columns
                .iter()
                .map(|c| query::field(record, c).unwrap_or_default())
                .collect(),
        );
    }
    let mut out = String::new();
    if args.terse {
        for row in &rows {
            out.push_str(&row.join("|"));
            out.push('\n');
        }
    } else {
        let widths: Vec<usize> = (0..columns.len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        for row in &rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    write_stdout(&out)
}

pub(crate) fn path(args: &PathArgs) -> Result<u8, CliError> {
    let state = crate::run::read_state(args.state_dir.as_ref(), "buildspec path")?;
    let record = state.find(if args.last {
        None
    } else {
        args.build.as_deref()
    })?;
    let dir = state.build_dir(&record.uuid);
    // Sets and groups may have been written elsewhere (--artifacts, --reports): the record
    // knows where.
    let folder_of = |location: Option<&String>, default: &str| -> PathBuf {
        location.map_or_else(
            || dir.join(default),
            |l| {
                Path::new(l)
                    .parent()
                    .map_or_else(|| dir.join(default), Path::to_path_buf)
            },
        )
    };
    let path = if args.log {
        PathBuf::from(&record.log_path)
    } else if args.artifacts {
        folder_of(record.artifacts.first().map(|a| &a.location), "artifacts")
    } else if args.reports {
        folder_of(
            record.reports.iter().find_map(|r| r.location.as_ref()),
            "reports",
        )
    } else if args.scripts {
        dir.join("scripts.sh")
    } else if args.env {
        dir.join("env")
    } else if args.record {
        dir.join("build.json")
    } else {
        dir
    };
    write_stdout(&format!("{}\n", path.display()))
}
