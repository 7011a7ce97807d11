//! The YAML layer: serde-saphyr parses the text into a tree of located nodes whose scalars keep
//! the text the user wrote.
//!
//! The tree is built through `deserialize_any`, which types plain scalars the YAML 1.1 way (`NO`
//! becomes `false`, `0.10` becomes `0.1`). CodeBuild's Go agent reads every scalar into a string
//! field, which keeps the source text, so for a typed scalar the tree takes the text back from the
//! source through the span serde-saphyr reports. Aliases point at their anchor's definition, so
//! an aliased scalar's text is taken there.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::options::DuplicateKeyPolicy;

use crate::diagnostic::{Code, Diagnostic};
use crate::span::Span;

/// Largest buildspec accepted, in bytes. CodeBuild caps an inline buildspec far lower; a larger
/// file is hostile or a mistake, and refusing it up front bounds time and memory.
pub const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;

/// A YAML node with its location.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// `~`, `null`, or nothing at all (`key:` or `- # comment`).
    Null,
    /// Any scalar, as text.
    Scalar(String),
    Seq(Vec<Node>),
    /// Entries in source order; duplicate keys are kept for the decoder to report.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// What the node is, in words, for "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Null => "nothing",
            Kind::Scalar(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    pub(crate) fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(text) => Some(text),
            _ => None,
        }
    }
}

/// The tree as serde sees it, before raw texts are restored.
enum Raw {
    Null,
    /// A scalar serde-saphyr passed as a string: its text is already the user's.
    Str(String),
    /// A scalar serde-saphyr typed (bool, number): its text is in the source.
    Typed,
    Seq(Vec<serde_saphyr::Spanned<Raw>>),
    Map(Vec<(serde_saphyr::Spanned<Raw>, serde_saphyr::Spanned<Raw>)>),
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Raw, E> {
        Ok(Raw::Typed)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Raw, E> {
        Ok(Raw::Typed)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Raw, E> {
        Ok(Raw::Typed)
    }

    fn visit_i128<E>(self, _: i128) -> Result<Raw, E> {
        Ok(Raw::Typed)
    }

    fn visit_u128<E>(self, _: u128) -> Result<Raw, E> {
        Ok(Raw::Typed)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Raw, E> {
        Ok(Raw::Typed)
    }

    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

fn span_of(location: &serde_saphyr::Location) -> Span {
    let span = location.span();
    Span {
        line: u32::try_from(location.line()).unwrap_or(u32::MAX),
        column: u32::try_from(location.column()).unwrap_or(u32::MAX),
        offset: span
            .byte_offset()
            .and_then(|o| usize::try_from(o).ok())
            .unwrap_or(0),
        len: span
            .byte_len()
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(0),
    }
}

fn restore(source: &str, raw: serde_saphyr::Spanned<Raw>) -> Node {
    let span = span_of(&raw.referenced);
    let kind = match raw.value {
        Raw::Null => Kind::Null,
        Raw::Str(text) => Kind::Scalar(text),
        Raw::Typed => {
            let defined = span_of(&raw.defined);
            let text = source
                .get(defined.offset..defined.offset + defined.len)
                .unwrap_or_default();
            Kind::Scalar(text.trim().to_owned())
        }
        Raw::Seq(items) => Kind::Seq(items.into_iter().map(|i| restore(source, i)).collect()),
        Raw::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (restore(source, k), restore(source, v)))
                .collect(),
        ),
    };
    Node { kind, span }
}

/// Limits that keep a hostile file from costing more than a real one could. The largest real
/// buildspecs have a few thousand nodes.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 400_000,
            max_nodes: 200_000,
            max_depth: 24,
            max_aliases: 10_000,
            max_anchors: 10_000,
            max_total_scalar_bytes: MAX_SOURCE_BYTES,
            max_documents: 16,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 32,
        },
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        reject_unsupported_tags: true,
    }
}

/// Parses YAML text into a located tree, or says where and why it is not YAML.
pub(crate) fn parse(source: &str) -> Result<Node, Diagnostic> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(Diagnostic::error(
            Code::YamlBudget,
            None,
            format!(
                "the file is {} bytes, over the limit of {} bytes for a buildspec",
                source.len(),
                MAX_SOURCE_BYTES
            ),
        ));
    }
    match serde_saphyr::from_str_with_options::<serde_saphyr::Spanned<Raw>>(source, options()) {
        Ok(raw) => Ok(restore(source, raw)),
        Err(error) => Err(from_saphyr(source, &error)),
    }
}

