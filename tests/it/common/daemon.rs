//! A `subsync watch` process under test: started against the emulator, its probes and
//! metrics read over HTTP, its log kept in a file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use subsync::emulator::Emulator;

use super::{KillOnDrop, Workspace};

/// A running `subsync watch`, killed if the test ends without stopping it.
pub struct Daemon {
    child: KillOnDrop,
    addr: String,
    log: PathBuf,
}

pub fn start(ws: &Workspace, emulator: &Emulator, path: &Path, extra: &[&str]) -> Daemon {
    start_at(ws, &emulator.url(), path, extra)
}

/// A daemon talking to the API at `url`.
pub fn start_at(ws: &Workspace, url: &str, path: &Path, extra: &[&str]) -> Daemon {
    start_with(ws, url, path, extra, |_| {})
}

/// A daemon whose open-file limit (soft and hard) is `limit`, as under `ulimit -n LIMIT`.
pub fn start_limited(
    ws: &Workspace,
    emulator: &Emulator,
    path: &Path,
    extra: &[&str],
    limit: u64,
) -> Daemon {
    start_with(ws, &emulator.url(), path, extra, |cmd| {
        super::limit_open_files(cmd, limit);
    })
}

fn start_with(
    ws: &Workspace,
    url: &str,
    path: &Path,
    extra: &[&str],
    adjust: impl FnOnce(&mut std::process::Command),
) -> Daemon {
    let log = ws.path().join(format!("daemon-{}.log", rand_suffix()));
    let mut args = vec![
        "watch",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--debounce",
        "100ms",
    ];
    args.extend_from_slice(extra);
    let mut command = ws.command(Some(url), &args);
    adjust(&mut command);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .rsplit("http://")
        .next()
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    Daemon {
        child: KillOnDrop(child),
        addr,
        log,
    }
}

fn rand_suffix() -> u32 {
    std::process::id() ^ (Instant::now().elapsed().subsec_nanos()) ^ rand_count()
}

fn rand_count() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

impl Daemon {
    /// GET `path`: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        self.get_within(path, Duration::from_secs(30))
    }

    /// GET `path`, failing the test unless the whole answer arrives within `limit`.
    pub fn get_within(&self, path: &str, limit: Duration) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(limit)).unwrap();
        stream.set_write_timeout(Some(limit)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .unwrap_or_else(|e| panic!("GET {path} not answered within {limit:?}: {e}"));
        let status = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// The address of its probes.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child.0
    }

    /// The metrics, parsed: (name with labels, value).
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        parse_openmetrics(&body)
    }

    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// A strict reading of the OpenMetrics text format: comments are HELP, TYPE, UNIT or EOF; every
/// sample is `name{labels} value`; the exposition ends with `# EOF`.
pub fn parse_openmetrics(text: &str) -> Vec<(String, f64)> {
    assert!(text.ends_with("# EOF\n"), "no EOF marker:\n{text}");
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let word = comment.split(' ').next().unwrap();
            assert!(
                ["HELP", "TYPE", "UNIT", "EOF"].contains(&word),
                "bad comment {line:?}"
            );
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let name_end = key.find('{').unwrap_or(key.len());
        let name = &key[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name in {line:?}"
        );
        if name_end < key.len() {
            assert!(key.ends_with('}'), "bad labels in {line:?}");
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.push((key.to_owned(), value));
    }
    samples
}

pub fn sigterm(child: &Child) {
    signal(child, "TERM");
}

/// Sends `kill -NAME` to `child`.
pub fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
