//! The only module that talks to the OS below std: children started with pipes on fixed
//! descriptors (`posix_spawn`), non-blocking reads, `poll`, and signals to process groups. Every
//! `unsafe` block of the crate is here, each with the reason it is sound.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
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
pub(crate) fn above_fd_ten(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= 10 {
        return Ok(fd);
    }
    let raised = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(10))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raised) })
}

/// Takes this process's standard input for itself, and leaves `/dev/null` in its place: what
/// reads descriptor 0 later (a path such as `/dev/stdin` given to the runner) reads nothing,
/// instead of what arrives on the original input.
pub(crate) fn take_stdin() -> io::Result<std::fs::File> {
    let stdin = std::io::stdin();
    let taken = fcntl(&stdin, FcntlArg::F_DUPFD_CLOEXEC(10))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    let taken = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(taken) };
    let null = std::fs::File::open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    Ok(std::fs::File::from(taken))
}

/// Asks for a larger pipe buffer (Linux), so that a fast writer fills more per read: fewer
/// reads and wake-ups for the same output. Best effort.
pub(crate) fn enlarge_pipe(fd: BorrowedFd<'_>, bytes: i32) {
    let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(bytes));
}

/// Makes reads from `fd` return `WouldBlock` instead of waiting.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Gives the child `fds[i].0` as descriptor `fds[i].1` (3, 4, ...), open across exec. The
/// sources must be at least 10 (see [`above_fd_ten`]) and stay open until the child is spawned.
fn map_fds(command: &mut Command, fds: Vec<(RawFd, RawFd)>) {
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

/// A program to start in a process group of its own, with `/dev/null` as its input, `output`
/// as its stdout and stderr, and `fds[i].0` as descriptor `3 + i`.
pub(crate) struct Launch<'a> {
    /// A path (looked up beforehand: nothing searches `PATH` here).
    pub(crate) program: &'a str,
    /// The arguments after `argv[0]`, which is `program`.
    pub(crate) args: &'a [&'a OsStr],
    /// The whole environment.
    pub(crate) env: &'a BTreeMap<String, String>,
    pub(crate) cwd: &'a Path,
    pub(crate) output: BorrowedFd<'a>,
    /// At least 10 each (see [`above_fd_ten`]), so that no mapping overwrites another.
    pub(crate) fds: [BorrowedFd<'a>; 2],
    /// The user to run as (root only), instead of this process's.
    pub(crate) user: Option<&'a RunAs>,
}

/// Starts a [`Launch`]. Without a user to switch to, with `posix_spawn`: the child shares this
/// process's memory until it runs the program, where a `fork` would copy the page tables and
/// make both sides fault on every page written afterwards, which cost a tenth of a one-command
/// build. Switching users needs code between fork and exec, so that takes std's `fork` path.
pub(crate) fn launch(launch: &Launch<'_>) -> io::Result<Process> {
    let Some(user) = launch.user else {
        return posix_spawn(launch);
    };
    let mut command = Command::new(launch.program);
    command
        .args(launch.args)
        .env_clear()
        .envs(launch.env)
        .current_dir(launch.cwd)
        .stdin(std::process::Stdio::null())
        .stdout(launch.output.try_clone_to_owned()?)
        .stderr(launch.output.try_clone_to_owned()?)
        .process_group(0);
    default_signals(&mut command);
    switch_user(&mut command, user);
    map_fds(
        &mut command,
        vec![
            (launch.fds[0].as_raw_fd(), 3),
            (launch.fds[1].as_raw_fd(), 4),
        ],
    );
    let child = command.spawn()?;
    // Its handles hold nothing (none of its descriptors is a pipe of ours): it is waited on by
    // pid from now on, as a spawned one is.
    let pid = Pid::from_raw(i32::try_from(child.id()).map_err(io::Error::other)?);
    Ok(Process { pid, status: None })
}

