//! From the YAML tree to the typed buildspec, collecting every problem on the way.
//!
//! Keys are matched the way CodeBuild tolerates them: an unknown key is ignored with a warning
//! that names the likely intended key, a key in another case (`Commands`) is read with a warning,
//! and of two equal keys the last wins, with a warning. Values of the wrong type are errors.

use indexmap::IndexMap;

use crate::diagnostic::{Code, Diagnostic};
use crate::model::*;
use crate::span::{Span, Spanned};
use crate::yaml::{Kind, Node};

/// Top-level keys.
pub(crate) const TOP_KEYS: &[&str] = &[
    "version",
    "run-as",
    "env",
    "proxy",
    "batch",
    "phases",
    "reports",
    "artifacts",
    "cache",
];
pub(crate) const ENV_KEYS: &[&str] = &[
    "shell",
    "variables",
    "parameter-store",
    "secrets-manager",
    "exported-variables",
    "git-credential-helper",
];
pub(crate) const PROXY_KEYS: &[&str] = &["upload-artifacts", "logs"];
pub(crate) const PHASE_KEYS: &[&str] = &[
    "run-as",
    "on-failure",
    "runtime-versions",
    "commands",
    "finally",
];
pub(crate) const REPORT_KEYS: &[&str] =
    &["files", "base-directory", "discard-paths", "file-format"];
pub(crate) const ARTIFACT_SET_KEYS: &[&str] = &[
    "files",
    "name",
    "discard-paths",
    "base-directory",
    "exclude-paths",
    "enable-symlinks",
    "s3-prefix",
];
pub(crate) const ARTIFACTS_KEYS: &[&str] = &[
    "files",
    "name",
    "discard-paths",
    "base-directory",
    "exclude-paths",
    "enable-symlinks",
    "s3-prefix",
    "secondary-artifacts",
];
pub(crate) const CACHE_KEYS: &[&str] = &["paths", "key", "fallback-keys", "action"];
pub(crate) const BATCH_KEYS: &[&str] = &[
    "fast-fail",
    "build-list",
    "build-matrix",
    "build-graph",
    "build-fanout",
];
pub(crate) const TASK_KEYS: &[&str] = &[
    "identifier",
    "buildspec",
    "env",
    "depend-on",
    "ignore-failure",
    "debug-session",
];
pub(crate) const BATCH_ENV_KEYS: &[&str] = &[
    "compute-type",
    "image",
    "privileged-mode",
    "type",
    "fleet",
    "variables",
];
pub(crate) const MATRIX_KEYS: &[&str] = &["static", "dynamic"];
pub(crate) const MATRIX_STATIC_KEYS: &[&str] = &["ignore-failure", "env", "debug-session"];
pub(crate) const MATRIX_DYNAMIC_KEYS: &[&str] = &["buildspec", "env"];
pub(crate) const MATRIX_DYNAMIC_ENV_KEYS: &[&str] = &["compute-type", "image", "variables"];
pub(crate) const FANOUT_KEYS: &[&str] = &["parallelism", "ignore-failure"];

/// Runtimes that CodeBuild's curated images list (`runtime-versions`).
const KNOWN_RUNTIMES: &[&str] = &[
    "android", "docker", "dotnet", "golang", "java", "nodejs", "php", "python", "ruby",
];

/// How many warnings of one kind one mapping gets one by one; the rest are counted in one more,
/// so that a hostile file cannot make the report larger than the file.
const MAX_REPEATED: usize = 20;

/// The decoder's state: the source (for suggestions that quote it) and the problems found so far.
#[derive(Debug)]
pub(crate) struct Decoder<'s> {
    source: &'s str,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

/// The entries of one mapping, matched against the keys it may hold.
struct Fields<'a> {
    found: IndexMap<&'static str, (&'a Node, &'a Node)>,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.found.get(key).map(|(_, v)| *v)
    }

    fn key_span(&self, key: &str) -> Option<Span> {
        self.found.get(key).map(|(k, _)| k.span)
    }
}

