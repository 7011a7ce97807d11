//! Runner processes that run builds one after another, for many builds on this machine.
//!
//! Starting a `buildspec run` process costs more than the rest of a short build (the kernel's
//! `execve`, the dynamic loader, the first touch of every page). A worker is a `buildspec __worker`
//! process that runs the builds it is given one at a time, each exactly as a `buildspec run` of
//! its own would: it is still the only build of its process while it runs, so its signals,
//! orphans and reaping stay its own. [`Workers`] keeps the idle ones for the next build.
//!
//! The protocol, on the worker's standard input and output:
//!
//! - the dispatcher first writes a line `buildspec-worker <token>`, the token being random;
//! - each request is a build ([`BuildRequest`]) as JSON, after its length (a 4-byte
//!   little-endian number): its values (`--env`, values to mask) never go on a command line;
//! - the worker runs it, its output going to standard output as a build's would, then writes
//!   the line `<NUL><token> <exit code>`. A build cannot print that line by chance (nor by
//!   reading it from anywhere: the token is never in an argument or a file);
//! - end-of-file on standard input ends the worker.
//!
//! A worker that dies during a build (a `kill -9` of it, a crash) is not used again: its build
//! ends with the worker's exit status, as a `buildspec run` process's would, and the next build
//! gets a new worker.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;

use crate::dispatch::{Ended, Job, Launched, Launcher, Local, Output};
use crate::platform;
use crate::request::BuildRequest;

const HELLO: &str = "buildspec-worker ";

/// The argument that makes `buildspec` a worker.
pub const WORKER: &str = "__worker";

/// Writes one request: a build, as JSON, after its length.
pub fn write_request(to: &mut impl Write, request: &BuildRequest) -> io::Result<()> {
    let json = serde_json::to_vec(request).map_err(io::Error::other)?;
    let len =
        u32::try_from(json.len()).map_err(|_| io::Error::other("a request too long to send"))?;
    let mut frame = Vec::with_capacity(json.len() + 4);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&json);
    to.write_all(&frame)?;
    to.flush()
}

