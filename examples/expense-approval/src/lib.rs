//! Expense approval: ask a person to decide, wait for their signal or a deadline, and
//! report the outcome.
//!
//! The pattern this example teaches: **waiting for a human, with a deadline**. Signal
//! handlers record the decision in workflow state, and `ctx.wait_condition` waits until
//! there is one or the durable timer fires. The wait may last days and survives crashes
//! and restarts of the host; a signal sent while the host is down is delivered when it
//! is back, and on replay every signal reaches the workflow at the same point.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use spool_sdk::{Context, RetryPolicy, WorkflowError};

/// The run's input, e.g. `{"expense_id": "exp-17", "amount": 420, "requester": "bob",
/// "notify_endpoint": "http://127.0.0.1:9000/notify", "timeout_secs": 300}`.
#[derive(Deserialize)]
struct Expense {
    expense_id: String,
    /// Passed through to the notifications as given.
    amount: serde_json::Number,
    requester: String,
    notify_endpoint: String,
    timeout_secs: u64,
}

/// The input of the `approve` and `reject` signals: `{"by": "alice"}`.
#[derive(Deserialize)]
struct Decision {
    by: String,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Status {
    Approved,
    Rejected,
    TimedOut,
}

impl Status {
    /// The notification template announcing this outcome.
    fn template(self) -> &'static str {
        match self {
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::TimedOut => "timed-out",
        }
    }
}

#[derive(Serialize)]
struct Outcome {
    expense_id: String,
    status: Status,
    decided_by: Option<String>,
}

fn expense_approval(ctx: &Context, expense: Expense) -> Result<Outcome, WorkflowError> {
    notify(
        ctx,
        &expense.notify_endpoint,
        "approval-requested",
        json!({
            "expense_id": expense.expense_id,
            "amount": expense.amount,
            "requester": expense.requester,
        }),
    )?;

    // Workflow state, shared with the signal handlers. The first decision stands.
    let decision: Rc<RefCell<Option<(Status, String)>>> = Rc::default();
    for (signal, status) in [("approve", Status::Approved), ("reject", Status::Rejected)] {
        let decision = Rc::clone(&decision);
        ctx.on_signal(signal, move |input: Decision| {
            decision.borrow_mut().get_or_insert((status, input.by));
        });
    }

    // Durable: a timer in the journal. Handlers run here, as signals arrive.
    let timeout = Duration::from_secs(expense.timeout_secs);
    // `?`: a cancel request while waiting ends the run as cancelled.
    ctx.wait_condition(|| decision.borrow().is_some(), Some(timeout))?;

    let (status, decided_by) = match decision.take() {
        Some((status, by)) => (status, Some(by)),
        None => (Status::TimedOut, None),
    };
    notify(
        ctx,
        &expense.notify_endpoint,
        status.template(),
        json!({
            "expense_id": expense.expense_id,
            "requester": expense.requester,
            "decided_by": decided_by,
        }),
    )?;
    Ok(Outcome {
        expense_id: expense.expense_id,
        status,
        decided_by,
    })
}

/// POSTs `{"template": template, ...fields}` to `endpoint` through the built-in
/// `http.request` activity. The host retries 5xx and 429 answers with the policy below;
/// other 4xx answers fail at once and `?` fails the run with error type "http_status".
fn notify(
    ctx: &Context,
    endpoint: &str,
    template: &str,
    mut fields: serde_json::Value,
) -> Result<(), WorkflowError> {
    fields["template"] = template.into();
    let retry = RetryPolicy::new()
        .initial_interval(Duration::from_millis(200))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(2))
        .maximum_attempts(10);
    let request = json!({
        "method": "POST",
        "url": endpoint,
        "headers": { "content-type": "application/json" },
        "body": fields,
    });
    let _response: serde_json::Value = ctx
        .activity("http.request")
        .input(&request)
        .retry(retry)
        .start_to_close(Duration::from_secs(10))
        .call()?;
    ctx.log_info(format!("sent notification {template}"));
    Ok(())
}

spool_sdk::workflow!(expense_approval);
