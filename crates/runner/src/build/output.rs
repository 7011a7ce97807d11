//! Splits a byte stream into lines with bounded memory.

/// Longest line kept whole. A longer run without a newline is passed on in pieces of this size,
/// so that memory stays bounded whatever a command writes.
pub const MAX_LINE: usize = 64 * 1024;

/// Bytes not yet ending in a newline, carried from one read to the next.
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Feeds a chunk; calls `line` for each complete line (without its `\n`), and for each
    /// [`MAX_LINE`]-sized piece of an overlong one.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], line: &mut impl FnMut(&[u8])) {
        while let Some(end) = memchr::memchr(b'\n', chunk) {
            if self.partial.is_empty() {
                line(&chunk[..end]);
            } else {
                self.partial.extend_from_slice(&chunk[..end]);
                line(&self.partial);
                self.partial.clear();
            }
            chunk = &chunk[end + 1..];
        }
        while self.partial.len() + chunk.len() >= MAX_LINE {
            let take = MAX_LINE - self.partial.len();
            self.partial.extend_from_slice(&chunk[..take]);
            line(&self.partial);
            self.partial.clear();
            chunk = &chunk[take..];
        }
        self.partial.extend_from_slice(chunk);
        if self.partial.capacity() > 2 * MAX_LINE {
            self.partial.shrink_to(MAX_LINE);
        }
    }

    /// Passes on what is left without a newline (at the end of a command or of the build).
    pub(crate) fn flush(&mut self, line: &mut impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            line(&self.partial);
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut buffer = LineBuffer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            buffer.feed(chunk, &mut |l| out.push(l.to_vec()));
        }
        buffer.flush(&mut |l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn splits_across_chunks() {
        assert_eq!(
            lines(&[b"a\nb", b"c\n", b"\n", b"tail"]),
            [
                b"a".to_vec(),
                b"bc".to_vec(),
                b"".to_vec(),
                b"tail".to_vec()
            ]
        );
    }

    #[test]
    fn overlong_lines_come_in_bounded_pieces() {
        let big = vec![b'x'; MAX_LINE * 2 + 10];
        let got = lines(&[&big[..100], &big[100..], b"\n"]);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|l| l.len() <= MAX_LINE));
        assert_eq!(got.iter().map(Vec::len).sum::<usize>(), big.len());
    }
}
