//! The official-account commands' request and answer bodies, with the documented field names.
//!
//! Shared by the client and the emulator. Tests pin the serialized form against the
//! documentation's literal examples so that a misspelt field cannot hide on both sides.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::properties::Properties;
use crate::quote::quote;

/// The REST service every official-account command lives under.
pub(crate) const SERVICE: &str = "official_account_open_http_svc";

/// Most subscribers one add_subscriber or delete_subscriber call may carry.
pub(crate) const MAX_BATCH: usize = 100;
/// Most ids one get_official_account_info call may carry.
pub(crate) const MAX_INFO_IDS: usize = 50;
/// Largest page get_subscriber_info serves.
pub(crate) const MAX_PAGE: u32 = 200;

/// The commands subsync calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    AddSubscriber,
    DeleteSubscriber,
    GetSubscriberInfo,
    GetOfficialAccountInfo,
    CreateOfficialAccount,
    ModifyOfficialAccountBaseInfo,
}

impl Command {
    pub(crate) const ALL: [Command; 6] = [
        Command::AddSubscriber,
        Command::DeleteSubscriber,
        Command::GetSubscriberInfo,
        Command::GetOfficialAccountInfo,
        Command::CreateOfficialAccount,
        Command::ModifyOfficialAccountBaseInfo,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Command::AddSubscriber => "add_subscriber",
            Command::DeleteSubscriber => "delete_subscriber",
            Command::GetSubscriberInfo => "get_subscriber_info",
            Command::GetOfficialAccountInfo => "get_official_account_info",
            Command::CreateOfficialAccount => "create_official_account",
            Command::ModifyOfficialAccountBaseInfo => "modify_official_account_base_info",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields every answer carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct AnswerStatus {
    #[serde(rename = "ActionStatus")]
    pub(crate) action_status: String,
    #[serde(rename = "ErrorCode")]
    pub(crate) error_code: i64,
    #[serde(rename = "ErrorInfo", default)]
    pub(crate) error_info: String,
}

impl AnswerStatus {
    pub(crate) fn ok() -> AnswerStatus {
        AnswerStatus {
            action_status: "OK".into(),
            error_code: 0,
            error_info: String::new(),
        }
    }

    pub(crate) fn fail(code: i64, info: impl Into<String>) -> AnswerStatus {
        AnswerStatus {
            action_status: "FAIL".into(),
            error_code: code,
            error_info: info.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SubscriberRef {
    #[serde(rename = "Subscriber_Account")]
    pub(crate) subscriber_account: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct AddSubscriberRequest {
    #[serde(rename = "Official_Account")]
    pub(crate) official_account: String,
    #[serde(rename = "SubscriberList")]
    pub(crate) subscriber_list: Vec<SubscriberRef>,
}

/// `Result` of one subscriber in an add or delete answer.
pub(crate) mod result {
    pub(crate) const FAILED: i64 = 0;
    /// Added (add) or removed (delete).
    pub(crate) const DONE: i64 = 1;
    /// Already subscribed (add) or was not subscribed (delete).
    pub(crate) const UNCHANGED: i64 = 2;
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SubscriberResult {
    #[serde(rename = "Subscriber_Account")]
    pub subscriber_account: String,
    #[serde(rename = "Result")]
    pub result: i64,
    /// Not documented; read when present so that a per-item limit code is not lost.
    #[serde(rename = "ErrorCode", default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
}

/// The answer of add_subscriber and delete_subscriber.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub(crate) struct SubscriberResults {
    #[serde(rename = "SubscriberList", default)]
    pub(crate) subscriber_list: Vec<SubscriberResult>,
}

/// delete_subscriber in the form of the documentation's sample body (its field table is wrong).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct DeleteSubscriberRequest {
    #[serde(rename = "Official_Account")]
    pub(crate) official_account: String,
    #[serde(rename = "SubscriberToDel_Account")]
    pub(crate) subscriber_to_del_account: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct GetSubscriberInfoRequest {
    #[serde(rename = "Official_Account")]
    pub(crate) official_account: String,
    #[serde(rename = "Limit")]
    pub(crate) limit: u32,
    #[serde(rename = "Next")]
    pub(crate) next: String,
}

/// `MsgFlag` is a string in the documentation and an integer in one SDK.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub(crate) enum MsgFlag {
    Text(String),
    Number(i64),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SubscriberInfo {
    #[serde(rename = "Subscriber_Account")]
    pub(crate) subscriber_account: String,
    #[serde(
        rename = "SubscribeTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) subscribe_time: Option<i64>,
    #[serde(
        rename = "CustomString",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) custom_string: Option<String>,
    #[serde(rename = "MsgFlag", default, skip_serializing_if = "Option::is_none")]
    pub(crate) msg_flag: Option<MsgFlag>,
    #[serde(
        rename = "LastSendMsgTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) last_send_msg_time: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct GetSubscriberInfoResponse {
    #[serde(rename = "Next", default)]
    pub(crate) next: String,
    #[serde(rename = "SubscriberNum", default)]
    pub(crate) subscriber_num: u64,
    #[serde(rename = "SubscriberList", default)]
    pub(crate) subscriber_list: Vec<SubscriberInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct AccountRef {
    #[serde(rename = "Official_Account")]
    pub(crate) official_account: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct GetOfficialAccountInfoRequest {
    #[serde(rename = "OfficialAccountIdList")]
    pub(crate) official_account_id_list: Vec<AccountRef>,
}

/// One item of get_official_account_info's answer; it carries its own status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct OfficialAccountInfo {
    #[serde(flatten)]
    pub(crate) status: AnswerStatus,
    /// Not confirmed to be echoed; the client matches items by order when it is absent.
    #[serde(
        rename = "Official_Account",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) official_account: Option<String>,
    #[serde(
        rename = "Owner_Account",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) owner_account: Option<String>,
    /// Name, Introduction, FaceUrl, Organization, CustomString and MaxSubscriberNum (not
    /// confirmed to be returned).
    #[serde(flatten)]
    pub(crate) fields: AccountFields,
    #[serde(
        rename = "SubscriberNum",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) subscriber_num: Option<u64>,
    #[serde(
        rename = "CreateTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) create_time: Option<i64>,
    #[serde(
        rename = "LastMsgTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) last_msg_time: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct GetOfficialAccountInfoResponse {
    #[serde(rename = "OfficialAccountInfoList", default)]
    pub(crate) official_account_info_list: Vec<OfficialAccountInfo>,
}

/// The account's own fields as the wire names them; each absent one is left out (a request
/// sends only what changes, an answer may not say everything).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountFields {
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        rename = "Introduction",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub introduction: Option<String>,
    #[serde(rename = "FaceUrl", default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    #[serde(
        rename = "Organization",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub organization: Option<String>,
    #[serde(
        rename = "CustomString",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub custom_string: Option<String>,
    #[serde(
        rename = "MaxSubscriberNum",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_subscriber_num: Option<u64>,
}

impl From<&Properties> for AccountFields {
    fn from(p: &Properties) -> AccountFields {
        AccountFields {
            name: p.name.clone(),
            introduction: p.introduction.clone(),
            face_url: p.face_url.clone(),
            organization: p.organization.clone(),
            custom_string: p.custom_string.clone(),
            max_subscriber_num: p.max_subscribers,
        }
    }
}

impl From<AccountFields> for Properties {
    fn from(f: AccountFields) -> Properties {
        Properties {
            name: f.name,
            introduction: f.introduction,
            face_url: f.face_url,
            organization: f.organization,
            custom_string: f.custom_string,
            max_subscribers: f.max_subscriber_num,
        }
    }
}

/// create_official_account: `Owner_Account` and `Name` are required; the other fields are
/// optional (MaxSubscriberNum defaults to 100000).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateOfficialAccountRequest {
    #[serde(rename = "Owner_Account")]
    pub owner_account: String,
    #[serde(
        rename = "OfficialAccountUserID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub official_account_user_id: Option<String>,
    #[serde(flatten)]
    pub fields: AccountFields,
}

/// modify_official_account_base_info: the account and only the fields that change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ModifyOfficialAccountBaseInfoRequest {
    #[serde(rename = "Official_Account")]
    pub(crate) official_account: String,
    #[serde(flatten)]
    pub(crate) fields: AccountFields,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct CreateOfficialAccountResponse {
    #[serde(rename = "OfficialAccountUserID")]
    pub(crate) official_account_user_id: String,
}

/// Why a UserID is not one the service accepts (1 to 32 bytes of printable ASCII).
pub(crate) fn check_user_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty UserID; remove the entry".into());
    }
    if id.len() > 32 {
        return Err(format!(
            "UserID {} is {} bytes; the service allows at most 32",
            quote(id),
            id.len()
        ));
    }
    // Byte by byte first (most UserIDs pass): a non-ASCII character starts with a byte >= 0x80.
    if id.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Ok(());
    }
    if let Some(c) = id.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "UserID {} contains {}; only printable ASCII is allowed",
            quote(id),
            quote(&c.to_string())
        ));
    }
    Ok(())
}

