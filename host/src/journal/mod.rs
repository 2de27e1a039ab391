//! The journal: the durable record of modules, runs and each run's events.
//!
//! This module owns the storage-independent types (events, run records) and the
//! [`Journal`] trait through which the engine and the API reach storage. The engine never
//! names SQLite: [`sqlite`] is one implementation, and a PostgreSQL one can sit beside it.
//!
//! Events are append-only and numbered per run (`seq` 0 is `run_started`). An event's
//! JSON form is the journal format; it is versioned by [`EVENT_FORMAT_VERSION`] and its
//! stability is tested in `format_tests`.

pub mod sqlite;

use crate::clock::EpochMs;
use crate::ids::{Handle, ModuleHash, Namespace, RunId, Seq, TypeName, WorkflowId};
pub use crate::tenancy::quotas::Quotas;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    /// Stopped by a non-determinism error; resumes when the server restarts, e.g. after
    /// the run has been pinned to a fixed module.
    Blocked,
    /// Ended by `terminate`.
    Terminated,
    /// Ended by the workflow itself after a `cancel` (a failure of kind `cancelled`).
    Cancelled,
    /// Ended by continue-as-new; the workflow id goes on in a newer run.
    ContinuedAsNew,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Blocked => "blocked",
            RunStatus::Terminated => "terminated",
            RunStatus::Cancelled => "cancelled",
            RunStatus::ContinuedAsNew => "continued_as_new",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "blocked" => RunStatus::Blocked,
            "terminated" => RunStatus::Terminated,
            "cancelled" => RunStatus::Cancelled,
            "continued_as_new" => RunStatus::ContinuedAsNew,
            _ => return None,
        })
    }

    pub fn is_open(self) -> bool {
        matches!(self, RunStatus::Running | RunStatus::Blocked)
    }
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

/// The run that started a child run, and how the child is tied to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParentLink {
    pub workflow_id: WorkflowId,
    pub run_id: RunId,
    /// The parent's handle on the child: its result goes to the parent under this handle.
    pub handle: Handle,
    pub close_policy: ParentClosePolicy,
}

/// A run as the `runs` table holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub namespace: Namespace,
    pub workflow_id: WorkflowId,
    pub run_id: RunId,
    pub workflow_type: TypeName,
    pub module_hash: ModuleHash,
    pub status: RunStatus,
    pub input: String,
    pub output: Option<String>,
    pub failure: Option<Failure>,
    /// Why the run is blocked (the non-determinism error), if it is.
    pub blocked_reason: Option<String>,
    pub created_at_ms: EpochMs,
    pub closed_at_ms: Option<EpochMs>,
    /// The run this one continues (continue-as-new), if any.
    pub continued_from: Option<RunId>,
    /// The run that started this one as its child, if any (kept along a continue-as-new
    /// chain: the parent waits for the chain's last run).
    pub parent: Option<ParentLink>,
}

/// A change of a run's status, written in the same transaction as its events.
#[derive(Clone, Debug, PartialEq)]
pub enum StatusChange {
    Completed { output: String },
    Failed { failure: Failure },
    Blocked { reason: String },
    Terminated { reason: String },
    ContinuedAsNew,
    Running,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    Workflow,
    Activity,
}

impl ModuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleKind::Workflow => "workflow",
            ModuleKind::Activity => "activity",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "workflow" => Some(ModuleKind::Workflow),
            "activity" => Some(ModuleKind::Activity),
            _ => None,
        }
    }
}

/// A registered type name and the module that currently serves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleRecord {
    pub namespace: Namespace,
    pub name: TypeName,
    pub kind: ModuleKind,
    pub hash: ModuleHash,
    pub size_bytes: u64,
    pub uploaded_at_ms: EpochMs,
}

/// Something from outside the run (a signal, a child's result) waiting in its inbox for
/// the run's driver to journal it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboxEntry {
    /// Arrival order; assigned by the journal (0 before it is stored).
    pub id: i64,
    /// The event to journal: `signal_received`, `update_received`, `child_completed` or
    /// `child_failed`.
    pub event: EventKind,
    pub received_at_ms: EpochMs,
}

