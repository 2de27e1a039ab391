//! Onboarding: send a welcome email, wait durably, send a follow-up.
//!
//! The pattern this example teaches: **a durable sleep between two side effects**.
//! `ctx.sleep` is a timer journaled by the host, so the wait survives crashes and
//! restarts: if the host dies halfway through a three-day wait, it resumes the run,
//! replays the first email from the journal (it is not sent twice) and sleeps only for
//! what is left.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use spool_sdk::{Context, RetryPolicy, WorkflowError};

/// The run's input, e.g.
/// `{"user_id": "ada", "email_endpoint": "http://127.0.0.1:8025/send", "follow_up_secs": 5}`.
#[derive(Deserialize)]
struct Input {
    user_id: String,
    email_endpoint: String,
    follow_up_secs: u64,
}

fn onboarding(ctx: &Context, input: Input) -> Result<String, WorkflowError> {
    send_email(ctx, &input.email_endpoint, &input.user_id, "welcome")?;

    // Durable: a timer in the journal, not a thread sleeping in the host.
    // A cancel request during the sleep ends the run as cancelled (`?`).
    ctx.sleep(Duration::from_secs(input.follow_up_secs))?;

    send_email(ctx, &input.email_endpoint, &input.user_id, "follow-up")?;
    Ok(format!("Onboarding complete for {}", input.user_id))
}

/// POSTs `{"to": user_id, "template": template}` through the built-in `http.request`
/// activity. The host retries 5xx and 429 answers with the policy below; other 4xx
/// answers fail at once and `?` fails the run with error type "http_status".
fn send_email(
    ctx: &Context,
    endpoint: &str,
    user_id: &str,
    template: &str,
) -> Result<(), WorkflowError> {
    // Quick retries so tests do not wait long: 200 ms, 400 ms, ... capped at 2 s.
    let retry = RetryPolicy::new()
        .initial_interval(Duration::from_millis(200))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(2))
        .maximum_attempts(10);
    let request = json!({
        "method": "POST",
        "url": endpoint,
        "headers": { "content-type": "application/json" },
        "body": { "to": user_id, "template": template },
    });
    // The response ({"status", "headers", "body"}) is not needed, so read it untyped.
    let _response: serde_json::Value = ctx
        .activity("http.request")
        .input(&request)
        .retry(retry)
        .start_to_close(Duration::from_secs(10))
        .call()?;
    ctx.log_info(format!("sent {template} email to {user_id}"));
    Ok(())
}

spool_sdk::workflow!(onboarding);
