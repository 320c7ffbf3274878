//! The emulator's YAML configuration: credentials, seeded accounts and behaviour knobs.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::state::{CursorFault, DEFAULT_MAX_SUBSCRIBERS, FollowLimitMode, RemoteState, Rules};
use crate::tencent::api;
use crate::tencent::usersig::{Credentials, SecretKey};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct EmulatorConfig {
    pub(crate) sdkappid: Option<u64>,
    pub(crate) secret_key: Option<SecretKey>,
    /// Relative to the configuration file.
    pub(crate) secret_key_file: Option<PathBuf>,
    /// The App administrator that may call the API.
    pub(crate) identifier: Option<String>,
    #[serde(default)]
    pub(crate) accounts: Vec<AccountSeed>,
    /// Calls per second per command; 0 = unlimited.
    #[serde(default)]
    pub(crate) qps: u32,
    /// Official accounts one user may follow; 0 = unlimited.
    #[serde(default)]
    pub(crate) follow_limit: u32,
    #[serde(default)]
    pub(crate) follow_limit_mode: FollowLimitMode,
    /// Make get_subscriber_info's cursor misbehave (tests): endless, repeat or backwards.
    #[serde(default)]
    pub(crate) cursor_fault: Option<CursorFault>,
    #[serde(default)]
    pub(crate) latency_ms: Latency,
    #[serde(default)]
    pub(crate) faults: Faults,
    /// Seconds the emulator's clock runs ahead (to test UserSig expiry); usually 0.
    #[serde(default)]
    pub(crate) clock_skew_seconds: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AccountSeed {
    pub(crate) id: String,
    #[serde(default = "default_max")]
    pub(crate) max_subscribers: u64,
    #[serde(default)]
    pub(crate) subscribers: Vec<String>,
    /// The account's name (default: its id without the prefix) and other own fields.
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) introduction: Option<String>,
    #[serde(default)]
    pub(crate) face_url: Option<String>,
    #[serde(default)]
    pub(crate) organization: Option<String>,
    #[serde(default)]
    pub(crate) custom_string: Option<String>,
    /// Owner_Account (default: administrator).
    #[serde(default)]
    pub(crate) owner: Option<String>,
}

impl AccountSeed {
    fn fields(&self) -> api::AccountFields {
        api::AccountFields {
            name: self.name.clone(),
            introduction: self.introduction.clone(),
            face_url: self.face_url.clone(),
            organization: self.organization.clone(),
            custom_string: self.custom_string.clone(),
            max_subscriber_num: None,
        }
    }
}

fn default_max() -> u64 {
    DEFAULT_MAX_SUBSCRIBERS
}

/// Extra time each API call takes, uniformly between `min` and `max` milliseconds.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Latency {
    pub min: u64,
    pub max: u64,
    /// Spend it after making the change rather than before: an answer slow to come back, as
    /// when a client dies with its request already applied.
    #[serde(default)]
    pub after_change: bool,
}

