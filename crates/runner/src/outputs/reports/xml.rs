//! The streaming XML reader that the XML report parsers share.
//!
//! `quick-xml` parses the markup; this reader consumes the text and CDATA between elements
//! itself, straight from the file's buffer. A `<system-out>` of a gigabyte therefore never
//! becomes one event (`quick-xml` would hold it whole): it is skipped a buffer at a time, and
//! only the text of the elements a parser asks for is kept, up to a few kilobytes. The parsers
//! see start and end tags with their attributes, and nothing else.

use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::{MAX_MESSAGE_BYTES, ReportError, clean_message};

/// The file is read in blocks of this size.
const BLOCK: usize = 64 * 1024;
const CDATA_OPEN: &[u8] = b"<![CDATA[";
const CDATA_CLOSE: &[u8] = b"]]>";
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// Text kept for one element before unescaping: twice what a message keeps, so that entities
/// and the trimming of blank space still leave a full message.
const CAPTURE_LIMIT: usize = 2 * MAX_MESSAGE_BYTES;

/// A buffered file that can look a few bytes ahead without consuming them, across the end of
/// its buffer, which `BufReader` cannot: the CDATA check needs nine bytes after a `<`.
#[derive(Debug)]
struct Source {
    file: File,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
}

impl Source {
    fn new(file: File) -> Source {
        Source {
            file,
            buf: vec![0; BLOCK],
            pos: 0,
            end: 0,
            eof: false,
        }
    }

    /// The buffered bytes, at least `n` of them unless the file ends first.
    fn ensure(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.end - self.pos < n && !self.eof {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
            let read = loop {
                match self.file.read(&mut self.buf[self.end..]) {
                    Ok(read) => break read,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            if read == 0 {
                self.eof = true;
            }
            self.end += read;
        }
        Ok(&self.buf[self.pos..self.end])
    }
}

impl Read for Source {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Source {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.ensure(1)
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.end);
    }
}

/// A start tag: its local name (no namespace prefix) and its attributes, unescaped.
#[derive(Debug)]
pub(super) struct Element {
    pub(super) name: String,
    attributes: Vec<(String, String)>,
}

impl Element {
    /// The value of an attribute, by local name.
    pub(super) fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of an attribute, unless it is missing or blank.
    pub(super) fn text_attr(&self, key: &str) -> Option<String> {
        self.attr(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }
}

/// What a parser sees: elements opening and closing. An empty element (`<a/>`) opens and
/// closes.
#[derive(Debug)]
pub(super) enum XmlEvent {
    Start(Element),
    /// The local name of the element that closes.
    End(String),
    Eof,
}

/// The text of one element being kept.
#[derive(Debug)]
struct Capture {
    /// The depth of the element whose text this is.
    depth: usize,
    /// Text not unescaped yet.
    raw: Vec<u8>,
    text: String,
    cut: bool,
}

impl Capture {
    fn text(&mut self, bytes: &[u8]) {
        let room = CAPTURE_LIMIT.saturating_sub(self.text.len() + self.raw.len());
        if bytes.len() > room {
            self.cut = true;
        }
        self.raw.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn cdata(&mut self, bytes: &[u8]) {
        self.flush();
        let room = CAPTURE_LIMIT.saturating_sub(self.text.len());
        if bytes.len() > room {
            self.cut = true;
        }
        self.text
            .push_str(&String::from_utf8_lossy(&bytes[..bytes.len().min(room)]));
    }

    fn flush(&mut self) {
        if self.raw.is_empty() {
            return;
        }
        if self.cut {
            // The cut may have split an entity; leave it out rather than fail to unescape.
            if let Some(amp) = memchr::memrchr(b'&', &self.raw)
                && !self.raw[amp..].contains(&b';')
            {
                self.raw.truncate(amp);
            }
        }
        let raw = String::from_utf8_lossy(&self.raw);
        match quick_xml::escape::unescape(&raw) {
            Ok(text) => self.text.push_str(&text),
            // An entity the DTD would define: the text as written is still worth showing.
            Err(_) => self.text.push_str(&raw),
        }
        self.raw.clear();
    }

    fn finish(mut self) -> Option<String> {
        self.flush();
        clean_message(&self.text, self.cut)
    }
}

/// The result of one `quick-xml` read, owned, so that the reader's buffer is free again.
enum Raw {
    Start(Result<Element, quick_xml::Error>, bool),
    End,
    Text,
    Other,
    Eof,
}

/// Reads one XML report file as a stream of [`XmlEvent`]s.
#[derive(Debug)]
pub(super) struct XmlReader {
    reader: Reader<Source>,
    buf: Vec<u8>,
    path: PathBuf,
    format: &'static str,
    /// Bytes of a UTF-8 byte order mark, skipped before `quick-xml` counts positions.
    bom: u64,
    /// The names of the open elements, the root first.
    open: Vec<String>,
    seen_root: bool,
    /// The last start was an empty element: its end comes next.
    pending_end: bool,
    capture: Option<Capture>,
    captured: Option<String>,
    /// Where the last event began, for the errors found in it.
    event_start: u64,
}

impl XmlReader {
    /// Opens a report file read as `format` (a name for messages, e.g. `JUnit`).
    pub(super) fn open(path: &Path, format: &'static str) -> Result<XmlReader, ReportError> {
        let io_error = |source| ReportError::Io {
            path: path.to_owned(),
            source,
        };
        let mut source = Source::new(File::open(path).map_err(io_error)?);
        let head = source.ensure(UTF8_BOM.len()).map_err(io_error)?;
        if head.is_empty() {
            return Err(ReportError::Empty {
                path: path.to_owned(),
            });
        }
        if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
            return Err(ReportError::Syntax {
                path: path.to_owned(),
                language: "XML",
                line: 1,
                column: 1,
                message: "the file is UTF-16; only UTF-8 reports are read".to_owned(),
            });
        }
        let bom = if head.starts_with(UTF8_BOM) {
            source.consume(UTF8_BOM.len());
            UTF8_BOM.len() as u64
        } else {
            0
        };
        Ok(XmlReader {
            reader: Reader::from_reader(source),
            buf: Vec::new(),
            path: path.to_owned(),
            format,
            bom,
            open: Vec::new(),
            seen_root: false,
            pending_end: false,
            capture: None,
            captured: None,
            event_start: 0,
        })
    }

