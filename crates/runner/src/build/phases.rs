//! The phase loop: which command phases run, in what order, and how each ends — CodeBuild's
//! transitions, `on-failure` (ABORT, CONTINUE, RETRY with a count and a regex), `finally`, and
//! when `CODEBUILD_BUILD_SUCCEEDING` turns 0 — apart from how commands run. The build drives it
//! with its real shell session ([`super::Build`]); its tests drive it with a scripted fake, so
//! that the transition table is checked in microseconds, beside the real-shell tests.

use buildspec::plan::{Next, PlannedPhase};
use buildspec::{Command, OnFailure, PhaseName, Plan};

use crate::events::Phase;
use crate::outcome::{Context, ContextCode, Status};

/// How a command of a list ended: its exit status, or the status that interrupts the build
/// (TIMED_OUT, STOPPED, FAULT).
pub(crate) type Ran = Result<i32, Status>;

/// What the phase loop needs of a build: to run commands, and to say what happens.
pub(crate) trait Shell {
    /// The variables and directory a phase starts with, to start a retry from.
    type State: Clone;

    /// A phase is about to run: its commands run as its user from now on.
    fn enter(&mut self, phase: &PlannedPhase);
    /// An attempt of a phase begins (1 for the first).
    fn begin(&mut self, phase: Phase, attempt: u32);
    /// An attempt of a phase ends; `last` when no retry follows.
    fn end(&mut self, phase: Phase, status: Status, context: Option<Context>, last: bool);
    /// Runs a list (`commands`, or `finally`) until a command fails or the build is
    /// interrupted; the result of each command that ran, by its index.
    fn run_commands(
        &mut self,
        phase: &PlannedPhase,
        list: &[Command],
        finally: bool,
    ) -> Vec<(usize, Ran)>;
    /// Whether a line of the failing command's last output matches `pattern`.
    fn output_matches(&self, pattern: &regex::Regex) -> bool;
    /// The build fails from now on: `CODEBUILD_BUILD_SUCCEEDING` is 0 for what still runs.
    fn fail(&mut self);
    /// The state now, and back to one.
    fn state(&self) -> Self::State;
    fn restore(&mut self, state: Self::State);
    /// Why the build was interrupted with `status`, for the phase's context.
    fn interrupted(&self, status: Status) -> Context;
    /// A line of the runner's own.
    fn say(&mut self, text: &str);
    /// The phase was interrupted (a timeout, a stop): where the build goes, UPLOAD_ARTIFACTS or
    /// FINALIZING.
    fn after_interruption(&mut self, status: Status) -> Next;
    /// UPLOAD_ARTIFACTS.
    fn upload(&mut self);
}

/// Runs the command phases from INSTALL, following the transitions, then the upload if the
/// build gets there.
pub(crate) fn run<S: Shell>(shell: &mut S, plan: &Plan) {
    let mut next = Next::Phase(PhaseName::Install);
    loop {
        match next {
            Next::Phase(name) => {
                let (status, after) = run_phase(shell, plan.phase(name));
                next = match status {
                    Status::TimedOut | Status::Stopped => shell.after_interruption(status),
                    _ => after,
                };
            }
            Next::UploadArtifacts => {
                shell.upload();
                break;
            }
            Next::Finalizing => break,
        }
    }
}

