//! The shell session: how commands run, and how their state reaches the next command.
//!
//! A build keeps one *driver* shell (`sh`, or `bash` when `env.shell` says so) in its own process
//! group. The driver reads requests from descriptor 4 and answers on descriptor 3; it never reads
//! or writes the build's output, which goes to one pipe shared by stdout and stderr.
//!
//! - `compat` (CodeBuild's "same shell instance"): each command runs in a subshell forked from the
//!   driver, so functions, options and traps die with it, while the runner carries variables and
//!   the working directory: the command's script ends by writing `export -p` and `pwd` to a state
//!   file, the runner parses it, and sends the driver an update before the next command. Forking
//!   from a ready shell costs a fraction of starting a new one.
//! - `persistent`: each command is sourced by the driver itself, so everything persists. If a
//!   command ends the shell, a new one starts from the last reported state.
//! - version 0.1: like compat, but no state is carried.
//!
//! A command's end is the status line the driver writes on descriptor 3, never end-of-file on the
//! output: background processes may hold the output pipe for the rest of the build.
//!
//! `state` parses what the shell reports and writes the update that brings it to a state;
//! `runtime` owns the folders the scripts and those reports live in.

pub(crate) mod runtime;
pub mod state;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use self::state::SessionState;
use crate::platform;

/// How commands share state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// A fresh subshell per command; variables and directory carried by the runner.
    Compat,
    /// One shell for the whole build.
    Persistent,
}

impl SessionKind {
    /// The name used on the command line and in records.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Compat => "compat",
            SessionKind::Persistent => "persistent",
        }
    }
}

/// The driver loop. `$1` is the scripts directory. Each request is a line: an operation, a
/// script id, and the runner's `CODEBUILD_BUILD_SUCCEEDING` and `CODEBUILD_LAST_EXIT`.
///
/// - `u`: source `update` in the driver (variables and directory for the next command);
/// - `c`: run a script in a subshell (compat): the script itself reports its state to the file
///   `state`, the driver answers `status=N`;
/// - `b`: source a batch script (persistent): the runner sends a list of commands as one script
///   (`batch_script`), so that a command starts without waiting for the runner, and the driver
///   reads one request line, not one per command (`read` takes a byte per system call). Before
///   each command the script writes a marker line (`\x1ebs:<token>:<id>`) to the output, which
///   tells the runner where that command's output begins. After the list (its last command, or
///   the one that failed), the driver reports the shell's state (`export -p`, `cwd=`) and that
///   command's `status=` on descriptor 3, once: reporting after every command cost more than a
///   trivial command. A `return` in a command ends the batch script early; `__bs_in` is still set
///   then, so the status is the `return`'s, and the runner sends the rest of the list again. A
///   command that ends the driver (`exit`, or the SIGTERM of a timeout or a stop) leaves the
///   state in the file `exit-state` instead, from the driver's EXIT trap.
///
/// Commands run with descriptors 3 and 4 closed, so nothing they start can hold the driver's
/// channels open. The driver's stdin is `/dev/null`, and so is every command's.
const DRIVER: &str = r#"__bs_dir=$1 __bs_token=$2 __bs_in= __bs_nl='
'
shift 2
trap '[ -z "$__bs_in" ] || { export -p; printf "cwd=%s\n" "$PWD"; } > "$__bs_dir/exit-state"' EXIT
trap 'exit 143' TERM
while IFS=' ' read -r __bs_op __bs_id __bs_ok __bs_last <&4; do
  CODEBUILD_BUILD_SUCCEEDING=$__bs_ok CODEBUILD_LAST_EXIT=$__bs_last
  export CODEBUILD_BUILD_SUCCEEDING CODEBUILD_LAST_EXIT
  case $__bs_op in
    u) . "$__bs_dir/update" ;;
    c) ( . "$__bs_dir/$__bs_id.sh" ) 3>&- 4<&-
       printf 'status=%d\n' "$?" >&3 ;;
    b) __bs_s=0
       . "$__bs_dir/$__bs_id.sh"
       __bs_r=$?
       [ -z "$__bs_in" ] || { __bs_s=$__bs_r; __bs_in=; }
       CODEBUILD_LAST_EXIT=$__bs_s
       { export -p; printf 'cwd=%s\nat=%s\nstatus=%d\n' "$PWD" "$__bs_at" "$__bs_s"; } >&3 ;;
  esac
