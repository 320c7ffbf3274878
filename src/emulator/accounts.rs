//! The emulated service's official accounts themselves: seeding them, describing them
//! (get_official_account_info, every field), creating them (create_official_account) and
//! changing their own fields (modify_official_account_base_info), with the documented limits
//! and codes. Like the rest of the state, every operation checks everything before it changes
//! anything.

use std::collections::BTreeMap;

use super::state::{DEFAULT_MAX_SUBSCRIBERS, Rejection, RemoteAccount, RemoteState, fail};
use crate::properties::{Field, MAX_SUBSCRIBERS_RANGE};
use crate::tencent::api::{self, AccountFields, AnswerStatus, OfficialAccountInfo};

/// 6017 for a field beyond its documented limit (bytes of UTF-8), an empty name, or a
/// MaxSubscriberNum of 0 or beyond the integer's range.
fn check_fields(fields: &AccountFields) -> Result<(), Rejection> {
    let texts = [
        (Field::Name, &fields.name),
        (Field::Introduction, &fields.introduction),
        (Field::FaceUrl, &fields.face_url),
        (Field::Organization, &fields.organization),
        (Field::CustomString, &fields.custom_string),
    ];
    for (field, text) in texts {
        let (Some(text), Some(max)) = (text, field.max_bytes()) else {
            continue;
        };
        if text.len() > max {
            return fail(
                6017,
                format!("{field} is {} bytes; at most {max}", text.len()),
            );
        }
    }
    if fields.name.as_deref() == Some("") {
        return fail(6017, "Name must not be empty");
    }
    if let Some(max) = fields.max_subscriber_num
        && (max == 0 || max > MAX_SUBSCRIBERS_RANGE)
    {
        return fail(6017, format!("MaxSubscriberNum {max} is out of range"));
    }
    Ok(())
}

impl RemoteAccount {
    /// A new account without subscribers; its other fields empty.
    fn new(name: String, owner: String, max_subscribers: u64, created: i64) -> RemoteAccount {
        RemoteAccount {
            name,
            owner,
            max_subscribers,
            created,
            introduction: String::new(),
            face_url: String::new(),
            organization: String::new(),
            custom_string: String::new(),
            subscribers: BTreeMap::new(),
        }
    }

    /// Sets every field `fields` has.
    fn set(&mut self, fields: &AccountFields) {
        let text = |to: &mut String, from: &Option<String>| {
            if let Some(value) = from {
                to.clone_from(value);
            }
        };
        text(&mut self.name, &fields.name);
        text(&mut self.introduction, &fields.introduction);
        text(&mut self.face_url, &fields.face_url);
        text(&mut self.organization, &fields.organization);
        text(&mut self.custom_string, &fields.custom_string);
        if let Some(max) = fields.max_subscriber_num {
            self.max_subscribers = max;
        }
    }

    fn described(&self, id: &str) -> OfficialAccountInfo {
        OfficialAccountInfo {
            status: AnswerStatus::ok(),
            official_account: Some(id.to_owned()),
            owner_account: Some(self.owner.clone()),
            fields: AccountFields {
                name: Some(self.name.clone()),
                introduction: Some(self.introduction.clone()),
                face_url: Some(self.face_url.clone()),
                organization: Some(self.organization.clone()),
                custom_string: Some(self.custom_string.clone()),
                max_subscriber_num: Some(self.max_subscribers),
            },
            subscriber_num: Some(self.subscribers.len() as u64),
            create_time: Some(self.created),
            last_msg_time: Some(0),
        }
    }
}

impl RemoteState {
    /// Creates an account directly (emulator configuration, not the API), named after its id.
    pub fn seed_account(
        &mut self,
        id: &str,
        max_subscribers: u64,
        subscribers: &[String],
        now: i64,
    ) {
        let account = self.accounts.entry(id.to_owned()).or_insert_with(|| {
            let name = id.trim_start_matches(api::ACCOUNT_PREFIX).to_owned();
            RemoteAccount::new(name, "administrator".into(), max_subscribers, now)
        });
        account.max_subscribers = max_subscribers;
        for s in subscribers {
            account.subscribers.entry(s.clone()).or_insert(now);
        }
        self.reindex();
    }

    /// Sets an existing account's own fields and owner directly (emulator configuration).
    pub(crate) fn seed_fields(&mut self, id: &str, fields: &AccountFields, owner: Option<&str>) {
        if let Some(account) = self.accounts.get_mut(id) {
            account.set(fields);
            if let Some(owner) = owner {
                account.owner = owner.to_owned();
            }
        }
    }

    /// get_official_account_info: one item per id, each with its own status and every field.
    pub(crate) fn info(&self, ids: &[String]) -> Result<Vec<OfficialAccountInfo>, Rejection> {
        if ids.is_empty() || ids.len() > api::MAX_INFO_IDS {
            return fail(
                6017,
                format!(
                    "OfficialAccountIdList must hold 1 to {} ids",
                    api::MAX_INFO_IDS
                ),
            );
        }
        Ok(ids
            .iter()
            .map(|id| match self.accounts.get(id) {
                Some(acc) => acc.described(id),
                None => OfficialAccountInfo {
                    status: AnswerStatus::fail(
                        130004,
                        format!("official account {id} does not exist"),
                    ),
                    official_account: Some(id.clone()),
                    owner_account: None,
                    fields: AccountFields::default(),
                    subscriber_num: None,
                    create_time: None,
                    last_msg_time: None,
                },
            })
            .collect())
    }

