//! `--sandbox`: an emulator started inside the process on a loopback port, with generated
//! credentials, whose accounts and subscribers persist under `STATE/sandbox/` so that repeated
//! runs behave like a real service.
//!
//! Where its accounts come from: `--sandbox-config FILE`, else `sandbox.yaml` in the parent of
//! the directory holding the manifests (`examples/sandbox.yaml` for `examples/manifests`), else
//! nothing. Accounts a manifest names that the sandbox does not have yet are created with the
//! default limit before each run, so any manifests can be tried without writing a config;
//! except those whose manifest declares `spec.create`, which are left for subsync to create
//! (with `--allow-create`), as the service would.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::emulator::{self, Credentials, Emulator, EmulatorConfig, StateFile};
use crate::manifest::ManifestSet;
use crate::tencent::ClientConfig;
use crate::tencent::endpoint::Endpoint;
use crate::tencent::usersig::SecretKey;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SandboxError {
    #[error(transparent)]
    Config(#[from] emulator::EmulatorConfigError),
    #[error("sandbox state {path}: {error}; delete it to start the sandbox afresh")]
    State {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot start the sandbox emulator: {0}")]
    Start(String),
}

pub(crate) struct Sandbox {
    emulator: Emulator,
    /// How to reach it, with its generated credentials.
    pub client: ClientConfig,
}

/// Reads the configuration and the persisted remote state.
fn load(
    state_dir: &Path,
    config_path: Option<&Path>,
) -> Result<(EmulatorConfig, emulator::RemoteState, emulator::Journal), SandboxError> {
    std::fs::create_dir_all(state_dir).map_err(|error| SandboxError::State {
        path: state_dir.to_owned(),
        error,
    })?;
    let config = match config_path {
        Some(path) => EmulatorConfig::load(path)?,
        None => EmulatorConfig::default(),
    };
    let remote = StateFile::new(&state_dir.join("remote.json"));
    let state_error = |error| SandboxError::State {
        path: remote.path().to_owned(),
        error,
    };
    let now = crate::clock::unix_now() as i64;
    let loaded = remote.load().map_err(state_error)?;
    let changed = loaded.is_none();
    let state = loaded.unwrap_or_else(|| config.initial_state(now));
    let journal = remote.resume(&state, changed).map_err(state_error)?;
    Ok((config, state, journal))
}

/// The sandbox configuration used for manifests under `paths`, if any.
pub(crate) fn default_config(paths: &[PathBuf]) -> Option<PathBuf> {
    let first = paths.first()?;
    let manifest_dir = if first.is_dir() {
        first.clone()
    } else {
        first.parent()?.to_owned()
    };
    let parent = std::fs::canonicalize(&manifest_dir)
        .ok()?
        .parent()?
        .to_owned();
    Some(parent.join("sandbox.yaml")).filter(|p| p.is_file())
}

impl Sandbox {
    /// Starts the emulator with the accounts of `config` and of the state in `state_dir`.
    pub(crate) async fn start(
        state_dir: &Path,
        config_path: Option<&Path>,
    ) -> Result<Sandbox, SandboxError> {
        let (dir, path) = (state_dir.to_owned(), config_path.map(Path::to_owned));
        let (config, state, journal) =
            tokio::task::spawn_blocking(move || load(&dir, path.as_deref()))
                .await
                .map_err(|e| SandboxError::Start(e.to_string()))??;
        let key_hex: String = rand::random::<[u8; 32]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = SecretKey::new(&key_hex)
            .ok_or_else(|| SandboxError::Start("the generated key is empty".into()))?;
        let credentials = Credentials {
            sdkappid: 1_400_000_000 + u64::from(rand::random::<u16>()),
            identifier: "administrator".into(),
            key,
        };
        let options = config.options(credentials.clone(), state, Some(journal));
        let emulator = Emulator::start(options, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .map_err(|e| SandboxError::Start(e.to_string()))?;
        let endpoint =
            Endpoint::parse(&emulator.url()).map_err(|e| SandboxError::Start(e.to_string()))?;
        let client = ClientConfig::new(
            endpoint,
            credentials.sdkappid,
            credentials.identifier,
            credentials.key,
        );
        tracing::info!(
            "sandbox emulator on {} seeded from {}; its state lives in {}",
            emulator.url(),
            config_path.map_or("no sandbox.yaml".to_owned(), |p| p.display().to_string()),
            state_dir.display()
        );
        Ok(Sandbox { emulator, client })
    }

    /// Creates accounts that `manifests` name and the sandbox does not have yet, but those a
    /// manifest asks subsync to create.
    pub(crate) async fn ensure_accounts(&self, manifests: &ManifestSet) {
        let ids: Vec<String> = manifests
            .sets
            .iter()
            .filter(|s| s.create.is_none())
            .map(|s| s.official_account.clone())
            .collect();
        self.emulator.ensure_accounts(&ids).await;
    }

    pub(crate) async fn stop(self) {
        self.emulator.shutdown(Duration::from_secs(5)).await;
    }
}
