//! What the JSON parsers share: opening the file, and errors with their line and column.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::ReportError;

/// The `visit_*` methods of a visitor for JSON's scalars (strings, booleans, numbers, null),
/// each answering `$value(kind)`: a document's value where a parser expects an array or an
/// object is not an error of the JSON, only of its kind.
macro_rules! scalars {
    ($out:ty, $value:expr) => {
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<$out, E> {
            Ok(($value)("a string"))
        }

        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<$out, E> {
            Ok(($value)("a boolean"))
        }

        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<$out, E> {
            Ok(($value)("a number"))
        }

        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<$out, E> {
            Ok(($value)("a number"))
        }

        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<$out, E> {
            Ok(($value)("a number"))
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<$out, E> {
            Ok(($value)("null"))
        }
    };
}
pub(super) use scalars;

/// Reads a whole JSON document as `T`, whose `Deserialize` folds it while it streams by.
pub(super) fn read<T: DeserializeOwned>(
    path: &Path,
    format: &'static str,
) -> Result<T, ReportError> {
    let io_error = |source| ReportError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    if file.metadata().map_err(io_error)?.len() == 0 {
        return Err(ReportError::Empty {
            path: path.to_owned(),
        });
    }
    let mut json = serde_json::Deserializer::from_reader(BufReader::new(file));
    let value = T::deserialize(&mut json).map_err(|e| error(path, format, e))?;
    json.end().map_err(|e| error(path, format, e))?;
    Ok(value)
}

fn error(path: &Path, format: &'static str, error: serde_json::Error) -> ReportError {
    use serde_json::error::Category;

    let (line, column) = (error.line() as u64, error.column().max(1) as u64);
    let category = error.classify();
    if category == Category::Io {
        return ReportError::Io {
            path: path.to_owned(),
            source: error.into(),
        };
    }
    // serde_json ends its messages with the position, which the error shows its own way.
    let mut message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    if message.ends_with(&suffix) {
        message.truncate(message.len() - suffix.len());
    }
    match category {
        Category::Data => ReportError::Invalid {
            path: path.to_owned(),
            format,
            line: Some(line),
            column: Some(column),
            message,
        },
        Category::Syntax | Category::Eof | Category::Io => ReportError::Syntax {
            path: path.to_owned(),
            language: "JSON",
            line,
            column,
            message,
        },
    }
}
