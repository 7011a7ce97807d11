//! Problems found in a buildspec, and their rendering with the source line and a caret.

use std::fmt::Write as _;

use serde::Serialize;

use crate::span::Span;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// CodeBuild tolerates it; the build runs (unless `--strict`).
    Warning,
    /// CodeBuild rejects the file at DOWNLOAD_SOURCE (`YAML_FILE_ERROR`); nothing runs.
    Error,
}

/// The kind of a problem: a stable name that tools and tests can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Code {
    /// The text is not YAML.
    YamlSyntax,
    /// The YAML is over the parser's budget (alias bomb, nesting, size).
    YamlBudget,
    /// A `!Tag` that a plain YAML loader does not know.
    CustomTag,
    /// The file is empty or not a mapping at the top.
    NotABuildspec,
    /// `version` is absent.
    MissingVersion,
    /// `version` is neither 0.1 nor 0.2.
    InvalidVersion,
    /// No `phases` in a file without `batch`.
    MissingPhases,
    /// A phase name other than install, pre_build, build, post_build.
    InvalidPhaseName,
    /// A command that is not a string.
    CommandNotString,
    /// A list item that is empty (`- # comment`).
    NullCommand,
    /// A value of the wrong YAML type (a list where a mapping belongs, say).
    WrongType,
    /// A value outside its allowed set.
    InvalidValue,
    /// A required key is missing.
    MissingKey,
    /// A secret or `AWS_*` name in `exported-variables`.
    ExportedSecret,
    /// A `build-graph` that depends on itself.
    GraphCycle,
    /// A `depend-on` that names no build.
    UnknownDependency,
    /// Two builds of a batch share one identifier.
    DuplicateIdentifier,
    /// `batch` with more or fewer than one kind of batch.
    BatchKind,
    /// A `secrets-manager` reference that cannot be resolved as written.
    InvalidSecretReference,
    /// A key CodeBuild does not know (it ignores it).
    UnknownKey,
    /// A key written in another case (`Commands`).
    KeyCase,
    /// The same key twice in one mapping (the last one wins).
    DuplicateKey,
    /// A runtime name CodeBuild's curated images do not list.
    UnknownRuntime,
    /// A `CODEBUILD_` variable set in the buildspec.
    ReservedVariable,
    /// A key that has no effect where it is.
    IgnoredKey,
}

impl Code {
    /// The stable kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::YamlSyntax => "yaml-syntax",
            Code::YamlBudget => "yaml-budget",
            Code::CustomTag => "custom-tag",
            Code::NotABuildspec => "not-a-buildspec",
            Code::MissingVersion => "missing-version",
            Code::InvalidVersion => "invalid-version",
            Code::MissingPhases => "missing-phases",
            Code::InvalidPhaseName => "invalid-phase-name",
            Code::CommandNotString => "command-not-string",
            Code::NullCommand => "null-command",
            Code::WrongType => "wrong-type",
            Code::InvalidValue => "invalid-value",
            Code::MissingKey => "missing-key",
            Code::ExportedSecret => "exported-secret",
            Code::GraphCycle => "graph-cycle",
            Code::UnknownDependency => "unknown-dependency",
            Code::DuplicateIdentifier => "duplicate-identifier",
            Code::BatchKind => "batch-kind",
            Code::InvalidSecretReference => "invalid-secret-reference",
            Code::UnknownKey => "unknown-key",
            Code::KeyCase => "key-case",
            Code::DuplicateKey => "duplicate-key",
            Code::UnknownRuntime => "unknown-runtime",
            Code::ReservedVariable => "reserved-variable",
            Code::IgnoredKey => "ignored-key",
        }
    }
}

