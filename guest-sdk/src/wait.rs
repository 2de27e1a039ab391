//! Handles to started work, and waiting on them.
//!
//! Every wait goes through one host call, `await-next`, which returns the earliest
//! journaled event among the handles and signal names given, and every call goes
//! through [`Cancellation::await_next`], which also listens for the cancel request. A
//! handle remembers its outcome once it has settled, so waiting on it again (or reading
//! it after [`Context::any`] chose it) answers at once without asking the host; the SDK
//! therefore never names a settled handle to the host, and never calls `await-next`
//! with nothing to wait for. A wait interrupted by cancellation leaves its handles as
//! they were: still pending, to be waited on again. A query the host hands over
//! during a wait is answered there too, and the wait goes on (see `query.rs`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde::de::DeserializeOwned;

use crate::__bindings::spool::workflow::context as wit;
use crate::cancel::{Cancellation, Cancelled};
use crate::{ActivityError, Context, WorkflowError};

/// What `await-next` reported for one handle.
#[derive(Debug)]
pub enum Settled {
    Activity(Result<String, wit::Failure>),
    TimerFired,
    /// A signal's JSON input; settles a [`SignalHandle`](crate::SignalHandle).
    Signal(String),
    /// A child workflow's output, or why it failed.
    Child(Result<String, wit::Failure>),
}

/// What one `await-next` call delivered: a result for a handle, or a signal.
#[derive(Debug)]
pub(crate) enum Delivered {
    Handle(u32, Settled),
    Signal { name: String, input: String },
}

/// What one `await-next` call returned: something for the wait, or a query to answer
/// before asking again. [`Cancellation::await_next`] answers queries itself, so the
/// waiting loops only ever see [`Delivered`].
#[derive(Debug)]
pub(crate) enum Answer {
    Delivered(Delivered),
    /// A query about the workflow's state, in an instance the host built to answer it.
    Query {
        id: u64,
        name: String,
        input: String,
    },
    /// An update to validate (and, unless `validate_only`, apply) and answer.
    Update {
        id: String,
        name: String,
        input: String,
        validate_only: bool,
    },
}

/// The host calls the waiting loops make, behind a trait so that unit tests can play
/// the host from a script. [`Wit`] is the real one.
pub(crate) trait Host {
    /// Blocks until one of `handles` settles or a signal named in `signals` arrives,
    /// or a query comes in. At least one of `handles` and `signals` must be non-empty.
    fn await_next(&mut self, handles: &[u32], signals: &[String]) -> Answer;
    /// Answers the query with this id: JSON text, or an error message.
    fn respond_query(&mut self, id: u64, result: Result<String, String>);
    /// Answers the update with this id: JSON text, or why it failed or was rejected.
    fn respond_update(&mut self, id: &str, result: Result<String, String>);
    /// Writes a warning to the workflow log.
    fn warn(&mut self, message: &str);
}

/// The host through the `spool:workflow/context` imports.
pub(crate) struct Wit;

impl Host for Wit {
    fn await_next(&mut self, handles: &[u32], signals: &[String]) -> Answer {
        let delivered = match wit::await_next(handles, signals) {
            wit::Event::ActivityCompleted(done) => {
                Delivered::Handle(done.handle, Settled::Activity(Ok(done.output)))
            }
            wit::Event::ActivityFailed(failed) => {
                Delivered::Handle(failed.handle, Settled::Activity(Err(failed.failure)))
            }
            wit::Event::TimerFired(handle) => Delivered::Handle(handle, Settled::TimerFired),
            wit::Event::ChildCompleted(done) => {
                Delivered::Handle(done.handle, Settled::Child(Ok(done.output)))
            }
            wit::Event::ChildFailed(failed) => {
                Delivered::Handle(failed.handle, Settled::Child(Err(failed.failure)))
            }
            wit::Event::Signal(signal) => Delivered::Signal {
                name: signal.name,
                input: signal.input,
            },
            wit::Event::Query(query) => {
                return Answer::Query {
                    id: query.id,
                    name: query.name,
                    input: query.input,
                }
            }
            wit::Event::Update(update) => {
                return Answer::Update {
                    id: update.id,
                    name: update.name,
                    input: update.input,
                    validate_only: update.validate_only,
                }
            }
        };
        Answer::Delivered(delivered)
    }

    fn respond_query(&mut self, id: u64, result: Result<String, String>) {
        wit::respond_query(id, result.as_deref().map_err(String::as_str));
    }

    fn respond_update(&mut self, id: &str, result: Result<String, String>) {
        wit::respond_update(id, result.as_deref().map_err(String::as_str));
    }

    fn warn(&mut self, message: &str) {
        wit::log(wit::LogLevel::Warn, message);
    }
}

