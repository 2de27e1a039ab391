//! Expense approval: ask a person to decide, wait for their signal or a deadline, and
//! report the outcome.
//!
//! The pattern this example teaches: **waiting for a human, with a deadline**. Signal
//! handlers record the decision in workflow state, and `ctx.wait_condition` waits until
//! there is one or the durable timer fires. The wait may last days and survives crashes
//! and restarts of the host; a signal sent while the host is down is delivered when it
//! is back, and on replay every signal reaches the workflow at the same point.
//!
//! A `status` query reports where the expense stands, `{"status": "pending" |
//! "approved" | "rejected" | "timed_out", "decided_by": <name or null>, "amount": N}`,
//! while the run waits and after it has ended; answering it changes nothing in the run.
//!
//! An `amend` update lets the requester correct the amount while the expense waits for
//! a decision: `{"amount": N}`, answered with the new state. Its validator refuses a
//! non-positive amount, and any amendment once the expense has been decided; a refused
//! amendment leaves no trace in the run.

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

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
enum Status {
    /// No decision yet: only the `status` query reports it, never the outcome.
    #[default]
    Pending,
    Approved,
    Rejected,
    TimedOut,
}

impl Status {
    /// The notification template announcing this outcome.
    fn template(self) -> &'static str {
        match self {
            Status::Pending => unreachable!("the outcome is never pending"),
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::TimedOut => "timed-out",
        }
    }
}

/// The input of the `amend` update: `{"amount": 380}`.
#[derive(Deserialize)]
struct Amendment {
    amount: serde_json::Number,
}

/// Workflow state: changed by the signal handlers, the `amend` update and the
/// workflow, read by the `status` query, which answers it as is.
#[derive(Serialize, Clone)]
struct State {
    status: Status,
    decided_by: Option<String>,
    amount: serde_json::Number,
}

#[derive(Serialize)]
struct Outcome {
    expense_id: String,
    status: Status,
    decided_by: Option<String>,
    amount: serde_json::Number,
}

fn expense_approval(ctx: &Context, expense: Expense) -> Result<Outcome, WorkflowError> {
    // Workflow state, shared with the signal handlers, the update and the query. The
    // first decision stands.
    let state = Rc::new(RefCell::new(State {
        status: Status::Pending,
        decided_by: None,
        amount: expense.amount.clone(),
    }));
    for (signal, status) in [("approve", Status::Approved), ("reject", Status::Rejected)] {
        let state = Rc::clone(&state);
        ctx.on_signal(signal, move |input: Decision| {
            let mut state = state.borrow_mut();
            if state.status == Status::Pending {
                state.status = status;
                state.decided_by = Some(input.by);
            }
        });
    }
    // `spool workflow query --id ID --name status`: read-only, any input. Registered
    // first so that it answers from the start, during every wait (the notifications
    // too) and, since handlers outlive the run, after the run as well.
    let query_state = Rc::clone(&state);
    ctx.query_handler("status", move |_: serde_json::Value| {
        query_state.borrow().clone()
    });

    // `spool workflow update --id ID --name amend --input '{"amount": 380}'`. The
    // validator runs before the update is journaled; the handler changes the state.
    let (check, apply) = (Rc::clone(&state), Rc::clone(&state));
    ctx.update_handler_with_validator(
        "amend",
        move |amendment: &Amendment| {
            if check.borrow().status != Status::Pending {
                return Err("the expense has been decided; it can no longer be amended".into());
            }
            match amendment.amount.as_f64() {
                Some(amount) if amount > 0.0 => Ok(()),
                _ => Err(format!(
                    "the amount must be positive, got {}",
                    amendment.amount
                )),
            }
        },
        move |amendment: Amendment| {
            apply.borrow_mut().amount = amendment.amount;
            Ok(apply.borrow().clone())
        },
    );

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

    // Durable: a timer in the journal. Handlers run here, as signals arrive.
    let timeout = Duration::from_secs(expense.timeout_secs);
    // `?`: a cancel request while waiting ends the run as cancelled.
    let decided = ctx.wait_condition(|| state.borrow().status != Status::Pending, Some(timeout))?;
    if !decided {
        state.borrow_mut().status = Status::TimedOut;
    }

    let State {
        status,
        decided_by,
        amount,
    } = state.borrow().clone();
    notify(
        ctx,
        &expense.notify_endpoint,
        status.template(),
        json!({
            "expense_id": expense.expense_id,
            "requester": expense.requester,
            "decided_by": decided_by,
            "amount": amount,
        }),
    )?;
    Ok(Outcome {
        expense_id: expense.expense_id,
        status,
        decided_by,
        amount,
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
