//! A run's events as the journal stores them: one JSON object per event, in the format
//! [`EVENT_FORMAT_VERSION`], read back by [`decode_event`]. The format is a
//! compatibility promise; its stability is tested in `format_tests`.

use crate::ids::{Handle, ModuleHash, RunId, Seq, TypeName, WorkflowId};
use crate::EpochMs;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Bumped whenever an event's JSON shape changes incompatibly; stored with each event.
pub const EVENT_FORMAT_VERSION: u32 = 1;

/// One entry of a run's journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: Seq,
    /// Host time at which the event was recorded; the guest's virtual clock follows it.
    pub recorded_at_ms: EpochMs,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Commands issued by the guest (`activity_scheduled`, `timer_started`)
/// are checked against the journal on replay; results (`activity_completed`, …) are fed
/// back to the guest instead of being produced again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    RunStarted {
        workflow_type: TypeName,
        workflow_id: WorkflowId,
        input: String,
        /// Seeds the run's random generator, so randomness replays identically.
        seed: u64,
        module_hash: ModuleHash,
    },
    ActivityScheduled {
        handle: Handle,
        name: String,
        input: String,
        options: ActivityOptions,
    },
    TimerStarted {
        handle: Handle,
        duration_ms: u64,
        fire_at_ms: EpochMs,
    },
    ActivityCompleted {
        handle: Handle,
        output: String,
        attempts: u32,
    },
    ActivityFailed {
        handle: Handle,
        failure: Failure,
        attempts: u32,
    },
    TimerFired {
        handle: Handle,
    },
    /// The workflow asked to cancel the activity of `handle`; its cancelled result
    /// follows (unless a result came first).
    ActivityCancelRequested {
        handle: Handle,
    },
    /// A signal, moved from the run's signal inbox into its journal. Signals are
    /// journaled in the order they arrived.
    SignalReceived {
        name: String,
        input: String,
    },
    /// An update, moved from the run's inbox into its journal like a signal; its
    /// validator accepted it before it was put in the inbox.
    UpdateReceived {
        update_id: String,
        name: String,
        input: String,
    },
    /// The workflow's answer to an update.
    UpdateCompleted {
        update_id: String,
        output: String,
    },
    /// The workflow's handler failed the update, or its validator rejected it on
    /// delivery (the workflow's state changed since it was accepted).
    UpdateFailed {
        update_id: String,
        message: String,
    },
    /// A command: start a child workflow. The child run is created in the same
    /// transaction that journals this event, unless its id is taken (then the handle
    /// fails at once).
    ChildScheduled {
        handle: Handle,
        workflow_type: TypeName,
        workflow_id: WorkflowId,
        input: String,
        parent_close_policy: ParentClosePolicy,
    },
    /// The child run of `handle` completed (the last run of its continue-as-new chain).
    ChildCompleted {
        handle: Handle,
        run_id: RunId,
        output: String,
    },
    /// The child of `handle` failed, was cancelled or terminated, or could not start
    /// (no run then).
    ChildFailed {
        handle: Handle,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<RunId>,
        failure: Failure,
    },
    RunCompleted {
        output: String,
    },
    RunFailed {
        failure: Failure,
    },
    /// Ended from outside (`terminate`), without the workflow's say.
    RunTerminated {
        reason: String,
    },
    /// Ended by the workflow to go on in a new run with an empty history.
    RunContinuedAsNew {
        input: String,
        new_run_id: RunId,
    },
}

