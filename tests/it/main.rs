//! subsync's integration tests, in one crate so that the shared helpers in `common` compile
//! once: the real binary and the library's public API against emulators and throwaway
//! PostgreSQL servers on loopback. Each module's doc says what it covers.
//!
//! Run one area with a filter, e.g. `cargo test --test it watch::`; the slow suite is
//! `cargo test --test it scale:: -- --ignored`.

mod common;

mod account;
mod apply;
mod boundaries;
mod cli_credentials;
mod deploy;
mod descriptors;
mod docs;
mod drift;
mod emulator;
mod hardening;
mod ledger_fixture;
mod manifests;
mod notify;
mod one_truth;
mod plan;
mod postgres;
mod scale;
mod settings;
mod state;
mod watch;
