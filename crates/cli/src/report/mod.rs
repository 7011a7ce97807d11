//! How builds are shown: each reporter one consumer of the engine's events (`runner::events`),
//! whether they come from a build in this process or from many builds' runners
//! (`runner::dispatch::ManyEvent::Build`).
//!
//! - [`text`]: CodeBuild's log lines, for one build;
//! - [`json`]: one JSON object per event, for one build;
//! - [`prefixed`]: many builds' lines (text or JSON), each with its build's identifier;
//! - [`live`]: the live line of many builds on a terminal;
//! - [`summary`]: the table at the end of many builds.

pub(crate) mod json;
pub(crate) mod live;
pub(crate) mod prefixed;
pub(crate) mod summary;
pub(crate) mod text;

use std::io::Write;

/// Where a reporter writes, and whether it still can.
pub(crate) struct Console<W: Write> {
    pub(crate) out: W,
    /// A closed stdout (`| head`) must not stop the build; the log file has everything.
    pub(crate) broken: bool,
}

impl<W: Write> Console<W> {
    pub(crate) fn new(out: W) -> Console<W> {
        Console { out, broken: false }
    }

    /// Writes with `write`, unless an earlier write failed.
    pub(crate) fn write(&mut self, write: impl FnOnce(&mut W) -> std::io::Result<()>) {
        if !self.broken && write(&mut self.out).is_err() {
            self.broken = true;
        }
    }

    pub(crate) fn flush(&mut self) {
        self.write(Write::flush);
    }
}