/// Injected faults: that fraction of API calls answers 10004 or 20005, HTTP 502, or drops the
/// connection, before changing anything.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    pub rate: f64,
    /// Seed for the fault dice, for reproducible runs; random when absent.
    pub seed: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EmulatorConfigError {
    #[error("cannot read emulator config {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}{location}: {message}")]
    Invalid {
        path: PathBuf,
        location: String,
        message: String,
    },
    #[error("cannot read secretKeyFile {path}: {error}; fix the path in the emulator config")]
    KeyFile {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The configuration is written by whoever runs the emulator, not by a pull request; the
/// budgets only keep a mistake from exhausting memory.
const CONFIG_LIMITS: crate::yaml::TreeLimits = crate::yaml::TreeLimits {
    max_depth: 16,
    max_nodes: 10_000_000,
};

impl EmulatorConfig {
    pub(crate) fn load(path: &Path) -> Result<EmulatorConfig, EmulatorConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| EmulatorConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text`; `path` names it in errors and anchors a relative secretKeyFile.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<EmulatorConfig, EmulatorConfigError> {
        let invalid = |location: String, message: String| EmulatorConfigError::Invalid {
            path: path.to_owned(),
            location,
            message,
        };
        let mut config: EmulatorConfig = if text.trim().is_empty() {
            EmulatorConfig::default()
        } else {
            let at = |p: crate::yaml::Position| format!(":{}:{}", p.line, p.column);
            let documents = crate::yaml::parse(text, &CONFIG_LIMITS)
                .map_err(|e| invalid(at(e.at), e.message))?;
            match documents.first().and_then(|d| d.root.as_ref()) {
                Some(root) => crate::yaml::from_node(root)
                    .map_err(|e| invalid(e.at.map(at).unwrap_or_default(), e.to_string()))?,
                None => EmulatorConfig::default(),
            }
        };
        if let Some(file) = &config.secret_key_file {
            let file = path.parent().unwrap_or(Path::new(".")).join(file);
            let raw =
                std::fs::read_to_string(&file).map_err(|error| EmulatorConfigError::KeyFile {
                    path: file.clone(),
                    error,
                })?;
            config.secret_key = Some(SecretKey::new(&raw).ok_or_else(|| {
                invalid(
                    String::new(),
                    format!("secretKeyFile {} is empty", file.display()),
                )
            })?);
        }
        if !(0.0..=1.0).contains(&config.faults.rate) {
            return Err(invalid(
                String::new(),
                "faults.rate must be between 0 and 1".into(),
            ));
        }
        if config.latency_ms.min > config.latency_ms.max {
            return Err(invalid(
                String::new(),
                "latencyMs.min must not exceed latencyMs.max".into(),
            ));
        }
        for account in &config.accounts {
            if !api::is_valid_account_id(&account.id) {
                return Err(invalid(
                    String::new(),
                    format!(
                        "account id {:?} must start with @TOA#_ and fit 48 bytes",
                        account.id
                    ),
                ));
            }
            if let Some(bad) = account
                .subscribers
                .iter()
                .find(|s| !api::is_valid_user_id(s))
            {
                return Err(invalid(
                    String::new(),
                    format!("subscriber {bad:?} of {} is not a valid UserID", account.id),
                ));
            }
        }
        Ok(config)
    }

    /// The credentials from the file, which the standalone emulator requires.
    pub(crate) fn credentials(&self, path: &Path) -> Result<Credentials, EmulatorConfigError> {
        let missing = |what: &str| EmulatorConfigError::Invalid {
            path: path.to_owned(),
            location: String::new(),
            message: format!("the emulator config needs {what}"),
        };
        Ok(Credentials {
            sdkappid: self.sdkappid.ok_or_else(|| missing("sdkappid"))?,
            identifier: self
                .identifier
                .clone()
                .unwrap_or_else(|| "administrator".into()),
            key: self
                .secret_key
                .clone()
                .ok_or_else(|| missing("secretKey or secretKeyFile"))?,
        })
    }

    /// The accounts and subscribers the configuration seeds.
    pub(crate) fn initial_state(&self, now: i64) -> RemoteState {
        let mut state = RemoteState::default();
        for account in &self.accounts {
            state.seed_account(
                &account.id,
                account.max_subscribers,
                &account.subscribers,
                now,
            );
            state.seed_fields(&account.id, &account.fields(), account.owner.as_deref());
        }
        state
    }

    /// What the server needs to run this configuration, with `credentials` and the remote
    /// `state` it starts from (and, when it persists, its `journal`).
    pub(crate) fn options(
        &self,
        credentials: Credentials,
        state: RemoteState,
        journal: Option<super::Journal>,
    ) -> super::EmulatorOptions {
        super::EmulatorOptions {
            credentials,
            qps: self.qps,
            rules: self.rules(),
            latency: self.latency_ms,
            faults: self.faults,
            clock_skew_secs: self.clock_skew_seconds,
            state,
            journal,
        }
    }

    pub(crate) fn rules(&self) -> Rules {
        Rules {
            follow_limit: self.follow_limit,
            follow_limit_mode: self.follow_limit_mode,
            cursor_fault: self.cursor_fault,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses_with_defaults_filled() {
        let text = "sdkappid: 1400000001\nsecretKey: k\naccounts:\n  - id: \"@TOA#_a\"\n    subscribers: [\"1\"]\nfollowLimitMode: item\nlatencyMs: {min: 1, max: 2}\nfaults: {rate: 0.1}\n";
        let c = EmulatorConfig::parse(text, Path::new("e.yaml")).unwrap();
        assert_eq!(c.accounts[0].max_subscribers, DEFAULT_MAX_SUBSCRIBERS);
        assert_eq!(c.follow_limit_mode, FollowLimitMode::Item);
        let creds = c.credentials(Path::new("e.yaml")).unwrap();
        assert_eq!(
            (creds.sdkappid, creds.identifier.as_str()),
            (1_400_000_001, "administrator")
        );
    }

    #[test]
    fn unknown_fields_are_reported_with_their_line() {
        let err = EmulatorConfig::parse("sdkappid: 1\nqsp: 3\n", Path::new("e.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("e.yaml:2:"), "{err}");
        assert!(err.contains("qsp"), "{err}");
    }

    #[test]
    fn missing_credentials_are_named() {
        let c = EmulatorConfig::parse("qps: 5\n", Path::new("e.yaml")).unwrap();
        let err = c.credentials(Path::new("e.yaml")).unwrap_err().to_string();
        assert!(err.contains("sdkappid"), "{err}");
    }
}
