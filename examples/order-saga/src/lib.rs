//! Order saga: reserve stock, charge the card, ship; if a step fails, undo the steps
//! that succeeded, newest first.
//!
//! The pattern this example teaches: **the saga**. There is no transaction spanning
//! three services, so each step that succeeds pushes its *compensation* (the call that
//! undoes it) onto a stack: `release` for a reservation, `refund` for a charge. When a
//! later step fails, the workflow pops the stack and runs each compensation, retried
//! generously, then fails the run with the step's own error (its error type kept) and
//! details saying what was undone. A compensation that still fails after its retries is
//! recorded in those details (and logged) for a person to look at; the others still run.
//!
//! The stack lives in workflow memory, not in a database: after a crash the host
//! replays the run and the same steps push the same compensations, so a crash in the
//! middle of the saga (or of the unwinding) neither loses a compensation nor runs one
//! twice; every call is journaled once it has an answer.
//!
//! A cancel request (`spool workflow cancel`) unwinds the same way and ends the run as
//! cancelled. The step in flight when it arrives is waited for first, so that a side
//! effect that may have happened is known to have happened before the workflow decides
//! what to undo. Shipping is the point of no return: once the parcel has left, the run
//! completes even if a cancel request arrived while it was being shipped.
//!
//! A `status` query answers `{"stage", "completed": [...], "compensated": [...],
//! "compensation_failures": [...]}` throughout.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use spool_sdk::{ActivityError, Context, FailureKind, RetryPolicy, WorkflowError};

/// The run's input, e.g. `{"order_id": "o-1", "items": ["sku-1"], "amount_cents": 4200,
/// "inventory_url": "http://127.0.0.1:9100/inventory", "payments_url":
/// "http://127.0.0.1:9100/payments", "shipping_url": "http://127.0.0.1:9100/shipping"}`.
#[derive(Deserialize)]
struct Order {
    order_id: String,
    items: Vec<Value>,
    amount_cents: u64,
    inventory_url: String,
    payments_url: String,
    shipping_url: String,
}

/// The run's output: the services' answers to the three steps.
#[derive(Serialize)]
struct Receipt {
    order_id: String,
    reservation: Value,
    charge: Value,
    shipment: Value,
}

/// The call that undoes a step that succeeded.
struct Compensation {
    /// `release` or `refund`.
    name: &'static str,
    url: String,
    body: Value,
}

/// Where the saga stands: the `status` query's answer.
#[derive(Serialize, Clone, Default)]
struct Status {
    /// `reserve`, `charge`, `ship` (in flight), `compensating`, `completed`, `failed`
    /// or `cancelled`.
    stage: &'static str,
    /// The forward steps that succeeded, in order.
    completed: Vec<&'static str>,
    /// The compensations that succeeded, in the order they ran.
    compensated: Vec<&'static str>,
    /// The compensations that failed for good.
    compensation_failures: Vec<CompensationFailure>,
}

#[derive(Serialize, Clone)]
struct CompensationFailure {
    compensation: &'static str,
    error_type: String,
    message: String,
}

/// Why the forward steps stopped.
enum Halt {
    /// A step failed (after its retries).
    Failed {
        step: &'static str,
        error: ActivityError,
    },
    /// The cancel request arrived.
    Cancelled,
}

fn order_saga(ctx: &Context, order: Order) -> Result<Receipt, WorkflowError> {
    let status = Rc::new(RefCell::new(Status::default()));
    let reader = Rc::clone(&status);
    ctx.query_handler("status", move |_: Value| reader.borrow().clone());

    let mut compensations = Vec::new();
    match forward(ctx, &order, &status, &mut compensations) {
        Ok(receipt) => {
            status.borrow_mut().stage = "completed";
            Ok(receipt)
        }
        Err(halt) => Err(unwind(ctx, &order, &status, compensations, halt)),
    }
}

/// The forward steps. Each one that succeeds pushes its compensation before anything
/// else can happen, so whatever stops the saga afterwards finds it on the stack.
fn forward(
    ctx: &Context,
    order: &Order,
    status: &RefCell<Status>,
    compensations: &mut Vec<Compensation>,
) -> Result<Receipt, Halt> {
    let reservation = step(
        ctx,
        status,
        order,
        "reserve",
        format!("{}/reserve", order.inventory_url),
        json!({ "order_id": order.order_id, "items": order.items }),
    )?;
    compensations.push(Compensation {
        name: "release",
        url: format!("{}/release", order.inventory_url),
        body: json!({ "order_id": order.order_id, "reservation": reservation }),
    });
    halt_if_cancelled(ctx)?;

    let charge = step(
        ctx,
        status,
        order,
        "charge",
        format!("{}/charge", order.payments_url),
        json!({ "order_id": order.order_id, "amount_cents": order.amount_cents }),
    )?;
    compensations.push(Compensation {
        name: "refund",
        url: format!("{}/refund", order.payments_url),
        body: json!({
            "order_id": order.order_id,
            "amount_cents": order.amount_cents,
            "charge": charge,
        }),
    });
    halt_if_cancelled(ctx)?;

    // The point of no return: there is no compensation for a parcel on its way.
    let shipment = step(
        ctx,
        status,
        order,
        "ship",
        format!("{}/ship", order.shipping_url),
        json!({ "order_id": order.order_id, "items": order.items }),
    )?;
    if ctx.is_cancelled() {
        ctx.log_warn("cancel request arrived while shipping; the order has shipped, so it stands");
    }
    Ok(Receipt {
        order_id: order.order_id.clone(),
        reservation,
        charge,
        shipment,
    })
}

