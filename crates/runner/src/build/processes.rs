//! Exit statuses as numbers, and ending what a build left running.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::platform;

/// A process's exit code, or 128 + the signal that ended it, as shells report it.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(crate::outcome::exit::of_signal))
        .unwrap_or(255)
}

/// Where a build's processes are found once its process group is done with.
#[derive(Debug, Clone)]
pub(crate) struct Leftovers {
    /// `CODEBUILD_BUILD_ID=<id>`, which every process of the build inherits.
    marker: Vec<u8>,
    /// The build is this process's only one and this process its subreaper: the build's
    /// processes are exactly this process's descendants (an orphan comes back to it, even one
    /// that cleared its environment).
    descendants: bool,
    /// The build is this process's only one: its children are the build's too.
    children: bool,
}

impl Leftovers {
    /// The processes of build `id`: those carrying its id, or, for a build that `owns` this
    /// process's children, those and the children (all its descendants, for a `subreaper`).
    pub(crate) fn of_build(id: &str, owns: bool, subreaper: bool) -> Leftovers {
        Leftovers {
            marker: format!("CODEBUILD_BUILD_ID={id}").into_bytes(),
            descendants: owns && subreaper,
            children: owns,
        }
    }

    /// The build's processes alive now.
    pub(crate) fn find(&self) -> Vec<u32> {
        if self.descendants {
            return platform::live_descendants();
        }
        let mut left = platform::processes_with(&self.marker);
        if self.children {
            for pid in platform::live_children() {
                if !left.contains(&pid) {
                    left.push(pid);
                }
            }
        }
        left
    }
}

/// Ends the processes `left` and any the build starts meanwhile: each is frozen (SIGSTOP),
/// looking again until no process that is not stopped yet is found (a stopped process cannot
/// start another), then all are killed (SIGKILL); repeated until none is left or `until`.
/// `pause` waits a moment (reading the build's output, for a build that is still running).
/// Returns what is still alive, and every process signalled (to reap).
pub(crate) fn freeze_and_kill(
    find: &Leftovers,
    mut left: Vec<u32>,
    until: Instant,
    pause: &mut dyn FnMut(Duration),
) -> (Vec<u32>, Vec<u32>) {
    let mut all: Vec<u32> = Vec::new();
    while !left.is_empty() && Instant::now() < until {
        let mut frozen: Vec<u32> = Vec::new();
        let mut new = left;
        while !new.is_empty() {
            platform::signal_each(&new, Signal::SIGSTOP);
            frozen.extend(&new);
            if Instant::now() >= until {
                break;
            }
            // A process between fork and its stop may have started one more: look again.
            new = find
                .find()
                .into_iter()
                .filter(|p| !frozen.contains(p))
                .collect();
        }
        platform::signal_each(&frozen, Signal::SIGKILL);
        // SIGKILL is not refused, but it lands asynchronously: wait (briefly) until the
        // processes are zombies, so that they can be reaped.
        let gone_end = (Instant::now() + Duration::from_secs(1)).min(until);
        loop {
            platform::reap(0, &frozen);
            left = find.find();
            if left.is_empty() || Instant::now() >= gone_end {
                break;
            }
            pause(Duration::from_millis(5));
        }
        all.extend(frozen);
    }
    (left, all)
}
