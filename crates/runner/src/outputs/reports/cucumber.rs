//! Cucumber JSON (cucumber-jvm, cucumber-js, cucumber-ruby, Behave, godog...): an array of
//! features, each with `elements` (scenarios and backgrounds), each with `steps` (and `before`
//! and `after` hooks) that have a `result.status`.
//!
//! A scenario fails when a step or a hook failed (or matched ambiguously); otherwise it is
//! skipped when a step was skipped, pending or undefined; otherwise it passed. A background is
//! not a scenario: cucumber-jvm writes it as an element of its own before each scenario, and
//! when it fails, the scenario's steps are merely skipped, so its failure is the scenario's.
//!
//! The document is folded while it is read: features, scenarios and steps are never all held.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Outcome, ReportError, TestFailure, TestSummary, clean_message, json, millis};

const FORMAT: &str = "Cucumber JSON";

pub(super) fn parse(path: &Path) -> Result<TestSummary, ReportError> {
    match json::read::<Top>(path, FORMAT)? {
        Top::Features(mut summary) => {
            let file = super::file_name(path);
            for failure in &mut summary.failures {
                failure.file = Some(file.clone());
            }
            Ok(summary)
        }
        Top::Other(what) => Err(ReportError::WrongFormat {
            path: path.to_owned(),
            format: FORMAT,
            reason: format!("the document is {what}, not an array of features"),
        }),
    }
}

/// The whole document.
enum Top {
    Features(TestSummary),
    /// Valid JSON of another kind: what it is.
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Top, D::Error> {
        deserializer.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of Cucumber features")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        let mut summary = TestSummary::default();
        let mut duration_ns: Option<f64> = None;
        while let Some(feature) = seq.next_element::<Feature>()? {
            if feature.name.is_none()
                && feature.uri.is_none()
                && feature.keyword.is_none()
                && feature.elements.is_none()
            {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(Top::Other("an array of objects that are not features"));
            }
            let Some(mut elements) = feature.elements else {
                continue;
            };
            let suite = feature
                .name
                .filter(|n| !n.trim().is_empty())
                .or(feature.uri);
            for failure in &mut elements.summary.failures {
                failure.suite.clone_from(&suite);
            }
            summary.merge(elements.summary);
            duration_ns = add_ns(duration_ns, elements.duration_ns);
        }
        // Rounded once, at the end: rounding each scenario's time would add up to an error.
        summary.duration_ms = duration_ns.and_then(|ns| millis(ns / 1e6));
        Ok(Top::Features(summary))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Top::Other("an object"))
    }

    json::scalars!(Top, Top::Other);
}

#[derive(Deserialize)]
struct Feature {
    name: Option<String>,
    uri: Option<String>,
    keyword: Option<String>,
    elements: Option<Elements>,
}

/// A feature's scenarios, counted (failures without their suite, which the feature's name,
/// perhaps written after its elements, gives).
#[derive(Default)]
struct Elements {
    summary: TestSummary,
    duration_ns: Option<f64>,
}

impl<'de> Deserialize<'de> for Elements {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Elements, D::Error> {
        deserializer.deserialize_any(ElementsVisitor)
    }
}

struct ElementsVisitor;

impl<'de> Visitor<'de> for ElementsVisitor {
    type Value = Elements;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of scenarios")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Elements, E> {
        Ok(Elements::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Elements, A::Error> {
        let mut summary = TestSummary::default();
        let mut duration_ns = None;
        let mut background: Option<Steps> = None;
        while let Some(element) = seq.next_element::<Element>()? {
            let mut steps = element.before;
            steps.then(element.steps);
            steps.then(element.after);
            duration_ns = add_ns(duration_ns, steps.duration_ns);
            let is_background = element.kind.as_deref() == Some("background")
                || element.keyword.as_deref().map(str::trim) == Some("Background");
            if is_background {
                background = Some(steps);
                continue;
            }
            if let Some(mut before) = background.take() {
                before.then(steps);
                steps = before;
            }
            let outcome = if steps.failed {
                Outcome::Failed
            } else if steps.skipped {
                Outcome::Skipped
            } else {
                Outcome::Passed
            };
            summary.record(outcome, |status| TestFailure {
                suite: None,
                name: element.name.unwrap_or_default(),
                status,
                message: steps.message,
                file: None,
            });
        }
        Ok(Elements {
            summary,
            duration_ns,
        })
    }
}

#[derive(Deserialize)]
struct Element {
    #[serde(rename = "type")]
    kind: Option<String>,
    keyword: Option<String>,
    name: Option<String>,
    #[serde(default)]
    before: Steps,
    #[serde(default)]
    steps: Steps,
    #[serde(default)]
    after: Steps,
}

/// Steps or hooks, folded: whether any failed or was skipped, the first failure's message, and
/// the time they took.
#[derive(Default)]
struct Steps {
    failed: bool,
    skipped: bool,
    message: Option<String>,
    duration_ns: Option<f64>,
}

impl Steps {
    /// Adds the steps that ran after these.
    fn then(&mut self, later: Steps) {
        if !self.failed {
            self.message = later.message;
        }
        self.failed |= later.failed;
        self.skipped |= later.skipped;
        self.duration_ns = add_ns(self.duration_ns, later.duration_ns);
    }
}

impl<'de> Deserialize<'de> for Steps {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Steps, D::Error> {
        deserializer.deserialize_any(StepsVisitor)
    }
}

struct StepsVisitor;

impl<'de> Visitor<'de> for StepsVisitor {
    type Value = Steps;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of steps")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Steps, E> {
        Ok(Steps::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Steps, A::Error> {
        let mut steps = Steps::default();
        while let Some(step) = seq.next_element::<Step>()? {
            let result = step.result.unwrap_or_default();
            let ns = result.duration.filter(|ns| ns.is_finite() && *ns >= 0.0);
            steps.duration_ns = add_ns(steps.duration_ns, ns);
            match result.status.as_deref().map(str::trim) {
                Some("passed") => {}
                Some("failed" | "ambiguous") => {
                    if !steps.failed {
                        steps.failed = true;
                        steps.message = result
                            .error_message
                            .and_then(|m| clean_message(&m, false))
                            .or_else(|| {
                                let step = format!(
                                    "{}{}",
                                    step.keyword.unwrap_or_default(),
                                    step.name.unwrap_or_default()
                                );
                                let status = result.status.as_deref().unwrap_or_default();
                                clean_message(&format!("{}: {status}", step.trim()), false)
                            });
                    }
                }
                // skipped, pending, undefined, unused, and no result at all (a dry run).
                _ => steps.skipped = true,
            }
        }
        Ok(steps)
    }
}

/// Durations add up; a missing one counts as nothing, but two missing ones stay missing.
fn add_ns(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

#[derive(Deserialize)]
struct Step {
    keyword: Option<String>,
    name: Option<String>,
    result: Option<StepResult>,
}

#[derive(Deserialize, Default)]
struct StepResult {
    status: Option<String>,
    error_message: Option<String>,
    /// Nanoseconds.
    duration: Option<f64>,
}
