//! Persistence of the emulated service across restarts (the sandbox, `emulator --state-file`).
//!
//! A snapshot (`FILE`, the whole state as JSON) plus a journal (`FILE.journal`, one JSON line
//! per change since the snapshot). A call's change is appended by a dedicated writer thread and
//! acknowledged before the call is answered, so everything answered survives the process being
//! killed; the journal is not fsynced per call (an operating-system crash may lose the last
//! changes, which is fine for a test service). Loading replays the journal over the snapshot,
//! ignoring a torn last line, and compacts when the journal has outgrown the snapshot.
//!
//! Why not rewrite the snapshot on every call: at 200 calls a second against a large state
//! that costs more than the calls themselves, and the sandbox then misreports subsync's speed.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::state::{RemoteAccount, RemoteState};
use crate::tencent::api::AccountFields;

/// One change to the state, as recorded in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Change {
    /// Subscribers that were added, with their subscribe time.
    Add {
        account: String,
        ids: Vec<String>,
        at: i64,
    },
    Delete {
        account: String,
        ids: Vec<String>,
    },
    Create {
        id: String,
        account: RemoteAccount,
    },
    /// The account's own fields that were set.
    Modify {
        account: String,
        fields: AccountFields,
    },
}

impl Change {
    /// False for a change that changes nothing (every add answered "already subscribed").
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Change::Add { ids, .. } | Change::Delete { ids, .. } => ids.is_empty(),
            Change::Create { .. } | Change::Modify { .. } => false,
        }
    }
}

/// The snapshot file and its journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateFile {
    snapshot: PathBuf,
    journal: PathBuf,
}

impl StateFile {
    pub(crate) fn new(snapshot: &Path) -> StateFile {
        let mut journal = snapshot.as_os_str().to_owned();
        journal.push(".journal");
        StateFile {
            snapshot: snapshot.to_owned(),
            journal: PathBuf::from(journal),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.snapshot
    }

    /// The state as last persisted, or `None` when nothing was ever written.
    pub(crate) fn load(&self) -> io::Result<Option<RemoteState>> {
        let mut state: Option<RemoteState> = match std::fs::read(&self.snapshot) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.snapshot.display()),
                )
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match File::open(&self.journal) {
            Ok(file) => {
                let state = state.get_or_insert_with(RemoteState::default);
                for line in BufReader::new(file).lines() {
                    // A line cut short by a crash is the only kind that fails to parse; it was
                    // never acknowledged, so dropping it loses nothing that was answered.
                    match serde_json::from_str::<Change>(&line?) {
                        Ok(change) => state.apply(change),
                        Err(_) => break,
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(state) = &mut state {
            state.reindex();
        }
        Ok(state)
    }

    /// Writes `state` as the new snapshot and empties the journal.
    pub(crate) fn compact(&self, state: &RemoteState) -> io::Result<()> {
        crate::files::write_atomically(
            &self.snapshot,
            &serde_json::to_vec(state).map_err(io::Error::other)?,
        )?;
        File::create(&self.journal)?.sync_all()
    }

    /// True when the journal is larger than the snapshot, so replaying costs more than
    /// rewriting.
    pub(crate) fn needs_compaction(&self) -> bool {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        size(&self.journal) > size(&self.snapshot)
    }

    /// Persists `state` as the starting point when it was `changed` after loading (or was never
    /// written, or its journal outgrew it), then starts the journal writer.
    pub(crate) fn resume(&self, state: &RemoteState, changed: bool) -> io::Result<Journal> {
        if changed || !self.snapshot.exists() || self.needs_compaction() {
            self.compact(state)?;
        }
        self.open_journal()
    }

    /// Starts the writer thread that appends changes to the journal.
    pub(crate) fn open_journal(&self) -> io::Result<Journal> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.journal)?;
        let (tx, rx) = mpsc::channel::<(Vec<u8>, Ack)>();
        std::thread::Builder::new()
            .name("subsync-emulator-journal".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    group.extend(rx.try_iter().take(255));
                    let bytes: Vec<u8> = group.iter().flat_map(|(line, _)| line.clone()).collect();
                    let result = file.write_all(&bytes).map_err(|e| e.to_string());
                    for (_, ack) in group {
                        let _ = ack.send(result.clone());
                    }
                }
                let _ = file.sync_all();
            })?;
        Ok(Journal { tx })
    }
}

