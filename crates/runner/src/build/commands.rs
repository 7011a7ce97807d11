//! Running commands in the session: one at a time (compat), or a list at once (persistent),
//! with the session started, switched to another user, or restarted as needed.

use std::io;
use std::time::{Duration, Instant};

use buildspec::{Command, PhaseName};
use nix::sys::signal::Signal;

use super::cleanup::wait_eof;
use super::stream::End;
use super::{Build, FLUSH_AFTER, script_id};
use crate::build::shell::{Listed, Reply, Session, SessionKind};
use crate::events::{Event, Phase, Status};
use crate::outcome::{exit, signal_name};
use crate::platform;

/// Where a persistent list is.
struct Progress<'l> {
    phase: Phase,
    name: PhaseName,
    list: &'l [Command],
    finally: bool,
    /// The first command not started yet.
    next: usize,
    /// The command running (started, not finished), and since when.
    running: Option<(usize, Instant)>,
}

impl Progress<'_> {
    /// The command running, or else the next one.
    fn current(&self) -> usize {
        self.running.map_or(self.next, |(i, _)| i)
    }

    /// The command whose script id is `id`, from `from` on.
    fn find(&self, id: &str, from: usize) -> Option<usize> {
        (from..self.list.len()).find(|i| script_id(self.name, self.finally, *i) == id)
    }
}

