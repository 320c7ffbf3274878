//! The rows of `COPY (SELECT subscriber ...) TO STDOUT` in text format: lines of one field
//! each, arriving in chunks that may end anywhere in a line, with COPY's backslash escapes.

use std::borrow::Cow;

/// What the server sent is not what COPY's text format promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum CopyError {
    #[error("the server sent a subscriber that is not UTF-8")]
    NotUtf8,
    #[error("the server sent a COPY field ending in a lone backslash")]
    LoneBackslash,
    #[error("the server sent a COPY row without its end")]
    Unterminated,
}

/// The one-column rows of `COPY ... TO STDOUT` (text format), from chunks that may end
/// anywhere in a line.
#[derive(Default)]
pub(super) struct CopyLines {
    partial: Vec<u8>,
}

impl CopyLines {
    /// Hands each whole line of `chunk` (and of what earlier chunks left) to `each`.
    pub(super) fn feed(
        &mut self,
        chunk: &[u8],
        each: &mut dyn FnMut(&str),
    ) -> Result<(), CopyError> {
        let mut start = 0;
        for end in chunk
            .iter()
            .enumerate()
            .filter_map(|(i, b)| (*b == b'\n').then_some(i))
        {
            let piece = &chunk[start..end];
            if self.partial.is_empty() {
                each(&copy_text(piece)?);
            } else {
                self.partial.extend_from_slice(piece);
                each(&copy_text(&self.partial)?);
                self.partial.clear();
            }
            start = end + 1;
        }
        self.partial.extend_from_slice(&chunk[start..]);
        Ok(())
    }

    /// Fails when the last line had no end.
    pub(super) fn finish(self) -> Result<(), CopyError> {
        if self.partial.is_empty() {
            Ok(())
        } else {
            Err(CopyError::Unterminated)
        }
    }
}

/// One field of COPY's text format: backslash escapes undone (`\\`, `\t`, `\n`, octal and
/// hex bytes, and any other escaped character as itself).
fn copy_text(field: &[u8]) -> Result<Cow<'_, str>, CopyError> {
    if !field.contains(&b'\\') {
        return std::str::from_utf8(field)
            .map(Cow::Borrowed)
            .map_err(|_| CopyError::NotUtf8);
    }
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(e) = bytes.next() else {
            return Err(CopyError::LoneBackslash);
        };
        let digit = |b: Option<&u8>, radix: u32| b.and_then(|b| (*b as char).to_digit(radix));
        out.push(match e {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match digit(bytes.peek(), 8) {
                        Some(d) => {
                            v = v * 8 + d;
                            bytes.next();
                        }
                        None => break,
                    }
                }
                (v & 0xff) as u8
            }
            b'x' if digit(bytes.peek(), 16).is_some() => {
                let mut v = 0;
                for _ in 0..2 {
                    match digit(bytes.peek(), 16) {
                        Some(d) => {
                            v = v * 16 + d;
                            bytes.next();
                        }
                        None => break,
                    }
                }
                v as u8
            }
            other => other,
        });
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| CopyError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut got = Vec::new();
        let mut lines = CopyLines::default();
        for c in chunks {
            lines.feed(c, &mut |s| got.push(s.to_owned())).unwrap();
        }
        lines.finish().unwrap();
        got
    }

    #[test]
    fn copy_rows_split_anywhere_come_out_whole() {
        let all: &[u8] = b"alice\nbob\ncarol\n";
        let whole = lines(&[all]);
        assert_eq!(whole, ["alice", "bob", "carol"]);
        for cut in 0..all.len() {
            assert_eq!(lines(&[&all[..cut], &all[cut..]]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn copy_escapes_are_undone() {
        assert_eq!(copy_text(br"a\\b\tc\x41\101\q").unwrap(), "a\\b\tcAAq");
        assert!(copy_text(b"tail\\").is_err());
    }

    #[test]
    fn a_row_without_its_end_is_an_error() {
        let mut l = CopyLines::default();
        l.feed(b"alice\nbo", &mut |_| {}).unwrap();
        assert!(l.finish().is_err());
    }
}
