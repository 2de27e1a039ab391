//! Handles to started work, and waiting on them.
//!
//! Every wait goes through one host call, `await-next`, which returns the earliest
//! journaled event among the handles and signal names given. A handle remembers its
//! outcome once it has settled, so waiting on it again (or reading it after
//! [`Context::any`] chose it) answers at once without asking the host; the SDK therefore
//! never names a settled handle to the host, and never calls `await-next` with nothing
//! to wait for.

use std::cell::{Cell, RefCell};

use serde::de::DeserializeOwned;

use crate::__bindings::spool::workflow::context as wit;
use crate::{ActivityError, Context, WorkflowError};

/// What `await-next` reported for one handle.
pub enum Settled {
    Activity(Result<String, wit::Failure>),
    TimerFired,
    /// A signal's JSON input; settles a [`SignalHandle`](crate::SignalHandle).
    Signal(String),
}

/// What one `await-next` call delivered: a result for a handle, or a signal.
pub(crate) enum Delivered {
    Handle(u32, Settled),
    Signal { name: String, input: String },
}

/// The host calls the waiting loops make, behind a trait so that unit tests can play
/// the host from a script. [`Wit`] is the real one.
pub(crate) trait Host {
    /// Blocks until one of `handles` settles or a signal named in `signals` arrives.
    /// At least one of the two must be non-empty.
    fn await_next(&mut self, handles: &[u32], signals: &[String]) -> Delivered;
    /// Writes a warning to the workflow log.
    fn warn(&mut self, message: &str);
}

/// The host through the `spool:workflow/context` imports.
pub(crate) struct Wit;

impl Host for Wit {
    fn await_next(&mut self, handles: &[u32], signals: &[String]) -> Delivered {
        assert!(
            !(handles.is_empty() && signals.is_empty()),
            "await-next needs at least one handle or signal name"
        );
        match wit::await_next(handles, signals) {
            wit::Event::ActivityCompleted(done) => {
                Delivered::Handle(done.handle, Settled::Activity(Ok(done.output)))
            }
            wit::Event::ActivityFailed(failed) => {
                Delivered::Handle(failed.handle, Settled::Activity(Err(failed.failure)))
            }
            wit::Event::TimerFired(handle) => Delivered::Handle(handle, Settled::TimerFired),
            wit::Event::Signal(signal) => Delivered::Signal {
                name: signal.name,
                input: signal.input,
            },
        }
    }

    fn warn(&mut self, message: &str) {
        wit::log(wit::LogLevel::Warn, message);
    }
}

