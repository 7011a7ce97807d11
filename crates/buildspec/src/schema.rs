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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use crate::decode::*;

    fn properties(schema: &Value, pointer: &str) -> BTreeSet<String> {
        schema
            .pointer(pointer)
            .and_then(|o| o["properties"].as_object())
            .unwrap_or_else(|| panic!("no properties at {pointer} in the schema"))
            .keys()
            .cloned()
            .collect()
    }

    /// The decoder's key tables and the schema derived from the model cannot drift apart.
    #[test]
    fn schema_properties_are_the_decoder_keys() {
        let schema: Value = serde_json::from_str(&super::json_schema()).expect("JSON");
        let tables: &[(&str, &[&str])] = &[
            ("", TOP_KEYS),
            ("/$defs/Env", ENV_KEYS),
            ("/$defs/Proxy", PROXY_KEYS),
            ("/$defs/Phase", PHASE_KEYS),
            ("/$defs/ReportGroup", REPORT_KEYS),
            ("/$defs/Artifacts", ARTIFACTS_KEYS),
            ("/$defs/ArtifactSet", ARTIFACT_SET_KEYS),
            ("/$defs/Cache", CACHE_KEYS),
            ("/$defs/Batch", BATCH_KEYS),
            ("/$defs/BatchTask", TASK_KEYS),
            ("/$defs/BatchEnv", BATCH_ENV_KEYS),
            ("/$defs/BuildMatrix", MATRIX_KEYS),
            ("/$defs/MatrixStatic", MATRIX_STATIC_KEYS),
            ("/$defs/MatrixDynamic", MATRIX_DYNAMIC_KEYS),
            ("/$defs/MatrixDynamicEnv", MATRIX_DYNAMIC_ENV_KEYS),
            ("/$defs/BuildFanout", FANOUT_KEYS),
        ];
        for (pointer, keys) in tables {
            let decoder: BTreeSet<String> = keys.iter().map(|k| (*k).to_owned()).collect();
            assert_eq!(properties(&schema, pointer), decoder, "keys at {pointer:?}");
        }
        let phases: BTreeSet<String> = crate::PhaseName::ALL
            .iter()
            .map(|p| p.key().to_owned())
            .collect();
        assert_eq!(properties(&schema, "/$defs/Phases"), phases);
    }
}