/// The key a misspelt key most likely meant.
pub(crate) fn suggest(key: &str, known: &[&'static str]) -> Option<&'static str> {
    let normal = |s: &str| s.to_ascii_lowercase().replace('_', "-");
    let wanted = normal(key);
    if let Some(exact) = known.iter().find(|k| normal(k) == wanted) {
        return Some(exact);
    }
    known
        .iter()
        .map(|k| (k, strsim::damerau_levenshtein(&wanted, &normal(k))))
        .filter(|(k, d)| *d <= 2.max(k.len() / 4) && *d < k.len())
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| *k)
}

impl<'s> Decoder<'s> {
    pub(crate) fn new(source: &'s str) -> Self {
        Self {
            source,
            diagnostics: Vec::new(),
        }
    }

    /// The span widened to the rest of its line, for values the parser reports as a point
    /// (collections, empty items).
    fn to_line_end(&self, span: Span) -> Span {
        let rest = self.source.get(span.offset..).unwrap_or("");
        let line = rest.lines().next().unwrap_or("");
        let text = line.split(" #").next().unwrap_or(line).trim_end();
        Span {
            len: text.len().max(1),
            ..span
        }
    }

    /// Where a list item's `-` is, on the line of `span`: an empty item is reported at the end
    /// of its line, after any comment.
    fn dash_of(&self, span: Span) -> Span {
        let Some(before) = self.source.get(..span.offset) else {
            return span;
        };
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = self.source[line_start..].lines().next().unwrap_or("");
        match line.find("- ").or_else(|| {
            line.trim_end()
                .ends_with('-')
                .then(|| line.trim_end().len() - 1)
        }) {
            Some(dash) => Span {
                line: span.line,
                column: u32::try_from(line[..dash].chars().count() + 1).unwrap_or(span.column),
                offset: line_start + dash,
                len: line.trim_end().len() - dash,
            },
            None => span,
        }
    }

    /// A command as written on its line, quoted so that YAML reads it as one string.
    fn quoted(&self, span: Span) -> Option<String> {
        let rest = self.source.get(span.offset..)?;
        let line = rest.lines().next()?.trim_end();
        // Drop a trailing comment the way YAML would (` #`).
        let text = line.split(" #").next().unwrap_or(line).trim_end();
        if text.is_empty() {
            return None;
        }
        Some(if !text.contains('\'') {
            format!("'{text}'")
        } else if !text.contains('"') && !text.contains('\\') {
            format!("\"{text}\"")
        } else {
            format!("'{}'", text.replace('\'', "''"))
        })
    }

    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn wrong_type(&mut self, node: &Node, path: &str, expected: &str) {
        let span = match node.kind {
            Kind::Scalar(_) => node.span,
            _ => self.to_line_end(node.span),
        };
        self.push(Diagnostic::error(
            Code::WrongType,
            span,
            format!("`{path}` must be {expected}, found {}", node.describe()),
        ));
    }

    /// Reads a mapping's keys. `consequence` says what an unknown key that meant `suggested`
    /// leaves undone ("this phase runs no commands").
    fn fields<'a>(
        &mut self,
        node: &'a Node,
        path: &str,
        known: &[&'static str],
        consequence: &dyn Fn(&str) -> Option<String>,
    ) -> Fields<'a> {
        let mut found: IndexMap<&'static str, (&'a Node, &'a Node)> = IndexMap::new();
        let entries = match &node.kind {
            Kind::Map(entries) => entries.as_slice(),
            Kind::Null => &[],
            _ => {
                self.wrong_type(node, path, "a mapping");
                &[]
            }
        };
        let mut unknown = Vec::new();
        for (key, value) in entries {
            let Some(text) = key.as_scalar() else {
                self.push(Diagnostic::error(
                    Code::WrongType,
                    key.span,
                    format!(
                        "a key of `{path}` must be a string, found {}",
                        key.describe()
                    ),
                ));
                continue;
            };
            let canonical = known
                .iter()
                .find(|k| **k == text)
                .or_else(|| known.iter().find(|k| k.eq_ignore_ascii_case(text)));
            match canonical {
                Some(canonical) => {
                    if *canonical != text {
                        self.push(
                            Diagnostic::warning(
                                Code::KeyCase,
                                key.span,
                                format!("key `{text}` is read as `{canonical}`"),
                            )
                            .with_help(format!("write it `{canonical}`")),
                        );
                    }
                    if let Some((first, _)) = found.get(canonical) {
                        self.push(
                            Diagnostic::warning(
                                Code::DuplicateKey,
                                key.span,
                                format!("duplicate key `{text}` in `{path}`: the last one wins"),
                            )
                            .with_note(format!(
                                "the first `{canonical}` is on line {}, and is ignored",
                                first.span.line
                            )),
                        );
                        // The last one wins, but keeps the order of the first for display.
                        found.insert(canonical, (key, value));
                    } else {
                        found.insert(canonical, (key, value));
                    }
                }
                None => unknown.push((key, text)),
            }
        }
        let hidden = unknown.len().saturating_sub(MAX_REPEATED);
        for (key, text) in unknown.iter().take(MAX_REPEATED) {
            let (key, text) = (*key, *text);
            let mut diagnostic = Diagnostic::warning(
                Code::UnknownKey,
                key.span,
                format!("unknown key `{text}` in `{path}`: CodeBuild ignores it"),
            );
            if let Some(suggested) = suggest(text, known) {
                diagnostic = diagnostic.with_help(format!("did you mean `{suggested}`?"));
                if !found.contains_key(suggested)
                    && let Some(note) = consequence(suggested)
                {
                    diagnostic = diagnostic.with_note(note);
                }
            } else {
                diagnostic = diagnostic.with_note(format!("`{path}` takes {}", list(known)));
            }
            self.push(diagnostic);
        }
        if hidden > 0 {
            self.push(Diagnostic::warning(
                Code::UnknownKey,
                unknown.get(MAX_REPEATED).map(|(k, _)| k.span),
                format!("{hidden} more unknown keys in `{path}`, not listed one by one"),
            ));
        }
        Fields { found }
    }

    fn string(&mut self, node: Option<&Node>, path: &str) -> Option<Spanned<String>> {
        let node = node?;
        match &node.kind {
            Kind::Scalar(text) => Some(Spanned::new(text.clone(), node.span)),
            Kind::Null => None,
            _ => {
                self.wrong_type(node, path, "a string");
                None
            }
        }
    }

    fn text(&mut self, node: &Node, path: &str) -> Spanned<ScalarText> {
        match &node.kind {
            Kind::Scalar(text) => Spanned::new(ScalarText(text.clone()), node.span),
            Kind::Null => Spanned::new(ScalarText(String::new()), node.span),
            _ => {
                self.wrong_type(node, path, "a string");
                Spanned::new(ScalarText(String::new()), node.span)
            }
        }
    }

    fn yes_no(&mut self, node: Option<&Node>, path: &str) -> Option<Spanned<YesNo>> {
        let node = node?;
        match &node.kind {
            Kind::Null => None,
            Kind::Scalar(text) => match YesNo::parse(text) {
                Some(flag) => Some(Spanned::new(flag, node.span)),
                None => {
                    self.push(
                        Diagnostic::error(
                            Code::InvalidValue,
                            node.span,
                            format!("`{path}` must be yes or no, found `{text}`"),
                        )
                        .with_help("write `yes`, `no`, `true` or `false`"),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(node, path, "yes or no");
                None
            }
        }
    }

    /// A list of strings; a single string when `single` allows it.
    fn strings(&mut self, node: Option<&Node>, path: &str, single: bool) -> Vec<Spanned<String>> {
        let Some(node) = node else {
            return Vec::new();
        };
        match &node.kind {
            Kind::Null => Vec::new(),
            Kind::Scalar(text) if single => vec![Spanned::new(text.clone(), node.span)],
            Kind::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match &item.kind {
                    Kind::Scalar(text) => Some(Spanned::new(text.clone(), item.span)),
                    Kind::Null => None,
                    _ => {
                        self.wrong_type(item, &format!("{path}[{i}]"), "a string");
                        None
                    }
                })
                .collect(),
            _ => {
                self.wrong_type(node, path, "a list of strings");
                Vec::new()
            }
        }
    }

    /// A name-to-text mapping (`variables`, `runtime-versions`, `parameter-store`).
    fn text_map(
        &mut self,
        node: Option<&Node>,
        path: &str,
    ) -> IndexMap<String, Spanned<ScalarText>> {
        let mut map: IndexMap<String, Spanned<ScalarText>> = IndexMap::new();
        let Some(node) = node else {
            return map;
        };
        let mut keys: IndexMap<String, Span> = IndexMap::new();
        let mut duplicates = 0usize;
        let entries = match &node.kind {
            Kind::Map(entries) => entries.as_slice(),
            Kind::Null => &[],
            _ => {
                self.wrong_type(node, path, "a mapping of names to values");
                &[]
            }
        };
        for (key, value) in entries {
            let Some(name) = key.as_scalar() else {
                self.wrong_type(key, &format!("a name in `{path}`"), "a string");
                continue;
            };
            let value = self.text(value, &format!("{path}.{name}"));
            if keys.contains_key(name) {
                duplicates += 1;
            }
            if let Some(first) = keys.get(name).filter(|_| duplicates <= MAX_REPEATED) {
                self.push(
                    Diagnostic::warning(
                        Code::DuplicateKey,
                        key.span,
                        format!("duplicate key `{name}` in `{path}`: the last one wins"),
                    )
                    .with_note(format!(
                        "the first `{name}` is on line {}, and is ignored",
                        first.line
                    )),
                );
            }
            keys.insert(name.to_owned(), key.span);
            map.insert(name.to_owned(), value);
        }
        if duplicates > MAX_REPEATED {
            self.push(Diagnostic::warning(
                Code::DuplicateKey,
                node.span,
                format!(
                    "{} more duplicate keys in `{path}`, not listed one by one",
                    duplicates - MAX_REPEATED
                ),
            ));
        }
        map
    }

    fn commands(&mut self, node: Option<&Node>, path: &str, label: &str) -> Vec<Command> {
        let Some(node) = node else {
            return Vec::new();
        };
        let items = match &node.kind {
            Kind::Null => return Vec::new(),
            Kind::Seq(items) => items,
            _ => {
                self.push(
                    Diagnostic::error(
                        Code::WrongType,
                        node.span,
                        format!(
                            "`{path}` must be a list of commands, found {}",
                            node.describe()
                        ),
                    )
                    .with_help("write each command as a list item: `- echo hello`"),
                );
                return Vec::new();
            }
        };
        let mut commands = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match &item.kind {
                Kind::Scalar(text) => commands.push(Command {
                    text: text.clone(),
                    line: item.span.line,
                    column: item.span.column,
                }),
                Kind::Map(entries) => {
                    let mut diagnostic = Diagnostic::error(
                        Code::CommandNotString,
                        self.to_line_end(item.span),
                        format!("Expected {label}[{i}] to be of string type: found subkeys instead"),
                    );
                    let simple = entries.len() == 1 && entries[0].1.as_scalar().is_some();
                    let line = self.to_line_end(item.span);
                    let written = self.source.get(line.offset..line.offset + line.len).unwrap_or("");
                    if written.contains("{{") || written.contains("{%") {
                        diagnostic = diagnostic.with_help(
                            "this looks like an unrendered template (`{{ }}`): render it before use, or quote the command",
                        );
                    } else if simple && let Some(quoted) = self.quoted(item.span) {
                        diagnostic = diagnostic
                            .with_note("YAML reads a `: ` in an unquoted command as a key and its value")
                            .with_help(format!("quote the command: `- {quoted}`"));
                    } else {
                        diagnostic = diagnostic.with_help(
                            "quote the command, or check its indentation: a key under a command makes it a mapping",
                        );
                    }
                    self.push(diagnostic);
                }
                Kind::Seq(_) => self.push(
                    Diagnostic::error(
                        Code::CommandNotString,
                        self.to_line_end(item.span),
                        format!("Expected {label}[{i}] to be of string type: found a list instead"),
                    )
                    .with_help("a command is one string; quote it if it starts with `[`"),
                ),
                Kind::Null => self.push(
                    Diagnostic::error(
                        Code::NullCommand,
                        self.dash_of(item.span),
                        format!("Expected {label}[{i}] to be of string type: found an empty item instead"),
                    )
                    .with_note("a list item holding only a comment (`- # text`) is an empty command")
                    .with_help("delete the item, or comment out the whole line (`# - text`)"),
                ),
            }
        }
        commands
    }

    /// Decodes a whole file.
    pub(crate) fn buildspec(&mut self, root: &Node) -> Buildspec {
        if !matches!(root.kind, Kind::Map(_)) {
            let message = match root.kind {
                Kind::Null => {
                    "the file is empty: a buildspec needs at least `version` and `phases`"
                        .to_owned()
                }
                _ => format!(
                    "a buildspec is a mapping of keys, but this file is {}",
                    root.describe()
                ),
            };
            self.push(Diagnostic::error(Code::NotABuildspec, root.span, message));
        }
        let top = match root.kind {
            Kind::Map(_) => self.fields(root, "buildspec", TOP_KEYS, &|_| None),
            // Already reported as not a buildspec.
            _ => Fields {
                found: IndexMap::new(),
            },
        };
        let version = self.version(&top, root);
        let env = top.get("env").map(|n| self.env(n)).unwrap_or_default();
        let run_as = self.string(top.get("run-as"), "run-as");
        let proxy = top.get("proxy").map(|n| {
            let f = self.fields(n, "proxy", PROXY_KEYS, &|_| None);
            Proxy {
                upload_artifacts: self.yes_no(f.get("upload-artifacts"), "proxy.upload-artifacts"),
                logs: self.yes_no(f.get("logs"), "proxy.logs"),
            }
        });
        let batch = top
            .get("batch")
            .map(|n| self.batch(n, top.key_span("batch").unwrap_or(n.span)));
        let phases = match top.get("phases") {
            Some(node) => self.phases(node, top.key_span("phases")),
            None => Phases::default(),
        };
        let reports = top
            .get("reports")
            .map(|n| self.reports(n))
            .unwrap_or_default();
        let artifacts = top
            .get("artifacts")
            .map(|n| self.artifacts(n, top.key_span("artifacts").unwrap_or(n.span)));
        let cache = top.get("cache").map(|n| self.cache(n));
        if top.get("phases").is_none() && batch.is_none() && matches!(root.kind, Kind::Map(_)) {
            self.missing_phases(root);
        }
        Buildspec {
            version,
            run_as,
            env,
            proxy,
            batch,
            phases,
            reports,
            artifacts,
            cache,
        }
    }

    fn missing_phases(&mut self, root: &Node) {
        let stray: Vec<(&str, Span)> = match &root.kind {
            Kind::Map(entries) => entries
                .iter()
                .filter_map(|(k, _)| Some((k.as_scalar()?, k.span)))
                .filter(|(k, _)| PhaseName::parse(k).is_some())
                .collect(),
            _ => Vec::new(),
        };
        let span = stray.first().map_or(root.span, |(_, span)| *span);
        let stray: Vec<&str> = stray.into_iter().map(|(k, _)| k).collect();
        let mut diagnostic = Diagnostic::error(
            Code::MissingPhases,
            span,
            "the buildspec has no `phases` (and no `batch`): there is nothing to run",
        );
        if stray.is_empty() {
            diagnostic = diagnostic.with_help("add `phases:` with at least a `build:` phase");
        } else {
            diagnostic = diagnostic.with_help(format!(
                "{} written at the top level: indent {} under a `phases:` key",
                list(&stray),
                if stray.len() == 1 { "it" } else { "them" }
            ));
        }
        self.push(diagnostic);
    }

    fn version(&mut self, top: &Fields<'_>, root: &Node) -> Spanned<Version> {
        let Some(node) = top.get("version") else {
            if matches!(root.kind, Kind::Map(_)) {
                self.push(
                    Diagnostic::error(
                        Code::MissingVersion,
                        root.span,
                        "the buildspec has no `version`",
                    )
                    .with_help("add `version: 0.2` as the first line"),
                );
            }
            return Spanned::new(Version::V02, Span::NONE);
        };
        let text = node.as_scalar().unwrap_or("").trim();
        match text {
            "0.2" => Spanned::new(Version::V02, node.span),
            "0.1" => Spanned::new(Version::V01, node.span),
            _ => {
                let shown = if node.as_scalar().is_some() {
                    text
                } else {
                    node.describe()
                };
                self.push(
                    Diagnostic::error(
                        Code::InvalidVersion,
                        node.span,
                        format!(
                            "invalid buildspec `version` specified: {shown}, see documentation"
                        ),
                    )
                    .with_help("CodeBuild accepts `version: 0.2` (and the older `0.1`)"),
                );
                Spanned::new(Version::V02, node.span)
            }
        }
    }

    fn env(&mut self, node: &Node) -> Env {
        let f = self.fields(node, "env", ENV_KEYS, &|_| None);
        let shell = f.get("shell").and_then(|n| {
            let text = self.string(Some(n), "env.shell")?;
            match Shell::parse(text.trim()) {
                Some(shell) => Some(Spanned::new(shell, text.span)),
                None => {
                    self.push(
                        Diagnostic::error(
                            Code::InvalidValue,
                            text.span,
                            format!("unsupported shell `{}` in `env.shell`", *text),
                        )
                        .with_help(format!("use one of {}", list(&Shell::ACCEPTED))),
                    );
                    None
                }
            }
        });
        let variables = self.text_map(f.get("variables"), "env.variables");
        for (name, value) in &variables {
            if name.starts_with("CODEBUILD_") {
                self.push(
                    Diagnostic::warning(
                        Code::ReservedVariable,
                        value.span,
                        format!("`{name}` is reserved for CodeBuild's own variables"),
                    )
                    .with_note("the runner's value wins for the variables it sets"),
                );
            }
        }
        let parameter_store = self
            .text_map(f.get("parameter-store"), "env.parameter-store")
            .into_iter()
            .map(|(k, v)| (k, Spanned::new(v.value.0, v.span)))
            .collect();
        let secrets_manager = self
            .text_map(f.get("secrets-manager"), "env.secrets-manager")
            .into_iter()
            .map(|(k, v)| (k, Spanned::new(SecretRef::parse(v.value.0.trim()), v.span)))
            .collect();
        Env {
            shell,
            variables,
            parameter_store,
            secrets_manager,
            exported_variables: self.strings(
                f.get("exported-variables"),
                "env.exported-variables",
                false,
            ),
            git_credential_helper: self
                .yes_no(f.get("git-credential-helper"), "env.git-credential-helper"),
        }
    }

    fn phases(&mut self, node: &Node, span: Option<Span>) -> Phases {
        let mut phases = Phases {
            span,
            ..Phases::default()
        };
        let entries = match &node.kind {
            Kind::Map(entries) => entries.as_slice(),
            Kind::Null => &[],
            _ => {
                self.wrong_type(node, "phases", "a mapping of phase names to phases");
                &[]
            }
        };
        let mut seen: IndexMap<PhaseName, Span> = IndexMap::new();
        for (key, value) in entries {
            let Some(text) = key.as_scalar() else {
                self.wrong_type(key, "a phase name", "a string");
                continue;
            };
            let Some(name) = PhaseName::parse(text) else {
                let mut diagnostic = Diagnostic::error(
                    Code::InvalidPhaseName,
                    key.span,
                    format!(
                        "Invalid buildspec phase name: {text}. Expecting: build,install,post_build,pre_build"
                    ),
                );
                if TOP_KEYS.contains(&text) {
                    diagnostic = diagnostic.with_help(format!(
                        "`{text}` is a top-level key: unindent it to the level of `phases:`"
                    ));
                } else if let Some(s) =
                    suggest(text, &["install", "pre_build", "build", "post_build"])
                {
                    diagnostic = diagnostic.with_help(format!("did you mean `{s}`?"));
                } else {
                    diagnostic = diagnostic.with_help(
                        "move its commands into one of the four phases (a deploy step usually goes in `post_build`)",
                    );
                }
                self.push(diagnostic);
                continue;
            };
            if name.key() != text {
                self.push(
                    Diagnostic::warning(
                        Code::KeyCase,
                        key.span,
                        format!("phase `{text}` is read as `{}`", name.key()),
                    )
                    .with_help(format!("write it `{}`", name.key())),
                );
            }
            if let Some(first) = seen.get(&name) {
                self.push(
                    Diagnostic::warning(
                        Code::DuplicateKey,
                        key.span,
                        format!("duplicate phase `{text}`: the last one wins"),
                    )
                    .with_note(format!(
                        "the first `{}` is on line {}, and is ignored",
                        name.key(),
                        first.line
                    )),
                );
            }
            seen.insert(name, key.span);
            let phase = self.phase(value, name, key.span);
            *phases.slot(name) = Some(phase);
        }
        phases
    }

    fn phase(&mut self, node: &Node, name: PhaseName, span: Span) -> Phase {
        let path = format!("phases.{}", name.key());
        let f = self.fields(node, &path, PHASE_KEYS, &|suggested| match suggested {
            "commands" => Some("so this phase runs no commands".to_owned()),
            "finally" => Some("so this phase has no `finally` block".to_owned()),
            "on-failure" => Some("so the default failure handling applies".to_owned()),
            _ => None,
        });
        let on_failure = f.get("on-failure").and_then(|n| {
            let text = self.string(Some(n), &format!("{path}.on-failure"))?;
            self.on_failure(&text)
        });
        let runtime_versions = self.text_map(
            f.get("runtime-versions"),
            &format!("{path}.runtime-versions"),
        );
        if let Some(key_span) = f.key_span("runtime-versions")
            && name != PhaseName::Install
        {
            self.push(
                Diagnostic::warning(
                    Code::IgnoredKey,
                    key_span,
                    format!(
                        "`runtime-versions` in `{path}` is ignored: it belongs to the install phase"
                    ),
                )
                .with_help("move it under `phases.install`"),
            );
        }
        for (runtime, version) in &runtime_versions {
            if !KNOWN_RUNTIMES.contains(&runtime.as_str()) {
                let mut diagnostic = Diagnostic::warning(
                    Code::UnknownRuntime,
                    version.span,
                    format!("unknown runtime `{runtime}` in `runtime-versions`"),
                )
                .with_note("the local runner installs no runtimes; it uses what the machine has");
                if let Some(s) = suggest(runtime, KNOWN_RUNTIMES) {
                    diagnostic = diagnostic.with_help(format!("did you mean `{s}`?"));
                }
                self.push(diagnostic);
            }
        }
        Phase {
            run_as: self.string(f.get("run-as"), &format!("{path}.run-as")),
            on_failure,
            runtime_versions,
            commands: self.commands(f.get("commands"), &format!("{path}.commands"), "Commands"),
            finally: self.commands(f.get("finally"), &format!("{path}.finally"), "Finally"),
            span,
        }
    }

    fn on_failure(&mut self, text: &Spanned<String>) -> Option<Spanned<OnFailure>> {
        let value = text.trim();
        let help =
            "use ABORT, CONTINUE, RETRY, RETRY-<count>, RETRY-<regex> or RETRY-<count>-<regex>";
        let Some(parsed) = OnFailure::parse(value) else {
            let mut diagnostic = Diagnostic::error(
                Code::InvalidValue,
                text.span,
                format!("invalid `on-failure` value `{value}`"),
            )
            .with_help(help);
            if ["ABORT", "CONTINUE", "RETRY"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(value))
            {
                diagnostic =
                    diagnostic.with_note("the value is case-sensitive: write it in capitals");
            }
            self.push(diagnostic);
            return None;
        };
        if let OnFailure::Retry { count, pattern } = &parsed {
            if *count > OnFailure::MAX_RETRIES {
                self.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        text.span,
                        format!(
                            "`on-failure` retries a phase at most {} times, not {count}",
                            OnFailure::MAX_RETRIES
                        ),
                    )
                    .with_help(help),
                );
                return None;
            }
            if let Some(pattern) = pattern
                && let Err(error) = regex::Regex::new(pattern)
            {
                let reason = error.to_string();
                let reason = reason.lines().last().unwrap_or("").trim();
                let reason = reason.strip_prefix("error: ").unwrap_or(reason).to_owned();
                self.push(Diagnostic::error(
                    Code::InvalidValue,
                    text.span,
                    format!(
                        "the `on-failure` retry pattern `{pattern}` is not a valid regex: {reason}"
                    ),
                ));
                return None;
            }
        }
        Some(Spanned::new(parsed, text.span))
    }

    fn reports(&mut self, node: &Node) -> IndexMap<String, ReportGroup> {
        let mut reports = IndexMap::new();
        let entries = match &node.kind {
            Kind::Map(entries) => entries.as_slice(),
            Kind::Null => &[],
            _ => {
                self.wrong_type(
                    node,
                    "reports",
                    "a mapping of report group names to report groups",
                );
                &[]
            }
        };
        for (key, value) in entries {
            let Some(name) = key.as_scalar() else {
                self.wrong_type(key, "a report group name", "a string");
                continue;
            };
            let path = format!("reports.{name}");
            let f = self.fields(value, &path, REPORT_KEYS, &|_| None);
            if f.get("files").is_none() {
                self.push(
                    Diagnostic::error(
                        Code::MissingKey,
                        key.span,
                        format!("report group `{name}` has no `files`"),
                    )
                    .with_help(
                        "add `files:` with the report files to collect, e.g. `- 'reports/*.xml'`",
                    ),
                );
            }
            let file_format = f.get("file-format").and_then(|n| {
                let text = self.string(Some(n), &format!("{path}.file-format"))?;
                match ReportFormat::parse(&text) {
                    Some(format) => Some(Spanned::new(format, text.span)),
                    None => {
                        let names: Vec<&str> = ReportFormat::ALL.iter().map(|(n, _)| *n).collect();
                        self.push(
                            Diagnostic::error(
                                Code::InvalidValue,
                                text.span,
                                format!("`{}` is not a report file format", text.trim()),
                            )
                            .with_note(format!("test reports: {}", names[..6].join(", ")))
                            .with_note(format!("coverage reports: {}", names[6..].join(", "))),
                        );
                        None
                    }
                }
            });
            let group = ReportGroup {
                files: PathList(self.strings(f.get("files"), &format!("{path}.files"), true)),
                base_directory: self
                    .string(f.get("base-directory"), &format!("{path}.base-directory")),
                discard_paths: self
                    .yes_no(f.get("discard-paths"), &format!("{path}.discard-paths")),
                file_format,
            };
            reports.insert(name.to_owned(), group);
        }
        reports
    }

    fn artifact_set(&mut self, f: &Fields<'_>, path: &str) -> ArtifactSet {
        ArtifactSet {
            files: PathList(self.strings(f.get("files"), &format!("{path}.files"), true)),
            name: self.string(f.get("name"), &format!("{path}.name")),
            discard_paths: self.yes_no(f.get("discard-paths"), &format!("{path}.discard-paths")),
            base_directory: self.string(f.get("base-directory"), &format!("{path}.base-directory")),
            exclude_paths: PathList(self.strings(
                f.get("exclude-paths"),
                &format!("{path}.exclude-paths"),
                true,
            )),
            enable_symlinks: self
                .yes_no(f.get("enable-symlinks"), &format!("{path}.enable-symlinks")),
            s3_prefix: self.string(f.get("s3-prefix"), &format!("{path}.s3-prefix")),
        }
    }

    fn artifacts(&mut self, node: &Node, key_span: Span) -> Artifacts {
        let f = self.fields(node, "artifacts", ARTIFACTS_KEYS, &|suggested| {
            (suggested == "files").then(|| "so the primary artifact has no files".to_owned())
        });
        if f.get("files").is_none() {
            self.push(
                Diagnostic::error(
                    Code::MissingKey,
                    key_span,
                    "no definition for primary artifacts in buildspec",
                )
                .with_note(
                    "`artifacts.files` is required, even when only secondary artifacts are used",
                )
                .with_help("add `files:` under `artifacts`, e.g. `- '**/*'`"),
            );
        }
        let primary = self.artifact_set(&f, "artifacts");
        let mut secondary = IndexMap::new();
        if let Some(node) = f.get("secondary-artifacts") {
            let entries = match &node.kind {
                Kind::Map(entries) => entries.as_slice(),
                Kind::Null => &[],
                _ => {
                    self.wrong_type(
                        node,
                        "artifacts.secondary-artifacts",
                        "a mapping of identifiers to artifact sets",
                    );
                    &[]
                }
            };
            for (key, value) in entries {
                let Some(id) = key.as_scalar() else {
                    self.wrong_type(key, "an artifact identifier", "a string");
                    continue;
                };
                let path = format!("artifacts.secondary-artifacts.{id}");
                let sf = self.fields(value, &path, ARTIFACT_SET_KEYS, &|_| None);
                if sf.get("files").is_none() {
                    self.push(Diagnostic::error(
                        Code::MissingKey,
                        key.span,
                        format!("secondary artifact `{id}` has no `files`"),
                    ));
                }
                let set = self.artifact_set(&sf, &path);
                secondary.insert(id.to_owned(), set);
            }
        }
        Artifacts {
            files: primary.files,
            name: primary.name,
            discard_paths: primary.discard_paths,
            base_directory: primary.base_directory,
            exclude_paths: primary.exclude_paths,
            enable_symlinks: primary.enable_symlinks,
            s3_prefix: primary.s3_prefix,
            secondary_artifacts: secondary,
        }
    }

    fn cache(&mut self, node: &Node) -> Cache {
        let f = self.fields(node, "cache", CACHE_KEYS, &|_| None);
        let action = f.get("action").and_then(|n| {
            let text = self.string(Some(n), "cache.action")?;
            match text.trim() {
                "restore" => Some(Spanned::new(CacheAction::Restore, text.span)),
                "save" => Some(Spanned::new(CacheAction::Save, text.span)),
                other => {
                    self.push(
                        Diagnostic::error(
                            Code::InvalidValue,
                            text.span,
                            format!("invalid `cache.action` `{other}`"),
                        )
                        .with_help("use `restore` or `save`, or leave it out to do both"),
                    );
                    None
                }
            }
        });
        let cache = Cache {
            paths: PathList(self.strings(f.get("paths"), "cache.paths", true)),
            key: self.string(f.get("key"), "cache.key"),
            fallback_keys: self.strings(f.get("fallback-keys"), "cache.fallback-keys", true),
            action,
        };
        if cache.key.is_none()
            && let Some(span) = f.key_span("fallback-keys")
        {
            self.push(Diagnostic::warning(
                Code::IgnoredKey,
                span,
                "`cache.fallback-keys` is ignored without `cache.key`",
            ));
        }
        cache
    }

    fn batch(&mut self, node: &Node, key_span: Span) -> Batch {
        let f = self.fields(node, "batch", BATCH_KEYS, &|_| None);
        Batch {
            fast_fail: self.yes_no(f.get("fast-fail"), "batch.fast-fail"),
            build_list: f.get("build-list").map(|n| self.tasks(n, "batch.build-list", false)),
            build_matrix: f.get("build-matrix").map(|n| self.matrix(n)),
            build_graph: f.get("build-graph").map(|n| self.tasks(n, "batch.build-graph", true)),
            build_fanout: f.get("build-fanout").map(|n| {
                let ff = self.fields(n, "batch.build-fanout", FANOUT_KEYS, &|_| None);
                let parallelism = match ff.get("parallelism") {
                    Some(p) => {
                        let text = p.as_scalar().unwrap_or("");
                        match text.trim().parse::<u32>() {
                            Ok(value) if value >= 1 => Spanned::new(value, p.span),
                            _ => {
                                self.push(Diagnostic::error(
                                    Code::InvalidValue,
                                    p.span,
                                    format!("`batch.build-fanout.parallelism` must be a whole number from 1, found `{text}`"),
                                ));
                                Spanned::new(1, p.span)
                            }
                        }
                    }
                    None => {
                        self.push(Diagnostic::error(
                            Code::MissingKey,
                            n.span,
                            "`batch.build-fanout` needs `parallelism`",
                        ));
                        Spanned::new(1, n.span)
                    }
                };
                BuildFanout {
                    parallelism,
                    ignore_failure: self.yes_no(ff.get("ignore-failure"), "batch.build-fanout.ignore-failure"),
                }
            }),
            span: key_span,
        }
    }

    fn batch_env(&mut self, node: Option<&Node>, path: &str) -> BatchEnv {
        let Some(node) = node else {
            return BatchEnv::default();
        };
        let f = self.fields(node, path, BATCH_ENV_KEYS, &|_| None);
        BatchEnv {
            compute_type: self.string(f.get("compute-type"), &format!("{path}.compute-type")),
            image: self.string(f.get("image"), &format!("{path}.image")),
            privileged_mode: self
                .yes_no(f.get("privileged-mode"), &format!("{path}.privileged-mode")),
            type_: self.string(f.get("type"), &format!("{path}.type")),
            fleet: self.string(f.get("fleet"), &format!("{path}.fleet")),
            variables: self.text_map(f.get("variables"), &format!("{path}.variables")),
        }
    }

    fn tasks(&mut self, node: &Node, path: &str, graph: bool) -> Vec<BatchTask> {
        let items = match &node.kind {
            Kind::Seq(items) => items.as_slice(),
            Kind::Null => &[],
            _ => {
                self.wrong_type(node, path, "a list of builds");
                &[]
            }
        };
        let mut tasks = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let f = self.fields(item, &item_path, TASK_KEYS, &|_| None);
            let Some(identifier) =
                self.string(f.get("identifier"), &format!("{item_path}.identifier"))
            else {
                self.push(
                    Diagnostic::error(
                        Code::MissingKey,
                        item.span,
                        format!("`{item_path}` has no `identifier`"),
                    )
                    .with_help("every build of a batch needs a unique `identifier`"),
                );
                continue;
            };
            let depend_on =
                self.strings(f.get("depend-on"), &format!("{item_path}.depend-on"), true);
            if !graph && let Some(span) = f.key_span("depend-on") {
                self.push(
                    Diagnostic::warning(
                        Code::IgnoredKey,
                        span,
                        "`depend-on` is ignored in a build-list: its builds all start at once",
                    )
                    .with_help("use `build-graph` for builds that depend on others"),
                );
            }
            tasks.push(BatchTask {
                identifier,
                buildspec: self.string(f.get("buildspec"), &format!("{item_path}.buildspec")),
                env: self.batch_env(f.get("env"), &format!("{item_path}.env")),
                depend_on,
                ignore_failure: self.yes_no(
                    f.get("ignore-failure"),
                    &format!("{item_path}.ignore-failure"),
                ),
                debug_session: self.yes_no(
                    f.get("debug-session"),
                    &format!("{item_path}.debug-session"),
                ),
            });
        }
        tasks
    }

    fn matrix(&mut self, node: &Node) -> BuildMatrix {
        let f = self.fields(node, "batch.build-matrix", MATRIX_KEYS, &|_| None);
        let static_ = match f.get("static") {
            Some(n) => {
                let sf = self.fields(n, "batch.build-matrix.static", MATRIX_STATIC_KEYS, &|_| {
                    None
                });
                MatrixStatic {
                    ignore_failure: self.yes_no(
                        sf.get("ignore-failure"),
                        "batch.build-matrix.static.ignore-failure",
                    ),
                    env: self.batch_env(sf.get("env"), "batch.build-matrix.static.env"),
                    debug_session: self.yes_no(
                        sf.get("debug-session"),
                        "batch.build-matrix.static.debug-session",
                    ),
                }
            }
            None => MatrixStatic::default(),
        };
        let dynamic = match f.get("dynamic") {
            Some(n) => {
                let path = "batch.build-matrix.dynamic";
                let df = self.fields(n, path, MATRIX_DYNAMIC_KEYS, &|_| None);
                let env = match df.get("env") {
                    Some(e) => {
                        let ef = self.fields(
                            e,
                            "batch.build-matrix.dynamic.env",
                            MATRIX_DYNAMIC_ENV_KEYS,
                            &|_| None,
                        );
                        let mut variables = IndexMap::new();
                        if let Some(vars) = ef.get("variables") {
                            let entries = match &vars.kind {
                                Kind::Map(entries) => entries.as_slice(),
                                Kind::Null => &[],
                                _ => {
                                    self.wrong_type(
                                        vars,
                                        "batch.build-matrix.dynamic.env.variables",
                                        "a mapping of names to lists of values",
                                    );
                                    &[]
                                }
                            };
                            for (key, values) in entries {
                                let Some(name) = key.as_scalar() else {
                                    self.wrong_type(key, "a variable name", "a string");
                                    continue;
                                };
                                let vpath =
                                    format!("batch.build-matrix.dynamic.env.variables.{name}");
                                let list = match &values.kind {
                                    Kind::Seq(items) => {
                                        items.iter().map(|i| self.text(i, &vpath)).collect()
                                    }
                                    _ => vec![self.text(values, &vpath)],
                                };
                                variables.insert(name.to_owned(), list);
                            }
                        }
                        MatrixDynamicEnv {
                            compute_type: self.strings(
                                ef.get("compute-type"),
                                "batch.build-matrix.dynamic.env.compute-type",
                                true,
                            ),
                            image: self.strings(
                                ef.get("image"),
                                "batch.build-matrix.dynamic.env.image",
                                true,
                            ),
                            variables,
                        }
                    }
                    None => MatrixDynamicEnv::default(),
                };
                MatrixDynamic {
                    buildspec: self.strings(
                        df.get("buildspec"),
                        "batch.build-matrix.dynamic.buildspec",
                        true,
                    ),
                    env,
                }
            }
            None => MatrixDynamic::default(),
        };
        BuildMatrix { static_, dynamic }
    }
}

/// `a, b or c`, each in backticks.
pub(crate) fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}
