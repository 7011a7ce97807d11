//! One JSON object per line, for one build: the event, with `"event"` and `"time"`.

use std::io::Write;

use jiff::Timestamp;
use runner::dispatch::channel::Stamped;
use runner::events::{Event, Reporter};

use super::Console;

pub(crate) struct JsonReporter<W: Write>(pub(crate) Console<W>);

impl<W: Write> Reporter for JsonReporter<W> {
    fn report(&mut self, time: Timestamp, event: &Event<'_>) {
        self.0.write(|out| write_event(out, None, time, event));
    }

    fn flush(&mut self) {
        self.0.flush();
    }
}

#[derive(serde::Serialize)]
struct ForBuild<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    build: Option<&'a str>,
    #[serde(flatten)]
    stamped: Stamped<'a>,
}

/// Writes an event as a JSON line; of one of many builds, with its identifier as `"build"`.
pub(crate) fn write_event(
    out: &mut (impl Write + ?Sized),
    build: Option<&str>,
    time: Timestamp,
    event: &Event<'_>,
) -> std::io::Result<()> {
    let line = ForBuild {
        build,
        stamped: Stamped {
            time,
            event: event.borrowed(),
        },
    };
    serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
    out.write_all(b"\n")
}
