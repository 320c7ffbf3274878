//! subsync keeps Tencent Cloud Chat official accounts' subscribers equal to YAML manifests.

pub mod apply;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod descriptors;
pub mod emulator;
pub mod engine;
pub mod errors;
pub mod files;
pub mod ledger;
pub mod logs;
pub mod manifest;
pub mod metrics;
pub mod notifications;
pub mod plan;
pub mod properties;
pub mod quote;
pub mod report;
pub mod sandbox;
pub mod schema;
pub mod settings;
pub mod shutdown;
pub mod task;
pub mod tencent;
/// Test support: not part of the tool, and not in a build without the `testing` feature.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod watch;
pub mod words;
pub mod yaml;
