//! The live line of many builds on a terminal: how many are done, and which run in which phase.

use std::time::{Duration, Instant};

use runner::dispatch::ManyEvent;
use runner::events::Event;

pub(crate) struct Live {
    bar: indicatif::ProgressBar,
    /// Each running build, its phase, and since when it runs.
    running: Vec<(String, String, Instant)>,
}

impl Live {
    pub(crate) fn new(total: usize) -> Live {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Live {
            bar,
            running: Vec::new(),
        }
    }

    pub(crate) fn update(&mut self, event: &ManyEvent<'_>) {
        match event {
            ManyEvent::Started { id } => {
                self.running
                    .push(((*id).to_owned(), "starting".to_owned(), Instant::now()));
            }
            ManyEvent::Build {
                id,
                event: Event::PhaseStarted { phase, attempt },
                ..
            } => {
                if let Some(entry) = self.running.iter_mut().find(|r| r.0 == *id) {
                    entry.1 = match attempt {
                        1 => phase.as_str().to_owned(),
                        n => format!("{} (attempt {n})", phase.as_str()),
                    };
                }
            }
            ManyEvent::Finished { result } => {
                self.running.retain(|r| r.0 != result.id);
                self.bar.inc(1);
            }
            _ => {}
        }
        let message: Vec<String> = self
            .running
            .iter()
            .map(|(id, phase, since)| format!("{id} {phase} {}s", since.elapsed().as_secs()))
            .collect();
        self.bar.set_message(message.join(", "));
    }

    /// Runs `write` with the line cleared, and draws it again below.
    pub(crate) fn suspend(&self, write: impl FnOnce()) {
        self.bar.suspend(write);
    }

    pub(crate) fn finish(self) {
        self.bar.finish_and_clear();
    }
}
