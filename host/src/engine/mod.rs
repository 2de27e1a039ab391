//! Workflow runs: starting them, driving their guests, replaying them after a restart,
//! and telling callers when they end.
//!
//! Each open run has one driver task (`driver`) that owns its journal state and, while
//! the guest runs, its wasmtime store. Activity attempts and timers are separate tasks
//! that report back to the driver through its inbox; only the driver appends to its
//! run's journal, so event numbers need no locks.

mod activity_task;
mod driver;
pub mod replay;
mod update;

use crate::activity::ActivityExecutor;
use crate::clock::SharedClock;
use crate::ids::{validate_name, ModuleHash, Namespace, RunId, TypeName, WorkflowId};
use crate::journal::{
    self, Event, EventKind, InboxEntry, Journal, JournalError, ModuleKind, ModuleRecord,
    ParentClosePolicy, RunFilter, RunRecord, RunStatus, Write,
};
use crate::runtime::bindings::WorkflowPre;
use crate::runtime::{ModuleError, Runtime, Sandbox};
use crate::tenancy::{Tenancy, Tenant};
use driver::{Question, RunHost};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use wasmtime::component::Linker;

pub use replay::NonDeterminism;
pub use update::{UpdateOutcome, UpdateRequest};

/// Whether a run's signal inbox may hold signals no driver has seen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Inbox {
    /// A run just created: nothing can have arrived before its driver was registered.
    Empty,
    /// A resumed run: signals may have arrived while no driver ran.
    MayHoldSignals,
}

/// Signal names the host keeps for itself.
pub const RESERVED_SIGNAL_PREFIX: &str = "spool.";
/// The signal through which a cancel request reaches a workflow; the SDKs turn it into a
/// cancellation error of whatever the workflow waits on.
pub const CANCEL_SIGNAL: &str = "spool.cancel";

/// A workflow component linked and type-checked, ready to instantiate for a run.
type RunPre = WorkflowPre<Sandbox<RunHost>>;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// A guest that waits only on timers due further away than this is dropped from
    /// memory and rebuilt by replay when the timer fires. None: keep every guest hot.
    pub evict_after: Option<Duration>,
    /// Largest accepted payload (workflow input and output, activity input and output).
    pub max_payload_bytes: usize,
    /// Namespaces, keys and quotas. None: open mode with the default quotas.
    pub tenancy: Option<Arc<Tenancy>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            evict_after: Some(Duration::from_secs(5)),
            max_payload_bytes: 2 << 20,
            tenancy: None,
        }
    }
}