/// Blocks until `handle` settles or the cancel request arrives.
pub(crate) fn await_one(
    cancel: &Cancellation,
    host: &mut impl Host,
    handle: u32,
) -> Result<Settled, Cancelled> {
    match cancel.await_next(host, &[handle], &[])? {
        Delivered::Handle(got, settled) => {
            assert_eq!(got, handle, "host answered for a handle not asked for");
            Ok(settled)
        }
        Delivered::Signal { name, .. } => {
            panic!("host delivered signal `{name}` although the SDK asked for none")
        }
    }
}

mod sealed {
    /// What an unsettled awaitable waits for.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Pending<'a> {
        /// A host handle (activity or timer).
        Handle(u32),
        /// The next signal of this name.
        Signal(&'a str),
    }

    /// The operations [`Context::any`](crate::Context::any) needs; sealed so that the
    /// set of awaitable things stays the SDK's to decide.
    pub trait Waitable {
        /// What it waits for, while the outcome is still unknown.
        fn pending(&self) -> Option<Pending<'_>>;
        /// Records what the host reported for this handle.
        fn settle(&self, settled: super::Settled);
        /// The outcome, once settled.
        fn outcome(&self) -> Option<super::Outcome>;
    }
}

pub(crate) use sealed::{Pending, Waitable};

/// Something [`Context::any`] can wait on: an [`ActivityHandle`], a [`TimerHandle`] or
/// a [`SignalHandle`](crate::SignalHandle) or a
/// [`ChildWorkflowHandle`](crate::ChildWorkflowHandle).
///
/// The trait is sealed; pass handles as `&dyn Awaitable`, which a `&handle` in an
/// array literal becomes by itself:
///
/// ```no_run
/// use std::time::Duration;
/// use spool_sdk::{Awaitable, Context};
///
/// # fn f(ctx: &Context) -> Result<(), spool_sdk::WorkflowError> {
/// let call = ctx.activity("reports.build").start();
/// let deadline = ctx.timer(Duration::from_secs(60));
/// let both: [&dyn Awaitable; 2] = [&call, &deadline];
/// let first = ctx.any(&both)?;
/// # Ok(())
/// # }
/// ```
pub trait Awaitable: sealed::Waitable {}

/// How a handle chosen by [`Context::any`] settled.
///
/// Cancellation is not an outcome: `any` returns it as an error, since no handle
/// settled.
///
/// ```no_run
/// use std::time::Duration;
/// use spool_sdk::{Context, Outcome};
///
/// # fn f(ctx: &Context) -> Result<(), spool_sdk::WorkflowError> {
/// let call = ctx.activity("reports.build").start();
/// let deadline = ctx.timer(Duration::from_secs(60));
/// match ctx.any(&[&call, &deadline])?.outcome {
///     Outcome::Activity(Ok(json)) => ctx.log_info(format!("report: {json}")),
///     Outcome::Activity(Err(e)) => ctx.log_error(format!("report failed: {e}")),
///     Outcome::TimerFired => ctx.log_warn("report is late"),
///     Outcome::Signal(_) | Outcome::Child(_) => unreachable!("not among the handles"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// An activity settled: its output as untyped JSON, or why it failed. For a typed
    /// value call [`ActivityHandle::result`] on the same handle; it answers at once.
    Activity(Result<serde_json::Value, ActivityError>),
    /// A timer fired.
    TimerFired,
    /// A signal arrived: its input as untyped JSON (the host accepts only JSON, so an
    /// error here is rare), or why it did not decode. For a typed value call
    /// [`SignalHandle::input`](crate::SignalHandle::input) on the same handle; it
    /// answers at once.
    Signal(Result<serde_json::Value, WorkflowError>),
    /// A child workflow ended: its output as untyped JSON, or why it failed. For a
    /// typed value call [`ChildWorkflowHandle::result`](crate::ChildWorkflowHandle::result)
    /// on the same handle; it answers at once.
    Child(Result<serde_json::Value, WorkflowError>),
}

/// The first handle to settle among those given to [`Context::any`].
///
/// ```no_run
/// use std::time::Duration;
/// use spool_sdk::Context;
///
/// # fn f(ctx: &Context) -> Result<(), spool_sdk::WorkflowError> {
/// let call = ctx.activity("reports.build").start();
/// let deadline = ctx.timer(Duration::from_secs(60));
/// let first = ctx.any(&[&call, &deadline])?;
/// if first.index == 0 {
///     let url: String = call.result()?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Ready {
    /// Position of the handle in the slice given to `any`.
    pub index: usize,
    /// How it settled.
    pub outcome: Outcome,
}

#[derive(Debug)]
enum ActivityState {
    Pending(u32),
    Done(Result<String, ActivityError>),
}