type Ack = oneshot::Sender<Result<(), String>>;

/// The sending side of the journal writer; the thread ends when this is dropped.
#[derive(Debug, Clone)]
pub struct Journal {
    tx: mpsc::Sender<(Vec<u8>, Ack)>,
}

impl Journal {
    /// Queues `change`; the receiver resolves once it is written. Call it while the change is
    /// being made (under the state lock) so that the journal keeps the order of the changes.
    pub(crate) fn append(&self, change: &Change) -> oneshot::Receiver<Result<(), String>> {
        let (ack, done) = oneshot::channel();
        let mut line = serde_json::to_vec(change).unwrap_or_default();
        line.push(b'\n');
        if let Err(mpsc::SendError((_, ack))) = self.tx.send((line, ack)) {
            let _ = ack.send(Err("the journal writer stopped".into()));
        }
        done
    }
}

impl RemoteState {
    /// Replays one journalled change.
    pub(crate) fn apply(&mut self, change: Change) {
        match change {
            Change::Add { account, ids, at } => {
                if let Some(acc) = self.accounts.get_mut(&account) {
                    for id in ids {
                        acc.subscribers.insert(id, at);
                    }
                }
            }
            Change::Delete { account, ids } => {
                if let Some(acc) = self.accounts.get_mut(&account) {
                    for id in ids {
                        acc.subscribers.remove(&id);
                    }
                }
            }
            Change::Create { id, account } => {
                self.accounts.insert(id, account);
            }
            Change::Modify { account, fields } => {
                // The call was checked when it was answered: replaying it cannot fail.
                let _ = self.modify(&account, &fields);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changes_survive_a_restart_and_a_torn_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(&dir.path().join("remote.json"));
        let mut state = RemoteState::default();
        state.seed_account("@TOA#_a", 10, &[], 0);
        file.compact(&state).unwrap();
        let journal = file.open_journal().unwrap();
        let add = Change::Add {
            account: "@TOA#_a".into(),
            ids: vec!["1".into(), "2".into()],
            at: 5,
        };
        journal.append(&add).await.unwrap().unwrap();
        let del = Change::Delete {
            account: "@TOA#_a".into(),
            ids: vec!["1".into()],
        };
        journal.append(&del).await.unwrap().unwrap();
        drop(journal);
        let mut raw = OpenOptions::new().append(true).open(&file.journal).unwrap();
        raw.write_all(b"{\"add\":{\"account\":\"@TOA#_a\",\"ids\":[\"3\"")
            .unwrap();
        let loaded = file.load().unwrap().unwrap();
        let ids: Vec<&String> = loaded.accounts["@TOA#_a"].subscribers.keys().collect();
        assert_eq!(ids, ["2"]);
        file.compact(&loaded).unwrap();
        assert_eq!(std::fs::metadata(&file.journal).unwrap().len(), 0);
        assert_eq!(
            file.load().unwrap().unwrap().accounts["@TOA#_a"]
                .subscribers
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn an_accounts_own_fields_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(&dir.path().join("remote.json"));
        let mut state = RemoteState::default();
        state.seed_account("@TOA#_a", 10, &[], 0);
        file.compact(&state).unwrap();
        let journal = file.open_journal().unwrap();
        let modify = Change::Modify {
            account: "@TOA#_a".into(),
            fields: AccountFields {
                name: Some("Renamed".into()),
                max_subscriber_num: Some(80),
                ..AccountFields::default()
            },
        };
        journal.append(&modify).await.unwrap().unwrap();
        drop(journal);
        let loaded = file.load().unwrap().unwrap();
        let account = &loaded.accounts["@TOA#_a"];
        assert_eq!(
            (account.name.as_str(), account.max_subscribers),
            ("Renamed", 80)
        );
    }
}
