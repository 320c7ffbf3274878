//! The emulated service's data: official accounts and their subscribers, and the rules the real
//! service applies when they change.
//!
//! Pure and synchronous; the server wraps it in a lock. Every operation either succeeds or fails
//! with a service error code *before* changing anything, as the real service's all-or-nothing
//! answers do.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::tencent::api::{self, MsgFlag, SubscriberInfo};

/// Default MaxSubscriberNum of a new official account.
pub(crate) const DEFAULT_MAX_SUBSCRIBERS: u64 = crate::properties::DEFAULT_MAX_SUBSCRIBERS;

/// How the follow limit (130010) shows up in an add_subscriber answer. The documentation does
/// not say, so the emulator can do either and subsync must handle both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FollowLimitMode {
    /// The whole call fails with 130010 and nothing changes.
    #[default]
    Request,
    /// The over-limit subscriber gets `Result: 0`; the others are added.
    Item,
}

/// A service error: code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) code: i64,
    pub(crate) info: String,
}

pub(super) fn fail<T>(code: i64, info: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection {
        code,
        info: info.into(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteAccount {
    pub name: String,
    pub owner: String,
    pub max_subscribers: u64,
    pub created: i64,
    /// Introduction, FaceUrl, Organization and CustomString (empty until set).
    #[serde(default)]
    pub introduction: String,
    #[serde(default)]
    pub face_url: String,
    #[serde(default)]
    pub organization: String,
    #[serde(default)]
    pub custom_string: String,
    /// Subscriber id to subscribe time.
    pub subscribers: BTreeMap<String, i64>,
}

/// All accounts of the emulated app. `follows` is derived and rebuilt on load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemoteState {
    pub accounts: BTreeMap<String, RemoteAccount>,
    #[serde(skip)]
    pub(super) follows: HashMap<String, u32>,
}

/// How get_subscriber_info's cursor misbehaves, to test that clients notice (never the
/// default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CursorFault {
    /// After the last page, keeps answering empty pages with ever new cursors.
    Endless,
    /// From the second page on, answers the cursor it was given.
    Repeat,
    /// From the second page on, answers the first page's cursor again.
    Backwards,
}

/// The rules that are configuration rather than data.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules {
    /// 0 = unlimited.
    pub follow_limit: u32,
    pub follow_limit_mode: FollowLimitMode,
    pub cursor_fault: Option<CursorFault>,
}

impl RemoteState {
    /// Rebuilds the derived follow counts; call after deserializing.
    pub(crate) fn reindex(&mut self) {
        self.follows.clear();
        for account in self.accounts.values() {
            for id in account.subscribers.keys() {
                *self.follows.entry(id.clone()).or_default() += 1;
            }
        }
    }

    /// add_subscriber: per-subscriber results 1 (added), 2 (already subscribed), 0 (failed).
    pub(crate) fn add(
        &mut self,
        account: &str,
        ids: &[String],
        rules: Rules,
        now: i64,
    ) -> Result<Vec<i64>, Rejection> {
        check_batch(ids)?;
        let Some(acc) = self.accounts.get(account) else {
            return fail(130004, format!("official account {account} does not exist"));
        };
        let mut results = Vec::with_capacity(ids.len());
        let mut new: Vec<&String> = Vec::new();
        let mut over_limit: Vec<&String> = Vec::new();
        for id in ids {
            if acc.subscribers.contains_key(id) || new.contains(&id) {
                results.push(api::result::UNCHANGED);
            } else if rules.follow_limit > 0
                && self.follows.get(id).copied().unwrap_or(0) >= rules.follow_limit
            {
                over_limit.push(id);
                results.push(api::result::FAILED);
            } else {
                new.push(id);
                results.push(api::result::DONE);
            }
        }
        if let (Some(first), FollowLimitMode::Request) =
            (over_limit.first(), rules.follow_limit_mode)
        {
            return fail(
                130010,
                format!(
                    "subscriber {first} already follows the maximum number of official accounts"
                ),
            );
        }
        if acc.subscribers.len() as u64 + new.len() as u64 > acc.max_subscribers {
            return fail(
                130006,
                format!(
                    "official account {account} reached MaxSubscriberNum {}",
                    acc.max_subscribers
                ),
            );
        }
        let new: Vec<String> = new.into_iter().cloned().collect();
        if let Some(acc) = self.accounts.get_mut(account) {
            for id in &new {
                acc.subscribers.insert(id.clone(), now);
            }
        }
        for id in new {
            *self.follows.entry(id).or_default() += 1;
        }
        Ok(results)
    }