impl Build<'_> {
    /// Makes the next command run as `name` (`run-as`; `None` or the runner's own user: no
    /// switch). A session of another user ends first; its background processes stay, as they
    /// would on CodeBuild, and are ended with the build.
    pub(super) fn use_user(&mut self, name: Option<&str>) {
        let wanted = name.and_then(|n| self.users.get(n)).cloned();
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        if spec.user == wanted {
            return;
        }
        spec.user = wanted.clone();
        // Each user's phases have a runtime folder of their own: nothing a phase can write is
        // run by a phase of another user.
        spec.scripts = self.runtime.dir(wanted.as_ref());
        // HOME, USER and LOGNAME follow the user: its own in its phases, the runner's after.
        for (name, own) in [("HOME", 0), ("USER", 1), ("LOGNAME", 2)] {
            let value = match &wanted {
                Some(user) => Some(if own == 0 {
                    user.home.clone()
                } else {
                    user.name.clone()
                }),
                None => self.own_identity[own].clone(),
            };
            match value {
                Some(value) => {
                    self.shell_state.variables.insert(name.to_owned(), value);
                }
                None => {
                    self.shell_state.variables.remove(name);
                }
            }
        }
        if let Some(session) = self.session.take() {
            self.retired_groups.push(session.pgid());
            let (mut child, mut status) = session.close();
            self.save_record();
            if wait_eof(&mut status, self.options.grace) {
                let _ = child.wait();
            } else {
                let _ = platform::signal_group(
                    self.retired_groups[self.retired_groups.len() - 1],
                    Signal::SIGKILL,
                );
                let _ = child.wait();
            }
        }
    }

    /// A command that runs can be seen outside the build (the files it writes, a FIFO, output
    /// sent elsewhere), so from then on a runner killed at any moment must leave a record that
    /// names the phase and a log up to the command. Each is written only if it changed.
    fn write_before_commands(&mut self) {
        self.flush_log();
        self.save_record();
    }

    pub(super) fn ensure_session(&mut self) -> io::Result<()> {
        if self.session.is_some() {
            return Ok(());
        }
        if self.pump.write.is_none() {
            self.pump.open()?;
        }
        let spec = self
            .spec
            .clone()
            .ok_or_else(|| io::Error::other("no session spec"))?;
        let output = self
            .pump
            .write
            .as_ref()
            .ok_or_else(|| io::Error::other("no output pipe"))?;
        self.session = Some(Session::start(spec, &self.shell_state, output)?);
        Ok(())
    }

    /// Runs a list of commands (a phase's `commands` or its `finally`) until one fails; returns
    /// the result of each command that ran, in order. `Err` carries the status that interrupts
    /// the build (TIMED_OUT, STOPPED, FAULT).
    pub(super) fn run_list(
        &mut self,
        phase: Phase,
        name: PhaseName,
        list: &[Command],
        finally: bool,
    ) -> Vec<(usize, Result<i32, Status>)> {
        let persistent = self
            .spec
            .as_ref()
            .is_some_and(|s| s.kind == SessionKind::Persistent);
        if persistent {
            return self.run_pipelined(phase, name, list, finally);
        }
        let mut results = Vec::new();
        for (index, command) in list.iter().enumerate() {
            let id = script_id(name, finally, index);
            let result = self.run_command(phase, &id, &command.text, command.line, finally);
            let go_on = matches!(result, Ok(0));
            results.push((index, result));
            if !go_on {
                break;
            }
        }
        results
    }

    /// A persistent session gets the whole list at once, so each command starts without a
    /// round trip to the runner; the marker the driver writes before each command tells the
    /// runner where that command's output begins.
    pub(super) fn run_pipelined(
        &mut self,
        phase: Phase,
        name: PhaseName,
        list: &[Command],
        finally: bool,
    ) -> Vec<(usize, Result<i32, Status>)> {
        let mut results: Vec<(usize, Result<i32, Status>)> = Vec::new();
        // The first command not yet run, and the one running (started, not finished).
        let mut next = 0;
        'session: while next < list.len() {
            if let Some(signal) = self.stop.take() {
                self.stopped = Some(signal);
                self.message(&format!("Build stopped by {}", signal_name(signal)));
                results.push((next, Err(Status::Stopped)));
                return results;
            }
            self.write_before_commands();
            if let Err(e) = self.ensure_session() {
                self.message(&format!("cannot start the shell: {e}"));
                results.push((next, Err(Status::Fault)));
                return results;
            }
            let ids: Vec<String> = (next..list.len())
                .map(|i| script_id(name, finally, i))
                .collect();
            let listed: Vec<Listed<'_>> = ids
                .iter()
                .zip(&list[next..])
                .map(|(id, command)| Listed {
                    id,
                    text: &command.text,
                })
                .collect();
            let sent = match self.session.as_mut() {
                Some(session) => {
                    session.send_list(&listed, self.succeeding, self.last_exit, &self.shell_state)
                }
                None => Err(io::Error::other("no session")),
            };
            if let Err(e) = sent {
                self.message(&format!("cannot send the commands to the shell: {e}"));
                results.push((next, Err(Status::Fault)));
                return results;
            }
            let mut at = Progress {
                phase,
                name,
                list,
                finally,
                next,
                running: None,
            };
            loop {
                // Output first: up to the next marker, which starts the next command.
                if let (_, Some(id)) = self.pump_output() {
                    self.marked(&id, &mut at, &mut results);
                    continue;
                }
                let reply = match self.session.as_mut().map(Session::poll_reply) {
                    Some(Ok(reply)) => reply,
                    Some(Err(e)) => {
                        self.message(&format!("the shell session failed: {e}"));
                        results.push((at.current(), Err(Status::Fault)));
                        return results;
                    }
                    None => Reply::DriverExited(255),
                };
                match reply {
                    Reply::Done(code, state, stopped_at) => {
                        if let Some(state) = state {
                            self.shell_state = state;
                        }
                        // Every marker of the list is in the pipe once the driver has replied
                        // (it wrote them first), though some may not have been read yet.
                        self.drain_markers(&mut at, &mut results);
                        // The command the list stopped at. It ran without its marker when a
                        // command moved the shell's output away (`exec > file`): the ones
                        // before it ran too, and exited 0.
                        if let Some(last) = stopped_at.and_then(|id| at.find(&id, at.current())) {
                            while at.next <= last {
                                self.advance(Some(at.next), &mut at, &mut results);
                            }
                        }
                        let Some((index, started)) = at.running.take() else {
                            return results;
                        };
                        self.finish_command(phase, &list[index], code, started);
                        results.push((index, Ok(code)));
                        if code != 0 || index + 1 == list.len() {
                            return results;
                        }
                        // A `return` ended the list early: the rest goes as a new list.
                        next = index + 1;
                        continue 'session;
                    }
                    Reply::DriverExited(code) => {
                        // The command ended the shell: its status is the shell's. The rest of
                        // the list goes to a new shell, from the last reported state.
                        self.drain_markers(&mut at, &mut results);
                        if let Some(session) = self.session.take() {
                            let (mut child, _) = session.close();
                            let _ = child.wait();
                        }
                        self.recover_state();
                        let (index, started) =
                            at.running.take().unwrap_or((at.next, Instant::now()));
                        if index == at.next {
                            self.start_command(phase, &list[index], finally);
                        }
                        self.finish_command(phase, &list[index], code, started);
                        results.push((index, Ok(code)));
                        next = index + 1;
                        if code != 0 {
                            return results;
                        }
                        continue 'session;
                    }
                    Reply::Pending => {}
                }
                if let Some(status) = self.wait_for_output_or_reply() {
                    results.push((at.current(), Err(status)));
                    return results;
                }
            }
        }
        results
    }

    /// A marker of a persistent list, `id`: the command running before it exited 0 (a failure
    /// ends the list, and its status comes on the status pipe), and the command `id` starts.
    fn marked(
        &mut self,
        id: &str,
        at: &mut Progress<'_>,
        results: &mut Vec<(usize, Result<i32, Status>)>,
    ) {
        let index = at.find(id, at.next);
        self.advance(index, at, results);
    }

    /// The command running exited 0, and the command `index`, if any, starts.
    fn advance(
        &mut self,
        index: Option<usize>,
        at: &mut Progress<'_>,
        results: &mut Vec<(usize, Result<i32, Status>)>,
    ) {
        if let Some((running, started)) = at.running.take() {
            self.finish_command(at.phase, &at.list[running], 0, started);
            results.push((running, Ok(0)));
        }
        let Some(index) = index else {
            return;
        };
        self.start_command(at.phase, &at.list[index], at.finally);
        at.running = Some((index, Instant::now()));
        at.next = index + 1;
    }

    /// Takes every marker the output pipe holds now, in order.
    fn drain_markers(
        &mut self,
        at: &mut Progress<'_>,
        results: &mut Vec<(usize, Result<i32, Status>)>,
    ) {
        while let (_, Some(id)) = self.pump_output() {
            self.marked(&id, at, results);
        }
    }

    /// A command that ended the persistent driver (`exit`, or the SIGTERM of a timeout or a stop)
    /// left the state the driver had then: the build goes on from it.
    pub(super) fn recover_state(&mut self) {
        let Some(spec) = &self.spec else {
            return;
        };
        if let Some(mut state) = Session::take_exit_state(&spec.scripts, spec.user.as_ref()) {
            if state.cwd.is_empty() {
                state.cwd.clone_from(&self.shell_state.cwd);
            }
            self.shell_state = state;
        }
    }

    /// Collects the build's orphans that ended (as PID 1, or as subreaper, they are ours; the
    /// driver is not: its handle waits for it). Every few commands: looking costs more than a
    /// trivial command, and a few zombies for a moment cost nothing.
    pub(super) fn reap_now_and_then(&mut self) {
        self.commands_done += 1;
        if self.commands_done % 16 == 1 {
            self.reap_orphans();
        }
    }

    /// The build's orphans that ended: those of its process group, and (when the build owns
    /// the process's children) any other, such as a `setsid` daemon that exited.
    pub(super) fn reap_orphans(&self) {
        let driver = self.session.as_ref().map(Session::pgid);
        if let Some(pgid) = driver {
            platform::reap(pgid, &[]);
        }
        if self.options.owns_children {
            platform::reap_all_children(driver.as_slice());
        }
    }

    pub(super) fn start_command(&mut self, phase: Phase, command: &Command, finally: bool) {
        self.emit(&Event::CommandStarted {
            phase,
            command: command.text.as_str().into(),
            line: command.line,
            finally,
        });
        self.pump.tail.clear();
    }

    pub(super) fn finish_command(
        &mut self,
        phase: Phase,
        command: &Command,
        code: i32,
        started: Instant,
    ) {
        self.pass_output(&[], End::Command);
        self.last_exit = code;
        self.reap_now_and_then();
        self.emit(&Event::CommandFinished {
            phase,
            command: command.text.as_str().into(),
            exit_code: code,
            duration: started.elapsed(),
        });
    }

    /// Waits for output, the driver's reply, a stop request or the deadline. `Some` is the status
    /// that ends the wait for good (TIMED_OUT, STOPPED, FAULT).
    pub(super) fn wait_for_output_or_reply(&mut self) -> Option<Status> {
        let timeout = match self.interrupt_if_due() {
            Ok(timeout) => timeout,
            Err(status) => return Some(status),
        };
        let quick = timeout.map_or(FLUSH_AFTER, |t| t.min(FLUSH_AFTER));
        let mut woken = self.poll_only(Some(quick));
        if matches!(woken, Ok(false)) && timeout != Some(quick) {
            self.flush();
            woken = self.poll_only(timeout.map(|t| t.saturating_sub(quick)));
        }
        if let Err(e) = woken {
            self.message(&format!("cannot wait for the command: {e}"));
            return Some(Status::Fault);
        }
        None
    }

    /// Stops the running command when the deadline has passed or a stop was requested, returning
    /// the status that ends the build; otherwise the time left before the deadline.
    fn interrupt_if_due(&mut self) -> Result<Option<Duration>, Status> {
        let timeout = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        if timeout == Some(Duration::ZERO) {
            self.timed_out = true;
            self.message("Build timed out: stopping the running command");
            self.stop_processes();
            return Err(Status::TimedOut);
        }
        if let Some(signal) = self.stop.take() {
            self.stopped = Some(signal);
            self.message(&format!(
                "Build stopped by {}: stopping the running command",
                signal_name(signal)
            ));
            self.stop_processes();
            return Err(Status::Stopped);
        }
        Ok(timeout)
    }

    /// Waits until the output, the driver's status or a stop request is ready, reading nothing
    /// (the caller reads the output, markers included).
    pub(super) fn poll_only(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        self.save_record();
        let Some(output) = self.pump.read.as_ref() else {
            return Ok(false);
        };
        let mut fds = vec![platform::borrow(output)];
        if let Some(session) = self.session.as_ref() {
            fds.push(platform::borrow(session.status_fd()));
        }
        fds.extend(self.stop.fds());
        Ok(platform::wait_readable(&fds, timeout)?
            .iter()
            .any(|r| r.readable))
    }

    /// Runs one command; `Err` carries the status that interrupts the build (TIMED_OUT, FAULT).
    pub(super) fn run_command(
        &mut self,
        phase: Phase,
        id: &str,
        text: &str,
        line: u32,
        finally: bool,
    ) -> Result<i32, Status> {
        if let Some(signal) = self.stop.take() {
            self.stopped = Some(signal);
            self.message(&format!("Build stopped by {}", signal_name(signal)));
            return Err(Status::Stopped);
        }
        self.emit(&Event::CommandStarted {
            phase,
            command: text.into(),
            line,
            finally,
        });
        self.pump.tail.clear();
        let started = Instant::now();
        self.write_before_commands();
        if let Err(e) = self.ensure_session() {
            self.message(&format!("cannot start the shell: {e}"));
            self.emit(&Event::CommandFinished {
                phase,
                command: text.into(),
                exit_code: 127,
                duration: started.elapsed(),
            });
            return Err(Status::Fault);
        }
        let sent = match self.session.as_mut() {
            Some(session) => session.send(id, self.succeeding, self.last_exit, &self.shell_state),
            None => Err(io::Error::other("no session")),
        };
        if let Err(e) = sent {
            self.message(&format!("cannot send the command to the shell: {e}"));
            return Err(Status::Fault);
        }
        self.pump.command_line = Some(line);
        let code = match self.wait_for_reply() {
            Ok(code) => code,
            Err(status) => {
                self.pump.command_line = None;
                self.emit(&Event::CommandFinished {
                    phase,
                    command: text.into(),
                    exit_code: exit::of_signal(libc::SIGTERM),
                    duration: started.elapsed(),
                });
                return Err(status);
            }
        };
        self.drain_output();
        self.pass_output(&[], End::Command);
        self.pump.command_line = None;
        self.last_exit = code;
        self.reap_now_and_then();
        self.emit(&Event::CommandFinished {
            phase,
            command: text.into(),
            exit_code: code,
            duration: started.elapsed(),
        });
        Ok(code)
    }

    /// Waits for the driver's reply, streaming output meanwhile.
    pub(super) fn wait_for_reply(&mut self) -> Result<i32, Status> {
        loop {
            let reply = match self.session.as_mut().map(Session::poll_reply) {
                Some(Ok(reply)) => reply,
                Some(Err(e)) => {
                    self.message(&format!("the shell session failed: {e}"));
                    return Err(Status::Fault);
                }
                None => return Err(Status::Fault),
            };
            match reply {
                Reply::Done(code, state, _) => {
                    if let Some(state) = state {
                        self.shell_state = state;
                    }
                    return Ok(code);
                }
                Reply::DriverExited(code) => {
                    // The command ended the shell (persistent `exit`, or a signal to the group):
                    // its status is the shell's, and the next command gets a new shell that
                    // starts from the last reported state.
                    if let Some(session) = self.session.take() {
                        let (mut child, _) = session.close();
                        let _ = child.wait();
                    }
                    self.recover_state();
                    return Ok(code);
                }
                Reply::Pending => {}
            }
            let timeout = self.interrupt_if_due()?;
            // Flushing the log and the console costs two writes: a command that answers within
            // a few milliseconds does not need it, one that runs longer gets it before the wait.
            let quick = timeout.map_or(FLUSH_AFTER, |t| t.min(FLUSH_AFTER));
            let mut woken = self.wait(Some(quick), true);
            if matches!(woken, Ok(false)) && timeout != Some(quick) {
                self.flush();
                woken = self.wait(timeout.map(|t| t.saturating_sub(quick)), true);
            }
            if let Err(e) = woken {
                self.message(&format!("cannot wait for the command: {e}"));
                return Err(Status::Fault);
            }
        }
    }

    /// Waits until the output, the driver's status pipe (`with_status`) or a stop request is
    /// ready, or `timeout` passes, and reads the output that arrived. True when something woke
    /// it.
    pub(super) fn wait(
        &mut self,
        timeout: Option<Duration>,
        with_status: bool,
    ) -> io::Result<bool> {
        self.save_record();
        let Some(output) = self.pump.read.as_ref() else {
            return Ok(false);
        };
        let mut fds = vec![platform::borrow(output)];
        if with_status && let Some(session) = self.session.as_ref() {
            fds.push(platform::borrow(session.status_fd()));
        }
        fds.extend(self.stop.fds());
        let ready = platform::wait_readable(&fds, timeout)?;
        let output_ready = ready[0].readable;
        let any = ready.iter().any(|r| r.readable);
        if output_ready {
            self.read_output();
        }
        Ok(any)
    }
}