    /// create_official_account: returns the new id.
    pub(crate) fn create(
        &mut self,
        req: &api::CreateOfficialAccountRequest,
        now: i64,
        random_suffix: &str,
    ) -> Result<String, Rejection> {
        if !api::is_valid_user_id(&req.owner_account) {
            return fail(6017, "Owner_Account is not a valid UserID");
        }
        if req.fields.name.is_none() {
            return fail(6017, "Name is required");
        }
        check_fields(&req.fields)?;
        let id = match &req.official_account_user_id {
            Some(custom)
                if !api::is_valid_account_id(custom) || custom.starts_with("@TOA#_@TOA#") =>
            {
                return fail(
                    130007,
                    format!("{custom} is not a valid custom official account id"),
                );
            }
            Some(custom) => custom.clone(),
            None => format!("@TOA#_@TOA#{random_suffix}"),
        };
        if self.accounts.contains_key(&id) {
            return fail(
                130008,
                format!("official account id {id} is already in use"),
            );
        }
        let owner = req.owner_account.clone();
        let mut account = RemoteAccount::new(String::new(), owner, DEFAULT_MAX_SUBSCRIBERS, now);
        account.set(&req.fields);
        self.accounts.insert(id.clone(), account);
        Ok(id)
    }

    /// modify_official_account_base_info: sets the fields given. A limit below the account's
    /// count is taken as it is (the documentation does not say otherwise); adds then fail with
    /// 130006 until subscribers leave.
    pub(crate) fn modify(&mut self, id: &str, fields: &AccountFields) -> Result<(), Rejection> {
        check_fields(fields)?;
        let Some(account) = self.accounts.get_mut(id) else {
            return fail(130004, format!("official account {id} does not exist"));
        };
        account.set(fields);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: Option<&str>, name: Option<&str>) -> api::CreateOfficialAccountRequest {
        api::CreateOfficialAccountRequest {
            owner_account: "admin".into(),
            official_account_user_id: id.map(str::to_owned),
            fields: AccountFields {
                name: name.map(str::to_owned),
                ..AccountFields::default()
            },
        }
    }

    #[test]
    fn create_assigns_or_checks_ids() {
        let mut s = RemoteState::default();
        assert_eq!(
            s.create(&req(None, Some("n")), 0, "dOEF"),
            Ok("@TOA#_@TOA#dOEF".into())
        );
        assert_eq!(
            s.create(&req(Some("@TOA#_news"), Some("n")), 0, ""),
            Ok("@TOA#_news".into())
        );
        let code = |r: Result<String, Rejection>| r.unwrap_err().code;
        assert_eq!(
            code(s.create(&req(Some("@TOA#_news"), Some("n")), 0, "")),
            130008
        );
        assert_eq!(
            code(s.create(&req(Some("@TOA#_@TOA#x"), Some("n")), 0, "")),
            130007
        );
        assert_eq!(code(s.create(&req(Some("@TOA#_y"), None), 0, "")), 6017);
        assert_eq!(
            s.accounts["@TOA#_news"].max_subscribers,
            DEFAULT_MAX_SUBSCRIBERS
        );
    }

    #[test]
    fn create_and_modify_keep_every_field_within_its_limits() {
        let mut s = RemoteState::default();
        let mut full = req(Some("@TOA#_a"), Some("A"));
        full.fields.introduction = Some("intro".into());
        full.fields.max_subscriber_num = Some(80);
        s.create(&full, 0, "").unwrap();
        let info = s.info(&["@TOA#_a".into()]).unwrap().remove(0);
        assert_eq!(info.fields.introduction.as_deref(), Some("intro"));
        assert_eq!(info.fields.max_subscriber_num, Some(80));
        assert_eq!(info.owner_account.as_deref(), Some("admin"));
        let rename = AccountFields {
            name: Some("B".into()),
            ..AccountFields::default()
        };
        s.modify("@TOA#_a", &rename).unwrap();
        let info = s.info(&["@TOA#_a".into()]).unwrap().remove(0);
        assert_eq!(info.fields.name.as_deref(), Some("B"));
        assert_eq!(info.fields.introduction.as_deref(), Some("intro"));
        let code = |f: AccountFields| s.clone().modify("@TOA#_a", &f).unwrap_err().code;
        assert_eq!(
            code(AccountFields {
                name: Some("x".repeat(151)),
                ..AccountFields::default()
            }),
            6017
        );
        assert_eq!(
            code(AccountFields {
                custom_string: Some("x".repeat(3001)),
                ..AccountFields::default()
            }),
            6017
        );
        assert_eq!(
            code(AccountFields {
                max_subscriber_num: Some(0),
                ..AccountFields::default()
            }),
            6017
        );
        assert_eq!(s.modify("@TOA#_zz", &rename).unwrap_err().code, 130004);
    }
}
