//! Calls the activity named in its input and returns its output, so tests can exercise
//! any activity, built-in or uploaded, through a workflow. An activity failure fails the
//! run with the activity's error.
//!
//! Input: `{"activity": "http.request", "input": <any JSON>, "max_attempts": 1,
//! "start_to_close_ms": 10000, "deadline_ms": <optional>}`. With `deadline_ms`, the
//! activity races a durable timer: if the timer fires first the output is
//! `{"timed_out": true}` (the pattern "wait for an activity or a deadline").

use serde::Deserialize;
use spool_sdk::{Context, Outcome, RetryPolicy, WorkflowError};
use std::time::Duration;

#[derive(Deserialize)]
struct Input {
    activity: String,
    #[serde(default)]
    input: serde_json::Value,
    #[serde(default = "one")]
    max_attempts: u32,
    #[serde(default = "ten_seconds")]
    start_to_close_ms: u64,
    #[serde(default)]
    deadline_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

fn ten_seconds() -> u64 {
    10_000
}

fn relay(ctx: &Context, input: Input) -> Result<serde_json::Value, WorkflowError> {
    let retry = RetryPolicy::new()
        .initial_interval(Duration::from_millis(50))
        .maximum_attempts(input.max_attempts);
    let activity = ctx
        .activity(input.activity)
        .input(&input.input)
        .retry(retry)
        .start_to_close(Duration::from_millis(input.start_to_close_ms));
    let Some(deadline_ms) = input.deadline_ms else {
        return Ok(activity.call()?);
    };
    let handle = activity.start();
    let deadline = ctx.timer(Duration::from_millis(deadline_ms));
    match ctx.any(&[&handle, &deadline])?.outcome {
        Outcome::Activity(result) => Ok(result?),
        Outcome::TimerFired => Ok(serde_json::json!({ "timed_out": true })),
        Outcome::Signal(_) | Outcome::Child(_) => unreachable!("neither was raced"),
    }
}

spool_sdk::workflow!(relay);
