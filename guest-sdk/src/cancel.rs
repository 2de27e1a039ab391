//! Cancellation: how an operator's cancel request reaches the workflow.
//!
//! `spool workflow cancel --id ID --reason TEXT` makes the host queue a signal with the
//! reserved name `spool.cancel` and input `{"reason": TEXT}`, journaled and ordered like
//! any signal. Until it has been delivered, every `await-next` call the SDK makes also
//! names `spool.cancel` ([`Cancellation::await_next`] is the one path to the host for
//! every wait). When it arrives this module records it, and the wait that received it
//! returns a cancellation error in place of its usual answer. It is delivered once: from
//! then on waits no longer name it, so the workflow can run clean-up activities and
//! timers normally before it ends.
//!
//! Signal names starting with `spool.` belong to the host: user code cannot send them
//! (the host refuses), and the SDK refuses to wait for them or register handlers for
//! them ([`check_user_signal`]), so `spool.cancel` never reaches user signal code.

use std::borrow::Cow;
use std::cell::RefCell;

use crate::wait::{Answer, Delivered, Host};
use crate::{query, update};
use crate::{ActivityError, Context, WorkflowError};

/// The signal through which the host delivers a cancel request.
pub(crate) const CANCEL_SIGNAL: &str = "spool.cancel";

/// Signal names with this prefix are reserved for the host.
pub(crate) const RESERVED_PREFIX: &str = "spool.";

/// Whether the run has been cancelled, and why. One per run, shared (through an `Rc`)
/// by the [`Context`] and every handle it makes, since a handle waits on its own.
#[derive(Debug, Default)]
pub(crate) struct Cancellation {
    /// The reason, once `spool.cancel` has been delivered (empty if the host gave none).
    reason: RefCell<Option<String>>,
}

/// A wait interrupted by the cancel request. Each waiting call turns it into its own
/// error type: [`ActivityError`] for activity waits, [`WorkflowError`] for the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cancelled {
    pub reason: String,
}

impl Cancellation {
    /// The cancel reason, once the cancel request has been delivered.
    pub fn reason(&self) -> Option<String> {
        self.reason.borrow().clone()
    }

    pub fn is_cancelled(&self) -> bool {
        self.reason.borrow().is_some()
    }

    /// Asks the host for the next of `handles` or `signals`, listening for the cancel
    /// request too until it has been delivered once. The one path to `await-next`.
    /// Queries and updates the host hands over meanwhile are answered from the
    /// registered handlers, and the wait goes on.
    ///
    /// # Panics
    ///
    /// If `handles` and `signals` are both empty: the wait would depend on nothing but
    /// cancellation, and after it on nothing at all.
    pub fn await_next(
        &self,
        host: &mut impl Host,
        handles: &[u32],
        signals: &[String],
    ) -> Result<Delivered, Cancelled> {
        assert!(
            !(handles.is_empty() && signals.is_empty()),
            "await-next needs at least one handle or signal name"
        );
        loop {
            if let Some(delivered) = self.await_next_or_update(host, handles, signals)? {
                return Ok(delivered);
            }
        }
    }

    /// Like [`await_next`](Cancellation::await_next), but returns `None` after it has
    /// applied an update, so that a wait on the workflow's state can look again.
    pub fn await_next_or_update(
        &self,
        host: &mut impl Host,
        handles: &[u32],
        signals: &[String],
    ) -> Result<Option<Delivered>, Cancelled> {
        let listening = !self.is_cancelled();
        let names = if listening {
            let mut names = signals.to_vec();
            names.push(CANCEL_SIGNAL.to_owned());
            Cow::Owned(names)
        } else {
            Cow::Borrowed(signals)
        };
        let delivered = loop {
            match host.await_next(handles, &names) {
                Answer::Delivered(delivered) => break delivered,
                // Answered here, and the same wait goes on: the waiting code never sees
                // a query, and a query changes nothing it would see.
                Answer::Query { id, name, input } => {
                    host.respond_query(id, query::answer(&name, &input));
                }
                // A validation changes nothing either. An applied update may have
                // changed the state a wait looks at.
                Answer::Update {
                    id,
                    name,
                    input,
                    validate_only,
                } => {
                    host.respond_update(&id, update::answer(&name, &input, validate_only));
                    if !validate_only {
                        return Ok(None);
                    }
                }
            }
        };
        match delivered {
            Delivered::Signal { name, input } if listening && name == CANCEL_SIGNAL => {
                let reason = reason_of(&input);
                *self.reason.borrow_mut() = Some(reason.clone());
                Err(Cancelled { reason })
            }
            delivered => Ok(Some(delivered)),
        }
    }
}

