//! Waits for an `approve` or `reject` signal, or a timeout; for signal tests.
//!
//! Input `{"timeout_ms": N, "mode": "condition" | "signal"}` (mode optional, default
//! "condition"). Signal input: `{"by": "<name>"}`.
//!
//! - Mode condition: handlers for `approve` and `reject` record the first decision
//!   (later signals are counted, not applied), then `wait_condition(decided, N ms)`.
//!   Output `{"outcome": "approved" | "rejected" | "timed_out", "by": <name or null>,
//!   "signals_seen": <signals handled>}`.
//! - Mode signal: `wait_signal("approve", N ms)`; `reject` is never asked for and stays
//!   queued. Output `{"outcome": "approved" | "timed_out", "by": <name or null>}`.
//!
//! Query (mode condition only): `status`, input ignored, answers `{"decided": bool,
//! "outcome": "approved" | "rejected" | null, "signals_seen": <signals handled>}` from
//! the current state, also after the run has ended (a timed-out run is undecided).
//!
//! Commands: one `start-timer(N)`. A signal input without a string `by` is dropped with
//! a warning in mode condition, and fails the run with `invalid_signal` in mode signal.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use spool_sdk::{Context, WorkflowError};

#[derive(Deserialize)]
struct Input {
    timeout_ms: u64,
    #[serde(default)]
    mode: Mode,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Condition,
    Signal,
}

#[derive(Deserialize)]
struct Decision {
    by: String,
}

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Approved,
    Rejected,
    TimedOut,
}

/// The answer to the `status` query.
#[derive(Serialize)]
struct Status {
    decided: bool,
    outcome: Option<Verdict>,
    signals_seen: u32,
}

#[derive(Serialize)]
struct Output {
    outcome: Verdict,
    by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signals_seen: Option<u32>,
}

fn approval(ctx: &Context, input: Input) -> Result<Output, WorkflowError> {
    let timeout = Duration::from_millis(input.timeout_ms);
    match input.mode {
        Mode::Condition => by_condition(ctx, timeout),
        Mode::Signal => by_signal(ctx, timeout),
    }
}

fn by_condition(ctx: &Context, timeout: Duration) -> Result<Output, WorkflowError> {
    // The first decision wins; the handlers share it with the workflow through an Rc.
    let decision: Rc<RefCell<Option<(Verdict, String)>>> = Rc::default();
    let seen = Rc::new(Cell::new(0u32));
    for (name, verdict) in [
        ("approve", Verdict::Approved),
        ("reject", Verdict::Rejected),
    ] {
        let decision = Rc::clone(&decision);
        let seen = Rc::clone(&seen);
        ctx.on_signal(name, move |input: Decision| {
            seen.set(seen.get() + 1);
            decision.borrow_mut().get_or_insert((verdict, input.by));
        });
    }
    {
        let (decision, seen) = (Rc::clone(&decision), Rc::clone(&seen));
        ctx.query_handler("status", move |_: serde_json::Value| {
            let outcome = decision.borrow().as_ref().map(|(verdict, _)| *verdict);
            Status {
                decided: outcome.is_some(),
                outcome,
                signals_seen: seen.get(),
            }
        });
    }
    ctx.wait_condition(|| decision.borrow().is_some(), Some(timeout))?;
    // Cloned, not taken: the `status` query still reads the decision after the run.
    let decided = decision.borrow().clone();
    let (outcome, by) = match decided {
        Some((verdict, by)) => (verdict, Some(by)),
        None => (Verdict::TimedOut, None),
    };
    Ok(Output {
        outcome,
        by,
        signals_seen: Some(seen.get()),
    })
}

fn by_signal(ctx: &Context, timeout: Duration) -> Result<Output, WorkflowError> {
    let approval = ctx.wait_signal::<Decision>("approve", Some(timeout))?;
    Ok(Output {
        outcome: match approval {
            Some(_) => Verdict::Approved,
            None => Verdict::TimedOut,
        },
        by: approval.map(|a| a.by),
        signals_seen: None,
    })
}

spool_sdk::workflow!(approval);
