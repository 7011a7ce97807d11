//! The session state the runner owns between commands: variables and the working directory.
//!
//! After each command the shell writes `export -p` and `pwd` to a state file; this module parses
//! that report (dash's `export NAME='v'`, bash's `declare -x NAME="v"` and `$'...'` forms) and
//! writes the update the next command's shell applies. The runner never sources one shell's
//! report in another shell: it parses the report into values and quotes them itself.

use std::collections::BTreeMap;

/// Variables the shell manages itself; they are not part of the carried state.
pub(crate) const SHELL_OWNED: &[&str] = &["PWD", "OLDPWD", "SHLVL", "_"];

/// Variables and working directory, as the runner carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    /// Exported variables (sorted by name).
    pub variables: BTreeMap<String, String>,
    /// The working directory.
    pub cwd: String,
}

/// A report the runner could not read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the shell's state report: {reason} (at byte {offset})")]
pub struct ReportError {
    reason: &'static str,
    offset: usize,
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, reason: &'static str) -> ReportError {
        ReportError {
            reason,
            // At the end of the input the report is cut short rather than wrong.
            offset: self.pos,
        }
    }

    /// The input ran out inside a construct.
    fn eof(&self, reason: &'static str) -> ReportError {
        ReportError {
            reason,
            offset: self.text.len(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn eat(&mut self, prefix: &[u8]) -> bool {
        if self.text[self.pos..].starts_with(prefix) {
            self.pos += prefix.len();
            true
        } else {
            false
        }
    }

    fn name(&mut self) -> Result<String, ReportError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' {
                self.pos += 1;
            } else {
                break;
            }
        }
        if self.pos == start {
            if self.pos == self.text.len() {
                return Err(self.eof("expected a variable name"));
            }
            return Err(self.error("expected a variable name"));
        }
        Ok(String::from_utf8_lossy(&self.text[start..self.pos]).into_owned())
    }

    /// One shell word: quoted and unquoted pieces up to a space or newline.
    fn word(&mut self) -> Result<Vec<u8>, ReportError> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') | Some(b' ') => return Ok(out),
                Some(b'\'') => {
                    self.pos += 1;
                    let end = self.text[self.pos..]
                        .iter()
                        .position(|&c| c == b'\'')
                        .ok_or_else(|| self.eof("unterminated single quote"))?;
                    out.extend_from_slice(&self.text[self.pos..self.pos + end]);
                    self.pos += end + 1;
                }
                Some(b'"') => {
                    self.pos += 1;
                    loop {
                        match self.peek() {
                            None => return Err(self.eof("unterminated double quote")),
                            Some(b'"') => {
                                self.pos += 1;
                                break;
                            }
                            Some(b'\\') => {
                                let next = self.text.get(self.pos + 1).copied();
                                match next {
                                    Some(c @ (b'"' | b'\\' | b'$' | b'`')) => {
                                        out.push(c);
                                        self.pos += 2;
                                    }
                                    Some(b'\n') => self.pos += 2,
                                    _ => {
                                        out.push(b'\\');
                                        self.pos += 1;
                                    }
                                }
                            }
                            Some(c) => {
                                out.push(c);
                                self.pos += 1;
                            }
                        }
                    }
                }
                Some(b'$') if self.text.get(self.pos + 1) == Some(&b'\'') => {
                    self.pos += 2;
                    self.ansi_c(&mut out)?;
                }
                Some(b'\\') => {
                    if let Some(&c) = self.text.get(self.pos + 1) {
                        out.push(c);
                    }
                    self.pos += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// bash's `$'...'` quoting, which it uses for values with control characters.
    fn ansi_c(&mut self, out: &mut Vec<u8>) -> Result<(), ReportError> {
        loop {
            let c = self.peek().ok_or_else(|| self.eof("unterminated $'...'"))?;
            self.pos += 1;
            match c {
                b'\'' => return Ok(()),
                b'\\' => {
                    let e = self.peek().ok_or_else(|| self.eof("unterminated escape"))?;
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'a' => out.push(0x07),
                        b'b' => out.push(0x08),
                        b'e' | b'E' => out.push(0x1b),
                        b'f' => out.push(0x0c),
                        b'v' => out.push(0x0b),
                        b'\\' | b'\'' | b'"' | b'?' => out.push(e),
                        b'c' => {
                            let ctl = self.peek().unwrap_or(b'@');
                            self.pos += 1;
                            out.push(ctl & 0x1f);
                        }
                        b'x' => {
                            let value = self.digits(16, 2);
                            out.push(value as u8);
                        }
                        b'u' | b'U' => {
                            let value = self.digits(16, if e == b'u' { 4 } else { 8 });
                            let ch = char::from_u32(value).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        b'0'..=b'7' => {
                            self.pos -= 1;
                            let value = self.digits(8, 3);
                            out.push(value as u8);
                        }
                        other => {
                            out.push(b'\\');
                            out.push(other);
                        }
                    }
                }
                other => out.push(other),
            }
        }
    }

    fn digits(&mut self, radix: u32, max: usize) -> u32 {
        let mut value = 0;
        for _ in 0..max {
            match self.peek().and_then(|c| (c as char).to_digit(radix)) {
                Some(d) => {
                    value = value * radix + d;
                    self.pos += 1;
                }
                None => break,
            }
        }
        value
    }
}

