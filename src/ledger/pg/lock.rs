//! The writer lock on PostgreSQL: a session advisory lock, keyed by the schema, held on the
//! writer's own connection, as Terraform's pg backend does.
//!
//! Taking it is never a wait for a command: a second writer is refused at once, naming the
//! holder from the `holder` row. A replica standing by waits instead ([`wait`]), on a session
//! of its own, and holds the lock the moment the holder's session ends. Each takeover increments `holder.epoch`; the writer keeps the epoch it got
//! and every write checks it ([`BUMP_FENCED`]), so a writer that lost its session (or whose
//! connection a pooler handed to someone else) cannot write once another replica has taken
//! over. The server releases the lock when the session ends, also when the writer's process
//! or machine dies (keepalives end a dead session within about 30 seconds).

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::fault::Session;
use crate::ledger::{LedgerError, LockLoss};

/// `SUBS` in ASCII: the first key of the advisory lock; the second is the schema's hash.
const LOCK_CLASS: i32 = 0x5355_4253;

/// The serial bump, fenced: it matches no row once another writer took over. `$1` the epoch.
pub(super) const BUMP_FENCED: &str = "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'serial' AND (SELECT epoch FROM holder WHERE id = 1) = $1";

/// Takes the lock without waiting; true when this session now holds it.
pub(super) async fn try_take(client: &Client) -> Result<bool, tokio_postgres::Error> {
    client
        .query_one(
            "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))",
            &[&LOCK_CLASS],
        )
        .await?
        .try_get(0)
}

/// The server's keepalives for a session holding or waiting for the lock: a dead peer's
/// session ends (and its lock, or its place in the queue for it, goes) within about 30 s.
pub(super) const SERVER_KEEPALIVES: &str = "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 30000";

/// How long one round of waiting for the lock lasts on the server (`lock_timeout`); the next
/// round follows at once. Each round's answer shows the session alive, on top of keepalives.
pub(super) const WAIT_ROUND: Duration = Duration::from_secs(30);

/// Waits for the lock on this session, a round of [`WAIT_ROUND`] at a time, and returns once
/// this session holds it. The server grants it the moment the holder's session ends. Only a
/// session dedicated to waiting may call this: it changes the session's timeouts (restored
/// once the lock is granted).
pub(super) async fn wait(session: &Session, client: &Client) -> Result<(), LedgerError> {
    let round = format!(
        "SET statement_timeout = 0; SET lock_timeout = {}",
        WAIT_ROUND.as_millis()
    );
    session.within(client.batch_execute(&round)).await?;
    // The server notices a standby that vanished while it waits (the check needs PostgreSQL
    // 14 or later), so that a dead replica's request does not take the lock when it comes
    // free and hold it until its session is found dead.
    for (setting, what) in [
        (SERVER_KEEPALIVES, "keepalives"),
        (
            "SET client_connection_check_interval = 1000",
            "check for a vanished client",
        ),
    ] {
        if let Err(e) = session.within(client.batch_execute(setting)).await {
            tracing::debug!(error = %crate::errors::chain(&e), "cannot set the server's {what} for the session waiting for the lock");
        }
    }
    loop {
        let wait = client.execute(
            "SELECT pg_advisory_lock($1, hashtext(current_schema()))",
            &[&LOCK_CLASS],
        );
        let deadline = WAIT_ROUND + session.deadline;
        match tokio::time::timeout(deadline, wait).await {
            Ok(Ok(_)) => break,
            Ok(Err(e)) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => continue,
            Ok(Err(e)) => return Err(session.error(e)),
            Err(_) => return Err(session.silent(deadline)),
        }
    }
    session
        .within(client.batch_execute("RESET statement_timeout; RESET lock_timeout"))
        .await
}

/// Records this session as the holder and returns the new fencing epoch.
pub(super) async fn record_holder(
    client: &Client,
    command: &str,
) -> Result<i64, tokio_postgres::Error> {
    client
        .query_one(
            "INSERT INTO holder (id, epoch, command, host, pid, backend_pid, since)
             VALUES (1, 1, $1, $2, $3, pg_backend_pid(), $4)
             ON CONFLICT (id) DO UPDATE SET epoch = holder.epoch + 1, command = excluded.command,
               host = excluded.host, pid = excluded.pid, backend_pid = excluded.backend_pid, since = excluded.since
             RETURNING epoch",
            &[
                &command,
                &hostname(),
                &i64::from(std::process::id()),
                &crate::clock::unix_millis(),
            ],
        )
        .await?
        .try_get(0)
}

/// Who holds the lock, for the refusal: "subsync watch on HOST (PID n) since TIME".
pub(super) async fn describe_holder(client: &Client) -> Result<String, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT command, host, pid, since FROM holder WHERE id = 1",
            &[],
        )
        .await?;
    let described = row.and_then(|r| {
        let command: String = r.try_get(0).ok()?;
        let host: String = r.try_get(1).ok()?;
        let pid: i64 = r.try_get(2).ok()?;
        let since: i64 = r.try_get(3).ok()?;
        Some(format!(
            "subsync {} on {} (PID {pid}) since {}",
            crate::quote::clean(&command, 40),
            crate::quote::clean(&host, 100),
            crate::clock::rfc3339(since / 1000)
        ))
    });
    Ok(described.unwrap_or_else(|| "another session (it has not recorded itself yet)".into()))
}

/// Whether this session still holds the lock at `epoch`: its advisory lock is granted and no
/// takeover happened since. `Ok(Some(why))` when it does not.
pub(super) async fn still_held(
    client: &Client,
    epoch: i64,
) -> Result<Option<LockLoss>, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT (SELECT epoch FROM holder WHERE id = 1),
                EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                        AND pid = pg_backend_pid() AND classid = CAST($1 AS INTEGER)::oid
                        AND objid = hashtext(current_schema())::oid AND objsubid = 2)",
            &[&LOCK_CLASS],
        )
        .await?;
    let current: Option<i64> = row.try_get(0)?;
    let held: bool = row.try_get(1)?;
    Ok(if current != Some(epoch) {
        Some(LockLoss::TakenOver {
            held: epoch,
            now: current.map_or_else(|| "gone".to_owned(), |c| c.to_string()),
        })
    } else if !held {
        Some(LockLoss::AdvisoryGone)
    } else {
        None
    })
}

/// This machine's name (the pod's, in Kubernetes), for the holder row.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer it is given.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