/// A started activity. Wait for its result with [`result`](ActivityHandle::result),
/// or together with other handles through [`Context::all`] and [`Context::any`].
///
/// Dropping a handle does not cancel the activity; its result is simply never read.
/// Nor does cancelling the workflow: a wait on the handle that the cancel request
/// interrupts returns a [`Cancelled`](crate::FailureKind::Cancelled) error, and the
/// handle can be waited on again afterwards for the activity's own result.
///
/// ```no_run
/// use spool_sdk::{Context, WorkflowError};
///
/// fn two_at_once(ctx: &Context) -> Result<u64, WorkflowError> {
///     let a = ctx.activity("inventory.count").input(&"north").start();
///     let b = ctx.activity("inventory.count").input(&"south").start();
///     // Both run at the same time; the waits below only collect them.
///     Ok(a.result::<u64>()? + b.result::<u64>()?)
/// }
/// ```
#[derive(Debug)]
pub struct ActivityHandle {
    name: String,
    state: RefCell<ActivityState>,
    cancel: Rc<Cancellation>,
}

impl ActivityHandle {
    pub(crate) fn pending(name: String, handle: u32, cancel: Rc<Cancellation>) -> Self {
        ActivityHandle {
            name,
            state: RefCell::new(ActivityState::Pending(handle)),
            cancel,
        }
    }

    pub(crate) fn failed(name: String, error: ActivityError, cancel: Rc<Cancellation>) -> Self {
        ActivityHandle {
            name,
            state: RefCell::new(ActivityState::Done(Err(error))),
            cancel,
        }
    }

    /// The activity's name.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// let handle = ctx.activity("spool.echo").start();
    /// assert_eq!(handle.name(), "spool.echo");
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks the host to cancel the activity, unless it has settled already. The
    /// handle then settles with an [`ActivityError`] of kind
    /// [`Cancelled`](crate::FailureKind::Cancelled) (type `"activity_cancelled"`) —
    /// unless its own result was journaled first: waiting on it tells which. An
    /// attempt running in the host is stopped, a queued one withdrawn, and a remote
    /// worker learns it on its next heartbeat.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use spool_sdk::{Context, WorkflowError};
    ///
    /// fn render_or_give_up(ctx: &Context) -> Result<Option<String>, WorkflowError> {
    ///     let render = ctx.activity("video.render").task_queue("gpu").start();
    ///     let deadline = ctx.timer(Duration::from_secs(600));
    ///     if ctx.any(&[&render, &deadline])?.index == 1 {
    ///         render.cancel();
    ///     }
    ///     match render.result::<String>() {
    ///         Ok(url) => Ok(Some(url)),
    ///         Err(e) if e.error_type == "activity_cancelled" => Ok(None),
    ///         Err(e) => Err(e.into()),
    ///     }
    /// }
    /// ```
    pub fn cancel(&self) {
        if let Some(handle) = self.pending_handle() {
            wit::cancel_activity(handle);
        }
    }

    /// Waits for the activity to finish and deserializes its output.
    ///
    /// Asking again returns the same answer without waiting. The host has already
    /// applied the retry policy when this returns an error.
    ///
    /// # Errors
    ///
    /// The activity's failure; or, if the workflow's cancel request arrives during the
    /// wait, an error of kind [`Cancelled`](crate::FailureKind::Cancelled) (type
    /// `"cancelled"`, the reason as message), after which the handle is still pending
    /// and a later call waits for the activity's own result.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) -> Result<(), spool_sdk::ActivityError> {
    /// let handle = ctx.activity("spool.echo").input(&[1, 2, 3]).start();
    /// let echoed: Vec<u32> = handle.result()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn result<T: DeserializeOwned>(&self) -> Result<T, ActivityError> {
        self.result_from(&mut Wit)
    }

    /// [`result`](ActivityHandle::result), asking `host`.
    pub(crate) fn result_from<T: DeserializeOwned>(
        &self,
        host: &mut impl Host,
    ) -> Result<T, ActivityError> {
        if let Some(handle) = self.pending_handle() {
            self.settle_with(await_one(&self.cancel, host, handle)?);
        }
        self.decoded().expect("activity settled above")
    }

    /// The decoded result, once settled.
    fn decoded<T: DeserializeOwned>(&self) -> Option<Result<T, ActivityError>> {
        match &*self.state.borrow() {
            ActivityState::Done(Ok(raw)) => Some(
                serde_json::from_str(raw)
                    .map_err(|e| ActivityError::invalid_output(&self.name, &e, raw)),
            ),
            ActivityState::Done(Err(e)) => Some(Err(e.clone())),
            ActivityState::Pending(_) => None,
        }
    }

    fn pending_handle(&self) -> Option<u32> {
        match *self.state.borrow() {
            ActivityState::Pending(handle) => Some(handle),
            ActivityState::Done(_) => None,
        }
    }

    fn settle_with(&self, settled: Settled) {
        let result = match settled {
            Settled::Activity(result) => result.map_err(ActivityError::from_wit),
            Settled::TimerFired | Settled::Signal(_) | Settled::Child(_) => {
                panic!(
                    "host reported a timer, signal or child for activity `{}`",
                    self.name
                )
            }
        };
        *self.state.borrow_mut() = ActivityState::Done(result);
    }
}

