//! subsync keeps Tencent Cloud Chat official accounts' subscribers equal to YAML manifests.

pub mod cli;
pub mod clock;
pub mod emulator;
pub mod settings;
pub mod shutdown;
pub mod tencent;
