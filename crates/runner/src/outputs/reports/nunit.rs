//! NUnit XML: version 2 (`<test-results>`) and version 3 (`<test-run>`).
//!
//! Both nest `<test-suite>` elements (assembly, namespace, fixture, parameterized method) down to
//! `<test-case>` elements, which alone are counted. A failed test case says why in
//! `<failure><message>`.

use std::path::Path;

use super::xml::{Element, XmlEvent, XmlReader};
use super::{Outcome, ReportError, TestFailure, TestSummary, seconds_to_ms};

/// Which NUnit format a file is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    Two,
    Three,
}

impl Version {
    fn format(self) -> &'static str {
        match self {
            Version::Two => "NUnit 2",
            Version::Three => "NUnit 3",
        }
    }

    fn root(self) -> &'static str {
        match self {
            Version::Two => "test-results",
            Version::Three => "test-run",
        }
    }

    /// The attribute that holds a suite's or a test's time in seconds. NUnit 2's `time` on the
    /// root is a time of day, which is why the root is never asked.
    fn time(self) -> &'static str {
        match self {
            Version::Two => "time",
            Version::Three => "duration",
        }
    }
}

#[derive(Debug)]
struct Case {
    depth: usize,
    name: String,
    suite: Option<String>,
    outcome: Outcome,
    message: Option<String>,
    /// Why the test did not run: the message of a test that cannot run (NotRunnable, Invalid)
    /// when it has no failure.
    reason: Option<String>,
}

pub(super) fn parse(path: &Path, version: Version) -> Result<TestSummary, ReportError> {
    let mut xml = XmlReader::open(path, version.format())?;
    let file = xml.file_name();
    let root = xml.root()?;
    if root.name != version.root() {
        return Err(xml.wrong_root(&root.name));
    }
    let run_time = match version {
        Version::Two => None,
        Version::Three => root.attr("duration").and_then(seconds_to_ms),
    };

    let mut summary = TestSummary::default();
    let mut suite_time: Option<u64> = None;
    let mut suites: Vec<(usize, Option<String>)> = Vec::new();
    let mut case: Option<Case> = None;
    loop {
        match xml.next()? {
            XmlEvent::Start(element) => {
                let depth = xml.depth();
                match element.name.as_str() {
                    "test-suite" if case.is_none() => {
                        if depth == 2
                            && let Some(ms) = element.attr(version.time()).and_then(seconds_to_ms)
                        {
                            suite_time = Some(suite_time.unwrap_or(0).saturating_add(ms));
                        }
                        suites.push((depth, element.text_attr("name")));
                    }
                    "test-case" if case.is_none() => {
                        let outcome = match version {
                            Version::Two => outcome_v2(&xml, &element)?,
                            Version::Three => outcome_v3(&xml, &element)?,
                        };
                        // NUnit 3 names the fixture's class; NUnit 2's names are qualified
                        // already, and the fixture is the enclosing suite.
                        let suite = element
                            .text_attr("classname")
                            .or_else(|| suites.last().and_then(|(_, name)| name.clone()));
                        case = Some(Case {
                            depth,
                            name: element.text_attr("name").unwrap_or_default(),
                            suite,
                            outcome,
                            message: None,
                            reason: None,
                        });
                    }
                    // Only the test's own failure: a suite's says "One or more child tests had
                    // errors", and <assertions> repeat each message.
                    "message"
                        if matches!(xml.ancestor(1), Some("failure" | "reason"))
                            && xml.ancestor(2) == Some("test-case") =>
                    {
                        xml.capture_text();
                    }
                    _ => {}
                }
            }
            XmlEvent::End(name) => {
                let depth = xml.depth() + 1;
                match name.as_str() {
                    "message" => {
                        if let Some(case) = &mut case {
                            let slot = if xml.ancestor(0) == Some("reason") {
                                &mut case.reason
                            } else {
                                &mut case.message
                            };
                            if slot.is_none() {
                                *slot = xml.take_text();
                            }
                        }
                    }
                    "test-case" if case.as_ref().is_some_and(|case| case.depth == depth) => {
                        if let Some(case) = case.take() {
                            summary.record(case.outcome, |status| TestFailure {
                                suite: case.suite,
                                name: case.name,
                                status,
                                message: case.message.or(case.reason),
                                file: Some(file.clone()),
                            });
                        }
                    }
                    "test-suite" if suites.last().is_some_and(|(d, _)| *d == depth) => {
                        suites.pop();
                    }
                    _ => {}
                }
            }
            XmlEvent::Eof => break,
        }
    }
    summary.duration_ms = run_time.or(suite_time);
    Ok(summary)
}

/// NUnit 2: `result` when there is one, else `executed` and `success`.
fn outcome_v2(xml: &XmlReader, case: &Element) -> Result<Outcome, ReportError> {
    let outcome = match case.attr("result").map(str::trim) {
        Some("Success") => Outcome::Passed,
        Some("Failure") => Outcome::Failed,
        Some("Error" | "Cancelled" | "NotRunnable") => Outcome::Error,
        Some("Ignored" | "Skipped" | "Inconclusive" | "NotRun") => Outcome::Skipped,
        Some(other) if !other.is_empty() => {
            return Err(xml.invalid(format!("<test-case> has the unknown result=\"{other}\"")));
        }
        _ => match (case.attr("executed"), case.attr("success")) {
            (Some(executed), _) if executed.eq_ignore_ascii_case("false") => Outcome::Skipped,
            (_, Some(success)) if success.eq_ignore_ascii_case("true") => Outcome::Passed,
            (_, Some(success)) if success.eq_ignore_ascii_case("false") => Outcome::Failed,
            _ => return Err(xml.invalid("<test-case> has no result")),
        },
    };
    Ok(outcome)
}

/// NUnit 3: `result`, refined by `label` (an error is a failure labelled `Error`).
fn outcome_v3(xml: &XmlReader, case: &Element) -> Result<Outcome, ReportError> {
    let label = case.attr("label").map(str::trim).unwrap_or_default();
    let outcome = match case.attr("result").map(str::trim) {
        Some("Passed") => Outcome::Passed,
        // A warning (Assert.Warn) does not fail the test.
        Some("Warning") => Outcome::Passed,
        Some("Failed") if matches!(label, "Error" | "Cancelled" | "Invalid") => Outcome::Error,
        Some("Failed") => Outcome::Failed,
        Some("Skipped" | "Inconclusive") => Outcome::Skipped,
        Some(other) if !other.is_empty() => {
            return Err(xml.invalid(format!("<test-case> has the unknown result=\"{other}\"")));
        }
        _ => return Err(xml.invalid("<test-case> has no result")),
    };
    Ok(outcome)
}