impl EventKind {
    /// The stable name of the event type, as stored in the `kind` column.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::RunStarted { .. } => "run_started",
            EventKind::ActivityScheduled { .. } => "activity_scheduled",
            EventKind::TimerStarted { .. } => "timer_started",
            EventKind::ActivityCompleted { .. } => "activity_completed",
            EventKind::ActivityFailed { .. } => "activity_failed",
            EventKind::TimerFired { .. } => "timer_fired",
            EventKind::SignalReceived { .. } => "signal_received",
            EventKind::ActivityCancelRequested { .. } => "activity_cancel_requested",
            EventKind::UpdateReceived { .. } => "update_received",
            EventKind::UpdateCompleted { .. } => "update_completed",
            EventKind::UpdateFailed { .. } => "update_failed",
            EventKind::ChildScheduled { .. } => "child_scheduled",
            EventKind::ChildCompleted { .. } => "child_completed",
            EventKind::ChildFailed { .. } => "child_failed",
            EventKind::RunCompleted { .. } => "run_completed",
            EventKind::RunFailed { .. } => "run_failed",
            EventKind::RunTerminated { .. } => "run_terminated",
            EventKind::RunContinuedAsNew { .. } => "run_continued_as_new",
        }
    }

    /// For completion events, the handle whose result they carry.
    pub fn completes(&self) -> Option<Handle> {
        match self {
            EventKind::ActivityCompleted { handle, .. }
            | EventKind::ActivityFailed { handle, .. }
            | EventKind::TimerFired { handle }
            | EventKind::ChildCompleted { handle, .. }
            | EventKind::ChildFailed { handle, .. } => Some(*handle),
            _ => None,
        }
    }

    /// For signal events, the signal's name.
    pub fn signal_name(&self) -> Option<&str> {
        match self {
            EventKind::SignalReceived { name, .. } => Some(name),
            _ => None,
        }
    }

    /// For `update_received`, the update's id.
    pub fn received_update(&self) -> Option<&str> {
        match self {
            EventKind::UpdateReceived { update_id, .. } => Some(update_id),
            _ => None,
        }
    }

    /// For the answer to an update, the update's id.
    pub fn answered_update(&self) -> Option<&str> {
        match self {
            EventKind::UpdateCompleted { update_id, .. }
            | EventKind::UpdateFailed { update_id, .. } => Some(update_id),
            _ => None,
        }
    }

    /// For command events, the handle they created.
    pub fn command_handle(&self) -> Option<Handle> {
        match self {
            EventKind::ActivityScheduled { handle, .. }
            | EventKind::TimerStarted { handle, .. }
            | EventKind::ChildScheduled { handle, .. } => Some(*handle),
            _ => None,
        }
    }
}

/// How an activity is retried and bounded, and where it runs; all durations in
/// milliseconds. Fields added after the first format version default to "not set",
/// so older journals read the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityOptions {
    pub retry: RetryPolicy,
    pub start_to_close_timeout_ms: u64,
    /// Bound on the whole activity, all attempts and backoff included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_to_close_timeout_ms: Option<u64>,
    /// Bound on an attempt's wait in its task queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_to_start_timeout_ms: Option<u64>,
    /// Longest gap allowed between an attempt's heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_ms: Option<u64>,
    /// Run attempts on workers polling this queue instead of in the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_queue: Option<String>,
}

impl Default for ActivityOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            start_to_close_timeout_ms: 60_000,
            schedule_to_close_timeout_ms: None,
            schedule_to_start_timeout_ms: None,
            heartbeat_timeout_ms: None,
            task_queue: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub initial_interval_ms: u64,
    pub backoff_coefficient: f64,
    pub maximum_interval_ms: u64,
    /// Total attempts including the first; 0 means unlimited.
    pub maximum_attempts: u32,
    /// Failures of these error types are final.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_retryable_error_types: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_interval_ms: 1_000,
            backoff_coefficient: 2.0,
            maximum_interval_ms: 60_000,
            maximum_attempts: 5,
            non_retryable_error_types: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// Whether `failure` ends the activity at once, whatever attempts are left.
    pub fn is_final(&self, failure: &Failure) -> bool {
        failure.non_retryable
            || failure.kind == FailureKind::UnknownActivity
            || self.non_retryable_error_types.contains(&failure.error_type)
    }

    /// Delay before attempt `next_attempt` (2, 3, …), or None if no attempt is left.
    pub fn delay_before(&self, next_attempt: u32) -> Option<u64> {
        if self.maximum_attempts != 0 && next_attempt > self.maximum_attempts {
            return None;
        }
        let exponent = next_attempt.saturating_sub(2).min(64) as i32;
        let coefficient = if self.backoff_coefficient.is_finite() && self.backoff_coefficient >= 1.0
        {
            self.backoff_coefficient
        } else {
            1.0
        };
        let delay = self.initial_interval_ms as f64 * coefficient.powi(exponent);
        let cap = self.maximum_interval_ms.max(self.initial_interval_ms) as f64;
        Some(delay.min(cap) as u64)
    }
}