/// What a report says: the state (when the shell got to report it) and the command's status
/// (in the driver's replies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) state: Option<SessionState>,
    pub(crate) status: Option<i32>,
    /// The command a persistent list stopped at (`at=<id>`), the one whose status this is.
    pub(crate) at: Option<String>,
    /// Bytes of the input the report took.
    pub(crate) consumed: usize,
}

/// Parses `export -p` statements, then `cwd=<dir>`, `at=<id>` and `status=<code>` lines, any of
/// which may be absent. `Ok(None)` means the input ends inside the report (more is to come).
pub(crate) fn parse_reply(text: &[u8]) -> Result<Option<Report>, ReportError> {
    match parse(text, true) {
        Err(e) if e.offset >= text.len() => Ok(None),
        other => other.map(Some),
    }
}

fn parse(text: &[u8], until_status: bool) -> Result<Report, ReportError> {
    let mut p = Parser { text, pos: 0 };
    let mut variables = BTreeMap::new();
    let mut cwd = None;
    let mut at = None;
    loop {
        if p.pos >= text.len() {
            if until_status {
                return Err(p.error("the reply ends before its status"));
            }
            break;
        }
        if p.eat(b"cwd=") || p.eat(b"at=") || p.eat(b"status=") {
            let key_end = p.pos;
            let end = text[p.pos..]
                .iter()
                .position(|&c| c == b'\n')
                .map(|e| p.pos + e)
                .ok_or(ReportError {
                    reason: "unterminated line",
                    offset: text.len(),
                })?;
            let value = String::from_utf8_lossy(&text[key_end..end]).into_owned();
            p.pos = end + 1;
            if text[..key_end].ends_with(b"cwd=") {
                cwd = Some(value);
                continue;
            }
            if text[..key_end].ends_with(b"at=") {
                at = Some(value);
                continue;
            }
            let status = value
                .trim()
                .parse()
                .map_err(|_| p.error("unreadable status"))?;
            return Ok(Report {
                state: cwd.map(|cwd| SessionState { variables, cwd }),
                status: Some(status),
                at,
                consumed: p.pos,
            });
        }
        if p.eat(b"export ") {
        } else if p.eat(b"declare -") {
            // `declare -x`, `declare -rx`, `declare -ix`: flags, then a space.
            while p.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                p.pos += 1;
            }
            if !p.eat(b" ") {
                if p.pos >= text.len() {
                    return Err(p.eof("expected a space after declare flags"));
                }
                return Err(p.error("expected a space after declare flags"));
            }
        } else {
            let rest = &text[p.pos..];
            let offset = if [&b"export "[..], b"declare -", b"cwd=", b"at=", b"status="]
                .iter()
                .any(|k| k.starts_with(rest))
            {
                // A keyword cut short: the rest of the reply is still to come.
                text.len()
            } else {
                p.pos
            };
            return Err(ReportError {
                reason: "expected `export`, `cwd=`, `at=` or `status=`",
                offset,
            });
        }
        let name = p.name()?;
        let value = if p.eat(b"=") { Some(p.word()?) } else { None };
        if !p.eat(b"\n") {
            if p.pos >= text.len() {
                return Err(p.eof("expected the end of a line"));
            }
            return Err(p.error("expected the end of a line"));
        }
        // `export NAME` without a value is a variable marked for export but never set.
        if let Some(value) = value
            && !SHELL_OWNED.contains(&name.as_str())
        {
            variables.insert(name, String::from_utf8_lossy(&value).into_owned());
        }
    }
    Ok(Report {
        state: cwd.map(|cwd| SessionState { variables, cwd }),
        status: None,
        at,
        consumed: p.pos,
    })
}

/// Parses a whole state report: `export -p` output, then a `cwd=<dir>` line.
pub fn parse_report(report: &[u8]) -> Result<SessionState, ReportError> {
    parse(report, false)?.state.ok_or(ReportError {
        reason: "the report has no cwd= line",
        offset: report.len(),
    })
}