/// True for a UserID the service accepts.
pub(crate) fn is_valid_user_id(id: &str) -> bool {
    check_user_id(id).is_ok()
}

/// Prefix of every official account id.
pub(crate) const ACCOUNT_PREFIX: &str = "@TOA#_";

/// Why an official account id is malformed: it needs the prefix and a name, printable ASCII
/// without spaces, at most 48 bytes.
pub(crate) fn check_account_id(id: &str) -> Result<(), String> {
    if !id.starts_with(ACCOUNT_PREFIX) || id.len() == ACCOUNT_PREFIX.len() {
        return Err(format!(
            "official account {} must start with {ACCOUNT_PREFIX} followed by its name",
            quote(id)
        ));
    }
    if id.len() > 48 {
        return Err(format!(
            "official account {} is {} bytes; ids are at most 48",
            quote(id),
            id.len()
        ));
    }
    if let Some(c) = id.chars().find(|c| !('!'..='~').contains(c)) {
        return Err(format!(
            "official account {} contains {}; only printable ASCII without spaces is allowed",
            quote(id),
            quote(&c.to_string())
        ));
    }
    Ok(())
}

/// True for a well-formed official account id.
pub(crate) fn is_valid_account_id(id: &str) -> bool {
    check_account_id(id).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_request_serializes_exactly_like_the_documentation_example() {
        let req = AddSubscriberRequest {
            official_account: "@TOA#_@TOA#dOEF".into(),
            subscriber_list: ["107867", "966582476"]
                .map(|s| SubscriberRef {
                    subscriber_account: s.into(),
                })
                .to_vec(),
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"Official_Account":"@TOA#_@TOA#dOEF","SubscriberList":[{"Subscriber_Account":"107867"},{"Subscriber_Account":"966582476"}]}"#
        );
    }

    #[test]
    fn delete_request_uses_the_sample_form() {
        let req = DeleteSubscriberRequest {
            official_account: "@TOA#_x".into(),
            subscriber_to_del_account: vec!["a".into()],
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"Official_Account":"@TOA#_x","SubscriberToDel_Account":["a"]}"#
        );
    }

    #[test]
    fn create_and_modify_serialize_like_the_documentation_samples() {
        let create = CreateOfficialAccountRequest {
            owner_account: "107867".into(),
            official_account_user_id: Some("@TOA#_test_id".into()),
            fields: AccountFields {
                name: Some("test_official_account".into()),
                max_subscriber_num: Some(1000),
                ..AccountFields::default()
            },
        };
        assert_eq!(
            serde_json::to_string(&create).unwrap(),
            r#"{"Owner_Account":"107867","OfficialAccountUserID":"@TOA#_test_id","Name":"test_official_account","MaxSubscriberNum":1000}"#
        );
        let modify = ModifyOfficialAccountBaseInfoRequest {
            official_account: "@TOA#_x".into(),
            fields: AccountFields {
                name: Some("new name".into()),
                max_subscriber_num: Some(1000),
                ..AccountFields::default()
            },
        };
        assert_eq!(
            serde_json::to_string(&modify).unwrap(),
            r#"{"Official_Account":"@TOA#_x","Name":"new name","MaxSubscriberNum":1000}"#
        );
    }

    #[test]
    fn msg_flag_is_read_as_string_or_integer() {
        let text: SubscriberInfo =
            serde_json::from_str(r#"{"Subscriber_Account":"a","MsgFlag":"AcceptAndNotify"}"#)
                .unwrap();
        let number: SubscriberInfo =
            serde_json::from_str(r#"{"Subscriber_Account":"a","MsgFlag":1}"#).unwrap();
        assert_eq!(text.msg_flag, Some(MsgFlag::Text("AcceptAndNotify".into())));
        assert_eq!(number.msg_flag, Some(MsgFlag::Number(1)));
    }

    #[test]
    fn user_ids_must_be_short_printable_ascii() {
        assert!(is_valid_user_id("107867"));
        assert!(is_valid_user_id(&"x".repeat(32)));
        assert!(!is_valid_user_id(""));
        assert!(!is_valid_user_id(&"x".repeat(33)));
        assert!(!is_valid_user_id("tab\there"));
        assert!(!is_valid_user_id("héllo"));
    }

    #[test]
    fn account_ids_need_the_prefix_and_fit_48_bytes() {
        assert!(is_valid_account_id("@TOA#_weekly"));
        assert!(is_valid_account_id("@TOA#_@TOA#dOEF"));
        assert!(!is_valid_account_id("weekly"));
        assert!(!is_valid_account_id("@TOA#_"));
        assert!(!is_valid_account_id(&format!("@TOA#_{}", "x".repeat(43))));
    }
}
