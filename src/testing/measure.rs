//! Running a command and measuring that one process: its wall time and its own peak resident
//! memory. The peak is the kernel's high-water mark of the process's own memory (`VmHWM`),
//! sampled every few milliseconds: `wait4`'s `ru_maxrss` would also count the parent's memory,
//! which a spawned child shares until it executes the program.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a measured run printed and cost.
#[derive(Debug)]
pub struct Measured {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
    /// Peak resident set size, in KiB.
    pub peak_kib: u64,
}

impl Measured {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub fn peak_mib(&self) -> f64 {
        self.peak_kib as f64 / 1024.0
    }
}

/// How often the high-water mark is read.
const SAMPLE: Duration = Duration::from_millis(5);

/// Runs `command` to its end (stdin closed), reading its output as it comes.
pub fn run_measured(command: &mut Command) -> std::io::Result<Measured> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Some(hwm) = high_water_kib(&status_file) {
            peak_kib = peak_kib.max(hwm);
        }
        match child.try_wait()? {
            Some(status) => break status,
            None => std::thread::sleep(SAMPLE),
        }
    };
    Ok(Measured {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: started.elapsed(),
        peak_kib,
    })
}

/// `VmHWM` of a process's status file, in KiB.
fn high_water_kib(status_file: &str) -> Option<u64> {
    let status = std::fs::read_to_string(status_file).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
