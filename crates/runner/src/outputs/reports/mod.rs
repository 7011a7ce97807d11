//! Test and coverage report files: one summary per file, in the formats CodeBuild reads.
//!
//! Every parser streams its file: XML through `quick-xml` (text between elements is skipped a
//! block at a time, see `xml.rs`), JSON through `serde_json` visitors that fold the document as
//! it is read, LCOV line by line. Memory is bounded by one start tag with its attributes, or one
//! JSON string that is kept (a failure's message; skipped values are never held), not by the
//! size of the file: a JUnit report of 480 MB, a `<system-out>` of 300 MB in it, is read in
//! under 8 MB of resident memory.
//!
//! A file that cannot be read, is not well-formed, or is well-formed but of another kind gives a
//! [`ReportError`] that names the file (and, for syntax errors, the line and column): the caller
//! marks that report group FAILED.

use std::path::{Path, PathBuf};

use buildspec::model::ReportFormat;
use serde::{Deserialize, Serialize};

mod cucumber;
mod json;
mod junit;
mod lcov;
mod nunit;
mod simplecov;
mod testng;
mod trx;
mod xml;
mod xml_coverage;

#[cfg(test)]
mod tests;

/// At most this many failures are kept per summary; the counters still count every test.
pub const MAX_FAILURES: usize = 50;

/// A failure message is cut to at most this many bytes (on a character boundary, `…` included).
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// Totals of one or more test report files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestSummary {
    /// Every test case counted, whatever its outcome.
    pub total: u64,
    /// Test cases that passed.
    pub passed: u64,
    /// Test cases whose assertions failed.
    pub failed: u64,
    /// Test cases that were not run (skipped, ignored, pending, undefined, inconclusive).
    pub skipped: u64,
    /// Test cases that could not run to their end (an exception outside an assertion, a crash,
    /// a timeout, a broken fixture).
    pub errors: u64,
    /// How long the tests ran, as the report says; `None` when it does not say.
    pub duration_ms: Option<u64>,
    /// The first [`MAX_FAILURES`] failed or erroneous test cases.
    pub failures: Vec<TestFailure>,
}

/// One failed or erroneous test case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestFailure {
    /// The class, fixture, suite or feature that holds the test, when the report names one.
    pub suite: Option<String>,
    /// The test's name.
    pub name: String,
    /// Whether it failed or errored.
    pub status: FailureKind,
    /// What went wrong, cut to [`MAX_MESSAGE_BYTES`].
    pub message: Option<String>,
    /// The report file it came from.
    pub file: Option<String>,
}

/// How a test case went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureKind {
    /// An assertion failed.
    Failed,
    /// The test could not run to its end.
    Error,
}

/// Totals of one or more coverage report files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageSummary {
    /// Lines (statements, for Clover) that ran at least once.
    pub lines_covered: u64,
    /// Lines that could have run but did not.
    pub lines_missed: u64,
    /// Branches (conditions, for Clover) that were taken.
    pub branches_covered: u64,
    /// Branches that were never taken.
    pub branches_missed: u64,
}

/// The summary of one report file: test results or code coverage, after the report's format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Summary {
    /// A test report.
    Test(TestSummary),
    /// A code coverage report.
    Coverage(CoverageSummary),
}

/// Why a report file gave no summary.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file cannot be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The report file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The file holds nothing (no byte, or no XML element).
    #[error("{}: the file is empty", path.display())]
    Empty {
        /// The report file.
        path: PathBuf,
    },
    /// The file is not well-formed XML or JSON.
    #[error("{}:{line}:{column}: malformed {language}: {message}", path.display())]
    Syntax {
        /// The report file.
        path: PathBuf,
        /// `XML` or `JSON`.
        language: &'static str,
        /// Where the error is, from 1.
        line: u64,
        /// Where the error is on its line, in characters from 1.
        column: u64,
        /// What is wrong there.
        message: String,
    },
    /// The file is well-formed but holds another kind of document.
    #[error("{}: not {} {format} report: {reason}", path.display(), article(format))]
    WrongFormat {
        /// The report file.
        path: PathBuf,
        /// The format the file was read as, e.g. `JUnit`.
        format: &'static str,
        /// What gave it away.
        reason: String,
    },
    /// The file is of the right kind but holds an unusable value.
    #[error("{}{}: invalid {format} report: {message}", path.display(), position(*line, *column))]
    Invalid {
        /// The report file.
        path: PathBuf,
        /// The format the file was read as.
        format: &'static str,
        /// Where the value is, when known.
        line: Option<u64>,
        /// Where the value is on its line, when known.
        column: Option<u64>,
        /// What is wrong with it.
        message: String,
    },
}

impl ReportError {
    /// The report file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReportError::Io { path, .. }
            | ReportError::Empty { path }
            | ReportError::Syntax { path, .. }
            | ReportError::WrongFormat { path, .. }
            | ReportError::Invalid { path, .. } => path,
        }
    }
}

fn article(format: &str) -> &'static str {
    // As spoken: "an NUnit", "an LCOV", but "a JUnit".
    if format.starts_with(['N', 'L']) {
        "an"
    } else {
        "a"
    }
}

fn position(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(":{line}:{column}"),
        (Some(line), None) => format!(":{line}"),
        _ => String::new(),
    }
}

