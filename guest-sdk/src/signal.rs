//! Signals: messages sent to a running workflow from outside, and waiting for them.
//!
//! The host journals each signal when it reaches the run and hands it to the workflow
//! only when an `await-next` call names it; until then it stays queued host-side, in
//! arrival order. So a workflow receives signals at points its own code chose, and on
//! replay it receives the same signals at the same points.
//!
//! Three ways to receive one:
//!
//! - [`Context::wait_signal`]: the next signal of a name, or `None` after a timeout;
//! - [`Context::on_signal`] handlers and [`Context::wait_condition`]: handlers update
//!   the workflow's state, and the workflow waits until a condition on that state
//!   holds;
//! - [`Context::next_signal`]: a [`SignalHandle`] to race against activities and
//!   timers with [`Context::any`].
//!
//! Handlers run only inside `wait_signal` and `wait_condition`; while the workflow
//! waits for anything else, signals wait in the host's queue.
//!
//! Names starting with `spool.` are the host's (`spool.cancel` carries the cancel
//! request, see `cancel.rs`): registering a handler for one, or waiting for one, panics.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::__bindings::spool::workflow::context as wit;
use crate::cancel::{check_user_signal, Cancellation};
use crate::retry::duration_to_ms;
use crate::wait::{Delivered, Host, Outcome, Pending, Settled, Waitable, Wit};
use crate::{Awaitable, Context, WorkflowError};

/// A registered handler: decodes the raw JSON input and runs the user's closure.
type Handler = Box<dyn FnMut(&str) -> Result<(), serde_json::Error>>;

/// The signal handlers of a run, in registration order (which is the order their names
/// are given to the host, so it never depends on hashing).
#[derive(Default)]
pub(crate) struct Handlers {
    by_name: RefCell<Vec<(String, Handler)>>,
}

impl Handlers {
    /// Registers `handler` for `name`, replacing (in place) any handler it had.
    fn register(&self, name: String, handler: Handler) {
        let mut by_name = self.by_name.borrow_mut();
        match by_name.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) => *old = handler,
            None => by_name.push((name, handler)),
        }
    }

    /// The names with a handler, in registration order.
    fn names(&self) -> Vec<String> {
        self.by_name
            .borrow()
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.by_name.borrow().is_empty()
    }

    /// Runs the handler of `name` on `input`. A handler cannot reach the [`Context`]
    /// (it is `'static`, the context is not), so it cannot re-enter this registry.
    ///
    /// # Panics
    ///
    /// If `name` has no handler: the host delivered a signal nobody asked for.
    fn dispatch(&self, name: &str, input: &str) -> Result<(), serde_json::Error> {
        let mut by_name = self.by_name.borrow_mut();
        let (_, handler) = by_name
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("host delivered signal `{name}`, which has no handler"));
        handler(input)
    }

    /// Runs the handler of a delivered signal; a signal whose input does not fit the
    /// handler's type is dropped with a warning in the workflow log.
    fn handle(&self, name: &str, input: &str, host: &mut impl Host) {
        if let Err(e) = self.dispatch(name, input) {
            host.warn(&format!(
                "signal `{name}` dropped: its input did not deserialize: {e}; input: {input}"
            ));
        }
    }
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Decodes a signal's input into `T`.
fn decode<T: DeserializeOwned>(name: &str, input: &str) -> Result<T, WorkflowError> {
    serde_json::from_str(input).map_err(|e| WorkflowError::invalid_signal(name, &e, input))
}

