//! Shared test helpers: an in-process emulator on 127.0.0.1:0, manifest writers, and a runner
//! for the `subsync` binary with credentials pointing at the emulator.
//!
//! The tests are plain `#[test]` functions: their bodies run the binary, read files and poll
//! probes, all of which block, so they run on the test harness's threads, never on a tokio
//! worker. The servers they talk to (emulators, stand-ins, notification receivers) run on
//! [`servers`], a runtime with threads of its own; a test's async step goes through
//! [`block_on`].

pub mod daemon;
pub mod ledger;
pub mod markdown;
pub mod standin;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use subsync::emulator::{
    Credentials, CursorFault, Emulator, EmulatorOptions, Faults, FollowLimitMode, Latency,
    RemoteState, Rules,
};
use subsync::tencent::usersig::SecretKey;

/// The runtime the tests' servers run on, shared by every test of the crate.
pub fn servers() -> &'static tokio::runtime::Runtime {
    static SERVERS: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    SERVERS.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-servers")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the servers' runtime: {e}"))
    })
}

/// Runs `step` to completion from a test's own thread, on [`servers`] (what it spawns, such
/// as a server, keeps running there).
pub fn block_on<F: Future>(step: F) -> F::Output {
    servers().block_on(step)
}

/// Waits until `condition` holds, failing the test with `what` after 30 s. It polls from the
/// test's own thread, which may block; the servers run elsewhere. The pause between polls
/// grows from 5 ms to 100 ms: a quick condition is seen at once, and a condition that reads
/// a whole ledger does not take the machine from the processes under test.
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pause = Duration::from_millis(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

pub const SDKAPPID: u64 = 1_400_000_042;
pub const KEY: &str = "test-secret-key-0123456789abcdef";

pub fn credentials() -> Credentials {
    Credentials {
        sdkappid: SDKAPPID,
        identifier: "administrator".into(),
        key: SecretKey::new(KEY).unwrap(),
    }
}

/// Emulator settings for one test.
pub struct Remote {
    pub accounts: Vec<(&'static str, u64, Vec<String>)>,
    pub qps: u32,
    pub follow_limit: u32,
    pub follow_limit_mode: FollowLimitMode,
    pub latency_ms: u64,
    /// The latency comes after the change is made: answers are slow, changes are not.
    pub slow_answers: bool,
    pub fault_rate: f64,
    pub clock_skew_secs: i64,
    pub cursor_fault: Option<CursorFault>,
}

impl Default for Remote {
    fn default() -> Self {
        Remote {
            accounts: vec![],
            qps: 0,
            follow_limit: 0,
            follow_limit_mode: FollowLimitMode::Request,
            latency_ms: 0,
            slow_answers: false,
            fault_rate: 0.0,
            clock_skew_secs: 0,
            cursor_fault: None,
        }
    }
}

impl Remote {
    pub fn qps(self, qps: u32) -> Self {
        Remote { qps, ..self }
    }

    pub fn latency_ms(self, latency_ms: u64) -> Self {
        Remote { latency_ms, ..self }
    }

    /// Every change is made at once and answered `latency_ms` later.
    pub fn slow_answers(self, latency_ms: u64) -> Self {
        Remote {
            latency_ms,
            slow_answers: true,
            ..self
        }
    }

    pub fn fault_rate(self, fault_rate: f64) -> Self {
        Remote { fault_rate, ..self }
    }

    pub fn follow_limit(self, follow_limit: u32, follow_limit_mode: FollowLimitMode) -> Self {
        Remote {
            follow_limit,
            follow_limit_mode,
            ..self
        }
    }

    pub fn cursor_fault(self, fault: CursorFault) -> Self {
        Remote {
            cursor_fault: Some(fault),
            ..self
        }
    }

    pub fn clock_skew_secs(self, clock_skew_secs: i64) -> Self {
        Remote {
            clock_skew_secs,
            ..self
        }
    }

    pub fn account(mut self, id: &'static str, max: u64, subscribers: &[&str]) -> Self {
        self.accounts
            .push((id, max, subscribers.iter().map(|s| s.to_string()).collect()));
        self
    }

    /// Starts the emulator on [`servers`].
    pub fn start(self) -> Emulator {
        let mut state = RemoteState::default();
        for (id, max, subs) in &self.accounts {
            state.seed_account(id, *max, subs, 0);
        }
        let options = EmulatorOptions {
            credentials: credentials(),
            qps: self.qps,
            rules: Rules {
                follow_limit: self.follow_limit,
                follow_limit_mode: self.follow_limit_mode,
                cursor_fault: self.cursor_fault,
            },
            latency: Latency {
                min: self.latency_ms,
                max: self.latency_ms,
                after_change: self.slow_answers,
            },
            faults: Faults {
                rate: self.fault_rate,
                seed: Some(7),
            },
            state,
            journal: None,
            clock_skew_secs: self.clock_skew_secs,
        };
        block_on(Emulator::start(
            options,
            SocketAddr::from(([127, 0, 0, 1], 0)),
        ))
        .unwrap()
    }
}

/// A temporary working area: manifests, state and a key file.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        let ws = Workspace {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(ws.manifests()).unwrap();
        std::fs::write(ws.key_file(), format!("{KEY}\n")).unwrap();
        // As a careful operator keeps it: subsync warns about a key others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(ws.key_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn manifests(&self) -> PathBuf {
        self.path().join("manifests")
    }

    pub fn state(&self) -> PathBuf {
        self.path().join("state")
    }

    pub fn key_file(&self) -> PathBuf {
        self.path().join("secret.key")
    }

    /// Writes a SubscriberSet manifest named `name`.
    pub fn manifest(&self, name: &str, account: &str, subscribers: &[String]) {
        let text = manifest_text(name, account, subscribers);
        std::fs::write(self.manifests().join(format!("{name}.yaml")), text).unwrap();
    }

    /// `subsync ARGS` with the emulator's endpoint and credentials in the environment.
    pub fn command(&self, emulator_url: Option<&str>, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_subsync"));
        cmd.args(args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SUBSYNC_STATE", self.state())
            .env("SUBSYNC_SDKAPPID", SDKAPPID.to_string())
            .env("SUBSYNC_SECRET_KEY_FILE", self.key_file());
        if let Some(url) = emulator_url {
            cmd.env("SUBSYNC_ENDPOINT", url);
        }
        cmd
    }

    pub fn run(&self, emulator_url: Option<&str>, args: &[&str]) -> Output {
        self.command(emulator_url, args).output().unwrap()
    }
}

pub fn manifest_text(name: &str, account: &str, subscribers: &[String]) -> String {
    let list: Vec<String> = subscribers.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: {name}\nspec:\n  officialAccount: \"{account}\"\n  subscribers: [{}]\n",
        list.join(", ")
    )
}

pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:05}")).collect()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A client of the emulator with the tests' credentials: changes made through it are "out of
/// band" for subsync.
pub fn client(emulator: &Emulator) -> subsync::tencent::Client {
    let endpoint = subsync::tencent::endpoint::Endpoint::parse(&emulator.url()).unwrap();
    let config = subsync::tencent::ClientConfig::new(
        endpoint,
        SDKAPPID,
        "administrator".into(),
        SecretKey::new(KEY).unwrap(),
    );
    subsync::tencent::Client::new(config).unwrap()
}

/// The subscribers the emulator holds for `account`.
pub fn remote_subscribers(emulator: &Emulator, account: &str) -> Vec<String> {
    emulator
        .state()
        .accounts
        .get(account)
        .map(|a| a.subscribers.keys().cloned().collect())
        .unwrap_or_default()
}

/// Runs `cmd` with an open-file limit of `limit` descriptors, soft and hard (`ulimit -n`),
/// so that it cannot raise it.
pub fn limit_open_files(cmd: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Kills the child process when dropped, so that a failing assertion leaves no server behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
