//! A workflow that misbehaves on request, to test the host's limits and trap handling.
//!
//! Input `{"mode": M}`:
//! - `loop`: spins forever without calling the host (fuel / epoch interruption);
//! - `memory`: allocates and touches 16 MiB chunks until allocation fails (memory cap);
//! - `recursion`: recurses without bound (stack limit);
//! - `trap`: panics with "boom";
//! - `huge-output`: returns a 64 MiB string (output size limit);
//! - `ok`: returns "fine".

use std::hint::black_box;

use serde::Deserialize;
use spool_sdk::{Context, WorkflowError};

#[derive(Deserialize)]
struct Input {
    mode: String,
}

fn hostile(_ctx: &Context, input: Input) -> Result<String, WorkflowError> {
    match input.mode.as_str() {
        "loop" => spin(),
        "memory" => exhaust_memory(),
        "recursion" => Ok(recurse(black_box(0)).to_string()),
        "trap" => panic!("boom"),
        "huge-output" => Ok("x".repeat(64 * 1024 * 1024)),
        "ok" => Ok("fine".to_owned()),
        other => Err(WorkflowError::new("unknown_mode", format!("unknown mode `{other}`")).non_retryable()),
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

/// Each frame keeps a buffer alive across the call, so the recursion is not a tail call
/// and its stack grows until the host's limit stops it. The exit test can never pass,
/// but the optimiser cannot know that through `black_box`.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let frame = black_box([depth; 16]);
    let below = recurse(black_box(depth + 1));
    black_box(frame[(depth % 16) as usize]).wrapping_add(below)
}

spool_sdk::workflow!(hostile);
