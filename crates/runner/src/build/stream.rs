//! The build's output: read from the shared pipe, markers of persistent commands taken out,
//! masked as a stream, split into lines, and passed to the log, the console and the RETRY tail.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::output::LineBuffer;
use super::shell::ErrorLines;
use super::{Build, OUTPUT_PIPE_BYTES, TAIL_LINE_BYTES, TAIL_LINES};
use crate::env::mask::{MaskedStream, Masker};
use crate::events::{Event, Reporter};
use crate::platform;

/// The build's output on its way out: the pipe every command writes to, what was read and not
/// yet passed on, the masking of a stream, the lines, the log limit, and the tail RETRY
/// patterns look at. Where the lines go is a [`Sink`].
pub(super) struct Pump {
    /// The read end of the output pipe, once a command has run.
    pub(super) read: Option<File>,
    /// Its write end, given to every command; closed at the end of the build.
    pub(super) write: Option<OwnedFd>,
    /// One buffer for the whole build: zeroing it per read would cost more than a trivial
    /// command.
    read_buf: Vec<u8>,
    /// The start of the marker lines that delimit persistent commands' output.
    pub(super) marker: Option<memchr::memmem::Finder<'static>>,
    /// Output read but not yet passed on (after a marker), from `pending_pos` on.
    pending: Vec<u8>,
    pending_pos: usize,
    stream: MaskedStream,
    lines: LineBuffer,
    /// How much output the log and the console keep.
    pub(super) cap: OutputCap,
    /// The last lines, for RETRY patterns.
    pub(super) tail: VecDeque<Vec<u8>>,
    /// How the shell's error lines of a compat script are renumbered to the buildspec's lines.
    pub(super) error_lines: Option<ErrorLines>,
    /// The buildspec line of the compat command running, whose error lines are renumbered.
    pub(super) command_line: Option<u32>,
}

/// Where output lines go: the build's log and its reporter, masked with its masker.
pub(super) struct Sink<'a> {
    pub(super) log: &'a mut dyn Write,
    pub(super) reporter: &'a mut dyn Reporter,
    pub(super) masker: &'a Masker,
}

impl Pump {
    /// A pump keeping at most `log_limit` bytes of output.
    pub(super) fn new(log_limit: Option<u64>) -> Pump {
        Pump {
            read: None,
            write: None,
            read_buf: vec![0u8; READ_BUF_START],
            marker: None,
            pending: Vec::new(),
            pending_pos: 0,
            stream: MaskedStream::default(),
            lines: LineBuffer::default(),
            cap: OutputCap::new(log_limit),
            tail: VecDeque::new(),
            error_lines: None,
            command_line: None,
        }
    }

    /// Opens the output pipe: read without blocking, as large as the system allows (a command
    /// that writes much waits less for the runner to read).
    pub(super) fn open(&mut self) -> io::Result<()> {
        let (read, write) = platform::pipe()?;
        platform::set_nonblocking(platform::borrow(&read))?;
        platform::enlarge_pipe(platform::borrow(&read), OUTPUT_PIPE_BYTES);
        self.read = Some(File::from(read));
        self.write = Some(write);
        Ok(())
    }