fn from_saphyr(source: &str, error: &serde_saphyr::Error) -> Diagnostic {
    let span = error
        .location()
        .map(|l| span_of(&l))
        .filter(|s| s.line > 0)
        .map(|mut s| {
            // The parser reports a point; underline one character unless it gave a length.
            if s.len == 0 || s.offset + s.len > source.len() {
                s.len = 1;
            }
            s
        });
    let text = error.to_string();
    // serde-saphyr appends " at line L column C" to some messages; the location is shown apart.
    let raw = strip_location_suffix(&text);
    let message = readable(&raw);
    let lower = raw.to_ascii_lowercase();
    let code = if lower.contains("budget") || lower.contains("limit") || lower.contains("alias") {
        Code::YamlBudget
    } else if lower.contains("tag") {
        Code::CustomTag
    } else {
        Code::YamlSyntax
    };
    let mut diagnostic = Diagnostic::error(code, span, message);
    diagnostic = match code {
        Code::CustomTag => diagnostic.with_help(
            "CodeBuild reads buildspecs with a plain YAML loader: CloudFormation tags such as `!Ref` are not expanded",
        ),
        Code::YamlBudget => diagnostic.with_note(
            "alias expansion, nesting and size are bounded so that a small file cannot expand into gigabytes",
        ),
        _ => diagnostic,
    };
    if code == Code::YamlSyntax
        && let Some(hint) = span.and_then(|s| syntax_hint(source, s))
    {
        diagnostic = diagnostic.with_help(hint);
    }
    diagnostic
}

/// serde-saphyr's messages for a breached budget or several documents name its API; say what
/// is wrong with the file instead.
fn readable(message: &str) -> String {
    if message.starts_with("multiple YAML documents") {
        return "a buildspec is one YAML document, but this file has several (separated by `---`)"
            .to_owned();
    }
    if message.starts_with("alias replay limit exceeded") {
        return "aliases expand to more YAML than any buildspec needs (an alias bomb?)".to_owned();
    }
    let Some(breach) = message.strip_prefix("budget breached: ") else {
        return message.to_owned();
    };
    let kind = breach.split([' ', '{']).next().unwrap_or(breach);
    let what = match kind {
        "Depth" => "the YAML nests deeper than 24 levels (real buildspecs nest fewer than 10)",
        "Events" | "Nodes" => "the YAML has more nodes than any buildspec needs",
        "Aliases" | "Anchors" => "the YAML has more anchors or aliases than any buildspec needs",
        "ScalarBytes" | "TotalScalarBytes" => "the YAML's text is larger than any buildspec needs",
        "Documents" => "a buildspec is one YAML document, but this file has many",
        _ => return format!("the YAML is over the parser's budget ({})", breach.trim()),
    };
    what.to_owned()
}

fn strip_location_suffix(text: &str) -> String {
    let first = text.lines().next().unwrap_or(text).trim();
    // serde-saphyr writes "error: line L column C: message"; the location is shown apart.
    let first = first.strip_prefix("error:").unwrap_or(first).trim_start();
    let first = match first.strip_prefix("line ") {
        Some(rest) => rest
            .split_once(": ")
            .filter(|(position, _)| position.contains("column"))
            .map_or(first, |(_, message)| message),
        None => first,
    };
    let cut = first
        .rfind(" at line ")
        .filter(|&i| first[i..].contains("column"))
        .map_or(first, |i| &first[..i]);
    cut.trim_end_matches(':').trim().to_owned()
}

/// Common causes of a syntax error, recognised from the offending line.
fn syntax_hint(source: &str, span: Span) -> Option<String> {
    let line = source
        .split('\n')
        .nth((span.line as usize).checked_sub(1)?)?;
    let prefix: String = line.chars().take(span.column as usize).collect();
    if line.contains('\t') && prefix.trim_start_matches(' ').starts_with('\t') {
        return Some("YAML does not allow tabs for indentation: indent with spaces".to_owned());
    }
    if line.contains("{{") || line.contains("{%") {
        return Some(
            "this looks like an unrendered template (`{{ }}` or `{% %}`): render it before use, or quote the value".to_owned(),
        );
    }
    let trimmed = line.trim_start();
    if trimmed.starts_with("- ") && trimmed.contains(": ") {
        return Some("quote a command that contains `: `, e.g. `- \"echo a: b\"`".to_owned());
    }
    None
}

/// A YAML (or JSON) document whose scalars keep their source text, for files that are not
/// buildspecs: values of parameters and secrets, where `0123` must stay `0123`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// A scalar, as written.
    Scalar(String),
    /// A list.
    Seq(Vec<Value>),
    /// A mapping, in source order; keys that are not scalars are dropped.
    Map(Vec<(String, Value)>),
}

impl Value {
    fn from_node(node: Node) -> Value {
        match node.kind {
            Kind::Null => Value::Null,
            Kind::Scalar(text) => Value::Scalar(text),
            Kind::Seq(items) => Value::Seq(items.into_iter().map(Value::from_node).collect()),
            Kind::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .filter_map(|(k, v)| match k.kind {
                        Kind::Scalar(key) => Some((key, Value::from_node(v))),
                        _ => None,
                    })
                    .collect(),
            ),
        }
    }
}

/// Parses a YAML or JSON document, keeping scalars' text.
pub fn parse_value(text: &str) -> Result<Value, Diagnostic> {
    parse(text).map(Value::from_node)
}