/// The loop behind [`Context::wait_signal`], with the timer (if any) already started.
fn signal_loop<T: DeserializeOwned>(
    handlers: &Handlers,
    cancel: &Cancellation,
    name: &str,
    timer: Option<u32>,
    host: &mut impl Host,
) -> Result<Option<T>, WorkflowError> {
    let handles: Vec<u32> = timer.into_iter().collect();
    let mut names = vec![name.to_owned()];
    names.extend(handlers.names().into_iter().filter(|n| n != name));
    loop {
        match cancel.await_next(host, &handles, &names)? {
            Delivered::Handle(got, Settled::TimerFired) if Some(got) == timer => return Ok(None),
            Delivered::Handle(got, _) => panic!("host answered for handle {got}, not asked for"),
            Delivered::Signal { name: got, input } if got == name => {
                return decode(name, &input).map(Some)
            }
            Delivered::Signal { name: got, input } => handlers.handle(&got, &input, host),
        }
    }
}

/// The loop behind [`Context::wait_condition`], once the condition has been found
/// false and the timer (if any) started.
fn condition_loop(
    handlers: &Handlers,
    cancel: &Cancellation,
    condition: &mut dyn FnMut() -> bool,
    timer: Option<u32>,
    host: &mut impl Host,
) -> Result<bool, WorkflowError> {
    let handles: Vec<u32> = timer.into_iter().collect();
    let names = handlers.names();
    loop {
        match cancel.await_next_or_update(host, &handles, &names)? {
            Some(Delivered::Handle(got, Settled::TimerFired)) if Some(got) == timer => {
                return Ok(false)
            }
            Some(Delivered::Handle(got, _)) => {
                panic!("host answered for handle {got}, not asked for")
            }
            Some(Delivered::Signal { name, input }) => handlers.handle(&name, &input, host),
            // An update ran: it may have made the condition true.
            None => {}
        }
        if condition() {
            return Ok(true);
        }
    }
}