    /// The root element, which must come first.
    pub(super) fn root(&mut self) -> Result<Element, ReportError> {
        match self.next()? {
            XmlEvent::Start(root) => Ok(root),
            XmlEvent::End(_) | XmlEvent::Eof => Err(ReportError::Empty {
                path: self.path.clone(),
            }),
        }
    }

    /// The next start or end tag.
    pub(super) fn next(&mut self) -> Result<XmlEvent, ReportError> {
        if self.pending_end {
            self.pending_end = false;
            return Ok(self.close());
        }
        loop {
            self.skip_text()?;
            self.event_start = self.reader.buffer_position();
            self.buf.clear();
            let raw = match self.reader.read_event_into(&mut self.buf) {
                Ok(Event::Start(start)) => Raw::Start(element(&start), false),
                Ok(Event::Empty(start)) => Raw::Start(element(&start), true),
                Ok(Event::End(_)) => Raw::End,
                // Text is consumed before each read; what is left is text at the end of the
                // file, where it does not belong.
                Ok(Event::Text(_) | Event::CData(_) | Event::GeneralRef(_)) => Raw::Text,
                Ok(Event::Eof) => Raw::Eof,
                Ok(Event::Decl(_) | Event::PI(_) | Event::DocType(_) | Event::Comment(_)) => {
                    Raw::Other
                }
                Err(e) => return Err(self.xml_error(e)),
            };
            match raw {
                Raw::Start(element, empty) => {
                    let element = element.map_err(|e| self.xml_error(e))?;
                    if self.open.is_empty() && self.seen_root {
                        return Err(self.syntax(
                            self.event_start,
                            format!("a second root element <{}>", element.name),
                        ));
                    }
                    self.seen_root = true;
                    self.open.push(element.name.clone());
                    self.pending_end = empty;
                    return Ok(XmlEvent::Start(element));
                }
                Raw::End => return Ok(self.close()),
                Raw::Text => {
                    return Err(self.syntax(self.event_start, "text outside the root element"));
                }
                Raw::Other => {}
                Raw::Eof => {
                    if let Some(name) = self.open.last() {
                        let message = format!("the file ends before </{name}>");
                        return Err(self.syntax(self.reader.buffer_position(), message));
                    }
                    if !self.seen_root {
                        return Err(ReportError::Empty {
                            path: self.path.clone(),
                        });
                    }
                    return Ok(XmlEvent::Eof);
                }
            }
        }
    }

    /// How many elements are open; after a start, the started one included.
    pub(super) fn depth(&self) -> usize {
        self.open.len()
    }