done
"#;

/// How a session is started.
#[derive(Debug, Clone)]
pub(crate) struct SessionSpec {
    pub(crate) shell: String,
    pub(crate) kind: SessionKind,
    /// Version 0.1: nothing carries over between commands.
    pub(crate) stateless: bool,
    pub(crate) scripts: PathBuf,
    /// The name shell errors begin with (`$0`): the buildspec's file name, so that dash's
    /// `buildspec.yml: 14: ...: foo: not found` names the file and line the command came from.
    pub(crate) name: String,
    /// The user commands run as (`run-as`), when not the runner's own.
    pub(crate) user: Option<platform::RunAs>,
    /// Random text in the markers that delimit persistent commands' output.
    pub(crate) token: String,
}

/// A running driver shell.
pub(crate) struct Session {
    spec: SessionSpec,
    child: platform::Process,
    pgid: u32,
    control: File,
    status: File,
    status_buf: Vec<u8>,
    /// Where the unread part of `status_buf` begins: replies are consumed by moving this, not
    /// by shifting the buffer (a persistent driver may be many replies ahead).
    status_pos: usize,
    /// The state the driver shell has now.
    driver_state: SessionState,
    /// An update file was sent with the running command; it holds values in clear and goes as
    /// soon as the command has replied.
    update_sent: bool,
    /// Batches sent so far.
    batches: u64,
}

/// What the driver said about a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The command ended with this status, and left this state (unless it ended with `exit`);
    /// for a persistent list, the id of the command it stopped at (the last that ran).
    Done(i32, Option<SessionState>, Option<String>),
    /// The driver itself ended (with this status); a new one is needed.
    DriverExited(i32),
    /// Nothing yet.
    Pending,
}

impl Session {
    /// Starts a driver with `state`'s variables (as its whole environment) and directory.
    pub(crate) fn start(
        spec: SessionSpec,
        state: &SessionState,
        output: &OwnedFd,
    ) -> io::Result<Session> {
        let (status_r, status_w) = platform::pipe()?;
        let (control_r, control_w) = platform::pipe()?;
        let status_w = platform::above_fd_ten(status_w)?;
        let control_r = platform::above_fd_ten(control_r)?;
        let user_env;
        let env = match &spec.user {
            None => &state.variables,
            Some(user) => {
                // The user's own identity, whatever the phase before it left in the state.
                let mut env = state.variables.clone();
                for (name, value) in [
                    ("HOME", &user.home),
                    ("USER", &user.name),
                    ("LOGNAME", &user.name),
                ] {
                    env.insert(name.to_owned(), value.clone());
                }
                user_env = env;
                &user_env
            }
        };
        let child = platform::launch(&platform::Launch {
            program: &spec.shell,
            args: &[
                OsStr::new("-c"),
                OsStr::new(DRIVER),
                OsStr::new(&spec.name),
                spec.scripts.as_os_str(),
                OsStr::new(&spec.token),
            ],
            env,
            cwd: Path::new(&state.cwd),
            output: output.as_fd(),
            fds: [status_w.as_fd(), control_r.as_fd()],
            user: spec.user.as_ref(),
        })?;
        // The child has its ends; ours must close so that its death reads as end-of-file.
        drop(status_w);
        drop(control_r);
        platform::set_nonblocking(platform::borrow(&status_r))?;
        Ok(Session {
            pgid: child.id(),
            child,
            control: File::from(control_w),
            status: File::from(status_r),
            status_buf: Vec::new(),
            status_pos: 0,
            driver_state: state.clone(),
            update_sent: false,
            batches: 0,
            spec,
        })
    }

    /// The process group of the driver and every command.
    pub(crate) fn pgid(&self) -> u32 {
        self.pgid
    }

    /// The status descriptor, to wait on.
    pub(crate) fn status_fd(&self) -> &File {
        &self.status
    }

    /// Asks the driver to run the script `id` (written at DOWNLOAD_SOURCE) in a subshell
    /// (compat), after bringing the driver to `state`. `succeeding` and `last_exit` are the
    /// runner's variables.
    pub(crate) fn send(
        &mut self,
        id: &str,
        succeeding: bool,
        last_exit: i32,
        state: &SessionState,
    ) -> io::Result<()> {
        let mut request = self.update(succeeding, last_exit, state)?;
        request.push_str(&format!("c {id} {} {last_exit}\n", u8::from(succeeding)));
        self.control.write_all(request.as_bytes())
    }