/// Runs a command phase with its retries; returns its status and where the build goes next.
pub(crate) fn run_phase<S: Shell>(shell: &mut S, planned: &PlannedPhase) -> (Status, Next) {
    let name = planned.name;
    let phase = Phase::from(name);
    shell.enter(planned);
    let attempts = planned.retries + 1;
    let start = shell.state();
    let pattern = match &planned.on_failure {
        Some(OnFailure::Retry {
            pattern: Some(p), ..
        }) => regex::Regex::new(p).ok(),
        _ => None,
    };
    for attempt in 1..=attempts {
        shell.begin(phase, attempt);
        // The first failure of the attempt, and whether it will be retried: decided once, from
        // the failing command's own output, before `finally` adds any.
        let mut failure: Option<(String, bool)> = None;
        let mut interrupted = None;
        let last_attempt = attempt == attempts;
        'lists: for (list, finally) in [(&planned.commands, false), (&planned.finally, true)] {
            for (index, result) in shell.run_commands(planned, list, finally) {
                match result {
                    Ok(0) => {}
                    Ok(code) => {
                        if failure.is_none() {
                            let message = format!(
                                "Error while executing command: {}. Reason: exit status {code}",
                                list[index].text
                            );
                            let retrying = !last_attempt
                                && retries(shell, pattern.as_ref(), &message, planned);
                            if !retrying {
                                // The build fails the moment a command fails for good, so the
                                // phase's own `finally` already sees 0.
                                shell.fail();
                            }
                            failure = Some((message, retrying));
                        }
                        // A failed command skips the rest of its list; `finally` still runs.
                        if finally {
                            break 'lists;
                        }
                        break;
                    }
                    Err(status) => {
                        interrupted = Some(status);
                        break 'lists;
                    }
                }
            }
        }
        if let Some(status) = interrupted {
            shell.fail();
            shell.end(phase, status, Some(shell.interrupted(status)), true);
            return (status, Next::Finalizing);
        }
        match failure {
            None => {
                shell.end(phase, Status::Succeeded, None, true);
                return (Status::Succeeded, buildspec::plan::after_success(name));
            }
            Some((message, retrying)) => {
                let context = Context::new(ContextCode::CommandExecutionError, message);
                if retrying {
                    shell.end(phase, Status::Failed, Some(context), false);
                    shell.say(&format!(
                        "Phase {} failed; retrying from the state it started with (attempt {} of {attempts})",
                        phase.as_str(),
                        attempt + 1
                    ));
                    shell.restore(start.clone());
                    continue;
                }
                shell.fail();
                shell.end(phase, Status::Failed, Some(context), true);
                return (
                    Status::Failed,
                    buildspec::plan::after_failure(name, planned.on_failure.as_ref()),
                );
            }
        }
    }
    (Status::Failed, Next::Finalizing)
}