impl Context {
    /// Waits for the next signal named `name` and deserializes its input; `Ok(None)`
    /// when `timeout` (a durable timer) fires first. `None` as the timeout waits as long
    /// as it takes.
    ///
    /// Signals of this name that arrived earlier, while the workflow was doing
    /// something else, are queued: this returns the oldest one at once. While it waits,
    /// other signals that have a handler ([`Context::on_signal`]) arrive and their
    /// handlers run, in arrival order; a handler registered for `name` itself is
    /// bypassed, the signal is returned here.
    ///
    /// # Errors
    ///
    /// If the input does not deserialize into `T`: a non-retryable [`WorkflowError`]
    /// of kind [`InvalidInput`](crate::FailureKind::InvalidInput) and type
    /// `"invalid_signal"`, with the raw input as its details. The signal has been
    /// consumed; the next call waits for the next one. (Take `serde_json::Value` to
    /// accept any input.)
    ///
    /// If the workflow's cancel request arrives first: an error of kind
    /// [`Cancelled`](crate::FailureKind::Cancelled) (type `"cancelled"`, the reason as
    /// message). No signal of this name was consumed.
    ///
    /// # Panics
    ///
    /// If `name` starts with `spool.`: those names are reserved for the host.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use serde::Deserialize;
    /// use spool_sdk::{Context, WorkflowError};
    ///
    /// #[derive(Deserialize)]
    /// struct Approval {
    ///     by: String,
    /// }
    ///
    /// fn wait_for_approval(ctx: &Context) -> Result<String, WorkflowError> {
    ///     match ctx.wait_signal::<Approval>("approve", Some(Duration::from_secs(3600)))? {
    ///         Some(approval) => Ok(format!("approved by {}", approval.by)),
    ///         None => Err(WorkflowError::new("not_approved", "nobody approved within an hour")),
    ///     }
    /// }
    /// ```
    pub fn wait_signal<T: DeserializeOwned>(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<T>, WorkflowError> {
        check_user_signal(name, "wait for signal");
        let timer = timeout.map(|t| wit::start_timer(duration_to_ms(t)));
        signal_loop(&self.signals, &self.cancel, name, timer, &mut Wit)
    }

    /// Registers `handler` for signals named `name`, replacing the handler `name` had.
    /// The input is deserialized into `T` before the handler sees it.
    ///
    /// Handlers run only while the workflow waits in [`Context::wait_condition`] or
    /// [`Context::wait_signal`], one signal at a time, in arrival order. Signals that
    /// arrive while the workflow waits for an activity, a timer or [`Context::any`]
    /// stay queued in the host, in order, until the next such wait. That keeps replay
    /// deterministic: a handler always runs at the same point of the workflow.
    ///
    /// A handler is `'static`, so it shares state with the workflow through an
    /// `Rc<Cell<..>>` or `Rc<RefCell<..>>`. A signal whose input does not deserialize
    /// into `T` is dropped, with a warning in the workflow log; take
    /// `serde_json::Value` to accept anything.
    ///
    /// A cancel request never reaches a handler: it arrives as an error from the wait
    /// (see [`Context::is_cancelled`]).
    ///
    /// # Panics
    ///
    /// If `name` starts with `spool.`: those names are reserved for the host, and no
    /// signal with such a name is ever given to a handler.
    ///
    /// ```no_run
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use serde::Deserialize;
    /// use spool_sdk::Context;
    ///
    /// #[derive(Deserialize)]
    /// struct Vote {
    ///     by: String,
    /// }
    ///
    /// # fn f(ctx: &Context) -> Result<(), spool_sdk::WorkflowError> {
    /// let votes = Rc::new(RefCell::new(Vec::new()));
    /// let tally = Rc::clone(&votes);
    /// ctx.on_signal("vote", move |vote: Vote| tally.borrow_mut().push(vote.by));
    /// // Wait for three votes, or a day.
    /// let quorum = ctx.wait_condition(|| votes.borrow().len() >= 3, Some(Duration::from_secs(86_400)))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_signal<T, F>(&self, name: impl Into<String>, mut handler: F)
    where
        T: DeserializeOwned + 'static,
        F: FnMut(T) + 'static,
    {
        let name = name.into();
        check_user_signal(&name, "register a handler for signal");
        self.signals.register(
            name,
            Box::new(move |input| {
                handler(serde_json::from_str(input)?);
                Ok(())
            }),
        );
    }

    /// Waits until `condition` holds, running signal handlers as signals arrive;
    /// `Ok(false)` when `timeout` (a durable timer) fires first, `Ok(true)` otherwise.
    ///
    /// Returns `Ok(true)` at once, starting no timer, if `condition` already holds.
    /// Otherwise it waits for any signal that has a handler ([`Context::on_signal`]),
    /// runs the handler, and checks `condition` again, until it holds or the timer
    /// fires; it checks again after each update too ([`Context::update_handler`]).
    /// Signals without a handler stay queued. `condition` should read only
    /// workflow state (what the handlers change), never the outside world.
    ///
    /// # Errors
    ///
    /// If the workflow's cancel request arrives while it waits: a [`WorkflowError`] of
    /// kind [`Cancelled`](crate::FailureKind::Cancelled) (type `"cancelled"`, the reason
    /// as message). The handlers of the signals that arrived before it have run.
    ///
    /// # Panics
    ///
    /// If `condition` is false, no handler is registered and there is no timeout:
    /// nothing could ever make it true.
    ///
    /// ```no_run
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use spool_sdk::{Context, WorkflowError};
    ///
    /// fn review(ctx: &Context) -> Result<&'static str, WorkflowError> {
    ///     // None: undecided; Some(true): approved; Some(false): rejected.
    ///     let decision = Rc::new(Cell::new(None));
    ///     let d = Rc::clone(&decision);
    ///     ctx.on_signal("approve", move |_: serde_json::Value| d.set(Some(true)));
    ///     let d = Rc::clone(&decision);
    ///     ctx.on_signal("reject", move |_: serde_json::Value| d.set(Some(false)));
    ///
    ///     let week = Duration::from_secs(7 * 24 * 3600);
    ///     if !ctx.wait_condition(|| decision.get().is_some(), Some(week))? {
    ///         return Ok("timed out");
    ///     }
    ///     Ok(if decision.get() == Some(true) { "approved" } else { "rejected" })
    /// }
    /// ```
    pub fn wait_condition(
        &self,
        mut condition: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool, WorkflowError> {
        if condition() {
            return Ok(true);
        }
        let updates_can_wake = crate::update::any_registered() && !self.is_cancelled();
        assert!(
            timeout.is_some() || !self.signals.is_empty() || updates_can_wake,
            "wait_condition without a timeout or a signal or update handler would wait forever"
        );
        let timer = timeout.map(|t| wit::start_timer(duration_to_ms(t)));
        condition_loop(&self.signals, &self.cancel, &mut condition, timer, &mut Wit)
    }

    /// A handle on the next signal named `name`, to wait on alone
    /// ([`SignalHandle::input`]) or race against activities and timers with
    /// [`Context::any`].
    ///
    /// Making the handle asks nothing of the host. A signal is taken from the host's
    /// queue only when a wait on the handle returns it, so two handles on the same name
    /// receive two different signals. Waiting on a handle runs no signal handlers.
    ///
    /// # Panics
    ///
    /// If `name` starts with `spool.`: those names are reserved for the host.
    ///
    /// ```no_run
    /// use spool_sdk::{Context, Outcome, WorkflowError};
    ///
    /// fn export(ctx: &Context) -> Result<Option<String>, WorkflowError> {
    ///     let export = ctx.activity("reports.export").start();
    ///     let skip = ctx.next_signal("skip");
    ///     match ctx.any(&[&export, &skip])?.outcome {
    ///         Outcome::Signal(_) => Ok(None),
    ///         _ => Ok(Some(export.result::<String>()?)),
    ///     }
    /// }
    /// ```
    pub fn next_signal(&self, name: impl Into<String>) -> SignalHandle {
        let name = name.into();
        check_user_signal(&name, "wait for signal");
        SignalHandle {
            name,
            input: RefCell::new(None),
            cancel: Rc::clone(&self.cancel),
        }
    }
}

/// The next signal of one name, from [`Context::next_signal`]. Wait for it with
/// [`input`](SignalHandle::input), or together with other handles through
/// [`Context::any`].
///
/// ```no_run
/// use std::time::Duration;
/// use spool_sdk::Context;
///
/// # fn f(ctx: &Context) -> Result<(), spool_sdk::WorkflowError> {
/// let go = ctx.next_signal("go");
/// let deadline = ctx.timer(Duration::from_secs(60));
/// if ctx.any(&[&go, &deadline])?.index == 0 {
///     let speed: u32 = go.input()?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SignalHandle {
    name: String,
    /// The signal's JSON input, once received.
    input: RefCell<Option<String>>,
    cancel: Rc<Cancellation>,
}

impl SignalHandle {
    /// The signal name this handle waits for.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// assert_eq!(ctx.next_signal("skip").name(), "skip");
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the signal (as long as it takes) and deserializes its input.
    ///
    /// Asking again returns the same answer without waiting.
    ///
    /// # Errors
    ///
    /// If the input does not deserialize into `T`: as for [`Context::wait_signal`].
    /// If the workflow's cancel request arrives first: an error of kind
    /// [`Cancelled`](crate::FailureKind::Cancelled); the handle still waits for its
    /// signal, and a later call waits again.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) -> Result<(), spool_sdk::WorkflowError> {
    /// let address: String = ctx.next_signal("address_changed").input()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, WorkflowError> {
        self.input_from(&mut Wit)
    }