    /// Asks a persistent driver to run a list of commands in a row; it stops at the first that
    /// fails, skipping the rest of this list (and only this one).
    pub(crate) fn send_list(
        &mut self,
        commands: &[Listed<'_>],
        succeeding: bool,
        last_exit: i32,
        state: &SessionState,
    ) -> io::Result<()> {
        let mut request = self.update(succeeding, last_exit, state)?;
        // One request for the whole list: the driver sources a script that runs each command
        // in turn. A request line is read a byte at a time (a shell's `read` may not read past
        // the newline), which cost more than a trivial command.
        self.batches += 1;
        let id = format!("batch-{}", self.batches);
        crate::build::shell::runtime::write(
            &self.spec.scripts,
            self.spec.user.as_ref(),
            &format!("{id}.sh"),
            batch_script(commands).as_bytes(),
        )?;
        request.push_str(&format!("b {id} {} {last_exit}\n", u8::from(succeeding)));
        self.control.write_all(request.as_bytes())
    }

    /// The request that brings the driver to `state` (an update script), if it is not there.
    fn update(
        &mut self,
        succeeding: bool,
        last_exit: i32,
        state: &SessionState,
    ) -> io::Result<String> {
        let mut request = String::new();
        if !self.spec.stateless && self.driver_state != *state {
            let update = state::update_script(&self.driver_state, state);
            if !update.is_empty() {
                crate::build::shell::runtime::write(
                    &self.spec.scripts,
                    self.spec.user.as_ref(),
                    "update",
                    update.as_bytes(),
                )?;
                request.push_str(&format!("u - {} {last_exit}\n", u8::from(succeeding)));
                self.update_sent = true;
            }
            self.driver_state = state.clone();
        }
        Ok(request)
    }

    /// Reads what the driver said, without waiting.
    pub(crate) fn poll_reply(&mut self) -> io::Result<Reply> {
        let mut chunk = [0u8; 4096];
        let mut ended = false;
        loop {
            match self.status.read(&mut chunk) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => self.status_buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        // Replies the driver wrote before it ended still count, in order.
        let Some(report) =
            state::parse_reply(&self.status_buf[self.status_pos..]).map_err(io::Error::other)?
        else {
            if ended {
                let status = self.child.wait()?;
                return Ok(Reply::DriverExited(crate::build::processes::exit_code(
                    status,
                )));
            }
            return Ok(Reply::Pending);
        };
        self.status_pos += report.consumed;
        if self.status_pos == self.status_buf.len() {
            self.status_buf.clear();
            self.status_pos = 0;
        } else if self.status_pos > 64 * 1024 {
            self.status_buf.drain(..self.status_pos);
            self.status_pos = 0;
        }
        if std::mem::take(&mut self.update_sent) {
            let _ = std::fs::remove_file(self.spec.scripts.join("update"));
        }
        let code = report.status.unwrap_or(255);
        let reported = match self.spec.kind {
            SessionKind::Persistent => report.state,
            SessionKind::Compat => self.take_state_file()?,
        };
        let reported = reported.map(|mut s| {
            s.variables.retain(|name, _| {
                !name.starts_with("__bs_") && !RUNNER_OWNED.contains(&name.as_str())
            });
            if s.cwd.is_empty() {
                // A command that unset PWD did not move: the directory stays what it was.
                s.cwd.clone_from(&self.driver_state.cwd);
            }
            s
        });
        if self.spec.stateless {
            return Ok(Reply::Done(code, None, report.at));
        }
        if self.spec.kind == SessionKind::Persistent
            && let Some(s) = &reported
        {
            self.driver_state = s.clone();
        }
        Ok(Reply::Done(code, reported, report.at))
    }

    /// The state a persistent driver of `user` left in `exit-state` in `scripts` when a command
    /// ended it (`exit`, or the SIGTERM of a timeout or a stop), if its EXIT trap got to write
    /// it. The file is removed: it holds values in clear.
    pub(crate) fn take_exit_state(
        scripts: &Path,
        user: Option<&platform::RunAs>,
    ) -> Option<SessionState> {
        let report = crate::build::shell::runtime::take(scripts, user, "exit-state").ok()??;
        let mut state = state::parse_report(&report).ok()?;
        state
            .variables
            .retain(|name, _| !name.starts_with("__bs_") && !RUNNER_OWNED.contains(&name.as_str()));
        Some(state)
    }

    /// The state a compat command wrote, if it got to (a command that ended with `exit` did not).
    /// The file is removed: it holds secrets in clear.
    fn take_state_file(&mut self) -> io::Result<Option<SessionState>> {
        let Some(report) = crate::build::shell::runtime::take(
            &self.spec.scripts,
            self.spec.user.as_ref(),
            "state",
        )?
        else {
            return Ok(None);
        };
        state::parse_report(&report)
            .map(Some)
            .map_err(io::Error::other)
    }

    /// Asks the driver to end: its request pipe closes, so its read loop ends. Returns the
    /// driver, to reap, and its status pipe, which reads end-of-file once it has exited.
    pub(crate) fn close(self) -> (platform::Process, File) {
        let Session {
            child,
            control,
            status,
            ..
        } = self;
        drop(control);
        (child, status)
    }
}

/// The runner's own variables, set by the driver from each request.
const RUNNER_OWNED: [&str; 2] = ["CODEBUILD_BUILD_SUCCEEDING", "CODEBUILD_LAST_EXIT"];

/// The shell's path, looked up once in the build's starting `PATH`: left to the child, the
/// lookup is one `execve` per directory before the shell's, each costing more than a trivial
/// command, for every driver the build starts. The name itself when it is not found (the start
/// then fails as it would have).
pub(crate) fn resolve_shell(program: &str, path: Option<&str>) -> String {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return program.to_owned();
    }
    path.unwrap_or_default()
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .map_or_else(|| program.to_owned(), |p| p.display().to_string())
}

/// A command of a list sent to a persistent driver.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listed<'a> {
    /// Its script id (`build-3`), which its marker carries.
    pub(crate) id: &'a str,
    /// Its text, verbatim.
    pub(crate) text: &'a str,
}

