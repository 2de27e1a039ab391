//! A workflow of N `spool.echo` steps, in sequence or in parallel; for benchmarks, the
//! concurrent kill test and replay tests.
//!
//! Input `{"steps": N, "mode": "sequential" | "parallel", "sleep_ms": M (optional)}`.
//! Output `{"steps": N, "sum": 1 + 2 + ... + N, "random": "<u64 drawn at the start>"}`.
//! Commands, in order: `random-bytes(8)`, then for each step i in 1..=N (sequential:
//! `start-timer(M)` first when `sleep_ms` is given) `start-activity("spool.echo",
//! {"step": i})`.

mod run;

spool_sdk::workflow!(run::steps);
