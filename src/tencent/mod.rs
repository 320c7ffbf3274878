//! Everything about the Tencent Cloud Chat REST API: wire types, error codes, UserSig, endpoints,
//! request pacing, the checks every answer passes, and the client. Nothing here knows about
//! manifests or the ledger.

pub(crate) mod answer;
pub mod api;
pub(crate) mod client;
pub(crate) mod codes;
pub mod endpoint;
pub(crate) mod error;
pub(crate) mod ratelimit;
pub(crate) mod service;
pub mod usersig;

pub(crate) use answer::AccountInfo;
pub(crate) use client::{CallObserver, Timeouts};
pub use client::{Client, ClientConfig};
pub use codes::ErrorClass;
pub use error::ApiError;
pub use service::Api;
