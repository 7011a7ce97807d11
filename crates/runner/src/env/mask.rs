//! Secrets replaced by `***` in everything the runner writes.
//!
//! Output is masked as a stream, before it is split into lines: [`MaskedStream`] holds back the
//! last bytes of each read that could begin a secret, so a value split across two writes (or two
//! reads) is whole again when it is searched. One search per read keeps the cost of masking
//! small next to the cost of moving the bytes. A secret of several lines is masked line by line,
//! as each of its lines may appear on its own (and no match then spans a newline).

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, Match, MatchKind, packed};

/// What replaces a secret.
pub const MASK: &str = "***";

/// Finds secrets and replaces them.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    finder: Option<Finder>,
    longest: usize,
    /// The values searched for (each line of a multi-line value on its own).
    patterns: Vec<String>,
}

/// The search for secrets. Secrets often share a start (`secret-…`, `ghp_…`, `AKIA…`): a
/// plain automaton's prefilter then stops at every occurrence of that first byte, while the
/// packed SIMD searcher (Teddy) looks at the first bytes together. It takes up to a few dozen
/// patterns on CPUs that have the instructions; the automaton takes the rest.
#[derive(Debug, Clone)]
enum Finder {
    Packed(packed::Searcher),
    Automaton(AhoCorasick),
}

enum Matches<'a, 'h> {
    Packed(packed::FindIter<'a, 'h>),
    Automaton(aho_corasick::FindIter<'a, 'h>),
}

impl Iterator for Matches<'_, '_> {
    type Item = Match;

    fn next(&mut self) -> Option<Match> {
        match self {
            Matches::Packed(m) => m.next(),
            Matches::Automaton(m) => m.next(),
        }
    }
}

impl Finder {
    fn new(patterns: &[String]) -> Option<Finder> {
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostLongest)
            .builder()
            .extend(patterns)
            .build();
        if let Some(searcher) = packed {
            return Some(Finder::Packed(searcher));
        }
        // Longest first, so that a secret that contains another is masked whole.
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns)
            .ok()
            .map(Finder::Automaton)
    }

    fn find_iter<'a, 'h>(&'a self, text: &'h [u8]) -> Matches<'a, 'h> {
        match self {
            Finder::Packed(s) => Matches::Packed(s.find_iter(text)),
            Finder::Automaton(a) => Matches::Automaton(a.find_iter(text)),
        }
    }
}

/// Values shorter than this are refused as values to mask: they would hide common text (`e` in
/// every word), the runner's own lines included, and protect nothing.
pub const MIN_CHARS: usize = 4;

/// A value to mask as given (`--mask`, a line of `--mask-file`), refused when too short to be a
/// secret.
pub fn check_value(text: &str) -> Result<String, String> {
    let chars = text.chars().count();
    if chars < MIN_CHARS {
        return Err(format!(
            "a value to mask must have at least {MIN_CHARS} characters (this one has {chars}): \
             a shorter one would be masked inside common words and the runner's own lines; give \
             the whole secret"
        ));
    }
    Ok(text.to_owned())
}

/// The AWS credentials CodeBuild hides in its logs.
pub const AWS_CREDENTIALS: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// The values known to be secret before a build reads its buildspec: the `--mask` values, and
/// the AWS credentials of every layer of its environment (`--env`, `--env-file`, the inherited
/// one), however they were given. A record, a log or a batch record never holds them in clear,
/// whatever the moment a build fails.
pub fn known_secrets(layers: &crate::env::Layers, mask: &[String]) -> Vec<String> {
    let credentials = layers
        .overrides
        .iter()
        .chain(&layers.env_file)
        .chain(&layers.inherited)
        .filter(|(name, _)| AWS_CREDENTIALS.contains(&name.as_str()))
        .map(|(_, value)| value.clone());
    mask.iter().cloned().chain(credentials).collect()
}

