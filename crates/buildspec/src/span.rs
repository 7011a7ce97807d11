//! Source locations of values in a buildspec.

use serde::Serialize;

/// Where a value stands in its source file.
///
/// Lines and columns are 1-based and count characters, as editors do. `offset` and `len` are byte
/// positions in the source text, used to underline the value in diagnostics; `len` is 0 for
/// collections, whose extent the parser does not report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Span {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// Byte offset of the value's first character.
    #[serde(skip)]
    pub offset: usize,
    /// Length of the value in bytes; 0 when unknown.
    #[serde(skip)]
    pub len: usize,
}

impl Span {
    /// A span for a value with no location (a default, or a value the runner made).
    pub const NONE: Span = Span {
        line: 0,
        column: 0,
        offset: 0,
        len: 0,
    };

    /// Whether this span points at real source text.
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

/// A value with the location it was read from.
///
/// It serializes as the bare value: the plan's JSON form carries locations only where a user needs
/// them (commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Pairs a value with its location.
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Serialize> Serialize for Spanned<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}
