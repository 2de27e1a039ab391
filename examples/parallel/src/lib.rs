//! Parallel: one activity per item, started at once, collected in input order.
//!
//! The pattern this example teaches: **fan out, fan in**. `ctx.activity(..).start()`
//! returns a handle without waiting, so starting one activity per item puts them all
//! in flight together; `ctx.all` then waits for every one and hands back their results
//! in the order of the handles, whatever order they finished in. With `batch: N` at
//! most N are in flight: `ctx.any` says which finished first, and the next item starts
//! in its place.
//!
//! A failed item (after its retries) does not stop the others: its result is `null`
//! and it is listed in `failed`. Every activity runs at least once; an activity whose
//! result was journaled before a crash is never run again (replay hands the workflow
//! the recorded result), while one that was still in flight runs again.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use spool_sdk::{ActivityError, ActivityHandle, Awaitable, Context, RetryPolicy, WorkflowError};

/// The run's input, e.g. `{"items": [1, 2, 3]}` or `{"items": [...], "activity":
/// "http.request", "batch": 10}`. Each item is the input of one activity.
#[derive(Deserialize)]
struct Input {
    items: Vec<Value>,
    /// The activity run for each item: a built-in or an uploaded activity component.
    #[serde(default = "default_activity")]
    activity: String,
    /// At most this many activities in flight; absent (or 0): all at once.
    #[serde(default)]
    batch: Option<usize>,
}

fn default_activity() -> String {
    "spool.echo".to_owned()
}

/// The run's output.
#[derive(Serialize)]
struct Output {
    /// How many items there were.
    count: usize,
    /// One per item, in input order: the activity's output, or `null` if it failed.
    results: Vec<Value>,
    /// The items whose activity failed, in input order.
    failed: Vec<Failed>,
}

#[derive(Serialize)]
struct Failed {
    index: usize,
    error_type: String,
    message: String,
}

fn parallel(ctx: &Context, input: Input) -> Result<Output, WorkflowError> {
    let count = input.items.len();
    let window = match input.batch {
        Some(batch) if batch > 0 && batch < count => batch,
        _ => count,
    };
    ctx.log_info(format!(
        "{count} items through {}, {window} at a time",
        input.activity
    ));
    let outcomes = if window == count {
        all_at_once(ctx, &input)
    } else {
        windowed(ctx, &input, window)?
    };
    if ctx.is_cancelled() {
        // `all` stopped waiting; the activities in flight run on, unread.
        let finished = outcomes
            .iter()
            .filter(|o| !matches!(o, Err(e) if e.kind == spool_sdk::FailureKind::Cancelled))
            .count();
        return Err(cancelled(ctx, finished, count));
    }

    let mut results = Vec::with_capacity(count);
    let mut failed = Vec::new();
    for (index, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(output) => results.push(output),
            Err(e) => {
                ctx.log_warn(format!("item {index} failed: {e}"));
                results.push(Value::Null);
                failed.push(Failed {
                    index,
                    error_type: e.error_type,
                    message: e.message,
                });
            }
        }
    }
    Ok(Output {
        count,
        results,
        failed,
    })
}

/// Starts every activity, then waits for all of them: results in input order.
fn all_at_once(ctx: &Context, input: &Input) -> Vec<Result<Value, ActivityError>> {
    let handles: Vec<ActivityHandle> = input
        .items
        .iter()
        .map(|item| start(ctx, &input.activity, item))
        .collect();
    ctx.all(&handles)
}

/// Keeps `window` activities in flight: whenever one finishes, the next item starts.
/// The order they finish in is journaled, so a replay starts them in the same order.
fn windowed(
    ctx: &Context,
    input: &Input,
    window: usize,
) -> Result<Vec<Result<Value, ActivityError>>, WorkflowError> {
    let count = input.items.len();
    let mut outcomes: Vec<Option<Result<Value, ActivityError>>> = vec![None; count];
    let mut in_flight: Vec<(usize, ActivityHandle)> = Vec::with_capacity(window);
    let mut next = 0;
    while next < count || !in_flight.is_empty() {
        while in_flight.len() < window && next < count {
            in_flight.push((next, start(ctx, &input.activity, &input.items[next])));
            next += 1;
        }
        let handles: Vec<&dyn Awaitable> = in_flight.iter().map(|(_, h)| h as _).collect();
        // `any` fails only when the cancel request arrives.
        let ready = match ctx.any(&handles) {
            Ok(ready) => ready,
            Err(_) => {
                let finished = outcomes.iter().filter(|o| o.is_some()).count();
                return Err(cancelled(ctx, finished, count));
            }
        };
        let (index, handle) = in_flight.remove(ready.index);
        outcomes[index] = Some(handle.result());
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every item finished"))
        .collect())
}

/// Starts the activity for one item: retried 200 ms, ×2, at most 5 s apart, 5 attempts;
/// 30 s per attempt.
fn start(ctx: &Context, activity: &str, item: &Value) -> ActivityHandle {
    let retry = RetryPolicy::new()
        .initial_interval(Duration::from_millis(200))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(5))
        .maximum_attempts(5);
    ctx.activity(activity)
        .input(item)
        .retry(retry)
        .start_to_close(Duration::from_secs(30))
        .start()
}

/// The run ends cancelled, saying how far it got.
fn cancelled(ctx: &Context, finished: usize, count: usize) -> WorkflowError {
    let reason = ctx.cancel_reason().unwrap_or_default();
    WorkflowError::cancelled(reason).with_details(&json!({
        "count": count,
        "finished": finished,
    }))
}

spool_sdk::workflow!(parallel);