/// Blocks until `handle` settles.
fn await_one(handle: u32) -> Settled {
    match Wit.await_next(&[handle], &[]) {
        Delivered::Handle(got, settled) => {
            assert_eq!(got, handle, "host answered for a handle not asked for");
            settled
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
/// a [`SignalHandle`](crate::SignalHandle).
///
/// The trait is sealed; pass handles as `&dyn Awaitable`, which a `&handle` in an
/// array literal becomes by itself:
///
/// ```no_run
/// use std::time::Duration;
/// use spool_sdk::{Awaitable, Context};
///
/// # fn f(ctx: &Context) {
/// let call = ctx.activity("reports.build").start();
/// let deadline = ctx.timer(Duration::from_secs(60));
/// let both: [&dyn Awaitable; 2] = [&call, &deadline];
/// let first = ctx.any(&both);
/// # }
/// ```
pub trait Awaitable: sealed::Waitable {}

/// How a handle chosen by [`Context::any`] settled.
///
/// ```no_run
/// use std::time::Duration;
/// use spool_sdk::{Context, Outcome};
///
/// # fn f(ctx: &Context) {
/// let call = ctx.activity("reports.build").start();
/// let deadline = ctx.timer(Duration::from_secs(60));
/// match ctx.any(&[&call, &deadline]).outcome {
///     Outcome::Activity(Ok(json)) => ctx.log_info(format!("report: {json}")),
///     Outcome::Activity(Err(e)) => ctx.log_error(format!("report failed: {e}")),
///     Outcome::TimerFired => ctx.log_warn("report is late"),
///     Outcome::Signal(_) => unreachable!("no signal handle was given"),
/// }
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
/// let first = ctx.any(&[&call, &deadline]);
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
}

impl ActivityHandle {
    pub(crate) fn pending(name: String, handle: u32) -> Self {
        ActivityHandle {
            name,
            state: RefCell::new(ActivityState::Pending(handle)),
        }
    }

    pub(crate) fn failed(name: String, error: ActivityError) -> Self {
        ActivityHandle {
            name,
            state: RefCell::new(ActivityState::Done(Err(error))),
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

    /// Waits for the activity to finish and deserializes its output.
    ///
    /// Asking again returns the same answer without waiting. The host has already
    /// applied the retry policy when this returns an error.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) -> Result<(), spool_sdk::ActivityError> {
    /// let handle = ctx.activity("spool.echo").input(&[1, 2, 3]).start();
    /// let echoed: Vec<u32> = handle.result()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn result<T: DeserializeOwned>(&self) -> Result<T, ActivityError> {
        if let Some(handle) = self.pending_handle() {
            self.settle_with(await_one(handle));
        }
        match &*self.state.borrow() {
            ActivityState::Done(Ok(raw)) => serde_json::from_str(raw)
                .map_err(|e| ActivityError::invalid_output(&self.name, &e, raw)),
            ActivityState::Done(Err(e)) => Err(e.clone()),
            ActivityState::Pending(_) => unreachable!("activity settled above"),
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
            Settled::TimerFired | Settled::Signal(_) => {
                panic!(
                    "host reported a timer or signal for activity `{}`",
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
/// # fn f(ctx: &spool_sdk::Context) {
/// let reminder = ctx.timer(Duration::from_secs(3600));
/// let cleanup = ctx.activity("files.cleanup").start();
/// reminder.wait();
/// # }
/// ```
#[derive(Debug)]
pub struct TimerHandle {
    state: Cell<TimerState>,
}

impl TimerHandle {
    pub(crate) fn pending(handle: u32) -> Self {
        TimerHandle {
            state: Cell::new(TimerState::Pending(handle)),
        }
    }

    /// Waits until the timer fires; returns at once if it already has.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # fn f(ctx: &spool_sdk::Context) {
    /// let timer = ctx.timer(Duration::from_secs(5));
    /// timer.wait();
    /// # }
    /// ```
    pub fn wait(&self) {
        if let TimerState::Pending(handle) = self.state.get() {
            self.settle_with(await_one(handle));
        }
    }

    fn settle_with(&self, settled: Settled) {
        match settled {
            Settled::TimerFired => self.state.set(TimerState::Fired),
            Settled::Activity(_) | Settled::Signal(_) => {
                panic!("host reported an activity result or a signal for a timer")
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

/// Waits until every handle has settled. See [`Context::all`].
pub(crate) fn all<T: DeserializeOwned>(
    handles: &[ActivityHandle],
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
    while !ids.is_empty() {
        let (got, settled) = match Wit.await_next(&ids, &[]) {
            Delivered::Handle(got, settled) => (got, settled),
            Delivered::Signal { name, .. } => {
                panic!("host delivered signal `{name}` although the SDK asked for none")
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
    handles.iter().map(ActivityHandle::result).collect()
}

/// Waits until the first handle settles. See [`Context::any`].
pub(crate) fn any(handles: &[&dyn Awaitable], host: &mut impl Host) -> Ready {
    assert!(
        !handles.is_empty(),
        "Context::any needs at least one handle"
    );
    // A handle that has already settled wins at once, the earliest in the slice first,
    // so the choice is the same on every replay.
    for (index, handle) in handles.iter().enumerate() {
        if let Some(outcome) = handle.outcome() {
            return Ready { index, outcome };
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
    let (index, settled) = match host.await_next(&ids, &names) {
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
    Ready { index, outcome }
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
        all(handles)
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
    ///     let first = ctx.any(&[&review, &deadline]);
    ///     if first.index == 1 {
    ///         return Err(WorkflowError::new("review_timeout", "nobody reviewed in time"));
    ///     }
    ///     Ok(review.result::<bool>()?)
    /// }
    /// ```
    pub fn any(&self, handles: &[&dyn Awaitable]) -> Ready {
        any(handles, &mut Wit)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A host played from a script, for unit tests of the waiting loops.

    use std::collections::VecDeque;

    use super::{Delivered, Host, Settled};

    /// Answers `await-next` calls with the scripted deliveries in order, and records
    /// the calls and warnings. It does not check that an answer was asked for: that is
    /// the SDK's to check.
    pub(crate) struct Script {
        script: VecDeque<Delivered>,
        /// The `(handles, signals)` of each `await-next` call.
        pub calls: Vec<(Vec<u32>, Vec<String>)>,
        pub warnings: Vec<String>,
    }

    impl Script {
        pub fn new(script: impl IntoIterator<Item = Delivered>) -> Self {
            Script {
                script: script.into_iter().collect(),
                calls: Vec::new(),
                warnings: Vec::new(),
            }
        }

        pub fn signal(name: &str, input: &str) -> Delivered {
            Delivered::Signal {
                name: name.to_owned(),
                input: input.to_owned(),
            }
        }

        pub fn timer(handle: u32) -> Delivered {
            Delivered::Handle(handle, Settled::TimerFired)
        }
    }

    impl Host for Script {
        fn await_next(&mut self, handles: &[u32], signals: &[String]) -> Delivered {
            self.calls.push((handles.to_vec(), signals.to_vec()));
            self.script
                .pop_front()
                .expect("the script has an answer for every await-next")
        }

        fn warn(&mut self, message: &str) {
            self.warnings.push(message.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    //! These tests use handles that have settled already, or a scripted host, so they
    //! never reach the host imports (which trap on the native target).

    use super::testing::Script;
    use super::*;
    use crate::FailureKind;

    fn completed(output: &str) -> ActivityHandle {
        ActivityHandle {
            name: "spool.echo".to_owned(),
            state: RefCell::new(ActivityState::Done(Ok(output.to_owned()))),
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
        ActivityHandle::failed("flaky".to_owned(), error)
    }

    fn fired() -> TimerHandle {
        TimerHandle {
            state: Cell::new(TimerState::Fired),
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
        let results = all::<u32>(&handles);
        assert_eq!(results.len(), 3);
        assert_eq!(results[0], Ok(1));
        assert_eq!(results[1].as_ref().unwrap_err().error_type, "boom");
        assert_eq!(results[2], Ok(3));
    }

    #[test]
    fn all_of_nothing_is_empty() {
        assert!(all::<u32>(&[]).is_empty());
    }

    #[test]
    fn any_prefers_an_already_settled_handle_without_asking_the_host() {
        // The pending timer would trap if `any` called the host.
        let pending = TimerHandle::pending(7);
        let done = completed(r#"{"ok":true}"#);
        let ready = any(&[&pending, &done], &mut Script::new([]));
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
        let mut host = Script::new([]);
        assert_eq!(
            any(&[&timer, &activity], &mut host).outcome,
            Outcome::TimerFired
        );
        let ready = any(&[&activity, &timer], &mut host);
        assert_eq!(ready.index, 0);
        assert!(matches!(ready.outcome, Outcome::Activity(Err(ref e)) if e.error_type == "late"));
    }

    #[test]
    fn a_fired_timer_waits_no_more() {
        fired().wait();
    }

    #[test]
    #[should_panic(expected = "at least one handle")]
    fn any_of_nothing_is_refused() {
        any(&[], &mut Script::new([]));
    }

    #[test]
    fn any_names_handles_and_signals_and_settles_the_one_answered() {
        let ctx = Context::new();
        let activity = ActivityHandle::pending("slow".to_owned(), 4);
        let timer = TimerHandle::pending(5);
        let cancel = ctx.next_signal("cancel");
        let mut host = Script::new([Script::timer(5)]);
        let ready = any(&[&activity, &cancel, &timer], &mut host);
        assert_eq!(ready.index, 2);
        assert_eq!(ready.outcome, Outcome::TimerFired);
        assert_eq!(host.calls, [(vec![4, 5], vec!["cancel".to_owned()])]);
        assert!(activity.pending_handle().is_some());
        assert!(cancel.pending().is_some());
    }

    #[test]
    fn a_signal_goes_to_the_first_handle_waiting_for_its_name() {
        let ctx = Context::new();
        let timer = TimerHandle::pending(1);
        let first = ctx.next_signal("vote");
        let second = ctx.next_signal("vote");
        let mut host = Script::new([
            Script::signal("vote", r#""yes""#),
            Script::signal("vote", r#""no""#),
        ]);
        let handles: [&dyn Awaitable; 3] = [&timer, &first, &second];
        let ready = any(&handles, &mut host);
        assert_eq!(ready.index, 1);
        assert_eq!(ready.outcome, Outcome::Signal(Ok(serde_json::json!("yes"))));
        // The name is asked for once, however many handles wait for it.
        assert_eq!(host.calls[0], (vec![1], vec!["vote".to_owned()]));
        // `first` has settled, so it wins again at once; `second` gets the next vote.
        assert_eq!(any(&handles, &mut host).index, 1);
        let ready = any(&[&timer, &second], &mut host);
        assert_eq!(ready.outcome, Outcome::Signal(Ok(serde_json::json!("no"))));
        assert_eq!(first.input::<String>().unwrap(), "yes");
        assert_eq!(host.calls.len(), 2);
    }
}
