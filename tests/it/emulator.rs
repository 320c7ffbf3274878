//! The client and the emulator against each other: the documented example, each error path,
//! paging, faults, and the emulator's own endpoints.

use crate::common::{KEY, Remote, SDKAPPID, block_on};
use subsync::emulator::{Emulator, FollowLimitMode};
use subsync::tencent::api::{self, Command};
use subsync::tencent::endpoint::Endpoint;
use subsync::tencent::usersig::{self, SecretKey};
use subsync::tencent::{Api, ApiError, Client, ClientConfig};

const SEED_ACCOUNT: &str = "@TOA#_@TOA#dOEF";
/// The documentation's add_subscriber example body, byte for byte.
const SEED_BODY: &str = r#"{"Official_Account":"@TOA#_@TOA#dOEF","SubscriberList":[{"Subscriber_Account":"107867"},{"Subscriber_Account":"966582476"}]}"#;

fn client(emulator: &Emulator) -> Client {
    client_with(emulator, SDKAPPID, "administrator", KEY)
}

fn client_with(emulator: &Emulator, sdkappid: u64, identifier: &str, key: &str) -> Client {
    let endpoint = Endpoint::parse(&emulator.url()).unwrap();
    Client::new(ClientConfig::new(
        endpoint,
        sdkappid,
        identifier.into(),
        SecretKey::new(key).unwrap(),
    ))
    .unwrap()
}