impl InboxEntry {
    pub fn signal(name: &str, input: &str, received_at_ms: EpochMs) -> Self {
        Self {
            id: 0,
            event: EventKind::SignalReceived {
                name: name.to_owned(),
                input: input.to_owned(),
            },
            received_at_ms,
        }
    }
}

/// A failed activity attempt, kept for operators (describe, history) and to number
/// attempts across restarts; never replayed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub run_id: RunId,
    pub handle: Handle,
    pub attempt: u32,
    pub started_at_ms: EpochMs,
    pub ended_at_ms: EpochMs,
    pub failure: Failure,
}

/// A child run to create together with the parent's `child_scheduled` event.
#[derive(Clone, Debug)]
pub struct NewChild {
    /// Has `parent` set; the handle there is the one the command created.
    pub record: Box<RunRecord>,
    pub started: Event,
}

/// A namespace as the `namespaces` table holds it (production mode registers every
/// namespace; the dev server also serves namespaces it has never heard of).
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceRecord {
    pub name: Namespace,
    pub created_at_ms: EpochMs,
    pub quotas: Quotas,
}

/// What a namespace holds and has spent.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NamespaceUsage {
    /// Fuel burnt by the activations whose results were journaled: each activation
    /// counts once, however often the run is replayed, so the number is deterministic.
    pub fuel_consumed: u64,
    /// Those activations.
    pub activations: u64,
    pub open_runs: u64,
    pub runs: u64,
    pub modules: u64,
}

/// An API key of a namespace. Only the SHA-256 of the key is kept; the key itself is
/// shown once, when it is created.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub namespace: Namespace,
    #[serde(skip)]
    pub secret_sha256: String,
    pub label: String,
    pub created_at_ms: EpochMs,
    pub expires_at_ms: Option<EpochMs>,
    pub revoked_at_ms: Option<EpochMs>,
}

/// Filters for [`Journal::list_runs`].
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub workflow_type: Option<TypeName>,
    /// Only the children of this workflow id.
    pub parent_workflow_id: Option<WorkflowId>,
    pub limit: u32,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum JournalError {
    #[error("workflow {0} is already running")]
    AlreadyRunning(WorkflowId),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("the journal is shut down")]
    Closed,
    #[error("run {0} is closed")]
    RunClosed(RunId),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A quota the journal enforces itself (it alone sees every start at once).
    #[error("{message}")]
    QuotaExceeded {
        quota: &'static str,
        message: String,
    },
}

pub type JournalResult<T> = Result<T, JournalError>;

/// Completes when the write it belongs to is committed durably (or failed).
pub type CommitTicket = Pin<Box<dyn Future<Output = JournalResult<()>> + Send>>;

/// A write the engine or API asks for. Each is atomic; the writer may commit many of
/// them in one transaction (group commit).
#[derive(Clone, Debug)]
pub enum Write {
    PutModule {
        record: ModuleRecord,
        bytes: Vec<u8>,
    },
    CreateRun {
        record: Box<RunRecord>,
        started: Event,
    },
    Append {
        run_id: RunId,
        events: Vec<Event>,
        status: Option<StatusChange>,
        /// Removes the run's inbox entries up to this id: they are among `events` now.
        signals_upto: Option<i64>,
        /// Child runs started by `child_scheduled` events among `events`. A child whose
        /// workflow id is taken is not created; its handle fails (through the inbox).
        children: Vec<NewChild>,
        /// Fuel the guest burnt to produce `events`, and in how many activations:
        /// counted to the run's namespace in the same transaction.
        usage: Usage,
    },
    /// Puts a signal in an open run's inbox; fails with `RunClosed` if the run is closed.
    Signal {
        run_id: RunId,
        signal: InboxEntry,
    },
    /// Closes a run that continues as new and creates its successor, moving the signals
    /// it did not consume (`carried`, then its inbox) to the new run, in order.
    ContinueAsNew {
        run_id: RunId,
        events: Vec<Event>,
        new_run: Box<RunRecord>,
        new_started: Event,
        carried: Vec<InboxEntry>,
        /// Like `Append::usage`: the work of the activations that ended the run.
        usage: Usage,
    },
    /// Adds a failed attempt to the attempt log.
    RecordAttempt(AttemptRecord),
    /// Points an open run at another module (a deliberate override of pinning).
    Repin {
        run_id: RunId,
        module_hash: ModuleHash,
    },
    /// Registers a namespace; fails with `Conflict` if it exists.
    CreateNamespace(NamespaceRecord),
    /// Replaces a namespace's quotas; fails with `NotFound` if it does not exist.
    SetQuotas {
        name: Namespace,
        quotas: Quotas,
    },
    /// Deletes a namespace with everything in it; fails with `Conflict` while it has
    /// open runs.
    DeleteNamespace(Namespace),
    PutApiKey(ApiKeyRecord),
    /// Revokes a key of `namespace`; fails with `NotFound` for a key of another.
    RevokeApiKey {
        namespace: Namespace,
        key_id: String,
        at_ms: EpochMs,
    },
}

