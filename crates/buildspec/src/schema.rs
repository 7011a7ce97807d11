//! The JSON Schema of the format, generated from the model, for editors (yaml-language-server).

use schemars::generate::SchemaSettings;

use crate::model::Buildspec;

/// Where the repository keeps a copy of the schema, relative to the workspace root.
pub const SCHEMA_PATH: &str = "docs/buildspec.schema.json";

/// The schema as pretty JSON, ending in a newline.
pub fn json_schema() -> String {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<Buildspec>();
    schema.insert(
        "$id".to_owned(),
        "https://buildspec.dev/schema/buildspec.schema.json".into(),
    );
    schema.insert(
        "description".to_owned(),
        "An AWS CodeBuild buildspec (version 0.2 or 0.1), as `buildspec check` reads it. Unknown keys are flagged here; CodeBuild (and `buildspec` without --strict) only warns about them.".into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
