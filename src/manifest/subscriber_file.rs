//! Subscriber list files: one UserID a line, `#` comment lines, blank lines ignored; `.gz` files
//! are gunzipped while read.
//!
//! Only whole lines starting with `#` are comments: `#` is a legal UserID character. Reading is
//! bounded: the (inflated) size and each line's length are capped, and reading stops at the
//! first cap reached, so a gzip bomb or an endless file costs at most the cap. Entries are
//! handed to the caller one at a time, never gathered here.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::Limits;

/// A line that is not a valid UserID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadLine {
    pub(crate) line: u32,
    pub(crate) message: String,
}

/// Why reading stopped before the end of the file.
#[derive(Debug)]
pub(crate) enum Cutoff {
    /// The caller refused an entry (its set is full); the message says why.
    Refused {
        line: u32,
        message: String,
    },
    TooLarge {
        limit: u64,
    },
    LineTooLong {
        line: u32,
        limit: usize,
    },
    Io(io::Error),
}

impl Cutoff {
    /// The line the problem is on, when it is on one.
    pub(crate) fn line(&self) -> Option<u32> {
        match self {
            Cutoff::Refused { line, .. } | Cutoff::LineTooLong { line, .. } => Some(*line),
            Cutoff::TooLarge { .. } | Cutoff::Io(_) => None,
        }
    }

    /// The I/O error behind it, if one.
    pub(crate) fn io(&self) -> Option<&io::Error> {
        match self {
            Cutoff::Io(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn message(&self, gzip: bool) -> String {
        match self {
            Cutoff::Refused { message, .. } => message.clone(),
            Cutoff::TooLarge { limit } => format!(
                "{} more than {limit} bytes; split the list or raise --max-list-bytes (SUBSYNC_MAX_LIST_BYTES)",
                if gzip { "inflates to" } else { "holds" }
            ),
            Cutoff::LineTooLong { limit, .. } => format!(
                "line longer than {limit} bytes; a subscriber file holds one UserID a line (raise --max-line-bytes if this is intended)"
            ),
            Cutoff::Io(e) if gzip => format!("cannot be read as gzip: {e}"),
            Cutoff::Io(e) => format!("cannot be read: {e}"),
        }
    }
}

/// Reads an opened list file. `entry(id, line)` receives each valid UserID and may stop the
/// read; invalid lines are returned, the first `max_bad` of them in full and the rest counted.
pub(crate) fn read(
    file: File,
    path: &Path,
    limits: &Limits,
    max_bad: usize,
    entry: impl FnMut(&str, u32) -> Result<(), String>,
) -> Result<(Vec<BadLine>, usize), Cutoff> {
    let gzip = is_gzip(path);
    let raw: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    // One byte over the cap tells "exactly at the cap" from "over it".
    let mut reader = BufReader::with_capacity(1 << 16, raw.take(limits.max_list_bytes + 1));
    let mut lines = Lines {
        limits,
        max_bad,
        entry,
        bad: Vec::new(),
        bad_count: 0,
        total: 0,
        line_no: 0,
    };
    let mut buf = Vec::with_capacity(64);
    loop {
        // The whole lines in the reader's buffer are judged where they are, checked as text
        // at once; a line that straddles the buffer's end is gathered into `buf` first.
        let chunk = reader.fill_buf().map_err(Cutoff::Io)?;
        let whole = chunk.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole > 0 {
            let block = &chunk[..whole];
            match std::str::from_utf8(block) {
                Ok(text) => {
                    for line in text[..whole - 1].split('\n') {
                        lines.judge(line.as_bytes(), Ok(line))?;
                    }
                }
                Err(_) => {
                    for line in block[..whole - 1].split(|&b| b == b'\n') {
                        lines.judge(line, std::str::from_utf8(line))?;
                    }
                }
            }
            reader.consume(whole);
            continue;
        }
        buf.clear();
        let n = read_line(&mut reader, &mut buf, limits.max_line_bytes)
            .map_err(Cutoff::Io)?
            .ok_or(Cutoff::LineTooLong {
                line: lines.line_no + 1,
                limit: limits.max_line_bytes,
            })?;
        if n == 0 {
            return Ok((lines.bad, lines.bad_count));
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        lines.judge(line, std::str::from_utf8(line))?;
    }
}

/// What reading lines has found so far.
struct Lines<'l, F> {
    limits: &'l Limits,
    max_bad: usize,
    entry: F,
    bad: Vec<BadLine>,
    bad_count: usize,
    total: u64,
    line_no: u32,
}

impl<F: FnMut(&str, u32) -> Result<(), String>> Lines<'_, F> {
    /// Judges one line (without its `\n`; `text` is it as UTF-8, or why it is not).
    fn judge(
        &mut self,
        line: &[u8],
        text: Result<&str, std::str::Utf8Error>,
    ) -> Result<(), Cutoff> {
        // The newline itself does not count toward the line's length.
        if line.len() > self.limits.max_line_bytes {
            return Err(Cutoff::LineTooLong {
                line: self.line_no + 1,
                limit: self.limits.max_line_bytes,
            });
        }
        self.total += line.len() as u64 + 1;
        if self.total > self.limits.max_list_bytes {
            return Err(Cutoff::TooLarge {
                limit: self.limits.max_list_bytes,
            });
        }
        self.line_no += 1;
        let raw = line.strip_suffix(b"\r").unwrap_or(line);
        let outcome = match text.map(|t| t.strip_suffix('\r').unwrap_or(t)) {
            // Most lines are a bare UserID: judged here in one pass, as the rules below would.
            Ok(id) if is_plain_user_id(raw) => Ok(id),
            Err(_) => Err("not text (invalid UTF-8); is this really a subscriber list?".to_owned()),
            Ok(text) => {
                let id = text.trim();
                if id.is_empty() || id.starts_with('#') {
                    return Ok(());
                }
                super::check_user_id(id).map(|()| id)
            }
        };
        match outcome {
            Ok(id) => (self.entry)(id, self.line_no).map_err(|message| Cutoff::Refused {
                line: self.line_no,
                message,
            }),
            Err(message) => {
                self.bad_count += 1;
                if self.bad.len() < self.max_bad {
                    self.bad.push(BadLine {
                        line: self.line_no,
                        message,
                    });
                }
                Ok(())
            }
        }
    }
}

/// True for a line that is a UserID with nothing around it: 1 to 32 bytes of printable ASCII,
/// neither a space at either end nor `#` first (so not a comment, and nothing to trim).
fn is_plain_user_id(line: &[u8]) -> bool {
    let edge = |b: Option<&u8>| b.is_some_and(|b| (b'!'..=b'~').contains(b));
    line.len() <= 32
        && edge(line.first())
        && edge(line.last())
        && line.first() != Some(&b'#')
        && line.iter().all(|b| (b' '..=b'~').contains(b))
}

pub(crate) fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Reads one line (with its `\n`) into `buf`; returns its length, 0 at the end, or `None` once
/// it passes `max` bytes, without reading the rest of it.
fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<usize>> {
    let mut read = 0;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(Some(read));
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        // The newline itself does not count toward the line's length.
        let content = read + take - usize::from(done);
        if content > max {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..take]);
        reader.consume(take);
        read += take;
        if done {
            return Ok(Some(read));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn limits() -> Limits {
        Limits {
            max_list_bytes: 1000,
            max_line_bytes: 40,
            ..Limits::default()
        }
    }

    type Entries = (Vec<(String, u32)>, Vec<BadLine>);

    fn read_all(path: &Path, limits: &Limits) -> Result<Entries, Cutoff> {
        let mut ids = Vec::new();
        let file = File::open(path).unwrap();
        let (bad, _) = read(file, path, limits, 20, |id, line| {
            ids.push((id.to_owned(), line));
            Ok(())
        })?;
        Ok((ids, bad))
    }

    #[test]
    fn comments_blanks_and_crlf_are_skipped_and_bad_lines_numbered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.txt");
        std::fs::write(&path, "# header\n1\r\n\n  2  \n#3\nbad\tid\n4").unwrap();
        let (ids, bad) = read_all(&path, &limits()).unwrap();
        assert_eq!(
            ids,
            vec![
                ("1".to_owned(), 2),
                ("2".to_owned(), 4),
                ("4".to_owned(), 7)
            ]
        );
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 6);
    }