    /// delete_subscriber: per-subscriber results 1 (removed), 2 (was not subscribed).
    pub(crate) fn delete(&mut self, account: &str, ids: &[String]) -> Result<Vec<i64>, Rejection> {
        check_batch(ids)?;
        let Some(acc) = self.accounts.get_mut(account) else {
            return fail(130004, format!("official account {account} does not exist"));
        };
        let mut results = Vec::with_capacity(ids.len());
        for id in ids {
            if acc.subscribers.remove(id).is_some() {
                if let Some(n) = self.follows.get_mut(id) {
                    *n = n.saturating_sub(1);
                }
                results.push(api::result::DONE);
            } else {
                results.push(api::result::UNCHANGED);
            }
        }
        Ok(results)
    }

    /// get_subscriber_info: one page after the opaque cursor `next`.
    pub(crate) fn page(
        &self,
        account: &str,
        limit: u32,
        next: &str,
        fault: Option<CursorFault>,
    ) -> Result<api::GetSubscriberInfoResponse, Rejection> {
        if !(1..=api::MAX_PAGE).contains(&limit) {
            return fail(6017, format!("Limit must be 1 to {}", api::MAX_PAGE));
        }
        let Some(acc) = self.accounts.get(account) else {
            return fail(130004, format!("official account {account} does not exist"));
        };
        let after = if next.is_empty() {
            None
        } else {
            Some(decode_cursor(next).ok_or_else(|| Rejection {
                code: 6017,
                info: "invalid Next".into(),
            })?)
        };
        let range = match &after {
            Some(after) => acc
                .subscribers
                .range::<String, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => acc.subscribers.range::<String, _>(..),
        };
        let page: Vec<SubscriberInfo> = range
            .take(limit as usize)
            .map(|(id, time)| SubscriberInfo {
                subscriber_account: id.clone(),
                subscribe_time: Some(*time),
                custom_string: Some(String::new()),
                msg_flag: Some(MsgFlag::Text("AcceptAndNotify".into())),
                last_send_msg_time: Some(0),
            })
            .collect();
        let more = page.last().is_some_and(|last| {
            acc.subscribers
                .range::<String, _>((
                    std::ops::Bound::Excluded(&last.subscriber_account),
                    std::ops::Bound::Unbounded,
                ))
                .next()
                .is_some()
        });
        let next = match (more, page.last()) {
            (true, Some(last)) => encode_cursor(&last.subscriber_account),
            _ => String::new(),
        };
        // Counted forwards: from the back, the first `limit` keys of a map cost the whole map.
        let first_page_end = (limit as usize)
            .min(acc.subscribers.len())
            .checked_sub(1)
            .and_then(|i| acc.subscribers.keys().nth(i));
        let next = match (fault, after.as_deref()) {
            // A cursor past everything, a little further each time.
            (Some(CursorFault::Endless), after) if next.is_empty() => {
                encode_cursor(&format!("{}~", after.unwrap_or("")))
            }
            (Some(CursorFault::Repeat), Some(after)) if !next.is_empty() => encode_cursor(after),
            // From the third page on, back to the first page's cursor.
            (Some(CursorFault::Backwards), Some(after))
                if first_page_end.is_some_and(|end| after > end.as_str()) =>
            {
                first_page_end.map(|end| encode_cursor(end)).unwrap_or(next)
            }
            _ => next,
        };
        Ok(api::GetSubscriberInfoResponse {
            next,
            subscriber_num: acc.subscribers.len() as u64,
            subscriber_list: page,
        })
    }
}

fn check_batch(ids: &[String]) -> Result<(), Rejection> {
    if ids.is_empty() || ids.len() > api::MAX_BATCH {
        return fail(
            6017,
            format!(
                "a call takes 1 to {} subscribers, not {}",
                api::MAX_BATCH,
                ids.len()
            ),
        );
    }
    if let Some(bad) = ids.iter().find(|id| !api::is_valid_user_id(id)) {
        return fail(6017, format!("invalid Subscriber_Account {bad:?}"));
    }
    Ok(())
}

