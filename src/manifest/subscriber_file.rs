//! Subscriber list files: one UserID a line, `#` comment lines, blank lines ignored; `.gz` files
//! are gunzipped while read.
//!
//! Only whole lines starting with `#` are comments: `#` is a legal UserID character.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

/// A list entry that is not a valid UserID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub message: String,
}

/// What a subscriber file holds.
#[derive(Debug, Default)]
pub struct SubscriberList {
    /// (UserID, 1-based line)
    pub entries: Vec<(String, u32)>,
    pub bad: Vec<BadLine>,
}

/// Reads `path`; only I/O and decompression failures are errors, bad lines are collected.
pub fn read(path: &Path) -> std::io::Result<SubscriberList> {
    let file = std::fs::File::open(path)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut list = SubscriberList::default();
    let mut buf = Vec::with_capacity(64);
    let mut line_no = 0u32;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(list);
        }
        line_no += 1;
        let raw = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(text) = std::str::from_utf8(raw) else {
            list.bad.push(BadLine {
                line: line_no as usize,
                message: "not text (invalid UTF-8); is this really a subscriber list?".into(),
            });
            continue;
        };
        let id = text.trim();
        if id.is_empty() || id.starts_with('#') {
            continue;
        }
        match super::check_user_id(id) {
            Ok(()) => list.entries.push((id.to_owned(), line_no)),
            Err(why) => list.bad.push(BadLine {
                line: line_no as usize,
                message: why,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn comments_blanks_and_crlf_are_skipped_and_bad_lines_numbered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.txt");
        std::fs::write(&path, "# header\n1\r\n\n  2  \n#3\nbad\tid\n").unwrap();
        let list = read(&path).unwrap();
        assert_eq!(list.entries, vec![("1".to_owned(), 2), ("2".to_owned(), 4)]);
        assert_eq!(list.bad.len(), 1);
        assert_eq!(list.bad[0].line, 6);
    }

    #[test]
    fn gzip_files_are_decompressed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.txt.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"a\nb\n").unwrap();
        std::fs::write(&path, enc.finish().unwrap()).unwrap();
        let ids: Vec<String> = read(&path)
            .unwrap()
            .entries
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn a_corrupt_gzip_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.txt.gz");
        std::fs::write(&path, b"not gzip at all").unwrap();
        assert!(read(&path).is_err());
    }
}
