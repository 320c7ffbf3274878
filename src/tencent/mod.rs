//! Everything about the Tencent Cloud Chat REST API: wire types, error codes, UserSig, endpoints,
//! request pacing and the client. Nothing here knows about manifests or the ledger.

pub mod api;
pub mod client;
pub mod codes;
pub mod endpoint;
pub mod ratelimit;
pub mod usersig;

pub use client::{ApiError, CallObserver, Client, ClientConfig};
pub use codes::ErrorClass;
