//! The calls subsync makes, as a trait: [`super::Client`] makes them over HTTP; tests make
//! them in-process against the emulator's rules, under paused time.
//!
//! Every call is one request: pacing and retrying belong to the caller. Answers arrive already
//! checked against the protocol ([`super::answer`]).

use std::future::Future;
use std::pin::Pin;

use super::answer::{AccountInfo, Page};
use super::api::{CreateOfficialAccountRequest, SubscriberResult};
use super::error::ApiError;
use crate::properties::Properties;

/// A call in flight.
pub(crate) type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// The official-account API as subsync uses it.
pub trait Api: Send + Sync {
    /// add_subscriber for at most 100 members; the results are matched by UserID.
    fn add_subscriber<'a>(
        &'a self,
        account: &'a str,
        members: &'a [String],
    ) -> Call<'a, Vec<SubscriberResult>>;

    /// delete_subscriber for at most 100 members.
    fn delete_subscriber<'a>(
        &'a self,
        account: &'a str,
        members: &'a [String],
    ) -> Call<'a, Vec<SubscriberResult>>;

    /// One page of `account`'s subscribers after the cursor `next` (`""` for the first).
    fn subscriber_page<'a>(&'a self, account: &'a str, next: &'a str) -> Call<'a, Page>;

    /// get_official_account_info for at most 50 accounts, each paired with its item.
    fn account_info<'a>(&'a self, accounts: &'a [String]) -> Call<'a, Vec<(String, AccountInfo)>>;

    /// create_official_account; the new account's id (the custom one it asked for).
    fn create_account<'a>(&'a self, request: &'a CreateOfficialAccountRequest) -> Call<'a, String>;

    /// modify_official_account_base_info with exactly the fields `changes` holds.
    fn modify_account<'a>(&'a self, account: &'a str, changes: &'a Properties) -> Call<'a, ()>;

    /// True once the endpoint has answered anything at all: from then on a failed connection
    /// is a blip, before it a wrong endpoint or a closed network path.
    fn has_answered(&self) -> bool;
}
