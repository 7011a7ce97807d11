//! Phases, transitions, on-failure, finally, and CODEBUILD_BUILD_SUCCEEDING.

use runner::events::Phase::*;
use runner::events::Status::{self, *};

use crate::run;

/// A buildspec whose phases each say their name; `fail` makes one phase fail, `extra` adds keys to
/// that phase (on-failure).
fn spec(fail: &str, extra: &str) -> String {
    let mut yaml = String::from("version: 0.2\nphases:\n");
    for phase in ["install", "pre_build", "build", "post_build"] {
        yaml.push_str(&format!("  {phase}:\n"));
        if phase == fail {
            yaml.push_str(extra);
        }
        yaml.push_str(&format!(
            "    commands:\n      - echo ran {phase} $CODEBUILD_BUILD_SUCCEEDING\n"
        ));
        if phase == fail {
            yaml.push_str("      - exit 3\n      - echo not reached\n");
        }
        yaml.push_str(&format!(
            "    finally:\n      - echo finally {phase} $CODEBUILD_BUILD_SUCCEEDING\n"
        ));
    }
    yaml
}

#[test]
fn transition_table() {
    let u = UploadArtifacts;
    let f = Finalizing;
    // (failing phase, on-failure, phases in the record)
    type Case<'a> = (&'a str, &'a str, &'a [(runner::Phase, Status)]);
    let cases: &[Case<'_>] = &[
        (
            "",
            "",
            &[
                (DownloadSource, Succeeded),
                (Install, Succeeded),
                (PreBuild, Succeeded),
                (Build, Succeeded),
                (PostBuild, Succeeded),
                (u, Succeeded),
                (f, Succeeded),
            ],
        ),
        (
            "install",
            "",
            &[
                (DownloadSource, Succeeded),
                (Install, Failed),
                (f, Succeeded),
            ],
        ),
        (
            "pre_build",
            "",
            &[
                (DownloadSource, Succeeded),
                (Install, Succeeded),
                (PreBuild, Failed),
                (f, Succeeded),
            ],
        ),
        (
            "build",
            "",
            &[
                (DownloadSource, Succeeded),
                (Install, Succeeded),
                (PreBuild, Succeeded),
                (Build, Failed),
                (PostBuild, Succeeded),
                (u, Succeeded),
                (f, Succeeded),
            ],
        ),
        (
            "post_build",
            "",
            &[
                (DownloadSource, Succeeded),
                (Install, Succeeded),
                (PreBuild, Succeeded),
                (Build, Succeeded),
                (PostBuild, Failed),
                (u, Succeeded),
                (f, Succeeded),
            ],
        ),
        (
            "install",
            "    on-failure: CONTINUE\n",
            &[
                (DownloadSource, Succeeded),
                (Install, Failed),
                (PreBuild, Succeeded),
                (Build, Succeeded),
                (PostBuild, Succeeded),
                (u, Succeeded),
                (f, Succeeded),
            ],
        ),
        (
            "pre_build",
            "    on-failure: CONTINUE\n",
            &[
                (DownloadSource, Succeeded),
                (Install, Succeeded),
                (PreBuild, Failed),
                (Build, Succeeded),
                (PostBuild, Succeeded),
                (u, Succeeded),
                (f, Succeeded),
            ],
        ),
        (
            "build",
            "    on-failure: ABORT\n",
            &[
                (DownloadSource, Succeeded),
                (Install, Succeeded),
                (PreBuild, Succeeded),
                (Build, Failed),
                (f, Succeeded),
            ],
        ),
        (
            "post_build",
            "    on-failure: ABORT\n",
            &[
                (DownloadSource, Succeeded),
                (Install, Succeeded),
                (PreBuild, Succeeded),
                (Build, Succeeded),
                (PostBuild, Failed),
                (f, Succeeded),
            ],
        ),
        (
            "build",
            "    on-failure: CONTINUE\n",
            &[
                (DownloadSource, Succeeded),
                (Install, Succeeded),
                (PreBuild, Succeeded),
                (Build, Failed),
                (PostBuild, Succeeded),
                (u, Succeeded),
                (f, Succeeded),
            ],
        ),
    ];
    for (fail, extra, expected) in cases {
        let ran = run(&spec(fail, extra));
        assert_eq!(
            ran.phases(),
            *expected,
            "failing {fail:?} with {extra:?}; log:\n{}",
            ran.events.log
        );
        let status = if fail.is_empty() { Succeeded } else { Failed };
        ran.expect(status);
        assert_eq!(ran.exit_code, if fail.is_empty() { 0 } else { 1 });
        assert!(
            ran.said("not reached").is_empty(),
            "a failed command skips the rest"
        );
        if !fail.is_empty() {
            // The failing phase's finally runs, and already sees the failure.
            assert_eq!(ran.said(&format!("finally {fail} ")), ["0"], "{fail}");
            let context = &ran
                .record
                .phases
                .iter()
                .find(|p| p.status == Failed)
                .expect("failed phase")
                .contexts[0];
            assert_eq!(context.status_code, "COMMAND_EXECUTION_ERROR");
            assert_eq!(
                context.message,
                "Error while executing command: exit 3. Reason: exit status 3"
            );
        }
    }
}

