//! Parameter Store and Secrets Manager values, from local files (`--parameters`, `--secrets`).
//!
//! Both files are YAML or JSON maps. Parameters map a parameter name to its value. Secrets map a
//! secret id (name or ARN) to its value: a string (the secret string), or a map, which is the
//! secret's JSON object; a `json-key` in the buildspec picks one of its keys. A reference with a
//! version stage or id reads the entry `<secret-id>:<version-stage>` or
//! `<secret-id>::<version-id>`; `AWSCURRENT` is also the plain entry.

use std::path::Path;

use buildspec::Value;
use buildspec::model::SecretRef;
use indexmap::IndexMap;

/// The values a build can take from its providers.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    parameters: IndexMap<String, String>,
    secrets: IndexMap<String, Value>,
}

/// A provider file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML or JSON, or not a map.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn load_map(path: &Path) -> Result<Vec<(String, Value)>, ProviderError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProviderError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let invalid = |reason: String| ProviderError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    match buildspec::parse_value(&text).map_err(|d| {
        let at = d
            .span
            .map(|s| format!("line {} column {}: ", s.line, s.column))
            .unwrap_or_default();
        invalid(format!("{at}{}", d.message))
    })? {
        Value::Map(entries) => Ok(entries),
        Value::Null => Ok(Vec::new()),
        _ => Err(invalid("expected a map of names to values".to_owned())),
    }
}

impl Providers {
    /// Reads the files given.
    pub fn load(
        parameters: Option<&Path>,
        secrets: Option<&Path>,
    ) -> Result<Providers, ProviderError> {
        let mut providers = Providers::default();
        if let Some(path) = parameters {
            for (name, value) in load_map(path)? {
                let text = match value {
                    Value::Scalar(text) => text,
                    Value::Null => String::new(),
                    _ => {
                        return Err(ProviderError::Invalid {
                            path: path.display().to_string(),
                            reason: format!("the value of parameter `{name}` must be a string"),
                        });
                    }
                };
                providers.parameters.insert(name, text);
            }
        }
        if let Some(path) = secrets {
            providers.secrets.extend(load_map(path)?);
        }
        Ok(providers)
    }

    /// A parameter's value; `Err` has CodeBuild's message.
    pub fn parameter(&self, name: &str) -> Result<&str, String> {
        self.parameters
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("Parameter does not exist: {name}"))
    }

    /// A secret's value (or one key of it); `Err` says what is missing.
    pub fn secret(&self, reference: &SecretRef) -> Result<String, String> {
        let id = &reference.secret_id;
        let versioned = match (&reference.version_stage, &reference.version_id) {
            (Some(stage), _) if stage != "AWSCURRENT" => Some(format!("{id}:{stage}")),
            (_, Some(version)) => Some(format!("{id}::{version}")),
            _ => None,
        };
        let value = match &versioned {
            Some(key) => self.secrets.get(key).ok_or_else(|| {
                format!("ResourceNotFoundException: Secrets Manager can't find the specified secret value for {key}")
            })?,
            None => self.secrets.get(id).ok_or_else(|| {
                format!("ResourceNotFoundException: Secrets Manager can't find the specified secret: {id}")
            })?,
        };
        let Some(key) = &reference.json_key else {
            return match value {
                Value::Scalar(text) => Ok(text.clone()),
                Value::Null => Ok(String::new()),
                other => Ok(to_json(other).to_string()),
            };
        };
        let missing = || format!("secret {} has no key `{key}`", reference.secret_id);
        match value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| match v {
                    Value::Scalar(text) => text.clone(),
                    Value::Null => String::new(),
                    other => to_json(other).to_string(),
                })
                .ok_or_else(missing),
            Value::Scalar(text) => {
                let object: serde_json::Value = serde_json::from_str(text).map_err(|_| {
                    format!(
                        "secret {} is not a JSON object, so it has no key `{key}`",
                        reference.secret_id
                    )
                })?;
                match object.get(key) {
                    Some(serde_json::Value::String(s)) => Ok(s.clone()),
                    Some(other) => Ok(other.to_string()),
                    None => Err(missing()),
                }
            }
            _ => Err(missing()),
        }
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Scalar(text) => serde_json::Value::String(text.clone()),
        Value::Seq(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_secrets_from_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let parameters = dir.path().join("parameters.yml");
        std::fs::write(&parameters, "/ci/token: abc123\n/ci/pin: 0123\n").expect("write");
        let secrets = dir.path().join("secrets.json");
        std::fs::write(
            &secrets,
            r#"{"prod/db": {"username": "admin", "password": "pa:ss"}, "plain": "s3cret", "as-text": "{\"k\": \"v\"}"}"#,
        )
        .expect("write");
        let p = Providers::load(Some(&parameters), Some(&secrets)).expect("load");
        assert_eq!(p.parameter("/ci/token"), Ok("abc123"));
        assert_eq!(
            p.parameter("/ci/pin"),
            Ok("0123"),
            "numbers keep their text"
        );
        assert_eq!(
            p.parameter("/nope"),
            Err("Parameter does not exist: /nope".to_owned())
        );
        assert_eq!(
            p.secret(&SecretRef::parse("prod/db:password")),
            Ok("pa:ss".to_owned())
        );
        assert_eq!(
            p.secret(&SecretRef::parse("plain")),
            Ok("s3cret".to_owned())
        );
        assert_eq!(p.secret(&SecretRef::parse("as-text:k")), Ok("v".to_owned()));
        assert!(p.secret(&SecretRef::parse("prod/db:nokey")).is_err());
        assert!(
            p.secret(&SecretRef::parse("missing"))
                .expect_err("missing")
                .contains("can't find")
        );
        std::fs::write(&parameters, "- a\n").expect("write");
        assert!(Providers::load(Some(&parameters), None).is_err());
    }

    #[test]
    fn versions_of_a_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = dir.path().join("secrets.yml");
        std::fs::write(
            &secrets,
            "db: {password: current}\n\"db:AWSPREVIOUS\": {password: previous}\n\"db::v7\": {password: seven}\n",
        )
        .expect("write");
        let p = Providers::load(None, Some(&secrets)).expect("load");
        assert_eq!(
            p.secret(&SecretRef::parse("db:password")),
            Ok("current".to_owned())
        );
        assert_eq!(
            p.secret(&SecretRef::parse("db:password:AWSCURRENT")),
            Ok("current".to_owned())
        );
        assert_eq!(
            p.secret(&SecretRef::parse("db:password:AWSPREVIOUS")),
            Ok("previous".to_owned())
        );
        assert_eq!(
            p.secret(&SecretRef::parse("db:password::v7")),
            Ok("seven".to_owned())
        );
        assert!(
            p.secret(&SecretRef::parse("db:password:AWSPENDING"))
                .is_err()
        );
    }
}