    /// The name of an open element: 0 is the innermost (the one just started), 1 its parent.
    pub(super) fn ancestor(&self, n: usize) -> Option<&str> {
        let index = self.open.len().checked_sub(n + 1)?;
        self.open.get(index).map(String::as_str)
    }

    /// Keeps the text of the element just started (its children's included) until it closes;
    /// [`XmlReader::take_text`] then gives it.
    pub(super) fn capture_text(&mut self) {
        if self.capture.is_none() {
            self.captured = None;
            self.capture = Some(Capture {
                depth: self.open.len(),
                raw: Vec::new(),
                text: String::new(),
                cut: false,
            });
        }
    }

    /// The text kept by [`XmlReader::capture_text`], once its element has closed; `None` when it
    /// was blank.
    pub(super) fn take_text(&mut self) -> Option<String> {
        self.captured.take()
    }

    /// The file is XML of another kind: its root element says which.
    pub(super) fn wrong_root(&self, name: &str) -> ReportError {
        let hint = match name {
            "testsuites" | "testsuite" => " (as in JUNITXML reports)",
            "test-results" => " (as in NUNITXML reports)",
            "test-run" => " (as in NUNIT3XML reports)",
            "testng-results" => " (as in TESTNGXML reports)",
            "TestRun" => " (as in VISUALSTUDIOTRX reports)",
            "coverage" => " (as in COBERTURAXML and CLOVERXML reports)",
            "report" => " (as in JACOCOXML reports)",
            _ => "",
        };
        self.wrong_format(format!("the root element is <{name}>{hint}"))
    }

    /// The file is XML of another kind.
    pub(super) fn wrong_format(&self, reason: impl Into<String>) -> ReportError {
        ReportError::WrongFormat {
            path: self.path.clone(),
            format: self.format,
            reason: reason.into(),
        }
    }

