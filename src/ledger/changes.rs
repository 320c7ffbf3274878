//! What recording a run's outcomes does, statement by statement: the meaning of each
//! [`Record`], written once. A backend only spells each [`Statement`] in its SQL and binds a
//! [`Step`]'s values the same way for all of them; it runs the steps in order inside one
//! write transaction ([`super::store::WriteTx::apply`]).

use std::collections::HashMap;

use super::properties::StoredProperties;
use super::store::WriteTx;
use super::{AccountFact, KnownProperties, LedgerError, Op, Record};

/// One statement of recording a run. Each is bound to the same values (see [`Step`]) and
/// uses those it needs; the ones about subscribers run for each of a step's subscribers (a
/// backend binds them one at a time, or as one array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Statement {
    /// Their intents are forgotten: the outcome is known.
    ClearIntents,
    /// Subscribed now: confirmed by `run` at `now` and managed; `already`: they were
    /// subscribed before (drift).
    Confirm,
    /// Not subscribed now: no longer confirmed.
    Unconfirm,
    /// No longer failed.
    ClearFailed,
    /// `op` failed with each subscriber's code: one attempt more for a repeat of the same
    /// operation, one for another. A subscriber listed twice keeps its last code.
    Fail,
    /// Confirmed subscribers a manifest lists: managed from now on.
    Manage,
    /// About to be sent (`op`) by `run`. An intent an earlier run recorded stays that run's.
    Intend,
    /// The run is over: its intents are forgotten (those still in doubt are intended again).
    EndRun,
    /// The account's MaxSubscriberNum (`max`) and count (`num`), learnt now; it exists.
    Info,
    /// The account's count (`num`) after a run.
    Counted,
    /// The account is full (since the first time it was found so).
    LimitReached,
    /// The account does not exist (since the first time).
    Missing,
    /// The account's id is invalid (since the first time).
    Invalid,
    /// Every planned subscriber was sent without a limit error: the flags are cleared.
    Healthy,
    /// The account's own properties, as they are now known (`properties`).
    PutProperties,
    /// A MaxSubscriberNum learnt or set (`max`) is the account's limit from now on.
    SetMax,
}

/// A statement and the values it is bound to (besides the run and the time, which every step
/// of a transaction shares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) statement: Statement,
    pub(crate) account: i64,
    pub(crate) subscribers: Vec<String>,
    /// One per subscriber ([`Statement::Fail`]).
    pub(crate) codes: Vec<i64>,
    pub(crate) already: bool,
    pub(crate) op: Op,
    pub(crate) max: Option<i64>,
    pub(crate) num: Option<i64>,
    /// [`Statement::PutProperties`].
    pub(crate) properties: Option<Box<StoredProperties>>,
}

impl Step {
    pub(crate) fn new(statement: Statement, account: i64) -> Step {
        Step {
            statement,
            account,
            subscribers: Vec::new(),
            codes: Vec::new(),
            already: false,
            op: Op::Add,
            max: None,
            num: None,
            properties: None,
        }
    }

    fn about(statement: Statement, account: i64, subscribers: Vec<String>) -> Step {
        Step {
            subscribers,
            ..Step::new(statement, account)
        }
    }
}

