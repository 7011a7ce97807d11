//! Coverage in XML: Cobertura, JaCoCo and Clover.

use std::path::Path;

use super::xml::{Element, XmlEvent, XmlReader};
use super::{CoverageSummary, ReportError};

/// Cobertura (coverage.py, istanbul, gcovr, Cobertura itself): the totals of the root
/// `<coverage lines-covered lines-valid branches-covered branches-valid>`, or, when a tool
/// leaves them out, the `<line hits branch condition-coverage>` elements of each class.
pub(super) fn parse_cobertura(path: &Path) -> Result<CoverageSummary, ReportError> {
    let mut xml = XmlReader::open(path, "Cobertura")?;
    let root = xml.root()?;
    if root.name != "coverage" {
        return Err(xml.wrong_root(&root.name));
    }
    if root.attr("clover").is_some() {
        return Err(xml.wrong_format("the root <coverage> is Clover's (it has a clover attribute)"));
    }
    let lines = pair(&xml, &root, "lines-covered", "lines-valid")?;
    let branches = pair(&xml, &root, "branches-covered", "branches-valid")?;

    let mut counted = CoverageSummary::default();
    loop {
        match xml.next()? {
            XmlEvent::Start(element) => match element.name.as_str() {
                "project" if xml.depth() == 2 => {
                    return Err(xml.wrong_format("<coverage> holds a Clover <project>"));
                }
                // A class's lines, not its methods' (istanbul lists some lines in both).
                "line" if xml.ancestor(1) == Some("lines") && xml.ancestor(2) == Some("class") => {
                    count_line(&xml, &element, &mut counted)?;
                }
                _ => {}
            },
            XmlEvent::End(_) => {}
            XmlEvent::Eof => break,
        }
    }

    let mut summary = counted;
    if let Some((covered, valid)) = lines {
        summary.lines_covered = covered;
        summary.lines_missed = valid.saturating_sub(covered);
    }
    if let Some((covered, valid)) = branches {
        summary.branches_covered = covered;
        summary.branches_missed = valid.saturating_sub(covered);
    }
    Ok(summary)
}

fn count_line(
    xml: &XmlReader,
    line: &Element,
    counted: &mut CoverageSummary,
) -> Result<(), ReportError> {
    if xml.count(line, "hits")?.unwrap_or(0) > 0 {
        counted.lines_covered += 1;
    } else {
        counted.lines_missed += 1;
    }
    let branch = line
        .attr("branch")
        .is_some_and(|b| b.trim().eq_ignore_ascii_case("true"));
    if let Some(conditions) = line.attr("condition-coverage").filter(|_| branch) {
        // "50% (1/2)"
        let fraction = conditions
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .and_then(|(fraction, _)| fraction.split_once('/'))
            .and_then(|(covered, total)| {
                Some((
                    covered.trim().parse::<u64>().ok()?,
                    total.trim().parse::<u64>().ok()?,
                ))
            });
        let Some((covered, total)) = fraction else {
            return Err(xml.invalid(format!(
                "<line> has condition-coverage=\"{conditions}\", not \"percent (covered/total)\""
            )));
        };
        counted.branches_covered = counted.branches_covered.saturating_add(covered);
        counted.branches_missed = counted
            .branches_missed
            .saturating_add(total.saturating_sub(covered));
    }
    Ok(())
}

/// Two count attributes that go together: both, or neither (then the lines are counted).
fn pair(
    xml: &XmlReader,
    element: &Element,
    covered: &str,
    total: &str,
) -> Result<Option<(u64, u64)>, ReportError> {
    Ok(
        match (xml.count(element, covered)?, xml.count(element, total)?) {
            (Some(covered), Some(total)) => Some((covered, total)),
            _ => None,
        },
    )
}

/// JaCoCo: the `<counter type="LINE|BRANCH" missed covered>` elements that are children of
/// `<report>`. Every package, class, method and source file has counters of its own; only the
/// report's are its totals.
pub(super) fn parse_jacoco(path: &Path) -> Result<CoverageSummary, ReportError> {
    let mut xml = XmlReader::open(path, "JaCoCo")?;
    let root = xml.root()?;
    if root.name != "report" {
        return Err(xml.wrong_root(&root.name));
    }
    let mut summary = CoverageSummary::default();
    loop {
        match xml.next()? {
            XmlEvent::Start(element) if element.name == "counter" && xml.depth() == 2 => {
                let missed = xml.count(&element, "missed")?.unwrap_or(0);
                let covered = xml.count(&element, "covered")?.unwrap_or(0);
                match element.attr("type").map(str::trim) {
                    Some("LINE") => {
                        summary.lines_covered = covered;
                        summary.lines_missed = missed;
                    }
                    Some("BRANCH") => {
                        summary.branches_covered = covered;
                        summary.branches_missed = missed;
                    }
                    _ => {}
                }
            }
            XmlEvent::Start(_) | XmlEvent::End(_) => {}
            XmlEvent::Eof => break,
        }
    }
    Ok(summary)
}

/// Clover (OpenClover, PHPUnit, istanbul): the `<metrics>` child of `<project>`. Lines are its
/// statements, branches its conditionals.
pub(super) fn parse_clover(path: &Path) -> Result<CoverageSummary, ReportError> {
    let mut xml = XmlReader::open(path, "Clover")?;
    let root = xml.root()?;
    if root.name != "coverage" {
        return Err(xml.wrong_root(&root.name));
    }
    let mut project = false;
    let mut summary = None;
    loop {
        match xml.next()? {
            XmlEvent::Start(element) => match element.name.as_str() {
                "project" if xml.depth() == 2 => project = true,
                "metrics" if xml.depth() == 3 && xml.ancestor(1) == Some("project") => {
                    let statements = xml.count(&element, "statements")?.unwrap_or(0);
                    let covered_statements = xml.count(&element, "coveredstatements")?.unwrap_or(0);
                    let conditionals = xml.count(&element, "conditionals")?.unwrap_or(0);
                    let covered_conditionals =
                        xml.count(&element, "coveredconditionals")?.unwrap_or(0);
                    summary = Some(CoverageSummary::from_totals(
                        (covered_statements, statements),
                        (covered_conditionals, conditionals),
                    ));
                }
                _ => {}
            },
            XmlEvent::End(_) => {}
            XmlEvent::Eof => break,
        }
    }
    match summary {
        Some(summary) => Ok(summary),
        None if project => Err(xml.wrong_format("<project> has no <metrics>")),
        None => Err(xml.wrong_format(
            "<coverage> has no <project> (Cobertura's <coverage> has <packages> instead)",
        )),
    }
}