fn posix_spawn(launch: &Launch<'_>) -> io::Result<Process> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    if !launch.program.contains('/') {
        // Not found in PATH by the caller; posix_spawn would look in the working directory.
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let c_string = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "an argument or a variable holds a NUL byte",
            )
        })
    };
    let program = c_string(launch.program.as_bytes())?;
    let mut argv = vec![program.clone()];
    for arg in launch.args {
        argv.push(c_string(arg.as_bytes())?);
    }
    let envp = launch
        .env
        .iter()
        .map(|(name, value)| c_string(format!("{name}={value}").as_bytes()))
        .collect::<io::Result<Vec<CString>>>()?;
    let cwd = c_string(launch.cwd.as_os_str().as_bytes())?;
    let null_terminated = |strings: &[CString]| -> Vec<*mut libc::c_char> {
        strings
            .iter()
            .map(|s| s.as_ptr().cast_mut())
            .chain(std::iter::once(std::ptr::null_mut()))
            .collect()
    };
    let argv = null_terminated(&argv);
    let envp = null_terminated(&envp);
    let check = |code: libc::c_int| {
        if code == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(code))
        }
    };
    let output = launch.output.as_raw_fd();
    let (three, four) = (launch.fds[0].as_raw_fd(), launch.fds[1].as_raw_fd());
    if three < 10 || four < 10 {
        return Err(io::Error::other("descriptors to map must be raised first"));
    }
    let actions = SpawnObject::new(
        libc::posix_spawn_file_actions_init,
        libc::posix_spawn_file_actions_destroy,
    )?;
    let attr = SpawnObject::new(libc::posix_spawnattr_init, libc::posix_spawnattr_destroy)?;
    let mut pid: libc::pid_t = 0;
    // SAFETY: `actions` and `attr` were initialised by their constructors and are destroyed by
    // their drops, after the call. A `sigset_t` is plain bits: any pattern of them is a valid
    // set. Every pointer given (the strings, the two null-terminated arrays of pointers into
    // them, `/dev/null`) outlives the call, which copies what it needs before returning. The descriptors are open: the caller borrows them for the call. Output
    // goes to 1 and 2 before anything is put on 3 and 4, and the sources of 3 and 4 are at least
    // 10, so no action overwrites a descriptor that a later one reads.
    unsafe {
        let fa = actions.get();
        check(libc::posix_spawn_file_actions_adddup2(fa, output, 1))?;
        check(libc::posix_spawn_file_actions_adddup2(fa, output, 2))?;
        check(libc::posix_spawn_file_actions_addopen(
            fa,
            0,
            c"/dev/null".as_ptr(),
            libc::O_RDONLY,
            0,
        ))?;
        check(libc::posix_spawn_file_actions_adddup2(fa, three, 3))?;
        check(libc::posix_spawn_file_actions_adddup2(fa, four, 4))?;
        check(libc::posix_spawn_file_actions_addchdir_np(fa, cwd.as_ptr()))?;
        let at = attr.get();
        // No signal blocked, and every signal at its default: SIGPIPE, which the Rust runtime
        // ignores, and whatever this process inherited ignored (a runner started in the
        // background or under `nohup` has SIGINT, SIGQUIT or SIGHUP ignored), which exec would
        // pass on. CodeBuild's commands never start with a signal ignored.
        let mut none = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        check(libc::sigemptyset(none.as_mut_ptr()))?;
        check(libc::posix_spawnattr_setsigmask(at, none.as_ptr()))?;
        // Every bit set: `sigfillset` leaves out glibc's own two signals (32 and 33), which its
        // posix_spawn then sets to SIG_IGN in the child, and an ignored signal stays ignored
        // across exec.
        let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        std::ptr::write_bytes(all.as_mut_ptr(), 0xff, 1);
        check(libc::posix_spawnattr_setsigdefault(at, all.as_ptr()))?;
        check(libc::posix_spawnattr_setpgroup(at, 0))?;
        let flags = libc::POSIX_SPAWN_SETPGROUP
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF;
        check(libc::posix_spawnattr_setflags(
            at,
            libc::c_short::try_from(flags).map_err(io::Error::other)?,
        ))?;
        check(libc::posix_spawn(
            &mut pid,
            program.as_ptr(),
            fa,
            at,
            argv.as_ptr(),
            envp.as_ptr(),
        ))?;
    }
    Ok(Process {
        pid: Pid::from_raw(pid),
        status: None,
    })
}

/// A `posix_spawn` object (file actions, attributes) initialised by its `init` function and
/// destroyed by its `destroy` when dropped.
struct SpawnObject<T> {
    value: std::cell::UnsafeCell<T>,
    destroy: unsafe extern "C" fn(*mut T) -> libc::c_int,
}