    /// The element just read holds an unusable value.
    pub(super) fn invalid(&self, message: impl Into<String>) -> ReportError {
        let (line, column) = self.line_column(self.event_start);
        ReportError::Invalid {
            path: self.path.clone(),
            format: self.format,
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }

    /// A count attribute: missing or blank is `None`, anything but a whole non-negative number
    /// an error.
    pub(super) fn count(&self, element: &Element, key: &str) -> Result<Option<u64>, ReportError> {
        let Some(value) = element.attr(key).map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if let Ok(n) = value.parse::<u64>() {
            return Ok(Some(n));
        }
        // Some tools write counts as floats (`12.0`).
        match value.parse::<f64>() {
            Ok(n) if n >= 0.0 && n.fract() == 0.0 && n < 1.8e19 => Ok(Some(n as u64)),
            _ => Err(self.invalid(format!(
                "<{}> has {key}=\"{value}\", not a count",
                element.name
            ))),
        }
    }

    /// The report file, as a failure names it.
    pub(super) fn file_name(&self) -> String {
        super::file_name(&self.path)
    }

    fn close(&mut self) -> XmlEvent {
        let name = self.open.pop().unwrap_or_default();
        if self
            .capture
            .as_ref()
            .is_some_and(|capture| self.open.len() < capture.depth)
        {
            self.captured = self.capture.take().and_then(Capture::finish);
        }
        XmlEvent::End(name)
    }

    /// Consumes the text and CDATA up to the next markup, keeping it if asked to.
    fn skip_text(&mut self) -> Result<(), ReportError> {
        if self.open.is_empty() {
            return self.skip_blank();
        }
        loop {
            let chunk = match self.reader.get_mut().ensure(1) {
                Ok(chunk) => chunk,
                Err(source) => return Err(io_error(&self.path, source)),
            };
            if chunk.is_empty() {
                return Ok(());
            }
            let (text, at_markup) = match memchr::memchr(b'<', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if let Some(capture) = &mut self.capture {
                capture.text(&chunk[..text]);
            }
            self.reader.stream().consume(text);
            if !at_markup {
                continue;
            }
            let ahead = match self.reader.get_mut().ensure(CDATA_OPEN.len()) {
                Ok(ahead) => ahead,
                Err(source) => return Err(io_error(&self.path, source)),
            };
            if !ahead.starts_with(CDATA_OPEN) {
                return Ok(());
            }
            let start = self.reader.buffer_position();
            self.reader.stream().consume(CDATA_OPEN.len());
            self.skip_cdata(start)?;
        }
    }

    fn skip_cdata(&mut self, start: u64) -> Result<(), ReportError> {
        loop {
            let chunk = match self.reader.get_mut().ensure(CDATA_CLOSE.len()) {
                Ok(chunk) => chunk,
                Err(source) => return Err(io_error(&self.path, source)),
            };
            if let Some(i) = memchr::memmem::find(chunk, CDATA_CLOSE) {
                if let Some(capture) = &mut self.capture {
                    capture.cdata(&chunk[..i]);
                }
                self.reader.stream().consume(i + CDATA_CLOSE.len());
                return Ok(());
            }
            if chunk.len() < CDATA_CLOSE.len() {
                return Err(self.syntax(start, "the file ends inside a CDATA section"));
            }
            // Keep two bytes: they may begin the `]]>` that the next block completes.
            let n = chunk.len() - (CDATA_CLOSE.len() - 1);
            if let Some(capture) = &mut self.capture {
                capture.cdata(&chunk[..n]);
            }
            self.reader.stream().consume(n);
        }
    }

    /// Consumes blank space outside the root element; anything else there is not XML.
    fn skip_blank(&mut self) -> Result<(), ReportError> {
        loop {
            let chunk = match self.reader.get_mut().ensure(1) {
                Ok(chunk) => chunk,
                Err(source) => return Err(io_error(&self.path, source)),
            };
            let at_end = chunk.is_empty();
            let blank = chunk.iter().take_while(|b| b.is_ascii_whitespace()).count();
            let next = chunk.get(blank).copied();
            self.reader.stream().consume(blank);
            match next {
                Some(b'<') => return Ok(()),
                Some(_) => {
                    let found = self.peek_snippet();
                    let message = if self.seen_root {
                        format!("text after the root element: `{found}`")
                    } else {
                        format!("expected an XML element, found `{found}`")
                    };
                    return Err(self.syntax(self.reader.buffer_position(), message));
                }
                // The end of the file: `quick-xml` reports it.
                None if at_end => return Ok(()),
                None => {}
            }
        }
    }

    /// The next few characters, for an error message.
    fn peek_snippet(&mut self) -> String {
        let bytes = self.reader.get_mut().ensure(80).unwrap_or_default();
        super::snippet(&bytes[..bytes.len().min(80)], 20)
    }

    fn xml_error(&self, error: quick_xml::Error) -> ReportError {
        match error {
            quick_xml::Error::Io(e) => {
                io_error(&self.path, io::Error::new(e.kind(), e.to_string()))
            }
            quick_xml::Error::Syntax(e) => self.syntax(self.reader.error_position(), e.to_string()),
            quick_xml::Error::IllFormed(e) => {
                self.syntax(self.reader.error_position(), e.to_string())
            }
            other => self.syntax(self.event_start, other.to_string()),
        }
    }

    fn syntax(&self, offset: u64, message: impl Into<String>) -> ReportError {
        let (line, column) = self.line_column(offset);
        ReportError::Syntax {
            path: self.path.clone(),
            language: "XML",
            line,
            column,
            message: message.into(),
        }
    }

    /// The line and column (in characters) of a byte offset, counted by reading the file again:
    /// errors are rare, and counting lines for every event would slow down every report.
    fn line_column(&self, offset: u64) -> (u64, u64) {
        line_column(&self.path, self.bom, offset).unwrap_or((0, 0))
    }
}

fn io_error(path: &Path, source: io::Error) -> ReportError {
    ReportError::Io {
        path: path.to_owned(),
        source,
    }
}

fn element(start: &BytesStart<'_>) -> Result<Element, quick_xml::Error> {
    let name = start.local_name().as_ref().to_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute?;
        let key = attribute.key.local_name().as_ref().to_owned();
        let value = attribute.normalized_value(XmlVersion::Implicit1_0)?;
        attributes.push((key, value.into_owned()));
    }
    Ok(Element { name, attributes })
}

/// The line and column of `offset` bytes after the first `skip` bytes of a file, both from 1.
pub(super) fn line_column(path: &Path, skip: u64, offset: u64) -> io::Result<(u64, u64)> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(skip))?;
    let mut file = file.take(offset);
    let mut buf = vec![0; BLOCK];
    let (mut line, mut column) = (1, 1);
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for &byte in &buf[..n] {
            if byte == b'\n' {
                line += 1;
                column = 1;
            } else if byte & 0xC0 != 0x80 {
                // Continuation bytes of UTF-8 do not start a character.
                column += 1;
            }
        }
    }
    Ok((line, column))
}