/// Why an activity or a run failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub error_type: String,
    pub message: String,
    #[serde(default)]
    pub non_retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl Failure {
    pub fn new(kind: FailureKind, error_type: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            error_type: error_type.into(),
            message: message.into(),
            non_retryable: false,
            details: None,
        }
    }

    pub fn non_retryable(mut self) -> Self {
        self.non_retryable = true;
        self
    }

    /// Bytes of its type, message and details together: what payload limits hold it to.
    pub fn size(&self) -> usize {
        self.error_type.len() + self.message.len() + self.details.as_ref().map_or(0, String::len)
    }

    /// A failure is a payload too: one over `limit` bytes (its type, message and details
    /// together) is replaced by one that says so, of the same kind and retryability, so
    /// that nothing of that size is journaled. `whose`: "the workflow", "the activity".
    pub fn bounded(self, whose: &str, limit: usize) -> Self {
        let size = self.size();
        if size <= limit {
            return self;
        }
        Self {
            non_retryable: self.non_retryable,
            ..Self::new(
                self.kind,
                "payload_too_large",
                format!(
                    "{whose} failed with {size} bytes of error ({}: …), over the limit of \
                     {limit} bytes (quota max_payload_bytes)",
                    self.error_type.chars().take(100).collect::<String>()
                ),
            )
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The activity or workflow code reported an error.
    Application,
    /// An attempt ran past its timeout.
    Timeout,
    /// No built-in or uploaded activity has this name.
    UnknownActivity,
    Cancelled,
    /// The workflow's sandbox stopped it: a trap, fuel or memory exhausted, a stack
    /// overflow, a deadline.
    Sandbox,
    /// The run was terminated from outside.
    Terminated,
}

/// What happens to a child run that is still open when its parent run closes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParentClosePolicy {
    /// The child is terminated (the default: no work outlives its reason to exist).
    #[default]
    Terminate,
    /// The child is asked to cancel, and may clean up before it ends.
    RequestCancel,
    /// The child runs on, on its own.
    Abandon,
}

impl ParentClosePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ParentClosePolicy::Terminate => "terminate",
            ParentClosePolicy::RequestCancel => "request_cancel",
            ParentClosePolicy::Abandon => "abandon",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "terminate" => Some(ParentClosePolicy::Terminate),
            "request_cancel" => Some(ParentClosePolicy::RequestCancel),
            "abandon" => Some(ParentClosePolicy::Abandon),
            _ => None,
        }
    }
}

/// Why a stored event could not be read back.
#[derive(Debug)]
pub enum EventDecodeError {
    /// The event was stored in a format this version does not read: written by a newer
    /// Spool, or not by Spool at all.
    UnsupportedFormat(i64),
    /// The JSON is not an event of this format.
    Json(serde_json::Error),
}

impl fmt::Display for EventDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventDecodeError::UnsupportedFormat(format) => write!(
                f,
                "event format {format} is not supported (this Spool reads format \
                 {EVENT_FORMAT_VERSION})"
            ),
            EventDecodeError::Json(e) => write!(f, "malformed event: {e}"),
        }
    }
}

impl std::error::Error for EventDecodeError {}

/// Reads back an event the journal stored: `format` is the version it was written in
/// (the `format` column), `body` its JSON. When [`EVENT_FORMAT_VERSION`] is bumped, the
/// older formats are migrated here. Never panics, whatever the bytes (`fuzz/`).
pub fn decode_event(format: i64, body: &str) -> Result<Event, EventDecodeError> {
    if format != i64::from(EVENT_FORMAT_VERSION) {
        return Err(EventDecodeError::UnsupportedFormat(format));
    }
    serde_json::from_str(body).map_err(EventDecodeError::Json)
}

#[cfg(test)]
mod format_tests {
    use super::*;

