//! The errors a workflow sees and returns.
//!
//! [`ActivityError`] is what waiting on an activity can give back; it carries the
//! host's `failure` record, plus two cases the SDK itself detects (input that would not
//! serialize, output that would not deserialize). [`WorkflowError`] is what a workflow
//! returns; it becomes the WIT `failure` that ends the run. Both keep the contract's
//! fields so a failure keeps its `error_type` as it travels up.

use std::fmt;

use serde::Serialize;

use crate::__bindings::spool::workflow::context as wit;
use crate::cancel;

/// The error type of cancellation errors, from the SDK and from
/// [`WorkflowError::cancelled`].
const CANCELLED: &str = "cancelled";

/// What kind of failure ended an activity or a workflow.
///
/// The first five mirror the contract's `failure-kind`; the last two are detected by the
/// SDK inside the workflow and never come from the host.
///
/// ```no_run
/// use spool_sdk::{Context, FailureKind};
///
/// fn charge(ctx: &Context) -> Option<u64> {
///     match ctx.activity("payments.charge").call::<u64>() {
///         Ok(id) => Some(id),
///         Err(e) if e.kind == FailureKind::Timeout => None,
///         Err(e) => panic!("unexpected: {e}"),
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The activity (or workflow) returned an error of its own.
    Application,
    /// An attempt exceeded its timeout and no attempts were left.
    Timeout,
    /// The activity name is neither a built-in nor an uploaded activity component.
    UnknownActivity,
    /// The work was cancelled. Every wait interrupted by the workflow's cancel request
    /// reports this kind, and a workflow that returns an error of this kind (see
    /// [`WorkflowError::cancelled`]) ends as cancelled.
    Cancelled,
    /// A child workflow was terminated from outside (`spool workflow terminate`, or its
    /// parent-close policy).
    Terminated,
    /// The SDK could not serialize the activity's input, so the activity never started;
    /// or a signal's input did not deserialize into the type the workflow asked for
    /// (error type `"invalid_signal"`, the raw input in the details).
    InvalidInput,
    /// The activity succeeded, but its output did not deserialize into the type asked
    /// for. The raw output is in [`ActivityError::details`].
    InvalidOutput,
}

impl FailureKind {
    fn from_wit(kind: wit::FailureKind) -> Self {
        match kind {
            wit::FailureKind::Application => FailureKind::Application,
            wit::FailureKind::Timeout => FailureKind::Timeout,
            wit::FailureKind::UnknownActivity => FailureKind::UnknownActivity,
            wit::FailureKind::Cancelled => FailureKind::Cancelled,
            wit::FailureKind::Terminated => FailureKind::Terminated,
        }
    }

    /// The contract has no kinds for the SDK's own failures; a workflow that fails
    /// because of one has failed in its own code, so it reports `application`.
    fn to_wit(self) -> wit::FailureKind {
        match self {
            FailureKind::Application | FailureKind::InvalidInput | FailureKind::InvalidOutput => {
                wit::FailureKind::Application
            }
            FailureKind::Timeout => wit::FailureKind::Timeout,
            FailureKind::UnknownActivity => wit::FailureKind::UnknownActivity,
            FailureKind::Cancelled => wit::FailureKind::Cancelled,
            FailureKind::Terminated => wit::FailureKind::Terminated,
        }
    }
}

/// Why an activity did not give the workflow a value.
///
/// The fields are public so that a workflow can decide what to do: compensate, try
/// something else, or pass the error up with `?` (it converts into [`WorkflowError`]).
/// By the time a workflow sees an `ActivityError` the host has already spent the retry
/// policy; retrying again in the workflow is rarely what you want.
///
/// ```no_run
/// use spool_sdk::{Context, FailureKind, WorkflowError};
///
/// fn notify(ctx: &Context, user: &str) -> Result<(), WorkflowError> {
///     match ctx.activity("email.send").input(&user).call::<()>() {
///         Ok(()) => Ok(()),
///         // A rejected address is worth a log line, not a failed run.
///         Err(e) if e.error_type == "invalid_address" => {
///             ctx.log_warn(format!("not emailing {user}: {}", e.message));
///             Ok(())
///         }
///         Err(e) => Err(e.into()),
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityError {
    /// What kind of failure this is.
    pub kind: FailureKind,
    /// A short machine-readable name chosen by whoever failed, e.g. `"card_declined"`,
    /// `"http_status"`, or the SDK's `"invalid_input"` / `"invalid_output"`.
    pub error_type: String,
    /// A human-readable description.
    pub message: String,
    /// True when retrying could not help.
    pub non_retryable: bool,
    /// Optional JSON with more detail (for `InvalidOutput`: the raw output).
    pub details: Option<String>,
}

