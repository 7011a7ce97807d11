//! Builds whose runner is gone: a runner killed with SIGKILL (or one whose machine restarted)
//! leaves its record IN_PROGRESS, its processes and its runtime folders. Each running build
//! holds a lease in the state directory (`running/<uuid>`); the next command that looks at the
//! state directory ([`recover`]) finds the leases whose runner is gone (by its pid, when it
//! started, and the machine's boot), ends what the build left, and completes its record.

use std::time::{Duration, Instant};

use crate::build::processes::{Leftovers, freeze_and_kill};
use crate::outcome::{ContextCode, Status};
use crate::platform;
use crate::store::{BuildRecord, FreshRecord, StateDir, Verdict};

/// How long ending a dead build's processes may take.
const END_LIMIT: Duration = Duration::from_secs(5);

/// Whether the runner of a record is gone: `Some(true)` when it is, `Some(false)` when it runs,
/// `None` when this machine cannot tell (it ran on another one, or wrote no identity).
pub(crate) fn runner_gone(record: &BuildRecord) -> Option<bool> {
    let (Some(host), Some(boot)) = (&record.runner_host, &record.runner_boot) else {
        return None;
    };
    if Some(host) != platform::host_name().as_ref() {
        return None;
    }
    if Some(boot) != platform::boot_id().as_ref() {
        // This machine restarted since: every process of that boot is gone.
        return Some(true);
    }
    let started = platform::process_start(record.runner_pid);
    Some(started.is_none() || started != record.runner_start)
}

/// Ends what a build whose runner died left on this machine: the processes that carry its
/// build id (frozen, then killed), and its runtime folders. Nothing when it has no record
/// yet (it never started a command).
pub fn end_what_is_left(state: &StateDir, uuid: &str) {
    crate::build::shell::runtime::remove_left(uuid);
    let Ok(record) = state.read(uuid) else {
        return;
    };
    // Pids and environments of another boot or machine mean nothing here.
    if runner_gone(&record) != Some(true) {
        return;
    }
    let find = Leftovers::of_build(&record.id, false, false);
    let left = find.find();
    if left.is_empty() {
        return;
    }
    let (_, killed) = freeze_and_kill(
        &find,
        left,
        Instant::now() + END_LIMIT,
        &mut std::thread::sleep,
    );
    platform::reap(0, &killed);
}

/// Finds the builds of `state` whose runner is gone, ends what they left and completes their
/// records (FAULT, with the reason); returns the records completed. `by` names the command
/// that found them, for the record. Builds of another machine are left alone.
pub fn recover(state: &StateDir, by: &str) -> Vec<BuildRecord> {
    let mut completed = Vec::new();
    for uuid in state.leases() {
        let Ok(record) = state.read(&uuid) else {
            continue;
        };
        if record.status != Status::InProgress {
            // It ended, and its runner died before it let go of its lease.
            state.release(&uuid);
            continue;
        }
        if runner_gone(&record) != Some(true) {
            continue;
        }
        // One command ends it, whichever looked first.
        if !state.claim(&uuid) {
            continue;
        }
        end_what_is_left(state, &uuid);
        let verdict = Verdict {
            status: Status::Fault,
            status_code: ContextCode::RunnerError,
            message: format!(
                "the runner (pid {}) is gone without finishing the build: it was killed, or its \
                 machine restarted; completed by {by} (pid {})",
                record.runner_pid,
                std::process::id()
            ),
            exit_code: None,
        };
        if let Ok(record) =
            state.complete(&uuid, &FreshRecord::default(), Some(&verdict), false, None)
        {
            completed.push(record);
        }
    }
    completed
}
