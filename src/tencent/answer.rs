//! What an answer may say, checked before anything in it is used.
//!
//! The service's answers are input from outside: a proxy, a misbehaving gateway or a
//! compromised network path may send anything. An answer that breaks the documented protocol
//! (items nobody asked about, more items than were sent or asked for, a `Result` outside 0-2,
//! a UserID no service could hold, a count no account can reach) is refused whole, with the
//! reason, and nothing in it is used: these functions turn the wire types into the lean values
//! the rest of subsync keeps, or say why they cannot.

use std::collections::HashSet;

use super::api::{self, GetSubscriberInfoResponse, OfficialAccountInfo, SubscriberResult, result};
use crate::properties::{Field, Properties, Value};
use crate::quote::quote;
use crate::words::count;

/// Largest answer read, per command: what the documented answers can hold, with room to
/// spare. Reading stops at the cap.
pub(crate) fn max_answer_bytes(command: api::Command) -> usize {
    match command {
        // 100 items of a UserID, a Result and perhaps an ErrorCode: about 12 KB.
        api::Command::AddSubscriber | api::Command::DeleteSubscriber => 64 << 10,
        // 50 items of every field at its limit (4,550 bytes of text, more when escaped), an
        // owner and a few numbers: about 250 KB, or three times that fully escaped.
        api::Command::GetOfficialAccountInfo => 1 << 20,
        // 200 items of a UserID, a CustomString and a few numbers.
        api::Command::GetSubscriberInfo => 1 << 20,
        api::Command::CreateOfficialAccount | api::Command::ModifyOfficialAccountBaseInfo => {
            16 << 10
        }
    }
}

/// Longest `Next` cursor accepted: an opaque token, not a payload.
pub(crate) const MAX_CURSOR: usize = 1024;

/// Largest MaxSubscriberNum or SubscriberNum believed: the API's integer range, which is also
/// the most a manifest may declare (far above any account the service sells).
pub(crate) const PLAUSIBLE_COUNT: u64 = crate::properties::MAX_SUBSCRIBERS_RANGE;

/// One page of a live list, as kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The cursor of the next page; empty on the last.
    pub next: String,
    pub subscribers: Vec<String>,
}

/// What get_official_account_info said about one account, as kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountInfo {
    /// 0, or the item's own error code.
    pub code: i64,
    pub max_subscribers: Option<u64>,
    pub subscriber_num: Option<u64>,
    /// The account's own fields as described (MaxSubscriberNum too, when said).
    pub properties: Properties,
    /// Owner_Account, when said.
    pub owner: Option<String>,
}

/// The items of an add_subscriber or delete_subscriber answer to a batch of `members`.
pub(crate) fn batch(
    members: &[String],
    items: Vec<SubscriberResult>,
) -> Result<Vec<SubscriberResult>, String> {
    if items.len() > members.len() {
        return Err(format!(
            "{} for a batch of {}",
            count(items.len() as u64, "result item", "result items"),
            members.len()
        ));
    }
    let sent: HashSet<&str> = members.iter().map(String::as_str).collect();
    let mut seen = HashSet::with_capacity(items.len());
    for item in &items {
        let id = item.subscriber_account.as_str();
        if !sent.contains(id) {
            return Err(format!(
                "a result for {}, who was not in the batch",
                quote(id)
            ));
        }
        if !seen.insert(id) {
            return Err(format!("two results for {}", quote(id)));
        }
        if !matches!(
            item.result,
            result::FAILED | result::DONE | result::UNCHANGED
        ) {
            return Err(format!(
                "Result {} for {}; the documented values are 0, 1 and 2",
                item.result,
                quote(id)
            ));
        }
    }
    Ok(items)
}

/// A page of get_subscriber_info asked for with `limit`.
pub(crate) fn page(limit: u32, answer: GetSubscriberInfoResponse) -> Result<Page, String> {
    if answer.subscriber_list.len() > limit as usize {
        return Err(format!(
            "a page of {} subscribers for a Limit of {limit}",
            answer.subscriber_list.len()
        ));
    }
    if answer.next.len() > MAX_CURSOR || answer.next.chars().any(|c| !(' '..='~').contains(&c)) {
        return Err(format!(
            "the cursor {} is not a short printable token",
            quote(&answer.next)
        ));
    }
    let mut seen = HashSet::with_capacity(answer.subscriber_list.len());
    let mut subscribers = Vec::with_capacity(answer.subscriber_list.len());
    for item in answer.subscriber_list {
        let id = item.subscriber_account;
        api::check_user_id(&id).map_err(|why| format!("a listed subscriber: {why}"))?;
        if !seen.insert(id.clone()) {
            return Err(format!("{} listed twice on one page", quote(&id)));
        }
        subscribers.push(id);
    }
    Ok(Page {
        next: answer.next,
        subscribers,
    })
}