fn code(result: Result<impl std::fmt::Debug, ApiError>) -> i64 {
    match result {
        Err(e) => e.code(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Posts `body` as is, with a valid signature, and returns the JSON answer.
fn raw_post(base_url: &str, command: &str, body: &str) -> serde_json::Value {
    let sig = usersig::generate(
        &SecretKey::new(KEY).unwrap(),
        SDKAPPID,
        "administrator",
        subsync::clock::unix_now() as i64,
        600,
    );
    let url = format!(
        "{base_url}/v4/official_account_open_http_svc/{command}?sdkappid={SDKAPPID}&identifier=administrator&usersig={}&random=12345&contenttype=json",
        sig.as_str()
    );
    block_on(async {
        let answer = reqwest::Client::new()
            .post(url)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        answer.json().await.unwrap()
    })
}

/// GETs `url` and returns the JSON answer.
fn get_json(url: String) -> serde_json::Value {
    block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}

#[test]
fn the_documented_add_subscriber_example_gets_the_documented_answer() {
    let emulator = Remote::default()
        .account(SEED_ACCOUNT, 100_000, &[])
        .start();
    let answer = raw_post(&emulator.url(), "add_subscriber", SEED_BODY);
    assert_eq!(
        answer,
        serde_json::json!({
            "ActionStatus": "OK",
            "ErrorCode": 0,
            "ErrorInfo": "",
            "SubscriberList": [
                {"Subscriber_Account": "107867", "Result": 1},
                {"Subscriber_Account": "966582476", "Result": 1}
            ]
        })
    );
}

#[test]
fn a_repeated_add_answers_added_then_already_subscribed() {
    let emulator = Remote::default()
        .account(SEED_ACCOUNT, 100_000, &[])
        .start();
    let c = client(&emulator);
    let first = block_on(c.add_subscriber(SEED_ACCOUNT, &strings(&["107867"]))).unwrap();
    let second = block_on(c.add_subscriber(SEED_ACCOUNT, &strings(&["107867"]))).unwrap();
    assert_eq!((first[0].result, second[0].result), (1, 2));
    let state = emulator.state();
    assert_eq!(
        state.accounts[SEED_ACCOUNT]
            .subscribers
            .keys()
            .collect::<Vec<_>>(),
        ["107867"]
    );
}

#[test]
fn batches_over_one_hundred_and_invalid_ids_answer_6017() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let c = client(&emulator);
    let too_many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    assert_eq!(code(block_on(c.add_subscriber("@TOA#_a", &too_many))), 6017);
    assert_eq!(
        code(block_on(c.add_subscriber(
            "@TOA#_a",
            &strings(&["ok", &"x".repeat(33)])
        ))),
        6017
    );
    assert_eq!(
        code(block_on(c.delete_subscriber("@TOA#_a", &too_many))),
        6017
    );
    assert!(emulator.state().accounts["@TOA#_a"].subscribers.is_empty());
}

#[test]
fn unknown_accounts_answer_130004() {
    let emulator = Remote::default().start();
    assert_eq!(
        code(block_on(
            client(&emulator).add_subscriber("@TOA#_nope", &strings(&["1"]))
        )),
        130004
    );
}

#[test]
fn a_full_account_answers_130006_and_keeps_its_subscribers() {
    let emulator = Remote::default().account("@TOA#_a", 2, &["x"]).start();
    let c = client(&emulator);
    assert_eq!(
        code(block_on(c.add_subscriber("@TOA#_a", &strings(&["y", "z"])))),
        130006
    );
    assert_eq!(
        block_on(c.add_subscriber("@TOA#_a", &strings(&["x", "y"]))).unwrap()[1].result,
        1
    );
    assert_eq!(emulator.state().accounts["@TOA#_a"].subscribers.len(), 2);
}

#[test]
fn the_follow_limit_fails_the_call_in_request_mode_and_the_item_in_item_mode() {
    for mode in [FollowLimitMode::Request, FollowLimitMode::Item] {
        let emulator = Remote::default()
            .follow_limit(1, mode)
            .account("@TOA#_a", 10, &["busy"])
            .account("@TOA#_b", 10, &[])
            .start();
        let answer =
            block_on(client(&emulator).add_subscriber("@TOA#_b", &strings(&["free", "busy"])));
        match mode {
            FollowLimitMode::Request => assert_eq!(code(answer), 130010),
            FollowLimitMode::Item => {
                let items = answer.unwrap();
                assert_eq!((items[0].result, items[1].result), (1, 0));
            }
        }
    }
}

#[test]
fn calls_beyond_the_configured_rate_answer_60007() {
    let emulator = Remote::default().qps(3).account("@TOA#_a", 10, &[]).start();
    let c = client(&emulator);
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(
            block_on(c.subscriber_page("@TOA#_a", ""))
                .map(|_| 0)
                .unwrap_or_else(|e| e.code()),
        );
    }
    // Five calls inside one second against a limit of three per second.
    assert_eq!(codes, [0, 0, 0, 60007, 60007]);
}

#[test]
fn a_body_that_is_not_json_answers_60003() {
    let emulator = Remote::default().account("@TOA#_a", 10, &[]).start();
    let answer = raw_post(&emulator.url(), "add_subscriber", "{not json");
    assert_eq!(answer["ErrorCode"], 60003);
    assert_eq!(answer["ActionStatus"], "FAIL");
}

#[test]
fn missing_query_parameters_answer_60002() {
    let emulator = Remote::default().start();
    let url = format!(
        "{}/v4/official_account_open_http_svc/add_subscriber?sdkappid={SDKAPPID}",
        emulator.url()
    );
    let answer: serde_json::Value = block_on(async {
        let answer = reqwest::Client::new().post(url).body("{}").send().await;
        answer.unwrap().json().await.unwrap()
    });
    assert_eq!(answer["ErrorCode"], 60002);
}

#[test]
fn usersig_problems_answer_their_documented_codes() {
    let emulator = Remote::default().account("@TOA#_a", 10, &[]).start();
    let add = |c: Client| code(block_on(c.add_subscriber("@TOA#_a", &strings(&["1"]))));
    assert_eq!(
        add(client_with(
            &emulator,
            SDKAPPID,
            "administrator",
            "wrong-key"
        )),
        70009
    );
    assert_eq!(
        add(client_with(&emulator, SDKAPPID + 1, "administrator", KEY)),
        60006
    );
    assert_eq!(add(client_with(&emulator, SDKAPPID, "someone", KEY)), 60010);

    let key = SecretKey::new(KEY).unwrap();
    let now = subsync::clock::unix_now() as i64;
    let post = |sig: String, identifier: &'static str| {
        let url = format!(
            "{}/v4/official_account_open_http_svc/add_subscriber?sdkappid={SDKAPPID}&identifier={identifier}&usersig={sig}&random=1&contenttype=json",
            emulator.url()
        );
        let v: serde_json::Value = block_on(async {
            let answer = reqwest::Client::new().post(url).body("{}").send().await;
            answer.unwrap().json().await.unwrap()
        });
        v["ErrorCode"].as_i64().unwrap()
    };
    let expired = usersig::generate(&key, SDKAPPID, "administrator", now - 1000, 10);
    assert_eq!(post(expired.as_str().to_owned(), "administrator"), 70001);
    assert_eq!(post("garbage".into(), "administrator"), 70003);
    let other_identifier = usersig::generate(&key, SDKAPPID, "someone", now, 600);
    assert_eq!(
        post(other_identifier.as_str().to_owned(), "administrator"),
        70013
    );
    let other_app = usersig::generate(&key, SDKAPPID + 1, "administrator", now, 600);
    assert_eq!(post(other_app.as_str().to_owned(), "administrator"), 70014);
}

#[test]
fn an_expired_usersig_is_renewed_once_then_reported() {
    // The server's clock is two days ahead: every UserSig the client signs looks expired.
    let emulator = Remote::default()
        .clock_skew_secs(2 * 86_400)
        .account("@TOA#_a", 10, &[])
        .start();
    let error =
        block_on(client(&emulator).add_subscriber("@TOA#_a", &strings(&["1"]))).unwrap_err();
    assert_eq!(error.code(), 70001);
    assert_eq!(
        emulator.stats().count(Command::AddSubscriber, "70001"),
        2,
        "one send and exactly one renewal"
    );
}

