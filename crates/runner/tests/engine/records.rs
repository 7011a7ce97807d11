//! Build records and logs.

use runner::events::Status;
use runner::store::{BuildRecord, StateDir};

use crate::Fixture;

#[test]
fn the_record_is_complete_and_the_log_is_codebuilds() {
    let fixture = Fixture::new(
        "version: 0.2\nenv:\n  exported-variables: [IMAGE_TAG, UNSET_ONE]\nphases:\n  build:\n    commands:\n      - IMAGE_TAG=v1.2\n      - echo hi\n",
    );
    let ran = fixture.run();
    let on_disk: BuildRecord =
        serde_json::from_slice(&std::fs::read(&ran.record_path).expect("record")).expect("json");
    assert_eq!(on_disk, ran.record);
    assert_eq!(on_disk.status, Status::Succeeded);
    assert_eq!(on_disk.exit_code, Some(0));
    assert_eq!(
        on_disk
            .exported_variables
            .get("IMAGE_TAG")
            .map(String::as_str),
        Some("v1.2")
    );
    assert_eq!(
        on_disk
            .exported_variables
            .get("UNSET_ONE")
            .map(String::as_str),
        Some("")
    );
    assert!(
        on_disk
            .phases
            .iter()
            .all(|p| p.end_time.is_some() && p.duration_ms.is_some())
    );
    let log = std::fs::read_to_string(&on_disk.log_path).expect("log");
    assert_eq!(
        log, ran.events.log,
        "the log file is what the console showed"
    );
    let dir = ran.record_path.parent().expect("build dir");
    assert!(dir.join("buildspec.yml").exists());
    assert!(dir.join("env/start.env").exists());
    let scripts =
        std::fs::read_to_string(dir.join("scripts.sh")).expect("the scripts are recorded");
    assert!(
        scripts.contains("#### build-1.sh (buildspec line 7)\nset -a\n"),
        "{scripts}"
    );
    assert!(scripts.contains("\necho hi\n"));
    // Nothing that can hold a value in clear is left behind.
    let leftovers = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().contains(&on_disk.uuid))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(leftovers, 0);
}

#[test]
fn concurrent_runs_share_a_state_directory() {
    let first = Fixture::new("version: 0.2\nphases:\n  build:\n    commands:\n      - echo one\n");
    let state = first.options.state_dir.clone();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let mut fixture = Fixture::new(&format!(
                "version: 0.2\nphases:\n  build:\n    commands:\n      - echo build {i}\n"
            ));
            fixture.options.state_dir = state.clone();
            std::thread::spawn(move || fixture.run().record)
        })
        .collect();
    let records: Vec<BuildRecord> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let mut numbers: Vec<u64> = records.iter().map(|r| r.number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4]);
    let dir = StateDir::open(&state).expect("state");
    for record in &records {
        let read = dir.find(Some(&record.uuid)).expect("found");
        assert_eq!(read.status, Status::Succeeded);
        assert_eq!(&read, record);
    }
    // A unique prefix finds a build; `--last` finds the last started.
    let prefix = &records[0].uuid[..8];
    assert_eq!(
        dir.find(Some(prefix)).expect("prefix").uuid,
        records[0].uuid
    );
    assert!(dir.find(None).is_ok());
}
