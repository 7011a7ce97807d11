//! The build's log file. A log that cannot be written (a full disk, a quota) must not stop the
//! build, nor make every later line retry a write that fails: what cannot be written is dropped,
//! and the first failure is kept, so that the runner says once that the log is incomplete, and
//! the record says it too.

use std::fs::File;
use std::io::{self, Write};

pub(super) struct LogFile {
    file: File,
    /// The first failed write, until the runner takes it to report it.
    failure: Option<io::Error>,
    /// Whether any write failed: the log has gaps.
    incomplete: bool,
}

impl LogFile {
    pub(super) fn new(file: File) -> Self {
        Self {
            file,
            failure: None,
            incomplete: false,
        }
    }

    /// The first failed write, once: the runner reports it and records it.
    pub(super) fn take_failure(&mut self) -> Option<io::Error> {
        self.failure.take()
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                // Dropped, not retried: the buffer in front of the file would otherwise stay
                // full, and every line after it would try the full disk again.
                if !self.incomplete {
                    self.incomplete = true;
                    self.failure = Some(e);
                }
                Ok(buf.len())
            }
            written => written,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_is_dropped_and_reported_once() {
        // /dev/full fails every write with ENOSPC, as a full disk does.
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let mut log = io::BufWriter::with_capacity(8, LogFile::new(full));
        for _ in 0..4 {
            log.write_all(b"a line of output\n")
                .expect("dropped, not failed");
        }
        log.flush().expect("nothing is left to retry");
        let failure = log.get_mut().take_failure().expect("the first failure");
        assert_eq!(failure.kind(), io::ErrorKind::StorageFull);
        assert!(log.get_mut().take_failure().is_none(), "reported once");
    }
}
