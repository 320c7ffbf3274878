//! subsync keeps Tencent Cloud Chat official accounts' subscribers equal to YAML manifests.
//!
//! The library's public API is what the binary (`cli::main`) and the integration tests and
//! benchmarks need, and no more: everything else is `pub(crate)` (`unreachable_pub` keeps it
//! so), so that rustc reports what nothing uses.
#![warn(unreachable_pub)]

pub mod apply;
pub(crate) mod backoff;
pub mod cli;
pub mod clock;
pub(crate) mod descriptors;
pub mod emulator;
pub(crate) mod engine;
pub(crate) mod errors;
pub(crate) mod files;
pub mod ledger;
pub(crate) mod logs;
pub mod manifest;
pub(crate) mod metrics;
pub(crate) mod notifications;
pub(crate) mod plan;
pub mod properties;
#[cfg(test)]
mod proptests;
pub(crate) mod quote;
/// The reference pages generated from the code (`subsync reference`).
mod reference;
pub(crate) mod report;
pub(crate) mod sandbox;
pub mod schema;
pub mod settings;
pub(crate) mod shutdown;
pub(crate) mod task;
pub mod tencent;
/// Test support: not part of the tool, and not in a build without the `testing` feature.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub(crate) mod watch;
pub(crate) mod words;
pub mod yaml;
