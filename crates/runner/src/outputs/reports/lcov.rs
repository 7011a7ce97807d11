//! LCOV tracefiles (`lcov`, `genhtml`'s input; written by gcov tools, istanbul, coverage.py,
//! cargo-llvm-cov, c8...): one record per source file, `SF:` to `end_of_record`.
//!
//! A record's `LF:`/`LH:` (lines found, hit) and `BRF:`/`BRH:` (branches) are its totals; a
//! record without them is counted from its `DA:` and `BRDA:` lines.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use super::{CoverageSummary, ReportError, snippet};

const FORMAT: &str = "LCOV";
/// No line of a tracefile comes near this; a longer one means another kind of file, and
/// reading it whole could take all the memory.
const MAX_LINE: usize = 64 * 1024;

/// One record's numbers.
#[derive(Debug, Default)]
struct Record {
    lines_found: Option<u64>,
    lines_hit: Option<u64>,
    branches_found: Option<u64>,
    branches_hit: Option<u64>,
    da: (u64, u64),
    brda: (u64, u64),
}

impl Record {
    fn add_to(self, summary: &mut CoverageSummary) {
        let lines = match self.lines_found {
            Some(found) => (self.lines_hit.unwrap_or(0), found),
            None => self.da,
        };
        let branches = match self.branches_found {
            Some(found) => (self.branches_hit.unwrap_or(0), found),
            None => self.brda,
        };
        summary.merge(CoverageSummary::from_totals(lines, branches));
    }
}

pub(super) fn parse(path: &Path) -> Result<CoverageSummary, ReportError> {
    let io_error = |source| ReportError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io_error)?);
    let invalid = |line: u64, message: String| ReportError::Invalid {
        path: path.to_owned(),
        format: FORMAT,
        line: Some(line),
        column: None,
        message,
    };

    let mut summary = CoverageSummary::default();
    let mut record: Option<Record> = None;
    let mut records = 0_u64;
    let mut seen_anything = false;
    let mut number = 0_u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line(&mut reader, &mut line) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(invalid(
                    number + 1,
                    format!("the line is longer than {MAX_LINE} bytes"),
                ));
            }
            Err(e) => return Err(io_error(e)),
        }
        number += 1;
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        seen_anything = true;
        if text == b"end_of_record" {
            if let Some(record) = record.take() {
                record.add_to(&mut summary);
            }
            continue;
        }
        let tag = text
            .iter()
            .position(|&b| b == b':')
            .filter(|&colon| colon > 0 && text[..colon].iter().all(u8::is_ascii_uppercase));
        let Some(colon) = tag else {
            let shown = snippet(text, 40);
            if records == 0 && record.is_none() {
                return Err(ReportError::WrongFormat {
                    path: path.to_owned(),
                    format: FORMAT,
                    reason: format!("line {number} is not an LCOV entry: `{shown}`"),
                });
            }
            return Err(invalid(number, format!("not an LCOV entry: `{shown}`")));
        };
        let (tag, value) = (&text[..colon], &text[colon + 1..]);
        let value = String::from_utf8_lossy(value);
        let value = value.trim();
        let number_in = |field: &str| -> Result<u64, ReportError> {
            field.trim().parse().map_err(|_| {
                let tag = String::from_utf8_lossy(tag);
                invalid(number, format!("{tag}:{value}: `{field}` is not a count"))
            })
        };
        if tag == b"SF" {
            if let Some(record) = record.replace(Record::default()) {
                // The previous record lacks its end_of_record; it still counts.
                record.add_to(&mut summary);
            }
            records += 1;
            continue;
        }
        let current = record.get_or_insert_default();
        match tag {
            b"DA" => {
                // DA:<line>,<hits>[,<checksum>]; gcov has been seen to write negative hits.
                let hits = value.split(',').nth(1).unwrap_or_default().trim();
                let hit = match hits.parse::<i128>() {
                    Ok(hits) => hits > 0,
                    Err(_) => return Err(invalid(number, format!("DA:{value}: no hit count"))),
                };
                current.da.1 += 1;
                current.da.0 += u64::from(hit);
            }
            b"BRDA" => {
                // BRDA:<line>,<block>,<branch>,<taken>; `-` is a branch never reached. The
                // branch may be a description with spaces (coverage.py: "jump to line 7").
                let Some((_, taken)) = value.rsplit_once(',') else {
                    return Err(invalid(number, format!("BRDA:{value}: no taken count")));
                };
                let taken = taken.trim();
                let hit = taken != "-" && number_in(taken)? > 0;
                current.brda.1 += 1;
                current.brda.0 += u64::from(hit);
            }
            b"LF" => current.lines_found = Some(number_in(value)?),
            b"LH" => current.lines_hit = Some(number_in(value)?),
            b"BRF" => current.branches_found = Some(number_in(value)?),
            b"BRH" => current.branches_hit = Some(number_in(value)?),
            // TN, VER, FN, FNDA, FNF, FNH, FNL, FNA and whatever later versions add.
            _ => {}
        }
    }
    if let Some(record) = record.take() {
        record.add_to(&mut summary);
    }
    if !seen_anything {
        return Err(ReportError::Empty {
            path: path.to_owned(),
        });
    }
    if records == 0 {
        return Err(ReportError::WrongFormat {
            path: path.to_owned(),
            format: FORMAT,
            reason: "no source file record (SF:)".to_owned(),
        });
    }
    Ok(summary)
}

/// Reads one line into `line`, without its `\n`; false at the end of the file. A line longer
/// than [`MAX_LINE`] is an `InvalidData` error.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<bool> {
    let mut any = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any);
        }
        any = true;
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if line.len() + take > MAX_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        line.extend_from_slice(&chunk[..take]);
        reader.consume(take + usize::from(done));
        if done {
            return Ok(true);
        }
    }
}
