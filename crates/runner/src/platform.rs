//! The only module that talks to the OS below std: pipes mapped to fixed descriptors in a child,
//! non-blocking reads, `poll`, and signals to process groups. Every `unsafe` block of the crate is
//! here, each with the reason it is sound.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, dup2_raw};

/// A pipe whose two ends are closed on exec.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (reader, writer) = io::pipe()?;
    Ok((reader.into(), writer.into()))
}

/// Moves a descriptor to a number of at least 10, so that mapping it onto 3 or 4 in a child can
/// never overwrite another descriptor that is still to be mapped.
pub(crate) fn raise(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= 10 {
        return Ok(fd);
    }
    let raised = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(10))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raised) })
}

/// Makes reads from `fd` return `WouldBlock` instead of waiting.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Gives the child `fds[i].0` as descriptor `fds[i].1` (3, 4, ...), open across exec. The
/// sources must be at least 10 (see [`raise`]) and stay open until the child is spawned.
pub(crate) fn map_fds(command: &mut Command, fds: Vec<(RawFd, RawFd)>) {
    let fds: Vec<(RawFd, RawFd)> = fds;
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed: dup2 is one, and the closure allocates nothing (the vector was built
    // before the fork). The sources are distinct from the targets (sources are >= 10, targets
    // are below), so no mapping overwrites a source still to be mapped, and dup2's result has
    // close-on-exec cleared, which is what keeps the targets open in the new program.
    unsafe {
        command.pre_exec(move || {
            for &(source, target) in &fds {
                // SAFETY: `source` is open: the parent keeps it until the child is spawned.
                let source = BorrowedFd::borrow_raw(source);
                // SAFETY: `target` (3 or 4) is free to take in the child: std opened no
                // descriptors there, and a descriptor it inherited there is replaced on purpose.
                let mapped = dup2_raw(source, target).map_err(io::Error::from)?;
                // The mapped descriptor must stay open into the new program.
                std::mem::forget(mapped);
            }
            Ok(())
        });
    }
}

/// Which of the polled descriptors are ready.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ready {
    /// Readable, or closed by its last writer.
    pub(crate) readable: bool,
}

/// Waits until one of `fds` is readable or closed, or `timeout` passes (`None`: no limit).
/// Interrupted waits return with nothing ready.
pub(crate) fn wait_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<Ready>> {
    let mut polls: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(t) => PollTimeout::try_from(t.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX),
    };
    match poll(&mut polls, timeout) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok(vec![Ready::default(); fds.len()]),
        Err(e) => return Err(e.into()),
    }
    Ok(polls
        .iter()
        .map(|p| Ready {
            readable: p.revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            }),
        })
        .collect())
}

/// Sends a signal to every process of a group. A group that is already gone is not an error.
pub(crate) fn signal_group(pgid: u32, signal: Signal) -> io::Result<()> {
    let pgid =
        i32::try_from(pgid).map_err(|_| io::Error::other("process group id out of range"))?;
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether any process of the group is still alive.
pub(crate) fn group_alive(pgid: u32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    // Signal 0 checks for existence without delivering anything.
    killpg(Pid::from_raw(pgid), None).is_ok()
}

/// A descriptor as a borrowed one, for `poll`.
pub(crate) fn borrow<T: AsFd>(fd: &T) -> BorrowedFd<'_> {
    fd.as_fd()
}
