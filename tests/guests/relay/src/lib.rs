//! Calls the activity named in its input once (or up to `max_attempts` times) and returns
//! its output, so tests can exercise any activity, built-in or uploaded, through a
//! workflow. An activity failure fails the run with the activity's error.
//!
//! Input: `{"activity": "http.request", "input": <any JSON>, "max_attempts": 1}`.

use serde::Deserialize;
use spool_sdk::{Context, RetryPolicy, WorkflowError};
use std::time::Duration;

#[derive(Deserialize)]
struct Input {
    activity: String,
    #[serde(default)]
    input: serde_json::Value,
    #[serde(default = "one")]
    max_attempts: u32,
}

fn one() -> u32 {
    1
}

fn relay(ctx: &Context, input: Input) -> Result<serde_json::Value, WorkflowError> {
    let retry = RetryPolicy::new()
        .initial_interval(Duration::from_millis(50))
        .maximum_attempts(input.max_attempts);
    Ok(ctx
        .activity(input.activity)
        .input(&input.input)
        .retry(retry)
        .start_to_close(Duration::from_secs(10))
        .call()?)
}

spool_sdk::workflow!(relay);