// The cursor is opaque to clients; hex keeps it printable whatever the ids contain.
fn encode_cursor(after: &str) -> String {
    after.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(cursor: &str) -> Option<String> {
    if !cursor.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn state(max: u64, existing: &[&str]) -> RemoteState {
        let mut s = RemoteState::default();
        s.seed_account("@TOA#_a", max, &ids(existing), 0);
        s
    }

    #[test]
    fn repeated_add_answers_added_then_already_subscribed() {
        let mut s = state(10, &[]);
        assert_eq!(
            s.add("@TOA#_a", &ids(&["1", "2"]), Rules::default(), 5),
            Ok(vec![1, 1])
        );
        assert_eq!(
            s.add("@TOA#_a", &ids(&["1", "3"]), Rules::default(), 6),
            Ok(vec![2, 1])
        );
    }

    #[test]
    fn a_batch_that_overflows_the_account_fails_whole_and_changes_nothing() {
        let mut s = state(3, &["1"]);
        assert_eq!(
            s.add("@TOA#_a", &ids(&["1", "2", "3", "4"]), Rules::default(), 0)
                .unwrap_err()
                .code,
            130006
        );
        assert_eq!(s.accounts["@TOA#_a"].subscribers.len(), 1);
        assert_eq!(
            s.add("@TOA#_a", &ids(&["1", "2", "3"]), Rules::default(), 0),
            Ok(vec![2, 1, 1])
        );
    }

    #[test]
    fn follow_limit_fails_the_call_or_the_item_by_mode() {
        let mut s = state(10, &[]);
        s.seed_account("@TOA#_b", 10, &ids(&["busy"]), 0);
        let request = Rules {
            follow_limit: 1,
            follow_limit_mode: FollowLimitMode::Request,
            cursor_fault: None,
        };
        assert_eq!(
            s.add("@TOA#_a", &ids(&["x", "busy"]), request, 0)
                .unwrap_err()
                .code,
            130010
        );
        assert!(s.accounts["@TOA#_a"].subscribers.is_empty());
        let item = Rules {
            follow_limit_mode: FollowLimitMode::Item,
            ..request
        };
        assert_eq!(
            s.add("@TOA#_a", &ids(&["x", "busy"]), item, 0),
            Ok(vec![1, 0])
        );
    }

    #[test]
    fn batch_size_and_ids_are_checked_before_anything_else() {
        let mut s = state(1000, &[]);
        let big: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        assert_eq!(
            s.add("@TOA#_a", &big, Rules::default(), 0)
                .unwrap_err()
                .code,
            6017
        );
        assert_eq!(
            s.add("@TOA#_a", &ids(&[""]), Rules::default(), 0)
                .unwrap_err()
                .code,
            6017
        );
        assert_eq!(
            s.add("@TOA#_zz", &ids(&["1"]), Rules::default(), 0)
                .unwrap_err()
                .code,
            130004
        );
    }

    #[test]
    fn paging_walks_every_subscriber_once() {
        let all: Vec<String> = (0..450).map(|i| format!("u{i:04}")).collect();
        let s = state(1000, &all.iter().map(String::as_str).collect::<Vec<_>>());
        let mut seen = Vec::new();
        let mut next = String::new();
        loop {
            let page = s.page("@TOA#_a", 200, &next, None).unwrap();
            assert_eq!(page.subscriber_num, 450);
            seen.extend(
                page.subscriber_list
                    .into_iter()
                    .map(|i| i.subscriber_account),
            );
            if page.next.is_empty() {
                break;
            }
            next = page.next;
        }
        assert_eq!(seen, all);
        assert_eq!(s.page("@TOA#_a", 201, "", None).unwrap_err().code, 6017);
        assert_eq!(s.page("@TOA#_a", 10, "zz", None).unwrap_err().code, 6017);
    }

    #[test]
    fn delete_reports_removed_and_absent() {
        let mut s = state(10, &["1"]);
        assert_eq!(s.delete("@TOA#_a", &ids(&["1", "2"])), Ok(vec![1, 2]));
    }
}