/// Quotes a value for any POSIX shell: single quotes, with `'` written as `'\''`.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The script that takes a shell from `from` to `to`: unsets, exports, and a `cd`. Empty when
/// nothing changed.
pub fn update_script(from: &SessionState, to: &SessionState) -> String {
    let mut script = String::new();
    // The shell keeps PWD and its kin itself; the directory moves with `cd`.
    let carried = |name: &String| !SHELL_OWNED.contains(&name.as_str());
    for name in from.variables.keys().filter(|n| carried(n)) {
        if !to.variables.contains_key(name) {
            script.push_str("unset ");
            script.push_str(name);
            script.push('\n');
        }
    }
    for (name, value) in to.variables.iter().filter(|(n, _)| carried(n)) {
        if from.variables.get(name) != Some(value) {
            script.push_str("export ");
            script.push_str(name);
            script.push('=');
            script.push_str(&quote(value));
            script.push('\n');
        }
    }
    if from.cwd != to.cwd && !to.cwd.is_empty() {
        script.push_str("cd -- ");
        script.push_str(&quote(&to.cwd));
        script.push('\n');
    }
    script
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// Runs `shell` with `script`, then reports its state the way the session does.
    fn report_of(shell: &str, script: &str) -> SessionState {
        let output = Command::new(shell)
            .arg("-c")
            .arg(format!(
                "set -a\n{script}\nexport -p; printf 'cwd=%s\\n' \"$PWD\""
            ))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .output()
            .expect("shell runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        parse_report(&output.stdout).expect("report parses")
    }

    const TRICKY: &[(&str, &str)] = &[
        ("PLAIN", "value"),
        ("SPACES", "a b  c"),
        ("SINGLE", "it's"),
        ("DOUBLE", "say \"hi\""),
        ("DOLLAR", "$HOME and `cmd` and \\n"),
        ("NEWLINES", "line1\nline2\n"),
        ("TAB", "a\tb"),
        ("EMPTY", ""),
        ("UNICODE", "héllo ✓"),
        ("EQUALS", "a=b=c"),
        ("CONTROL", "bell\u{7}esc\u{1b}"),
    ];

    #[test]
    fn reports_of_dash_and_bash_parse_to_the_same_values() {
        for shell in ["sh", "dash", "bash"] {
            if Command::new(shell).arg("-c").arg("true").status().is_err() {
                panic!("{shell} is required for these tests");
            }
            let mut script = String::new();
            for (name, value) in TRICKY {
                script.push_str(&format!("{name}={}\n", quote(value)));
            }
            script.push_str("export MARKED\ncd /tmp\n");
            let state = report_of(shell, &script);
            for (name, value) in TRICKY {
                assert_eq!(
                    state.variables.get(*name).map(String::as_str),
                    Some(*value),
                    "{shell}: {name}"
                );
            }
            assert!(
                !state.variables.contains_key("MARKED"),
                "{shell}: a variable without a value is not set"
            );
            assert!(
                !state.variables.contains_key("PWD"),
                "{shell}: PWD is the shell's"
            );
            assert_eq!(state.cwd, "/tmp", "{shell}");
        }
    }

    #[test]
    fn update_script_round_trips_through_a_shell() {
        for shell in ["dash", "bash"] {
            let from = report_of(shell, "A=1\nB=2");
            let mut to = from.clone();
            to.variables.remove("A");
            for (name, value) in TRICKY {
                to.variables.insert((*name).to_owned(), (*value).to_owned());
            }
            to.cwd = "/tmp".to_owned();
            let script = update_script(&from, &to);
            let after = report_of(shell, &format!("A=1\nB=2\n{script}"));
            assert_eq!(after, to, "{shell}");
        }
    }

    #[test]
    fn nothing_changed_is_an_empty_update() {
        let state = SessionState {
            variables: [("A".to_owned(), "1".to_owned())].into(),
            cwd: "/src".to_owned(),
        };
        assert_eq!(update_script(&state, &state), "");
    }

    #[test]
    fn malformed_reports_are_errors() {
        assert!(parse_report(b"export A='unterminated\n").is_err());
        assert!(parse_report(b"export ='x'\n").is_err());
        assert_eq!(
            parse_report(b"cwd=/only/a/cwd\n").expect("ok").cwd,
            "/only/a/cwd"
        );
        assert!(parse_report(b"export A='1'\n").is_err(), "no cwd");
    }

    #[test]
    fn replies_stream_in() {
        let reply =
            b"export A='multi\nstatus=9\n'\ncwd=/x\nat=build-2\nstatus=3\nexport B='next'\n";
        let whole = reply.len() - b"export B='next'\n".len();
        for cut in 0..whole {
            assert!(
                parse_reply(&reply[..cut])
                    .expect("a prefix is no error")
                    .is_none(),
                "{cut}"
            );
        }
        let report = parse_reply(reply).expect("ok").expect("complete");
        assert_eq!(report.status, Some(3));
        assert_eq!(report.at.as_deref(), Some("build-2"));
        let state = report.state.expect("state");
        assert_eq!(state.variables["A"], "multi\nstatus=9\n");
        assert_eq!(state.cwd, "/x");
        assert_eq!(report.consumed, whole);
        let bare = parse_reply(b"status=0\n").expect("ok").expect("complete");
        assert_eq!((bare.state, bare.status, bare.at), (None, Some(0), None));
    }
}