    /// [`input`](SignalHandle::input), asking `host`.
    fn input_from<T: DeserializeOwned>(&self, host: &mut impl Host) -> Result<T, WorkflowError> {
        if self.input.borrow().is_none() {
            match self
                .cancel
                .await_next(host, &[], std::slice::from_ref(&self.name))?
            {
                Delivered::Signal { name, input } if name == self.name => {
                    self.settle(Settled::Signal(input));
                }
                _ => panic!(
                    "host answered with something other than signal `{}`",
                    self.name
                ),
            }
        }
        let input = self.input.borrow();
        let input = input.as_deref().expect("the signal arrived above");
        decode(&self.name, input)
    }
}

impl Waitable for SignalHandle {
    fn pending(&self) -> Option<Pending<'_>> {
        match *self.input.borrow() {
            None => Some(Pending::Signal(&self.name)),
            Some(_) => None,
        }
    }

    fn settle(&self, settled: Settled) {
        match settled {
            Settled::Signal(input) => *self.input.borrow_mut() = Some(input),
            _ => panic!(
                "host reported an activity or timer for signal `{}`",
                self.name
            ),
        }
    }

    fn outcome(&self) -> Option<Outcome> {
        let input = self.input.borrow();
        let input = input.as_deref()?;
        Some(Outcome::Signal(decode(&self.name, input)))
    }
}

