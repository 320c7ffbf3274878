//! The planner's way into a read transaction. The planner is synchronous (a pure merge of
//! sorted lists), the ledger async: [`view`] runs the planner's closure on the blocking pool
//! with an [`AccountSource`] whose every read is a request answered on the async side from
//! the transaction. An account's confirmed subscribers flow in chunks through a bounded
//! channel, so that neither side holds more than a few chunks of them.

use tokio::sync::{mpsc, oneshot};

use super::store::{Chunks, ReadTx};
use super::{AccountSource, AccountView, Confirmed, InMemory, LedgerError};

type Reply<T> = oneshot::Sender<Result<T, LedgerError>>;

/// The planner's closure, its result sent on a channel of its own ([`planner`]).
pub(crate) type Planner = Box<dyn FnOnce(&mut dyn AccountSource) -> Result<(), LedgerError> + Send>;

/// `f` as a [`Planner`], and where its value arrives once it ran.
pub(crate) fn planner<T: Send + 'static>(
    f: impl FnOnce(&mut dyn AccountSource) -> Result<T, LedgerError> + Send + 'static,
) -> (Planner, oneshot::Receiver<T>) {
    let (value, out) = oneshot::channel();
    let planner: Planner = Box::new(move |source| {
        let _ = value.send(f(source)?);
        Ok(())
    });
    (planner, out)
}

enum PlannerRead {
    Identity(Reply<(Option<String>, u64)>),
    Held(Reply<Vec<String>>),
    Account(String, Reply<Option<(i64, AccountView)>>),
    Confirmed(i64, Chunks, Reply<()>),
}

/// The async side stopped answering: the read was given up (its caller went away).
#[derive(Debug, thiserror::Error)]
#[error("the read was given up before it finished")]
struct GivenUp;

/// Runs `f` on the blocking pool over the consistent read `tx`, answering its reads here.
pub(crate) async fn view(tx: &mut dyn ReadTx<'_>, at: &str, f: Planner) -> Result<(), LedgerError> {
    let (requests, mut incoming) = mpsc::channel(1);
    let mut bridge = Bridge {
        requests,
        at: at.to_owned(),
    };
    let planner = tokio::task::spawn_blocking(move || f(&mut bridge));
    // Ends when the planner is done with the bridge.
    while let Some(request) = incoming.recv().await {
        serve(tx, request).await;
    }
    planner.await.map_err(|e| LedgerError::task(at, e))?
}

/// Runs `f` on the blocking pool over `source`, which is in memory (a ledger not created yet).
pub(crate) async fn in_memory(
    mut source: super::Snapshot,
    at: &str,
    f: Planner,
) -> Result<(), LedgerError> {
    tokio::task::spawn_blocking(move || f(&mut source))
        .await
        .map_err(|e| LedgerError::task(at, e))?
}

async fn serve(tx: &mut dyn ReadTx<'_>, request: PlannerRead) {
    match request {
        PlannerRead::Identity(reply) => {
            let identity = tx.identity().await;
            let _ = reply.send(identity.map(|i| (Some(i.lineage), i.serial)));
        }
        PlannerRead::Held(reply) => {
            let _ = reply.send(tx.held().await);
        }
        PlannerRead::Account(name, reply) => {
            let answer = tx
                .account(name)
                .await
                .map(|rows| rows.map(|rows| (rows.account.id, super::read::account_view(&rows))));
            let _ = reply.send(answer);
        }
        PlannerRead::Confirmed(account, out, reply) => {
            let _ = reply.send(tx.confirmed(account, out).await);
        }
    }
}

/// The planner's side: each read a request, waited for on the blocking thread.
struct Bridge {
    requests: mpsc::Sender<PlannerRead>,
    at: String,
}

impl Bridge {
    fn given_up(&self) -> LedgerError {
        LedgerError::task(&self.at, GivenUp)
    }

    fn ask<T>(&self, request: impl FnOnce(Reply<T>) -> PlannerRead) -> Result<T, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .blocking_send(request(reply))
            .map_err(|_| self.given_up())?;
        answer.blocking_recv().map_err(|_| self.given_up())?
    }
}

impl AccountSource for Bridge {
    fn identity(&mut self) -> Result<(Option<String>, u64), LedgerError> {
        self.ask(PlannerRead::Identity)
    }

    fn held(&mut self) -> Result<Vec<String>, LedgerError> {
        // Byte order, as everywhere else, whatever the database's collation.
        let mut held = self.ask(PlannerRead::Held)?;
        held.sort();
        Ok(held)
    }

    fn account(
        &mut self,
        account: &str,
        f: &mut dyn FnMut(&AccountView, &mut dyn Confirmed) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        match self.ask(|reply| PlannerRead::Account(account.to_owned(), reply))? {
            None => f(&AccountView::default(), &mut InMemory(&[])),
            Some((id, view)) => f(&view, &mut Streamed { bridge: self, id }),
        }
    }
}

/// An account's confirmed subscribers as the database streams them.
struct Streamed<'b> {
    bridge: &'b Bridge,
    id: i64,
}

impl Confirmed for Streamed<'_> {
    fn each(&mut self, f: &mut dyn FnMut(&str)) -> Result<(), LedgerError> {
        let (out, mut chunks) = mpsc::channel(2);
        let (reply, done) = oneshot::channel();
        self.bridge
            .requests
            .blocking_send(PlannerRead::Confirmed(self.id, out, reply))
            .map_err(|_| self.bridge.given_up())?;
        while let Some(chunk) = chunks.blocking_recv() {
            chunk.iter().for_each(&mut *f);
        }
        done.blocking_recv().map_err(|_| self.bridge.given_up())?
    }
}
