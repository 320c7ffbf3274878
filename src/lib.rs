//! subsync keeps Tencent Cloud Chat official accounts' subscribers equal to YAML manifests.

pub mod apply;
pub mod cli;
pub mod clock;
pub mod emulator;
pub mod files;
pub mod ledger;
pub mod manifest;
pub mod metrics;
pub mod plan;
pub mod quote;
pub mod report;
pub mod sandbox;
pub mod schema;
pub mod settings;
pub mod shutdown;
pub mod task;
pub mod tencent;
#[doc(hidden)]
pub mod testing;
pub mod watch;
pub mod yaml;
