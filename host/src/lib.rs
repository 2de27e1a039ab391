//! Spool: a durable workflow host for WebAssembly components.
//!
//! # Layout
//! - [`ids`]: identifier newtypes. They, the journal's event types and the API's request
//!   bodies live in the crate `spool-formats` (no wasmtime: `fuzz/` builds it alone).
//! - [`clock`]: the injectable clock; nothing else reads wall time.
//! - [`journal`]: storage types and the [`journal::Journal`] trait; [`journal::sqlite`]
//!   is the SQLite journal (WAL, group commit, one writer thread).
//! - [`runtime`]: the wasmtime sandbox: limits, deterministic WASI, component cache,
//!   upload validation.
//! - [`engine`]: workflow runs: the replay state machine ([`engine::replay`]), the run
//!   driver, activity retries, recovery after restart.
//! - [`activity`]: one activity attempt: built-ins and Wasm activity components.
//! - [`tenancy`]: namespaces, API keys and quotas.
//! - [`api`]: the HTTP API; [`ui`]: the web UI; [`server`]: wiring it all up.
//! - [`cli`]: the `spool` command, a client of the API; [`bench`]: the workload runner.
//!
//! Data flows one way: api → engine → (runtime, journal, activity).

pub mod activity;
pub mod api;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub use spool_formats::ids;
pub mod journal;
pub mod runtime;
pub mod server;
pub mod tenancy;
pub mod ui;
