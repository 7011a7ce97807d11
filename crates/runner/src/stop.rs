//! Requests to stop a build: signals, delivered as bytes on pipes.
//!
//! The library installs no signal handlers (that is the program's business); the program gives
//! it the read end of a pipe per signal, which a handler writes to (signal-hook's `pipe`), and the
//! engine waits on those pipes beside the build's own.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{BorrowedFd, OwnedFd};

use crate::platform;

/// Where stop requests come from.
#[derive(Debug, Default)]
pub struct Stop {
    sources: Vec<(File, i32)>,
}

impl Stop {
    /// No way to stop a build but its timeout.
    pub fn none() -> Stop {
        Stop::default()
    }

    /// Adds a pipe that receives a byte each time `signal` arrives.
    pub fn add(&mut self, read_end: OwnedFd, signal: i32) -> io::Result<()> {
        platform::set_nonblocking(platform::borrow(&read_end))?;
        self.sources.push((File::from(read_end), signal));
        Ok(())
    }

    pub(crate) fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.sources.iter().map(|(f, _)| platform::borrow(f))
    }

    /// Forgets the requests that arrived so far (a program that runs builds one after another
    /// calls it between them).
    pub fn clear(&self) {
        let _ = self.take();
    }

    /// The signal of a request that arrived since the last call, if any; every pending byte is
    /// read, so that one request is seen once.
    pub(crate) fn take(&self) -> Option<i32> {
        let mut seen = None;
        let mut buf = [0u8; 64];
        for (file, signal) in &self.sources {
            let mut reader: &File = file;
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.get_or_insert(*signal);
            }
        }
        seen
    }
}
