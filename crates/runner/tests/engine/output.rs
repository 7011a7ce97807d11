//! The build's output: order, volume, partial lines, stdin, background processes.

use runner::events::Status::*;

use crate::{Fixture, run};

#[test]
fn stdout_and_stderr_keep_terminal_order() {
    let ran = run(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo 1; echo 2 >&2; echo 3; echo 4 >&2\n",
    );
    ran.expect(Succeeded);
    let numbers: Vec<&str> = ran
        .events
        .output
        .iter()
        .map(String::as_str)
        .filter(|l| l.len() == 1)
        .collect();
    assert_eq!(numbers, ["1", "2", "3", "4"]);
}

#[test]
fn output_without_a_trailing_newline_is_a_line() {
    let ran = run(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - printf 'no newline'\n      - echo next\n",
    );
    let lines: Vec<&str> = ran.events.output.iter().map(String::as_str).collect();
    assert_eq!(lines, ["no newline", "next"]);
    assert!(
        ran.events.log.contains("no newline\n\n"),
        "the partial line ends before the next command"
    );
}

#[test]
fn two_hundred_thousand_lines_none_lost() {
    let ran = run(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - seq 1 200000\n      - echo done\n",
    );
    ran.expect(Succeeded);
    let numbers: Vec<u64> = ran
        .events
        .output
        .iter()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 200_000);
    assert!(
        numbers.iter().enumerate().all(|(i, n)| *n == i as u64 + 1),
        "in order"
    );
    assert_eq!(ran.events.output.last().map(String::as_str), Some("done"));
}

#[test]
fn commands_read_stdin_from_dev_null() {
    let ran = run(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - cat; echo cat ended\n      - read line || echo read got eof\n",
    );
    ran.expect(Succeeded);
    assert_eq!(ran.said("cat "), ["ended"]);
    assert_eq!(ran.said("read got "), ["eof"]);
}

#[test]
fn background_processes_outlive_their_command_and_are_ended_with_the_build() {
    let fixture = Fixture::new(
        "\
version: 0.2
phases:
  install:
    commands:
      - mkfifo go said
      - (read word < go; echo \"background says $word\"; echo > said) &
      - (trap '' HUP; exec sleep 1000) & echo $! > sleeper.pid
  build:
    commands:
      - echo now > go
      - read done < said; echo build ran
",
    );
    let started = std::time::Instant::now();
    let ran = fixture.run();
    ran.expect(Succeeded);
    // The background process's output, written after its command ended, is logged. (BUILD
    // waits until it is written: the build's end would otherwise race the background echo.)
    assert_eq!(ran.said("background says "), ["now"]);
    // The sleeper held the output pipe; the build still ended, and ended it.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let pid = std::fs::read_to_string(fixture.source().join("sleeper.pid")).expect("pid file");
    let alive = std::process::Command::new("kill")
        .arg("-0")
        .arg(pid.trim())
        .status()
        .expect("kill runs");
    assert!(
        !alive.success(),
        "the background sleeper was ended with the build"
    );
}

#[test]
fn a_single_long_line_is_passed_on_in_bounded_pieces() {
    let ran = run(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - head -c 1000000 /dev/zero | tr '\\\\0' x\n",
    );
    ran.expect(Succeeded);
    let total: usize = ran.events.output.iter().map(String::len).sum();
    assert_eq!(total, 1_000_000);
    assert!(
        ran.events
            .output
            .iter()
            .all(|l| l.len() <= runner::build::output::MAX_LINE)
    );
}
