//! The build's output: read from the shared pipe, markers of persistent commands taken out,
//! masked as a stream, split into lines, and passed to the log, the console and the RETRY tail.

use std::collections::VecDeque;
use std::io::{self, BufWriter, Read};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::{Build, OUTPUT_PIPE_BYTES, TAIL_LINE_BYTES, TAIL_LINES};
use crate::events::{Event, Reporter};
use crate::platform;

impl Build<'_> {
    /// Reads what the output pipe holds now, as lines (marker lines of a persistent session
    /// are taken out). Returns false at end-of-file.
    pub(super) fn read_output(&mut self) -> bool {
        if self.marker.is_some() {
            loop {
                let (open, marker) = self.pump_output();
                if marker.is_none() {
                    return open;
                }
            }
        }
        // The pipe and the buffer (one for the whole build: zeroing it per read would cost more
        // than a trivial command) are taken out while the bytes are passed on.
        let Some(mut output) = self.output_read.take() else {
            return false;
        };
        let mut buf = std::mem::take(&mut self.read_buf);
        let open = loop {
            match output.read(&mut buf) {
                Ok(0) => break false,
                Ok(n) => {
                    self.pass_output(&buf[..n], End::None);
                    if n < buf.len() {
                        break true;
                    }
                    grow(&mut buf);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        self.read_buf = buf;
        self.output_read = Some(output);
        open
    }

    /// Passes on the output that is there, up to the next command marker of a persistent
    /// session. Returns whether the pipe is still open, and the id of the marker it stopped at.
    pub(super) fn pump_output(&mut self) -> (bool, Option<String>) {
        let Some(finder) = self.marker.clone() else {
            return (self.read_output(), None);
        };
        let marker = finder.needle();
        let mut open = true;
        loop {
            // The unread part starts at `pending_pos`: consuming moves it, so a driver that is
            // many commands ahead costs no copying.
            let pending = std::mem::take(&mut self.pending_output);
            let unread = &pending[self.pending_pos..];
            if let Some(pos) = finder.find(unread) {
                let id_start = pos + marker.len();
                if let Some(nl) = memchr::memchr(b'\n', &unread[id_start..]) {
                    let id = String::from_utf8_lossy(&unread[id_start..id_start + nl]).into_owned();
                    self.pass_output(&unread[..pos], End::None);
                    self.pending_pos += id_start + nl + 1;
                    self.pending_output = pending;
                    return (open, Some(id));
                }
            }
            // Everything but what may be the start of a marker goes on now.
            let keep = partial_marker(unread, marker);
            if keep > 0 {
                self.pass_output(&unread[..keep], End::None);
                self.pending_pos += keep;
            }
            self.pending_output = pending;
            if self.pending_pos == self.pending_output.len() {
                self.pending_output.clear();
                self.pending_pos = 0;
            } else if self.pending_pos > 64 * 1024 {
                self.pending_output.drain(..self.pending_pos);
                self.pending_pos = 0;
            }
            if !open {
                return (false, None);
            }
            let Some(mut output) = self.output_read.take() else {
                return (false, None);
            };
            let mut buf = std::mem::take(&mut self.read_buf);
            let read = loop {
                match output.read(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other,
                }
            };
            match read {
                Ok(0) => open = false,
                Ok(n) => {
                    self.pending_output.extend_from_slice(&buf[..n]);
                    if n == buf.len() {
                        grow(&mut buf);
                    }
                }
                Err(_) => {
                    self.read_buf = buf;
                    self.output_read = Some(output);
                    return (true, None);
                }
            }
            self.read_buf = buf;
            self.output_read = Some(output);
        }
    }

    /// Passes output on: masked as a stream, split into lines, to the log, the console and the
    /// tail kept for RETRY patterns. At the `end` of a command, a last line without a newline
    /// is passed on too, and what was held back for masking unless it may begin a secret that
    /// the next command's output finishes; at the end of the build, everything.
    pub(super) fn pass_output(&mut self, bytes: &[u8], end: End) {
        let (log, reporter, tail, masker, stream, lines, cap) = (
            &mut self.log,
            &mut *self.reporter,
            &mut self.tail,
            &self.masker,
            &mut self.stream,
            &mut self.lines,
            &mut self.output_cap,
        );
        let renumber = self.error_lines.as_ref().zip(self.command_line);
        let now = Timestamp::now();
        let mut out = |line: &[u8]| {
            let line = match renumber.and_then(|(e, at)| e.renumber(line, at)) {
                Some(renumbered) => std::borrow::Cow::Owned(renumbered),
                None => std::borrow::Cow::Borrowed(line),
            };
            push_tail(tail, &line);
            if cap.keeps(&line) {
                output_line(log, reporter, now, &line);
            } else if let Some(limit) = cap.just_reached() {
                let text = format!(
                    "warning: the build's output reached the log limit of {} (--log-limit): \
                     what it prints from now on is counted, not kept",
                    show_size(limit)
                );
                let event = Event::Message { text: text.into() };
                let _ = crate::events::write_log(log, now, &event);
                reporter.report(now, &event);
            }
        };
        let mut to_lines = |bytes: &[u8]| lines.feed(bytes, &mut out);
        stream.feed(masker, bytes, &mut to_lines);
        match end {
            End::None => {}
            End::Command => {
                stream.settle(masker, &mut to_lines);
                lines.flush(&mut out);
            }
            End::Build => {
                stream.flush(masker, &mut to_lines);
                lines.flush(&mut out);
            }
        }
    }

    /// Reads everything already written: a finished command's output is all in the pipe.
    pub(super) fn drain_output(&mut self) {
        self.read_output();
    }

    /// Streams output until `until` or end-of-file.
    pub(super) fn wait_output_until(&mut self, until: Option<Instant>) -> bool {
        let mut ready = self.output_ready(Some(Duration::ZERO));
        if ready == Some(false) {
            // The output is usually at its end already; the record is written before a wait.
            self.save_record();
            ready = self.output_ready(until.map(|u| u.saturating_duration_since(Instant::now())));
        }
        match ready {
            None => false,
            Some(true) => self.read_output(),
            Some(false) => true,
        }
    }

    /// Whether the output can be read within `timeout`; `None` without an output pipe.
    fn output_ready(&self, timeout: Option<Duration>) -> Option<bool> {
        let output = self.output_read.as_ref()?;
        Some(
            platform::wait_readable(&[platform::borrow(output)], timeout)
                .is_ok_and(|ready| ready[0].readable),
        )
    }
}

/// What has ended with the bytes passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// Nothing: more output follows.
    None,
    /// A command.
    Command,
    /// The build: nothing follows.
    Build,
}

/// How much of the build's output the log and the console keep: a build that prints without
/// end (`yes`) must not fill the disk or the terminal. Output past the limit is counted, and
/// still reaches the RETRY tail.
#[derive(Debug, Default)]
pub(super) struct OutputCap {
    /// The limit in bytes; `None` for none.
    limit: Option<u64>,
    /// Bytes of output kept so far.
    kept: u64,
    /// Lines and bytes dropped since the limit was reached.
    pub(super) dropped_lines: u64,
    pub(super) dropped_bytes: u64,
}

impl OutputCap {
    pub(super) fn new(limit: Option<u64>) -> OutputCap {
        OutputCap {
            limit,
            ..OutputCap::default()
        }
    }

    /// Whether `line` is kept; counts it either way.
    fn keeps(&mut self, line: &[u8]) -> bool {
        let size = line.len() as u64 + 1;
        match self.limit {
            Some(limit) if self.dropped_lines > 0 || self.kept + size > limit => {
                self.dropped_lines += 1;
                self.dropped_bytes += size;
                false
            }
            _ => {
                self.kept += size;
                true
            }
        }
    }

    /// The limit, the first time a line was dropped.
    fn just_reached(&self) -> Option<u64> {
        self.limit.filter(|_| self.dropped_lines == 1)
    }

    /// The limit, once it was reached.
    pub(super) fn reached(&self) -> Option<u64> {
        self.limit.filter(|_| self.dropped_lines > 0)
    }
}

/// `104857600` as `100 MiB`.
pub(super) fn show_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// One line of the build's output (masked already) to the log and the reporter.
pub(super) fn output_line(
    log: &mut BufWriter<super::log_file::LogFile>,
    reporter: &mut dyn Reporter,
    time: Timestamp,
    line: &[u8],
) {
    let event = Event::Output { line: line.into() };
    let _ = crate::events::write_log(log, time, &event);
    reporter.report(time, &event);
}

pub(super) fn push_tail(tail: &mut VecDeque<Vec<u8>>, line: &[u8]) {
    let kept = &line[..line.len().min(TAIL_LINE_BYTES)];
    // The oldest line's buffer is reused: an allocation per line of output costs more than
    // everything else the runner does with the line.
    if tail.len() == TAIL_LINES
        && let Some(mut oldest) = tail.pop_front()
    {
        oldest.clear();
        oldest.extend_from_slice(kept);
        tail.push_back(oldest);
        return;
    }
    tail.push_back(kept.to_vec());
}

/// Where a possible command marker begins at the end of `bytes` (a marker cut by a read), or
/// `bytes.len()`: the bytes before it can go on.
pub(super) fn partial_marker(bytes: &[u8], marker: &[u8]) -> usize {
    if let Some(pos) = memchr::memmem::find(bytes, marker) {
        // A whole marker whose line has not ended yet.
        return pos;
    }
    match memchr::memrchr(marker[0], bytes) {
        Some(pos) if marker.starts_with(&bytes[pos..]) => pos,
        _ => bytes.len(),
    }
}

/// Doubles a read buffer that a read filled, up to the output pipe's size. It starts small: a
/// short build reads little, and each page of a large one costs a page fault when it is zeroed.
pub(super) fn grow(buf: &mut Vec<u8>) {
    let limit = OUTPUT_PIPE_BYTES as usize;
    if buf.len() < limit {
        buf.resize((buf.len() * 2).clamp(READ_BUF_START, limit), 0);
    }
}

/// The read buffer's first size.
pub(super) const READ_BUF_START: usize = 16 * 1024;