impl Masker {
    /// A masker for these values. Empty values (and empty lines of multi-line values) are
    /// ignored: they would match everywhere.
    pub fn new<I, S>(values: I) -> Masker
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<String> = Vec::new();
        for value in values {
            let value = value.as_ref();
            let pieces =
                std::iter::once(value).chain(value.lines().filter(|_| value.contains('\n')));
            for piece in pieces {
                let piece = piece.trim_end_matches('\r');
                if !piece.is_empty()
                    && !piece.contains('\n')
                    && !patterns.iter().any(|p| p == piece)
                {
                    patterns.push(piece.to_owned());
                }
            }
        }
        if patterns.is_empty() {
            return Masker::default();
        }
        let longest = patterns.iter().map(String::len).max().unwrap_or(0);
        Masker {
            finder: Finder::new(&patterns),
            longest,
            patterns,
        }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.finder.is_none()
    }

    /// The length of the longest secret (line), in bytes.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// Masks bytes; borrows them when nothing matched. One pass: the common case, a line
    /// with no secret, costs a search and nothing else.
    pub fn bytes<'a>(&self, text: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(finder) = &self.finder else {
            return Cow::Borrowed(text);
        };
        let mut matches = finder.find_iter(text).peekable();
        if matches.peek().is_none() {
            return Cow::Borrowed(text);
        }
        let mut out = Vec::with_capacity(text.len());
        let mut last = 0;
        for m in matches {
            out.extend_from_slice(&text[last..m.start()]);
            out.extend_from_slice(MASK.as_bytes());
            last = m.end();
        }
        out.extend_from_slice(&text[last..]);
        Cow::Owned(out)
    }

    /// Masks text; borrows it when nothing matched.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // Secrets are whole strings and the mask is ASCII, so the result is UTF-8 again.
            Cow::Owned(bytes) => Cow::Owned(
                String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }
}

/// Masks a byte stream that arrives in pieces.
#[derive(Debug, Default)]
pub struct MaskedStream {
    /// The bytes held back from the last piece, then the new piece: one buffer, reused.
    buf: Vec<u8>,
}

impl MaskedStream {
    /// Masks what can be masked of `chunk` (with what was held back before) and passes it to
    /// `out`, in pieces; holds back the last bytes that could still be the start of a secret.
    pub fn feed(&mut self, masker: &Masker, chunk: &[u8], out: &mut impl FnMut(&[u8])) {
        let Some(finder) = &masker.finder else {
            out(chunk);
            return;
        };
        // A match starting at `s` ends by `s + reach`.
        let reach = masker.longest.saturating_sub(1);
        if self.buf.is_empty() {
            self.scan(masker, chunk, out);
            return;
        }
        if chunk.len() < reach {
            // Too little to settle the seam: take it all together.
            self.buf.extend_from_slice(chunk);
            let joined = std::mem::take(&mut self.buf);
            self.scan(masker, &joined, out);
            return;
        }
        // The seam: the bytes held back and the start of the chunk, which holds every match
        // that starts in the held-back part. The rest of the chunk is searched where it lies,
        // without copying it.
        let carried = self.buf.len();
        self.buf.extend_from_slice(&chunk[..reach]);
        let mut last = 0;
        let mut done = carried;
        for m in finder.find_iter(&self.buf) {
            if m.start() >= carried {
                break;
            }
            if m.start() > last {
                out(&self.buf[last..m.start()]);
            }
            out(MASK.as_bytes());
            last = m.end();
            done = done.max(m.end());
        }
        if done > last {
            out(&self.buf[last..done]);
        }
        self.buf.clear();
        self.scan(masker, &chunk[done - carried..], out);
    }

    /// Searches `text`, passes on what is settled and holds back the rest.
    fn scan(&mut self, masker: &Masker, text: &[u8], out: &mut impl FnMut(&[u8])) {
        let Some(finder) = &masker.finder else {
            out(text);
            return;
        };
        // A match that starts before `cut` ends within `text`: its bytes are all here. No
        // secret spans a newline, so nothing before the last newline is held back: a complete
        // line is never delayed.
        let after_newline = memchr::memrchr(b'\n', text).map_or(0, |i| i + 1);
        let mut cut = text
            .len()
            .saturating_sub(masker.longest.saturating_sub(1))
            .max(after_newline);
        let mut last = 0;
        for m in finder.find_iter(text) {
            if m.start() >= cut {
                break;
            }
            if m.start() > last {
                out(&text[last..m.start()]);
            }
            out(MASK.as_bytes());
            last = m.end();
            cut = cut.max(m.end());
        }
        if cut > last {
            out(&text[last..cut]);
        }
        self.buf.extend_from_slice(&text[cut..]);
    }