impl Write {
    /// The run and the guest's work this write counts to the run's namespace, if any.
    pub fn usage(&self) -> Option<(&RunId, &Usage)> {
        match self {
            Write::Append { run_id, usage, .. } | Write::ContinueAsNew { run_id, usage, .. }
                if usage.activations > 0 =>
            {
                Some((run_id, usage))
            }
            _ => None,
        }
    }
}

/// Work a guest did, as counted to its namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub fuel: u64,
    pub activations: u64,
}

/// Storage as the engine and the API see it.
#[async_trait::async_trait]
pub trait Journal: Send + Sync + 'static {
    /// Queues a write and returns a ticket that resolves once it is durable. Writes
    /// queued by one task commit in the order they were queued.
    async fn submit(&self, write: Write) -> CommitTicket;
    async fn module_for_type(
        &self,
        namespace: &Namespace,
        name: &TypeName,
    ) -> JournalResult<Option<ModuleRecord>>;
    async fn module_bytes(
        &self,
        namespace: &Namespace,
        hash: &ModuleHash,
    ) -> JournalResult<Option<Vec<u8>>>;
    async fn list_modules(&self, namespace: &Namespace) -> JournalResult<Vec<ModuleRecord>>;
    /// The newest run of a workflow id.
    async fn latest_run(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
    ) -> JournalResult<Option<RunRecord>>;
    async fn run(&self, run_id: &RunId) -> JournalResult<Option<RunRecord>>;
    /// Every run of a workflow id, newest first (the chain of continue-as-new, and runs
    /// of earlier uses of the id).
    async fn runs_of(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
    ) -> JournalResult<Vec<RunRecord>>;
    async fn list_runs(
        &self,
        namespace: &Namespace,
        filter: &RunFilter,
    ) -> JournalResult<Vec<RunRecord>>;
    /// Runs that are running or blocked: what the engine resumes at start.
    async fn open_runs(&self) -> JournalResult<Vec<RunRecord>>;
    async fn events(&self, run_id: &RunId) -> JournalResult<Vec<Event>>;
    /// What waits in a run's inbox, oldest first.
    async fn inbox(&self, run_id: &RunId) -> JournalResult<Vec<InboxEntry>>;
    /// The failed attempts of a run's activities, by handle and attempt number.
    async fn attempts(&self, run_id: &RunId) -> JournalResult<Vec<AttemptRecord>>;
    /// The child runs a run started, oldest first.
    async fn children(&self, run_id: &RunId) -> JournalResult<Vec<RunRecord>>;
    /// Registered namespaces, by name.
    async fn namespaces(&self) -> JournalResult<Vec<NamespaceRecord>>;
    async fn namespace_usage(&self, namespace: &Namespace) -> JournalResult<NamespaceUsage>;
    /// The keys of a namespace, revoked and expired ones included, oldest first.
    async fn api_keys(&self, namespace: &Namespace) -> JournalResult<Vec<ApiKeyRecord>>;
    async fn api_key(&self, key_id: &str) -> JournalResult<Option<ApiKeyRecord>>;
}

/// Submits a write and waits until it is committed.
pub async fn commit(journal: &dyn Journal, write: Write) -> JournalResult<()> {
    journal.submit(write).await.await
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
}
