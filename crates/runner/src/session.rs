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

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::platform;
use crate::state::{self, SessionState};

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

/// The driver loop. `$1` is the scripts directory. The request's first letter says what to do
/// with the file named by the rest: `u` sources a state update in the driver, `c` runs a command
/// in a subshell, `p` sources a command in the driver.
const DRIVER: &str = r#"__bs_dir=$1
while IFS= read -r __bs_req <&4; do
  __bs_id=${__bs_req#?}
  case $__bs_req in
    u*) . "$__bs_dir/$__bs_id.update" ;;
    c*) ( . "$__bs_dir/$__bs_id.sh" ) 3>&- 4<&- </dev/null
        printf '%s %d\n' "$__bs_id" "$?" >&3 ;;
    p*) { . "$__bs_dir/$__bs_id.sh"; } 3>&- 4<&- </dev/null
        printf '%s %d\n' "$__bs_id" "$?" >&3 ;;
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
}

/// A running driver shell.
pub(crate) struct Session {
    spec: SessionSpec,
    child: Child,
    pgid: u32,
    control: File,
    status: File,
    status_buf: Vec<u8>,
    /// The state the driver shell has now (compat: what later commands start from).
    driver_state: SessionState,
}

/// What the driver said about a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The command ended with this status.
    Status(i32),
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
        let status_w = platform::raise(status_w)?;
        let control_r = platform::raise(control_r)?;
        let mut command = Command::new(&spec.shell);
        command
            .arg("-c")
            .arg(DRIVER)
            .arg(&spec.name)
            .arg(&spec.scripts)
            .env_clear()
            .envs(&state.variables)
            .current_dir(&state.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(output.try_clone()?))
            .stderr(Stdio::from(output.try_clone()?));
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        platform::map_fds(
            &mut command,
            vec![(status_w.as_raw_fd(), 3), (control_r.as_raw_fd(), 4)],
        );
        let child = command.spawn()?;
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
            driver_state: state.clone(),
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

    /// Writes the command's script and asks the driver to run it, after bringing the driver to
    /// `state` (compat). `runner_vars` are set on the script's first line.
    pub(crate) fn send(
        &mut self,
        id: &str,
        text: &str,
        line: u32,
        runner_vars: &[(&str, String)],
        state: &SessionState,
    ) -> io::Result<()> {
        let dir = &self.spec.scripts;
        let mut request = String::new();
        if self.spec.kind == SessionKind::Compat && !self.spec.stateless {
            let update = state::update_script(&self.driver_state, state);
            if !update.is_empty() {
                std::fs::write(dir.join(format!("{id}.update")), update)?;
                request.push_str(&format!("u{id}\n"));
                self.driver_state = state.clone();
            }
        }
        let persistent = self.spec.kind == SessionKind::Persistent;
        std::fs::write(
            dir.join(format!("{id}.sh")),
            script(
                text,
                line,
                runner_vars,
                &dir.join(format!("{id}.state")),
                persistent,
            ),
        )?;
        request.push(if persistent { 'p' } else { 'c' });
        request.push_str(id);
        request.push('\n');
        self.control.write_all(request.as_bytes())
    }

    /// Reads what the driver said, without waiting.
    pub(crate) fn poll_reply(&mut self) -> io::Result<Reply> {
        let mut chunk = [0u8; 256];
        loop {
            match self.status.read(&mut chunk) {
                Ok(0) => {
                    let status = self.child.wait()?;
                    return Ok(Reply::DriverExited(crate::process::exit_code(status)));
                }
                Ok(n) => self.status_buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let Some(end) = self.status_buf.iter().position(|&b| b == b'\n') else {
            return Ok(Reply::Pending);
        };
        let line: Vec<u8> = self.status_buf.drain(..=end).collect();
        let text = String::from_utf8_lossy(&line);
        let code = text
            .trim_end()
            .rsplit(' ')
            .next()
            .and_then(|c| c.parse::<i32>().ok())
            .ok_or_else(|| {
                io::Error::other(format!("unreadable status from the shell: {text:?}"))
            })?;
        Ok(Reply::Status(code))
    }

    /// The state the command of `id` reported, if it got to report one (a command that ended
    /// with `exit` did not). The report is removed: it holds secrets in clear.
    pub(crate) fn take_state(&mut self, id: &str) -> io::Result<Option<SessionState>> {
        let path = self.spec.scripts.join(format!("{id}.state"));
        let report = match std::fs::read(&path) {
            Ok(report) => report,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(self.spec.scripts.join(format!("{id}.update")));
        if self.spec.stateless {
            return Ok(None);
        }
        let parsed = state::parse_report(&report).map_err(io::Error::other)?;
        if self.spec.kind == SessionKind::Persistent {
            self.driver_state = parsed.clone();
        }
        Ok(Some(parsed))
    }

    /// Asks the driver to end: its request pipe closes, so its read loop ends. Returns the
    /// driver, to reap, and its status pipe, which reads end-of-file once it has exited.
    pub(crate) fn close(self) -> (Child, File) {
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

/// A command's script. Line 1 sets `-a` (every assignment is exported, as on CodeBuild) and the
/// runner's variables; blank lines follow so that the command stands on its own buildspec line,
/// and shell errors (`script.sh: 14: foo: not found`) name that line. The last line reports the
/// state.
pub(crate) fn script(
    text: &str,
    line: u32,
    runner_vars: &[(&str, String)],
    state_file: &Path,
    persistent: bool,
) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    out.push_str("set -a;");
    for (name, value) in runner_vars {
        out.push(' ');
        out.push_str(name);
        out.push('=');
        out.push_str(&state::quote(value));
        out.push(';');
    }
    out.push('\n');
    for _ in 2..line.max(2) {
        out.push('\n');
    }
    out.push_str(text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
    let leave = if persistent { "return" } else { "exit" };
    out.push_str(&format!(
        "__bs_s=$?; {{ export -p; pwd; }} >{}; {leave} $__bs_s\n",
        state::quote(&state_file.display().to_string())
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_stands_on_its_buildspec_line() {
        let s = script(
            "echo hi",
            7,
            &[("CODEBUILD_LAST_EXIT", "0".into())],
            Path::new("/s/1.state"),
            false,
        );
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "set -a; CODEBUILD_LAST_EXIT='0';");
        assert_eq!(lines[6], "echo hi");
        assert_eq!(
            lines[7],
            "__bs_s=$?; { export -p; pwd; } >'/s/1.state'; exit $__bs_s"
        );
        let early = script("echo hi", 1, &[], Path::new("/s/1.state"), true);
        assert_eq!(early.lines().nth(1), Some("echo hi"));
        assert!(early.ends_with("return $__bs_s\n"));
    }
}