    /// Passes on what was held back but cannot begin a secret, and keeps the rest: the end of
    /// a command. A value one command starts to print and the next one finishes (`printf
    /// 'tok-12'`, then `printf '34-abcd\n'`) is still masked whole, in either session, while
    /// output that cannot be a secret's start is not delayed.
    pub fn settle(&mut self, masker: &Masker, out: &mut impl FnMut(&[u8])) {
        if self.buf.is_empty() {
            return;
        }
        let keep_from = (0..self.buf.len())
            .find(|&i| {
                let tail = &self.buf[i..];
                masker
                    .patterns
                    .iter()
                    .any(|p| p.len() > tail.len() && p.as_bytes().starts_with(tail))
            })
            .unwrap_or(self.buf.len());
        if keep_from > 0 {
            out(&masker.bytes(&self.buf[..keep_from]));
            self.buf.drain(..keep_from);
        }
    }

    /// Passes on what was held back (at the end of the build).
    pub fn flush(&mut self, masker: &Masker, out: &mut impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            out(&masker.bytes(&self.buf));
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::build::output::LineBuffer;

    #[test]
    fn masks_every_occurrence_and_multi_line_secrets_line_by_line() {
        let masker = Masker::new([
            "hunter2",
            "-----BEGIN KEY-----\nAAAA1111\n-----END KEY-----",
            "",
        ]);
        assert_eq!(masker.text("pw=hunter2;hunter2hunter2"), "pw=***;******");
        assert_eq!(masker.text("AAAA1111"), "***");
        assert_eq!(masker.text("nothing here"), "nothing here");
        assert!(matches!(masker.text("nothing here"), Cow::Borrowed(_)));
        assert!(Masker::new([""]).is_empty());
    }

    #[test]
    fn the_longer_of_two_overlapping_secrets_wins() {
        let masker = Masker::new(["abc", "abcdef"]);
        assert_eq!(masker.text("xabcdefx abc"), "x***x ***");
    }

    /// Feeds `text` in `cuts` pieces through the line splitter and the masker, as the engine does.
    fn streamed(masker: &Masker, text: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut stream = MaskedStream::default();
        let mut lines = LineBuffer::default();
        let mut out = Vec::new();
        let mut emit = |line: &[u8]| {
            out.extend_from_slice(line);
            out.push(b'\n');
        };
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, text.len());
            stream.feed(masker, &text[start..cut], &mut |b| lines.feed(b, &mut emit));
            start = cut;
        }
        stream.feed(masker, &text[start..], &mut |b| lines.feed(b, &mut emit));
        stream.flush(masker, &mut |b| lines.feed(b, &mut emit));
        lines.flush(&mut emit);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Masking the stream, however it is cut into reads, gives what masking the whole text
        /// at once gives.
        #[test]
        fn the_masked_stream_equals_the_masked_text(
            secrets in proptest::collection::vec("[a-c]{2,6}", 1..4),
            words in proptest::collection::vec(prop_oneof!["[a-c ]{0,8}", Just("\n".to_owned())], 0..40),
            cuts in proptest::collection::vec(0usize..400, 0..12),
        ) {
            let masker = Masker::new(&secrets);
            let text: String = words.concat();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let streamed = streamed(&masker, text.as_bytes(), &cuts);
            let mut whole = Vec::new();
            for line in text.split_terminator('\n') {
                whole.extend_from_slice(masker.text(line).as_bytes());
                whole.push(b'\n');
            }
            prop_assert_eq!(String::from_utf8_lossy(&streamed), String::from_utf8_lossy(&whole));
        }
    }

    #[test]
    fn complete_lines_are_not_held_back() {
        let masker = Masker::new(["a-rather-long-secret-value"]);
        let mut stream = MaskedStream::default();
        let mut out = Vec::new();
        stream.feed(&masker, b"hello\nwor", &mut |b| out.extend_from_slice(b));
        assert_eq!(out, b"hello\n", "the complete line is passed on at once");
    }

    #[test]
    fn a_secret_across_the_cut_of_an_overlong_line_is_still_masked() {
        let secret = "s3cr3t-value";
        let masker = Masker::new([secret]);
        // Put the secret right across the point where the overlong line is cut.
        let mut text = vec![b'x'; crate::build::output::MAX_LINE - 5];
        text.extend_from_slice(secret.as_bytes());
        text.extend_from_slice(&[b'y'; 100]);
        let out = streamed(&masker, &text, &[]);
        assert!(
            !out.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret leaked"
        );
        assert_eq!(out.iter().filter(|b| **b == b'*').count(), 3);
    }
}