impl Awaitable for SignalHandle {}

#[cfg(test)]
mod tests {
    //! The loops run against a scripted host; nothing here reaches the host imports
    //! (which trap on the native target).

    use std::cell::Cell;
    use std::rc::Rc;

    use serde::Deserialize;

    use super::*;
    use crate::wait::testing::{listening, Script};
    use crate::FailureKind;

    fn uncancelled() -> Cancellation {
        Cancellation::default()
    }

    #[derive(Debug, Deserialize)]
    struct By {
        by: String,
    }

    /// Approved or not, and by whom.
    type Decided = Rc<RefCell<Option<(bool, String)>>>;

    /// A context with `approve` and `reject` handlers that record the decision and
    /// count the signals handled.
    fn approval() -> (Context, Decided, Rc<Cell<u32>>) {
        let ctx = Context::new();
        let decision = Rc::new(RefCell::new(None));
        let seen = Rc::new(Cell::new(0));
        for (name, approved) in [("approve", true), ("reject", false)] {
            let (decision, seen) = (Rc::clone(&decision), Rc::clone(&seen));
            ctx.on_signal(name, move |input: By| {
                seen.set(seen.get() + 1);
                *decision.borrow_mut() = Some((approved, input.by));
            });
        }
        (ctx, decision, seen)
    }

