//! The journal: the durable record of modules, runs and each run's events.
//!
//! This module owns the storage-independent types (events, run records) and the
//! [`Journal`] trait through which the engine and the API reach storage. The engine never
//! names SQLite: [`sqlite`] is one implementation, and a PostgreSQL one can sit beside it.
//!
//! Events are append-only and numbered per run (`seq` 0 is `run_started`). An event's
//! JSON form is the journal format; it is versioned by [`EVENT_FORMAT_VERSION`] and read
//! back by [`decode_event`]. The event types live in the crate `spool-formats`
//! (`formats/src/event.rs`, re-exported here), which has no wasmtime in it, so that
//! `fuzz/` can fuzz their decoding; their stability is tested there in `format_tests`.

pub mod sqlite;

use crate::clock::EpochMs;
use crate::ids::{Handle, ModuleHash, Namespace, RunId, TypeName, WorkflowId};
pub use crate::tenancy::quotas::Quotas;
use serde::{Deserialize, Serialize};
pub use spool_formats::event::{
    decode_event, ActivityOptions, Event, EventDecodeError, EventKind, Failure, FailureKind,
    ParentClosePolicy, RetryPolicy, EVENT_FORMAT_VERSION,
};
use std::future::Future;
use std::pin::Pin;

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

impl Usage {
    pub fn add(&mut self, more: Usage) {
        self.fuel = self.fuel.saturating_add(more.fuel);
        self.activations = self.activations.saturating_add(more.activations);
    }
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
    /// How many entries wait in a run's inbox.
    async fn inbox_len(&self, run_id: &RunId) -> JournalResult<u64>;
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
