//! Write durable Spool workflows in plain, blocking Rust.
//!
//! A workflow is a function `fn(&Context, Input) -> Result<Output, WorkflowError>`
//! compiled to a WebAssembly component. It reaches the outside world only through its
//! [`Context`]: activities do the side effects, timers wait, and time and randomness
//! come from the host. The host journals every answer it gives, so after a crash it
//! runs the workflow again from the start against the journal, and the workflow code
//! arrives back where it was without doing anything twice.
//!
//! # A complete workflow
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use serde::{Deserialize, Serialize};
//! use spool_sdk::{Context, RetryPolicy, WorkflowError};
//!
//! #[derive(Deserialize)]
//! struct Order {
//!     id: String,
//!     cents: u64,
//! }
//!
//! #[derive(Serialize)]
//! struct Receipt {
//!     order: String,
//!     charge: String,
//! }
//!
//! fn checkout(ctx: &Context, order: Order) -> Result<Receipt, WorkflowError> {
//!     if order.cents == 0 {
//!         return Err(WorkflowError::new("empty_order", "nothing to charge").non_retryable());
//!     }
//!     // An activity: the host runs it, retries it, and journals its result.
//!     let charge: String = ctx
//!         .activity("payments.charge")
//!         .input(&order.cents)
//!         .retry(RetryPolicy::new().maximum_attempts(3))
//!         .start_to_close(Duration::from_secs(10))
//!         .call()?;
//!     // A durable sleep: survives restarts of the host.
//!     ctx.sleep(Duration::from_secs(3600))?;
//!     ctx.activity("email.receipt").input(&order.id).call::<()>()?;
//!     ctx.log_info(format!("order {} done", order.id));
//!     Ok(Receipt { order: order.id, charge })
//! }
//!
//! // Exports `checkout` as the component's `run`.
//! spool_sdk::workflow!(checkout);
//! # fn main() {}
//! ```
//!
//! The crate is a `cdylib` built for `wasm32-wasip2`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! spool-sdk = { path = "../guest-sdk" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! then `cargo build --release --target wasm32-wasip2` gives a component the host
//! accepts as is.
//!
//! # Staying deterministic
//!
//! On replay the workflow must issue the same commands in the same order as the first
//! time. So:
//!
//! - take time from [`Context::now`] and randomness from [`Context::random_u64`] /
//!   [`Context::random_bytes`];
//! - do side effects (HTTP, files, anything that talks to the world) in activities,
//!   never in the workflow itself;
//! - do not change the order of activities, timers and child workflows in a workflow
//!   that has runs in flight: the host compares each command to the journal and fails
//!   the run when they differ.
//!
//! Running several activities at once is deterministic:
//! [`ActivityBuilder::start`] returns at once, and [`Context::all`] and
//! [`Context::any`] report completions in the order the host journaled them.
//!
//! # Activities: timeouts, remote workers, cancellation
//!
//! An activity runs at least once: the host retries a failed attempt per its
//! [`RetryPolicy`], and an attempt cut off by a crash runs again after the restart.
//! [`ActivityBuilder`] bounds it with timeouts, measured on the host's clock; each one
//! fails with kind [`FailureKind::Timeout`] and an error type named after it:
//!
//! | option | bounds | when it passes |
//! |---|---|---|
//! | [`start_to_close`](ActivityBuilder::start_to_close) | one attempt (default 60 s) | `"start_to_close_timeout"`, retried |
//! | [`heartbeat_timeout`](ActivityBuilder::heartbeat_timeout) | the silence between an attempt's heartbeats | `"heartbeat_timeout"`, retried |
//! | [`schedule_to_close`](ActivityBuilder::schedule_to_close) | the whole activity, every attempt and backoff included | `"schedule_to_close_timeout"`, final |
//! | [`schedule_to_start`](ActivityBuilder::schedule_to_start) | an attempt's wait in its task queue | `"schedule_to_start_timeout"`, final |
//!
//! Activity components heartbeat through their `heartbeat` import, remote workers over
//! the HTTP API; built-ins cannot, and the heartbeat timeout does not apply to them. The
//! next attempt gets the last heartbeat's details, to resume from there (unless the
//! server restarted in between: they are not journaled).
//! [`RetryPolicy::non_retryable_error_type`] makes failures of an error type final, for
//! errors only the workflow knows are hopeless.
//!
//! [`ActivityBuilder::task_queue`] hands the activity's attempts to remote workers: any
//! process that long-polls that queue over the HTTP API (the protocol is in
//! `workers/README.md`; `workers/python/spool_worker.py` is a worker library). The
//! activity name tells the worker what to do; nothing else in the workflow changes.
//!
//! [`ActivityHandle::cancel`] asks the host to cancel an activity that has not settled:
//! an attempt running in the host is stopped, a queued one withdrawn, and a remote
//! worker learns it on its next heartbeat. The request is journaled, and the handle
//! settles with kind [`FailureKind::Cancelled`] (error type `"activity_cancelled"`),
//! unless the activity's own result was journaled first.
//!
//! ```no_run
//! use std::time::Duration;
//! use spool_sdk::{Context, RetryPolicy, WorkflowError};
//!
//! fn transcode(ctx: &Context, video: String) -> Result<Option<String>, WorkflowError> {
//!     let job = ctx
//!         .activity("media.transcode")
//!         .task_queue("gpu") // run by a worker polling the queue "gpu"
//!         .input(&video)
//!         .heartbeat_timeout(Duration::from_secs(30)) // a dead worker is noticed in 30 s
//!         .schedule_to_close(Duration::from_secs(3600))
//!         .retry(RetryPolicy::new().non_retryable_error_type("unsupported_codec"))
//!         .start();
//!     let deadline = ctx.timer(Duration::from_secs(1800));
//!     if ctx.any(&[&job, &deadline])?.index == 1 {
//!         job.cancel(); // too slow: give up
//!     }
//!     match job.result::<String>() {
//!         Ok(url) => Ok(Some(url)),
//!         Err(e) if e.error_type == "activity_cancelled" => Ok(None),
//!         Err(e) => Err(e.into()),
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! # Signals
//!
//! A signal is a named message with a JSON input, sent to a running workflow from
//! outside (`spool workflow signal --id ID --name approve --input '{"by": "ann"}'`).
//! The host queues signals in arrival order and hands one to the workflow only when the
//! workflow waits for it, so signals reach the workflow at the same points on every
//! replay:
//!
//! - [`Context::wait_signal`] waits for the next signal of one name, with an optional
//!   durable timeout;
//! - [`Context::on_signal`] registers a handler that updates workflow state, and
//!   [`Context::wait_condition`] waits until a condition on that state holds, running
//!   handlers as signals arrive. Handlers run only inside `wait_signal` and
//!   `wait_condition`: signals that arrive while the workflow waits for an activity or
//!   a timer stay queued, in order, until then;
//! - [`Context::next_signal`] gives a [`SignalHandle`] that [`Context::any`] can race
//!   against activities and timers.
//!
//! ```no_run
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use spool_sdk::{Context, WorkflowError};
//!
//! fn publish(ctx: &Context, draft: String) -> Result<bool, WorkflowError> {
//!     let approved = Rc::new(Cell::new(false));
//!     let flag = Rc::clone(&approved);
//!     ctx.on_signal("approve", move |_: serde_json::Value| flag.set(true));
//!     if !ctx.wait_condition(|| approved.get(), Some(Duration::from_secs(7 * 86_400)))? {
//!         return Ok(false); // nobody approved within a week
//!     }
//!     ctx.activity("cms.publish").input(&draft).call::<()>()?;
//!     Ok(true)
//! }
//! ```
//!
//! Signal names starting with `spool.` are reserved for the host: registering a
//! handler for one, or waiting for one, panics.
//!
//! # Queries
//!
//! A query asks a workflow about its state from outside and gets JSON back
//! (`spool workflow query --id ID --name status`), without changing the run: queries
//! are never journaled. [`Context::query_handler`] registers a handler that reads the
//! workflow's state (shared through an `Rc`, like signal handlers) and returns any
//! `Serialize` value; its input, JSON too, is deserialized into the handler's argument
//! type.
//!
//! The host answers a query in an instance of its own, which replays the run's journal
//! first. If the run is still in flight, the query arrives during whatever wait the
//! replayed workflow stands in (an activity, a timer, a signal: any wait), the SDK
//! runs the handler and the wait goes on; the workflow code never sees it. If the run
//! has ended, the host asks after `run` has returned: handlers outlive the workflow
//! function, so they answer with the state the run ended in. A query with no handler,
//! or whose input does not fit, gets an error message, not a failed run.
//!
//! ```no_run
//! use std::cell::RefCell;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use serde::Serialize;
//! use spool_sdk::{Context, WorkflowError};
//!
//! #[derive(Clone, Serialize)]
//! #[serde(rename_all = "snake_case")]
//! enum Stage {
//!     Packing,
//!     Shipped,
//!     Delivered,
//! }
//!
//! fn ship(ctx: &Context, parcel: String) -> Result<(), WorkflowError> {
//!     let stage = Rc::new(RefCell::new(Stage::Packing));
//!     let s = Rc::clone(&stage);
//!     // `spool workflow query --id ID --name stage` answers "packing", "shipped", ...
//!     ctx.query_handler("stage", move |()| s.borrow().clone());
//!     ctx.activity("warehouse.pack").input(&parcel).call::<()>()?;
//!     *stage.borrow_mut() = Stage::Shipped;
//!     ctx.sleep(Duration::from_secs(2 * 86_400))?;
//!     *stage.borrow_mut() = Stage::Delivered; // what queries see once the run has ended
//!     Ok(())
//! }
//! ```
//!
//! A handler must only read state: a run is replayed without its queries, so a handler
//! that changed state would make the replay take another path. Handlers cannot reach
//! the [`Context`], so they cannot start activities or timers. Query names starting
//! with `spool.` are reserved for the host: registering a handler for one panics.
//!
//! # Updates
//!
//! An update is a request from outside that may change the workflow's state and gets an
//! answer (`spool workflow update --id ID --name NAME --input JSON`). Unlike a query it
//! is journaled, so its handler may change state (shared through an `Rc`), and replay
//! applies it again at the same point. [`Context::update_handler`] registers a handler
//! that returns `Ok(answer)` (any `Serialize` value) or `Err(message)`, which fails the
//! update, not the run. [`Context::update_handler_with_validator`] adds a validator
//! that may refuse the update before it is journaled: the host asks it in an instance
//! of its own, like a query, and a refusal reaches the caller as `update_rejected`
//! without a trace in the run. An accepted update is validated again when it arrives,
//! since the state may have changed; a refusal then fails it.
//!
//! The workflow does not wait for updates: the SDK runs the handler inside whatever
//! wait the workflow is in (an activity, a timer, a signal: any wait), answers, and the
//! wait goes on; [`Context::wait_condition`] checks its condition again after each
//! update. Handlers cannot reach the [`Context`], so they start no activities: they
//! change state that the workflow acts on.
//!
//! ```no_run
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use spool_sdk::{Context, WorkflowError};
//!
//! fn book(ctx: &Context, seats: u32) -> Result<u32, WorkflowError> {
//!     let seats = Rc::new(Cell::new(seats));
//!     let (check, apply) = (Rc::clone(&seats), Rc::clone(&seats));
//!     // `spool workflow update --id ID --name add_seats --input 2` answers the new total.
//!     ctx.update_handler_with_validator(
//!         "add_seats",
//!         move |more: &u32| {
//!             if check.get() + more <= 10 { Ok(()) } else { Err("at most 10 seats".to_owned()) }
//!         },
//!         move |more: u32| {
//!             apply.set(apply.get() + more);
//!             Ok(apply.get())
//!         },
//!     );
//!     ctx.sleep(Duration::from_secs(86_400))?; // updates are applied during this wait
//!     ctx.activity("tickets.issue").input(&seats.get()).call::<()>()?;
//!     Ok(seats.get())
//! }
//! # fn main() {}
//! ```
//!
//! Update names starting with `spool.` are reserved for the host: registering a handler
//! for one panics.
//!
//! # Cancellation
//!
//! An operator cancels a run with `spool workflow cancel --id ID --reason TEXT`. The
//! request reaches the workflow like a signal, durably and in order, but the workflow
//! does not ask for it: **whatever the workflow is waiting on returns a cancellation
//! error** (kind [`FailureKind::Cancelled`], error type `"cancelled"`, the reason as
//! message), and [`Context::is_cancelled`] becomes true:
//!
//! | wait | on cancellation |
//! |---|---|
//! | [`ActivityBuilder::call`], [`ActivityHandle::result`] | `Err(ActivityError)` |
//! | [`Context::all`] | `Err(ActivityError)` for each activity not yet settled |
//! | [`Context::sleep`], [`TimerHandle::wait`] | `Err(WorkflowError)` |
//! | [`Context::wait_signal`], [`Context::wait_condition`], [`SignalHandle::input`] | `Err(WorkflowError)` |
//! | [`Context::any`] | `Err(WorkflowError)` |
//! | [`ChildWorkflowBuilder::call`], [`ChildWorkflowHandle::result`] | `Err(WorkflowError)`; the handle stays pending |
//!
//! The request is delivered once. The wait it interrupts is the only one that fails;
//! later waits work normally, so the workflow can clean up (undo what it did: a
//! compensation) with activities and timers of its own. The interrupted work is not
//! stopped: a started activity runs to its end, and its handle can still be waited on
//! (or cancelled, with [`ActivityHandle::cancel`]).
//! A run ends as **cancelled** when the workflow returns an error of kind
//! `Cancelled`: the one the wait returned (with `?` it passes up unchanged, also from
//! an [`ActivityError`]), or a new one from [`WorkflowError::cancelled`]. A workflow
//! may also ignore the request and end as it likes.
//!
//! The compensation pattern: on cancellation, undo the side effects done so far, then
//! end as cancelled.
//!
//! ```no_run
//! use std::time::Duration;
//! use spool_sdk::{Context, WorkflowError};
//!
//! fn reserve(ctx: &Context, room: String) -> Result<String, WorkflowError> {
//!     // Cancelled here, nothing was done yet: `?` simply ends the run as cancelled.
//!     let hold: String = ctx.activity("rooms.hold").input(&room).call()?;
//!     // Give the guest an hour to pay.
//!     if let Err(cancelled) = ctx.sleep(Duration::from_secs(3600)) {
//!         // Compensation: the cancel has been delivered, so this call waits normally.
//!         ctx.activity("rooms.release").input(&hold).call::<()>()?;
//!         return Err(cancelled); // kind Cancelled: the run ends as cancelled
//!     }
//!     ctx.activity("rooms.confirm").input(&hold).call::<()>()?;
//!     Ok(hold)
//! }
//! # fn main() {}
//! ```
//!
//! # Child workflows
//!
//! [`Context::child_workflow`] starts another workflow (any workflow type uploaded in
//! the same namespace) as a child: a run of its own, with its own workflow id, history
//! and retries, which `spool workflow list --parent ID` lists. The host creates the
//! child run in the same transaction that journals the command, so a crash neither
//! loses it nor starts it twice. [`ChildWorkflowBuilder::start`] returns a
//! [`ChildWorkflowHandle`] at once (race several with [`Context::any`], which reports
//! [`Outcome::Child`]); [`ChildWorkflowBuilder::call`] waits for the output. A child
//! that continues as new is followed to the end of its chain; one whose id is taken by
//! a running workflow, or whose type is unknown, fails its handle (error type
//! `"already_running"`, `"unknown_workflow_type"`).
//!
//! When the parent's run closes (continue-as-new included), a child still running is
//! handled by its [`ParentClosePolicy`]: terminated (the default), asked to cancel, or
//! left running. Cancelling the parent asks its children to cancel too, except
//! abandoned ones.
//!
//! ```no_run
//! use spool_sdk::{Context, ParentClosePolicy, WorkflowError};
//!
//! fn fulfil(ctx: &Context, order: String) -> Result<String, WorkflowError> {
//!     // Without `.id(..)` the child's id is "<this workflow's id>.child-<n>".
//!     let shipping = ctx
//!         .child_workflow("shipping")
//!         .id(format!("ship-{order}"))
//!         .input(&order)
//!         .parent_close_policy(ParentClosePolicy::RequestCancel)
//!         .start();
//!     ctx.activity("billing.invoice").input(&order).call::<()>()?;
//!     let tracking: String = shipping.result()?; // the child's output
//!     Ok(tracking)
//! }
//! # fn main() {}
//! ```
//!
//! # Running forever: continue-as-new
//!
//! The host replays a run's whole journal whenever it rebuilds the run, so a workflow
//! that loops forever (polling, syncing, a periodic job) should not loop inside one
//! run. [`Context::continue_as_new`] ends the run and starts a new run of the same
//! workflow id on a new input, with an empty history: do one round of work, then
//! continue with the state the next round needs. Signals the run received but did not
//! consume go to the new run, in order.
//!
//! ```no_run
//! use std::time::Duration;
//! use spool_sdk::{Context, WorkflowError};
//!
//! fn heartbeat(ctx: &Context, round: u64) -> Result<(), WorkflowError> {
//!     ctx.activity("monitor.ping").input(&round).call::<()>()?;
//!     ctx.sleep(Duration::from_secs(300))?;
//!     ctx.continue_as_new(&(round + 1)) // never returns
//! }
//! # fn main() {}
//! ```
//!
//! # Errors
//!
//! Waiting on an activity gives `Result<T, `[`ActivityError`]`>`, whose fields say what
//! went wrong ([`FailureKind`], `error_type`, …). The workflow returns
//! [`WorkflowError`], into which `?` converts an `ActivityError` unchanged. A panic in
//! the workflow traps, and the host fails the run.
//!
//! # Layout
//!
//! - `context.rs`: [`Context`], [`ActivityBuilder`] (with its timeouts and
//!   [`ActivityBuilder::task_queue`]), [`WorkflowInfo`], [`Level`]: one method per host
//!   import, [`Context::continue_as_new`] among them.
//! - `wait.rs`: [`ActivityHandle`] (with [`ActivityHandle::cancel`]), [`TimerHandle`],
//!   [`Context::all`], [`Context::any`]: waiting on handles.
//! - `signal.rs`: [`Context::wait_signal`], [`Context::on_signal`],
//!   [`Context::wait_condition`], [`SignalHandle`]: receiving signals.
//! - `query.rs`: [`Context::query_handler`]: the query handlers, in a registry that
//!   outlives the run, answering queries during waits and through the `query` export.
//! - `update.rs`: [`Context::update_handler`],
//!   [`Context::update_handler_with_validator`]: the update handlers, in a registry
//!   like the query handlers'.
//! - `child.rs`: [`Context::child_workflow`], [`ChildWorkflowBuilder`],
//!   [`ChildWorkflowHandle`], [`ParentClosePolicy`]: child workflows.
//! - `cancel.rs`: [`Context::is_cancelled`], [`Context::cancel_reason`]: listening for
//!   the cancel request (and answering queries and updates) on every wait, and
//!   recording it.
//! - `retry.rs`: [`RetryPolicy`] (with non-retryable error types) and the `Duration` →
//!   milliseconds rule.
//! - `error.rs`: [`FailureKind`], [`ActivityError`], [`WorkflowError`].
//! - `export.rs`: the glue behind [`workflow!`] (JSON in, JSON or `failure` out; and
//!   the `query` export).
//! - `__bindings` (hidden): the `wit-bindgen` output for `spool:workflow/workflow`.