/// Reads one report file as `format` says, and sums it.
///
/// Test formats give [`Summary::Test`], coverage formats [`Summary::Coverage`]. The file is
/// streamed: its size does not matter.
pub fn parse_file(format: ReportFormat, path: &Path) -> Result<Summary, ReportError> {
    Ok(match format {
        ReportFormat::Junitxml => Summary::Test(junit::parse(path)?),
        ReportFormat::Nunitxml => Summary::Test(nunit::parse(path, nunit::Version::Two)?),
        ReportFormat::Nunit3xml => Summary::Test(nunit::parse(path, nunit::Version::Three)?),
        ReportFormat::Testngxml => Summary::Test(testng::parse(path)?),
        ReportFormat::Cucumberjson => Summary::Test(cucumber::parse(path)?),
        ReportFormat::Visualstudiotrx => Summary::Test(trx::parse(path)?),
        ReportFormat::Cloverxml => Summary::Coverage(xml_coverage::parse_clover(path)?),
        ReportFormat::Coberturaxml => Summary::Coverage(xml_coverage::parse_cobertura(path)?),
        ReportFormat::Jacocoxml => Summary::Coverage(xml_coverage::parse_jacoco(path)?),
        ReportFormat::Simplecov => Summary::Coverage(simplecov::parse(path)?),
        ReportFormat::Lcovinfo => Summary::Coverage(lcov::parse(path)?),
    })
}

impl TestSummary {
    /// Adds another file's totals to these. Durations add up (a missing one counts as nothing);
    /// failures are appended while there is room.
    pub fn merge(&mut self, other: TestSummary) {
        self.total = self.total.saturating_add(other.total);
        self.passed = self.passed.saturating_add(other.passed);
        self.failed = self.failed.saturating_add(other.failed);
        self.skipped = self.skipped.saturating_add(other.skipped);
        self.errors = self.errors.saturating_add(other.errors);
        self.duration_ms = match (self.duration_ms, other.duration_ms) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            (a, b) => a.or(b),
        };
        let room = MAX_FAILURES.saturating_sub(self.failures.len());
        self.failures.extend(other.failures.into_iter().take(room));
    }

    /// Counts one test case.
    fn count(&mut self, outcome: Outcome) {
        self.total += 1;
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Error => self.errors += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }

    /// Whether one more failure would be kept (so that building it is worth the work).
    fn has_room(&self) -> bool {
        self.failures.len() < MAX_FAILURES
    }

    /// Counts one test case and, when it went wrong and there is room, keeps its failure.
    fn record(&mut self, outcome: Outcome, failure: impl FnOnce(FailureKind) -> TestFailure) {
        self.count(outcome);
        let kind = match outcome {
            Outcome::Failed => FailureKind::Failed,
            Outcome::Error => FailureKind::Error,
            Outcome::Passed | Outcome::Skipped => return,
        };
        if self.has_room() {
            self.failures.push(failure(kind));
        }
    }
}

impl CoverageSummary {
    /// The share of lines covered, in percent; `None` when there is no line to cover.
    pub fn line_percent(&self) -> Option<f64> {
        percent(self.lines_covered, self.lines_missed)
    }

    /// The share of branches covered, in percent; `None` when there is no branch.
    pub fn branch_percent(&self) -> Option<f64> {
        percent(self.branches_covered, self.branches_missed)
    }

    /// Adds another file's counters to these.
    pub fn merge(&mut self, other: CoverageSummary) {
        self.lines_covered = self.lines_covered.saturating_add(other.lines_covered);
        self.lines_missed = self.lines_missed.saturating_add(other.lines_missed);
        self.branches_covered = self.branches_covered.saturating_add(other.branches_covered);
        self.branches_missed = self.branches_missed.saturating_add(other.branches_missed);
    }

    /// Counters from a covered count and a total, as most formats give them. A total smaller
    /// than the covered count (seen in hand-edited files) counts nothing as missed.
    fn from_totals(lines: (u64, u64), branches: (u64, u64)) -> CoverageSummary {
        CoverageSummary {
            lines_covered: lines.0,
            lines_missed: lines.1.saturating_sub(lines.0),
            branches_covered: branches.0,
            branches_missed: branches.1.saturating_sub(branches.0),
        }
    }
}

fn percent(covered: u64, missed: u64) -> Option<f64> {
    let total = covered.checked_add(missed)?;
    (total > 0).then(|| covered as f64 * 100.0 / total as f64)
}

/// How one test case ended, in the four kinds every format maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Error,
    Skipped,
}

/// The text kept of a failure message: line ends as `\n`, no surrounding blank space, at most
/// [`MAX_MESSAGE_BYTES`]. `cut` says that the text was already cut while it was read, so the
/// mark must show even if what is left is short.
fn clean_message(text: &str, cut: bool) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut text = if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text.to_owned()
    };
    if text.len() > MAX_MESSAGE_BYTES || cut {
        const MARK: &str = "…";
        let mut end = text.len().min(MAX_MESSAGE_BYTES - MARK.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(MARK);
    }
    Some(text)
}

/// Seconds, as reports write them (`0.012`, `12`, and Surefire's `1,234.5` above a thousand),
/// to milliseconds. Anything else (negative, not a number) is no duration.
fn seconds_to_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let seconds: f64 = if text.contains(',') {
        text.replace(',', "").parse().ok()?
    } else {
        text.parse().ok()?
    };
    millis(seconds * 1000.0)
}

/// A non-negative, finite number of milliseconds, rounded (`as` saturates above `u64::MAX`).
fn millis(ms: f64) -> Option<u64> {
    (ms.is_finite() && ms >= 0.0).then(|| ms.round() as u64)
}

/// A few characters of a file that is not what it should be, printable, for an error message.
fn snippet(bytes: &[u8], chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next().unwrap_or_default();
    line.chars()
        .take(chars)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// The report file, as a failure names it.
fn file_name(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
