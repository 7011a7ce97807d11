//! SimpleCov (Ruby), in the JSON files it leaves:
//!
//! - `coverage/.resultset.json`, SimpleCov's own: `{ "<command>": { "coverage": { "<file>":
//!   { "lines": [null, 1, 0, ...], "branches": { "<condition>": { "<branch>": hits } } } },
//!   "timestamp": ... } }`, where SimpleCov before 0.18 wrote a file's lines array directly.
//!   Several commands (RSpec, Minitest) cover the same files: as SimpleCov does, a line is
//!   covered if any command covered it.
//! - `coverage/coverage.json` of simplecov_json_formatter (SimpleCov's JSON formatter):
//!   `{ "meta": ..., "coverage": { "<file>": { "lines": [..., "ignored"], "branches": [{
//!   "coverage": hits, ... }] } } }`.
//! - `coverage/coverage.json` of the older simplecov-json gem: `{ "metrics": { "covered_lines",
//!   "total_lines" }, "files": [...] }`.
//!
//! In a lines array, `null` is a line that cannot run and `"ignored"` one under `:nocov:`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{CoverageSummary, ReportError, json};

const FORMAT: &str = "SimpleCov";

/// A line that cannot run, or is ignored.
const IRRELEVANT: u8 = 0;
const MISSED: u8 = 1;
const COVERED: u8 = 2;

pub(super) fn parse(path: &Path) -> Result<CoverageSummary, ReportError> {
    let wrong = |reason: String| ReportError::WrongFormat {
        path: path.to_owned(),
        format: FORMAT,
        reason,
    };
    let top = match json::read::<Top>(path, FORMAT)? {
        Top::Object(top) => top,
        Top::Other(what) => return Err(wrong(format!("the document is {what}, not an object"))),
    };
    if top.found_coverage {
        let mut summary = CoverageSummary::default();
        for file in top.files.into_values() {
            for line in file.lines {
                match line {
                    COVERED => summary.lines_covered += 1,
                    MISSED => summary.lines_missed += 1,
                    _ => {}
                }
            }
            for covered in file.branches.into_values() {
                if covered {
                    summary.branches_covered += 1;
                } else {
                    summary.branches_missed += 1;
                }
            }
        }
        return Ok(summary);
    }
    match top.metrics {
        Some(Metrics {
            covered_lines: Some(covered_lines),
            total_lines: Some(total_lines),
            covered_branches,
            total_branches,
        }) => Ok(CoverageSummary::from_totals(
            (covered_lines, total_lines),
            (covered_branches.unwrap_or(0), total_branches.unwrap_or(0)),
        )),
        _ => Err(wrong(
            "no coverage: neither commands with a `coverage` map (.resultset.json), nor a \
             `coverage` map or `metrics` (coverage.json)"
                .to_owned(),
        )),
    }
}

/// One file's coverage, merged over the commands that ran it.
#[derive(Debug, Default)]
struct Merged {
    lines: Vec<u8>,
    branches: HashMap<String, bool>,
}

impl Merged {
    fn merge(&mut self, other: FileCoverage) {
        if self.lines.len() < other.lines.len() {
            self.lines.resize(other.lines.len(), IRRELEVANT);
        }
        for (mine, theirs) in self.lines.iter_mut().zip(other.lines) {
            *mine = (*mine).max(theirs);
        }
        for (branch, covered) in other.branches {
            *self.branches.entry(branch).or_default() |= covered;
        }
    }
}

#[derive(Debug, Default)]
struct Found {
    files: HashMap<String, Merged>,
    found_coverage: bool,
    metrics: Option<Metrics>,
}

impl Found {
    fn add(&mut self, files: FileMap) {
        self.found_coverage = true;
        for (name, coverage) in files.0 {
            self.files.entry(name).or_default().merge(coverage);
        }
    }
}

enum Top {
    Object(Found),
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
        f.write_str("a SimpleCov result object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut found = Found::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "coverage" => {
                    let files = map.next_value::<FileMap>()?;
                    found.add(files);
                }
                "metrics" => found.metrics = Some(map.next_value()?),
                "meta" | "groups" | "timestamp" | "command_name" | "files" | "errors" => {
                    map.next_value::<IgnoredAny>()?;
                }
                // A command's result, named after the command ("RSpec", "Minitest", ...).
                _ => {
                    if let Command(Some(files)) = map.next_value()? {
                        found.add(files);
                    }
                }
            }
        }
        Ok(Top::Object(found))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::Other("an array"))
    }

    json::scalars!(Top, Top::Other);
}

#[derive(Debug, Deserialize)]
struct Metrics {
    covered_lines: Option<u64>,
    total_lines: Option<u64>,
    covered_branches: Option<u64>,
    total_branches: Option<u64>,
}

/// A value at the top of `.resultset.json`: the command's `coverage`, when it is an object
/// that has one.
struct Command(Option<FileMap>);

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Command, D::Error> {
        deserializer.deserialize_any(CommandVisitor)
    }
}

struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = Command;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command's result")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Command, A::Error> {
        let mut files = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "coverage" {
                files = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Command(files))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Command(None))
    }

    json::scalars!(Command, |_| Command(None));
}

