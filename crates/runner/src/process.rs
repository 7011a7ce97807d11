//! Exit statuses as numbers.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// A process's exit code, or 128 + the signal that ended it, as shells report it.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}
