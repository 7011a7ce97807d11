//! CodeBuild's log lines on stdout, for one build.

use std::io::Write;

use jiff::Timestamp;
use runner::events::{Event, Reporter, write_log};

use super::Console;

pub(crate) struct TextReporter<W: Write>(pub(crate) Console<W>);

impl<W: Write> Reporter for TextReporter<W> {
    fn report(&mut self, time: Timestamp, event: &Event<'_>) {
        self.0.write(|out| write_log(out, time, event));
    }

    fn flush(&mut self) {
        self.0.flush();
    }
}
