//! JUnit XML, in the dialects of the tools that write it: cargo-nextest, pytest, Maven Surefire,
//! jest-junit, go-junit-report, and the many that copy them.
//!
//! The root is `<testsuites>` or a bare `<testsuite>`; suites may nest. Totals come from the
//! `<testcase>` elements, because the suites' own `tests`/`failures` attributes are often wrong
//! (missing, or counting reruns); only a report without any test case is read from them.

use std::path::Path;

use super::xml::{Element, XmlEvent, XmlReader};
use super::{Outcome, ReportError, TestFailure, TestSummary, clean_message, seconds_to_ms};

const FORMAT: &str = "JUnit";

/// The test case being read.
#[derive(Debug)]
struct Case {
    depth: usize,
    name: String,
    classname: Option<String>,
    suite: Option<String>,
    failure: Option<Problem>,
    error: Option<Problem>,
    skipped: bool,
}

/// A `<failure>` or `<error>` of a test case.
#[derive(Debug, Default)]
struct Problem {
    attribute: Option<String>,
    body: Option<String>,
}

/// Counts of the suites' attributes, for reports without test cases.
#[derive(Debug, Default)]
struct Declared {
    tests: u64,
    failures: u64,
    errors: u64,
    skipped: u64,
}

pub(super) fn parse(path: &Path) -> Result<TestSummary, ReportError> {
    let mut xml = XmlReader::open(path, FORMAT)?;
    let file = xml.file_name();
    let root = xml.root()?;
    // The depth of the suites whose time and counts are the report's: the children of
    // <testsuites>, or the root itself.
    let top = match root.name.as_str() {
        "testsuites" => 2,
        "testsuite" => 1,
        other => return Err(xml.wrong_root(other)),
    };

    let mut summary = TestSummary::default();
    let root_time = root.attr("time").and_then(seconds_to_ms);
    let mut root_declared = None;
    let mut top_time: Option<u64> = None;
    let mut top_declared: Option<Declared> = None;
    let mut case_time: Option<u64> = None;
    let mut cases = 0_u64;
    // The names of the open suites, innermost last.
    let mut suites: Vec<(usize, Option<String>)> = Vec::new();
    let mut case: Option<Case> = None;

    let mut event = XmlEvent::Start(root);
    loop {
        match event {
            XmlEvent::Start(element) => {
                let depth = xml.depth();
                match element.name.as_str() {
                    "testsuite" if case.is_none() => {
                        if depth == top {
                            if let Some(ms) = element.attr("time").and_then(seconds_to_ms) {
                                top_time = Some(top_time.unwrap_or(0).saturating_add(ms));
                            }
                            let declared = top_declared.get_or_insert_default();
                            add_declared(&xml, &element, declared)?;
                        }
                        suites.push((depth, element.text_attr("name")));
                    }
                    "testsuites" if depth == 1 => {
                        let mut declared = Declared::default();
                        add_declared(&xml, &element, &mut declared)?;
                        root_declared = Some(declared);
                    }
                    "testcase" if case.is_none() => {
                        if let Some(ms) = element.attr("time").and_then(seconds_to_ms) {
                            case_time = Some(case_time.unwrap_or(0).saturating_add(ms));
                        }
                        case = Some(Case {
                            depth,
                            name: element.text_attr("name").unwrap_or_default(),
                            classname: element.text_attr("classname"),
                            suite: suites.last().and_then(|(_, name)| name.clone()),
                            failure: None,
                            error: None,
                            skipped: false,
                        });
                    }
                    // Only the test case's own children: `<flakyFailure>`, `<rerunFailure>`
                    // and their kin record attempts before the one that counts.
                    name @ ("failure" | "error" | "skipped")
                        if case.as_ref().is_some_and(|case| case.depth + 1 == depth) =>
                    {
                        if let Some(case) = &mut case {
                            let problem = Problem {
                                attribute: element
                                    .attr("message")
                                    .and_then(|m| clean_message(m, false)),
                                body: None,
                            };
                            match name {
                                "failure" if case.failure.is_none() => {
                                    case.failure = Some(problem);
                                    xml.capture_text();
                                }
                                "error" if case.error.is_none() => {
                                    case.error = Some(problem);
                                    xml.capture_text();
                                }
                                "skipped" => case.skipped = true,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            XmlEvent::End(name) => {
                let depth = xml.depth() + 1;
                match name.as_str() {
                    "failure" | "error" => {
                        if let Some(case) = &mut case {
                            let problem = if name == "failure" {
                                case.failure.as_mut()
                            } else {
                                case.error.as_mut()
                            };
                            if let Some(problem) = problem.filter(|p| p.body.is_none()) {
                                problem.body = xml.take_text();
                            }
                        }
                    }
                    "testcase" if case.as_ref().is_some_and(|case| case.depth == depth) => {
                        if let Some(case) = case.take() {
                            cases += 1;
                            finish_case(&mut summary, case, &file);
                        }
                    }
                    "testsuite" if suites.last().is_some_and(|(d, _)| *d == depth) => {
                        suites.pop();
                    }
                    _ => {}
                }
            }
            XmlEvent::Eof => break,
        }
        event = xml.next()?;
    }

    if cases == 0
        && let Some(declared) = top_declared.or(root_declared)
    {
        summary.total = declared.tests;
        summary.failed = declared.failures;
        summary.errors = declared.errors;
        summary.skipped = declared.skipped;
        summary.passed = declared.tests.saturating_sub(
            declared
                .failures
                .saturating_add(declared.errors)
                .saturating_add(declared.skipped),
        );
    }
    // The run's own time includes what happens between suites; a sum of test cases does not,
    // but it is better than nothing.
    summary.duration_ms = root_time.or(top_time).or(case_time);
    Ok(summary)
}

fn add_declared(
    xml: &XmlReader,
    element: &Element,
    declared: &mut Declared,
) -> Result<(), ReportError> {
    let add = |total: &mut u64, key| -> Result<(), ReportError> {
        *total = total.saturating_add(xml.count(element, key)?.unwrap_or(0));
        Ok(())
    };
    add(&mut declared.tests, "tests")?;
    add(&mut declared.failures, "failures")?;
    add(&mut declared.errors, "errors")?;
    add(&mut declared.skipped, "skipped")?;
    Ok(())
}

fn finish_case(summary: &mut TestSummary, case: Case, file: &str) {
    // A test whose assertion failed and whose teardown then erred (pytest writes both) failed.
    let (outcome, problem) = match (case.failure, case.error) {
        (Some(failure), _) => (Outcome::Failed, Some(failure)),
        (None, Some(error)) => (Outcome::Error, Some(error)),
        (None, None) if case.skipped => (Outcome::Skipped, None),
        (None, None) => (Outcome::Passed, None),
    };
    summary.record(outcome, |status| {
        // The class names the test better than the suite (pytest's suite is "pytest"), unless it
        // merely repeats the test's name, as jest-junit's does.
        let suite = case
            .classname
            .filter(|classname| *classname != case.name)
            .or(case.suite);
        TestFailure {
            suite,
            name: case.name,
            status,
            message: problem.and_then(message),
            file: Some(file.to_owned()),
        }
    });
}

/// The message of a failure: its `message` attribute, unless the body says more.
fn message(problem: Problem) -> Option<String> {
    match (problem.attribute, problem.body) {
        (None, body) => body,
        (Some(attribute), None) => Some(attribute),
        (Some(attribute), Some(body)) => {
            // go-junit-report writes message="Failed" and the test's output in the body.
            let placeholder = ["failed", "failure", "error", "build error", "runtime error"]
                .iter()
                .any(|p| attribute.eq_ignore_ascii_case(p));
            // cargo-nextest's attribute is the first line of the body (the panic's location);
            // the body goes on with the panic's message.
            let first_line_of_body = body.len() > attribute.len() && body.starts_with(&attribute);
            if placeholder || first_line_of_body {
                Some(body)
            } else {
                Some(attribute)
            }
        }
    }
}