/// The items of get_official_account_info asked about `asked` (at most 50), each paired with
/// its account: by the id it echoes, else (when none echoes one) by order.
pub(crate) fn info(
    asked: &[String],
    items: Vec<OfficialAccountInfo>,
) -> Result<Vec<(String, AccountInfo)>, String> {
    if items.len() > asked.len() {
        return Err(format!(
            "{} for {} asked about",
            count(items.len() as u64, "item", "items"),
            count(asked.len() as u64, "account", "accounts")
        ));
    }
    let echoed = items.iter().all(|i| i.official_account.is_some());
    if !echoed && items.len() != asked.len() {
        return Err(format!(
            "{} without their account ids for {} asked about",
            count(items.len() as u64, "item", "items"),
            count(asked.len() as u64, "account", "accounts")
        ));
    }
    let wanted: HashSet<&str> = asked.iter().map(String::as_str).collect();
    let mut seen = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let id = match item.official_account {
            Some(id) if echoed => id,
            _ => asked[index].clone(),
        };
        if !wanted.contains(id.as_str()) {
            return Err(format!(
                "an item for {}, which was not asked about",
                quote(&id)
            ));
        }
        if !seen.insert(id.clone()) {
            return Err(format!("two items for {}", quote(&id)));
        }
        for (what, count) in [
            ("MaxSubscriberNum", item.fields.max_subscriber_num),
            ("SubscriberNum", item.subscriber_num),
        ] {
            if count.is_some_and(|n| n > PLAUSIBLE_COUNT) {
                return Err(format!(
                    "{what} {} for {}, beyond any account",
                    count.unwrap_or_default(),
                    quote(&id)
                ));
            }
        }
        let properties = Properties::from(item.fields);
        described(&id, &properties)?;
        let owner = match item.owner_account {
            Some(owner) if owner.is_empty() => None,
            Some(owner) if !api::is_valid_user_id(&owner) => {
                return Err(format!(
                    "Owner_Account {} for {}, which no UserID can be",
                    quote(&owner),
                    quote(&id)
                ));
            }
            owner => owner,
        };
        out.push((
            id,
            AccountInfo {
                code: item.status.error_code,
                max_subscribers: properties.max_subscribers,
                subscriber_num: item.subscriber_num,
                properties,
                owner,
            },
        ));
    }
    Ok(out)
}

/// Refuses an account's own field beyond its documented limit: no account can hold it.
fn described(id: &str, properties: &Properties) -> Result<(), String> {
    for (field, value) in properties.fields() {
        if let (Some(max), Value::Text(text)) = (field.max_bytes(), &value)
            && text.len() > max
        {
            return Err(format!(
                "{} of {} bytes for {}, beyond the documented {max}",
                wire_name(field),
                text.len(),
                quote(id)
            ));
        }
    }
    Ok(())
}

fn wire_name(field: Field) -> &'static str {
    match field {
        Field::Name => "Name",
        Field::Introduction => "Introduction",
        Field::FaceUrl => "FaceUrl",
        Field::Organization => "Organization",
        Field::CustomString => "CustomString",
        Field::MaxSubscribers => "MaxSubscriberNum",
    }
}

