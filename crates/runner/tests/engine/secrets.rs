//! Parameter Store and Secrets Manager values, and masking everywhere the runner writes.

use runner::events::Status::*;

use crate::Fixture;

const SPEC: &str = "\
version: 0.2
env:
  parameter-store:
    TOKEN: /ci/token
  secrets-manager:
    DB_PASSWORD: prod/db:password
    DB_WHOLE: prod/db
  exported-variables:
    - LEAK
phases:
  build:
    commands:
      - echo token=$TOKEN password=$DB_PASSWORD
      - echo \"literal tok-1234-abcd in the command\"
      - printf 'split tok-12'; printf '34-abcd write\\n'
      - set -x; echo traced $DB_PASSWORD
      - LEAK=\"prefix-$TOKEN\"
      - echo aws=$AWS_SECRET_ACCESS_KEY
      - test \"$DB_PASSWORD\" = 'pa:ss w0rd' && test \"$TOKEN\" = tok-1234-abcd
      - echo \"$DB_WHOLE\" | tr ',' '\\n'
      - 'false tok-1234-abcd'
";

fn fixture() -> Fixture {
    let mut fixture = Fixture::new(SPEC);
    let parameters = fixture.source().join("parameters.yml");
    std::fs::write(&parameters, "/ci/token: tok-1234-abcd\n").expect("write");
    let secrets = fixture.source().join("secrets.yml");
    std::fs::write(&secrets, "prod/db:\n  password: 'pa:ss w0rd'\n  user: me\n").expect("write");
    fixture.options.providers =
        runner::env::secrets::Providers::load(Some(&parameters), Some(&secrets))
            .expect("providers");
    fixture.options.layers.inherited.push((
        "AWS_SECRET_ACCESS_KEY".into(),
        "wJalrXUtnFEMI/K7MDENG".into(),
    ));
    fixture
}

#[test]
fn provider_values_reach_the_commands_and_never_the_logs() {
    let fixture = fixture();
    let ran = fixture.run();
    ran.expect(Failed);
    // The commands saw the real values (the `test` command passed).
    assert!(
        !ran.events
            .log
            .contains("Command did not exit successfully test"),
        "{}",
        ran.events.log
    );
    let everything = [
        ran.events.log.clone(),
        std::fs::read_to_string(&ran.record.log_path).expect("log"),
        std::fs::read_to_string(&ran.record_path).expect("record"),
        std::fs::read_to_string(ran.record_path.with_file_name("env").join("start.env"))
            .expect("start.env"),
        std::fs::read_to_string(ran.record_path.with_file_name("env").join("end.env"))
            .expect("end.env"),
    ]
    .concat();
    for secret in ["tok-1234-abcd", "pa:ss w0rd", "wJalrXUtnFEMI/K7MDENG"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
    assert_eq!(ran.said("token="), ["*** password=***"]);
    assert_eq!(ran.said("literal "), ["*** in the command"]);
    assert_eq!(ran.said("split "), ["*** write"]);
    assert!(
        ran.events.output.iter().any(|l| l == "+ echo traced ***"),
        "{:?}",
        ran.events.output
    );
    assert_eq!(ran.said("aws="), ["***"]);
    assert!(
        ran.events
            .log
            .contains("Running command echo \"literal *** in the command\"")
    );
    assert_eq!(ran.record.exported_variables["LEAK"], "prefix-***");
    let context = &ran
        .record
        .phases
        .iter()
        .find(|p| p.status == Failed)
        .expect("failed")
        .contexts[0];
    assert_eq!(
        context.message,
        "Error while executing command: false ***. Reason: exit status 1"
    );
}

#[test]
fn a_missing_value_fails_download_source() {
    let mut fixture = fixture();
    fixture.options.providers = runner::env::secrets::Providers::default();
    let ran = fixture.run();
    ran.expect(Failed);
    assert_eq!(ran.record.phases[0].phase, runner::Phase::DownloadSource);
    assert_eq!(
        ran.record.phases[0].contexts[0].message,
        "Parameter does not exist: /ci/token (for TOKEN; give it with --parameters FILE)"
    );
    assert!(
        !ran.events.log.contains("Entering phase INSTALL"),
        "nothing runs"
    );
}
