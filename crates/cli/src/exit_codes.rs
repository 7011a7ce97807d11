//! The exit codes of `buildspec` (documented in docs/exit-codes.md), as a process's: the
//! engine's one table (`runner::outcome::exit`).

use runner::outcome::exit;

/// The build succeeded, or every checked file is valid.
pub(crate) const SUCCESS: u8 = exit::SUCCEEDED as u8;
/// A usage error, or an invalid buildspec.
pub(crate) const USAGE: u8 = exit::INVALID as u8;
/// The runner's own failure (an I/O error on its state, say).
pub(crate) const FAULT: u8 = exit::FAULT as u8;