#[test]
fn paging_lists_every_subscriber_across_pages() {
    let all: Vec<String> = (0..450).map(|i| format!("u{i:04}")).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let emulator = Remote::default().account("@TOA#_a", 1000, &refs).start();
    let c = client(&emulator);
    let (mut listed, mut next) = (Vec::new(), String::new());
    loop {
        let page = block_on(c.subscriber_page("@TOA#_a", &next)).unwrap();
        listed.extend(page.subscribers);
        if page.next.is_empty() {
            break;
        }
        next = page.next;
    }
    assert_eq!(listed, all);
    assert_eq!(emulator.stats().calls(Command::GetSubscriberInfo), 3);
}

#[test]
fn account_info_reports_limits_and_missing_accounts_per_item() {
    let emulator = Remote::default().account("@TOA#_a", 50, &["x"]).start();
    let ids: Vec<String> = (0..60)
        .map(|i| {
            if i == 0 {
                "@TOA#_a".to_string()
            } else {
                format!("@TOA#_n{i}")
            }
        })
        .collect();
    let c = client(&emulator);
    let mut info = block_on(c.account_info(&ids[..50])).unwrap();
    info.extend(block_on(c.account_info(&ids[50..])).unwrap());
    assert_eq!(info.len(), 60);
    assert_eq!(
        (info[0].1.max_subscribers, info[0].1.subscriber_num),
        (Some(50), Some(1))
    );
    assert_eq!(info[1].1.code, 130004);
    // One call carries at most 50 ids; the client refuses more rather than split it itself.
    assert_eq!(emulator.stats().calls(Command::GetOfficialAccountInfo), 2);
    assert!(matches!(
        block_on(c.account_info(&ids)),
        Err(ApiError::Encode { .. })
    ));
}

#[test]
fn created_accounts_get_an_assigned_id_and_the_default_limit() {
    let emulator = Remote::default().start();
    let req = api::CreateOfficialAccountRequest {
        owner_account: "admin".into(),
        official_account_user_id: None,
        fields: api::AccountFields {
            name: Some("News".into()),
            ..api::AccountFields::default()
        },
    };
    let id = block_on(client(&emulator).create_account(&req)).unwrap();
    assert!(id.starts_with("@TOA#_@TOA#"), "{id}");
    assert_eq!(emulator.state().accounts[&id].max_subscribers, 100_000);
}

#[test]
fn injected_faults_never_change_anything() {
    let emulator = Remote::default()
        .fault_rate(1.0)
        .account("@TOA#_a", 10, &[])
        .start();
    let c = client(&emulator);
    let mut kinds = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let e = block_on(c.add_subscriber("@TOA#_a", &strings(&["1"]))).unwrap_err();
        kinds.insert(match e {
            ApiError::Service { code, .. } => code.to_string(),
            ApiError::Http { status, .. } => format!("http {status}"),
            ApiError::Transport { .. } => "dropped".into(),
            ApiError::Protocol { .. } => "protocol".into(),
            ApiError::Encode { .. } => "encode".into(),
            ApiError::Unreachable { .. } => "unreachable".into(),
        });
        assert_eq!(e.class(), subsync::tencent::ErrorClass::Retryable);
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["10004", "20005", "dropped", "http 502"]
    );
    assert!(emulator.state().accounts["@TOA#_a"].subscribers.is_empty());
}

#[test]
fn state_and_stats_endpoints_report_what_happened() {
    let emulator = Remote::default().account("@TOA#_a", 7, &["b", "a"]).start();
    block_on(client(&emulator).add_subscriber("@TOA#_missing", &strings(&["1"]))).unwrap_err();
    let state = get_json(format!("{}/emulator/state", emulator.url()));
    assert_eq!(
        state,
        serde_json::json!({"accounts": {"@TOA#_a": {"name": "a", "owner": "administrator", "maxSubscribers": 7, "subscribers": ["a", "b"]}}})
    );
    let stats = get_json(format!("{}/emulator/stats", emulator.url()));
    assert_eq!(stats["by_command"]["add_subscriber"]["130004"], 1);
    assert_eq!(stats["peak_in_flight"], 1);
}

#[test]
fn the_emulator_command_announces_its_port_and_answers_the_documented_example() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("emulator.yaml");
    std::fs::write(
        &config,
        format!("sdkappid: {SDKAPPID}\nsecretKey: {KEY}\naccounts:\n  - id: \"{SEED_ACCOUNT}\"\n"),
    )
    .unwrap();
    let mut child = crate::common::KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_subsync"))
            .args(["emulator", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")
        .map(|port| format!("http://127.0.0.1:{port}"));
    let url = url.unwrap_or_else(|| panic!("unexpected first line {first:?}"));

    let first = raw_post(&url, "add_subscriber", SEED_BODY);
    let again = raw_post(&url, "add_subscriber", SEED_BODY);
    drop(child);
    assert_eq!(first["ActionStatus"], "OK");
    assert_eq!(
        first["SubscriberList"],
        serde_json::json!([{"Subscriber_Account": "107867", "Result": 1}, {"Subscriber_Account": "966582476", "Result": 1}])
    );
    assert_eq!(again["SubscriberList"][0]["Result"], 2);
}
