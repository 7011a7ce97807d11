//! How a build's runner sends its events to the dispatcher of many builds: one frame a line, on
//! its stdout (a worker's pipe, a Slurm job's output file). The dispatcher reads them back as
//! typed events, so that whoever shows the builds renders them as it renders one build's.
//!
//! A frame starts with the record separator (0x1e), which no build writes on the runner's stdout
//! (its processes' output arrives as events), then a kind:
//!
//! - `O<micros> <bytes>`: an output line, as the build wrote it (bytes need no encoding: a line
//!   holds no newline), with its time in microseconds since the epoch;
//! - `E<json>`: any other event, with `"time"` and `"event"`, as `--log-format json` writes it.
//!
//! A line that is no frame (a runner's error message, say) is passed on as text.

use std::io::{self, Write};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::events::{Event, Reporter};

const FRAME: u8 = 0x1e;

/// An event and the time it happened: what a JSON line of events holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stamped<'a> {
    /// When it happened.
    pub time: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub event: Event<'a>,
}

/// Writes one event as a frame.
pub fn write(out: &mut impl Write, time: Timestamp, event: &Event<'_>) -> io::Result<()> {
    match event {
        Event::Output { line } => {
            write!(out, "\x1eO{} ", time.as_microsecond())?;
            out.write_all(line)?;
        }
        event => {
            out.write_all(&[FRAME, b'E'])?;
            let stamped = Stamped {
                time,
                event: event.borrowed(),
            };
            serde_json::to_writer(&mut *out, &stamped).map_err(io::Error::from)?;
        }
    }
    out.write_all(b"\n")
}

/// The event a line holds, if it is a frame (without its newline).
pub fn read(line: &[u8]) -> Option<(Timestamp, Event<'static>)> {
    match line.strip_prefix(&[FRAME])? {
        [b'O', rest @ ..] => {
            let space = memchr::memchr(b' ', rest)?;
            let micros: i64 = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
            let time = Timestamp::from_microsecond(micros).ok()?;
            let line = rest[space + 1..].to_vec();
            Some((time, Event::Output { line: line.into() }))
        }
        [b'E', json @ ..] => {
            let stamped: Stamped<'static> = serde_json::from_slice(json).ok()?;
            Some((stamped.time, stamped.event))
        }
        _ => None,
    }
}

/// A reporter that sends a build's events to its dispatcher. What comes after the build's end
/// is flushed by the caller, with what it writes next (a worker's end line), in one write.
#[derive(Debug)]
pub struct Sender<W: Write> {
    out: W,
    broken: bool,
    ended: bool,
}

impl<W: Write> Sender<W> {
    /// Sends to `out`.
    pub fn new(out: W) -> Sender<W> {
        Sender {
            out,
            broken: false,
            ended: false,
        }
    }
}

impl<W: Write> Reporter for Sender<W> {
    fn report(&mut self, time: Timestamp, event: &Event<'_>) {
        self.ended |= matches!(event, Event::BuildFinished { .. });
        // A dispatcher that is gone must not stop the build: its record and log have it all.
        if !self.broken && write(&mut self.out, time, event).is_err() {
            self.broken = true;
        }
    }

    fn flush(&mut self) {
        if !self.ended && !self.broken && self.out.flush().is_err() {
            self.broken = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use super::*;
    use crate::events::Phase;
    use crate::outcome::{Context, Status};

    #[test]
    fn every_event_reads_back_as_it_was_sent() {
        let time: Timestamp = "2026-12-08T01:02:03.456789Z".parse().expect("time");
        let context = Context {
            status_code: "COMMAND_EXECUTION_ERROR".into(),
            message: "Error while executing command: false. Reason: exit status 1".into(),
        };
        let events = [
            Event::BuildStarted {
                id: "p:1".into(),
                number: 3,
                project: "p".into(),
                buildspec: "b.yml".into(),
                source: "/src".into(),
                record_path: "/r".into(),
                log_path: "/l".into(),
            },
            Event::Message {
                text: "Phase is DOWNLOAD_SOURCE".into(),
            },
            Event::PhaseStarted {
                phase: Phase::Build,
                attempt: 2,
            },
            Event::CommandStarted {
                phase: Phase::Build,
                command: "echo \"{}\"\n".into(),
                line: 7,
                finally: true,
            },
            // Bytes that are not UTF-8, a carriage return, and what looks like a frame.
            Event::Output {
                line: Cow::Borrowed(b"\xff\xfe bytes\r\x1eE{}"),
            },
            Event::Output {
                line: Cow::Borrowed(b""),
            },
            Event::CommandFinished {
                phase: Phase::Build,
                command: "false".into(),
                exit_code: 143,
                duration: Duration::from_millis(1500),
            },
            Event::PhaseFinished {
                phase: Phase::Build,
                status: Status::Failed,
                context: Some(Cow::Borrowed(&context)),
                duration: Duration::from_millis(2),
            },
            Event::BuildFinished {
                status: Status::Failed,
                exit_code: 1,
                duration: Duration::from_secs(3),
            },
        ];
        for event in &events {
            let mut frame = Vec::new();
            write(&mut frame, time, event).expect("write");
            assert_eq!(
                frame.iter().filter(|&&b| b == b'\n').count(),
                1,
                "{event:?}"
            );
            let frame = frame.strip_suffix(b"\n").expect("newline");
            assert_eq!(read(frame), Some((time, event.clone())), "{event:?}");
        }
    }

    #[test]
    fn a_line_that_is_no_frame_is_none() {
        for line in [
            &b"error: cannot read the buildspec"[..],
            b"",
            b"{\"event\":\"message\"}",
            b"\x1e",
            b"\x1eO12",
            b"\x1eOx y",
            b"\x1eE{not json",
            b"\x1eX",
        ] {
            assert_eq!(read(line), None, "{:?}", String::from_utf8_lossy(line));
        }
    }
}