impl<T> SpawnObject<T> {
    fn new(
        init: unsafe extern "C" fn(*mut T) -> libc::c_int,
        destroy: unsafe extern "C" fn(*mut T) -> libc::c_int,
    ) -> io::Result<SpawnObject<T>> {
        let mut value = std::mem::MaybeUninit::uninit();
        // SAFETY: `init` is the object's own initialiser: it initialises what it is given, or
        // fails and leaves nothing to destroy.
        let code = unsafe { init(value.as_mut_ptr()) };
        if code != 0 {
            return Err(io::Error::from_raw_os_error(code));
        }
        Ok(SpawnObject {
            // SAFETY: initialised just above.
            value: std::cell::UnsafeCell::new(unsafe { value.assume_init() }),
            destroy,
        })
    }

    fn get(&self) -> *mut T {
        self.value.get()
    }
}

impl<T> Drop for SpawnObject<T> {
    fn drop(&mut self) {
        // SAFETY: initialised by `new` with the `init` that goes with this `destroy`, and
        // destroyed once.
        unsafe {
            (self.destroy)(self.value.get());
        }
    }
}

/// A child started by [`launch`], waited on by its pid.
#[derive(Debug)]
pub(crate) struct Process {
    pid: Pid,
    status: Option<std::process::ExitStatus>,
}

impl Process {
    /// Its pid, which is also its process group's id.
    pub(crate) fn id(&self) -> u32 {
        self.pid.as_raw().unsigned_abs()
    }

    /// Waits until it ends.
    pub(crate) fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        loop {
            match self.poll(nix::sys::wait::WaitPidFlag::empty()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Some(status)) => return Ok(status),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Its status if it has ended, without waiting.
    pub(crate) fn try_wait(&mut self) -> io::Result<Option<std::process::ExitStatus>> {
        self.poll(nix::sys::wait::WaitPidFlag::WNOHANG)
    }

    fn poll(
        &mut self,
        flags: nix::sys::wait::WaitPidFlag,
    ) -> io::Result<Option<std::process::ExitStatus>> {
        use nix::sys::wait::{WaitStatus, waitpid};
        use std::os::unix::process::ExitStatusExt;
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        // The raw status words, as std's `ExitStatus` holds them.
        let status = match waitpid(self.pid, Some(flags))? {
            WaitStatus::Exited(_, code) => ExitStatusExt::from_raw((code & 0xff) << 8),
            WaitStatus::Signaled(_, signal, core) => {
                ExitStatusExt::from_raw(signal as i32 | if core { 0x80 } else { 0 })
            }
            _ => return Ok(None),
        };
        self.status = Some(status);
        Ok(Some(status))
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

/// Whether a process exists (a zombie counts: it has not been reaped).
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // EPERM: it exists, and belongs to someone else.
    matches!(
        nix::sys::signal::kill(Pid::from_raw(pid), None),
        Ok(()) | Err(nix::errno::Errno::EPERM)
    )
}

/// Marks a directory as the top of unrelated hierarchies: ext2, ext3 and ext4's `T` attribute
/// (`chattr +T`), which has the Orlov allocator spread the directories made in it over the
/// filesystem's block groups, as it does those of `/`, instead of packing them beside their
/// parent. Best effort: other filesystems have no such flag, and nothing else changes.
///
/// A build folder holds ten files. On an ext4 without a journal, each new file's inode is looked
/// for past every inode of its group deleted in the minutes before (`recently_deleted`), so where
/// files were just deleted (the records of an earlier run, removed), 500 builds took from 1.1 to
/// 2.2 s, and 0.7 s in groups of their own.
pub(crate) fn spread_subdirectories(dir: &Path) {
    // linux/fs.h; not in the libc crate.
    const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;
    let Ok(dir) = std::fs::File::open(dir) else {
        return;
    };
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int (the kernel's type for it, whatever the ioctl
    // number's encoding says) to the pointer, which points to one; the descriptor is open.
    let got = unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_GETFLAGS, &raw mut flags) };
    if got != 0 || flags & FS_TOPDIR_FL != 0 {
        return;
    }
    flags |= FS_TOPDIR_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int from the pointer, which points to one.
    let _ = unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_SETFLAGS, &raw const flags) };
}

/// A descriptor as a borrowed one, for `poll`.
pub(crate) fn borrow<T: AsFd>(fd: &T) -> BorrowedFd<'_> {
    fd.as_fd()
}

/// Makes this process the reaper of its orphaned descendants (Linux), so that a daemon a build
/// started (`setsid`, a double fork) stays below the runner instead of moving to init.
/// Returns whether it is.
pub(crate) fn become_subreaper() -> bool {
    // Best effort: without it, builds still run, and sweeping by environment still works.
    nix::sys::prctl::set_child_subreaper(true).is_ok()
}