/// The id create_official_account answered, for a request that asked for `asked` (a custom
/// id) or for one the service assigns.
pub(crate) fn created(asked: Option<&str>, answered: String) -> Result<String, String> {
    if !api::is_valid_account_id(&answered) {
        return Err(format!(
            "OfficialAccountUserID {} is no official account id",
            quote(&answered)
        ));
    }
    match asked {
        Some(asked) if asked != answered => Err(format!(
            "OfficialAccountUserID {} for a request that asked for {}",
            quote(&answered),
            quote(asked)
        )),
        _ => Ok(answered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tencent::api::{AnswerStatus, SubscriberInfo};

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("u{i}")).collect()
    }

    fn item(id: &str, result: i64) -> SubscriberResult {
        SubscriberResult {
            subscriber_account: id.into(),
            result,
            error_code: None,
        }
    }

    #[test]
    fn a_batch_answer_may_only_speak_of_the_members_sent() {
        assert!(batch(&members(2), vec![item("u0", 1), item("u1", 2)]).is_ok());
        let err = batch(&members(2), vec![item("u0", 1), item("x", 1)]).unwrap_err();
        assert!(err.contains("\"x\", who was not in the batch"), "{err}");
        let err = batch(&members(1), vec![item("u0", 1), item("u0", 1)]).unwrap_err();
        assert!(err.contains("2 result items for a batch of 1"), "{err}");
        let err = batch(&members(2), vec![item("u0", 1), item("u0", 2)]).unwrap_err();
        assert!(err.contains("two results"), "{err}");
        let err = batch(&members(1), vec![item("u0", 7)]).unwrap_err();
        assert!(err.contains("Result 7"), "{err}");
    }

    fn listed(ids: &[&str], next: &str) -> GetSubscriberInfoResponse {
        GetSubscriberInfoResponse {
            next: next.into(),
            subscriber_num: u64::MAX,
            subscriber_list: ids
                .iter()
                .map(|id| SubscriberInfo {
                    subscriber_account: (*id).into(),
                    subscribe_time: None,
                    custom_string: None,
                    msg_flag: None,
                    last_send_msg_time: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_page_keeps_only_valid_user_ids_within_its_limit() {
        let kept = page(2, listed(&["a", "b"], "c1")).unwrap();
        assert_eq!(kept.subscribers, ["a", "b"]);
        assert!(
            page(1, listed(&["a", "b"], ""))
                .unwrap_err()
                .contains("Limit of 1")
        );
        for bad in ["", "new\nline", "\u{1b}[2J", "\u{202e}rtl", "x\0y"] {
            let err = page(5, listed(&["ok", bad], "")).unwrap_err();
            assert!(!err.contains('\u{1b}') && !err.contains('\n'), "{err}");
        }
        let long = "x".repeat(100_000);
        assert!(page(5, listed(&[&long], "")).unwrap_err().contains("bytes"));
        assert!(page(5, listed(&["a"], &"n".repeat(5000))).is_err());
        assert!(
            page(5, listed(&["a", "a"], ""))
                .unwrap_err()
                .contains("twice")
        );
    }

    fn described(id: Option<&str>, max: Option<u64>) -> OfficialAccountInfo {
        OfficialAccountInfo {
            status: AnswerStatus::ok(),
            official_account: id.map(str::to_owned),
            owner_account: None,
            fields: api::AccountFields {
                max_subscriber_num: max,
                ..api::AccountFields::default()
            },
            subscriber_num: Some(1),
            create_time: None,
            last_msg_time: None,
        }
    }

    #[test]
    fn account_info_keeps_every_field_and_refuses_what_no_account_can_hold() {
        let asked = vec!["@TOA#_a".to_owned()];
        let mut item = described(Some("@TOA#_a"), Some(80));
        item.owner_account = Some("admin".into());
        item.fields.name = Some("周刊 \u{1b}[31m".into());
        let kept = info(&asked, vec![item.clone()]).unwrap();
        assert_eq!(
            kept[0].1.properties.name.as_deref(),
            Some("周刊 \u{1b}[31m")
        );
        assert_eq!(kept[0].1.properties.max_subscribers, Some(80));
        assert_eq!(kept[0].1.owner.as_deref(), Some("admin"));
        item.fields.custom_string = Some("x".repeat(3001));
        let err = info(&asked, vec![item.clone()]).unwrap_err();
        assert!(err.contains("CustomString of 3001 bytes"), "{err}");
        item.fields.custom_string = None;
        item.owner_account = Some("\u{1b}]8;;evil".into());
        let err = info(&asked, vec![item]).unwrap_err();
        assert!(
            err.contains("Owner_Account") && !err.contains('\u{1b}'),
            "{err}"
        );
    }

    #[test]
    fn a_created_id_must_be_the_one_asked_for() {
        assert_eq!(
            created(Some("@TOA#_a"), "@TOA#_a".into()),
            Ok("@TOA#_a".into())
        );
        assert!(created(Some("@TOA#_a"), "@TOA#_b".into()).is_err());
        assert!(created(None, "@TOA#_@TOA#x1".into()).is_ok());
        assert!(created(None, "nope".into()).is_err());
    }

    #[test]
    fn account_info_items_match_by_id_when_echoed_and_by_order_otherwise() {
        let asked = vec!["@TOA#_a".to_owned(), "@TOA#_b".to_owned()];
        let matched = info(
            &asked,
            vec![
                described(Some("@TOA#_b"), Some(2)),
                described(Some("@TOA#_a"), Some(1)),
            ],
        )
        .unwrap();
        assert_eq!(matched[0].0, "@TOA#_b");
        assert_eq!(matched[0].1.max_subscribers, Some(2));
        let matched = info(
            &asked,
            vec![described(None, Some(1)), described(None, Some(2))],
        )
        .unwrap();
        assert_eq!(matched[1].0, "@TOA#_b");
    }

    #[test]
    fn account_info_about_accounts_never_asked_about_is_refused() {
        let asked = vec!["@TOA#_a".to_owned()];
        let err = info(&asked, vec![described(Some("@TOA#_evil"), Some(1))]).unwrap_err();
        assert!(err.contains("not asked about"), "{err}");
        let err = info(
            &asked,
            vec![described(None, Some(1)), described(None, Some(1))],
        )
        .unwrap_err();
        assert!(err.contains("2 items for 1"), "{err}");
        let err = info(&asked, vec![described(Some("@TOA#_a"), Some(u64::MAX))]).unwrap_err();
        assert!(err.contains("beyond any account"), "{err}");
    }
}