/// The reason in the cancel signal's input `{"reason": "..."}`; empty when the input has
/// none (the host always sends one, but a missing reason must not fail the run).
fn reason_of(input: &str) -> String {
    serde_json::from_str::<serde_json::Value>(input)
        .ok()
        .and_then(|v| v.get("reason")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The message of a cancellation error: the reason, or a stock text when it is empty.
pub(crate) fn message(reason: &str) -> String {
    if reason.is_empty() {
        "the workflow was cancelled".to_owned()
    } else {
        reason.to_owned()
    }
}

impl From<Cancelled> for ActivityError {
    fn from(c: Cancelled) -> Self {
        ActivityError::cancelled(&c.reason)
    }
}

impl From<Cancelled> for WorkflowError {
    fn from(c: Cancelled) -> Self {
        WorkflowError::cancelled(c.reason)
    }
}

/// Refuses a signal name reserved for the host; `what` says what was attempted.
///
/// # Panics
///
/// If `name` starts with `spool.`.
pub(crate) fn check_user_signal(name: &str, what: &str) {
    assert!(
        !name.starts_with(RESERVED_PREFIX),
        "cannot {what} `{name}`: signal names starting with `{RESERVED_PREFIX}` are reserved \
         for the host (a cancel request arrives as a cancellation error from the wait, and \
         Context::is_cancelled tells whether one has)"
    );
}

impl Context {
    /// Whether the cancel request has been delivered to this run.
    ///
    /// The request arrives while the workflow waits: the wait that receives it returns a
    /// cancellation error (kind [`Cancelled`](crate::FailureKind::Cancelled)), and from
    /// then on this is `true`. A request the host has queued but no wait has received
    /// yet does not count. See the crate docs, "Cancellation".
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use spool_sdk::{Context, WorkflowError};
    ///
    /// fn poll(ctx: &Context) -> Result<(), WorkflowError> {
    ///     loop {
    ///         ctx.activity("feed.poll").call::<()>()?;
    ///         if let Err(cancelled) = ctx.sleep(Duration::from_secs(60)) {
    ///             // Not an error worth compensating for: stop polling, end as cancelled.
    ///             assert!(ctx.is_cancelled());
    ///             return Err(cancelled);
    ///         }
    ///     }
    /// }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The reason given with the cancel request, once it has been delivered (see
    /// [`Context::is_cancelled`]); `None` before. Empty if the request gave no reason.
    ///
    /// ```no_run
    /// use spool_sdk::{Context, WorkflowError};
    ///
    /// fn charge(ctx: &Context) -> Result<String, WorkflowError> {
    ///     match ctx.activity("payments.charge").call::<String>() {
    ///         Ok(id) => Ok(id),
    ///         Err(e) => {
    ///             if let Some(reason) = ctx.cancel_reason() {
    ///                 ctx.log_warn(format!("charge interrupted: {reason}"));
    ///             }
    ///             Err(e.into())
    ///         }
    ///     }
    /// }
    /// ```
    pub fn cancel_reason(&self) -> Option<String> {
        self.cancel.reason()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::testing::Script;
    use crate::wait::Settled;
    use crate::FailureKind;

    #[test]
    fn listens_for_cancel_until_it_is_delivered_then_stops() {
        let cancel = Cancellation::default();
        let mut host = Script::new([Script::cancel("too slow"), Script::timer(2)]);
        let names = ["go".to_owned()];
        let err = cancel.await_next(&mut host, &[2], &names).unwrap_err();
        assert_eq!(err.reason, "too slow");
        assert!(cancel.is_cancelled());
        assert_eq!(cancel.reason().as_deref(), Some("too slow"));
        assert!(matches!(
            cancel.await_next(&mut host, &[2], &names),
            Ok(Delivered::Handle(2, Settled::TimerFired))
        ));
        assert_eq!(
            host.calls,
            [
                (vec![2], vec!["go".to_owned(), CANCEL_SIGNAL.to_owned()]),
                (vec![2], vec!["go".to_owned()]),
            ]
        );
    }

    #[test]
    fn other_deliveries_pass_through_and_leave_the_run_uncancelled() {
        let cancel = Cancellation::default();
        let mut host = Script::new([Script::signal("go", "1")]);
        let got = cancel.await_next(&mut host, &[], &["go".to_owned()]);
        assert!(matches!(got, Ok(Delivered::Signal { ref name, .. }) if name == "go"));
        assert!(!cancel.is_cancelled());
        assert_eq!(cancel.reason(), None);
    }

    #[test]
    #[should_panic(expected = "at least one handle or signal name")]
    fn a_wait_on_nothing_is_refused_even_though_cancel_could_end_it() {
        let _ = Cancellation::default().await_next(&mut Script::new([]), &[], &[]);
    }

    #[test]
    fn a_cancel_without_a_readable_reason_still_cancels() {
        for input in ["{}", "null", "not json", r#"{"reason":7}"#] {
            let cancel = Cancellation::default();
            let mut host = Script::new([Script::signal(CANCEL_SIGNAL, input)]);
            let err = cancel.await_next(&mut host, &[1], &[]).unwrap_err();
            assert_eq!(err.reason, "", "input {input}");
            assert_eq!(cancel.reason().as_deref(), Some(""));
            let err = WorkflowError::from(err);
            assert_eq!(err.message(), "the workflow was cancelled");
        }
    }

    #[test]
    fn cancelled_converts_to_both_error_types_with_kind_cancelled() {
        let c = Cancelled {
            reason: "operator".to_owned(),
        };
        let a = ActivityError::from(c.clone());
        assert_eq!(a.kind, FailureKind::Cancelled);
        assert_eq!(a.error_type, "cancelled");
        assert_eq!(a.message, "operator");
        let w = WorkflowError::from(c);
        assert_eq!(w.kind(), FailureKind::Cancelled);
        assert_eq!(w, WorkflowError::cancelled("operator"));
        assert_eq!(WorkflowError::from(a), w);
    }

    #[test]
    fn context_reports_what_its_cancellation_recorded() {
        let ctx = Context::new();
        assert!(!ctx.is_cancelled());
        assert_eq!(ctx.cancel_reason(), None);
        let mut host = Script::new([Script::cancel("stop")]);
        let _ = ctx.cancel.await_next(&mut host, &[1], &[]);
        assert!(ctx.is_cancelled());
        assert_eq!(ctx.cancel_reason().as_deref(), Some("stop"));
    }

    #[test]
    #[should_panic(expected = "reserved for the host")]
    fn reserved_names_are_refused() {
        check_user_signal("spool.cancel", "wait for signal");
    }

    #[test]
    fn ordinary_names_pass() {
        check_user_signal("cancel", "wait for signal");
        check_user_signal("spool", "wait for signal");
    }
}
