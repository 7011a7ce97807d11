//! The shipped JSON Schema is the one the model generates, and it names exactly the keys the
//! decoder reads.

use serde_json::Value;

use crate::workspace;

fn schema() -> Value {
    serde_json::from_str(&buildspec::schema::json_schema()).expect("the schema is JSON")
}

#[test]
fn shipped_schema_is_up_to_date() {
    let path = workspace().join(buildspec::schema::SCHEMA_PATH);
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = buildspec::schema::json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write schema");
        return;
    }
    assert!(
        shipped == generated,
        "{} is stale: run `UPDATE_SCHEMA=1 cargo test -p buildspec schema` and commit it",
        path.display()
    );
}

#[test]
fn schema_is_draft_2020_12() {
    assert_eq!(
        schema()["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[test]
fn the_examples_use_only_known_keys() {
    let dir = workspace().join("buildspecs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("buildspecs/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yml") {
            let checked = buildspec::check_file(&path, &buildspec::Options { strict: true })
                .expect("readable");
            assert!(
                checked.diagnostics.is_empty(),
                "{}:\n{}",
                path.display(),
                checked.render()
            );
            seen += 1;
        }
    }
    assert!(seen >= 3, "the examples are checked");
}
