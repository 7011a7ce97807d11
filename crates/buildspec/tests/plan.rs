//! The plan: phase order, transitions, and the builds of a batch.

use buildspec::plan::{after_failure, after_success};
use buildspec::{Next, OnFailure, PhaseName};

use crate::check;

fn plan(yaml: &str) -> buildspec::Plan {
    let checked = check(yaml);
    checked
        .plan()
        .unwrap_or_else(|| panic!("plan expected:\n{}", checked.render()))
}

#[test]
fn phases_run_in_fixed_order_whatever_the_yaml_order() {
    let p = plan(
        "version: 0.2\nphases:\n  post_build:\n    commands: [d]\n  build:\n    commands: [c]\n  pre_build:\n    commands: [b]\n",
    );
    let order: Vec<(PhaseName, bool, Vec<&str>)> = p
        .phases
        .iter()
        .map(|ph| {
            (
                ph.name,
                ph.present,
                ph.commands.iter().map(|c| c.text.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            (PhaseName::Install, false, vec![]),
            (PhaseName::PreBuild, true, vec!["b"]),
            (PhaseName::Build, true, vec!["c"]),
            (PhaseName::PostBuild, true, vec!["d"]),
        ]
    );
}

#[test]
fn transition_table() {
    use Next::{Finalizing, UploadArtifacts};
    use PhaseName::*;
    let retry = OnFailure::Retry {
        count: 2,
        pattern: None,
    };
    // (phase, on-failure, after failure)
    let cases: &[(PhaseName, Option<&OnFailure>, Next)] = &[
        (Install, None, Finalizing),
        (PreBuild, None, Finalizing),
        (Build, None, Next::Phase(PostBuild)),
        (PostBuild, None, UploadArtifacts),
        (Install, Some(&OnFailure::Continue), Next::Phase(PreBuild)),
        (PreBuild, Some(&OnFailure::Continue), Next::Phase(Build)),
        (Build, Some(&OnFailure::Continue), Next::Phase(PostBuild)),
        (PostBuild, Some(&OnFailure::Continue), UploadArtifacts),
        (Install, Some(&OnFailure::Abort), Finalizing),
        (Build, Some(&OnFailure::Abort), Finalizing),
        (PostBuild, Some(&OnFailure::Abort), Finalizing),
        (Build, Some(&retry), Next::Phase(PostBuild)),
        (PreBuild, Some(&retry), Finalizing),
    ];
    for (phase, on_failure, expected) in cases {
        assert_eq!(
            after_failure(*phase, *on_failure),
            *expected,
            "{phase:?} {on_failure:?}"
        );
    }
    assert_eq!(after_success(Install), Next::Phase(PreBuild));
    assert_eq!(after_success(PostBuild), UploadArtifacts);
}

#[test]
fn plan_carries_run_as_retries_and_version_rules() {
    let p = plan(
        "version: 0.1\nrun-as: builder\nphases:\n  install:\n    run-as: root\n    on-failure: RETRY-4\n    commands: [x]\n  build:\n    commands: [y]\n",
    );
    assert!(!p.session_state);
    assert_eq!(p.phase(PhaseName::Install).run_as.as_deref(), Some("root"));
    assert_eq!(p.phase(PhaseName::Install).retries, 4);
    assert_eq!(p.phase(PhaseName::Build).run_as.as_deref(), Some("builder"));
    assert_eq!(
        p.phase(PhaseName::Install).next_on_failure,
        Next::Finalizing
    );
}

fn builds(yaml: &str) -> Vec<buildspec::batch::PlannedBuild> {
    plan(yaml).batch.expect("batch").builds
}

#[test]
fn matrix_is_the_cartesian_product_with_readable_identifiers() {
    let b = builds(
        "\
version: 0.2
batch:
  build-matrix:
    static:
      ignore-failure: true
      env:
        variables:
          SHARED: yes
    dynamic:
      env:
        variables:
          OS: [linux, macos]
          PY: [3.10, 3.11, '3.12']
phases:
  build:
    commands: [echo $OS $PY]
",
    );
    let ids: Vec<&str> = b.iter().map(|b| b.identifier.as_str()).collect();
    assert_eq!(
        ids,
        [
            "OS_linux_PY_3_10",
            "OS_linux_PY_3_11",
            "OS_linux_PY_3_12",
            "OS_macos_PY_3_10",
            "OS_macos_PY_3_11",
            "OS_macos_PY_3_12"
        ]
    );
    assert_eq!(b[1].variables["PY"], "3.11");
    assert_eq!(b[0].variables["PY"], "3.10", "3.10 stays 3.10, not 3.1");
    assert_eq!(b[5].variables["SHARED"], "yes");
    assert!(b.iter().all(|b| b.ignore_failure));
}

#[test]
fn matrix_over_buildspecs_and_images() {
    let b = builds(
        "\
version: 0.2
batch:
  build-matrix:
    dynamic:
      buildspec: [ci/unit.yml, ci/integ.yml]
      env:
        image: [aws/codebuild/standard:7.0, aws/codebuild/amazonlinux2-x86_64-standard:5.0]
",
    );
    assert_eq!(b.len(), 4);
    assert_eq!(b[0].identifier, "unit_standard_7_0");
    assert_eq!(b[0].buildspec.as_deref(), Some("ci/unit.yml"));
    assert_eq!(
        b[3].image.as_deref(),
        Some("aws/codebuild/amazonlinux2-x86_64-standard:5.0")
    );
}

#[test]
fn list_graph_and_fanout() {
    let list = builds(
        "version: 0.2\nbatch:\n  build-list:\n    - identifier: a\n      env:\n        variables: {X: '1'}\n    - identifier: b\n      buildspec: other.yml\n      ignore-failure: yes\n",
    );
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].variables["X"], "1");
    assert_eq!(list[1].buildspec.as_deref(), Some("other.yml"));
    assert!(list[1].ignore_failure);

    let graph = builds(
        "version: 0.2\nbatch:\n  build-graph:\n    - identifier: build\n    - identifier: test\n      depend-on: [build]\n    - identifier: deploy\n      depend-on: [build, test]\n",
    );
    assert_eq!(graph[2].depend_on, ["build", "test"]);

    let fanout = builds(
        "version: 0.2\nbatch:\n  build-fanout:\n    parallelism: 3\nphases:\n  build:\n    commands: [x]\n",
    );
    let ids: Vec<&str> = fanout.iter().map(|b| b.identifier.as_str()).collect();
    assert_eq!(ids, ["fanout_1", "fanout_2", "fanout_3"]);
}

#[test]
fn graph_problems() {
    let codes = crate::codes(
        "version: 0.2\nbatch:\n  build-graph:\n    - identifier: a\n      depend-on: [a]\n    - identifier: b\n      depend-on: [c]\n    - identifier: b\n",
    );
    assert_eq!(
        codes,
        ["graph-cycle", "unknown-dependency", "duplicate-identifier"]
    );
}