/// Reads one request; `None` at end-of-file, where there is none.
pub fn read_request(from: &mut impl Read) -> io::Result<Option<BuildRequest>> {
    let mut len = [0u8; 4];
    match from.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut json = Vec::new();
    from.by_ref()
        .take(u64::from(u32::from_le_bytes(len)))
        .read_to_end(&mut json)?;
    if json.len() != u32::from_le_bytes(len) as usize {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A worker's requests: its standard input, which it takes for itself (descriptor 0 becomes
/// `/dev/null`, so that nothing a build does can read the requests meant for the next one).
pub fn requests() -> io::Result<BufReader<std::fs::File>> {
    Ok(BufReader::new(platform::take_stdin()?))
}

/// Reads the dispatcher's first line, and returns its token.
pub fn read_hello(from: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    from.read_line(&mut line)?;
    line.strip_prefix(HELLO)
        .map(|token| token.trim_end().to_owned())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a worker's dispatcher"))
}

/// The line that ends a build's output.
pub fn end_line(token: &str, exit_code: u8) -> Vec<u8> {
    format!("\0{token} {exit_code}\n").into_bytes()
}

/// Runs builds in worker processes of this one, started as they are needed and used again.
///
/// A job whose command sets its own environment, or a folder other than this process's, gets a
/// worker of its own, started with them and used for that build alone.
#[derive(Debug, Default)]
pub struct Workers {
    idle: Arc<Mutex<Vec<Worker>>>,
}

#[derive(Debug)]
struct Worker {
    program: PathBuf,
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    token: String,
}

impl Worker {
    /// A worker of `program`, in `like`'s folder and with its variables (a job's own command).
    fn start(program: PathBuf, like: Option<&Command>) -> io::Result<Worker> {
        let mut command = Command::new(&program);
        if let Some(like) = like {
            if let Some(dir) = like.get_current_dir() {
                command.current_dir(dir);
            }
            for (name, value) in like.get_envs() {
                match value {
                    Some(value) => command.env(name, value),
                    None => command.env_remove(name),
                };
            }
        }
        // Its own process group, as a build's runner has: a terminal's Ctrl-C reaches the
        // dispatcher alone, which passes one stop request on.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        // Whatever the dispatcher inherited ignored (a `nohup`, a background job), a build's
        // runner starts with every signal at its default, as a `buildspec run` typed in a
        // terminal does.
        platform::default_signals(&mut command);
        let mut child = command
            .arg(WORKER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let (Some(mut input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(io::Error::other("a worker without its pipes"));
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        input.write_all(format!("{HELLO}{token}\n").as_bytes())?;
        Ok(Worker {
            program,
            child,
            input,
            output: BufReader::with_capacity(64 * 1024, output),
            token,
        })
    }

    /// Passes the build's output on until its end line, and returns how it ended; `None` for
    /// the worker itself when it may run another build.
    fn follow(mut self, output: &mut dyn FnMut(Output)) -> (Ended, Option<Worker>) {
        let end = format!("\0{} ", self.token);
        let mut line = Vec::new();
        loop {
            line.clear();
            match self.output.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    // The end line follows the build's last line; should that one lack its
                    // newline, the end is still found at the end of the line.
                    let at = memchr::memrchr(0, &line)
                        .filter(|&at| line[at..].starts_with(end.as_bytes()));
                    if let Some(at) = at {
                        let code = std::str::from_utf8(&line[at + end.len()..])
                            .ok()
                            .and_then(|c| c.parse::<i32>().ok());
                        if at > 0 {
                            output(Output::Line(line[..at].to_vec()));
                        }
                        let ended = Ended {
                            exit_code: code,
                            ..Ended::default()
                        };
                        return (ended, Some(self));
                    }
                    output(Output::Line(line.clone()));
                }
            }
        }
        // It died: its exit status is the build's, as a runner process's would be.
        drop(self.input);
        let code = self
            .child
            .wait()
            .ok()
            .map(crate::build::processes::exit_code);
        (
            Ended {
                exit_code: code,
                ..Ended::default()
            },
            None,
        )
    }

    fn close(self) {
        drop(self.input);
        let mut child = self.child;
        let _ = child.wait();
    }
}

impl Workers {
    /// No worker yet: they start with the first builds.
    pub fn new() -> Workers {
        Workers::default()
    }

    fn take(&self, program: PathBuf) -> io::Result<Worker> {
        let idle = self.idle.lock().ok().and_then(|mut idle| {
            idle.iter()
                .position(|w| w.program == program)
                .map(|at| idle.swap_remove(at))
        });
        match idle {
            Some(worker) => Ok(worker),
            None => Worker::start(program, None),
        }
    }
}

impl Launcher for Workers {
    fn launch(&self, job: &mut Job) -> io::Result<Launched> {
        // A job that is not a build (any command) runs as it is.
        let Some(request) = job.request.as_ref() else {
            return Local.launch(job);
        };
        let command = &job.command;
        let elsewhere = command
            .get_current_dir()
            .is_some_and(|dir| std::env::current_dir().is_ok_and(|here| here != dir));
        // A job whose command sets its own folder or variables gets a worker of its own, used
        // once.
        let own = command.get_envs().next().is_some() || elsewhere;
        let program = PathBuf::from(command.get_program());
        let mut worker = if own {
            Worker::start(program.clone(), Some(command))?
        } else {
            self.take(program.clone())?
        };
        if write_request(&mut worker.input, request).is_err() {
            // An idle worker that died (killed from outside): a new one takes the build.
            worker.close();
            worker = Worker::start(program, own.then_some(command))?;
            write_request(&mut worker.input, request)?;
        }
        let pid = worker.child.id();
        // A worker of its own is not used again: its folder or variables are not the next
        // build's.
        let idle = if own {
            None
        } else {
            Some(Arc::clone(&self.idle))
        };
        Ok(Launched {
            handle: None,
            stop: Box::new(move || platform::signal_each(&[pid], Signal::SIGTERM)),
            watch: Box::new(move |output| {
                let (ended, worker) = worker.follow(output);
                match (worker, idle) {
                    (Some(worker), Some(idle)) => {
                        if let Ok(mut idle) = idle.lock() {
                            idle.push(worker);
                        }
                    }
                    (Some(worker), None) => worker.close(),
                    _ => {}
                }
                ended
            }),
        })
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // The last handle: the idle workers see end-of-file and end.
        if Arc::strong_count(&self.idle) == 1
            && let Ok(mut idle) = self.idle.lock()
        {
            for worker in idle.drain(..) {
                worker.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> BuildRequest {
        BuildRequest {
            cwd: "/work".into(),
            buildspec: "a b\nc.yml".into(),
            source: ".".into(),
            state_dir: "/state".into(),
            project: None,
            session: crate::SessionKind::Compat,
            timeout_ms: 0,
            grace_ms: 10_000,
            cleanup_timeout_ms: 300_000,
            env: vec!["TOKEN=\u{e9}t\u{e9}".to_owned()],
            env_file: None,
            clean_env: false,
            strict: true,
            parameters: None,
            secrets: None,
            mask: Vec::new(),
            mask_file: None,
            artifacts: None,
            packaging: crate::build::Packaging::Zip,
            reports: None,
            cache_dir: None,
            json_log: false,
            log_limit: Some(1024),
            record_file: None,
            exported_variables: None,
            batch: Some(("batch:1".to_owned(), "one".to_owned())),
            uuid: None,
            buildspec_name: None,
            original_source: None,
        }
    }

    #[test]
    fn a_request_reads_back_as_written() {
        let mut wire = Vec::new();
        write_request(&mut wire, &request()).expect("write");
        let mut other = request();
        other.env.clear();
        write_request(&mut wire, &other).expect("write");
        let mut from = wire.as_slice();
        assert_eq!(read_request(&mut from).expect("read"), Some(request()));
        assert_eq!(read_request(&mut from).expect("read"), Some(other));
        assert_eq!(read_request(&mut from).expect("read"), None);
    }

    #[test]
    fn a_request_cut_short_is_an_error() {
        let mut wire = Vec::new();
        write_request(&mut wire, &request()).expect("write");
        wire.pop();
        assert!(read_request(&mut wire.as_slice()).is_err());
    }

    #[test]
    fn the_hello_gives_the_token() {
        let token = read_hello(&mut "buildspec-worker abc123\n".as_bytes()).expect("hello");
        assert_eq!(token, "abc123");
        assert!(read_hello(&mut "hello\n".as_bytes()).is_err());
        assert!(read_hello(&mut "".as_bytes()).is_err());
    }
}
