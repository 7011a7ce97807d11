//! Report groups, in UPLOAD_ARTIFACTS: collected, copied to `--reports`, parsed and summarised.
//! A report never fails the build: a group that matches nothing warns, one that cannot be
//! parsed is FAILED with its reason.

use std::fmt::Write as _;
use std::path::PathBuf;

use buildspec::model::ReportGroup;

use super::Build;
use crate::outputs::artifacts::{self, Rules};
use crate::outputs::reports::{self, CoverageSummary, Summary, TestSummary};
use crate::store::ReportRecord;

/// The folder a group's files land in: an ARN's last part, or the name.
fn group_folder(name: &str) -> String {
    let short = name.rsplit(['/', ':']).next().unwrap_or(name);
    artifacts::folder_name(short, "report")
}

impl Build<'_> {
    /// Collects, copies and parses every report group; returns the console's summary lines.
    pub(super) fn process_reports(&mut self) {
        let groups: Vec<(String, ReportGroup)> = self
            .plan
            .as_ref()
            .map(|p| {
                p.reports
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if groups.is_empty() {
            return;
        }
        self.save_record();
        let root = self
            .options
            .reports
            .clone()
            .unwrap_or_else(|| self.recorder.dir().join("reports"));
        for (name, group) in &groups {
            let record = self.report_group(&root, name, group);
            self.recorder.edit().reports.push(record);
        }
        let table = summary_table(&self.recorder.record().reports);
        for line in table.lines() {
            self.message(line);
        }
    }

    fn report_group(
        &mut self,
        root: &std::path::Path,
        name: &str,
        group: &ReportGroup,
    ) -> ReportRecord {
        let format = group.format();
        let mut record = ReportRecord {
            name: name.to_owned(),
            format: format.name().to_owned(),
            status: "INCOMPLETE".to_owned(),
            location: None,
            files: Vec::new(),
            summary: None,
            error: None,
        };
        let rules = Rules {
            files: group
                .files
                .0
                .iter()
                .map(|f| self.expand(&f.value))
                .collect(),
            base_directory: group.base_directory.as_ref().map(|b| self.expand(&b.value)),
            discard_paths: group.discard_paths.is_some_and(|d| d.value.0),
            exclude: Vec::new(),
            enable_symlinks: false,
        };
        self.message(&format!("Preparing to copy {name} report files"));
        let source = PathBuf::from(&self.recorder.record().source);
        let collection = match self.collect(&rules) {
            Ok(c) => c,
            Err(e) => {
                self.message(&format!("warning: report group {name}: {e}"));
                record.error = Some(e.to_string());
                return record;
            }
        };
        let dest = root.join(group_folder(name));
        let staged = root.join(format!(
            ".{}.partial-{}",
            group_folder(name),
            self.recorder.record().uuid
        ));
        let user = self.current_user();
        let reader = artifacts::Identity::user(user.as_ref());
        let copied = std::fs::create_dir_all(root)
            .map_err(|e| format!("cannot create {}: {e}", root.display()))
            .and_then(|()| {
                artifacts::to_folder(&collection.entries, &staged, reader)
                    .and_then(|files| artifacts::replace(&staged, &dest).map(|()| files))
                    .map_err(|e| e.to_string())
            });
        let files = match copied {
            Ok(files) => files,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staged);
                self.message(&format!("warning: report group {name}: {e}"));
                record.status = "FAILED".to_owned();
                record.error = Some(e);
                return record;
            }
        };
        record.location = Some(dest.display().to_string());
        record.files = files.iter().map(|f| f.path.clone()).collect();
        let mut summary = if format.is_coverage() {
            Summary::Coverage(CoverageSummary::default())
        } else {
            Summary::Test(TestSummary::default())
        };
        let mut error = None;
        for (file, entry) in files.iter().zip(&collection.entries) {
            match reports::parse_file(format, &dest.join(&file.path)) {
                Ok(mut parsed) => {
                    // A failure is shown where the build wrote it, not where it was copied.
                    if let Summary::Test(t) = &mut parsed {
                        let shown = entry.source.strip_prefix(&source).unwrap_or(&entry.source);
                        for failure in &mut t.failures {
                            failure.file = Some(shown.display().to_string());
                        }
                    }
                    merge(&mut summary, parsed);
                }
                Err(e) => {
                    self.message(&format!("warning: report group {name}: {e}"));
                    error.get_or_insert(e.to_string());
                }
            }
        }
        let tests_failed = matches!(&summary, Summary::Test(t) if t.failed + t.errors > 0);
        record.status = if error.is_some() || tests_failed {
            "FAILED"
        } else {
            "SUCCEEDED"
        }
        .to_owned();
        record.error = error;
        record.summary = Some(summary);
        record
    }
}

fn merge(into: &mut Summary, from: Summary) {
    match (into, from) {
        (Summary::Test(a), Summary::Test(b)) => a.merge(b),
        (Summary::Coverage(a), Summary::Coverage(b)) => a.merge(b),
        // A parser answers in its format's kind, so the two always agree.
        _ => {}
    }
}

/// The short table at the end of a build: each group's outcome, then what failed and where.
pub fn summary_table(groups: &[ReportRecord]) -> String {
    let mut out = String::from("Reports:\n");
    let width = groups.iter().map(|g| g.name.len()).max().unwrap_or(0);
    for group in groups {
        let detail = match (&group.summary, &group.error) {
            (Some(Summary::Test(t)), _) => {
                let mut d = format!(
                    "{} tests: {} passed, {} failed, {} errors, {} skipped",
                    t.total, t.passed, t.failed, t.errors, t.skipped
                );
                if let Some(ms) = t.duration_ms {
                    let _ = write!(d, " in {:.1}s", ms as f64 / 1000.0);
                }
                d
            }
            (Some(Summary::Coverage(c)), _) => {
                let percent = |p: Option<f64>| p.map_or("n/a".to_owned(), |p| format!("{p:.1}%"));
                format!(
                    "lines {} ({}/{}), branches {} ({}/{})",
                    percent(c.line_percent()),
                    c.lines_covered,
                    c.lines_covered + c.lines_missed,
                    percent(c.branch_percent()),
                    c.branches_covered,
                    c.branches_covered + c.branches_missed
                )
            }
            (None, Some(e)) => e.clone(),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {:<10}  {}  {detail}",
            group.name, group.status, group.format
        );
        if let Some(Summary::Test(t)) = &group.summary {
            for failure in &t.failures {
                let suite = failure
                    .suite
                    .as_deref()
                    .map(|s| format!("{s} > "))
                    .unwrap_or_default();
                let message = failure
                    .message
                    .as_deref()
                    .and_then(|m| m.lines().find(|l| !l.trim().is_empty()))
                    .unwrap_or("");
                let file = failure
                    .file
                    .as_deref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default();
                let kind = match failure.status {
                    reports::FailureKind::Failed => "FAILED",
                    reports::FailureKind::Error => "ERROR ",
                };
                let _ = writeln!(
                    out,
                    "    {kind} {suite}{}: {}{file}",
                    failure.name,
                    message.trim()
                );
            }
            let listed = t.failures.len() as u64;
            if t.failed + t.errors > listed {
                let _ = writeln!(out, "    ... and {} more", t.failed + t.errors - listed);
            }
        }
        if let (Some(_), Some(e)) = (&group.summary, &group.error) {
            let _ = writeln!(out, "    {e}");
        }
    }
    out
}