impl Waitable for ActivityHandle {
    fn pending(&self) -> Option<Pending<'_>> {
        self.pending_handle().map(Pending::Handle)
    }

    fn settle(&self, settled: Settled) {
        self.settle_with(settled);
    }

    fn outcome(&self) -> Option<Outcome> {
        match &*self.state.borrow() {
            ActivityState::Pending(_) => None,
            ActivityState::Done(Ok(raw)) => {
                Some(Outcome::Activity(serde_json::from_str(raw).map_err(|e| {
                    ActivityError::invalid_output(&self.name, &e, raw)
                })))
            }
            ActivityState::Done(Err(e)) => Some(Outcome::Activity(Err(e.clone()))),
        }
    }
}

impl Awaitable for ActivityHandle {}

#[derive(Clone, Copy, Debug)]
enum TimerState {
    Pending(u32),
    Fired,
}

/// A durable timer started by [`Context::timer`]. It fires after its duration of
/// virtual time, even across crashes and restarts of the host.
///
/// ```no_run
/// use std::time::Duration;
///
/// # fn f(ctx: &spool_sdk::Context) -> Result<(), spool_sdk::WorkflowError> {
/// let reminder = ctx.timer(Duration::from_secs(3600));
/// let cleanup = ctx.activity("files.cleanup").start();
/// reminder.wait()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TimerHandle {
    state: Cell<TimerState>,
    cancel: Rc<Cancellation>,
}

impl TimerHandle {
    pub(crate) fn pending(handle: u32, cancel: Rc<Cancellation>) -> Self {
        TimerHandle {
            state: Cell::new(TimerState::Pending(handle)),
            cancel,
        }
    }

    /// Waits until the timer fires; returns at once if it already has.
    ///
    /// # Errors
    ///
    /// If the workflow's cancel request arrives first: a [`WorkflowError`] of kind
    /// [`Cancelled`](crate::FailureKind::Cancelled) (type `"cancelled"`, the reason as
    /// message). The timer keeps running; a later `wait` waits for it again.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # fn f(ctx: &spool_sdk::Context) -> Result<(), spool_sdk::WorkflowError> {
    /// let timer = ctx.timer(Duration::from_secs(5));
    /// timer.wait()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait(&self) -> Result<(), WorkflowError> {
        self.wait_on(&mut Wit)
    }

    /// [`wait`](TimerHandle::wait), asking `host`.
    pub(crate) fn wait_on(&self, host: &mut impl Host) -> Result<(), WorkflowError> {
        if let TimerState::Pending(handle) = self.state.get() {
            self.settle_with(await_one(&self.cancel, host, handle)?);
        }
        Ok(())
    }

    fn settle_with(&self, settled: Settled) {
        match settled {
            Settled::TimerFired => self.state.set(TimerState::Fired),
            Settled::Activity(_) | Settled::Signal(_) | Settled::Child(_) => {
                panic!("host reported an activity, signal or child result for a timer")
            }
        }
    }
}

impl Waitable for TimerHandle {
    fn pending(&self) -> Option<Pending<'_>> {
        match self.state.get() {
            TimerState::Pending(handle) => Some(Pending::Handle(handle)),
            TimerState::Fired => None,
        }
    }

    fn settle(&self, settled: Settled) {
        self.settle_with(settled);
    }

    fn outcome(&self) -> Option<Outcome> {
        match self.state.get() {
            TimerState::Pending(_) => None,
            TimerState::Fired => Some(Outcome::TimerFired),
        }
    }
}

impl Awaitable for TimerHandle {}

/// Waits until every handle has settled or the cancel request arrives. See
/// [`Context::all`].
pub(crate) fn all<T: DeserializeOwned>(
    cancel: &Cancellation,
    handles: &[ActivityHandle],
    host: &mut impl Host,
) -> Vec<Result<T, ActivityError>> {
    // Parallel lists: the host handles still pending, and where each sits in `handles`.
    let mut ids = Vec::with_capacity(handles.len());
    let mut owners = Vec::with_capacity(handles.len());
    for (index, handle) in handles.iter().enumerate() {
        if let Some(id) = handle.pending_handle() {
            ids.push(id);
            owners.push(index);
        }
    }
    let mut interrupted = None;
    while !ids.is_empty() {
        let (got, settled) = match cancel.await_next(host, &ids, &[]) {
            Ok(Delivered::Handle(got, settled)) => (got, settled),
            Ok(Delivered::Signal { name, .. }) => {
                panic!("host delivered signal `{name}` although the SDK asked for none")
            }
            Err(cancelled) => {
                interrupted = Some(cancelled);
                break;
            }
        };
        let at = ids
            .iter()
            .position(|&id| id == got)
            .expect("host answered for a handle not asked for");
        handles[owners[at]].settle_with(settled);
        ids.swap_remove(at);
        owners.swap_remove(at);
    }
    handles
        .iter()
        .map(|handle| match handle.decoded() {
            Some(result) => result,
            None => Err(interrupted
                .clone()
                .expect("a handle is pending only if the wait was interrupted")
                .into()),
        })
        .collect()
}

