//! A workflow that misbehaves on request, to test the host's limits and trap handling.
//!
//! Input `{"mode": M}`:
//! - `loop`: spins forever without calling the host (fuel / epoch interruption);
//! - `memory`: allocates and touches 16 MiB chunks until allocation fails (memory cap);
//! - `recursion`: recurses without bound (stack limit);
//! - `trap`: panics with "boom";
//! - `huge-output`: returns a 3 MiB string (over the host's 2 MiB output limit;
//!   `"output_bytes": N` sets another size);
//! - `ok`: returns "fine".

use std::hint::black_box;

use serde::Deserialize;
use spool_sdk::{Context, WorkflowError};

#[derive(Deserialize)]
struct Input {
    mode: String,
    /// Size of the `huge-output` string; default 3 MiB.
    #[serde(default = "default_output_bytes")]
    output_bytes: usize,
}

fn default_output_bytes() -> usize {
    3 * 1024 * 1024
}

fn hostile(_ctx: &Context, input: Input) -> Result<String, WorkflowError> {
    match input.mode.as_str() {
        "loop" => spin(),
        "memory" => exhaust_memory(),
        "recursion" => Ok(recurse(0, black_box(u64::MAX)).to_string()),
        "trap" => panic!("boom"),
        // The SDK encodes it into a buffer of about 1.1 x its size: some 2.1 x in all.
        "huge-output" => Ok("x".repeat(input.output_bytes)),
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
