//! Continuous: a workflow that goes on through many short runs, with
//! `ctx.continue_as_new`.
//!
//! The pattern this example teaches: **loop across runs, not inside one**. Each run does
//! one round (here: a durable sleep), then continues as new with the next iteration
//! number as its input. Every run starts with an empty history, so however many rounds
//! the workflow goes through, no run has a long journal to replay.
//!
//! It also shows that **signals survive the seam**: the runs before the last never wait
//! for the `tick` signal, so ticks sent to the workflow stay queued and go from run to
//! run, in order, until the last run drains them and reports how many it received.
//!
//! A `status` query answers `{"iteration": n}`: which run the workflow is in.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use spool_sdk::{Context, WorkflowError};

/// One run's input, e.g. `{"iteration": 0, "max_iterations": 3, "sleep_ms": 1000}`; the
/// first run usually leaves out `iteration` (0) and `ticks` (0).
#[derive(Serialize, Deserialize)]
struct Round {
    /// Which run this is, from 0.
    #[serde(default)]
    iteration: u32,
    /// How many runs in all; the run with `iteration + 1 == max_iterations` is the last.
    max_iterations: u32,
    /// How long each run sleeps (a durable timer) before it continues or ends.
    sleep_ms: u64,
    /// Ticks counted by earlier runs, carried over in the input. The runs before the
    /// last leave every tick queued, so they count none and pass this on unchanged.
    #[serde(default)]
    ticks: u64,
}

/// The workflow's output: `{"iterations": max_iterations, "ticks": n}`.
#[derive(Serialize)]
struct Done {
    iterations: u32,
    /// `ticks` from the input plus the ticks the last run drained: every tick sent to
    /// the workflow before its last run finished sleeping.
    ticks: u64,
}

/// The answer of the `status` query.
#[derive(Serialize)]
struct Status {
    iteration: u32,
}

fn continuous(ctx: &Context, round: Round) -> Result<Done, WorkflowError> {
    if round.max_iterations == 0 {
        return Err(
            WorkflowError::new("invalid_input", "max_iterations must be at least 1")
                .non_retryable(),
        );
    }
    let next = round.iteration.saturating_add(1);
    // `spool workflow query --id ID --name status`. Each run registers its own: query
    // handlers do not carry over.
    let iteration = round.iteration;
    ctx.query_handler("status", move |_: serde_json::Value| Status { iteration });
    ctx.log_info(format!("iteration {next} of {}", round.max_iterations));

    // One round of work. A timer wait names no signal, so ticks arriving now stay
    // queued in the host.
    ctx.sleep(Duration::from_millis(round.sleep_ms))?;

    if next < round.max_iterations {
        // Never returns: this run ends here and the next starts from the top, with the
        // ticks nobody consumed still queued, in order.
        ctx.continue_as_new(&Round {
            iteration: next,
            ..round
        });
    }

    // The last run: take the ticks already waiting, one at a time, until a 1 ms timer
    // fires first (nothing left). Any JSON is a valid tick.
    let mut drained = 0;
    while ctx
        .wait_signal::<serde_json::Value>("tick", Some(Duration::from_millis(1)))?
        .is_some()
    {
        drained += 1;
    }
    ctx.log_info(format!("drained {drained} ticks"));
    Ok(Done {
        iterations: round.max_iterations,
        ticks: round.ticks + drained,
    })
}

spool_sdk::workflow!(continuous);