    #[test]
    fn gzip_files_are_decompressed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.txt.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"a\nb\n").unwrap();
        std::fs::write(&path, enc.finish().unwrap()).unwrap();
        let (ids, _) = read_all(&path, &limits()).unwrap();
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn a_corrupt_gzip_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.txt.gz");
        std::fs::write(&path, b"not gzip at all").unwrap();
        let err = read_all(&path, &limits()).unwrap_err();
        assert!(err.message(true).contains("gzip"));
    }

    #[test]
    fn inflating_stops_at_the_size_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.txt.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for _ in 0..100_000 {
            enc.write_all(b"same-id\n").unwrap();
        }
        std::fs::write(&path, enc.finish().unwrap()).unwrap();
        let err = read_all(&path, &limits()).unwrap_err();
        assert!(matches!(err, Cutoff::TooLarge { limit: 1000 }), "{err:?}");
    }

    #[test]
    fn a_line_past_the_cap_stops_the_read_without_reading_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.txt");
        std::fs::write(&path, format!("ok\n{}\n", "x".repeat(500))).unwrap();
        let err = read_all(&path, &limits()).unwrap_err();
        assert!(
            matches!(err, Cutoff::LineTooLong { line: 2, limit: 40 }),
            "{err:?}"
        );
        std::fs::write(&path, format!("{}\n", "y".repeat(40))).unwrap();
        assert!(
            read_all(&path, &limits()).is_ok(),
            "exactly at the cap is fine"
        );
    }

    #[test]
    fn the_caller_can_stop_the_read_at_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.txt");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        let file = File::open(&path).unwrap();
        let err = read(file, &path, &limits(), 20, |id, _| {
            if id == "b" {
                Err("full".into())
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(matches!(err, Cutoff::Refused { line: 2, .. }));
    }
}