    #[test]
    fn handlers_decode_and_run_in_registration_order_of_names() {
        let (ctx, decision, seen) = approval();
        assert_eq!(ctx.signals.names(), ["approve", "reject"]);
        ctx.signals.dispatch("reject", r#"{"by":"bo"}"#).unwrap();
        assert_eq!(*decision.borrow(), Some((false, "bo".to_owned())));
        assert!(ctx.signals.dispatch("approve", r#"{"who":"x"}"#).is_err());
        assert_eq!(seen.get(), 1, "a bad input never reaches the handler");
        assert_eq!(format!("{:?}", ctx.signals), r#"["approve", "reject"]"#);
    }

    #[test]
    fn registering_a_name_again_replaces_its_handler_in_place() {
        let ctx = Context::new();
        let last = Rc::new(Cell::new(0));
        for (name, mark) in [("a", 1), ("b", 2), ("a", 3)] {
            let last = Rc::clone(&last);
            ctx.on_signal(name, move |()| last.set(mark));
        }
        assert_eq!(ctx.signals.names(), ["a", "b"]);
        ctx.signals.dispatch("a", "null").unwrap();
        assert_eq!(last.get(), 3);
    }

    #[test]
    #[should_panic(expected = "has no handler")]
    fn a_signal_without_a_handler_is_a_host_bug() {
        let _ = Context::new().signals.dispatch("approve", "{}");
    }

    #[test]
    fn condition_that_holds_returns_at_once_without_a_timer() {
        // Starting a timer would trap on the native target.
        let ctx = Context::new();
        assert_eq!(
            ctx.wait_condition(|| true, Some(Duration::from_secs(60))),
            Ok(true)
        );
        assert_eq!(ctx.wait_condition(|| true, None), Ok(true));
    }

    #[test]
    #[should_panic(expected = "would wait forever")]
    fn condition_with_nothing_to_wait_for_is_refused() {
        let _ = Context::new().wait_condition(|| false, None);
    }

    #[test]
    fn condition_loop_runs_handlers_until_the_condition_holds() {
        let (ctx, decision, seen) = approval();
        ctx.on_signal("comment", |_: String| {});
        let mut host = Script::new([
            Script::signal("comment", r#""looks fine""#),
            Script::signal("approve", r#"{"by":"ann"}"#),
            Script::signal("reject", r#"{"by":"never reached"}"#),
        ]);
        let mut decided = || decision.borrow().is_some();
        assert_eq!(
            condition_loop(&ctx.signals, &ctx.cancel, &mut decided, Some(7), &mut host),
            Ok(true)
        );
        assert_eq!(*decision.borrow(), Some((true, "ann".to_owned())));
        assert_eq!(seen.get(), 1);
        let names = listening(&["approve", "reject", "comment"]);
        assert_eq!(host.calls, [(vec![7], names.clone()), (vec![7], names)]);
        assert!(host.warnings.is_empty());
    }

    #[test]
    fn a_query_in_wait_condition_sees_the_handlers_state_and_checks_nothing() {
        let (ctx, decision, seen) = approval();
        let d = Rc::clone(&decision);
        ctx.query_handler("decided", move |()| d.borrow().is_some());
        let checks = Cell::new(0);
        let mut host = Script::new([
            Script::query(1, "decided", "null"),
            Script::signal("reject", r#"{"by":"not yet"}"#),
            Script::query(2, "decided", "null"),
            Script::signal("approve", r#"{"by":"ann"}"#),
        ]);
        let mut approved = || {
            checks.set(checks.get() + 1);
            matches!(*decision.borrow(), Some((true, _)))
        };
        assert_eq!(
            condition_loop(&ctx.signals, &ctx.cancel, &mut approved, Some(7), &mut host),
            Ok(true)
        );
        assert_eq!(
            host.responses,
            [(1, Ok("false".to_owned())), (2, Ok("true".to_owned()))]
        );
        assert_eq!(seen.get(), 2);
        assert_eq!(checks.get(), 2, "one check per signal, none per query");
        let names = listening(&["approve", "reject"]);
        assert_eq!(host.calls, vec![(vec![7], names); 4]);
    }

    #[test]
    fn a_query_in_wait_signal_is_answered_and_the_signal_still_returned() {
        let ctx = Context::new();
        ctx.query_handler("status", |()| "waiting");
        let mut host = Script::new([
            Script::query(3, "status", "null"),
            Script::signal("go", "1"),
        ]);
        let got: Option<u32> =
            signal_loop(&ctx.signals, &ctx.cancel, "go", None, &mut host).unwrap();
        assert_eq!(got, Some(1));
        assert_eq!(host.responses, [(3, Ok(r#""waiting""#.to_owned()))]);
        assert_eq!(host.calls, vec![(vec![], listening(&["go"])); 2]);
    }

    #[test]
    fn a_query_while_a_signal_handle_waits_is_answered_and_the_handle_waits_on() {
        let ctx = Context::new();
        let go = ctx.next_signal("go");
        let mut host = Script::new([
            Script::query(4, "status", "null"),
            Script::signal("go", "2"),
        ]);
        assert_eq!(go.input_from::<u32>(&mut host), Ok(2));
        assert_eq!(
            host.responses,
            [(
                4,
                Err(r#"no query handler named "status"; registered: none"#.to_owned())
            )]
        );
    }

    #[test]
    fn condition_loop_is_false_when_the_timer_fires_first() {
        let (ctx, decision, _) = approval();
        let mut host = Script::new([Script::timer(7)]);
        let mut decided = || decision.borrow().is_some();
        assert_eq!(
            condition_loop(&ctx.signals, &ctx.cancel, &mut decided, Some(7), &mut host),
            Ok(false)
        );
        assert!(decision.borrow().is_none());
    }

    #[test]
    fn condition_loop_drops_a_bad_input_with_a_warning_and_keeps_waiting() {
        let (ctx, decision, seen) = approval();
        let mut host = Script::new([
            Script::signal("approve", r#"{"by":42}"#),
            Script::signal("reject", r#"{"by":"cy"}"#),
        ]);
        let mut decided = || decision.borrow().is_some();
        assert_eq!(
            condition_loop(&ctx.signals, &ctx.cancel, &mut decided, None, &mut host),
            Ok(true)
        );
        assert_eq!(*decision.borrow(), Some((false, "cy".to_owned())));
        assert_eq!(seen.get(), 1);
        assert_eq!(host.warnings.len(), 1);
        assert!(
            host.warnings[0].contains("`approve` dropped"),
            "{:?}",
            host.warnings
        );
        assert!(host.calls.iter().all(|(handles, _)| handles.is_empty()));
    }

    #[test]
    fn signal_loop_returns_the_named_signal_and_runs_other_handlers_meanwhile() {
        let (ctx, decision, seen) = approval();
        let mut host = Script::new([
            Script::signal("reject", r#"{"by":"dan"}"#),
            Script::signal("approve", r#"{"by":"eve"}"#),
        ]);
        let got: Option<By> =
            signal_loop(&ctx.signals, &ctx.cancel, "approve", Some(3), &mut host).unwrap();
        assert_eq!(got.unwrap().by, "eve");
        // `approve` went to the waiter, not to its handler.
        assert_eq!(seen.get(), 1);
        assert_eq!(*decision.borrow(), Some((false, "dan".to_owned())));
        assert_eq!(host.calls[0], (vec![3], listening(&["approve", "reject"])));
    }

    #[test]
    fn signal_loop_without_handlers_names_only_its_signal_and_cancel() {
        let mut host = Script::new([Script::signal("go", "1")]);
        let got: Option<u32> =
            signal_loop(&Handlers::default(), &uncancelled(), "go", None, &mut host).unwrap();
        assert_eq!(got, Some(1));
        assert_eq!(host.calls, [(vec![], listening(&["go"]))]);
    }

    #[test]
    fn signal_loop_is_none_when_the_timer_fires_first() {
        let mut host = Script::new([Script::timer(3)]);
        let got: Option<u32> = signal_loop(
            &Handlers::default(),
            &uncancelled(),
            "go",
            Some(3),
            &mut host,
        )
        .unwrap();
        assert_eq!(got, None);
    }

    #[test]
    fn a_signal_input_of_the_wrong_shape_is_invalid_input() {
        let mut host = Script::new([Script::signal("go", r#""fast""#)]);
        let err = signal_loop::<u32>(&Handlers::default(), &uncancelled(), "go", None, &mut host)
            .unwrap_err();
        assert_eq!(err.kind(), FailureKind::InvalidInput);
        assert_eq!(err.error_type(), "invalid_signal");
        assert!(err.is_non_retryable());
        assert_eq!(err.details(), Some(r#""fast""#));
        assert!(err.message().contains("`go`"), "{}", err.message());
    }

    #[test]
    fn a_received_signal_handle_answers_every_time_it_is_asked() {
        let handle = Context::new().next_signal("go");
        assert_eq!(handle.pending(), Some(Pending::Signal("go")));
        assert_eq!(handle.outcome(), None);
        handle.settle(Settled::Signal(r#"{"speed":3}"#.to_owned()));
        assert_eq!(handle.pending(), None);
        let first: serde_json::Value = handle.input().unwrap();
        assert_eq!(first, serde_json::json!({ "speed": 3 }));
        assert_eq!(first, handle.input::<serde_json::Value>().unwrap());
        assert_eq!(handle.outcome(), Some(Outcome::Signal(Ok(first))));
        assert_eq!(
            handle.input::<u32>().unwrap_err().error_type(),
            "invalid_signal"
        );
    }

    #[test]
    fn a_cancel_interrupts_wait_condition_after_the_handlers_of_earlier_signals() {
        let (ctx, decision, seen) = approval();
        let mut host = Script::new([
            Script::signal("reject", r#"{"by":"not yet"}"#),
            Script::cancel("withdrawn"),
        ]);
        let mut decided_by_approval = || matches!(*decision.borrow(), Some((true, _)));
        let err = condition_loop(
            &ctx.signals,
            &ctx.cancel,
            &mut decided_by_approval,
            Some(7),
            &mut host,
        )
        .unwrap_err();
        assert_eq!(err, WorkflowError::cancelled("withdrawn"));
        assert_eq!(
            seen.get(),
            1,
            "the handler ran for `reject`, never for the cancel"
        );
        assert!(ctx.is_cancelled());
        let names = listening(&["approve", "reject"]);
        assert_eq!(host.calls, [(vec![7], names.clone()), (vec![7], names)]);
    }

    #[test]
    fn after_the_cancel_wait_condition_works_normally_and_stops_listening() {
        let (ctx, decision, _) = approval();
        let mut host = Script::new([
            Script::cancel("withdrawn"),
            Script::signal("approve", r#"{"by":"ann"}"#),
        ]);
        let mut decided = || decision.borrow().is_some();
        assert!(condition_loop(&ctx.signals, &ctx.cancel, &mut decided, None, &mut host).is_err());
        assert_eq!(
            condition_loop(&ctx.signals, &ctx.cancel, &mut decided, None, &mut host),
            Ok(true)
        );
        assert_eq!(
            host.calls[1],
            (vec![], vec!["approve".to_owned(), "reject".to_owned()])
        );
    }

    #[test]
    fn a_cancel_interrupts_wait_signal_without_consuming_the_signal() {
        let (ctx, _, seen) = approval();
        let mut host = Script::new([
            Script::cancel("stop"),
            Script::signal("approve", r#"{"by":"bo"}"#),
        ]);
        let err =
            signal_loop::<By>(&ctx.signals, &ctx.cancel, "approve", None, &mut host).unwrap_err();
        assert_eq!(err.kind(), FailureKind::Cancelled);
        assert_eq!(err.message(), "stop");
        let got = signal_loop::<By>(&ctx.signals, &ctx.cancel, "approve", None, &mut host);
        assert_eq!(got.unwrap().unwrap().by, "bo");
        assert_eq!(seen.get(), 0);
        assert_eq!(host.calls[1].1, ["approve".to_owned(), "reject".to_owned()]);
    }

    #[test]
    fn a_cancel_interrupts_a_signal_handle_which_still_waits_for_its_signal() {
        let ctx = Context::new();
        let go = ctx.next_signal("go");
        let mut host = Script::new([Script::cancel("stop"), Script::signal("go", "3")]);
        let err = go.input_from::<u32>(&mut host).unwrap_err();
        assert_eq!(err, WorkflowError::cancelled("stop"));
        assert!(go.pending().is_some());
        assert_eq!(go.input_from::<u32>(&mut host), Ok(3));
        assert_eq!(
            host.calls,
            [
                (vec![], listening(&["go"])),
                (vec![], vec!["go".to_owned()])
            ]
        );
    }

    #[test]
    #[should_panic(expected = "cannot register a handler for signal `spool.cancel`")]
    fn a_handler_for_a_reserved_name_is_refused() {
        Context::new().on_signal("spool.cancel", |_: serde_json::Value| {});
    }

    #[test]
    #[should_panic(expected = "cannot wait for signal `spool.anything`")]
    fn a_handle_on_a_reserved_name_is_refused() {
        Context::new().next_signal("spool.anything");
    }

    #[test]
    #[should_panic(expected = "reserved for the host")]
    fn waiting_for_a_reserved_name_is_refused_before_any_timer_starts() {
        // A timer would trap on the native target: the check comes first.
        let _ = Context::new().wait_signal::<()>("spool.cancel", Some(Duration::from_secs(1)));
    }
}