/// Source files and their coverage.
#[derive(Deserialize)]
struct FileMap(HashMap<String, FileCoverage>);

/// One source file: its lines (one byte each) and its branches by a key that is the same in
/// every command.
#[derive(Debug, Default)]
struct FileCoverage {
    lines: Vec<u8>,
    branches: HashMap<String, bool>,
}

impl<'de> Deserialize<'de> for FileCoverage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FileCoverage, D::Error> {
        deserializer.deserialize_any(FileVisitor)
    }
}

struct FileVisitor;

impl<'de> Visitor<'de> for FileVisitor {
    type Value = FileCoverage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a file's coverage: an array of lines, or an object with `lines`")
    }

    /// SimpleCov before 0.18: the lines, and nothing else.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<FileCoverage, A::Error> {
        Ok(FileCoverage {
            lines: LinesVisitor.visit_seq(seq)?.0,
            branches: HashMap::new(),
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileCoverage, A::Error> {
        let mut file = FileCoverage::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "lines" => file.lines = map.next_value::<Lines>()?.0,
                "branches" => file.branches = map.next_value::<Branches>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(file)
    }
}

struct Lines(Vec<u8>);

impl<'de> Deserialize<'de> for Lines {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Lines, D::Error> {
        deserializer.deserialize_any(LinesVisitor)
    }
}

struct LinesVisitor;

impl<'de> Visitor<'de> for LinesVisitor {
    type Value = Lines;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of line hits")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Lines, E> {
        Ok(Lines(Vec::new()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lines, A::Error> {
        let mut lines = Vec::new();
        while let Some(Hits(state)) = seq.next_element()? {
            lines.push(state);
        }
        Ok(Lines(lines))
    }
}

/// A line's or a branch's hits: `null` and strings (`"ignored"`) do not count.
struct Hits(u8);

impl<'de> Deserialize<'de> for Hits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hits, D::Error> {
        deserializer.deserialize_any(HitsVisitor)
    }
}

struct HitsVisitor;

impl Visitor<'_> for HitsVisitor {
    type Value = Hits;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a hit count, null or \"ignored\"")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Hits, E> {
        Ok(Hits(IRRELEVANT))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Hits, E> {
        Ok(Hits(IRRELEVANT))
    }

    fn visit_u64<E: de::Error>(self, hits: u64) -> Result<Hits, E> {
        Ok(Hits(if hits > 0 { COVERED } else { MISSED }))
    }

    fn visit_i64<E: de::Error>(self, hits: i64) -> Result<Hits, E> {
        Ok(Hits(if hits > 0 { COVERED } else { MISSED }))
    }

    fn visit_f64<E: de::Error>(self, hits: f64) -> Result<Hits, E> {
        Ok(Hits(if hits > 0.0 { COVERED } else { MISSED }))
    }
}

/// A file's branches: whether each was taken.
struct Branches(HashMap<String, bool>);

impl<'de> Deserialize<'de> for Branches {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Branches, D::Error> {
        deserializer.deserialize_any(BranchesVisitor)
    }
}

struct BranchesVisitor;

impl<'de> Visitor<'de> for BranchesVisitor {
    type Value = Branches;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("branches: an object of conditions, or an array")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Branches, E> {
        Ok(Branches(HashMap::new()))
    }

    /// `.resultset.json`: `{ "[:if, 0, 3, 4, 7, 7]": { "[:then, 1, 4, 6, 4, 10]": 1, ... } }`.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Branches, A::Error> {
        let mut branches = HashMap::new();
        while let Some(condition) = map.next_key::<String>()? {
            let Outcomes(outcomes) = map.next_value()?;
            for (branch, hits) in outcomes {
                match hits {
                    COVERED => branches.insert(format!("{condition} {branch}"), true),
                    MISSED => branches.insert(format!("{condition} {branch}"), false),
                    _ => None,
                };
            }
        }
        Ok(Branches(branches))
    }

    /// coverage.json: `[{ "type": "then", "start_line": 3, "coverage": 1 }, ...]`.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Branches, A::Error> {
        let mut branches = HashMap::new();
        let mut index = 0_usize;
        while let Some(branch) = seq.next_element::<FormattedBranch>()? {
            match branch.coverage.map(|Hits(h)| h) {
                Some(COVERED) => branches.insert(index.to_string(), true),
                Some(MISSED) => branches.insert(index.to_string(), false),
                _ => None,
            };
            index += 1;
        }
        Ok(Branches(branches))
    }
}

#[derive(Deserialize)]
struct FormattedBranch {
    coverage: Option<Hits>,
}

/// The branches of one condition, with their hits.
struct Outcomes(Vec<(String, u8)>);

impl<'de> Deserialize<'de> for Outcomes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Outcomes, D::Error> {
        deserializer.deserialize_map(OutcomesVisitor)
    }
}

struct OutcomesVisitor;

impl<'de> Visitor<'de> for OutcomesVisitor {
    type Value = Outcomes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of branches and their hits")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Outcomes, A::Error> {
        let mut outcomes = Vec::new();
        while let Some((branch, Hits(hits))) = map.next_entry::<String, Hits>()? {
            outcomes.push((branch, hits));
        }
        Ok(Outcomes(outcomes))
    }
}