mod cancel;
mod child;
mod context;
mod error;
mod query;
mod retry;
mod signal;
mod update;
mod wait;

#[doc(hidden)]
pub mod __private {
    //! Items the [`workflow!`](crate::workflow) macro needs in the user's crate.
    pub use crate::export::*;
}
mod export;

/// Generated bindings for `wit/workflow`. Hidden: user crates export through
/// [`workflow!`], which names the export macro generated here.
#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../wit/workflow",
        world: "spool:workflow/workflow",
        pub_export_macro: true,
        export_macro_name: "__export_spool_workflow",
    });
}

pub use child::{ChildWorkflowBuilder, ChildWorkflowHandle, ParentClosePolicy};
pub use context::{ActivityBuilder, Context, Level, WorkflowInfo};
pub use error::{ActivityError, FailureKind, WorkflowError};
pub use retry::RetryPolicy;
pub use signal::SignalHandle;
pub use wait::{ActivityHandle, Awaitable, Outcome, Ready, TimerHandle};

/// Exports a workflow function as the component's `run`, and the query handlers it
/// registers as the component's `query`.
///
/// The function has the shape `fn(&Context, In) -> Result<Out, WorkflowError>` with
/// `In: serde::de::DeserializeOwned` and `Out: serde::Serialize`. The SDK decodes the
/// run's JSON input into `In` (failing the run with a non-retryable `"invalid_input"`
/// error when it does not fit), and encodes `Out` as the run's JSON output.
///
/// The component's `query` export, which the host calls to ask a run that has ended
/// about its state, answers from the handlers the run registered with
/// [`Context::query_handler`]: they outlive the workflow function.
///
/// Use it once per crate, at module level.
///
/// ```no_run
/// use spool_sdk::{Context, WorkflowError};
///
/// fn hello(ctx: &Context, name: String) -> Result<String, WorkflowError> {
///     let echoed: String = ctx.activity("spool.echo").input(&name).call()?;
///     Ok(format!("hello {echoed}"))
/// }
///
/// spool_sdk::workflow!(hello);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! workflow {
    ($workflow:path) => {
        const _: () = {
            struct SpoolWorkflow;

            impl $crate::__private::Guest for SpoolWorkflow {
                fn run(
                    input: $crate::__private::String,
                ) -> ::core::result::Result<$crate::__private::String, $crate::__private::Failure>
                {
                    $crate::__private::run($workflow, input)
                }

                fn query(
                    name: $crate::__private::String,
                    input: $crate::__private::String,
                ) -> ::core::result::Result<$crate::__private::String, $crate::__private::String>
                {
                    $crate::__private::query(&name, &input)
                }
            }

            $crate::__bindings::__export_spool_workflow!(
                SpoolWorkflow with_types_in $crate::__bindings
            );
        };
    };
}
