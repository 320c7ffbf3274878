//! One account's share of a run: its queued batches (removals before adds, since removing frees
//! capacity in a full account), how far sending may go, and the tally of committed outcomes.

use std::collections::VecDeque;
use std::sync::Arc;

use super::own::OwnCall;
use super::work::{End, Known, Tally, Work};
use crate::ledger::Op;
use crate::tencent::api::MAX_BATCH;

#[derive(Debug)]
pub(super) struct Batch {
    pub(crate) account: usize,
    pub(crate) op: Op,
    pub(crate) members: Vec<String>,
    pub(crate) attempt: u32,
}

/// How far sending may go for an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Normal,
    /// After a 130006: one add batch at a time, split down to fill exactly what is left.
    Filling,
    /// Full: no more adds; removals still go.
    Full,
    /// Missing or invalid: nothing more is sent.
    Stopped(End),
}

pub(super) struct AccountRun {
    pub(crate) id: Arc<str>,
    /// Its work lists have been read (accounts are read as the window has room).
    pub(crate) loaded: bool,
    /// Planned adds an interrupted earlier run may have sent (sorted).
    pub(crate) intended: Vec<String>,
    removes: VecDeque<Batch>,
    adds: VecDeque<Batch>,
    pub(crate) in_flight: usize,
    pub(crate) mode: Mode,
    pub(crate) tally: Tally,
    /// The account's own call waiting to be sent, with its attempt (a create goes before
    /// anything else; a modify after the removals, before the adds).
    pub(crate) own: Option<(OwnCall, u32)>,
    /// The own call is in flight, or waiting out a retry's pause.
    pub(crate) own_busy: bool,
    /// The call in flight is a creation.
    blocks_all: bool,
}

fn batches(index: usize, op: Op, members: Vec<String>) -> VecDeque<Batch> {
    let mut members = members.into_iter().peekable();
    let mut queue = VecDeque::new();
    while members.peek().is_some() {
        queue.push_back(Batch {
            account: index,
            op,
            members: members.by_ref().take(MAX_BATCH).collect(),
            attempt: 0,
        });
    }
    queue
}

impl AccountRun {
    /// An account whose work lists are not read yet: `add` and `remove` are their lengths.
    pub(super) fn pending(account: &str, add: u64, remove: u64) -> AccountRun {
        AccountRun {
            id: Arc::from(account),
            loaded: false,
            intended: Vec::new(),
            removes: VecDeque::new(),
            adds: VecDeque::new(),
            in_flight: 0,
            mode: Mode::Normal,
            tally: Tally {
                planned: add,
                planned_remove: remove,
                ..Tally::default()
            },
            own: None,
            own_busy: false,
            blocks_all: false,
        }
    }

    /// True while the account's own call is still to be made.
    fn own_pending(&self) -> bool {
        self.own.is_some() || self.own_busy
    }

    /// True while that call is a creation: nothing else may go before it.
    fn creating(&self) -> bool {
        matches!(self.own, Some((OwnCall::Create(_), _))) || (self.own_busy && self.blocks_all)
    }

    /// The own call that may be sent now: a creation at once, a modify once the removals
    /// are done (a lowered limit needs the room they make).
    pub(super) fn take_own_call(&mut self) -> Option<(OwnCall, u32)> {
        if !self.loaded || self.own_busy || matches!(self.mode, Mode::Stopped(_)) {
            return None;
        }
        let create = matches!(self.own, Some((OwnCall::Create(_), _)));
        if !create && (!self.removes.is_empty() || self.in_flight > 0) {
            return None;
        }
        let ready = self.own.take()?;
        self.own_busy = true;
        self.blocks_all = create;
        Some(ready)
    }

    /// The own call is answered (or given up): what waited for it may go.
    pub(super) fn own_settled(&mut self) {
        self.own_busy = false;
        self.blocks_all = false;
    }

    /// The account's work, batched. An account the probe found full sends no adds unless it
    /// also has removals, which may make room.
    pub(super) fn fill(&mut self, index: usize, work: Work, known: Known) {
        self.tally.planned = work.add.len() as u64;
        self.tally.planned_remove = work.remove.len() as u64;
        // Full matters only to adds: an account with none to send is simply at its limit.
        let full = known == Known::Full && work.remove.is_empty() && !work.add.is_empty();
        self.intended = work.intended;
        self.removes = batches(index, Op::Remove, work.remove);
        self.adds = batches(index, Op::Add, work.add);
        self.mode = if full { Mode::Full } else { Mode::Normal };
        self.loaded = true;
    }

    /// Batches waiting to be sent.
    pub(super) fn queued(&self) -> usize {
        self.removes.len() + self.adds.len()
    }

    /// The next batch that may be sent now, if any.
    pub(super) fn next(&mut self) -> Option<Batch> {
        match self.mode {
            Mode::Stopped(_) => None,
            _ if self.creating() => None,
            _ if !self.removes.is_empty() => self.removes.pop_front(),
            _ if self.own_pending() => None,
            Mode::Normal => self.adds.pop_front(),
            Mode::Filling if self.in_flight == 0 => self.adds.pop_front(),
            Mode::Filling | Mode::Full => None,
        }
    }

    /// Puts `batch` back at the front of its queue (a retry, or one half of a split).
    pub(super) fn push_front(&mut self, batch: Batch) {
        match batch.op {
            Op::Remove => self.removes.push_front(batch),
            Op::Add => self.adds.push_front(batch),
        }
    }

    /// Empties the add queue (the account is full); returns the members left out.
    pub(super) fn drain_adds(&mut self) -> u64 {
        self.adds.drain(..).map(|b| b.members.len() as u64).sum()
    }

    /// Splits the "already subscribed" members of an add batch into (recovered, drift).
    pub(super) fn split_intended(&self, unchanged: Vec<String>) -> (Vec<String>, Vec<String>) {
        if self.intended.is_empty() {
            return (Vec::new(), unchanged);
        }
        unchanged
            .into_iter()
            .partition(|s| self.intended.binary_search(s).is_ok())
    }

    /// Retries still queued: the call before them may have been applied without an answer.
    pub(super) fn take_queued_retries(&mut self) -> Vec<Batch> {
        let mut out = Vec::new();
        for queue in [&mut self.adds, &mut self.removes] {
            let (retries, rest): (VecDeque<Batch>, VecDeque<Batch>) =
                queue.drain(..).partition(|b| b.attempt > 0);
            *queue = rest;
            out.extend(retries);
        }
        out
    }

    /// Empties both queues (the account is gone), by operation.
    pub(super) fn drain_all(&mut self) -> (Vec<String>, Vec<String>) {
        let flat = |q: &mut VecDeque<Batch>| q.drain(..).flat_map(|b| b.members).collect();
        (flat(&mut self.adds), flat(&mut self.removes))
    }

    /// How the account's work ended.
    pub(super) fn end(&self) -> End {
        match self.mode {
            Mode::Stopped(end) => end,
            Mode::Full => End::Full,
            _ if self.tally.accounted() < self.tally.planned + self.tally.planned_remove => {
                End::Unfinished
            }
            _ if self.own_pending() => End::Unfinished,
            _ => End::Done,
        }
    }
}
