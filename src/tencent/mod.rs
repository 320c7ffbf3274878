//! Everything about the Tencent Cloud Chat REST API: wire types, error codes, UserSig, endpoints,
//! request pacing, the checks every answer passes, and the client. Nothing here knows about
//! manifests or the ledger.

pub mod answer;
pub mod api;
pub mod client;
pub mod codes;
pub mod endpoint;
pub mod error;
pub mod ratelimit;
pub mod service;
pub mod usersig;

pub use answer::{AccountInfo, Page};
pub use client::{CallObserver, Client, ClientConfig, Timeouts};
pub use codes::ErrorClass;
pub use error::ApiError;
pub use service::{Api, Call};
