//! Visual Studio TRX (`dotnet test --logger trx`, VSTest, MSTest):
//! `<TestRun>` → `<Results>` → `<UnitTestResult outcome="...">`.
//!
//! A data-driven test (MSTest's `DataRow`) is one result with `<InnerResults>`: its rows are
//! counted, not the result that sums them up. The class of a test is not in its result but in
//! `<TestDefinitions>`, which comes after the results: it is looked up for the failures kept.

use std::collections::HashMap;
use std::path::Path;

use jiff::Timestamp;

use super::xml::{Element, XmlEvent, XmlReader};
use super::{Outcome, ReportError, TestFailure, TestSummary, millis};

const FORMAT: &str = "Visual Studio TRX";

#[derive(Debug)]
struct Result {
    depth: usize,
    test_id: Option<String>,
    name: String,
    outcome: Outcome,
    message: Option<String>,
    /// It holds the results of its data rows, which count instead.
    has_inner: bool,
}

pub(super) fn parse(path: &Path) -> std::result::Result<TestSummary, ReportError> {
    let mut xml = XmlReader::open(path, FORMAT)?;
    let file = xml.file_name();
    let root = xml.root()?;
    if root.name != "TestRun" {
        return Err(xml.wrong_root(&root.name));
    }

    let mut summary = TestSummary::default();
    let mut run_time: Option<u64> = None;
    let mut result_time: Option<u64> = None;
    let mut results: Vec<Result> = Vec::new();
    // The failures kept, by test id, for their class.
    let mut pending: HashMap<String, Vec<usize>> = HashMap::new();
    let mut definition: Option<String> = None;
    loop {
        match xml.next()? {
            XmlEvent::Start(element) => {
                let depth = xml.depth();
                match element.name.as_str() {
                    "Times" if depth == 2 => run_time = times(&element),
                    "UnitTestResult" => {
                        let outcome = outcome(&xml, &element)?;
                        if let Some(parent) = results.last_mut() {
                            parent.has_inner = true;
                        }
                        if let Some(ms) = element.attr("duration").and_then(timespan_ms) {
                            result_time = Some(result_time.unwrap_or(0).saturating_add(ms));
                        }
                        results.push(Result {
                            depth,
                            test_id: element.text_attr("testId"),
                            name: element.text_attr("testName").unwrap_or_default(),
                            outcome,
                            message: None,
                            has_inner: false,
                        });
                    }
                    "Message"
                        if xml.ancestor(1) == Some("ErrorInfo")
                            && xml.ancestor(2) == Some("Output")
                            && xml.ancestor(3) == Some("UnitTestResult") =>
                    {
                        xml.capture_text();
                    }
                    "UnitTest" if !pending.is_empty() => {
                        definition = element.text_attr("id");
                    }
                    "TestMethod" if xml.ancestor(1) == Some("UnitTest") => {
                        let indices = definition.as_ref().and_then(|id| pending.remove(id));
                        // MSTest may qualify the class with its assembly: "Ns.Class, Assembly,
                        // Version=...".
                        let class = element
                            .text_attr("className")
                            .map(|c| c.split(',').next().unwrap_or_default().trim().to_owned());
                        for index in indices.unwrap_or_default() {
                            if let Some(failure) = summary.failures.get_mut(index) {
                                failure.suite.clone_from(&class);
                            }
                        }
                    }
                    _ => {}
                }
            }
            XmlEvent::End(name) => {
                let depth = xml.depth() + 1;
                match name.as_str() {
                    "Message" => {
                        if let Some(result) = results.last_mut()
                            && result.message.is_none()
                        {
                            result.message = xml.take_text();
                        }
                    }
                    "UnitTestResult" if results.last().is_some_and(|r| r.depth == depth) => {
                        let Some(result) = results.pop() else {
                            continue;
                        };
                        if result.has_inner {
                            continue;
                        }
                        let kept = summary.failures.len();
                        let test_id = result.test_id;
                        summary.record(result.outcome, |status| TestFailure {
                            suite: None,
                            name: result.name,
                            status,
                            message: result.message,
                            file: Some(file.clone()),
                        });
                        if summary.failures.len() > kept
                            && let Some(id) = test_id
                        {
                            pending.entry(id).or_default().push(kept);
                        }
                    }
                    "UnitTest" => definition = None,
                    _ => {}
                }
            }
            XmlEvent::Eof => break,
        }
    }
    summary.duration_ms = run_time.or(result_time);
    Ok(summary)
}

fn outcome(xml: &XmlReader, result: &Element) -> std::result::Result<Outcome, ReportError> {
    let outcome = match result.attr("outcome").map(str::trim) {
        Some("Passed" | "PassedButRunAborted" | "Warning" | "Completed") => Outcome::Passed,
        Some("Failed") => Outcome::Failed,
        Some("Error" | "Timeout" | "Aborted" | "NotRunnable" | "Disconnected") => Outcome::Error,
        Some("NotExecuted" | "Inconclusive" | "Pending" | "InProgress") => Outcome::Skipped,
        Some(other) => {
            return Err(xml.invalid(format!(
                "<UnitTestResult> has the unknown outcome=\"{other}\""
            )));
        }
        None => return Err(xml.invalid("<UnitTestResult> has no outcome")),
    };
    Ok(outcome)
}

/// The run's time, from `<Times start=... finish=...>`.
fn times(times: &Element) -> Option<u64> {
    let start: Timestamp = times.attr("start")?.trim().parse().ok()?;
    let finish: Timestamp = times.attr("finish")?.trim().parse().ok()?;
    u64::try_from(finish.duration_since(start).as_millis()).ok()
}

/// A .NET `TimeSpan` as TRX writes it: `[d.]hh:mm:ss[.fffffff]`.
fn timespan_ms(text: &str) -> Option<u64> {
    let mut parts = text.trim().split(':');
    let (hours, minutes, seconds) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let hours = match hours.split_once('.') {
        Some((days, hours)) => days.parse::<f64>().ok()? * 24.0 + hours.parse::<f64>().ok()?,
        None => hours.parse::<f64>().ok()?,
    };
    let minutes: f64 = minutes.parse().ok()?;
    let seconds: f64 = seconds.parse().ok()?;
    millis(((hours * 60.0 + minutes) * 60.0 + seconds) * 1000.0)
}
