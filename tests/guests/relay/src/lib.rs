//! Calls the activity named in its input and returns its output, so tests can exercise
//! any activity, built-in or uploaded, through a workflow. An activity failure fails the
//! run with the activity's error.
//!
//! Input: `{"activity": "http.request", "input": <any JSON>, "max_attempts": 1,
//! "start_to_close_ms": 10000, "deadline_ms": <optional>}`. With `deadline_ms`, the
//! activity races a durable timer: if the timer fires first the output is
//! `{"timed_out": true}` (the pattern "wait for an activity or a deadline").
//!
//! Optional, passed to the activity's options as given: `"task_queue"`,
//! `"heartbeat_ms"`, `"schedule_to_start_ms"`, `"schedule_to_close_ms"`,
//! `"initial_interval_ms"` (default 50), `"non_retryable_error_types": [..]`.
//!
//! With `"cancel_after_ms": N` the workflow cancels the activity if it has not finished
//! after N ms (a durable timer), and returns `{"cancelled": true, "error_type": ..}` if
//! the cancellation won, or the activity's output if its result came first.

use serde::Deserialize;
use spool_sdk::{Context, FailureKind, Outcome, RetryPolicy, WorkflowError};
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
    task_queue: Option<String>,
    heartbeat_ms: Option<u64>,
    schedule_to_start_ms: Option<u64>,
    schedule_to_close_ms: Option<u64>,
    #[serde(default = "fifty")]
    initial_interval_ms: u64,
    #[serde(default)]
    non_retryable_error_types: Vec<String>,
    cancel_after_ms: Option<u64>,
}

fn fifty() -> u64 {
    50
}

fn one() -> u32 {
    1
}

fn ten_seconds() -> u64 {
    10_000
}

fn relay(ctx: &Context, input: Input) -> Result<serde_json::Value, WorkflowError> {
    let mut retry = RetryPolicy::new()
        .initial_interval(Duration::from_millis(input.initial_interval_ms))
        .maximum_attempts(input.max_attempts);
    for error_type in input.non_retryable_error_types {
        retry = retry.non_retryable_error_type(error_type);
    }
    let ms = Duration::from_millis;
    let mut activity = ctx
        .activity(input.activity)
        .input(&input.input)
        .retry(retry)
        .start_to_close(ms(input.start_to_close_ms));
    if let Some(queue) = input.task_queue {
        activity = activity.task_queue(queue);
    }
    if let Some(t) = input.heartbeat_ms {
        activity = activity.heartbeat_timeout(ms(t));
    }
    if let Some(t) = input.schedule_to_start_ms {
        activity = activity.schedule_to_start(ms(t));
    }
    if let Some(t) = input.schedule_to_close_ms {
        activity = activity.schedule_to_close(ms(t));
    }
    if let Some(after) = input.cancel_after_ms {
        let handle = activity.start();
        let timer = ctx.timer(ms(after));
        if ctx.any(&[&handle, &timer])?.index == 1 {
            handle.cancel();
        }
        return match handle.result::<serde_json::Value>() {
            Ok(output) => Ok(output),
            Err(e) if e.kind == FailureKind::Cancelled => {
                Ok(serde_json::json!({ "cancelled": true, "error_type": e.error_type }))
            }
            Err(e) => Err(e.into()),
        };
    }
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
