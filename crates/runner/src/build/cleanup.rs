//! Ending a build: stopping its processes (the group, then anything that left it), and
//! completing its record.

use std::fs::File;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use jiff::Timestamp;
use nix::sys::signal::Signal;

use super::{Build, BuildOutcome, DRAIN_LIMIT, RunError, env_dump};
use crate::build::processes::Leftovers;
use crate::events::{Event, Phase, Status};
use crate::outcome::{Context, exit, signal_name};
use crate::platform;

impl Build<'_> {
    /// SIGTERM to the build's process group, SIGKILL after the grace period.
    pub(super) fn stop_processes(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let pgid = session.pgid();
        let _ = platform::signal_group(pgid, Signal::SIGTERM);
        let (mut child, _status) = session.close();
        // The console must say why the build waits before it waits.
        self.flush();
        let grace_end = Instant::now() + self.options.grace;
        while platform::group_alive(pgid) && Instant::now() < grace_end && !self.killed {
            // As PID 1 or subreaper, the group's dead are our children: a zombie still counts
            // as a member until it is reaped.
            platform::reap(pgid, &[]);
            let _ = self.wait(
                Some(
                    grace_end
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(50)),
                ),
                false,
            );
            if let Some(signal) = self.stop.take() {
                // A second request does not wait for the grace period.
                self.stopped.get_or_insert(signal);
                self.killed = true;
                self.message(&format!(
                    "{} again: killing the build's processes now",
                    signal_name(signal)
                ));
            }
            let _ = child.try_wait();
        }
        if platform::group_alive(pgid) {
            let _ = platform::signal_group(pgid, Signal::SIGKILL);
        }
        let _ = child.wait();
    }

    /// Writes an environment dump whole or not at all (a full disk leaves no empty file that
    /// would say the build had no variables), and says in the log when it could not.
    pub(super) fn write_dump(&mut self, name: &str, dump: &str) {
        let dir = self.recorder.dir().join("env");
        let written = crate::store::create_private_dir(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                crate::store::write_atomic(&dir.join(name), dump.as_bytes(), false)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            self.message(&format!("warning: cannot write env/{name}: {e}"));
        }
    }

    /// Removes the runtime files: the state report and update hold values in clear.
    pub(super) fn remove_runtime_files(&self) {
        self.runtime.remove();
    }

    /// Ends every process of the build, captures the exported variables, and completes the record.
    pub(super) fn finish(mut self) -> Result<BuildOutcome, RunError> {
        self.begin_phase(Phase::Finalizing, 1);
        if let Some(session) = self.session.take() {
            let pgid = session.pgid();
            let (mut child, mut status) = session.close();
            // The driver leaves its loop when its request pipe closes; once its status pipe
            // reads end-of-file it is exiting, and is reaped so that it no longer counts as a
            // member of the group. It is usually gone within a few milliseconds; the record is
            // written first when it is not.
            let first = Duration::from_millis(20).min(self.options.grace);
            let gone = wait_eof(&mut status, first) || {
                self.save_record();
                wait_eof(&mut status, self.options.grace - first)
            };
            if gone {
                let _ = child.wait();
            }
            // Background processes the build left behind.
            if platform::group_alive(pgid) {
                self.flush();
                let _ = platform::signal_group(pgid, Signal::SIGTERM);
                let grace_end = Instant::now() + self.options.grace;
                while platform::group_alive(pgid) && Instant::now() < grace_end && !self.killed {
                    let _ = self.wait(Some(Duration::from_millis(20)), false);
                    let _ = child.try_wait();
                    platform::reap(pgid, &[]);
                    if let Some(signal) = self.stop.take() {
                        // A stop request while the build's leftovers get their grace period:
                        // the first is noted, a second ends them at once.
                        if self.stopped.replace(signal).is_some() {
                            self.killed = true;
                        }
                    }
                }
                if platform::group_alive(pgid) {
                    let _ = platform::signal_group(pgid, Signal::SIGKILL);
                }
            }
            let _ = child.wait();
            self.await_group_end(pgid);
        }
        // Sessions of earlier run-as users may have left background processes in their groups.
        for pgid in std::mem::take(&mut self.retired_groups) {
            if platform::group_alive(pgid) {
                let _ = platform::signal_group(pgid, Signal::SIGTERM);
                let grace_end = Instant::now() + self.options.grace;
                while platform::group_alive(pgid) && Instant::now() < grace_end && !self.killed {
                    let _ = self.wait(Some(Duration::from_millis(20)), false);
                    platform::reap(pgid, &[]);
                }
                let _ = platform::signal_group(pgid, Signal::SIGKILL);
                self.await_group_end(pgid);
            }
        }
        // Processes that left the group (`setsid`, double forks) still carry the build's id.
        self.sweep();
        // Our write end closes; the pipe ends when the last process holding it is gone.
        self.pump.write = None;
        let drain_end = Instant::now() + DRAIN_LIMIT;
        while Instant::now() < drain_end {
            if !self.wait_output_until(Some(drain_end)) {
                break;
            }
        }
        self.pass_output(&[], super::stream::End::Build);
        self.recover_state();
        if let Some(limit) = self.pump.cap.reached() {
            let (lines, bytes) = (self.pump.cap.dropped_lines, self.pump.cap.dropped_bytes);
            self.message(&format!(
                "{lines} line(s), {bytes} bytes of output were counted and not kept (log limit {})",
                super::stream::show_size(limit)
            ));
            self.recorder.edit().log_truncated = Some(crate::store::LogTruncated {
                limit,
                lines,
                bytes,
            });
        }

        if let Some(plan) = &self.plan {
            let exported: IndexMap<String, String> = plan
                .exported_variables
                .iter()
                .map(|name| {
                    (
                        name.clone(),
                        // A value that holds a secret is not exported in clear either.
                        self.masker
                            .text(
                                self.shell_state
                                    .variables
                                    .get(name)
                                    .map_or("", String::as_str),
                            )
                            .into_owned(),
                    )
                })
                .collect();
            self.recorder.edit().exported_variables = exported;
        }
        let dump = env_dump(&self.shell_state, &self.secret_names, &self.masker);
        self.write_dump("end.env", &dump);
        self.remove_runtime_files();

        // A stop request that arrived after the last command (or while FINALIZING waited) is
        // the user's word too: the build ends STOPPED.
        if let Some(signal) = self.stop.take() {
            self.stopped.get_or_insert(signal);
        }
        let stopped_late = self.stopped.is_some()
            && !self
                .recorder
                .record()
                .phases
                .iter()
                .any(|p| p.status == Status::Stopped);
        if stopped_late {
            let context = Context::stopped_by(self.stopped.unwrap_or(libc::SIGTERM));
            self.end_phase(Phase::Finalizing, Status::Stopped, Some(context), true);
        } else {
            self.end_phase(Phase::Finalizing, Status::Succeeded, None, true);
        }
        let status = self.final_status();
        let exit_code = exit::of(status, self.stopped, self.invalid);
        let record = self.recorder.edit();
        record.status = status;
        record.end_time = Some(Timestamp::now());
        record.exit_code = Some(exit_code);
        self.message(&format!(
            "Build complete: {} (exit code {exit_code}); record {}",
            status.as_str(),
            self.record_path().display()
        ));
        self.emit(&Event::BuildFinished {
            status,
            exit_code,
            duration: self.started.elapsed(),
        });
        self.flush();
        self.recorder.finish(&self.masker)?;
        Ok(BuildOutcome {
            record_path: self.record_path(),
            // The diagnostics quote the buildspec, which may hold a value to mask.
            diagnostics: self.masker.text(&self.diagnostics).into_owned(),
            record: self.recorder.masked(&self.masker),
            exit_code,
        })
    }

    /// Ends every process still carrying this build's `CODEBUILD_BUILD_ID`: SIGTERM, then
    /// SIGKILL after the grace period; and reaps the orphans that ended.
    /// After SIGKILL: waits (briefly; the signal lands asynchronously) until the group's
    /// processes are gone, reaping the ones that are ours.
    fn await_group_end(&mut self, pgid: u32) {
        let end = Instant::now() + Duration::from_secs(1);
        loop {
            platform::reap(pgid, &[]);
            if !platform::group_alive(pgid) || Instant::now() >= end {
                return;
            }
            let _ = self.wait(Some(Duration::from_millis(5)), false);
        }
    }

    /// Ends every process the build left outside its process group: SIGTERM, and the grace
    /// period, for each found (and each found later, a daemon that respawns included); then
    /// what is left is frozen and killed: SIGSTOP to each process found, looking again until no
    /// new one appears (a stopped process cannot start another), then SIGKILL to them all. A
    /// loop that starts a new process between a look and a kill cannot outrun that. Bounded in
    /// time; what could not be ended is said in the log and kept in the record.
    pub(super) fn sweep(&mut self) {
        let find = Leftovers::of_build(
            &self.recorder.record().id,
            self.options.owns_children,
            self.subreaper,
        );
        let mut left = find.find();
        if left.is_empty() {
            if self.options.owns_children {
                platform::reap_all_children(&[]);
            }
            return;
        }
        self.message(&format!(
            "Ending {} process(es) the build left outside its process group",
            left.len()
        ));
        self.flush();
        let mut termed: Vec<u32> = Vec::new();
        let grace_end = Instant::now() + self.options.grace;
        loop {
            let new: Vec<u32> = left
                .iter()
                .filter(|p| !termed.contains(p))
                .copied()
                .collect();
            platform::signal_each(&new, Signal::SIGTERM);
            termed.extend(new);
            platform::reap(0, &termed);
            left = find.find();
            if left.is_empty() || Instant::now() >= grace_end || self.killed {
                break;
            }
            let _ = self.wait(Some(Duration::from_millis(20)), false);
            if self.stop.take().is_some() {
                self.killed = true;
            }
        }
        let (left, killed) = crate::build::processes::freeze_and_kill(
            &find,
            left,
            Instant::now() + SWEEP_KILL_LIMIT,
            &mut |pause| {
                let _ = self.wait(Some(pause), false);
            },
        );
        platform::reap(0, &termed);
        platform::reap(0, &killed);
        if self.options.owns_children {
            platform::reap_all_children(&[]);
        }
        if !left.is_empty() {
            let named: Vec<String> = left
                .iter()
                .map(|pid| match platform::process_name(*pid) {
                    Some(name) => format!("{pid} ({name})"),
                    None => pid.to_string(),
                })
                .collect();
            self.message(&format!(
                "warning: {} process(es) of the build could not be ended: {}",
                left.len(),
                named.join(", ")
            ));
            self.recorder.edit().unended_processes = left;
            self.record_changed();
        }
    }
}

/// How long the sweep may take to freeze and kill what outlived the grace period.
const SWEEP_KILL_LIMIT: Duration = Duration::from_secs(5);

/// Waits until `pipe` reads end-of-file, at most `limit`.
pub(super) fn wait_eof(pipe: &mut File, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 256];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if platform::wait_readable(&[platform::borrow(pipe)], Some(left)).is_err() {
            return false;
        }
    }
}