/// Waits until the first handle settles or the cancel request arrives. See
/// [`Context::any`].
pub(crate) fn any(
    cancel: &Cancellation,
    handles: &[&dyn Awaitable],
    host: &mut impl Host,
) -> Result<Ready, Cancelled> {
    assert!(
        !handles.is_empty(),
        "Context::any needs at least one handle"
    );
    // A handle that has already settled wins at once, the earliest in the slice first,
    // so the choice is the same on every replay.
    for (index, handle) in handles.iter().enumerate() {
        if let Some(outcome) = handle.outcome() {
            return Ok(Ready { index, outcome });
        }
    }
    let mut ids = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for handle in handles {
        match handle
            .pending()
            .expect("checked above: nothing has settled")
        {
            Pending::Handle(id) => ids.push(id),
            Pending::Signal(name) => {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
        }
    }
    let (index, settled) = match cancel.await_next(host, &ids, &names)? {
        Delivered::Handle(got, settled) => (waiting_for(handles, Pending::Handle(got)), settled),
        Delivered::Signal { name, input } => (
            waiting_for(handles, Pending::Signal(&name)),
            Settled::Signal(input),
        ),
    };
    handles[index].settle(settled);
    let outcome = handles[index]
        .outcome()
        .expect("the handle settled just above");
    Ok(Ready { index, outcome })
}

/// The first of `handles` waiting for `wanted`: for two handles on the same signal
/// name, the earlier in the slice takes the signal.
fn waiting_for(handles: &[&dyn Awaitable], wanted: Pending<'_>) -> usize {
    handles
        .iter()
        .position(|h| h.pending() == Some(wanted))
        .expect("host answered for a handle or signal not asked for")
}

impl Context {
    /// Waits for every activity and returns their results in the order of `handles`,
    /// whatever order they finish in. It waits for all of them even when one fails
    /// early; collect into `Result<Vec<_>, _>` to stop at the first error.
    ///
    /// If the workflow's cancel request arrives during the wait, `all` stops waiting:
    /// the activities that had settled keep their results, and each of the others gets
    /// an error of kind [`Cancelled`](crate::FailureKind::Cancelled) and stays pending
    /// (its handle can be waited on again). Check [`Context::is_cancelled`] to tell a
    /// cancellation from an activity's own failure that came first in the list.
    ///
    /// ```no_run
    /// use spool_sdk::{Context, WorkflowError};
    ///
    /// fn fan_out(ctx: &Context, ids: &[u32]) -> Result<Vec<String>, WorkflowError> {
    ///     let handles: Vec<_> = ids
    ///         .iter()
    ///         .map(|id| ctx.activity("users.lookup").input(id).start())
    ///         .collect();
    ///     let names = ctx.all::<String>(&handles).into_iter().collect::<Result<_, _>>()?;
    ///     Ok(names)
    /// }
    /// ```
    pub fn all<T: DeserializeOwned>(
        &self,
        handles: &[ActivityHandle],
    ) -> Vec<Result<T, ActivityError>> {
        all(&self.cancel, handles, &mut Wit)
    }

    /// Waits until the first of `handles` settles, and says which one and how.
    ///
    /// Handles can be activities, timers or signals ([`Context::next_signal`]), so "an
    /// activity or a deadline" or "an activity unless someone cancels" is one call. The
    /// others keep running and can be waited on later. A handle that had already
    /// settled before the call wins at once (the first such in the slice). Like every
    /// wait except [`Context::wait_signal`] and [`Context::wait_condition`], `any` runs
    /// no signal handlers.
    ///
    /// # Errors
    ///
    /// If the workflow's cancel request arrives before any handle settles: a
    /// [`WorkflowError`] of kind [`Cancelled`](crate::FailureKind::Cancelled) (type
    /// `"cancelled"`, the reason as message). No handle has settled; all can be waited
    /// on again. (An already settled handle wins at once, without asking the host, so
    /// then there is no error.)
    ///
    /// # Panics
    ///
    /// If `handles` is empty.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use spool_sdk::{Context, WorkflowError};
    ///
    /// fn approve(ctx: &Context, order: u64) -> Result<bool, WorkflowError> {
    ///     let review = ctx.activity("orders.review").input(&order).start();
    ///     let deadline = ctx.timer(Duration::from_secs(24 * 3600));
    ///     let first = ctx.any(&[&review, &deadline])?;
    ///     if first.index == 1 {
    ///         return Err(WorkflowError::new("review_timeout", "nobody reviewed in time"));
    ///     }
    ///     Ok(review.result::<bool>()?)
    /// }
    /// ```
    pub fn any(&self, handles: &[&dyn Awaitable]) -> Result<Ready, WorkflowError> {
        Ok(any(&self.cancel, handles, &mut Wit)?)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A host played from a script, for unit tests of the waiting loops.

    use std::collections::VecDeque;

    use super::{Answer, Delivered, Host, Settled};
    use crate::cancel::CANCEL_SIGNAL;

    /// Answers `await-next` calls with the scripted answers in order, and records the
    /// calls, query responses and warnings. It does not check that an answer was asked
    /// for: that is the SDK's to check.
    pub(crate) struct Script {
        script: VecDeque<Answer>,
        /// The `(handles, signals)` of each `await-next` call.
        pub calls: Vec<(Vec<u32>, Vec<String>)>,
        /// The `(id, result)` of each `respond-query` call.
        pub responses: Vec<(u64, Result<String, String>)>,
        /// The `(id, result)` of each `respond-update` call.
        pub update_responses: Vec<(String, Result<String, String>)>,
        pub warnings: Vec<String>,
    }

    impl Script {
        pub fn new(script: impl IntoIterator<Item = Answer>) -> Self {
            Script {
                script: script.into_iter().collect(),
                calls: Vec::new(),
                responses: Vec::new(),
                update_responses: Vec::new(),
                warnings: Vec::new(),
            }
        }

        pub fn signal(name: &str, input: &str) -> Answer {
            Answer::Delivered(Delivered::Signal {
                name: name.to_owned(),
                input: input.to_owned(),
            })
        }

        /// The cancel request, as the host delivers it.
        pub fn cancel(reason: &str) -> Answer {
            let input = serde_json::json!({ "reason": reason }).to_string();
            Script::signal(CANCEL_SIGNAL, &input)
        }

        pub fn timer(handle: u32) -> Answer {
            Answer::Delivered(Delivered::Handle(handle, Settled::TimerFired))
        }

        pub fn completed(handle: u32, output: &str) -> Answer {
            Answer::Delivered(Delivered::Handle(
                handle,
                Settled::Activity(Ok(output.to_owned())),
            ))
        }

        /// An update event with this id, name and JSON input.
        pub fn update(id: &str, name: &str, input: &str, validate_only: bool) -> Answer {
            Answer::Update {
                id: id.to_owned(),
                name: name.to_owned(),
                input: input.to_owned(),
                validate_only,
            }
        }

        /// A query event with this id, name and JSON input.
        pub fn query(id: u64, name: &str, input: &str) -> Answer {
            Answer::Query {
                id,
                name: name.to_owned(),
                input: input.to_owned(),
            }
        }
    }

    impl Host for Script {
        fn await_next(&mut self, handles: &[u32], signals: &[String]) -> Answer {
            self.calls.push((handles.to_vec(), signals.to_vec()));
            self.script
                .pop_front()
                .expect("the script has an answer for every await-next")
        }

        fn respond_query(&mut self, id: u64, result: Result<String, String>) {
            self.responses.push((id, result));
        }

        fn respond_update(&mut self, id: &str, result: Result<String, String>) {
            self.update_responses.push((id.to_owned(), result));
        }

        fn warn(&mut self, message: &str) {
            self.warnings.push(message.to_owned());
        }
    }

    /// `names` as the SDK sends them while listening for cancellation.
    pub fn listening(names: &[&str]) -> Vec<String> {
        names
            .iter()
            .copied()
            .chain([CANCEL_SIGNAL])
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    //! These tests use handles that have settled already, or a scripted host, so they
    //! never reach the host imports (which trap on the native target).

    use super::testing::{listening, Script};
    use super::*;
    use crate::FailureKind;

    fn completed(output: &str) -> ActivityHandle {
        ActivityHandle {
            name: "spool.echo".to_owned(),
            state: RefCell::new(ActivityState::Done(Ok(output.to_owned()))),
            cancel: Rc::default(),
        }
    }

    fn failed(error_type: &str) -> ActivityHandle {
        let error = ActivityError::from_wit(wit::Failure {
            kind: wit::FailureKind::Application,
            error_type: error_type.to_owned(),
            message: "it broke".to_owned(),
            non_retryable: false,
            details: None,
        });
        ActivityHandle::failed("flaky".to_owned(), error, Rc::default())
    }

    fn fired() -> TimerHandle {
        TimerHandle {
            state: Cell::new(TimerState::Fired),
            cancel: Rc::default(),
        }
    }

    #[test]
    fn result_decodes_the_output_every_time_it_is_asked() {
        let handle = completed(r#"{"step":3}"#);
        let first: serde_json::Value = handle.result().unwrap();
        let again: serde_json::Value = handle.result().unwrap();
        assert_eq!(first, serde_json::json!({ "step": 3 }));
        assert_eq!(first, again);
    }

    #[test]
    fn output_of_the_wrong_shape_is_invalid_output_with_the_raw_json() {
        let err = completed(r#""three""#).result::<u32>().unwrap_err();
        assert_eq!(err.kind, FailureKind::InvalidOutput);
        assert_eq!(err.error_type, "invalid_output");
        assert_eq!(err.details.as_deref(), Some(r#""three""#));
        assert!(err.message.contains("spool.echo"), "{}", err.message);
    }

    #[test]
    fn failures_come_back_as_activity_errors() {
        let err = failed("card_declined").result::<()>().unwrap_err();
        assert_eq!(err.kind, FailureKind::Application);
        assert_eq!(err.error_type, "card_declined");
    }

    #[test]
    fn all_keeps_handle_order() {
        let handles = [completed("1"), failed("boom"), completed("3")];
        let results = all::<u32>(&Cancellation::default(), &handles, &mut Script::new([]));
        assert_eq!(results.len(), 3);
        assert_eq!(results[0], Ok(1));
        assert_eq!(results[1].as_ref().unwrap_err().error_type, "boom");
        assert_eq!(results[2], Ok(3));
    }

    #[test]
    fn all_of_nothing_is_empty() {
        assert!(all::<u32>(&Cancellation::default(), &[], &mut Script::new([])).is_empty());
    }

    #[test]
    fn all_collects_in_handle_order_whatever_order_they_finish_in() {
        let cancel = Rc::new(Cancellation::default());
        let handles = [
            ActivityHandle::pending("a".to_owned(), 1, Rc::clone(&cancel)),
            ActivityHandle::pending("b".to_owned(), 2, Rc::clone(&cancel)),
        ];
        let mut host = Script::new([Script::completed(2, "20"), Script::completed(1, "10")]);
        let results = all::<u32>(&cancel, &handles, &mut host);
        assert_eq!(results, [Ok(10), Ok(20)]);
        let names = listening(&[]);
        assert_eq!(host.calls, [(vec![1, 2], names.clone()), (vec![1], names)]);
    }

    #[test]
    fn any_prefers_an_already_settled_handle_without_asking_the_host() {
        // The pending timer would trap if `any` called the host.
        let pending = TimerHandle::pending(7, Rc::default());
        let done = completed(r#"{"ok":true}"#);
        let cancel = Cancellation::default();
        let ready = any(&cancel, &[&pending, &done], &mut Script::new([])).unwrap();
        assert_eq!(ready.index, 1);
        assert_eq!(
            ready.outcome,
            Outcome::Activity(Ok(serde_json::json!({ "ok": true })))
        );
    }

    #[test]
    fn any_picks_the_first_settled_in_slice_order() {
        let timer = fired();
        let activity = failed("late");
        let cancel = Cancellation::default();
        let mut host = Script::new([]);
        assert_eq!(
            any(&cancel, &[&timer, &activity], &mut host)
                .unwrap()
                .outcome,
            Outcome::TimerFired
        );
        let ready = any(&cancel, &[&activity, &timer], &mut host).unwrap();
        assert_eq!(ready.index, 0);
        assert!(matches!(ready.outcome, Outcome::Activity(Err(ref e)) if e.error_type == "late"));
    }

    #[test]
    fn a_fired_timer_waits_no_more() {
        fired().wait().unwrap();
    }

    #[test]
    #[should_panic(expected = "at least one handle")]
    fn any_of_nothing_is_refused() {
        let _ = any(&Cancellation::default(), &[], &mut Script::new([]));
    }

    #[test]
    fn any_names_handles_and_signals_and_settles_the_one_answered() {
        let ctx = Context::new();
        let activity = ActivityHandle::pending("slow".to_owned(), 4, Rc::clone(&ctx.cancel));
        let timer = TimerHandle::pending(5, Rc::clone(&ctx.cancel));
        let stop = ctx.next_signal("stop");
        let mut host = Script::new([Script::timer(5)]);
        let ready = any(&ctx.cancel, &[&activity, &stop, &timer], &mut host).unwrap();
        assert_eq!(ready.index, 2);
        assert_eq!(ready.outcome, Outcome::TimerFired);
        assert_eq!(host.calls, [(vec![4, 5], listening(&["stop"]))]);
        assert!(activity.pending_handle().is_some());
        assert!(stop.pending().is_some());
    }

    #[test]
    fn a_signal_goes_to_the_first_handle_waiting_for_its_name() {
        let ctx = Context::new();
        let timer = TimerHandle::pending(1, Rc::clone(&ctx.cancel));
        let first = ctx.next_signal("vote");
        let second = ctx.next_signal("vote");
        let mut host = Script::new([
            Script::signal("vote", r#""yes""#),
            Script::signal("vote", r#""no""#),
        ]);
        let handles: [&dyn Awaitable; 3] = [&timer, &first, &second];
        let ready = any(&ctx.cancel, &handles, &mut host).unwrap();
        assert_eq!(ready.index, 1);
        assert_eq!(ready.outcome, Outcome::Signal(Ok(serde_json::json!("yes"))));
        // The name is asked for once, however many handles wait for it.
        assert_eq!(host.calls[0], (vec![1], listening(&["vote"])));
        // `first` has settled, so it wins again at once; `second` gets the next vote.
        assert_eq!(any(&ctx.cancel, &handles, &mut host).unwrap().index, 1);
        let ready = any(&ctx.cancel, &[&timer, &second], &mut host).unwrap();
        assert_eq!(ready.outcome, Outcome::Signal(Ok(serde_json::json!("no"))));
        assert_eq!(first.input::<String>().unwrap(), "yes");
        assert_eq!(host.calls.len(), 2);
    }

    #[test]
    fn an_interrupted_activity_wait_is_cancelled_and_the_handle_stays_usable() {
        let cancel = Rc::new(Cancellation::default());
        let handle = ActivityHandle::pending("hotel.hold".to_owned(), 3, Rc::clone(&cancel));
        let mut host = Script::new([Script::cancel("trip called off"), Script::completed(3, "7")]);
        let err = handle.result_from::<u32>(&mut host).unwrap_err();
        assert_eq!(err.kind, FailureKind::Cancelled);
        assert_eq!(err.error_type, "cancelled");
        assert_eq!(err.message, "trip called off");
        assert_eq!(
            WorkflowError::from(err).kind(),
            FailureKind::Cancelled,
            "`?` keeps the kind, so the run ends as cancelled"
        );
        assert!(handle.pending_handle().is_some());
        assert_eq!(cancel.reason().as_deref(), Some("trip called off"));
        // Delivered once: the next wait is an ordinary one.
        assert_eq!(handle.result_from::<u32>(&mut host), Ok(7));
        assert_eq!(host.calls, [(vec![3], listening(&[])), (vec![3], vec![])]);
    }

    #[test]
    fn an_interrupted_timer_wait_is_cancelled_and_can_be_waited_on_again() {
        let cancel = Rc::new(Cancellation::default());
        let timer = TimerHandle::pending(9, Rc::clone(&cancel));
        let mut host = Script::new([Script::cancel("no more"), Script::timer(9)]);
        let err = timer.wait_on(&mut host).unwrap_err();
        assert_eq!(err, WorkflowError::cancelled("no more"));
        assert!(timer.pending().is_some());
        timer.wait_on(&mut host).unwrap();
        assert_eq!(timer.outcome(), Some(Outcome::TimerFired));
        assert_eq!(host.calls, [(vec![9], listening(&[])), (vec![9], vec![])]);
    }

    #[test]
    fn all_keeps_what_settled_and_reports_the_rest_as_cancelled() {
        let cancel = Rc::new(Cancellation::default());
        let handles = [
            ActivityHandle::pending("a".to_owned(), 1, Rc::clone(&cancel)),
            ActivityHandle::pending("b".to_owned(), 2, Rc::clone(&cancel)),
            completed("3"),
        ];
        let mut host = Script::new([
            Script::completed(2, "2"),
            Script::cancel("enough"),
            Script::completed(1, "1"),
        ]);
        let results = all::<u32>(&cancel, &handles, &mut host);
        assert_eq!(results[1], Ok(2));
        assert_eq!(results[2], Ok(3));
        let err = results[0].as_ref().unwrap_err();
        assert_eq!(
            (err.kind, err.message.as_str()),
            (FailureKind::Cancelled, "enough")
        );
        // The interrupted handle waits normally afterwards.
        assert_eq!(
            all::<u32>(&cancel, &handles, &mut host),
            [Ok(1), Ok(2), Ok(3)]
        );
        assert_eq!(
            host.calls,
            [
                (vec![1, 2], listening(&[])),
                (vec![1], listening(&[])),
                (vec![1], vec![]),
            ]
        );
    }

    #[test]
    fn an_interrupted_any_settles_nothing_and_later_waits_stop_listening() {
        let ctx = Context::new();
        let activity = ActivityHandle::pending("slow".to_owned(), 4, Rc::clone(&ctx.cancel));
        let stop = ctx.next_signal("stop");
        let mut host = Script::new([Script::cancel("late"), Script::signal("stop", "1")]);
        let err = any(&ctx.cancel, &[&activity, &stop], &mut host).unwrap_err();
        assert_eq!(WorkflowError::from(err), WorkflowError::cancelled("late"));
        assert!(activity.pending().is_some() && stop.pending().is_some());
        assert!(ctx.is_cancelled());
        let ready = any(&ctx.cancel, &[&activity, &stop], &mut host).unwrap();
        assert_eq!(ready.index, 1);
        assert_eq!(
            host.calls,
            [
                (vec![4], listening(&["stop"])),
                (vec![4], vec!["stop".to_owned()]),
            ]
        );
    }

    #[test]
    fn a_cancel_that_arrived_earlier_changes_nothing_for_settled_handles() {
        let cancel = Rc::new(Cancellation::default());
        let timer = TimerHandle::pending(1, Rc::clone(&cancel));
        let _ = timer.wait_on(&mut Script::new([Script::cancel("x")]));
        // An empty script: a settled handle answers without the host.
        let done = completed("5");
        assert_eq!(done.result_from::<u32>(&mut Script::new([])), Ok(5));
        let ready = any(&cancel, &[&timer, &done], &mut Script::new([])).unwrap();
        assert_eq!(ready.index, 1);
    }
}