impl ActivityError {
    pub(crate) fn from_wit(failure: wit::Failure) -> Self {
        ActivityError {
            kind: FailureKind::from_wit(failure.kind),
            error_type: failure.error_type,
            message: failure.message,
            non_retryable: failure.non_retryable,
            details: failure.details,
        }
    }

    pub(crate) fn invalid_input(activity: &str, error: &serde_json::Error) -> Self {
        ActivityError {
            kind: FailureKind::InvalidInput,
            error_type: "invalid_input".to_owned(),
            message: format!("input of activity `{activity}` did not serialize: {error}"),
            non_retryable: true,
            details: None,
        }
    }

    /// A wait on an activity interrupted by the workflow's cancel request: kind
    /// [`FailureKind::Cancelled`], type `"cancelled"`, the reason as message. The
    /// activity itself goes on; its handle can still be waited on.
    pub(crate) fn cancelled(reason: &str) -> Self {
        ActivityError {
            kind: FailureKind::Cancelled,
            error_type: CANCELLED.to_owned(),
            message: cancel::message(reason),
            non_retryable: true,
            details: None,
        }
    }

    pub(crate) fn invalid_output(activity: &str, error: &serde_json::Error, raw: &str) -> Self {
        ActivityError {
            kind: FailureKind::InvalidOutput,
            error_type: "invalid_output".to_owned(),
            message: format!("output of activity `{activity}` did not deserialize: {error}"),
            non_retryable: true,
            details: Some(raw.to_owned()),
        }
    }

    /// Deserializes [`details`](ActivityError::details), if there are any.
    ///
    /// ```no_run
    /// use spool_sdk::Context;
    ///
    /// # fn f(ctx: &Context) {
    /// if let Err(e) = ctx.activity("payments.charge").call::<String>() {
    ///     let details: Option<serde_json::Value> = e.details_as().ok().flatten();
    /// }
    /// # }
    /// ```
    pub fn details_as<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<Option<T>, serde_json::Error> {
        self.details
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
    }
}

impl fmt::Display for ActivityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for ActivityError {}

/// The error a workflow returns; it ends the run as failed.
///
/// Build one with [`WorkflowError::new`] (or [`WorkflowError::cancelled`], which ends the
/// run as cancelled), or let `?` convert an [`ActivityError`] (its kind, type, message,
/// retryability and details are kept) or a `serde_json::Error` (type `"json"`,
/// non-retryable).
///
/// ```no_run
/// use spool_sdk::{Context, WorkflowError};
///
/// fn refund(ctx: &Context, amount: u64) -> Result<String, WorkflowError> {
///     if amount == 0 {
///         return Err(WorkflowError::new("bad_amount", "nothing to refund").non_retryable());
///     }
///     let id: String = ctx.activity("payments.refund").input(&amount).call()?;
///     Ok(id)
/// }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowError {
    kind: FailureKind,
    error_type: String,
    message: String,
    non_retryable: bool,
    details: Option<String>,
}

