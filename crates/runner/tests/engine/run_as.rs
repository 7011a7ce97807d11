//! `run-as`: commands run as another user, phase by phase.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use runner::events::Status::*;

use crate::Fixture;

/// A user and a group made for the test, removed when it ends.
pub(crate) struct TestUser {
    pub(crate) name: String,
    pub(crate) group: String,
}

/// `useradd` and `userdel` lock the user database: tests that run side by side take turns.
static USER_DATABASE: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl TestUser {
    pub(crate) fn create() -> TestUser {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = std::process::id();
        let user = TestUser {
            name: format!("bst{id}u{n}"),
            group: format!("bst{id}g{n}"),
        };
        let _turn = USER_DATABASE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ok = |c: &mut Command| c.status().expect("runs").success();
        assert!(ok(Command::new("groupadd").arg(&user.group)), "groupadd");
        assert!(
            ok(Command::new("useradd").args([
                "-M",
                "-s",
                "/bin/sh",
                "-G",
                &user.group,
                &user.name
            ])),
            "useradd"
        );
        user
    }

    /// The user's id.
    pub(crate) fn uid(&self) -> u32 {
        let out = Command::new("id")
            .args(["-u", &self.name])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a uid")
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _turn = USER_DATABASE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = Command::new("userdel").arg(&self.name).status();
        let _ = Command::new("groupdel").arg(&self.group).status();
    }
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// Whether a test that switches users can run: only as root, which CI is.
pub(crate) fn can_switch_users() -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs as root and must run the tests that switch users"
    );
    eprintln!("skipped: switching users needs root (CI runs this test as root)");
    false
}

/// A user made for the test, when the test can switch users (see [`can_switch_users`]).
pub(crate) fn test_user() -> Option<TestUser> {
    can_switch_users().then(TestUser::create)
}

/// A fixture whose source a `run-as` user can reach and write.
pub(crate) fn open_fixture(yaml: &str) -> Fixture {
    let mut fixture = Fixture::new(yaml);
    fixture
        .options
        .layers
        .inherited
        .push(("HOME".into(), "/root".into()));
    for dir in [fixture.source().parent().expect("root"), fixture.source()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    fixture
}

#[test]
fn run_as_switches_user_per_phase() {
    let Some(user) = test_user() else {
        return;
    };
    let fixture = open_fixture(&format!(
        "\
version: 0.2
phases:
  install:
    commands:
      - echo install as $(id -un)
      - echo root wrote this > shared.txt && chmod 666 shared.txt
  build:
    run-as: {name}
    commands:
      - echo build as $(id -un) home=$HOME user=$USER
      - echo groups $(id -Gn)
      - echo and {name} added this >> shared.txt
      - CARRIED=from-{name}
  post_build:
    commands:
      - echo post_build as $(id -un) home=$HOME carried=$CARRIED
      - cat shared.txt
",
        name = user.name
    ));
    let ran = fixture.run();
    ran.expect(Succeeded);
    assert_eq!(ran.said("install as "), ["root"]);
    assert_eq!(
        ran.said("build as "),
        [format!("{0} home=/home/{0} user={0}", user.name).as_str()]
    );
    let groups = ran.said("groups ")[0];
    assert!(groups.split(' ').any(|g| g == user.group), "{groups}");
    assert_eq!(
        ran.said("post_build as "),
        [format!("root home=/root carried=from-{}", user.name).as_str()]
    );
    assert!(
        ran.events
            .output
            .iter()
            .any(|l| l == &format!("and {} added this", user.name))
    );
}

#[test]
fn run_as_an_unknown_user_fails_before_anything_runs() {
    let ran = Fixture::new("version: 0.2\nrun-as: no-such-user-here\nphases:\n  build:\n    commands:\n      - echo ran\n").run();
    ran.expect(Failed);
    assert!(ran.said("ran").is_empty());
    let message = &ran.record.phases[0].contexts[0].message;
    if is_root() {
        assert_eq!(message, "run-as: there is no user named no-such-user-here");
    } else {
        assert!(
            message.starts_with("run-as no-such-user-here needs the runner to run as root"),
            "{message}"
        );
    }
}

#[test]
fn run_as_works_in_a_persistent_session_too() {
    let Some(user) = test_user() else {
        return;
    };
    let fixture = open_fixture(&format!(
        "version: 0.2\nphases:\n  install:\n    commands:\n      - f() {{ echo in a function; }}\n      - f\n  build:\n    run-as: {name}\n    commands:\n      - g() {{ echo as $(id -un); }}\n      - g\n      - CARRIED=yes\n  post_build:\n    commands:\n      - echo back as $(id -un) carried=$CARRIED\n",
        name = user.name
    ))
    .persistent();
    let ran = fixture.run();
    ran.expect(Succeeded);
    assert_eq!(ran.said("in a "), ["function"]);
    assert_eq!(ran.said("as "), [user.name.as_str()]);
    assert_eq!(ran.said("back as "), ["root carried=yes"]);
}
