//! Many builds' lines, each prefixed with its build's identifier (in colour on a terminal), or
//! as JSON events with a `"build"` field; on a terminal, under them, the live line.

use std::io::{self, IsTerminal, Write};

use runner::dispatch::{ManyEvent, Outcome};

use super::live::Live;

/// The colours identifiers cycle through on a terminal.
const COLOURS: [u8; 6] = [36, 33, 35, 32, 34, 31];

pub(crate) struct Prefixed {
    json: bool,
    width: usize,
    colour: bool,
    index: std::collections::HashMap<String, usize>,
    live: Option<Live>,
    out: io::BufWriter<io::StdoutLock<'static>>,
    /// Lines are written as they come and flushed when the scheduler has nothing more to pass
    /// on: one write for what arrived together, not one per line. On a terminal they wait here
    /// instead, to go above the live line in one go.
    held: Vec<u8>,
    /// An event's log lines, before they are prefixed.
    scratch: Vec<u8>,
}

impl Prefixed {
    /// For the builds `ids`, in JSON with `json`.
    pub(crate) fn new(ids: &[String], json: bool) -> Prefixed {
        let terminal = io::stdout().is_terminal();
        Prefixed {
            json,
            width: ids.iter().map(String::len).max().unwrap_or(0).min(40),
            colour: terminal && std::env::var_os("NO_COLOR").is_none(),
            index: ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i))
                .collect(),
            live: (terminal && !json).then(|| Live::new(ids.len())),
            out: io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
            held: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub(crate) fn show(&mut self, event: &ManyEvent<'_>) {
        if let Some(live) = self.live.as_mut() {
            live.update(event);
        }
        if let ManyEvent::Idle = event {
            self.flush();
            return;
        }
        let mut out: &mut dyn Write = if self.live.is_some() {
            &mut self.held
        } else {
            &mut self.out
        };
        // A closed stdout must not stop the builds: their records and logs have everything.
        let _ = if self.json {
            write_json(&mut out, event)
        } else {
            let prefix = |id: &str| {
                let index = self.index.get(id).copied().unwrap_or(0);
                let colour = self.colour.then(|| COLOURS[index % COLOURS.len()]);
                (id.to_owned(), self.width, colour)
            };
            write_text(&mut out, &mut self.scratch, event, prefix)
        };
        if self.held.len() >= 64 * 1024 {
            self.flush();
        }
    }

    pub(crate) fn finish(mut self) {
        self.flush();
        if let Some(live) = self.live {
            live.finish();
        }
    }

    /// Writes out what is held and flushes, above the live line when there is one (drawn
    /// again below).
    fn flush(&mut self) {
        if self.live.is_some() && self.held.is_empty() {
            return;
        }
        let (out, held) = (&mut self.out, &mut self.held);
        let mut write = || {
            let _ = out.write_all(held);
            let _ = out.flush();
            held.clear();
        };
        match &self.live {
            Some(live) => live.suspend(write),
            None => write(),
        }
    }
}

/// An event as text lines, each prefixed with its build's identifier (padded to `width`, in
/// its colour).
fn write_text(
    out: &mut dyn Write,
    scratch: &mut Vec<u8>,
    event: &ManyEvent<'_>,
    prefix: impl Fn(&str) -> (String, usize, Option<u8>),
) -> io::Result<()> {
    scratch.clear();
    let id = match *event {
        ManyEvent::Build { id, time, event } => {
            runner::events::write_log(scratch, time, event)?;
            id
        }
        ManyEvent::Line { id, line } => {
            scratch.extend_from_slice(line);
            scratch.push(b'\n');
            id
        }
        ManyEvent::Note { id, text } => {
            writeln!(scratch, "[executor] {text}")?;
            id
        }
        ManyEvent::Started { id } => {
            scratch.extend_from_slice(b"started\n");
            id
        }
        ManyEvent::Finished { result } if result.outcome == Outcome::NotRun => {
            let reason = result.reason.as_deref().unwrap_or("");
            writeln!(scratch, "not run: {reason}")?;
            &result.id
        }
        _ => return Ok(()),
    };
    let (id, width, colour) = prefix(id);
    for line in scratch.split_inclusive(|&b| b == b'\n') {
        match colour {
            Some(c) => write!(out, "\x1b[{c}m{id:<width$}\x1b[0m | ")?,
            None => write!(out, "{id:<width$} | ")?,
        }
        out.write_all(line)?;
    }
    Ok(())
}

/// An event as a JSON line with its build's identifier; a line that is no event as a `text`
/// event, and what the executor says as an `executor` event.
fn write_json(out: &mut dyn Write, event: &ManyEvent<'_>) -> io::Result<()> {
    let value = match *event {
        ManyEvent::Build { id, time, event } => {
            return super::json::write_event(&mut *out, Some(id), time, event);
        }
        ManyEvent::Line { id, line } => serde_json::json!({
            "build": id,
            "event": "text",
            "text": String::from_utf8_lossy(line),
        }),
        ManyEvent::Note { id, text } => serde_json::json!({
            "build": id,
            "event": "executor",
            "time": jiff::Timestamp::now(),
            "message": text,
        }),
        _ => return Ok(()),
    };
    serde_json::to_writer(&mut *out, &value).map_err(io::Error::from)?;
    out.write_all(b"\n")
}
