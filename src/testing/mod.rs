//! Test support shared by the unit tests, the integration tests and the benchmarks; not part
//! of the tool, and not in any build without the `testing` feature (`cargo build --release`
//! has none of it).
//!
//! - [`TestDatabase`]: a fresh PostgreSQL database per test on the server the caller names
//!   (`.ci/postgres` starts one).
//! - [`FakeApi`]: the official-account API in-process, on the emulator's own rules, answering
//!   at once (or after a latency measured on tokio's clock), so that the core runs under paused
//!   time; a script may answer any call differently.
//! - [`Receiver`]: a notification target on a loopback port that keeps every request.
//! - [`run_measured`]: a process's wall time and its own peak memory.
//! - [`read_request`], [`respond`]: HTTP/1.1 on a raw stream, for the test servers (this
//!   receiver, and the misbehaving stand-in service in `tests/it/common/standin.rs`).

mod database;
mod fake;
mod measure;
mod receiver;
mod wire;

pub use database::{DatabaseError, POSTGRES_URL_VAR, TestDatabase, configured};
pub use fake::{FakeApi, RecordedCall};
pub use measure::{Measured, run_measured};
pub use receiver::{Received, Receiver};
pub use wire::{read_request, respond};