    /// Reads what the output pipe holds now, as lines (marker lines of a persistent session
    /// are taken out). Returns false at end-of-file.
    pub(super) fn read(&mut self, sink: &mut Sink<'_>) -> bool {
        if self.marker.is_some() {
            loop {
                let (open, marker) = self.pump(sink);
                if marker.is_none() {
                    return open;
                }
            }
        }
        // The pipe and the buffer are taken out while the bytes are passed on.
        let Some(mut output) = self.read.take() else {
            return false;
        };
        let mut buf = std::mem::take(&mut self.read_buf);
        let open = loop {
            match output.read(&mut buf) {
                Ok(0) => break false,
                Ok(n) => {
                    self.pass(&buf[..n], End::None, sink);
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
        self.read = Some(output);
        open
    }

    /// Passes on the output that is there, up to the next command marker of a persistent
    /// session. Returns whether the pipe is still open, and the id of the marker it stopped at.
    pub(super) fn pump(&mut self, sink: &mut Sink<'_>) -> (bool, Option<String>) {
        let Some(finder) = self.marker.clone() else {
            return (self.read(sink), None);
        };
        let marker = finder.needle();
        let mut open = true;
        loop {
            // The unread part starts at `pending_pos`: consuming moves it, so a driver that is
            // many commands ahead costs no copying.
            let pending = std::mem::take(&mut self.pending);
            let unread = &pending[self.pending_pos..];
            if let Some(pos) = finder.find(unread) {
                let id_start = pos + marker.len();
                if let Some(nl) = memchr::memchr(b'\n', &unread[id_start..]) {
                    let id = String::from_utf8_lossy(&unread[id_start..id_start + nl]).into_owned();
                    self.pass(&unread[..pos], End::None, sink);
                    self.pending_pos += id_start + nl + 1;
                    self.pending = pending;
                    return (open, Some(id));
                }
            }
            // Everything but what may be the start of a marker goes on now.
            let keep = partial_marker(unread, marker);
            if keep > 0 {
                self.pass(&unread[..keep], End::None, sink);
                self.pending_pos += keep;
            }
            self.pending = pending;
            if self.pending_pos == self.pending.len() {
                self.pending.clear();
                self.pending_pos = 0;
            } else if self.pending_pos > 64 * 1024 {
                self.pending.drain(..self.pending_pos);
                self.pending_pos = 0;
            }
            if !open {
                return (false, None);
            }
            let Some(mut output) = self.read.take() else {
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
                    self.pending.extend_from_slice(&buf[..n]);
                    if n == buf.len() {
                        grow(&mut buf);
                    }
                }
                Err(_) => {
                    self.read_buf = buf;
                    self.read = Some(output);
                    return (true, None);
                }
            }
            self.read_buf = buf;
            self.read = Some(output);
        }
    }

    /// Passes output on: masked as a stream, split into lines, to the log, the console and the
    /// tail kept for RETRY patterns. At the `end` of a command, a last line without a newline
    /// is passed on too, and what was held back for masking unless it may begin a secret that
    /// the next command's output finishes; at the end of the build, everything.
    pub(super) fn pass(&mut self, bytes: &[u8], end: End, sink: &mut Sink<'_>) {
        let (tail, stream, lines, cap) = (
            &mut self.tail,
            &mut self.stream,
            &mut self.lines,
            &mut self.cap,
        );
        let Sink {
            log,
            reporter,
            masker,
        } = sink;
        let renumber = self.error_lines.as_ref().zip(self.command_line);
        let now = Timestamp::now();
        let mut out = |line: &[u8]| {
            let line = match renumber.and_then(|(e, at)| e.renumber(line, at)) {
                Some(renumbered) => std::borrow::Cow::Owned(renumbered),
                None => std::borrow::Cow::Borrowed(line),
            };
            push_tail(tail, &line);
            if cap.keeps(&line) {
                output_line(&mut **log, &mut **reporter, now, &line);
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

    /// Whether the output can be read within `timeout`; `None` without an output pipe.
    pub(super) fn ready(&self, timeout: Option<Duration>) -> Option<bool> {
        let output = self.read.as_ref()?;
        Some(
            platform::wait_readable(&[platform::borrow(output)], timeout)
                .is_ok_and(|ready| ready[0].readable),
        )
    }
}

impl Build<'_> {
    /// The output pump, and where its lines go.
    fn pump_and_sink(&mut self) -> (&mut Pump, Sink<'_>) {
        (
            &mut self.pump,
            Sink {
                log: &mut self.log,
                reporter: &mut *self.reporter,
                masker: &self.masker,
            },
        )
    }

    /// See [`Pump::read`].
    pub(super) fn read_output(&mut self) -> bool {
        let (pump, mut sink) = self.pump_and_sink();
        pump.read(&mut sink)
    }

    /// See [`Pump::pump`].
    pub(super) fn pump_output(&mut self) -> (bool, Option<String>) {
        let (pump, mut sink) = self.pump_and_sink();
        pump.pump(&mut sink)
    }

    /// See [`Pump::pass`].
    pub(super) fn pass_output(&mut self, bytes: &[u8], end: End) {
        let (pump, mut sink) = self.pump_and_sink();
        pump.pass(bytes, end, &mut sink);
    }

    /// Reads everything already written: a finished command's output is all in the pipe.
    pub(super) fn drain_output(&mut self) {
        self.read_output();
    }

    /// Streams output until `until` or end-of-file.
    pub(super) fn wait_output_until(&mut self, until: Option<Instant>) -> bool {
        let mut ready = self.pump.ready(Some(Duration::ZERO));
        if ready == Some(false) {
            // The output is usually at its end already; the record is written before a wait.
            self.save_record();
            ready = self
                .pump
                .ready(until.map(|u| u.saturating_duration_since(Instant::now())));
        }
        match ready {
            None => false,
            Some(true) => self.read_output(),
            Some(false) => true,
        }
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
    log: &mut dyn Write,
    reporter: &mut dyn Reporter,
    time: Timestamp,
    line: &[u8],
) {
    let event = Event::Output { line: line.into() };
    let _ = crate::events::write_log(&mut &mut *log, time, &event);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The output lines and messages a sink received, in order.
    #[derive(Default)]
    struct Lines(Vec<String>);

    impl Reporter for Lines {
        fn report(&mut self, _: Timestamp, event: &Event<'_>) {
            match event {
                Event::Output { line } => self.0.push(String::from_utf8_lossy(line).into()),
                Event::Message { text } => self.0.push(format!("[message] {text}")),
                _ => {}
            }
        }
    }

    /// Passes each chunk through a pump over a real pipe, then ends the build; returns what
    /// reached the reporter and the log.
    fn through(pump: &mut Pump, masker: &Masker, chunks: &[&[u8]]) -> (Vec<String>, String) {
        pump.open().expect("pipe");
        let mut write = File::from(pump.write.take().expect("a write end"));
        let (mut lines, mut log) = (Lines::default(), Vec::new());
        let mut sink = Sink {
            log: &mut log,
            reporter: &mut lines,
            masker,
        };
        for chunk in chunks {
            write.write_all(chunk).expect("write");
            assert!(pump.read(&mut sink), "the pipe is open");
        }
        drop(write);
        while pump.read(&mut sink) {}
        pump.pass(&[], End::Build, &mut sink);
        (lines.0, String::from_utf8_lossy(&log).into_owned())
    }

    #[test]
    fn lines_are_masked_across_reads_and_reach_the_log_and_the_reporter_alike() {
        let masker = Masker::new(["s3cr3t-value"]);
        let table: &[(&[&[u8]], &[&str])] = &[
            (&[b"one\ntwo\n"], &["one", "two"]),
            (&[b"o", b"ne\ntw", b"o"], &["one", "two"]),
            (&[b"key=s3cr", b"3t-value done\n"], &["key=*** done"]),
            (&[b"s3cr3t-value\n", b"s3cr3t-"], &["***", "s3cr3t-"]),
            (&[b"\r\n\n"], &["\r", ""]),
        ];
        for (chunks, expected) in table {
            let mut pump = Pump::new(None);
            let (lines, log) = through(&mut pump, &masker, chunks);
            assert_eq!(lines, *expected, "{chunks:?}");
            let logged: Vec<&str> = log
                .strip_suffix('\n')
                .map_or(vec![], |l| l.split('\n').collect());
            assert_eq!(logged, *expected, "{chunks:?}");
            let tail: Vec<String> = pump
                .tail
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
            assert_eq!(tail, *expected, "the RETRY tail sees the masked lines");
        }
    }

    #[test]
    fn past_the_log_limit_lines_are_counted_for_the_record_and_still_reach_the_tail() {
        // The first two lines and their newlines fill it exactly.
        let mut pump = Pump::new(Some(9));
        let (lines, _) = through(
            &mut pump,
            &Masker::new(Vec::<String>::new()),
            &[b"1234\n567\n89\nlast\n"],
        );
        assert_eq!(lines[..2], ["1234", "567"]);
        assert!(
            lines[2].starts_with(
                "[message] warning: the build's output reached the log limit of 9 bytes"
            )
        );
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(pump.cap.reached(), Some(9));
        assert_eq!((pump.cap.dropped_lines, pump.cap.dropped_bytes), (2, 8));
        assert_eq!(pump.tail.back().map(Vec::as_slice), Some(&b"last"[..]));
    }

    #[test]
    fn a_persistent_sessions_markers_end_each_command_and_are_never_shown() {
        let mut pump = Pump::new(None);
        pump.marker = Some(memchr::memmem::Finder::new(b"\x1ebs:T:").into_owned());
        pump.open().expect("pipe");
        let mut write = File::from(pump.write.take().expect("a write end"));
        let masker = Masker::new(Vec::<String>::new());
        let (mut lines, mut log) = (Lines::default(), Vec::new());
        let mut sink = Sink {
            log: &mut log,
            reporter: &mut lines,
            masker: &masker,
        };
        // A marker cut by a read, and a command's output after it in the same read.
        write.write_all(b"first\n\x1ebs:T").expect("write");
        assert_eq!(pump.pump(&mut sink), (true, None));
        write.write_all(b":1\nsecond\n\x1ebs:T:2\n").expect("write");
        assert_eq!(pump.pump(&mut sink), (true, Some("1".to_owned())));
        assert_eq!(pump.pump(&mut sink), (true, Some("2".to_owned())));
        drop(write);
        assert_eq!(pump.pump(&mut sink), (false, None));
        pump.pass(&[], End::Build, &mut sink);
        assert_eq!(lines.0, ["first", "second"]);
    }
}