/// Runs one forward step; its answer's body on success.
fn step(
    ctx: &Context,
    status: &RefCell<Status>,
    order: &Order,
    name: &'static str,
    url: String,
    body: Value,
) -> Result<Value, Halt> {
    status.borrow_mut().stage = name;
    // 5xx, 429 and transport errors are retried: 500 ms, ×2, at most 5 s apart, 5
    // attempts. Any other 4xx fails at once (error type "http_status").
    let retry = RetryPolicy::new()
        .initial_interval(Duration::from_millis(500))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(5))
        .maximum_attempts(5);
    match post(ctx, &order.order_id, name, url, body, retry) {
        Ok(answer) => {
            ctx.log_info(format!("{name}: done"));
            status.borrow_mut().completed.push(name);
            Ok(answer)
        }
        Err(error) => {
            ctx.log_warn(format!("{name} failed: {error}"));
            Err(Halt::Failed { step: name, error })
        }
    }
}

fn halt_if_cancelled(ctx: &Context) -> Result<(), Halt> {
    if ctx.is_cancelled() {
        Err(Halt::Cancelled)
    } else {
        Ok(())
    }
}

/// Runs the compensations, newest first, and returns the error the run ends with: the
/// failed step's (kind and error type kept), or a cancellation.
fn unwind(
    ctx: &Context,
    order: &Order,
    status: &RefCell<Status>,
    compensations: Vec<Compensation>,
    halt: Halt,
) -> WorkflowError {
    status.borrow_mut().stage = "compensating";
    // Compensations must not give up easily: 1 s, ×2, at most 30 s apart, 12 attempts
    // (about four minutes). A 4xx answer still fails at once: retrying cannot fix it.
    let retry = RetryPolicy::new()
        .initial_interval(Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(30))
        .maximum_attempts(12);
    for compensation in compensations.into_iter().rev() {
        let Compensation { name, url, body } = compensation;
        match post(ctx, &order.order_id, name, url, body, retry.clone()) {
            Ok(_) => {
                ctx.log_info(format!("compensated: {name}"));
                status.borrow_mut().compensated.push(name);
            }
            Err(e) => {
                ctx.log_error(format!("compensation {name} failed, needs a person: {e}"));
                status
                    .borrow_mut()
                    .compensation_failures
                    .push(CompensationFailure {
                        compensation: name,
                        error_type: e.error_type,
                        message: e.message,
                    });
            }
        }
    }

    let mut status = status.borrow_mut();
    let mut details = json!({
        "order_id": order.order_id,
        "completed": status.completed,
        "compensated": status.compensated,
        "compensation_failures": status.compensation_failures,
    });
    match halt {
        Halt::Failed { step, error } => {
            status.stage = "failed";
            details["failed_step"] = step.into();
            // The step's own details (for http_status: the service's answer).
            details["error_details"] = error
                .details
                .as_deref()
                .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_owned())))
                .unwrap_or(Value::Null);
            let error = ActivityError {
                message: format!("{step}: {}", error.message),
                ..error
            };
            WorkflowError::from(error).with_details(&details)
        }
        Halt::Cancelled => {
            status.stage = "cancelled";
            let reason = ctx.cancel_reason().unwrap_or_default();
            WorkflowError::cancelled(reason).with_details(&details)
        }
    }
}

/// POSTs `body` as JSON to `url` through the built-in `http.request` activity and
/// returns the answer's body. The idempotency key (`<order id>/<call>`) lets the
/// service recognise a repeat: an activity runs at least once, and a call whose answer
/// was lost in a crash is made again.
///
/// If the cancel request interrupts the wait, this waits again: the call goes on
/// regardless, and the saga must know whether it happened.
fn post(
    ctx: &Context,
    order_id: &str,
    call: &str,
    url: String,
    body: Value,
    retry: RetryPolicy,
) -> Result<Value, ActivityError> {
    let request = json!({
        "method": "POST",
        "url": url,
        "headers": {
            "content-type": "application/json",
            "idempotency-key": format!("{order_id}/{call}"),
        },
        "body": body,
    });
    let handle = ctx
        .activity("http.request")
        .input(&request)
        .retry(retry)
        .start_to_close(Duration::from_secs(10))
        .start();
    let response: Value = match handle.result() {
        Err(e) if e.kind == FailureKind::Cancelled && ctx.is_cancelled() => handle.result(),
        other => other,
    }?;
    Ok(response["body"].clone())
}

spool_sdk::workflow!(order_saga);
