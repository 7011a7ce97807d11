//! The `buildspec` binary, driven as a user drives it: real files, real processes, exit codes.

mod check;
mod many;
mod misc;
mod plan;
mod query;
mod run;
mod slurm;
mod trust;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary directory with files in it, and a way to run the binary there.
pub(crate) struct Sandbox {
    dir: tempfile::TempDir,
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write");
        path
    }

    pub(crate) fn write_bytes(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    }

    /// Runs `buildspec ARGS` in the sandbox with a small fixed environment.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// Runs `buildspec ARGS` with extra environment variables; the state directory is inside the
    /// sandbox.
    pub(crate) fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let output = self
            .command(args)
            .envs(env.iter().copied())
            .output()
            .expect("the binary runs");
        Run::from(output)
    }

    /// `buildspec ARGS` in the sandbox with a small fixed environment, for tests that drive the
    /// process themselves (signals, closed pipes).
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_buildspec"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("USER", "tester")
            .env("BUILDSPEC_STATE_DIR", self.dir.path().join(".state"));
        command
    }

    /// Makes a FIFO in the sandbox: a build writes to it and the test, reading, knows where the
    /// build is without sleeping.
    pub(crate) fn mkfifo(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let made = Command::new("mkfifo").arg(&path).status().expect("mkfifo");
        assert!(made.success());
        path
    }

    /// Every file below the sandbox, relative, sorted.
    pub(crate) fn listing(&self) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("readable").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    out.push(
                        path.strip_prefix(root)
                            .expect("below")
                            .display()
                            .to_string(),
                    );
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out.sort();
        out
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts that stdout has `text`, showing it when it does not.
    #[track_caller]
    pub(crate) fn expect_stdout(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}:\n{}",
            self.stdout
        );
        self
    }

    /// Asserts that stderr has `text`, showing it when it does not.
    #[track_caller]
    pub(crate) fn expect_stderr(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts the exit code, showing everything the run printed when it differs.
    #[track_caller]
    pub(crate) fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The workspace root.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) const VALID: &str = "version: 0.2\nphases:\n  build:\n    commands:\n      - make\n";

/// Blocks until a build has written `started` to the FIFO and closed it: its command runs. A
/// build that never gets there fails the test after a minute instead of hanging it.
pub(crate) fn wait_for_start(fifo: &Path) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Opening for reading without a writer would block; non-blocking, it returns at once.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(fifo)
        .expect("open the fifo");
    let mut fds = [PollFd::new(
        std::os::fd::AsFd::as_fd(&file),
        PollFlags::POLLIN,
    )];
    let ready = poll(&mut fds, PollTimeout::from(60_000u16)).expect("poll the fifo");
    assert!(
        ready > 0,
        "no build wrote to {} within a minute",
        fifo.display()
    );
    let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL).expect("flags");
    let blocking = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(blocking)).expect("blocking");
    let mut text = String::new();
    file.read_to_string(&mut text).expect("read the fifo");
    assert_eq!(text.trim(), "started");
}

/// Runs `script` (`$0` is the binary) with `full/` in the sandbox a 256 KiB tmpfs, mounted in a
/// mount namespace of its own, gone with its last process; `false` when that needs root and the
/// test is not root (CI is, and must run it).
pub(crate) fn on_a_small_disk(sb: &Sandbox, script: &str) -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must run this test"
        );
        eprintln!("skipped: mounting a small filesystem needs root (CI runs this test as root)");
        return false;
    }
    std::fs::create_dir(sb.path().join("full")).expect("mkdir");
    let script = format!("mount -t tmpfs -o size=256k tmpfs full || exit 99\n{script}");
    let ran = std::process::Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            &script,
            env!("CARGO_BIN_EXE_buildspec"),
        ])
        .current_dir(sb.path())
        .env("BUILDSPEC_STATE_DIR", sb.path().join(".state"))
        // The scripts' folder goes to /dev/shm, where a test can look for it.
        .env_remove("XDG_RUNTIME_DIR")
        .status()
        .expect("unshare runs");
    assert!(ran.success(), "{ran:?}");
    true
}