/// Whether a failure is retried: always for RETRY and RETRY-N, for RETRY-regex only when the
/// regex matches the failure message or the command's last output lines.
fn retries<S: Shell>(
    shell: &S,
    pattern: Option<&regex::Regex>,
    message: &str,
    planned: &PlannedPhase,
) -> bool {
    match &planned.on_failure {
        Some(OnFailure::Retry { pattern: None, .. }) => true,
        Some(OnFailure::Retry {
            pattern: Some(_), ..
        }) => pattern.is_some_and(|re| re.is_match(message) || shell.output_matches(re)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell that runs nothing: a command's text says how it ends (`ok`, `fail`, `fail-3`
    /// for exit status 3, `timeout`, `stop`, `flaky` which fails until its phase's third
    /// attempt), and everything the loop does is written down, one line each.
    #[derive(Default)]
    struct Fake {
        log: Vec<String>,
        succeeding: bool,
        attempts: std::collections::HashMap<String, u32>,
        /// What the failing command printed last.
        output: Vec<String>,
        /// A second stop request: an interruption goes to FINALIZING.
        killed: bool,
        state: u32,
    }

    impl Shell for Fake {
        type State = u32;

        fn enter(&mut self, phase: &PlannedPhase) {
            self.log.push(format!("enter {}", phase.name.upper()));
        }
        fn begin(&mut self, phase: Phase, attempt: u32) {
            self.log
                .push(format!("begin {} #{attempt}", phase.as_str()));
        }
        fn end(&mut self, phase: Phase, status: Status, context: Option<Context>, last: bool) {
            let context = context.map_or_else(String::new, |c| {
                format!(" {}: {}", c.status_code, c.message)
            });
            let last = if last { "" } else { " (retried)" };
            self.log.push(format!(
                "end {} {}{context}{last}",
                phase.as_str(),
                status.as_str()
            ));
        }
        fn run_commands(
            &mut self,
            phase: &PlannedPhase,
            list: &[Command],
            finally: bool,
        ) -> Vec<(usize, Ran)> {
            let mut results = Vec::new();
            for (i, command) in list.iter().enumerate() {
                let key = format!("{}-{finally}-{i}", phase.name.upper());
                let tries = self.attempts.entry(key).or_insert(0);
                *tries += 1;
                let text = command.text.as_str();
                let ran: Ran = match text {
                    "timeout" => Err(Status::TimedOut),
                    "stop" => Err(Status::Stopped),
                    "flaky" if *tries < 3 => Ok(1),
                    "flaky" => Ok(0),
                    t if t.starts_with("fail") => Ok(t
                        .strip_prefix("fail-")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1)),
                    "state" => {
                        self.state += 1;
                        Ok(0)
                    }
                    _ => Ok(0),
                };
                let succeeding = u8::from(self.succeeding);
                self.log
                    .push(format!("run {text} (succeeding={succeeding})"));
                let go_on = ran == Ok(0);
                results.push((i, ran));
                if !go_on {
                    break;
                }
            }
            results
        }
        fn output_matches(&self, pattern: &regex::Regex) -> bool {
            self.output.iter().any(|line| pattern.is_match(line))
        }
        fn fail(&mut self) {
            self.succeeding = false;
        }
        fn state(&self) -> u32 {
            self.state
        }
        fn restore(&mut self, state: u32) {
            self.state = state;
        }
        fn interrupted(&self, status: Status) -> Context {
            match status {
                Status::TimedOut => Context::new(ContextCode::BuildTimedOut, "timed out"),
                _ => Context::stopped_by(15),
            }
        }
        fn say(&mut self, text: &str) {
            self.log.push(format!("say {text}"));
        }
        fn after_interruption(&mut self, _: Status) -> Next {
            if self.killed {
                Next::Finalizing
            } else {
                Next::UploadArtifacts
            }
        }
        fn upload(&mut self) {
            self.log.push("upload".to_owned());
        }
    }

    fn plan(phases: &str) -> Plan {
        let checked = buildspec::check(
            buildspec::SourceFile::new(
                "buildspec.yml".to_owned(),
                format!("version: 0.2\nphases:\n{phases}"),
            ),
            &buildspec::Options::default(),
        );
        checked.plan().expect("a valid buildspec")
    }

    /// The phases the loop ran, with how each ended, and whether it uploaded.
    fn walk(phases: &str) -> (Vec<String>, Fake) {
        let mut fake = Fake {
            succeeding: true,
            ..Fake::default()
        };
        run(&mut fake, &plan(phases));
        let ends = fake
            .log
            .iter()
            .filter(|l| l.starts_with("end ") || *l == "upload")
            .map(|l| l.split(':').next().unwrap_or(l).to_owned())
            .collect();
        (ends, fake)
    }

    #[test]
    fn the_transition_table() {
        // docs/sessions.md, "Phases and transitions": where the build goes after each phase.
        let all_ok = "  install: {commands: [ok]}\n  pre_build: {commands: [ok]}\n  build: {commands: [ok]}\n  post_build: {commands: [ok]}\n";
        let ok = |phase: &str| format!("  {phase}: {{commands: [ok]}}\n");
        let failing = |phase: &str, on_failure: &str| {
            let on = if on_failure.is_empty() {
                String::new()
            } else {
                format!(", on-failure: {on_failure}")
            };
            format!("  {phase}: {{commands: [fail]{on}}}\n")
        };
        let (ends, _) = walk(all_ok);
        assert_eq!(
            ends,
            [
                "end INSTALL SUCCEEDED",
                "end PRE_BUILD SUCCEEDED",
                "end BUILD SUCCEEDED",
                "end POST_BUILD SUCCEEDED",
                "upload"
            ]
        );
        let phases = ["install", "pre_build", "build", "post_build"];
        // (phase that fails, on-failure, the phases that then run after it, whether it uploads)
        let table: &[(&str, &str, &[&str], bool)] = &[
            ("install", "", &[], false),
            ("pre_build", "", &[], false),
            ("build", "", &["POST_BUILD"], true),
            ("post_build", "", &[], true),
            ("install", "ABORT", &[], false),
            ("pre_build", "ABORT", &[], false),
            ("build", "ABORT", &[], false),
            ("post_build", "ABORT", &[], false),
            (
                "install",
                "CONTINUE",
                &["PRE_BUILD", "BUILD", "POST_BUILD"],
                true,
            ),
            ("pre_build", "CONTINUE", &["BUILD", "POST_BUILD"], true),
            ("build", "CONTINUE", &["POST_BUILD"], true),
            ("post_build", "CONTINUE", &[], true),
        ];
        for (failed, on_failure, after, uploads) in table {
            let spec: String = phases
                .iter()
                .map(|p| {
                    if p == failed {
                        failing(p, on_failure)
                    } else {
                        ok(p)
                    }
                })
                .collect();
            let (ends, fake) = walk(&spec);
            let upper = failed.to_uppercase();
            let at = ends
                .iter()
                .position(|e| e.starts_with(&format!("end {upper} FAILED")))
                .unwrap_or_else(|| panic!("{failed} {on_failure}: {ends:?}"));
            let ran_after: Vec<&str> = ends[at + 1..]
                .iter()
                .filter(|e| e.starts_with("end "))
                .map(|e| e.split(' ').nth(1).unwrap_or_default())
                .collect();
            assert_eq!(ran_after, *after, "{failed} {on_failure}");
            assert_eq!(
                ends.last().is_some_and(|e| e == "upload"),
                *uploads,
                "{failed} {on_failure}"
            );
            assert!(!fake.succeeding, "{failed} {on_failure}: the build fails");
        }
    }

    #[test]
    fn finally_runs_after_a_failure_and_sees_the_build_failing() {
        let (_, fake) = walk(
            "  build:\n    commands: [ok, fail-3, never]\n    finally: [cleanup, fail, never]\n",
        );
        let runs: Vec<&str> = fake
            .log
            .iter()
            .filter(|l| l.starts_with("run "))
            .map(String::as_str)
            .collect();
        assert_eq!(
            runs,
            [
                "run ok (succeeding=1)",
                "run fail-3 (succeeding=1)",
                "run cleanup (succeeding=0)",
                "run fail (succeeding=0)",
            ]
        );
        let end = fake
            .log
            .iter()
            .find(|l| l.starts_with("end BUILD"))
            .expect("ended");
        // The context is the first failure's, not finally's.
        assert_eq!(
            end,
            "end BUILD FAILED COMMAND_EXECUTION_ERROR: Error while executing command: fail-3. Reason: exit status 3"
        );
    }

    #[test]
    fn retries_start_again_from_the_phases_state() {
        let (ends, fake) =
            walk("  build:\n    on-failure: RETRY-3\n    commands: [state, flaky]\n");
        assert_eq!(
            ends,
            [
                "end INSTALL SUCCEEDED",
                "end PRE_BUILD SUCCEEDED",
                "end BUILD FAILED COMMAND_EXECUTION_ERROR",
                "end BUILD FAILED COMMAND_EXECUTION_ERROR",
                "end BUILD SUCCEEDED",
                "end POST_BUILD SUCCEEDED",
                "upload"
            ]
        );
        assert!(fake.log.iter().any(|l| l == "begin BUILD #3"));
        // Each attempt starts from the state the phase started with.
        assert_eq!(fake.state, 1);
        // A retried failure does not fail the build.
        assert!(fake.succeeding);
        assert!(fake.log.iter().any(|l| l
            == "say Phase BUILD failed; retrying from the state it started with (attempt 2 of 4)"));
    }

    #[test]
    fn a_retry_regex_retries_only_what_it_matches() {
        // It matches the failure message: retried until the attempts are used up.
        let (_, fake) =
            walk("  build:\n    on-failure: RETRY-2-exit status 7\n    commands: [fail-7]\n");
        assert_eq!(
            fake.log
                .iter()
                .filter(|l| l.starts_with("begin BUILD"))
                .count(),
            3
        );
        // It matches neither the message nor the output: one attempt.
        let (_, fake) = walk("  build:\n    on-failure: RETRY-2-flake\n    commands: [fail-7]\n");
        assert_eq!(
            fake.log
                .iter()
                .filter(|l| l.starts_with("begin BUILD"))
                .count(),
            1
        );
        // It matches the output.
        let mut fake = Fake {
            succeeding: true,
            output: vec!["connection reset by flake".to_owned()],
            ..Fake::default()
        };
        run(
            &mut fake,
            &plan("  build:\n    on-failure: RETRY-2-flake\n    commands: [fail-7]\n"),
        );
        assert_eq!(
            fake.log
                .iter()
                .filter(|l| l.starts_with("begin BUILD"))
                .count(),
            3
        );
    }

    #[test]
    fn an_interrupted_phase_goes_to_the_upload_unless_killed() {
        for (command, status) in [("timeout", "TIMED_OUT"), ("stop", "STOPPED")] {
            let spec = format!(
                "  build:\n    on-failure: ABORT\n    commands: [{command}, never]\n    finally: [never]\n"
            );
            let (ends, fake) = walk(&spec);
            assert_eq!(
                ends,
                [
                    "end INSTALL SUCCEEDED",
                    "end PRE_BUILD SUCCEEDED",
                    &format!(
                        "end BUILD {status} BUILD_{}",
                        if status == "STOPPED" {
                            "STOPPED"
                        } else {
                            "TIMED_OUT"
                        }
                    ),
                    "upload"
                ],
                "{command}"
            );
            assert!(!fake.log.iter().any(|l| l.contains("never")), "{command}");
            assert!(!fake.succeeding);
            let mut killed = Fake {
                succeeding: true,
                killed: true,
                ..Fake::default()
            };
            run(&mut killed, &plan(&spec));
            assert!(!killed.log.iter().any(|l| l == "upload"), "{command}");
        }
    }
}