/// The processes whose environment holds `marker` (`NAME=value`), other than this one. Every
/// process a build starts inherits its `CODEBUILD_BUILD_ID`, whatever its parent or session, so
/// this finds a build's processes even after they left its process group.
pub(crate) fn processes_with(marker: &[u8]) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            // A process may end, or belong to another user, between the listing and the read.
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker))
        })
        .filter(|pid| !is_zombie(*pid))
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses and may contain spaces.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

/// A process's command name (`/proc/<pid>/comm`), for messages.
pub(crate) fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|name| name.trim_end().to_owned())
}

/// Sends a signal to each process; ones already gone are skipped.
pub(crate) fn signal_each(pids: &[u32], signal: Signal) {
    for pid in pids {
        if let Ok(pid) = i32::try_from(*pid) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
        }
    }
}

/// Reaps this process's ended children that belong to the process group `pgid` (other than
/// its leader, which a `Child` handle waits for), and the processes in `pids`. As PID 1, or as
/// a subreaper, a build's orphans become our children, and their zombies are ours to collect.
/// Only the build's own are touched: in a runner with several builds, another build's children
/// are its own business.
pub(crate) fn reap(pgid: u32, pids: &[u32]) {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    if pids.is_empty() && !any_child_ended() {
        return;
    }
    let mut zombies: Vec<u32> = pids.to_vec();
    // The kernel lists each thread's children; reading them is far cheaper than scanning /proc.
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.filter_map(Result::ok) {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            zombies.extend(
                children
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok())
                    .filter(|pid| *pid != pgid && zombie_in_group(*pid) == Some(pgid)),
            );
        }
    }
    for pid in zombies {
        if let Ok(pid) = i32::try_from(pid) {
            // Not a child, or not ended: nothing to collect, and no harm in asking.
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// This process's children, from the kernel's per-thread lists.
fn children() -> Vec<u32> {
    children_of("self")
}

/// The children of a process (`self`, or a pid), from the kernel's per-thread lists.
fn children_of(process: &str) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{process}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every descendant of this process that has not ended, children first. For a subreaper that
/// runs one build, these are exactly the build's processes, wherever they moved: an orphan
/// comes back to its subreaper. Walking this tree reads a few files per descendant, where
/// scanning every process's environment reads two per process of the machine.
pub(crate) fn live_descendants() -> Vec<u32> {
    // A process without a child has no descendant either: an orphan would have come back to it.
    if has_no_child() {
        return Vec::new();
    }
    let mut found = children();
    let mut i = 0;
    while i < found.len() {
        let more = children_of(&found[i].to_string());
        found.extend(
            more.into_iter()
                .filter(|p| !found.contains(p))
                .collect::<Vec<_>>(),
        );
        i += 1;
    }
    found.retain(|pid| !is_zombie(*pid));
    found
}

/// This process's children that have not ended.
pub(crate) fn live_children() -> Vec<u32> {
    children()
        .into_iter()
        .filter(|pid| !is_zombie(*pid))
        .collect()
}

/// Reaps every ended child of this process (for a process that runs one build, whose children
/// are all the build's).
pub(crate) fn reap_all_children(keep: &[u32]) {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    if !any_child_ended() {
        return;
    }
    for pid in children()
        .into_iter()
        .filter(|pid| !keep.contains(pid) && is_zombie(*pid))
    {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// Flushes the filesystem that holds `path` to the disk (`syncfs`): one flush for everything
/// many builds wrote, where a flush per file would wait on the disk once per file.
pub(crate) fn sync_filesystem(path: &std::path::Path) -> io::Result<()> {
    let dir = std::fs::File::open(path)?;
    nix::unistd::syncfs(&dir).map_err(io::Error::from)
}

/// Whether this process has no child at all, ended or not: one `waitid`, where listing the
/// children reads a file per thread.
fn has_no_child() -> bool {
    matches!(peek_children(), Err(nix::errno::Errno::ECHILD))
}

/// Asks about this process's children without collecting any: an ended one if there is one,
/// `StillAlive` if none has ended, `ECHILD` if there is none.
fn peek_children() -> nix::Result<nix::sys::wait::WaitStatus> {
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    waitid(
        Id::All,
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
    )
}

/// Whether a child of this process (of any of its threads) has ended and waits to be collected.
/// One `waitid` that collects nothing answers; the lists in /proc take several reads, and the
/// runner asks at every phase's end, where there is usually nothing to collect. An error other
/// than having no children at all answers yes, so that the caller looks.
fn any_child_ended() -> bool {
    !matches!(
        peek_children(),
        Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD)
    )
}

/// The process group of a zombie; `None` for a live process.
fn zombie_in_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    (state == "Z").then_some(pgrp)
}

/// A user commands run as (`run-as`), resolved from the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunAs {
    /// The user's name.
    pub(crate) name: String,
    /// Its user id.
    pub(crate) uid: u32,
    /// Its primary group.
    pub(crate) gid: u32,
    /// Every group it belongs to.
    pub(crate) groups: Vec<u32>,
    /// Its home directory.
    pub(crate) home: String,
}

/// Looks a user up; `Err` says why it cannot be used.
pub(crate) fn lookup_user(name: &str) -> Result<RunAs, String> {
    let user = nix::unistd::User::from_name(name)
        .map_err(|e| format!("cannot look up user {name}: {e}"))?
        .ok_or_else(|| format!("run-as: there is no user named {name}"))?;
    let cname =
        std::ffi::CString::new(name).map_err(|_| format!("run-as: invalid user name {name:?}"))?;
    let groups = nix::unistd::getgrouplist(&cname, user.gid)
        .map_err(|e| format!("cannot list the groups of {name}: {e}"))?
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    Ok(RunAs {
        name: name.to_owned(),
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
        home: user.dir.display().to_string(),
    })
}

/// Whether this process may switch users.
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The name of the user this process runs as.
pub(crate) fn current_user() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Gives a file or directory to a user: the runtime folder a `run-as` user's phases write in.
pub(crate) fn give_to(path: &std::path::Path, user: &RunAs) -> io::Result<()> {
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    )
    .map_err(io::Error::from)
}

