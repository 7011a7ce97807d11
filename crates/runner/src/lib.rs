//! The buildspec engine. It never prints: it returns values and, once builds run, emits events
//! for the CLI to render.
//!
//! Today it resolves the build's environment; sessions, phases, artifacts and records build on it.

#![warn(missing_docs)]

pub mod env;