impl WorkflowError {
    /// An application failure with a machine-readable `error_type` and a message.
    ///
    /// ```
    /// use spool_sdk::WorkflowError;
    ///
    /// let err = WorkflowError::new("out_of_stock", "item 42 is sold out");
    /// assert_eq!(err.error_type(), "out_of_stock");
    /// ```
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        WorkflowError {
            kind: FailureKind::Application,
            error_type: error_type.into(),
            message: message.into(),
            non_retryable: false,
            details: None,
        }
    }

    /// A cancellation: ends the run as **cancelled** rather than failed (kind
    /// [`FailureKind::Cancelled`], type `"cancelled"`, non-retryable). The message is
    /// `reason`, or a stock text if it is empty.
    ///
    /// Waits interrupted by the cancel request already return such an error (with the
    /// operator's reason), so a workflow usually returns that one; build a new one to
    /// end as cancelled for a reason of its own, or after clean-up that lost the
    /// original error. See the crate docs, "Cancellation".
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use spool_sdk::{Context, WorkflowError};
    ///
    /// fn hold_seat(ctx: &Context, seat: String) -> Result<(), WorkflowError> {
    ///     ctx.activity("seats.hold").input(&seat).call::<()>()?;
    ///     if ctx.sleep(Duration::from_secs(900)).is_err() {
    ///         ctx.activity("seats.release").input(&seat).call::<()>()?;
    ///         let reason = ctx.cancel_reason().unwrap_or_default();
    ///         return Err(WorkflowError::cancelled(format!("seat {seat} released: {reason}")));
    ///     }
    ///     ctx.activity("seats.confirm").input(&seat).call::<()>()?;
    ///     Ok(())
    /// }
    /// ```
    pub fn cancelled(reason: impl Into<String>) -> Self {
        WorkflowError {
            kind: FailureKind::Cancelled,
            error_type: CANCELLED.to_owned(),
            message: cancel::message(&reason.into()),
            non_retryable: true,
            details: None,
        }
    }

    /// Marks the failure as one that retrying cannot fix.
    ///
    /// ```
    /// use spool_sdk::WorkflowError;
    ///
    /// let err = WorkflowError::new("bad_input", "no user id").non_retryable();
    /// assert!(err.is_non_retryable());
    /// ```
    pub fn non_retryable(mut self) -> Self {
        self.non_retryable = true;
        self
    }

    /// Attaches details, serialized as JSON. If they do not serialize, the error gets
    /// details explaining that instead, so the original failure is never lost.
    ///
    /// ```
    /// use spool_sdk::WorkflowError;
    ///
    /// let err = WorkflowError::new("over_limit", "order too large")
    ///     .with_details(&serde_json::json!({ "limit": 100, "asked": 250 }));
    /// assert_eq!(err.details(), Some(r#"{"asked":250,"limit":100}"#));
    /// ```
    pub fn with_details<T: Serialize + ?Sized>(mut self, details: &T) -> Self {
        self.details = Some(match serde_json::to_string(details) {
            Ok(json) => json,
            Err(e) => serde_json::json!({ "details_error": e.to_string() }).to_string(),
        });
        self
    }

    /// Sets the kind reported to the host (default: [`FailureKind::Application`]).
    ///
    /// ```
    /// use spool_sdk::{FailureKind, WorkflowError};
    ///
    /// let err = WorkflowError::new("deadline", "gave up waiting").with_kind(FailureKind::Timeout);
    /// assert_eq!(err.kind(), FailureKind::Timeout);
    /// ```
    pub fn with_kind(mut self, kind: FailureKind) -> Self {
        self.kind = kind;
        self
    }

    /// The kind of failure.
    ///
    /// ```
    /// use spool_sdk::{FailureKind, WorkflowError};
    ///
    /// assert_eq!(WorkflowError::new("x", "y").kind(), FailureKind::Application);
    /// ```
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The machine-readable error type.
    ///
    /// ```
    /// use spool_sdk::WorkflowError;
    ///
    /// assert_eq!(WorkflowError::new("x", "y").error_type(), "x");
    /// ```
    pub fn error_type(&self) -> &str {
        &self.error_type
    }

    /// The human-readable message.
    ///
    /// ```
    /// use spool_sdk::WorkflowError;
    ///
    /// assert_eq!(WorkflowError::new("x", "y").message(), "y");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the failure is marked non-retryable.
    ///
    /// ```
    /// use spool_sdk::WorkflowError;
    ///
    /// assert!(!WorkflowError::new("x", "y").is_non_retryable());
    /// ```
    pub fn is_non_retryable(&self) -> bool {
        self.non_retryable
    }

    /// The JSON details, if any.
    ///
    /// ```
    /// use spool_sdk::WorkflowError;
    ///
    /// assert_eq!(WorkflowError::new("x", "y").details(), None);
    /// ```
    pub fn details(&self) -> Option<&str> {
        self.details.as_deref()
    }

    /// A signal whose input does not fit the type asked for: kind
    /// [`FailureKind::InvalidInput`], type `"invalid_signal"`, non-retryable (replay
    /// delivers the same input), the raw input as details.
    pub(crate) fn invalid_signal(signal: &str, error: &serde_json::Error, raw: &str) -> Self {
        WorkflowError {
            kind: FailureKind::InvalidInput,
            error_type: "invalid_signal".to_owned(),
            message: format!("input of signal `{signal}` did not deserialize: {error}"),
            non_retryable: true,
            details: Some(raw.to_owned()),
        }
    }

    pub(crate) fn into_wit(self) -> wit::Failure {
        wit::Failure {
            kind: self.kind.to_wit(),
            error_type: self.error_type,
            message: self.message,
            non_retryable: self.non_retryable,
            details: self.details,
        }
    }
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for WorkflowError {}