/// Runs `f` with this thread's file system identity switched to `user`'s (its file system user
/// and group ids, and its groups), then switches back. Every file `f` opens, creates, lists or
/// follows a link through is checked by the kernel as if `user` did it: a root runner reading
/// what a `run-as` build made, or writing where it may write, can reach nothing that the user
/// could not. `None` (or a runner that is not root, which cannot switch) runs `f` as it is.
///
/// Only this thread changes: Linux keeps credentials per thread, `setfsuid` and `setfsgid` change
/// the caller's alone, and the groups are set with the raw system call (glibc's `setgroups`
/// changes every thread of the process). While the file system user id is not 0, the kernel
/// takes the file capabilities (`CAP_DAC_OVERRIDE` and its kin) out of the thread's effective
/// set, and gives them back when it returns to 0.
pub(crate) fn as_user<T>(user: Option<&RunAs>, f: impl FnOnce() -> T) -> io::Result<T> {
    let Some(user) = user.filter(|_| is_root()) else {
        return Ok(f());
    };
    let _switched = FsIdentity::switch(user)?;
    Ok(f())
}

/// A thread's file system identity while it is another user's; restored when dropped.
struct FsIdentity {
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
    groups: Vec<libc::gid_t>,
}

impl FsIdentity {
    fn switch(user: &RunAs) -> io::Result<FsIdentity> {
        use nix::unistd::{Gid, Uid, setfsgid, setfsuid};
        let groups: Vec<libc::gid_t> = nix::unistd::getgroups()?
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        set_thread_groups(&user.groups)?;
        let old = FsIdentity {
            gid: setfsgid(Gid::from_raw(user.gid)),
            uid: setfsuid(Uid::from_raw(user.uid)),
            groups,
        };
        // setfsuid reports the old id whether or not it changed anything: an invalid id asks
        // for the current one without changing it.
        let now = setfsuid(Uid::from_raw(u32::MAX));
        if now.as_raw() != user.uid {
            drop(old);
            return Err(io::Error::other(format!(
                "cannot take the file system identity of {}",
                user.name
            )));
        }
        Ok(old)
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        nix::unistd::setfsuid(self.uid);
        nix::unistd::setfsgid(self.gid);
        if set_thread_groups(&self.groups).is_err() {
            // A thread left with another user's groups would later write as root with them;
            // this cannot fail for root, and if it does the runner must not go on.
            std::process::abort();
        }
    }
}

/// Sets the calling thread's supplementary groups, and no other thread's.
fn set_thread_groups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live slice of gid_t, which the kernel only reads;
    // the raw system call changes the calling thread's credentials alone.
    let done = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes a child started with std's `Command` start with every signal at its default, whatever