/// The script a persistent driver sources for a list of commands sent together. Each command
/// runs after a marker line on the output, and only while the ones before it succeeded: so a
/// marker also says that the command before it exited 0.
///
/// A command's text is `eval`ed from a quoted word, not pasted in: so it is parsed on its own
/// when its turn comes, after the commands before it ran (a syntax error is that command's, and
/// an `alias` or `shopt` of an earlier command applies), as a script file of its own would be,
/// without the cost of one file per command. The whole script is one line (a newline in a
/// command is `$__bs_nl`), so that dash and bash alike count the lines of a shell error from the
/// command's first line; putting each command on its buildspec line would cost a parse of that
/// many blank lines per command.
///
/// The commands run inside one group with descriptors 3 and 4 closed, so that nothing they start
/// holds the driver's channels; closing and restoring them around each command cost more than a
/// trivial command.
fn batch_script(commands: &[Listed<'_>]) -> String {
    let size: usize = commands.iter().map(|c| c.text.len() + 128).sum();
    let mut out = String::with_capacity(size + 32);
    out.push_str("{ ");
    for (i, command) in commands.iter().enumerate() {
        if i > 0 {
            out.push_str("[ \"$__bs_s\" != 0 ] || { CODEBUILD_LAST_EXIT=0; ");
        }
        out.push_str("__bs_at=");
        out.push_str(command.id);
        out.push_str("; printf '\\036bs:%s:%s\\n' \"$__bs_token\" ");
        out.push_str(command.id);
        out.push_str("; __bs_in=1; set -a; eval '");
        for c in command.text.chars() {
            match c {
                '\'' => out.push_str("'\\''"),
                '\n' => out.push_str("'\"$__bs_nl\"'"),
                c => out.push(c),
            }
        }
        out.push_str("'; __bs_s=$?; __bs_in=");
        out.push_str(if i > 0 { "; }; " } else { "; " });
    }
    out.push_str("} 3>&- 4<&-\n");
    out
}

/// A command's script. Line 1 sets `-a` (every assignment is exported, as on CodeBuild), and the
/// command starts on line 2 ([`SCRIPT_FIRST_LINE`]): the runner adds the command's buildspec line
/// to the line numbers of shell errors (`buildspec.yml: 2: foo: not found`) as they pass
/// ([`ErrorLines`]), so that the script stays as long as its command, whatever the line. In compat
/// the last line reports the state to the file `state`.
pub(crate) fn script(text: &str, kind: SessionKind) -> String {
    let mut out = String::with_capacity(text.len() + 128);
    out.push_str("set -a\n");
    out.push_str(text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
    if kind == SessionKind::Compat {
        out.push_str("__bs_s=$?; { export -p; printf 'cwd=%s\\n' \"$PWD\"; } >\"$__bs_dir/state\"; exit $__bs_s\n");
    }
    out
}

/// The line of a compat script on which its command starts.
pub(crate) const SCRIPT_FIRST_LINE: u32 = 2;

/// Renumbers the shell's error lines for a compat command's script (`<name>: N: ...` from dash,
/// `<name>: line N: ...` from bash, `<name>` being the buildspec's file name, the script's `$0`)
/// so that they name the buildspec's line: line [`SCRIPT_FIRST_LINE`] of the script is the
/// command's own line.
#[derive(Debug, Clone)]
pub(crate) struct ErrorLines {
    prefix: Vec<u8>,
}

impl ErrorLines {
    pub(crate) fn new(name: &str) -> ErrorLines {
        ErrorLines {
            prefix: format!("{name}: ").into_bytes(),
        }
    }

    /// The line with its number renumbered for a command on buildspec line `at`; `None` when it
    /// is not an error line of the script (and is passed on as it is).
    pub(crate) fn renumber(&self, line: &[u8], at: u32) -> Option<Vec<u8>> {
        let rest = line.strip_prefix(self.prefix.as_slice())?;
        let (word, rest) = match rest.strip_prefix(b"line ") {
            Some(rest) => (&b"line "[..], rest),
            None => (&b""[..], rest),
        };
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let tail = &rest[digits..];
        if digits == 0 || !tail.starts_with(b":") {
            return None;
        }
        let n: u32 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        let renumbered = n.checked_sub(SCRIPT_FIRST_LINE)?.checked_add(at)?;
        let mut out = Vec::with_capacity(line.len() + 8);
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(word);
        out.extend_from_slice(renumbered.to_string().as_bytes());
        out.extend_from_slice(tail);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_is_looked_up_in_path_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = dir.path().join("sh");
        std::fs::write(&fake, "").expect("write");
        let path = format!("/nonexistent:{}:/bin", dir.path().display());
        // Not executable: skipped, as execvp would.
        assert_eq!(resolve_shell("sh", Some(&path)), "/bin/sh");
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        assert_eq!(resolve_shell("sh", Some(&path)), fake.display().to_string());
        assert_eq!(resolve_shell("/bin/bash", Some(&path)), "/bin/bash");
        assert_eq!(resolve_shell("no-such-shell", Some(&path)), "no-such-shell");
        assert_eq!(resolve_shell("sh", None), "sh");
    }

    #[test]
    fn a_script_is_as_long_as_its_command() {
        let s = script("echo hi", SessionKind::Compat);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "set -a");
        assert_eq!(lines[SCRIPT_FIRST_LINE as usize - 1], "echo hi");
        assert_eq!(
            lines[2],
            "__bs_s=$?; { export -p; printf 'cwd=%s\\n' \"$PWD\"; } >\"$__bs_dir/state\"; exit $__bs_s"
        );
        assert_eq!(
            script("echo hi", SessionKind::Persistent),
            "set -a\necho hi\n"
        );
    }

    #[test]
    fn shell_errors_are_renumbered_to_the_buildspec_line() {
        let lines = ErrorLines::new("buildspec.yml");
        for (line, at, want) in [
            // dash, bash, and an error on the command's third line.
            (
                "buildspec.yml: 2: foo: not found",
                14,
                Some("buildspec.yml: 14: foo: not found"),
            ),
            (
                "buildspec.yml: line 2: foo: command not found",
                14,
                Some("buildspec.yml: line 14: foo: command not found"),
            ),
            (
                "buildspec.yml: 4: Syntax error: EOF",
                9,
                Some("buildspec.yml: 11: Syntax error: EOF"),
            ),
            // Not a shell error of the script: left as it is.
            ("buildspec.yml: 1: set -a failed?", 14, None),
            ("other.sh: 2: foo: not found", 14, None),
            ("buildspec.yml: x2: foo", 14, None),
            ("buildspec.yml: 2", 14, None),
            ("buildspec.yml: 99999999999999999999: big", 14, None),
        ] {
            assert_eq!(
                lines.renumber(line.as_bytes(), at).as_deref(),
                want.map(str::as_bytes),
                "{line}"
            );
        }
    }
}