/// One problem, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning (after `--strict` has been applied).
    pub severity: Severity,
    /// The kind of problem.
    pub code: Code,
    /// What is wrong, in CodeBuild's words where they are known.
    pub message: String,
    /// Where; `None` for problems of the whole file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    /// Context lines ("the first `build` is on line 4").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What to do ("did you mean `commands`?").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at a location.
    pub fn error(code: Code, span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, span.into(), message.into())
    }

    /// A warning at a location.
    pub fn warning(code: Code, span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, span.into(), message.into())
    }

    fn new(severity: Severity, code: Code, span: Option<Span>, message: String) -> Self {
        Self {
            severity,
            code,
            message,
            span: span.filter(Span::is_known),
            notes: Vec::new(),
            help: None,
        }
    }

    /// Adds a note.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Sets the help line.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic as a compiler would: the message, `--> file:line:column`, the source
    /// line with a caret under the value, then notes and help.
    pub fn render(&self, file: &SourceFile) -> String {
        self.render_with(file, &LineIndex::new(&file.text))
    }

    fn render_with(&self, file: &SourceFile, lines: &LineIndex) -> String {
        let mut out = String::new();
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{severity}[{}]: {}", self.code.as_str(), self.message);
        match self.span {
            Some(span) => {
                let line_text = lines.line(&file.text, span.line).unwrap_or("");
                let number = span.line.to_string();
                let pad = " ".repeat(number.len());
                let _ = writeln!(out, "{pad}--> {}:{}:{}", file.name, span.line, span.column);
                let _ = writeln!(out, "{pad} |");
                let (indent, width) = caret_extent(line_text, span);
                let (shown, indent, width) = window(line_text, indent, width);
                let _ = writeln!(out, "{number} | {}", visible(&shown));
                let _ = writeln!(out, "{pad} | {}{}", " ".repeat(indent), "^".repeat(width));
                for note in &self.notes {
                    let _ = writeln!(out, "{pad} = note: {note}");
                }
                if let Some(help) = &self.help {
                    let _ = writeln!(out, "{pad} = help: {help}");
                }
            }
            None => {
                let _ = writeln!(out, " --> {}", file.name);
                for note in &self.notes {
                    let _ = writeln!(out, "  = note: {note}");
                }
                if let Some(help) = &self.help {
                    let _ = writeln!(out, "  = help: {help}");
                }
            }
        }
        out
    }
}

/// Where each line starts, so that rendering many diagnostics of one file stays linear.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(newline_ends(text));
        LineIndex { starts }
    }

    fn line<'t>(&self, text: &'t str, line: u32) -> Option<&'t str> {
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        let start = *self.starts.get(index)?;
        let end = self
            .starts
            .get(index + 1)
            .map_or(text.len(), |next| next - 1);
        let line = text.get(start..end)?;
        Some(line.strip_suffix('\r').unwrap_or(line))
    }
}

fn newline_ends(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'\n')
        .map(|(i, _)| i + 1)
}

/// Most of a line a diagnostic shows, in characters: a longer line is cut around the caret, so
/// that a one-line 4 MB file does not render as 8 MB.
const SHOWN_CHARS: usize = 160;

/// The part of `line` to show, and the caret's indent and width within it.
fn window(line: &str, indent: usize, width: usize) -> (String, usize, usize) {
    let count = line.chars().count();
    if count <= SHOWN_CHARS {
        return (line.to_owned(), indent, width);
    }
    let start = indent.saturating_sub(SHOWN_CHARS / 4);
    let end = (start + SHOWN_CHARS).min(count);
    let mut shown: String = line.chars().skip(start).take(end - start).collect();
    let mut indent = indent - start;
    if start > 0 {
        shown.insert(0, '…');
        indent += 1;
    }
    if end < count {
        shown.push('…');
    }
    let width = width.min(SHOWN_CHARS.saturating_sub(indent)).max(1);
    (shown, indent, width)
}

/// Tabs are shown as one space each so that the caret stays under its character, and other
/// control characters as their Unicode pictures (`␀` for NUL), one character each: a raw one
/// would reach the terminal (an escape sequence in a buildspec could rewrite the screen).
fn visible(line: &str) -> String {
    line.chars()
        .map(|c| match c {
            '\t' => ' ',
            '\u{7f}' => '\u{2421}',
            c if u32::from(c) < 0x20 => char::from_u32(0x2400 + u32::from(c)).unwrap_or('?'),
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// The caret's indent and width, in characters: the value's first line, at least one character.
fn caret_extent(line: &str, span: Span) -> (usize, usize) {
    let indent = span.column.saturating_sub(1) as usize;
    let rest: String = line.chars().skip(indent).collect();
    let first_line = rest.trim_end();
    let width = if span.len == 0 {
        1
    } else {
        // The value's bytes may run past this line (block scalars); underline what is on it.
        let mut bytes = 0;
        let mut chars = 0;
        for ch in first_line.chars() {
            if bytes >= span.len {
                break;
            }
            bytes += ch.len_utf8();
            chars += 1;
        }
        chars.max(1)
    };
    (indent, width)
}

/// A buildspec's name (as the user gave it) and text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user wrote it, used in `--> file:line:column`.
    pub name: String,
    /// The whole text.
    pub text: String,
}

impl SourceFile {
    /// A named source text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// The text of a 1-based line, without its line ending.
    pub fn line(&self, line: u32) -> Option<&str> {
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        self.text
            .split('\n')
            .nth(index)
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
    }
}

/// Renders every diagnostic of a file, errors and warnings in source order.
pub fn render_all(diagnostics: &[Diagnostic], file: &SourceFile) -> String {
    let lines = LineIndex::new(&file.text);
    let mut out = String::new();
    for (i, diagnostic) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&diagnostic.render_with(file, &lines));
    }
    out
}
