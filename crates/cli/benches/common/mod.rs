//! What the benchmarks share: timing a command, medians, the children's peak memory, verdicts.
// Each benchmark is its own crate and uses part of this module.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The middle sample.
pub(crate) fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// A duration as the tables show it.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:9.1} ms", d.as_secs_f64() * 1000.0)
}

/// The largest resident set of any child this process has waited for, in KiB.
pub(crate) fn peak_child_rss_kb() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss())
        .unwrap_or(0)
}

/// Runs a command to its end, its output discarded, and returns how long it took.
pub(crate) fn timed(command: &mut Command) -> Duration {
    let started = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the command");
    let took = started.elapsed();
    assert!(status.success(), "{command:?} failed");
    took
}

/// Prints a target's verdict and keeps the misses.
pub(crate) fn verdict(failures: &mut Vec<String>, ok: bool, what: String) {
    println!("  {}  {what}", if ok { "PASS" } else { "FAIL" });
    if !ok {
        failures.push(what);
    }
}