/// Errors grouped by what the caller should do about them.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Fix the request.
    #[error("{0}")]
    InvalidInput(String),
    #[error(
        "payload of {size} bytes exceeds the limit of {limit} bytes (quota max_payload_bytes)"
    )]
    PayloadTooLarge { size: usize, limit: usize },
    #[error(transparent)]
    InvalidModule(#[from] ModuleError),
    #[error("no workflow type {0:?} is registered; upload a module with --name {0}")]
    UnknownWorkflowType(TypeName),
    #[error("{name:?} is an {actual} module, not a {expected}")]
    WrongModuleKind {
        name: TypeName,
        expected: &'static str,
        actual: &'static str,
    },
    #[error("{0} not found")]
    NotFound(String),
    /// Pick another id or wait for the open run to end.
    #[error("workflow {0} is already running")]
    AlreadyRunning(WorkflowId),
    /// The workflow refused the query (unknown name, bad input): fix the query.
    #[error("the workflow refused the query: {0}")]
    QueryRejected(String),
    /// The run could not be replayed to answer (a trap, non-determinism, no handler).
    #[error("{0}")]
    QueryFailed(String),
    /// The workflow's validator refused the update; nothing was journaled.
    #[error("the workflow rejected the update: {0}")]
    UpdateRejected(String),
    #[error("workflow {0} is {1}: its run is closed")]
    NotOpen(WorkflowId, &'static str),
    /// A namespace quota refused the request; `retry_after` when waiting helps.
    #[error("{message}")]
    QuotaExceeded {
        quota: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Retry later.
    #[error("storage: {0}")]
    Storage(String),
}

impl From<JournalError> for EngineError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::AlreadyRunning(id) => EngineError::AlreadyRunning(id),
            JournalError::QuotaExceeded { quota, message } => EngineError::QuotaExceeded {
                quota,
                message,
                retry_after: None,
            },
            JournalError::NotFound(m) => EngineError::NotFound(m),
            other => EngineError::Storage(other.to_string()),
        }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;

/// What a client asks for to start a run.
#[derive(Clone, Debug)]
pub struct StartRequest {
    pub namespace: Namespace,
    pub workflow_id: WorkflowId,
    pub workflow_type: TypeName,
    pub input: String,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    journal: Arc<dyn Journal>,
    runtime: Arc<Runtime>,
    clock: SharedClock,
    activities: Arc<ActivityExecutor>,
    config: EngineConfig,
    tenancy: Arc<Tenancy>,
    linker: Linker<Sandbox<RunHost>>,
    pres: Mutex<HashMap<(Namespace, ModuleHash), RunPre>>,
    /// Runs whose driver is running (at most one per run), with the driver's inbox.
    live: Mutex<HashMap<RunId, tokio::sync::mpsc::Sender<driver::RunMsg>>>,
    /// Callers waiting for a run to close or to answer an update. They are woken for
    /// either and check again what they wait for.
    waiters: Mutex<HashMap<RunId, Vec<oneshot::Sender<()>>>>,
}

impl Engine {
    pub fn new(
        journal: Arc<dyn Journal>,
        runtime: Arc<Runtime>,
        clock: SharedClock,
        activities: Arc<ActivityExecutor>,
        config: EngineConfig,
    ) -> anyhow::Result<Self> {
        let linker = crate::runtime::wasi::workflow_linker::<RunHost>(runtime.engine())
            .map_err(anyhow::Error::from)?;
        let tenancy = config.tenancy.clone().unwrap_or_else(|| {
            let defaults = crate::tenancy::quotas::Quotas {
                max_payload_bytes: config.max_payload_bytes as u64,
                ..Default::default()
            };
            Tenancy::open(journal.clone(), clock.clone(), defaults)
        });
        Ok(Self {
            inner: Arc::new(Inner {
                journal,
                runtime,
                clock,
                activities,
                config,
                tenancy,
                linker,
                pres: Mutex::new(HashMap::new()),
                live: Mutex::new(HashMap::new()),
                waiters: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.inner.journal
    }

    pub fn tenancy(&self) -> &Arc<Tenancy> {
        &self.inner.tenancy
    }

    /// The namespace as the host runs it; not found in key mode if not registered.
    fn tenant(&self, namespace: &Namespace) -> EngineResult<Arc<Tenant>> {
        self.inner
            .tenancy
            .tenant(namespace)
            .ok_or_else(|| EngineError::NotFound(format!("namespace {namespace}")))
    }

    /// The queues through which remote workers take activity attempts.
    pub fn task_queues(&self) -> &crate::activity::task_queue::TaskQueues {
        self.inner.activities.task_queues()
    }

    /// Resumes every open run in the journal (after a restart or crash). Returns how many.
    pub async fn recover(&self) -> EngineResult<usize> {
        let runs = self.inner.journal.open_runs().await?;
        let count = runs.len();
        let mut parents = Vec::new();
        for run in runs {
            let events = self.inner.journal.events(&run.run_id).await?;
            if let Some(parent) = &run.parent {
                if !parents.contains(&parent.run_id) {
                    parents.push(parent.run_id.clone());
                }
            }
            self.spawn_driver(run, events, Inbox::MayHoldSignals);
        }
        // A parent that closed just before a crash may not have had its children's
        // close policies applied: apply them now (it does nothing to open parents).
        for parent in parents {
            tokio::spawn(self.inner.clone().after_close(parent));
        }
        Ok(count)
    }

    fn spawn_driver(&self, run: RunRecord, events: Vec<Event>, inbox_state: Inbox) -> bool {
        self.inner.spawn_driver(run, events, inbox_state)
    }

    /// Validates and stores a component under `name`; returns its record (with hash).
    pub async fn upload_module(
        &self,
        namespace: &Namespace,
        name: &TypeName,
        kind: ModuleKind,
        bytes: Vec<u8>,
    ) -> EngineResult<ModuleRecord> {
        validate_name("module name", name.as_str()).map_err(EngineError::InvalidInput)?;
        if kind == ModuleKind::Activity && crate::activity::is_builtin(name.as_str()) {
            return Err(EngineError::InvalidInput(format!(
                "{name:?} is the name of a built-in activity; choose another"
            )));
        }
        let tenant = self.tenant(namespace)?;
        let limit = tenant.quotas.max_module_bytes;
        if bytes.len() as u64 > limit {
            return Err(EngineError::QuotaExceeded {
                quota: "max_module_bytes",
                message: format!(
                    "the module is {} bytes; namespace {namespace}'s quota max_module_bytes is {limit}",
                    bytes.len()
                ),
                retry_after: None,
            });
        }
        let hash = ModuleHash::of(&bytes);
        // An instance of the module gets at most the namespace's memory quota: one
        // whose memory is declared larger could never start.
        let memory_quota = tenant.quotas.max_memory_bytes;
        let memory_setting = format!("namespace {namespace}'s quota max_memory_bytes");
        // Compiling is CPU work outside any fuel budget: one at a time per namespace, so
        // a tenant uploading in a loop slows only itself.
        let _slot = tenant.upload_slot().await;
        let inner = self.inner.clone();
        let (bytes, component) = tokio::task::spawn_blocking(move || {
            let component = match kind {
                ModuleKind::Workflow => inner.runtime.validate_workflow(&inner.linker, &bytes),
                ModuleKind::Activity => inner.activities.validate(&bytes),
            }?;
            inner
                .runtime
                .check_declared_memory(&component, memory_quota, &memory_setting)?;
            Ok::<_, crate::runtime::ModuleError>((bytes, component))
        })
        .await
        .unwrap_or_else(|panicked| {
            // A compiler bug that this input reaches is still this input's refusal,
            // not a fault of the server's storage.
            tracing::error!(error = %panicked, %namespace, %name, "validating an upload panicked");
            Err(crate::runtime::ModuleError::Invalid(
                "the compiler failed on this component".into(),
            ))
        })?;
        let record = ModuleRecord {
            namespace: namespace.clone(),
            name: name.clone(),
            kind,
            hash: hash.clone(),
            size_bytes: bytes.len() as u64,
            uploaded_at_ms: self.inner.clock.now_ms(),
        };
        journal::commit(
            &*self.inner.journal,
            Write::PutModule {
                record: record.clone(),
                bytes,
            },
        )
        .await?;
        self.inner.runtime.remember(&hash, &component);
        Ok(record)
    }

    pub async fn list_modules(&self, namespace: &Namespace) -> EngineResult<Vec<ModuleRecord>> {
        Ok(self.inner.journal.list_modules(namespace).await?)
    }

    /// Starts a run; answers once the run is durably recorded.
    pub async fn start_workflow(&self, request: StartRequest) -> EngineResult<RunRecord> {
        validate_name("workflow id", request.workflow_id.as_str())
            .map_err(EngineError::InvalidInput)?;
        validate_name("workflow type", request.workflow_type.as_str())
            .map_err(EngineError::InvalidInput)?;
        let tenant = self.tenant(&request.namespace)?;
        check_payload(&tenant, &request.input)?;
        tenant
            .admit_start()
            .map_err(|limited| EngineError::QuotaExceeded {
                quota: "starts_per_second",
                message: limited.message,
                retry_after: Some(limited.retry_after),
            })?;
        let module = self
            .inner
            .journal
            .module_for_type(&request.namespace, &request.workflow_type)
            .await?
            .ok_or_else(|| EngineError::UnknownWorkflowType(request.workflow_type.clone()))?;
        if module.kind != ModuleKind::Workflow {
            return Err(EngineError::WrongModuleKind {
                name: request.workflow_type,
                expected: "workflow",
                actual: module.kind.as_str(),
            });
        }
        let (record, started) = self.inner.new_run(
            request.namespace,
            request.workflow_id,
            request.workflow_type,
            module.hash,
            request.input,
            None,
        );
        journal::commit(
            &*self.inner.journal,
            Write::CreateRun {
                record: Box::new(record.clone()),
                started: started.clone(),
            },
        )
        .await?;
        // Signals sent from here on wake the driver registered by spawn_driver.
        self.spawn_driver(record.clone(), vec![started], Inbox::Empty);
        Ok(record)
    }

    /// Checks a JSON payload sent to a run of `namespace` against its size quota.
    fn check_payload(&self, namespace: &Namespace, json: &str) -> EngineResult<()> {
        check_payload(&*self.tenant(namespace)?, json)
    }

    /// The newest run of a workflow id.
    pub async fn describe(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
    ) -> EngineResult<RunRecord> {
        self.inner
            .journal
            .latest_run(namespace, workflow_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("workflow {workflow_id}")))
    }

    /// Every run of a workflow id, newest first: the chain of continue-as-new runs and
    /// the runs of earlier uses of the id.
    pub async fn runs_of(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
    ) -> EngineResult<Vec<RunRecord>> {
        Ok(self.inner.journal.runs_of(namespace, workflow_id).await?)
    }

    pub async fn history(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
    ) -> EngineResult<Vec<Event>> {
        let run = self.describe(namespace, workflow_id).await?;
        Ok(self.inner.journal.events(&run.run_id).await?)
    }

    /// The failed activity attempts of the newest run of `workflow_id`.
    pub async fn failed_attempts(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
    ) -> EngineResult<Vec<journal::AttemptRecord>> {
        let run = self.describe(namespace, workflow_id).await?;
        Ok(self.inner.journal.attempts(&run.run_id).await?)
    }

    pub async fn list(
        &self,
        namespace: &Namespace,
        filter: &RunFilter,
    ) -> EngineResult<Vec<RunRecord>> {
        Ok(self.inner.journal.list_runs(namespace, filter).await?)
    }

    /// Waits until the newest run of `workflow_id` closes or `timeout` passes, and returns
    /// it either way (check `status`).
    pub async fn wait_closed(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
        timeout: Duration,
    ) -> EngineResult<RunRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let run = self.describe(namespace, workflow_id).await?;
            // A blocked run waits for an operator, not for time: answer at once. A run
            // that continued as new is followed to its successor.
            if run.status != RunStatus::Running && run.status != RunStatus::ContinuedAsNew {
                return Ok(run);
            }
            // Register before re-reading, so a close between the read and the wait is
            // not missed.
            let (tx, rx) = oneshot::channel();
            self.inner.add_waiter(&run.run_id, tx);
            let waited_on = run.run_id;
            let run = self.describe(namespace, workflow_id).await?;
            // A blocked run waits for an operator, not for time: answer at once. A run
            // that continued as new is followed to its successor.
            if run.status != RunStatus::Running && run.status != RunStatus::ContinuedAsNew {
                return Ok(run);
            }
            if run.run_id != waited_on {
                // The run continued as new meanwhile: wait on its successor.
                continue;
            }
            if tokio::time::timeout_at(deadline, rx).await.is_err() {
                return Ok(run);
            }
        }
    }

    /// Delivers a signal to the open run of `workflow_id`; answers once the signal is
    /// durable. Signals reach the workflow in the order they were accepted.
    pub async fn signal(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
        name: &str,
        input: &str,
    ) -> EngineResult<RunRecord> {
        validate_name("signal name", name).map_err(EngineError::InvalidInput)?;
        check_not_reserved(name)?;
        self.deliver_signal(namespace, workflow_id, name, input)
            .await
    }

    /// Asks the open run of `workflow_id` to stop: the workflow sees a cancellation error
    /// from whatever it waits on, may clean up (compensate), and ends as cancelled.
    /// Delivered like a signal (named `spool.cancel`): durable and ordered.
    pub async fn cancel(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
        reason: &str,
    ) -> EngineResult<RunRecord> {
        check_reason(reason)?;
        let input = serde_json::json!({ "reason": reason }).to_string();
        let run = self
            .deliver_signal(namespace, workflow_id, CANCEL_SIGNAL, &input)
            .await?;
        // Cancellation flows down to the run's children, and theirs, except to
        // abandoned ones.
        let mut parents = vec![run.clone()];
        while let Some(parent) = parents.pop() {
            let children = self.inner.journal.children(&parent.run_id).await?;
            for child in children.into_iter().filter(|c| c.status.is_open()) {
                let policy = child.parent.as_ref().map(|p| p.close_policy);
                if policy == Some(ParentClosePolicy::Abandon) {
                    continue;
                }
                let reason = format!(
                    "parent workflow {} was cancelled: {reason}",
                    parent.workflow_id
                );
                let input = serde_json::json!({ "reason": reason }).to_string();
                match self
                    .deliver_signal(namespace, &child.workflow_id, CANCEL_SIGNAL, &input)
                    .await
                {
                    Ok(child) => parents.push(child),
                    Err(EngineError::NotOpen(..)) => {}
                    Err(e) => {
                        tracing::warn!(child = %child.workflow_id, error = %e, "cannot pass the cancel request on to a child")
                    }
                }
            }
        }
        Ok(run)
    }

    async fn deliver_signal(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
        name: &str,
        input: &str,
    ) -> EngineResult<RunRecord> {
        self.check_payload(namespace, input)?;
        let signal = EventKind::SignalReceived {
            name: name.to_owned(),
            input: input.to_owned(),
        };
        self.deliver(namespace, workflow_id, signal).await
    }

    /// Puts `event` (a signal or an update) in the inbox of the open run of
    /// `workflow_id` and wakes its driver; answers once it is durable.
    async fn deliver(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
        event: EventKind,
    ) -> EngineResult<RunRecord> {
        let run = self.describe(namespace, workflow_id).await?;
        if !run.status.is_open() {
            return Err(EngineError::NotOpen(
                workflow_id.clone(),
                run.status.as_str(),
            ));
        }
        if run.status == RunStatus::Blocked {
            self.check_blocked_inbox(namespace, &run).await?;
        }
        let entry = InboxEntry {
            id: 0,
            event: event.clone(),
            received_at_ms: self.inner.clock.now_ms(),
        };
        let write = Write::Signal {
            run_id: run.run_id.clone(),
            signal: entry,
        };
        match journal::commit(&*self.inner.journal, write).await {
            Err(JournalError::RunClosed(_)) => {
                let now = self.describe(namespace, workflow_id).await?;
                if now.status.is_open() && now.run_id != run.run_id {
                    // The run continued as new between the read and the write: the
                    // signal belongs to its successor.
                    return Box::pin(self.deliver(namespace, workflow_id, event)).await;
                }
                return Err(EngineError::NotOpen(
                    workflow_id.clone(),
                    now.status.as_str(),
                ));
            }
            other => other?,
        }
        self.inner.wake(&run.run_id).await;
        Ok(run)
    }

    /// A blocked run has no driver to move its inbox into its journal, where
    /// `max_events_per_run` would hold it: the inbox is held to that quota instead.
    async fn check_blocked_inbox(
        &self,
        namespace: &Namespace,
        run: &RunRecord,
    ) -> EngineResult<()> {
        let limit = self.tenant(namespace)?.quotas.max_events_per_run;
        let waiting = self.inner.journal.inbox_len(&run.run_id).await?;
        if waiting >= limit {
            return Err(EngineError::QuotaExceeded {
                quota: "max_events_per_run",
                message: format!(
                    "workflow {} is blocked with {waiting} signals and updates waiting; \
                     namespace {namespace}'s quota max_events_per_run is {limit}",
                    run.workflow_id
                ),
                retry_after: None,
            });
        }
        Ok(())
    }

    /// Answers a query about the newest run of `workflow_id` — running, waiting, evicted
    /// or finished — through the handler the workflow registered. The run is replayed
    /// in a throwaway instance: nothing is journaled and the live run is not touched.
    pub async fn query(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
        name: &str,
        input: &str,
    ) -> EngineResult<String> {
        validate_name("query name", name).map_err(EngineError::InvalidInput)?;
        self.check_payload(namespace, input)?;
        let run = self.describe(namespace, workflow_id).await?;
        let events = self.inner.journal.events(&run.run_id).await?;
        let limit = self.tenant(namespace)?.quotas.max_payload_bytes as usize;
        let question = Question::Query {
            name: name.into(),
            input: input.into(),
        };
        match driver::answer_query(self.inner.clone(), run, events, question).await {
            Ok(Ok(answer)) if answer.len() > limit => Err(EngineError::QueryFailed(format!(
                "the answer of {} bytes exceeds the limit of {limit}",
                answer.len()
            ))),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(refusal)) => Err(EngineError::QueryRejected(refusal)),
            Err(e) => Err(EngineError::QueryFailed(e.to_string())),
        }
    }

    /// Ends the open run of `workflow_id` at once, recording `reason` in its history.
    /// The workflow gets no say (no clean-up runs); answers once the end is durable.
    pub async fn terminate(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
        reason: &str,
    ) -> EngineResult<RunRecord> {
        check_reason(reason)?;
        for _ in 0..100 {
            let run = self.describe(namespace, workflow_id).await?;
            if !run.status.is_open() {
                return Err(EngineError::NotOpen(
                    workflow_id.clone(),
                    run.status.as_str(),
                ));
            }
            let driver = self
                .inner
                .live
                .lock()
                .ok()
                .and_then(|live| live.get(&run.run_id).cloned());
            let done = match driver {
                // The driver journals the end at the guest's next wait.
                Some(outbox) => {
                    let (done, answer) = oneshot::channel();
                    let message = driver::RunMsg::Terminate {
                        reason: reason.to_owned(),
                        done,
                    };
                    if outbox.send(message).await.is_err() {
                        continue;
                    }
                    match answer.await {
                        Ok(result) => result.map_err(EngineError::from),
                        // The driver ended first (the run closed): look again.
                        Err(_) => continue,
                    }
                }
                // No driver (a blocked run): append the end ourselves, holding the slot
                // so that no driver starts meanwhile.
                None => {
                    let (placeholder, _unused) = tokio::sync::mpsc::channel(1);
                    if !self.inner.claim(&run.run_id, placeholder) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    let result = self.terminate_without_driver(&run, reason).await;
                    self.inner.release(&run.run_id);
                    self.inner.notify_waiters(&run.run_id);
                    tokio::spawn(self.inner.clone().after_close(run.run_id.clone()));
                    result
                }
            };
            done?;
            return self.describe(namespace, workflow_id).await;
        }
        Err(EngineError::Storage(
            "the run kept changing while being terminated; retry".into(),
        ))
    }

    async fn terminate_without_driver(&self, run: &RunRecord, reason: &str) -> EngineResult<()> {
        let events = self.inner.journal.events(&run.run_id).await?;
        let mut state =
            replay::RunState::new(events).map_err(|e| EngineError::Storage(e.to_string()))?;
        let end = EventKind::RunTerminated {
            reason: reason.to_owned(),
        };
        let event = state.record(end, self.inner.clock.now_ms());
        let write = Write::Append {
            run_id: run.run_id.clone(),
            events: vec![event],
            status: Some(journal::StatusChange::Terminated {
                reason: reason.to_owned(),
            }),
            signals_upto: None,
            children: Vec::new(),
            usage: Default::default(),
        };
        journal::commit(&*self.inner.journal, write).await?;
        Ok(())
    }

    /// Signals the open run of the workflow, starting it first if none is open.
    pub async fn signal_with_start(
        &self,
        request: StartRequest,
        name: &str,
        input: &str,
    ) -> EngineResult<RunRecord> {
        validate_name("signal name", name).map_err(EngineError::InvalidInput)?;
        check_not_reserved(name)?;
        self.check_payload(&request.namespace, input)?;
        // Two attempts: the run may close between a failed start and the signal.
        for _ in 0..2 {
            match self.start_workflow(request.clone()).await {
                Ok(_) | Err(EngineError::AlreadyRunning(_)) => {}
                Err(e) => return Err(e),
            }
            match self
                .signal(&request.namespace, &request.workflow_id, name, input)
                .await
            {
                Err(EngineError::NotOpen(..)) => continue,
                other => return other,
            }
        }
        Err(EngineError::Storage(
            "the workflow kept closing while being signalled; retry".into(),
        ))
    }

    /// Points a blocked run at another workflow module and resumes it at once: the
    /// deliberate override of pinning, for a run stopped by non-determinism after its
    /// module was fixed. The module must be uploaded (any name) in the same namespace.
    pub async fn repin(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
        module_hash: &ModuleHash,
    ) -> EngineResult<RunRecord> {
        let run = self.describe(namespace, workflow_id).await?;
        if run.status != RunStatus::Blocked {
            return Err(EngineError::InvalidInput(format!(
                "workflow {workflow_id} is {}; only a blocked run can be repinned",
                run.status.as_str()
            )));
        }
        // The driver that blocked the run may still be finishing; give it a moment.
        let is_live = || {
            self.inner
                .live
                .lock()
                .is_ok_and(|live| live.contains_key(&run.run_id))
        };
        for _ in 0..200 {
            if !is_live() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if is_live() {
            return Err(EngineError::InvalidInput(format!(
                "workflow {workflow_id} is being resumed right now; try again in a moment"
            )));
        }
        if self
            .inner
            .journal
            .module_bytes(namespace, module_hash)
            .await?
            .is_none()
        {
            return Err(EngineError::NotFound(format!("module {module_hash}")));
        }
        self.inner
            .workflow_pre(namespace, module_hash)
            .await
            .map_err(|e| {
                EngineError::InvalidInput(format!("module {module_hash} is not a workflow: {e:#}"))
            })?;
        journal::commit(
            &*self.inner.journal,
            Write::Repin {
                run_id: run.run_id.clone(),
                module_hash: module_hash.clone(),
            },
        )
        .await?;
        let repinned = RunRecord {
            module_hash: module_hash.clone(),
            ..run
        };
        let events = self.inner.journal.events(&repinned.run_id).await?;
        // The driver sees the run as blocked and marks it running as it resumes.
        if !self.spawn_driver(repinned.clone(), events, Inbox::MayHoldSignals) {
            tracing::info!(run = %repinned.run_id, "repinned run is already being resumed");
        }
        Ok(RunRecord {
            status: RunStatus::Running,
            blocked_reason: None,
            ..repinned
        })
    }
}

fn check_not_reserved(signal: &str) -> EngineResult<()> {
    if signal.starts_with(RESERVED_SIGNAL_PREFIX) {
        return Err(EngineError::InvalidInput(format!(
            "signal names starting with {RESERVED_SIGNAL_PREFIX:?} are reserved for the host"
        )));
    }
    Ok(())
}

/// Reasons of cancel and terminate end up in history and in the UI: keep them short.
fn check_reason(reason: &str) -> EngineResult<()> {
    const MAX_REASON_BYTES: usize = 4_096;
    if reason.len() > MAX_REASON_BYTES {
        return Err(EngineError::InvalidInput(format!(
            "the reason is longer than {MAX_REASON_BYTES} bytes"
        )));
    }
    Ok(())
}

impl Inner {
    /// Starts the run's driver unless one is already running; returns whether it did.
    fn spawn_driver(
        self: &Arc<Self>,
        run: RunRecord,
        events: Vec<Event>,
        inbox_state: Inbox,
    ) -> bool {
        let (outbox, inbox) = tokio::sync::mpsc::channel(driver::INBOX_DEPTH);
        if !self.claim(&run.run_id, outbox.clone()) {
            return false;
        }
        let inner = self.clone();
        tokio::spawn(async move {
            let run_id = run.run_id.clone();
            let closed =
                driver::drive(inner.clone(), run, events, (outbox, inbox), inbox_state).await;
            inner.release(&run_id);
            inner.notify_waiters(&run_id);
            // Most runs have neither parent nor children: nothing more to do, and no
            // reads to do it.
            if let Some(closed) = closed {
                if let Some(parent) = &closed.parent {
                    inner.wake(parent).await;
                }
                if closed.started_children {
                    inner.after_close(run_id).await;
                }
            }
        });
        true
    }

    /// What a run's close sets off: its parent (whose inbox got the outcome in the
    /// closing transaction) is woken, and its open children are handled by their
    /// parent-close policy. Does nothing if the run is still open (its driver stopped
    /// for a shutdown or a block).
    /// Boxed, and declared `Send`: terminating a child closes it, which leads back here.
    fn after_close(self: Arc<Self>, run_id: RunId) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let run = match self.journal.run(&run_id).await {
                Ok(Some(run)) if !run.status.is_open() => run,
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(run = %run_id, error = %e, "cannot read a closed run");
                    return;
                }
            };
            if let Some(parent) = &run.parent {
                self.wake(&parent.run_id).await;
            }
            let children = match self.journal.children(&run_id).await {
                Ok(children) => children,
                Err(e) => {
                    tracing::error!(run = %run_id, error = %e, "cannot list the run's children");
                    return;
                }
            };
            let engine = Engine { inner: self };
            for child in children.into_iter().filter(|c| c.status.is_open()) {
                let policy = child.parent.as_ref().map(|p| p.close_policy);
                let reason = format!(
                    "parent workflow {} is {}",
                    run.workflow_id,
                    run.status.as_str()
                );
                let (ns, id) = (&child.namespace, &child.workflow_id);
                let applied = match policy.unwrap_or_default() {
                    ParentClosePolicy::Terminate => engine.terminate(ns, id, &reason).await,
                    ParentClosePolicy::RequestCancel => engine.cancel(ns, id, &reason).await,
                    ParentClosePolicy::Abandon => continue,
                };
                match applied {
                    // It closed on its own meanwhile.
                    Ok(_) | Err(EngineError::NotOpen(..)) => {}
                    Err(e) => {
                        tracing::warn!(child = %id, error = %e, "cannot apply the parent-close policy")
                    }
                }
            }
        })
    }

    /// A new run's record and first event. Run ids start with the creation time in hex,
    /// so they sort by age; the seed drives the run's deterministic randomness.
    fn new_run(
        &self,
        namespace: Namespace,
        workflow_id: WorkflowId,
        workflow_type: TypeName,
        module_hash: ModuleHash,
        input: String,
        continued_from: Option<RunId>,
    ) -> (RunRecord, Event) {
        let now = self.clock.now_ms();
        let run_id = RunId(format!("{now:012x}{:020x}", rand::random::<u128>() >> 48));
        let started = Event {
            seq: crate::ids::Seq(0),
            recorded_at_ms: now,
            kind: EventKind::RunStarted {
                workflow_type: workflow_type.clone(),
                workflow_id: workflow_id.clone(),
                input: input.clone(),
                seed: rand::random::<u64>(),
                module_hash: module_hash.clone(),
            },
        };
        let record = RunRecord {
            namespace,
            workflow_id,
            run_id,
            workflow_type,
            module_hash,
            status: RunStatus::Running,
            input,
            output: None,
            failure: None,
            blocked_reason: None,
            created_at_ms: now,
            closed_at_ms: None,
            continued_from,
            parent: None,
        };
        (record, started)
    }

    /// Takes the right to append to a run's journal (the driver's, or an operator
    /// action's on a run without a driver). False if someone holds it.
    fn claim(&self, run_id: &RunId, outbox: tokio::sync::mpsc::Sender<driver::RunMsg>) -> bool {
        self.live.lock().is_ok_and(|mut live| {
            if live.contains_key(run_id) {
                return false;
            }
            live.insert(run_id.clone(), outbox);
            true
        })
    }

    fn release(&self, run_id: &RunId) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(run_id);
        }
    }

    /// Tells a run's driver that signals wait in its inbox (no-op if it has none: the
    /// next driver reads the inbox when it starts).
    async fn wake(&self, run_id: &RunId) {
        let outbox = self
            .live
            .lock()
            .ok()
            .and_then(|live| live.get(run_id).cloned());
        if let Some(outbox) = outbox {
            let _ = outbox.send(driver::RunMsg::SignalsArrived).await;
        }
    }

    fn add_waiter(&self, run_id: &RunId, tx: oneshot::Sender<()>) {
        if let Ok(mut waiters) = self.waiters.lock() {
            let waiting = waiters.entry(run_id.clone()).or_default();
            // Callers that gave up (timed-out long polls) leave closed senders behind.
            waiting.retain(|tx| !tx.is_closed());
            waiting.push(tx);
        }
    }

    /// Wakes the callers waiting on a run: it closed, or answered an update.
    fn notify_waiters(&self, run_id: &RunId) {
        let waiting = self.waiters.lock().ok().and_then(|mut w| w.remove(run_id));
        for tx in waiting.into_iter().flatten() {
            let _ = tx.send(());
        }
    }

    /// The instantiation template of a run's module, compiled (or loaded) on first use.
    async fn workflow_pre(
        &self,
        namespace: &Namespace,
        hash: &ModuleHash,
    ) -> anyhow::Result<RunPre> {
        let key = (namespace.clone(), hash.clone());
        if let Some(pre) = self.pres.lock().ok().and_then(|p| p.get(&key).cloned()) {
            return Ok(pre);
        }
        let bytes = self.journal.module_bytes(namespace, hash).await?;
        let runtime = self.runtime.clone();
        let hash_owned = hash.clone();
        let component = tokio::task::spawn_blocking(move || {
            runtime.component(&hash_owned, || {
                bytes.ok_or_else(|| {
                    anyhow::anyhow!("module {hash_owned} is missing from the journal")
                })
            })
        })
        .await??;
        let pre = WorkflowPre::new(self.linker.instantiate_pre(&component)?)?;
        if let Ok(mut pres) = self.pres.lock() {
            pres.insert(key, pre.clone());
        }
        Ok(pre)
    }
}

fn check_payload(tenant: &Tenant, json: &str) -> EngineResult<()> {
    let limit = tenant.quotas.max_payload_bytes as usize;
    if json.len() > limit {
        return Err(EngineError::PayloadTooLarge {
            size: json.len(),
            limit,
        });
    }
    serde_json::from_str::<serde::de::IgnoredAny>(json)
        .map_err(|e| EngineError::InvalidInput(format!("input is not valid JSON: {e}")))?;
    Ok(())
}
