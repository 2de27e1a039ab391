//! A workflow that misbehaves on request, to test the host's limits and trap handling.
//!
//! Input `{"mode": M}`:
//! - `loop`: spins forever without calling the host (fuel / epoch interruption);
//! - `memory`: allocates and touches 16 MiB chunks until allocation fails (memory cap);
//! - `recursion`: recurses without bound (stack limit);
//! - `trap`: panics with "boom";
//! - `huge-output`: returns a 3 MiB string (over the host's 2 MiB output limit;
//!   `"output_bytes": N` sets another size);
//! - `huge-activity-input`: calls `spool.echo` with a string of that size;
//! - `huge-failure`: fails with a message of that size;
//! - `trap-after-timer`: sleeps `"sleep_ms"` (default 1000) on a durable timer, then
//!   panics with "boom after the timer": every replay of the run reaches the panic
//!   again once it is past the timer;
//! - `trap-after-activity`: calls `spool.echo`, then panics with "boom after the
//!   activity" (likewise on every replay past the activity's result);
//! - `ok`: returns "fine".

use std::hint::black_box;
use std::time::Duration;

use serde::Deserialize;
use spool_sdk::{Context, WorkflowError};

#[derive(Deserialize)]
struct Input {
    mode: String,
    /// Size of the `huge-output` string; default 3 MiB.
    #[serde(default = "default_output_bytes")]
    output_bytes: usize,
    /// Length of the `trap-after-timer` sleep; default 1 s.
    #[serde(default = "default_sleep_ms")]
    sleep_ms: u64,
}

fn default_sleep_ms() -> u64 {
    1_000
}

fn default_output_bytes() -> usize {
    3 * 1024 * 1024
}

fn hostile(ctx: &Context, input: Input) -> Result<String, WorkflowError> {
    match input.mode.as_str() {
        "loop" => spin(),
        "memory" => exhaust_memory(),
        "recursion" => Ok(recurse(0, black_box(u64::MAX)).to_string()),
        "trap" => panic!("boom"),
        // The SDK encodes it into a buffer of about 1.1 x its size: some 2.1 x in all.
        "huge-output" => Ok("x".repeat(input.output_bytes)),
        "huge-activity-input" => Ok(ctx
            .activity("spool.echo")
            .input(&"x".repeat(input.output_bytes))
            .call::<String>()?
            .len()
            .to_string()),
        "huge-failure" => {
            Err(WorkflowError::new("huge", "x".repeat(input.output_bytes)).non_retryable())
        }
        "trap-after-timer" => {
            ctx.sleep(Duration::from_millis(input.sleep_ms))?;
            panic!("boom after the timer")
        }
        "trap-after-activity" => {
            let echoed: String = ctx.activity("spool.echo").input(&"ping").call()?;
            panic!("boom after the activity (it answered {echoed:?})")
        }
        "ok" => Ok("fine".to_owned()),
        other => Err(
            WorkflowError::new("unknown_mode", format!("unknown mode `{other}`")).non_retryable(),
        ),
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        // black_box keeps the loop body, so the loop is not folded into a trap.
        n = black_box(n.wrapping_add(1));
    }
}

fn exhaust_memory() -> ! {
    const CHUNK: usize = 16 * 1024 * 1024;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        // Writing every byte makes the pages real, not just reserved.
        let chunk = vec![black_box(1u8); CHUNK];
        chunks.push(black_box(chunk));
    }
}

/// Recurses until the host's wasm stack limit stops it. `limit` comes through
/// `black_box`, so the optimiser cannot see that the exit test never passes; and each
/// frame combines its result with `rotate_left` and `^`, which no tail-call or
/// accumulator rewrite turns into a loop. Nothing has its address taken, so the frames
/// live on the wasm call stack (trap: stack overflow), not on Rust's shadow stack in
/// linear memory (which would trap as an out-of-bounds memory access).
fn recurse(depth: u64, limit: u64) -> u64 {
    if depth == limit {
        return depth;
    }
    recurse(depth + 1, limit).rotate_left(1) ^ depth
}

spool_sdk::workflow!(hostile);
