//! Reserves, sleeps, then confirms; a cancel request during the sleep releases the
//! reservation (compensation) and ends the run as cancelled. For cancellation tests.
//!
//! Input `{"notify_endpoint": "http://...", "sleep_ms": N}`. Each step POSTs
//! `{"template": T}` to `notify_endpoint` through the built-in `http.request` activity.
//!
//! - Not cancelled: POST `reserved`, sleep N ms, POST `confirmed`; output
//!   `{"outcome": "confirmed"}`.
//! - Cancelled during the sleep: POST `reserved`, sleep (interrupted), POST `released`;
//!   the run ends as cancelled (failure kind `cancelled`, type `"cancelled"`, the
//!   cancel reason as message).
//! - Cancelled while `reserved` is in flight: the reservation is finished first (its
//!   handle is still usable after the interrupted wait), then released as above,
//!   without sleeping.
//! - Cancelled while `confirmed` is in flight: ignored, past the point of no return;
//!   the run waits for the confirmation and completes.
//!
//! Commands: `start-activity(http.request reserved)`, then (unless cancelled by then)
//! `start-timer(N)`, then `start-activity(http.request confirmed | released)`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use spool_sdk::{ActivityError, ActivityHandle, Context, FailureKind, RetryPolicy, WorkflowError};

#[derive(Deserialize)]
struct Input {
    notify_endpoint: String,
    sleep_ms: u64,
}

#[derive(Serialize)]
struct Output {
    outcome: &'static str,
}

fn cancellable(ctx: &Context, input: Input) -> Result<Output, WorkflowError> {
    finish(&notify(ctx, &input.notify_endpoint, "reserved"))?;
    // The cancel arrived while reserving: the reservation exists, so release it.
    if ctx.is_cancelled() || ctx.sleep(Duration::from_millis(input.sleep_ms)).is_err() {
        finish(&notify(ctx, &input.notify_endpoint, "released"))?;
        let reason = ctx.cancel_reason().unwrap_or_default();
        return Err(WorkflowError::cancelled(reason));
    }
    finish(&notify(ctx, &input.notify_endpoint, "confirmed"))?;
    Ok(Output {
        outcome: "confirmed",
    })
}

/// The activity's own result. A cancel request interrupts one wait and leaves the
/// activity running; this waits again, so a side effect that may have happened is
/// known to have happened (or failed) before the workflow decides what to undo.
fn finish(handle: &ActivityHandle) -> Result<serde_json::Value, ActivityError> {
    match handle.result() {
        Err(e) if e.kind == FailureKind::Cancelled => handle.result(),
        other => other,
    }
}

/// Starts a POST of `{"template": template}` to `endpoint`.
fn notify(ctx: &Context, endpoint: &str, template: &str) -> ActivityHandle {
    let retry = RetryPolicy::new()
        .initial_interval(Duration::from_millis(200))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(2))
        .maximum_attempts(10);
    let request = json!({
        "method": "POST",
        "url": endpoint,
        "headers": { "content-type": "application/json" },
        "body": { "template": template },
    });
    ctx.activity("http.request")
        .input(&request)
        .retry(retry)
        .start_to_close(Duration::from_secs(10))
        .start()
}

spool_sdk::workflow!(cancellable);
