//! The AWS CodeBuild buildspec format: parsing, validation and the typed plan.
//!
//! ```
//! let checked = buildspec::check(
//!     buildspec::SourceFile::new("buildspec.yml", "version: 0.2\nphases:\n  build:\n    commands:\n      - make\n"),
//!     &buildspec::Options::default(),
//! );
//! assert!(!checked.has_errors());
//! let plan = checked.plan().expect("valid");
//! assert_eq!(plan.phase(buildspec::PhaseName::Build).commands[0].text, "make");
//! ```
//!
//! Checking never fails: every problem, error or warning, comes back as a [`Diagnostic`] with its
//! location, and a file with no errors yields a [`Plan`].

#![warn(missing_docs)]

pub mod batch;
mod decode;
pub mod diagnostic;
pub mod model;
pub mod plan;
pub mod schema;
pub mod span;
mod validate;
mod yaml;

use std::path::Path;

pub use diagnostic::{Code, Diagnostic, Severity, SourceFile};
pub use model::{Buildspec, Command, OnFailure, PhaseName, Shell, Version};
pub use plan::{Next, Plan};
pub use span::{Span, Spanned};
pub use yaml::{MAX_SOURCE_BYTES, Value, parse_value};

/// How strictly to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Treat every warning as an error (`--strict`).
    pub strict: bool,
}

/// A checked buildspec: its source, what could be read of it, and every problem found.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The file.
    pub source: SourceFile,
    /// The buildspec as read; `None` when the text is not YAML.
    pub buildspec: Option<Buildspec>,
    /// Problems, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// Whether any problem is an error: CodeBuild would fail DOWNLOAD_SOURCE.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// How many errors and warnings.
    pub fn counts(&self) -> (usize, usize) {
        let errors = self.diagnostics.iter().filter(|d| d.is_error()).count();
        (errors, self.diagnostics.len() - errors)
    }

    /// Every diagnostic, rendered with source lines and carets.
    pub fn render(&self) -> String {
        diagnostic::render_all(&self.diagnostics, &self.source)
    }

    /// The plan, when the file has no errors.
    pub fn plan(&self) -> Option<Plan> {
        if self.has_errors() {
            return None;
        }
        self.buildspec
            .as_ref()
            .map(|spec| Plan::new(&self.source.name, spec))
    }
}

/// Checks a buildspec's text.
pub fn check(source: SourceFile, options: &Options) -> Checked {
    let (buildspec, mut diagnostics) = match yaml::parse(&source.text) {
        Ok(root) => {
            let mut decoder = decode::Decoder::new(&source.text);
            let spec = decoder.buildspec(&root);
            let mut diagnostics = decoder.diagnostics;
            validate::validate(&spec, &mut diagnostics);
            (Some(spec), diagnostics)
        }
        Err(diagnostic) => (None, vec![diagnostic]),
    };
    // File-level problems first, then in source order.
    diagnostics.sort_by_key(|d| d.span.map_or((0, 0), |s| (s.line, s.column)));
    if options.strict {
        for d in &mut diagnostics {
            if d.severity == Severity::Warning {
                d.severity = Severity::Error;
                d.notes
                    .push("this warning is an error under `--strict`".to_owned());
            }
        }
    }
    Checked {
        source,
        buildspec,
        diagnostics,
    }
}

/// Why a buildspec file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("{path}:{line}:{column}: not UTF-8 text: the byte {byte:#04x} begins no character")]
    NotUtf8 {
        /// The path as given.
        path: String,
        /// The line of the first byte that is not UTF-8 (1-based).
        line: usize,
        /// Its column, in characters (1-based).
        column: usize,
        /// The byte.
        byte: u8,
    },
    /// The file is larger than any buildspec may be.
    #[error("{path} is {size} bytes, over the limit of {limit} bytes for a buildspec")]
    TooLarge {
        /// The path as given.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: usize,
    },
}

/// Reads a file, refusing one too large to be a buildspec before reading it.
pub fn read_source(path: &Path) -> Result<SourceFile, ReadError> {
    let name = path.display().to_string();
    let io = |source| ReadError::Io {
        path: name.clone(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_SOURCE_BYTES as u64 {
        return Err(ReadError::TooLarge {
            path: name,
            size,
            limit: MAX_SOURCE_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        // The text before it is valid: its lines and characters count as they are.
        let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        ReadError::NotUtf8 {
            path: name.clone(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            byte: bytes[at],
        }
    })?;
    // A byte-order mark is not part of the YAML.
    let text = text
        .strip_prefix('\u{feff}')
        .map(str::to_owned)
        .unwrap_or(text);
    Ok(SourceFile::new(name, text))
}

/// Reads and checks a file.
pub fn check_file(path: &Path, options: &Options) -> Result<Checked, ReadError> {
    Ok(check(read_source(path)?, options))
}

/// Whether a YAML text looks like a buildspec (a top-level `version` beside `phases`, `batch` or
/// `artifacts`), so that a directory search skips other YAML files (compose files, workflows).
pub fn looks_like_buildspec(text: &str) -> bool {
    // Keys in another case are read too (with a warning), so they count here.
    let top = |key: &str| {
        text.lines().any(|line| {
            line.get(..key.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(key))
                && line[key.len()..].trim_start().starts_with(':')
        })
    };
    top("version") && (top("phases") || top("batch") || top("artifacts"))
}
