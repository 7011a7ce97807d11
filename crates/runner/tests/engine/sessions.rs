//! How state carries between commands: compat, persistent, and version 0.1.

use runner::events::Status::*;

use crate::{Fixture, run};

const RULES: &str = "\
version: 0.2
phases:
  install:
    commands:
      - cd sub
      - ASSIGNED=plain
      - export EXPORTED=yes
      - DOOMED=1
      - unset DOOMED
      - greet() { echo hello from a function; }
      - set -e
      - WITH_SPACES='a b  c'; QUOTE=\"it's\"; NEWLINE='x
        y'
  build:
    commands:
      - echo cwd=$(basename \"$PWD\")
      - echo pwd=$(basename \"$PWD\") again
      - echo assigned=$ASSIGNED exported=$EXPORTED doomed=${DOOMED-unset}
      - sh -c 'echo child sees $ASSIGNED'
      - greet || echo no function
      - 'false; echo set -e did not carry'
      - echo \"spaces=[$WITH_SPACES] quote=[$QUOTE]\"
      - LOST=1; exit 0
      - echo after exit 0, lost=${LOST-unset}
";

#[test]
fn compat_carries_variables_and_directory_only() {
    let fixture = Fixture::new(RULES);
    std::fs::create_dir(fixture.source().join("sub")).expect("mkdir");
    let ran = fixture.run();
    ran.expect(Succeeded);
    assert_eq!(ran.said("cwd="), ["sub"]);
    assert_eq!(
        ran.said("pwd="),
        ["sub again"],
        "PWD is right in every command"
    );
    assert_eq!(ran.said("assigned="), ["plain exported=yes doomed=unset"]);
    assert_eq!(ran.said("child sees "), ["plain"]);
    assert_eq!(ran.said("no "), ["function"]);
    assert_eq!(ran.said("set -e "), ["did not carry"]);
    assert_eq!(ran.said("spaces="), ["[a b  c] quote=[it's]"]);
    assert_eq!(ran.said("after exit 0, "), ["lost=unset"]);
}

#[test]
fn persistent_carries_functions_and_options_too() {
    let fixture = Fixture::new(
        "\
version: 0.2
phases:
  install:
    commands:
      - greet() { echo hello from a function; }
      - cd sub
      - KEPT=1
  build:
    commands:
      - greet
      - echo cwd=$(basename \"$PWD\") kept=$KEPT
      - set -e
      - KEPT=2
      - 'false'
  post_build:
    commands:
      - echo after the shell ended, kept=$KEPT cwd=$(basename \"$PWD\")
      - greet || echo functions are gone with the old shell
",
    )
    .persistent();
    std::fs::create_dir(fixture.source().join("sub")).expect("mkdir");
    let ran = fixture.run();
    ran.expect(Failed);
    assert_eq!(ran.said("hello from "), ["a function"]);
    assert_eq!(ran.said("cwd="), ["sub kept=1"]);
    // `set -e` persisted, so `false` ended the shell; a new one continues from the last state.
    assert_eq!(ran.said("after the shell ended, "), ["kept=2 cwd=sub"]);
    assert_eq!(ran.said("functions are "), ["gone with the old shell"]);
}

#[test]
fn persistent_exit_ends_the_shell_with_its_status() {
    let ran = Fixture::new("version: 0.2\nphases:\n  build:\n    commands:\n      - V=1\n      - exit 4\n  post_build:\n    commands:\n      - echo v=$V last=$CODEBUILD_LAST_EXIT\n").persistent().run();
    ran.expect(Failed);
    assert_eq!(
        ran.phase(runner::Phase::Build).contexts[0].message,
        "Error while executing command: exit 4. Reason: exit status 4"
    );
    assert_eq!(ran.said("v="), ["1 last=4"]);
}

#[test]
fn a_timed_out_build_keeps_what_earlier_commands_of_its_phase_set() {
    // A persistent session reports its state at the end of a phase's commands; a timeout in
    // the middle still leaves what the commands before it set (the driver's EXIT trap).
    for persistent in [false, true] {
        let mut fixture = Fixture::new(
            "version: 0.2\nenv:\n  exported-variables: [VERSION, WHERE]\nphases:\n  build:\n    commands:\n      - export VERSION=1.2\n      - mkdir -p sub && cd sub && WHERE=$(basename \"$PWD\")\n      - echo started; sleep 30\n",
        );
        fixture.options.timeout = Some(std::time::Duration::from_millis(1500));
        fixture.options.grace = std::time::Duration::from_secs(2);
        if persistent {
            fixture = fixture.persistent();
        }
        let ran = fixture.run();
        ran.expect(TimedOut);
        assert_eq!(
            ran.record
                .exported_variables
                .get("VERSION")
                .map(String::as_str),
            Some("1.2"),
            "persistent: {persistent}\n{}",
            ran.events.log
        );
        assert_eq!(
            ran.record
                .exported_variables
                .get("WHERE")
                .map(String::as_str),
            Some("sub"),
            "persistent: {persistent}"
        );
    }
}

#[test]
fn version_0_1_carries_nothing_in_either_session() {
    for persistent in [false, true] {
        let mut fixture = Fixture::new(
            "version: 0.1\nphases:\n  build:\n    commands:\n      - cd sub\n      - V=1\n      - echo cwd=$(basename \"$PWD\") v=${V-unset}\n",
        );
        if persistent {
            fixture = fixture.persistent();
        }
        std::fs::create_dir(fixture.source().join("sub")).expect("mkdir");
        let ran = fixture.run();
        ran.expect(Succeeded);
        assert_eq!(
            ran.said("cwd="),
            ["src v=unset"],
            "persistent: {persistent}"
        );
        assert_eq!(ran.record.session, "compat");
    }
}

#[test]
fn block_scalars_are_one_command() {
    let ran = run("\
version: 0.2
phases:
  build:
    commands:
      - |
        echo one
        false
        echo last line decides
      - >
        echo folded
        into one line
      - |
        set -e
        echo before
        false
        echo not reached
");
    ran.expect(Failed);
    assert_eq!(ran.said("last line "), ["decides"]);
    assert_eq!(ran.said("folded "), ["into one line"]);
    assert!(ran.said("not reached").is_empty());
}

#[test]
fn bash_when_the_buildspec_asks_for_it() {
    let ran = run("\
version: 0.2
env:
  shell: bash
phases:
  build:
    commands:
      - arr=(a b c); echo \"len=${#arr[@]}\"
      - '[[ -n \"$BASH_VERSION\" ]] && echo is bash'
      - 'echo \"array carried: ${arr[1]:-no}\"' 
");
    ran.expect(Succeeded);
    assert_eq!(ran.said("len="), ["3"]);
    assert_eq!(ran.said("is "), ["bash"]);
    assert_eq!(ran.said("array carried: "), ["no"]);
}

#[test]
fn codebuild_variables_and_precedence() {
    let mut fixture = Fixture::new(
        "\
version: 0.2
env:
  variables:
    FROM_SPEC: spec
    OVERRIDDEN: spec
    LITERAL: $HOME/not-expanded
    NUMBER: 0.10
phases:
  build:
    commands:
      - echo id=$CODEBUILD_BUILD_ID
      - echo number=$CODEBUILD_BUILD_NUMBER src=$CODEBUILD_SRC_DIR local=$CODEBUILD_LOCAL_BUILD
      - echo initiator=$CODEBUILD_INITIATOR region=$AWS_REGION
      - echo arn=$CODEBUILD_BUILD_ARN
      - echo spec=$FROM_SPEC overridden=$OVERRIDDEN literal=$LITERAL number=$NUMBER
",
    );
    fixture
        .options
        .layers
        .overrides
        .push(("OVERRIDDEN".into(), "cli".into()));
    fixture
        .options
        .layers
        .overrides
        .push(("AWS_REGION".into(), "eu-west-1".into()));
    let ran = fixture.run();
    ran.expect(Succeeded);
    assert_eq!(ran.said("id="), [ran.record.id.as_str()]);
    assert!(ran.record.id.starts_with("test:"));
    let src = fixture.source().display().to_string();
    assert_eq!(
        ran.said("number="),
        [format!("1 src={src} local=true").as_str()]
    );
    assert_eq!(ran.said("initiator="), ["tester region=eu-west-1"]);
    let arn = format!(
        "arn:aws:codebuild:eu-west-1:000000000000:build/{}",
        ran.record.id
    );
    assert_eq!(ran.said("arn="), [arn.as_str()]);
    assert_eq!(
        ran.said("spec="),
        ["spec overridden=cli literal=$HOME/not-expanded number=0.10"]
    );
}

#[test]
fn shell_errors_name_the_buildspec_line() {
    let ran = run(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo fine\n      - no-such-command-here\n",
    );
    ran.expect(Failed);
    let error = ran.line_with("no-such-command-here");
    assert!(error.starts_with("buildspec.yml: 6: "), "{error}");
}

#[test]
fn persistent_commands_are_parsed_one_at_a_time() {
    // Each command of a persistent list is parsed when its turn comes, as a script of its own
    // would be: `return` ends only its command, a syntax error is only its command's (the ones
    // before it ran), and the quotes and newlines of a command reach the shell as written.
    for shell in ["sh", "bash"] {
        let in_shell = |phases: &str| {
            Fixture::new(&format!(
                "version: 0.2\nenv:\n  shell: {shell}\nphases:\n{phases}"
            ))
            .persistent()
            .run()
        };
        let ran = in_shell(
            "
  build:
    commands:
      - echo \"it's\" 'a \"quoted\"' word
      - 'R=1; return 0; echo not reached'
      - echo after return r=$R
      - |
        echo two
        no-such-command
  post_build:
    commands:
      - 'R=2; return 5'
      - echo not run after return 5
",
        );
        ran.expect(Failed);
        assert_eq!(ran.said("it's "), ["a \"quoted\" word"], "{shell}");
        assert!(ran.said("not reached").is_empty(), "{shell}");
        assert_eq!(ran.said("after return "), ["r=1"], "{shell}");
        // Line numbers count from the command's first line, as CodeBuild's always say line 4
        // of its script: dash's `$0: 2: eval: ...`, bash's `...: line 2: ...`.
        let error = ran.line_with("no-such-command");
        let expected = if shell == "sh" {
            ": 2: eval: no-such-command: not found"
        } else {
            ": line 2: no-such-command: command not found"
        };
        assert!(error.ends_with(expected), "{shell}: {error}");
        assert_eq!(
            ran.phase(runner::Phase::PostBuild).contexts[0].message,
            "Error while executing command: R=2; return 5. Reason: exit status 5",
            "{shell}"
        );
        assert!(ran.said("not run").is_empty(), "{shell}");

        let ran = in_shell(
            "
  build:
    commands:
      - V=kept
      - 'echo \"unterminated'
      - echo never
  post_build:
    commands:
      - echo post last=$CODEBUILD_LAST_EXIT v=$V
",
        );
        ran.expect(Failed);
        assert!(ran.said("never").is_empty(), "{shell}");
        assert_eq!(
            ran.phase(runner::Phase::Build).contexts[0].message,
            "Error while executing command: echo \"unterminated. Reason: exit status 2",
            "{shell}"
        );
        assert_eq!(ran.said("post "), ["last=2 v=kept"], "{shell}");
    }
}

#[test]
fn persistent_commands_after_exec_redirecting_the_output_run_once() {
    // `exec > file` moves the shell's output, and with it the markers that tell the runner
    // where each command begins: the list's reply still says where it stopped, so each command
    // is reported once, the failure goes to the command that failed, and nothing runs twice.
    let fixture = Fixture::new(
        "\
version: 0.2
phases:
  build:
    commands:
      - echo before
      - exec > moved.txt
      - echo into the file; echo ran >> count.txt
      - 'false'
      - echo never >> count.txt
",
    )
    .persistent();
    let ran = fixture.run();
    ran.expect(Failed);
    assert_eq!(ran.said("before"), [""]);
    assert_eq!(
        ran.phase(runner::Phase::Build).contexts[0].message,
        "Error while executing command: false. Reason: exit status 1"
    );
    assert_eq!(
        ran.events.log.matches("Running command ").count(),
        4,
        "{}",
        ran.events.log
    );
    let count = std::fs::read_to_string(fixture.source().join("count.txt")).expect("count");
    assert_eq!(count, "ran\n");
    let moved = std::fs::read_to_string(fixture.source().join("moved.txt")).expect("moved");
    assert!(moved.contains("into the file\n"), "{moved:?}");
}

#[test]
fn persistent_bash_keeps_arrays_and_parser_options() {
    // `shopt -s extglob` changes how later commands parse: it works only because each command
    // is parsed after the one before it ran.
    let ran = Fixture::new(
        "\
version: 0.2
env:
  shell: bash
phases:
  build:
    commands:
      - declare -A M=([k]=v); arr=(a b c); shopt -s extglob; mkdir g; touch g/keep.txt g/drop.log
      - echo \"map=${M[k]} arr=${arr[2]}\"
      - cd g; echo matched !(*.log)
",
    )
    .persistent()
    .run();
    ran.expect(Succeeded);
    assert_eq!(ran.said("map="), ["v arr=c"]);
    assert_eq!(ran.said("matched "), ["keep.txt"]);
}

/// The log without its timestamps and its temporary paths.
fn shape(ran: &crate::Ran) -> Vec<String> {
    let root = ran
        .record_path
        .ancestors()
        .nth(4)
        .expect("the fixture's root")
        .display()
        .to_string();
    ran.events
        .log
        .lines()
        .map(|l| match l.strip_prefix("[Container] ") {
            Some(rest) => format!("[Container] {}", rest.get(27..).unwrap_or("")),
            None => l.to_owned(),
        })
        .map(|l| {
            l.replace(&root, "<root>")
                .replace(&ran.record.uuid, "<uuid>")
        })
        .collect()
}

#[test]
fn a_persistent_log_reads_like_a_compat_log() {
    // In a persistent session the driver gets a phase's commands all at once; the output of
    // each must still stand under its own "Running command" line.
    let mut yaml = String::from("version: 0.2\nphases:\n  build:\n    commands:\n");
    for i in 0..60 {
        yaml.push_str(&format!(
            "      - echo out {i}; echo err {i} >&2; printf 'no newline {i}'\n"
        ));
    }
    yaml.push_str("      - seq 1 2000\n      - 'false'\n      - echo skipped\n    finally:\n      - echo finally one\n      - echo finally two\n");
    let compat = Fixture::new(&yaml).run();
    let persistent = Fixture::new(&yaml).persistent().run();
    compat.expect(Failed);
    persistent.expect(Failed);
    let (a, b) = (shape(&compat), shape(&persistent));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "line {} differs", i + 1);
    }
    assert_eq!(a.len(), b.len());
}
