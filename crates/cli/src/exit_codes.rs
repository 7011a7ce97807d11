//! The exit codes of `buildspec` (documented in docs/exit-codes.md).

/// The build succeeded, or every checked file is valid.
pub(crate) const SUCCESS: u8 = 0;
/// A build failed (of several: one without `ignore-failure`).
pub(crate) const FAILED: u8 = 1;
/// A usage error, or an invalid buildspec.
pub(crate) const USAGE: u8 = 2;
/// The runner's own failure (an I/O error on its state, say).
pub(crate) const FAULT: u8 = 3;