/// this process inherited ignored (see [`posix_spawn`]'s note).
pub(crate) fn default_signals(command: &mut Command) {
    let last = libc::SIGRTMAX();
    // SAFETY: the closure runs in the child between fork and exec: `signal` is async-signal-safe
    // (it is `sigaction`), and nothing is allocated. Setting SIGKILL or SIGSTOP fails harmlessly.
    unsafe {
        command.pre_exec(move || {
            for signal in 1..=last {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
}

/// Makes the child take `user`'s groups, group and user id before it runs (the caller is root).
pub(crate) fn switch_user(command: &mut Command, user: &RunAs) {
    let groups: Vec<nix::unistd::Gid> = user
        .groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    let gid = nix::unistd::Gid::from_raw(user.gid);
    let uid = nix::unistd::Uid::from_raw(user.uid);
    // SAFETY: the closure runs in the child between fork and exec. setgroups, setgid and setuid
    // are async-signal-safe system calls, and nothing is allocated: the group list was built
    // before the fork. The order matters: groups and group first, while the child is still root.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setgroups(&groups).map_err(io::Error::from)?;
            nix::unistd::setgid(gid).map_err(io::Error::from)?;
            nix::unistd::setuid(uid).map_err(io::Error::from)?;
            Ok(())
        });
    }
}

/// A directory opened without following a link, in which files and directories are made
/// without following one either: for writing where someone else may have planted links (a
/// cache restored into a build's source).
#[derive(Debug)]
pub(crate) struct NoFollowDir(OwnedFd);

impl NoFollowDir {
    /// Opens `path` (its own components are followed as given: it is the caller's).
    pub(crate) fn open(path: &Path) -> io::Result<NoFollowDir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        Ok(NoFollowDir(fd))
    }

    /// The directory `name` in this one, made (0755, less the umask) if missing. A link, or
    /// anything else that is not a directory, is an error (`ELOOP`, `ENOTDIR`).
    pub(crate) fn child(&self, name: &OsStr) -> io::Result<NoFollowDir> {
        use nix::sys::stat::Mode;
        let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match nix::fcntl::openat(&self.0, name, flags, Mode::empty()) {
            Err(nix::errno::Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(&self.0, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(NoFollowDir(nix::fcntl::openat(
                    &self.0,
                    name,
                    flags,
                    Mode::empty(),
                )?))
            }
            opened => Ok(NoFollowDir(opened?)),
        }
    }

    /// Takes away what is at `name` (a file or a link, never a directory), so that a new one
    /// can be made in its place; nothing there is fine.
    fn clear(&self, name: &OsStr) -> io::Result<()> {
        use nix::fcntl::AtFlags;
        match nix::sys::stat::fstatat(&self.0, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(e.into()),
            Ok(stat) if stat.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                Err(io::Error::from_raw_os_error(libc::EISDIR))
            }
            Ok(_) => {
                nix::unistd::unlinkat(&self.0, name, nix::unistd::UnlinkatFlags::NoRemoveDir)?;
                Ok(())
            }
        }
    }

    /// A new file `name` in this directory, in place of a file or link that was there; never
    /// through a link.
    pub(crate) fn create_file(&self, name: &OsStr, mode: u32) -> io::Result<std::fs::File> {
        self.clear(name)?;
        let fd = nix::fcntl::openat(
            &self.0,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::from_bits_truncate(mode & 0o777),
        )?;
        Ok(std::fs::File::from(fd))
    }

    /// A new link `name` to `target`, in place of a file or link that was there.
    pub(crate) fn symlink(&self, target: &Path, name: &OsStr) -> io::Result<()> {
        self.clear(name)?;
        nix::unistd::symlinkat(target, &self.0, name)?;
        Ok(())
    }
}
/// When a process started, in clock ticks after the machine's boot (`/proc/<pid>/stat`'s
/// 22nd field): a pid with another start time is another process.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    // The fields after the command name start with the state, the 3rd field.
    rest.split(' ').nth(22 - 3)?.parse().ok()
}

/// When this process started ([`process_start`]), read once: a worker runs many builds.
pub(crate) fn own_start() -> Option<u64> {
    static START: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *START.get_or_init(|| process_start(std::process::id()))
}

/// This boot of this machine: a pid or a start time of another boot means nothing now. Read
/// once per process.
pub(crate) fn boot_id() -> Option<String> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| first_line("/proc/sys/kernel/random/boot_id"))
        .clone()
}

/// This machine's name, read once per process.
pub(crate) fn host_name() -> Option<String> {
    static HOST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HOST.get_or_init(|| first_line("/proc/sys/kernel/hostname"))
        .clone()
}

fn first_line(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}