    /// The journal format is a compatibility promise: journals written by this version
    /// must replay in later ones. If this test fails, bump EVENT_FORMAT_VERSION and add a
    /// migration instead of editing the expected text.
    #[test]
    fn event_json_is_stable() {
        let event = Event {
            seq: Seq(3),
            recorded_at_ms: 1_700_000_000_000,
            kind: EventKind::ActivityScheduled {
                handle: Handle(2),
                name: "http.request".into(),
                input: "{}".into(),
                options: ActivityOptions::default(),
            },
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"seq":3,"recorded_at_ms":1700000000000,"type":"activity_scheduled","handle":2,"name":"http.request","input":"{}","options":{"retry":{"initial_interval_ms":1000,"backoff_coefficient":2.0,"maximum_interval_ms":60000,"maximum_attempts":5},"start_to_close_timeout_ms":60000}}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
    }

    #[test]
    fn retry_delays_grow_by_the_coefficient_up_to_the_cap() {
        let policy = RetryPolicy {
            initial_interval_ms: 100,
            backoff_coefficient: 3.0,
            maximum_interval_ms: 1_000,
            maximum_attempts: 5,
            non_retryable_error_types: Vec::new(),
        };
        let delays: Vec<_> = (2..=6).map(|n| policy.delay_before(n)).collect();
        assert_eq!(
            delays,
            vec![Some(100), Some(300), Some(900), Some(1_000), None]
        );
        let unlimited = RetryPolicy {
            maximum_attempts: 0,
            ..policy.clone()
        };
        assert_eq!(unlimited.delay_before(1_000), Some(1_000));
    }

    #[test]
    fn a_failure_over_the_limit_is_replaced_keeping_its_kind_and_retryability() {
        let small = Failure::new(FailureKind::Application, "declined", "card declined");
        assert_eq!(small.clone().bounded("the activity", 100), small);
        let mut huge = Failure::new(FailureKind::Timeout, "slow", "x".repeat(50));
        huge.details = Some("y".repeat(60));
        assert_eq!(huge.size(), 114);
        let bounded = huge.clone().bounded("the activity", 100);
        assert_eq!(bounded.error_type, "payload_too_large");
        assert_eq!(
            (bounded.kind, bounded.non_retryable),
            (FailureKind::Timeout, false)
        );
        assert_eq!(bounded.details, None);
        assert!(bounded
            .message
            .starts_with("the activity failed with 114 bytes of error (slow: …)"));
        assert!(
            huge.non_retryable()
                .bounded("the activity", 100)
                .non_retryable
        );
    }

    #[test]
    fn decode_event_reads_the_current_format_only() {
        let json = r#"{"seq":4,"recorded_at_ms":7,"type":"timer_fired","handle":1}"#;
        let event = decode_event(EVENT_FORMAT_VERSION.into(), json).unwrap();
        assert_eq!(event.kind, EventKind::TimerFired { handle: Handle(1) });
        for format in [0, i64::from(EVENT_FORMAT_VERSION) + 1, -1] {
            assert!(matches!(
                decode_event(format, json),
                Err(EventDecodeError::UnsupportedFormat(f)) if f == format
            ));
        }
        assert!(matches!(
            decode_event(EVENT_FORMAT_VERSION.into(), "{\"seq\":4}"),
            Err(EventDecodeError::Json(_))
        ));
    }

    /// Floats read back bit for bit (serde_json's `float_roundtrip`): replay compares a
    /// journaled command's options with the guest's command, so a coefficient read back
    /// one ulp off would block the run after a restart. Found by `fuzz/`.
    #[test]
    fn floats_read_back_exactly() {
        for backoff_coefficient in [1.3333333333333335, 1.4993526152939443, 3.7189486291803435] {
            let event = Event {
                seq: Seq(1),
                recorded_at_ms: 0,
                kind: EventKind::ActivityScheduled {
                    handle: Handle(1),
                    name: "charge".into(),
                    input: "null".into(),
                    options: ActivityOptions {
                        retry: RetryPolicy {
                            backoff_coefficient,
                            ..RetryPolicy::default()
                        },
                        ..ActivityOptions::default()
                    },
                },
            };
            let json = serde_json::to_string(&event).unwrap();
            let read = decode_event(EVENT_FORMAT_VERSION.into(), &json).unwrap();
            assert_eq!(read, event, "{json}");
        }
    }
}
