//! No process of a build outlives it: the process group, then anything that left it.

use runner::events::Status::*;

use crate::Fixture;

fn alive(pid: &str) -> bool {
    std::process::Command::new("kill")
        .args(["-0", pid.trim()])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("kill runs")
        .success()
}

#[test]
fn daemons_that_left_the_process_group_are_ended() {
    let fixture = Fixture::new("\
version: 0.2
phases:
  build:
    commands:
      - setsid sleep 1000 > /dev/null 2>&1 & echo $! > setsid.pid
      - sh -c '(sleep 1000 > /dev/null 2>&1 & echo $! > double.pid) &'
      - setsid sh -c 'trap \"\" TERM; echo $$ > stubborn.pid; while :; do sleep 1; done' > /dev/null 2>&1 &
      - while [ ! -s stubborn.pid ] || [ ! -s double.pid ]; do :; done
");
    let started = std::time::Instant::now();
    let ran = fixture.run();
    ran.expect(Succeeded);
    assert!(
        ran.events
            .log
            .contains("Ending 3 process(es) the build left outside its process group"),
        "{}",
        ran.events.log
    );
    for name in ["setsid.pid", "double.pid", "stubborn.pid"] {
        let pid = std::fs::read_to_string(fixture.source().join(name)).expect("pid file");
        assert!(
            !alive(&pid),
            "{name}: process {} survived the build",
            pid.trim()
        );
    }
    // The one that ignores SIGTERM got SIGKILL after the grace period (2 s in these tests).
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn commands_start_in_the_build_group_with_default_signals_and_no_input() {
    // What a shell started by `fork` and `exec` from a fresh process would have: the runner
    // ignores SIGPIPE (as every Rust program does), and that must not reach the commands.
    let ran = crate::run(
        "\
version: 0.2
phases:
  build:
    commands:
      - grep -E '^Sig(Blk|Ign):' /proc/self/status
      - '[ \"$(cut -d\" \" -f5 /proc/$$/stat)\" = $$ ] && echo group=own'
      - read -r line || echo input=empty
",
    );
    ran.expect(Succeeded);
    assert_eq!(ran.said("SigBlk:"), ["\t0000000000000000"]);
    // None ignored: SIGPIPE, whatever the test process inherited ignored (run as a background
    // job, SIGINT and SIGQUIT are), and glibc's own two (32 and 33), which its posix_spawn
    // would leave ignored.
    let ignored = ran.said("SigIgn:");
    let ignored = u64::from_str_radix(ignored[0].trim(), 16).expect("a mask");
    assert_eq!(ignored, 0, "ignored: {ignored:#x}");
    assert_eq!(ran.said("group="), ["own"]);
    assert_eq!(ran.said("input="), ["empty"]);
}