#[test]
fn post_build_sees_the_failure_and_the_deploy_guard_works() {
    let ran = run("\
version: 0.2
phases:
  build:
    commands:
      - echo testing
      - 'false'
  post_build:
    commands:
      - echo \"succeeding=$CODEBUILD_BUILD_SUCCEEDING last=$CODEBUILD_LAST_EXIT\"
      - if [ \"$CODEBUILD_BUILD_SUCCEEDING\" != 1 ]; then echo skipping deploy; exit 1; fi
      - echo deploying
");
    ran.expect(Failed);
    assert_eq!(ran.said("succeeding="), ["0 last=1"]);
    assert_eq!(ran.said("skipping "), ["deploy"]);
    assert!(ran.said("deploying").is_empty());
    assert!(
        ran.events
            .log
            .contains("Command did not exit successfully false exit status 1")
    );
}

#[test]
fn absent_phases_are_reported_succeeded() {
    let ran = run("version: 0.2\nphases:\n  build:\n    commands: [echo only]\n");
    ran.expect(Succeeded);
    assert!(ran.events.log.contains("Entering phase INSTALL"));
    assert!(
        ran.events
            .log
            .contains("Phase complete: PRE_BUILD State: SUCCEEDED")
    );
}

#[test]
fn finally_without_commands_and_a_failing_finally() {
    let ran = run("\
version: 0.2
phases:
  build:
    finally:
      - echo first
      - 'false'
      - echo skipped
  post_build:
    commands:
      - echo post $CODEBUILD_BUILD_SUCCEEDING
");
    ran.expect(Failed);
    assert_eq!(ran.said("first"), [""]);
    assert!(ran.said("skipped").is_empty());
    assert_eq!(ran.said("post "), ["0"]);
}

#[test]
fn retry_runs_the_whole_phase_again_from_its_starting_state() {
    let ran = run("\
version: 0.2
phases:
  build:
    on-failure: RETRY-3
    commands:
      - echo attempt $ATTEMPT_VAR
      - ATTEMPT_VAR=set-by-a-failed-attempt
      - echo x >> tries
      - '[ $(wc -l < tries) -ge 3 ]'
    finally:
      - echo finally $CODEBUILD_BUILD_SUCCEEDING
");
    ran.expect(Succeeded);
    let build = ran.phase(Build);
    assert_eq!(build.attempts, 3);
    assert_eq!(build.contexts.len(), 2, "each failed attempt is recorded");
    // Each attempt starts from the state the phase started with.
    assert_eq!(ran.said("attempt"), ["", "", ""]);
    // Retried attempts do not fail the build yet.
    assert_eq!(ran.said("finally "), ["1", "1", "1"]);
    assert_eq!(
        ran.events
            .phases
            .iter()
            .filter(|(p, _)| *p == Build)
            .map(|(_, a)| *a)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn retry_gives_up_after_its_count() {
    let ran = run(
        "version: 0.2\nphases:\n  build:\n    on-failure: RETRY-2\n    commands:\n      - 'false'\n    finally:\n      - echo finally $CODEBUILD_BUILD_SUCCEEDING\n",
    );
    ran.expect(Failed);
    assert_eq!(ran.phase(Build).attempts, 3);
    assert_eq!(ran.said("finally "), ["1", "1", "0"]);
}

#[test]
fn retry_with_a_regex_retries_only_matching_failures() {
    let matching = run(
        "version: 0.2\nphases:\n  build:\n    on-failure: RETRY-1-connection (reset|refused)\n    commands:\n      - \"echo 'error: connection reset by peer'; false\"\n",
    );
    assert_eq!(matching.phase(Build).attempts, 2);
    let other = run(
        "version: 0.2\nphases:\n  build:\n    on-failure: RETRY-connection reset\n    commands:\n      - \"echo 'error: disk full'; false\"\n",
    );
    assert_eq!(other.phase(Build).attempts, 1);
    // The failure message counts too.
    let message = run(
        "version: 0.2\nphases:\n  build:\n    on-failure: RETRY-1-exit status 7\n    commands:\n      - exit 7\n",
    );
    assert_eq!(message.phase(Build).attempts, 2);
}

#[test]
fn an_invalid_buildspec_fails_download_source_and_is_recorded() {
    let fixture = crate::Fixture::new(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo status: ok\n",
    );
    let ran = fixture.run();
    ran.expect(Failed);
    assert_eq!(ran.exit_code, 2);
    assert_eq!(
        ran.phases(),
        [(DownloadSource, Failed), (Finalizing, Succeeded)]
    );
    let context = &ran.record.phases[0].contexts[0];
    assert_eq!(context.status_code, "YAML_FILE_ERROR");
    assert_eq!(
        context.message,
        "Expected Commands[0] to be of string type: found subkeys instead at line 5 column 9"
    );
    assert!(ran.record_path.exists());
}

#[test]
fn a_missing_buildspec_is_a_yaml_file_error() {
    let fixture = crate::Fixture::new("version: 0.2\nphases: {}\n");
    std::fs::remove_file(fixture.source().join("buildspec.yml")).expect("remove");
    let ran = fixture.run();
    assert_eq!(ran.exit_code, 2);
    assert!(
        ran.record.phases[0].contexts[0]
            .message
            .starts_with("YAML file does not exist")
    );
}

#[test]
fn timeout_stops_the_command_and_still_uploads() {
    let mut fixture = crate::Fixture::new(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo started\n      - sleep 30\n  post_build:\n    commands:\n      - echo post_build ran\n",
    );
    fixture.options.timeout = Some(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    let ran = fixture.run();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the timeout ends the build"
    );
    ran.expect(TimedOut);
    assert_eq!(ran.exit_code, 124);
    assert_eq!(
        ran.phases(),
        [
            (DownloadSource, Succeeded),
            (Install, Succeeded),
            (PreBuild, Succeeded),
            (Build, TimedOut),
            (UploadArtifacts, Succeeded),
            (Finalizing, Succeeded)
        ]
    );
    assert!(ran.said("post_build").is_empty());
}

#[test]
fn the_retry_decision_is_the_failing_commands_not_finallys() {
    // The failing command's output matches; `finally` prints something else. The phase is
    // retried, succeeds, and nothing saw the build fail.
    let ran = run("\
version: 0.2
phases:
  build:
    on-failure: RETRY-2-flaky network
    commands:
      - echo x >> tries
      - if [ $(wc -l < tries) -lt 2 ]; then echo flaky network; exit 1; fi
    finally:
      - echo finally $CODEBUILD_BUILD_SUCCEEDING
  post_build:
    commands:
      - echo post $CODEBUILD_BUILD_SUCCEEDING
");
    ran.expect(Succeeded);
    assert_eq!(ran.said("finally "), ["1", "1"]);
    assert_eq!(ran.said("post "), ["1"]);
    // And the other way round: only `finally` prints the pattern: no retry.
    let ran = run("\
version: 0.2
phases:
  build:
    on-failure: RETRY-2-flaky network
    commands:
      - echo disk full; exit 1
    finally:
      - echo flaky network
");
    ran.expect(Failed);
    assert_eq!(ran.phase(Build).attempts, 1);
}
