//! The table at the end of many builds: each build, its status, how long it took, and where it
//! failed.

use runner::dispatch::{JobResult, Outcome};

/// The table at the end: each build, its status, how long it took, and where it failed.
pub(crate) fn table(results: &[JobResult]) -> String {
    use std::fmt::Write as _;
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    let mut out = format!(
        "\n{} build(s): {} succeeded, {} failed, {} not run\n",
        results.len(),
        count(Outcome::Succeeded),
        count(Outcome::Failed),
        count(Outcome::NotRun)
    );
    let width = results.iter().map(|r| r.id.len()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        out,
        "{:<width$}  {:<10}  {:>8}  WHERE",
        "BUILD", "STATUS", "TIME"
    );
    for r in results {
        let status = match (&r.record, r.outcome) {
            (Some(record), Outcome::Succeeded | Outcome::Failed) => record.status.as_str(),
            (_, outcome) => outcome.as_str(),
        };
        let status = if r.ignore_failure && r.outcome != Outcome::Succeeded {
            format!("{status} (ignored)")
        } else {
            status.to_owned()
        };
        let time = if r.outcome == Outcome::NotRun {
            String::new()
        } else {
            format!("{:.1}s", r.duration_ms as f64 / 1000.0)
        };
        let place = match (&r.record, &r.reason) {
            (_, Some(reason)) => reason.clone(),
            (Some(record), None) => runner::store::query::failed_phase(record).unwrap_or_default(),
            (None, None) => String::new(),
        };
        let _ = writeln!(out, "{:<width$}  {status:<10}  {time:>8}  {place}", r.id);
    }
    out
}