/// The accounts `records` are about, in order of first appearance.
pub(crate) fn accounts(records: &[Record]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for record in records {
        let named: Vec<&str> = match record {
            Record::Batch { account, .. }
            | Record::Account { account, .. }
            | Record::Adopt { account, .. }
            | Record::Intend { account, .. } => vec![account.as_str()],
            Record::Properties(p) => vec![p.account.as_str()],
            Record::Settle { in_doubt } => in_doubt.iter().map(|(a, _, _)| a.as_str()).collect(),
        };
        for name in named {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// The steps that record `records` at `now`; `ids` knows every account they name, `known`
/// the properties stored for each account a [`Record::Properties`] is about.
pub(crate) fn steps(
    records: Vec<Record>,
    ids: &Ids,
    known: &mut HashMap<i64, KnownProperties>,
    now: i64,
) -> Vec<Step> {
    let mut out = Vec::new();
    for record in records {
        match record {
            Record::Batch {
                account,
                op,
                done,
                unchanged,
                failed,
            } => batch(&mut out, ids.get(&account), op, [done, unchanged], failed),
            Record::Account { account, fact } => out.push(fact_step(ids.get(&account), &fact)),
            Record::Adopt {
                account,
                subscribers,
            } => out.push(Step::about(
                Statement::Manage,
                ids.get(&account),
                subscribers,
            )),
            Record::Intend {
                account,
                op,
                subscribers,
            } => out.push(Step {
                op,
                ..Step::about(Statement::Intend, ids.get(&account), subscribers)
            }),
            Record::Properties(learnt) => {
                let account = ids.get(&learnt.account);
                out.extend(super::properties::steps(account, &learnt, known, now));
            }
            Record::Settle { in_doubt } => {
                out.push(Step::new(Statement::EndRun, 0));
                for (account, op, subscribers) in in_doubt {
                    let account = ids.get(&account);
                    out.push(Step {
                        op,
                        ..Step::about(Statement::Intend, account, subscribers)
                    });
                }
            }
        }
    }
    out
}

/// The steps of one batch's outcome: `[done, unchanged]` and what failed.
fn batch(
    out: &mut Vec<Step>,
    account: i64,
    op: Op,
    [done, unchanged]: [Vec<String>; 2],
    failed: Vec<(String, i64)>,
) {
    // A network fault (a negative code) leaves the outcome unknown: still in doubt.
    let settled: Vec<String> = failed
        .iter()
        .filter(|(_, code)| *code >= 0)
        .map(|(s, _)| s.clone())
        .collect();
    if !settled.is_empty() {
        out.push(Step::about(Statement::ClearIntents, account, settled));
    }
    for (subscribers, already) in [(done, false), (unchanged, true)] {
        if subscribers.is_empty() {
            continue;
        }
        let statement = match op {
            Op::Add => Statement::Confirm,
            Op::Remove => Statement::Unconfirm,
        };
        out.push(Step::about(
            Statement::ClearIntents,
            account,
            subscribers.clone(),
        ));
        out.push(Step {
            already,
            ..Step::about(statement, account, subscribers.clone())
        });
        out.push(Step::about(Statement::ClearFailed, account, subscribers));
    }
    if !failed.is_empty() {
        let (subscribers, codes) = last_codes(failed);
        out.push(Step {
            codes,
            op,
            ..Step::about(Statement::Fail, account, subscribers)
        });
    }
}

/// Each subscriber once, with its last code, in order of first appearance.
fn last_codes(failed: Vec<(String, i64)>) -> (Vec<String>, Vec<i64>) {
    let mut at: HashMap<String, usize> = HashMap::with_capacity(failed.len());
    let (mut subscribers, mut codes) = (Vec::new(), Vec::new());
    for (subscriber, code) in failed {
        match at.get(&subscriber) {
            Some(&i) => codes[i] = code,
            None => {
                at.insert(subscriber.clone(), subscribers.len());
                subscribers.push(subscriber);
                codes.push(code);
            }
        }
    }
    (subscribers, codes)
}

fn fact_step(account: i64, fact: &AccountFact) -> Step {
    let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (statement, max, num) = match fact {
        AccountFact::Info {
            max_subscribers,
            subscriber_num,
        } => (
            Statement::Info,
            max_subscribers.map(count),
            subscriber_num.map(count),
        ),
        AccountFact::Counted { subscriber_num } => {
            (Statement::Counted, None, Some(count(*subscriber_num)))
        }
        AccountFact::LimitReached => (Statement::LimitReached, None, None),
        AccountFact::Missing => (Statement::Missing, None, None),
        AccountFact::Invalid => (Statement::Invalid, None, None),
        AccountFact::Healthy => (Statement::Healthy, None, None),
    };
    Step {
        max,
        num,
        ..Step::new(statement, account)
    }
}

/// Account ids looked up (or created) by one writer, remembered across its transactions and
/// forgotten when one fails (the rows it created are gone with it).
#[derive(Debug, Default)]
pub(crate) struct Ids(HashMap<String, i64>);

impl Ids {
    /// Learns the id of every account in `names`, creating the rows of new ones in `tx`.
    pub(super) async fn learn(
        &mut self,
        tx: &mut dyn WriteTx<'_>,
        names: &[&str],
        now: i64,
    ) -> Result<(), LedgerError> {
        for name in names {
            if !self.0.contains_key(*name) {
                let id = tx.account_id(name.to_string(), now).await?;
                self.0.insert(name.to_string(), id);
            }
        }
        Ok(())
    }

    /// The id of an account [`Ids::learn`] was given.
    pub(super) fn get(&self, name: &str) -> i64 {
        // learn() ran over every name steps() asks for; a miss is a bug, not input.
        self.0[name]
    }

    pub(super) fn forget(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Ids {
        let mut ids = Ids::default();
        ids.0.insert("@TOA#_a".into(), 7);
        ids
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_batch_settles_definite_answers_and_keeps_network_faults_in_doubt() {
        let records = vec![Record::Batch {
            account: "@TOA#_a".into(),
            op: Op::Add,
            done: strings(&["x"]),
            unchanged: vec![],
            failed: vec![("y".into(), 130010), ("z".into(), -1), ("y".into(), 6017)],
        }];
        let got: Vec<(Statement, Vec<String>)> = steps(records, &ids(), &mut HashMap::new(), 0)
            .into_iter()
            .map(|s| (s.statement, s.subscribers))
            .collect();
        assert_eq!(
            got,
            [
                (Statement::ClearIntents, strings(&["y", "y"])),
                (Statement::ClearIntents, strings(&["x"])),
                (Statement::Confirm, strings(&["x"])),
                (Statement::ClearFailed, strings(&["x"])),
                (Statement::Fail, strings(&["y", "z"])),
            ]
        );
    }

    #[test]
    fn a_subscriber_failing_twice_in_one_batch_keeps_its_last_code() {
        let (subscribers, codes) =
            last_codes(vec![("y".into(), 1), ("z".into(), 2), ("y".into(), 3)]);
        assert_eq!((subscribers, codes), (strings(&["y", "z"]), vec![3, 2]));
    }

    #[test]
    fn a_removal_forgets_what_was_removed_or_already_gone() {
        let records = vec![Record::Batch {
            account: "@TOA#_a".into(),
            op: Op::Remove,
            done: strings(&["x"]),
            unchanged: strings(&["y"]),
            failed: vec![],
        }];
        let got = steps(records, &ids(), &mut HashMap::new(), 0);
        let unconfirmed: Vec<&[String]> = got
            .iter()
            .filter(|s| s.statement == Statement::Unconfirm)
            .map(|s| s.subscribers.as_slice())
            .collect();
        assert_eq!(unconfirmed, [strings(&["x"]), strings(&["y"])]);
        assert!(got.iter().all(|s| s.statement != Statement::Confirm));
    }

    #[test]
    fn facts_carry_their_counts() {
        let info = AccountFact::Info {
            max_subscribers: Some(10),
            subscriber_num: None,
        };
        let step = fact_step(7, &info);
        assert_eq!(
            (step.statement, step.max, step.num),
            (Statement::Info, Some(10), None)
        );
        let step = fact_step(7, &AccountFact::Counted { subscriber_num: 4 });
        assert_eq!(
            (step.statement, step.max, step.num),
            (Statement::Counted, None, Some(4))
        );
    }
}