impl From<ActivityError> for WorkflowError {
    /// Keeps every field, so the run fails with the activity's `error_type`, and an
    /// activity wait interrupted by cancellation (kind [`FailureKind::Cancelled`]) ends
    /// the run as cancelled.
    fn from(e: ActivityError) -> Self {
        WorkflowError {
            kind: e.kind,
            error_type: e.error_type,
            message: e.message,
            non_retryable: e.non_retryable,
            details: e.details,
        }
    }
}

impl From<serde_json::Error> for WorkflowError {
    /// A JSON error in workflow code is deterministic, so it is non-retryable.
    fn from(e: serde_json::Error) -> Self {
        WorkflowError::new("json", e.to_string()).non_retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wit_failure(kind: wit::FailureKind) -> wit::Failure {
        wit::Failure {
            kind,
            error_type: "card_declined".to_owned(),
            message: "insufficient funds".to_owned(),
            non_retryable: true,
            details: Some(r#"{"code":51}"#.to_owned()),
        }
    }

    #[test]
    fn activity_error_keeps_the_host_failure() {
        let e = ActivityError::from_wit(wit_failure(wit::FailureKind::Application));
        assert_eq!(e.kind, FailureKind::Application);
        assert_eq!(e.error_type, "card_declined");
        assert_eq!(e.message, "insufficient funds");
        assert!(e.non_retryable);
        assert_eq!(e.details.as_deref(), Some(r#"{"code":51}"#));
        assert_eq!(e.to_string(), "card_declined: insufficient funds");
    }

    #[test]
    fn every_wit_kind_round_trips() {
        for kind in [
            wit::FailureKind::Application,
            wit::FailureKind::Timeout,
            wit::FailureKind::UnknownActivity,
            wit::FailureKind::Cancelled,
        ] {
            let activity = ActivityError::from_wit(wit_failure(kind));
            let back = WorkflowError::from(activity).into_wit();
            assert_eq!(back.kind, kind);
        }
    }

    #[test]
    fn question_mark_passes_an_activity_failure_up_unchanged() {
        fn workflow() -> Result<(), WorkflowError> {
            Err(ActivityError::from_wit(wit_failure(
                wit::FailureKind::Timeout,
            )))?;
            Ok(())
        }
        let failure = workflow().unwrap_err().into_wit();
        assert_eq!(failure.kind, wit::FailureKind::Timeout);
        assert_eq!(failure.error_type, "card_declined");
        assert_eq!(failure.message, "insufficient funds");
        assert!(failure.non_retryable);
        assert_eq!(failure.details.as_deref(), Some(r#"{"code":51}"#));
    }

    #[test]
    fn sdk_detected_kinds_report_as_application() {
        let bad = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        let e = ActivityError::invalid_output("spool.echo", &bad, "\"x\"");
        assert_eq!(e.kind, FailureKind::InvalidOutput);
        assert_eq!(e.error_type, "invalid_output");
        assert!(e.non_retryable);
        assert_eq!(e.details.as_deref(), Some("\"x\""));
        assert!(e.message.contains("spool.echo"));
        let failure = WorkflowError::from(e).into_wit();
        assert_eq!(failure.kind, wit::FailureKind::Application);
        assert_eq!(failure.error_type, "invalid_output");

        let e = ActivityError::invalid_input("spool.echo", &bad);
        assert_eq!(e.kind, FailureKind::InvalidInput);
        assert_eq!(
            WorkflowError::from(e).into_wit().kind,
            wit::FailureKind::Application
        );
    }

    #[test]
    fn a_signal_that_does_not_fit_fails_the_run_as_application() {
        let bad = serde_json::from_str::<u32>("{}").unwrap_err();
        let e = WorkflowError::invalid_signal("approve", &bad, "{}");
        assert_eq!(e.kind(), FailureKind::InvalidInput);
        assert_eq!(e.error_type(), "invalid_signal");
        assert!(e.is_non_retryable());
        assert_eq!(e.details(), Some("{}"));
        assert_eq!(e.into_wit().kind, wit::FailureKind::Application);
    }

    #[test]
    fn workflow_error_builder() {
        let failure = WorkflowError::new("over_limit", "too big")
            .non_retryable()
            .with_details(&serde_json::json!({ "limit": 3 }))
            .into_wit();
        assert_eq!(failure.kind, wit::FailureKind::Application);
        assert_eq!(failure.error_type, "over_limit");
        assert_eq!(failure.message, "too big");
        assert!(failure.non_retryable);
        assert_eq!(failure.details.as_deref(), Some(r#"{"limit":3}"#));
    }

    #[test]
    fn cancelled_ends_the_run_as_cancelled_with_the_reason() {
        let failure = WorkflowError::cancelled("operator said so").into_wit();
        assert_eq!(failure.kind, wit::FailureKind::Cancelled);
        assert_eq!(failure.error_type, "cancelled");
        assert_eq!(failure.message, "operator said so");
        assert!(failure.non_retryable);
        assert_eq!(
            WorkflowError::cancelled("").message(),
            "the workflow was cancelled"
        );
    }

    #[test]
    fn question_mark_on_an_interrupted_activity_ends_the_run_as_cancelled() {
        fn workflow() -> Result<(), WorkflowError> {
            Err(ActivityError::cancelled("operator"))?;
            Ok(())
        }
        let err = workflow().unwrap_err();
        assert_eq!(err, WorkflowError::cancelled("operator"));
        assert_eq!(err.into_wit().kind, wit::FailureKind::Cancelled);
    }

    #[test]
    fn workflow_errors_are_retryable_unless_marked() {
        assert!(!WorkflowError::new("a", "b").into_wit().non_retryable);
    }

    #[test]
    fn details_that_do_not_serialize_are_replaced_not_lost() {
        use std::collections::BTreeMap;
        // JSON object keys must be strings.
        let map = BTreeMap::from([((1, 2), "x")]);
        let err = WorkflowError::new("a", "b").with_details(&map);
        let details: serde_json::Value = serde_json::from_str(err.details().unwrap()).unwrap();
        assert!(details.get("details_error").is_some());
    }

    #[test]
    fn json_errors_become_non_retryable_failures() {
        let bad = serde_json::from_str::<u32>("nope").unwrap_err();
        let err = WorkflowError::from(bad);
        assert_eq!(err.error_type(), "json");
        assert!(err.is_non_retryable());
    }

    #[test]
    fn details_as_decodes_activity_details() {
        let e = ActivityError::from_wit(wit_failure(wit::FailureKind::Application));
        let details: Option<serde_json::Value> = e.details_as().unwrap();
        assert_eq!(details, Some(serde_json::json!({ "code": 51 })));
    }
}
