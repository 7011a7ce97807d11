//! TestNG's `testng-results.xml`: `<testng-results>` → `<suite>` → `<test>` → `<class>` →
//! `<test-method status="PASS|FAIL|SKIP">`.
//!
//! Configuration methods (`@BeforeMethod` and kin, `is-config="true"`) are not tests and are not
//! counted; when one fails, TestNG skips the tests that depend on it, and those are counted as
//! skipped.

use std::path::Path;

use super::xml::{XmlEvent, XmlReader};
use super::{Outcome, ReportError, TestFailure, TestSummary, clean_message, millis};

const FORMAT: &str = "TestNG";

#[derive(Debug)]
struct Method {
    depth: usize,
    name: String,
    class: Option<String>,
    outcome: Outcome,
    exception: Option<String>,
    message: Option<String>,
}

pub(super) fn parse(path: &Path) -> Result<TestSummary, ReportError> {
    let mut xml = XmlReader::open(path, FORMAT)?;
    let file = xml.file_name();
    let root = xml.root()?;
    if root.name != "testng-results" {
        return Err(xml.wrong_root(&root.name));
    }

    let mut summary = TestSummary::default();
    let mut suite_time: Option<u64> = None;
    let mut method_time: Option<u64> = None;
    let mut class: Option<String> = None;
    let mut method: Option<Method> = None;
    loop {
        match xml.next()? {
            XmlEvent::Start(element) => {
                let depth = xml.depth();
                match element.name.as_str() {
                    "suite" if depth == 2 => {
                        if let Some(ms) = duration(element.attr("duration-ms")) {
                            suite_time = Some(suite_time.unwrap_or(0).saturating_add(ms));
                        }
                    }
                    "class" => class = element.text_attr("name"),
                    "test-method" if method.is_none() => {
                        let config = element
                            .attr("is-config")
                            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
                        if config {
                            continue;
                        }
                        let outcome = match element.attr("status").map(str::trim) {
                            Some("PASS") => Outcome::Passed,
                            Some("FAIL") => Outcome::Failed,
                            Some("SKIP") => Outcome::Skipped,
                            Some(other) => {
                                return Err(xml.invalid(format!(
                                    "<test-method> has the unknown status=\"{other}\""
                                )));
                            }
                            None => return Err(xml.invalid("<test-method> has no status")),
                        };
                        if let Some(ms) = duration(element.attr("duration-ms")) {
                            method_time = Some(method_time.unwrap_or(0).saturating_add(ms));
                        }
                        method = Some(Method {
                            depth,
                            name: element.text_attr("name").unwrap_or_default(),
                            class: class.clone(),
                            outcome,
                            exception: None,
                            message: None,
                        });
                    }
                    "exception" if xml.ancestor(1) == Some("test-method") => {
                        if let Some(method) = &mut method {
                            method.exception = element.text_attr("class");
                        }
                    }
                    "message"
                        if xml.ancestor(1) == Some("exception")
                            && xml.ancestor(2) == Some("test-method") =>
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
                        if let Some(method) = &mut method
                            && method.message.is_none()
                        {
                            method.message = xml.take_text();
                        }
                    }
                    "test-method" if method.as_ref().is_some_and(|m| m.depth == depth) => {
                        if let Some(method) = method.take() {
                            summary.record(method.outcome, |status| TestFailure {
                                suite: method.class,
                                name: method.name,
                                status,
                                // An exception without a message (a bare NullPointerException)
                                // is still named by its class.
                                message: method.message.or_else(|| {
                                    method.exception.and_then(|e| clean_message(&e, false))
                                }),
                                file: Some(file.clone()),
                            });
                        }
                    }
                    "class" => class = None,
                    _ => {}
                }
            }
            XmlEvent::Eof => break,
        }
    }
    summary.duration_ms = suite_time.or(method_time);
    Ok(summary)
}

fn duration(ms: Option<&str>) -> Option<u64> {
    millis(ms?.trim().parse().ok()?)
}
