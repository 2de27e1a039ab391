//! The driver of one run: it instantiates the guest, answers its `context` calls, and
//! decides what happens when the guest returns, traps, diverges or waits for long.
//!
//! Write-ahead: a result reaches the guest only after the event carrying it is
//! committed (`receive` awaits the commit before `await_next` can return it). New
//! commands are queued for the journal when the guest next waits; their effects may
//! start before that commit, which only makes an activity at-least-once, as promised.

mod context;
mod meter;
mod outcome;

use super::activity_task;
use super::replay::{Command, ContractViolation, Issued, NonDeterminism, Outstanding, RunState};
use super::Inner;
use crate::ids::validate_name;
use crate::ids::{Handle, RunId};
use crate::journal::{
    CommitTicket, Event, EventKind, Failure, FailureKind, InboxEntry, JournalError, ModuleKind,
    NewChild, ParentLink, RunRecord, RunStatus, StatusChange, Write,
};
use crate::runtime::bindings::spool::workflow::context as wit;
use crate::runtime::wasi::{deterministic_wasi, CapturedOutput, SeededRandom, VirtualTime};
use crate::runtime::{Activations, Sandbox};
use crate::tenancy::quotas::Quotas;
use crate::tenancy::Tenant;
use context::failure_from_wit;
use meter::Meter;
use outcome::{check_output, describe_trap, sandbox_failure};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Messages from a run's activity and timer tasks to its driver.
#[derive(Debug)]
pub(super) enum RunMsg {
    ActivityDone {
        handle: Handle,
        result: Result<String, Failure>,
        attempts: u32,
    },
    TimerFired {
        handle: Handle,
    },
    /// New entries (signals, children's results) are in the run's inbox in the journal.
    SignalsArrived,
    /// End the run now; answer once that is durable.
    Terminate {
        reason: String,
        done: tokio::sync::oneshot::Sender<Result<(), JournalError>>,
    },
}

/// What `receive` did.
#[derive(Debug, PartialEq)]
enum Received {
    /// Journaled what arrived.
    Events,
    /// Journaled the run's termination: the guest must stop.
    Terminated,
    /// Journaled what fit, but the run has no room for more events (quota
    /// `max_events_per_run`): it must fail with this message.
    OverQuota(String),
}

/// Bound on a run's inbox. A run has at most one message per outstanding command, and
/// senders wait when it is full, so this only paces very wide fan-outs.
pub(super) const INBOX_DEPTH: usize = 1_024;
/// Bound on `random-bytes` per call.
const MAX_RANDOM_BYTES: u32 = 1 << 16;

/// Why the host stopped a guest from inside one of its calls. Carried through the
/// guest's stack as a trap and recognised by `classify`.
#[derive(Debug, thiserror::Error)]
enum Abort {
    #[error("evicted while waiting")]
    Evict,
    #[error("terminated")]
    Terminated,
    #[error("continued as new")]
    ContinueAsNew(String),
    #[error("query answered")]
    QueryAnswered,
    #[error(transparent)]
    NonDeterminism(#[from] NonDeterminism),
    #[error(transparent)]
    Contract(#[from] ContractViolation),
    #[error("{0}")]
    Payload(String),
    #[error("{0}")]
    InvalidPayload(String),
    /// A namespace quota ends the run (`max_events_per_run`).
    #[error("{0}")]
    Quota(String),
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
}

fn abort(reason: impl Into<Abort>) -> wasmtime::Error {
    wasmtime::Error::new(reason.into())
}

/// The host state of a run, living inside its store while a guest instance runs and
/// taken back out when the instance ends.
pub struct RunHost {
    inner: Arc<Inner>,
    run: RunRecord,
    state: RunState,
    inbox: mpsc::Receiver<RunMsg>,
    /// Handed to activity and timer tasks so they can report back.
    outbox: mpsc::Sender<RunMsg>,
    /// New command events not yet queued for the journal.
    pending: Vec<Event>,
    /// Writes queued but not yet known to be committed.
    unconfirmed: Vec<CommitTicket>,
    /// Child runs created by those writes: their drivers start once the writes commit.
    unspawned: Vec<(RunRecord, Event)>,
    /// The activity tasks still running, to stop one the workflow cancels (and all
    /// when the run ends).
    running: std::collections::HashMap<Handle, tokio::task::AbortHandle>,
    time: VirtualTime,
    random: SeededRandom,
    new_activation: bool,
    /// Events delivered to the current instance.
    deliveries: usize,
    /// Set when the current instance first found nothing to deliver and had to wait.
    caught_up: bool,
    /// How far earlier instances of this run (in this process) got before they waited:
    /// the current instance's output up to there was already logged.
    previous_deliveries: Option<usize>,
    /// Set in throwaway instances that answer a query: nothing is journaled or started.
    query: Option<QueryState>,
    /// The run's namespace as the host runs it, looked up again for every instance:
    /// its quotas bound the instance (fuel, memory, payloads, events), its
    /// `activations()` semaphore is the namespace's share of the executor. None only
    /// if the namespace is gone (then the default quotas apply).
    tenant: Option<Arc<Tenant>>,
    /// One of the namespace's `max_concurrent_activations` permits, held while guest
    /// code runs: taken before the guest is called and before `await-next` hands it an
    /// event, given back while it waits and when the instance ends.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The fuel the current instance's activations burnt, for the namespace's usage.
    meter: Meter,
}

impl Drop for RunHost {
    /// A run whose driver stops (it ended, or the host shuts down) stops its activity
    /// attempts: their results would not be recorded, and a queued attempt should not
    /// reach a worker. A restart starts again what is still outstanding.
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}

impl Activations for RunHost {
    fn take_new_activation(&mut self) -> bool {
        std::mem::take(&mut self.new_activation)
    }

    fn host_called(&mut self, fuel_left: u64) {
        self.meter.host_called(fuel_left);
    }
}

/// How one guest instance ended.
enum InstanceEnd {
    Returned(Result<String, Failure>),
    Evicted,
    NonDeterminism(NonDeterminism),
    /// The host could not go on (storage failure, module missing): the run stays open
    /// and resumes on the next start.
    HostError(String),
    /// Terminated from outside; the termination is journaled already.
    Terminated,
    /// The guest called continue-as-new with this input.
    ContinuedAsNew(String),
}

/// How a run this driver closed relates to other runs: what its close sets off.
pub(super) struct Closed {
    /// The parent run, to wake: the child's outcome is in its inbox.
    pub parent: Option<RunId>,
    /// Whether the run started children (whose parent-close policies now apply).
    pub started_children: bool,
}

impl RunHost {
    fn closed(&self) -> Option<Closed> {
        Some(Closed {
            parent: self.run.parent.as_ref().map(|p| p.run_id.clone()),
            started_children: self
                .state
                .events()
                .iter()
                .any(|e| matches!(e.kind, EventKind::ChildScheduled { .. })),
        })
    }
}

/// Drives the run until it closes (then says so), blocks, or the host shuts down.
pub(super) async fn drive(
    inner: Arc<Inner>,
    run: RunRecord,
    events: Vec<Event>,
    (outbox, inbox): (mpsc::Sender<RunMsg>, mpsc::Receiver<RunMsg>),
    inbox_state: super::Inbox,
) -> Option<Closed> {
    let run_id = run.run_id.clone();
    let state = match RunState::new(events) {
        Ok(state) => state,
        Err(e) => {
            tracing::error!(run = %run_id, error = %e, "cannot resume run");
            return None;
        }
    };
    if state.is_closed() {
        return None;
    }
    let mut host = RunHost::new(inner, run, state, (outbox, inbox));
    if host.run.status == RunStatus::Blocked {
        // Resuming a blocked run (after a restart or a repin): it is running again until
        // replay shows otherwise.
        if let Err(e) = host.commit(Vec::new(), Some(StatusChange::Running)).await {
            tracing::error!(run = %run_id, error = %e, "cannot resume blocked run");
            return None;
        }
    }
    // Signals that arrived while no driver ran (a restart, a blocked run) wait in the
    // inbox: have them journaled at the first wait.
    if inbox_state == super::Inbox::MayHoldSignals {
        host.wake_for_waiting_signals().await;
    }
    // Whatever was started before a restart and has no result yet is started again.
    let outstanding = host.state.outstanding();
    host.start_effects(outstanding, true).await;
    let mut backoff = HOST_ERROR_BACKOFF_INITIAL;
    loop {
        let (end, returned) = run_instance(host).await;
        host = returned;
        let outcome = match end {
            InstanceEnd::Evicted => {
                tracing::debug!(run = %run_id, "evicted while waiting");
                match host.receive().await {
                    Ok(Received::Events) => Ok(()),
                    Ok(Received::Terminated) => return host.closed(),
                    Ok(Received::OverQuota(message)) => {
                        match host.finish(Err(quota_failure(message))).await {
                            Ok(()) => return host.closed(),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            InstanceEnd::Terminated => return host.closed(),
            InstanceEnd::ContinuedAsNew(input) => match host.continue_as_new(input).await {
                Ok(()) => return host.closed(),
                Err(e) => Err(e),
            },
            InstanceEnd::Returned(result) => match host.finish(result).await {
                Ok(()) => return host.closed(),
                Err(e) => Err(e.to_string()),
            },
            InstanceEnd::NonDeterminism(e) => {
                tracing::error!(run = %run_id, error = %e, "run blocked");
                if let Err(e) = host.block(e).await {
                    tracing::error!(run = %run_id, error = %e, "cannot record that the run is blocked");
                }
                return None;
            }
            InstanceEnd::HostError(e) => Err(e),
        };
        match outcome {
            Ok(()) => backoff = HOST_ERROR_BACKOFF_INITIAL,
            Err(e) => {
                // Storage trouble or a missing module: nothing the guest did. Try again
                // later from what the journal holds: events that failed to commit must
                // not reach the guest, so the in-memory state is rebuilt from storage.
                tracing::error!(run = %run_id, error = %e, retry_in_ms = backoff.as_millis() as u64, "run interrupted by a host error");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(HOST_ERROR_BACKOFF_MAX);
                if let Err(e) = host.reload().await {
                    tracing::error!(run = %run_id, error = %e, "cannot reload the run's journal");
                }
            }
        }
    }
}

const HOST_ERROR_BACKOFF_INITIAL: std::time::Duration = std::time::Duration::from_millis(500);
const HOST_ERROR_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// Builds a guest instance, replays it against the journal and lets it run until it
/// returns or stops; hands the host state back either way.
async fn run_instance(host: RunHost) -> (InstanceEnd, RunHost) {
    let (mut store, pre, output, input) = match new_instance(host).await {
        Ok(instance) => instance,
        Err((e, host)) => return (InstanceEnd::HostError(e), host),
    };
    let result = async {
        let workflow = pre.instantiate_async(&mut store).await?;
        workflow.call_run(&mut store, &input).await
    }
    .await;
    let fuel_left = store.get_fuel().unwrap_or(0);
    let mut host = store.into_data().host;
    host.permit = None;
    let end = classify(&host, result, &output);
    if matches!(
        end,
        InstanceEnd::Returned(_) | InstanceEnd::ContinuedAsNew(_)
    ) {
        // The last activation journals the run's end: count it, and whatever waited.
        host.meter.end_run(fuel_left);
    }
    (end, host)
}

type Instance = (
    wasmtime::Store<Sandbox<RunHost>>,
    super::RunPre,
    CapturedOutput,
    String,
);

/// Resets `host` for a fresh guest instance replaying from the first event, takes the
/// namespace's activation permit for it, and builds its store. Returns the store, the
/// template to instantiate, the captured output and the run's input.
async fn new_instance(mut host: RunHost) -> Result<Instance, (String, RunHost)> {
    host.state.begin_instance();
    let start = host.state.start().clone();
    host.time.set_ms(start.start_ms);
    host.random = SeededRandom::new(start.seed);
    host.new_activation = false;
    host.deliveries = 0;
    host.caught_up = false;
    let inner = host.inner.clone();
    // Quotas changed since the last instance apply from this one on.
    host.tenant = inner.tenancy.tenant(&host.run.namespace);
    let quotas = host.quotas();
    let budget = inner
        .runtime
        .budget(quotas.fuel_per_activation, quotas.max_memory_bytes);
    host.meter.begin_instance(budget.fuel_per_activation);
    let pre = match inner
        .workflow_pre(&host.run.namespace, &host.run.module_hash)
        .await
    {
        Ok(pre) => pre,
        Err(e) => return Err((format!("cannot load module: {e:#}"), host)),
    };
    // The guest is about to run (a throwaway instance too: it is the namespace's work
    // like any). Taken before the store, whose deadline starts with the activation.
    host.acquire_permit().await;
    let (wasi, output) = deterministic_wasi(&host.time, start.start_ms, start.seed);
    let store = inner.runtime.new_store(wasi, host, budget);
    Ok((store, pre, output, start.input))
}

/// What a throwaway instance is built to ask the workflow.
#[derive(Clone, Debug)]
pub enum Question {
    /// A query: answered by the query handler.
    Query { name: String, input: String },
    /// Whether an update would be accepted: answered by its validator alone.
    ValidateUpdate {
        update_id: String,
        name: String,
        input: String,
    },
}

/// A question being answered by a throwaway instance.
pub(super) struct QueryState {
    question: Question,
    asked: bool,
    answer: Option<Result<String, String>>,
}

/// Why a query got no answer from the workflow.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("the workflow could not be replayed to answer the query: {0}")]
    Replay(String),
    #[error("the workflow did not answer the query")]
    NoAnswer,
    /// A validation found the run at its end: it takes no more updates.
    #[error("the run has ended")]
    Ended,
}

/// Answers a query by replaying the run in a fresh instance that is dropped afterwards,
/// so the live run is never touched and nothing is journaled. A waiting run is asked
/// once the replay reaches the end of its journal (through `await-next`); a finished
/// run, after `run` returns, through the `query` export.
pub(super) async fn answer_query(
    inner: Arc<Inner>,
    run: RunRecord,
    events: Vec<Event>,
    question: Question,
) -> Result<Result<String, String>, QueryError> {
    let state = RunState::new(events).map_err(|e| QueryError::Replay(e.to_string()))?;
    let (outbox, inbox) = mpsc::channel(1);
    let mut host = RunHost::new(inner, run, state, (outbox, inbox));
    host.query = Some(QueryState {
        question: question.clone(),
        asked: false,
        answer: None,
    });
    let (mut store, pre, output, run_input) = new_instance(host)
        .await
        .map_err(|(e, _)| QueryError::Replay(e))?;
    let workflow = pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| QueryError::Replay(format!("{e:#}")))?;
    let returned = workflow.call_run(&mut store, &run_input).await;
    let asked = store
        .data_mut()
        .host
        .query
        .as_mut()
        .and_then(|q| q.answer.take());
    if let Some(answer) = asked {
        return Ok(answer);
    }
    match returned {
        // The run replayed to its end: ask a query through the export; an update is
        // too late.
        Ok(_) => match question {
            Question::Query { name, input } => workflow
                .call_query(&mut store, &name, &input)
                .await
                .map_err(|e| QueryError::Replay(format!("{e:#}"))),
            Question::ValidateUpdate { .. } => Err(QueryError::Ended),
        },
        // The guest waited again without answering.
        Err(error) if matches!(error.downcast_ref::<Abort>(), Some(Abort::QueryAnswered)) => {
            Err(QueryError::NoAnswer)
        }
        Err(error) => {
            let host = store.into_data().host;
            match classify(&host, Err(error), &output) {
                InstanceEnd::Returned(Err(failure)) => Err(QueryError::Replay(failure.message)),
                InstanceEnd::NonDeterminism(e) => Err(QueryError::Replay(e.to_string())),
                InstanceEnd::HostError(e) => Err(QueryError::Replay(e)),
                _ => Err(QueryError::NoAnswer),
            }
        }
    }
}

fn classify(
    host: &RunHost,
    result: wasmtime::Result<Result<String, wit::Failure>>,
    output: &CapturedOutput,
) -> InstanceEnd {
    let stderr = String::from_utf8_lossy(&output.stderr.contents()).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout.contents()).into_owned();
    if !stdout.is_empty() || !stderr.is_empty() {
        tracing::debug!(run = %host.run.run_id, %stdout, %stderr, "guest output");
    }
    match result {
        Ok(returned) => {
            if let Err(e) = host.state.check_finished() {
                return InstanceEnd::NonDeterminism(e);
            }
            InstanceEnd::Returned(returned.map_err(failure_from_wit))
        }
        Err(error) => {
            if let Some(reason) = error.downcast_ref::<Abort>() {
                return match reason {
                    Abort::Evict => InstanceEnd::Evicted,
                    Abort::NonDeterminism(e) => InstanceEnd::NonDeterminism(e.clone()),
                    Abort::Contract(e) => InstanceEnd::Returned(Err(sandbox_failure(
                        "contract_violation",
                        e.to_string(),
                        &stderr,
                    ))),
                    Abort::Payload(e) => InstanceEnd::Returned(Err(sandbox_failure(
                        "payload_too_large",
                        e.clone(),
                        &stderr,
                    ))),
                    Abort::InvalidPayload(e) => InstanceEnd::Returned(Err(sandbox_failure(
                        "invalid_payload",
                        e.clone(),
                        &stderr,
                    ))),
                    Abort::Quota(e) => InstanceEnd::Returned(Err(quota_failure(e.clone()))),
                    Abort::Journal(e) => InstanceEnd::HostError(e.to_string()),
                    Abort::Terminated => InstanceEnd::Terminated,
                    Abort::ContinueAsNew(input) => match host.state.check_finished() {
                        Ok(()) => InstanceEnd::ContinuedAsNew(input.clone()),
                        Err(e) => InstanceEnd::NonDeterminism(e),
                    },
                    // Raised only in query instances, which handle it before classifying.
                    Abort::QueryAnswered => InstanceEnd::HostError("query instance".into()),
                };
            }
            let (error_type, message) = describe_trap(&error);
            InstanceEnd::Returned(Err(sandbox_failure(error_type, message, &stderr)))
        }
    }
}

/// A run stopped by its namespace's `max_events_per_run`.
fn quota_failure(message: String) -> Failure {
    Failure::new(FailureKind::Sandbox, "quota_exceeded", message).non_retryable()
}

impl RunHost {
    fn new(
        inner: Arc<Inner>,
        run: RunRecord,
        state: RunState,
        (outbox, inbox): (mpsc::Sender<RunMsg>, mpsc::Receiver<RunMsg>),
    ) -> Self {
        Self {
            tenant: inner.tenancy.tenant(&run.namespace),
            permit: None,
            meter: Meter::default(),
            random: SeededRandom::new(state.start().seed),
            time: VirtualTime::new(state.start().start_ms),
            inner,
            run,
            state,
            inbox,
            outbox,
            pending: Vec::new(),
            unconfirmed: Vec::new(),
            unspawned: Vec::new(),
            running: std::collections::HashMap::new(),
            new_activation: false,
            deliveries: 0,
            caught_up: false,
            previous_deliveries: None,
            query: None,
        }
    }

    fn run_id(&self) -> &RunId {
        &self.run.run_id
    }

    /// Takes one of the namespace's activation permits, waiting for it if the
    /// namespace's `max_concurrent_activations` are all running guest code.
    async fn acquire_permit(&mut self) {
        if self.permit.is_some() {
            return;
        }
        if let Some(tenant) = &self.tenant {
            self.permit = tenant.activations().clone().acquire_owned().await.ok();
        }
    }

    /// The guest is about to wait for the host: others of the namespace may run.
    fn release_permit(&mut self) {
        self.permit = None;
    }

    /// The quotas the run's namespace runs under.
    fn quotas(&self) -> &Quotas {
        self.tenant
            .as_ref()
            .map_or_else(|| self.inner.tenancy.defaults(), |t| &t.quotas)
    }

    /// Largest payload of the run's namespace (`max_payload_bytes`), enforced on
    /// everything the guest sends out and every activity output it gets.
    fn max_payload(&self) -> usize {
        usize::try_from(self.quotas().max_payload_bytes).unwrap_or(usize::MAX)
    }

    /// Checks that `more` new events leave room for the run's end within the
    /// namespace's `max_events_per_run` (the end always fits: the journal never holds
    /// more than the quota). The error is the run's failure message.
    fn check_room(&self, more: u64) -> Result<(), String> {
        let limit = self.quotas().max_events_per_run;
        let needed = self
            .state
            .next_seq()
            .0
            .saturating_add(more)
            .saturating_add(1);
        if needed <= limit {
            return Ok(());
        }
        Err(format!(
            "the run reached the limit of {limit} events of namespace {}'s quota \
             max_events_per_run (continue as new to go on with a fresh journal)",
            self.run.namespace
        ))
    }

    /// Starts the effects of commands: activity attempts and timers, as tasks that
    /// report to this run's inbox. `resumed`: the commands were started before (by an
    /// earlier process or instance), so activities go on counting attempts from the
    /// attempt log.
    async fn start_effects(&mut self, commands: Vec<Outstanding>, resumed: bool) {
        let earlier_attempts = if resumed && !commands.is_empty() {
            match self.inner.journal.attempts(&self.run.run_id).await {
                Ok(attempts) => attempts,
                Err(e) => {
                    tracing::warn!(run = %self.run.run_id, error = %e, "cannot read the attempt log; counting attempts from 1");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        for command in commands {
            let outbox = self.outbox.clone();
            match command {
                Outstanding::Activity {
                    handle,
                    name,
                    input,
                    options,
                    scheduled_at_ms,
                } => {
                    let previous_attempts = earlier_attempts
                        .iter()
                        .filter(|a| a.handle == handle)
                        .map(|a| a.attempt)
                        .max()
                        .unwrap_or(0);
                    let inner = self.inner.clone();
                    let max_payload = self.max_payload();
                    let quotas = self
                        .tenant
                        .as_deref()
                        .map(crate::activity::ActivityQuotas::of)
                        .unwrap_or_default();
                    // The names only: the run's input may be large.
                    let (namespace, workflow_id, run_id) = (
                        self.run.namespace.clone(),
                        self.run.workflow_id.clone(),
                        self.run.run_id.clone(),
                    );
                    let task = tokio::spawn(async move {
                        let activity = activity_task::Activity {
                            executor: &inner.activities,
                            clock: &*inner.clock,
                            journal: &*inner.journal,
                            namespace: &namespace,
                            workflow_id: &workflow_id,
                            run_id: &run_id,
                            handle,
                            name: &name,
                            input: &input,
                            options: &options,
                            scheduled_at_ms,
                            previous_attempts,
                            quotas: &quotas,
                            max_payload,
                        };
                        let (result, attempts) = activity_task::run_with_retries(activity).await;
                        let result = result.and_then(|output| {
                            check_output(
                                "activity output",
                                output,
                                max_payload,
                                FailureKind::Application,
                            )
                        });
                        let _ = outbox
                            .send(RunMsg::ActivityDone {
                                handle,
                                result,
                                attempts,
                            })
                            .await;
                    });
                    self.running.insert(handle, task.abort_handle());
                }
                Outstanding::Timer { handle, fire_at_ms } => {
                    let clock = self.inner.clock.clone();
                    tokio::spawn(async move {
                        clock.sleep_until(fire_at_ms).await;
                        let _ = outbox.send(RunMsg::TimerFired { handle }).await;
                    });
                }
                Outstanding::CancelledActivity { handle } => self.cancel_running_activity(handle),
            }
        }
    }

    /// Stops the activity of `handle` (its attempt task, and with it a queued or leased
    /// remote attempt) and reports its cancellation as its result, which `receive`
    /// journals like any other.
    fn cancel_running_activity(&mut self, handle: Handle) {
        if let Some(task) = self.running.remove(&handle) {
            task.abort();
        }
        let cancelled = Failure::new(
            FailureKind::Cancelled,
            "activity_cancelled",
            "the workflow cancelled the activity",
        )
        .non_retryable();
        let message = RunMsg::ActivityDone {
            handle,
            result: Err(cancelled),
            attempts: 0,
        };
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            let _ = outbox.send(message).await;
        });
    }

    /// Queues the new command events for the journal and starts their effects. Returns
    /// true if it journaled results too (children that could not start), committed:
    /// the guest has something new to look at.
    async fn flush(&mut self) -> Result<bool, JournalError> {
        if self.pending.is_empty() {
            return Ok(false);
        }
        let events = std::mem::take(&mut self.pending);
        let commands: Vec<Outstanding> = events.iter().filter_map(Outstanding::of).collect();
        let starts_children = events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ChildScheduled { .. }));
        let answers_updates = events.iter().any(|e| e.kind.answered_update().is_some());
        let results_before = self.state.next_seq();
        let ticket = self.submit(events, None, None).await;
        self.unconfirmed.push(ticket);
        self.start_effects(commands, false).await;
        if answers_updates {
            // Callers wait for the answer: commit it now and tell them.
            let ticket = Box::pin(std::future::ready(Ok(())));
            self.confirm(ticket).await?;
            self.inner.notify_waiters(self.run_id());
        }
        if !starts_children {
            return Ok(false);
        }
        // The guest will wait for its children: they must exist (and run) first.
        let ticket = Box::pin(std::future::ready(Ok(())));
        self.confirm(ticket).await?;
        // A child whose id was taken got its failure in this run's inbox: look there.
        let _ = self.outbox.try_send(RunMsg::SignalsArrived);
        Ok(self.state.next_seq() != results_before)
    }

    /// Queues `events` (and a status change) for the journal, with the child runs that
    /// `child_scheduled` events among them start.
    async fn submit(
        &mut self,
        mut events: Vec<Event>,
        status: Option<StatusChange>,
        signals_upto: Option<i64>,
    ) -> CommitTicket {
        let children = match self.new_children(&mut events).await {
            Ok(children) => children,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        self.unspawned.extend(
            children
                .iter()
                .map(|c| ((*c.record).clone(), c.started.clone())),
        );
        let write = Write::Append {
            run_id: self.run_id().clone(),
            events,
            status,
            signals_upto,
            children,
            // Counted with the events of the activations it was counted for.
            usage: self.meter.take_due(),
        };
        self.inner.journal.submit(write).await
    }

    /// The child runs that the `child_scheduled` events in `events` start. A child that
    /// cannot start (an invalid id, an unknown type) gets its failure appended to
    /// `events` instead, right after its command.
    async fn new_children(
        &mut self,
        events: &mut Vec<Event>,
    ) -> Result<Vec<NewChild>, JournalError> {
        let mut children = Vec::new();
        let mut refused = Vec::new();
        for event in events.iter() {
            let EventKind::ChildScheduled {
                handle,
                workflow_type,
                workflow_id,
                input,
                parent_close_policy,
            } = &event.kind
            else {
                continue;
            };
            let refuse = |error_type: &str, message: String| {
                (
                    *handle,
                    Failure::new(FailureKind::Application, error_type, message).non_retryable(),
                )
            };
            if let Err(message) = validate_name("child workflow id", workflow_id.as_str()) {
                refused.push(refuse("invalid_input", message));
                continue;
            }
            let module = self
                .inner
                .journal
                .module_for_type(&self.run.namespace, workflow_type)
                .await?
                .filter(|m| m.kind == ModuleKind::Workflow);
            let Some(module) = module else {
                let message = format!("no workflow type {workflow_type:?} is registered");
                refused.push(refuse("unknown_workflow_type", message));
                continue;
            };
            let (mut record, started) = self.inner.new_run(
                self.run.namespace.clone(),
                workflow_id.clone(),
                workflow_type.clone(),
                module.hash,
                input.clone(),
                None,
            );
            record.parent = Some(ParentLink {
                workflow_id: self.run.workflow_id.clone(),
                run_id: self.run.run_id.clone(),
                handle: *handle,
                close_policy: *parent_close_policy,
            });
            children.push(NewChild {
                record: Box::new(record),
                started,
            });
        }
        let now = self.inner.clock.now_ms();
        for (handle, failure) in refused {
            let kind = EventKind::ChildFailed {
                handle,
                run_id: None,
                failure,
            };
            events.push(self.state.record(kind, now));
        }
        Ok(children)
    }

    /// Commits `events` (after everything queued before them) and waits until durable.
    async fn commit(
        &mut self,
        events: Vec<Event>,
        status: Option<StatusChange>,
    ) -> Result<(), JournalError> {
        let ticket = self.submit(events, status, None).await;
        self.confirm(ticket).await
    }

    /// Replaces the in-memory journal with what storage holds, dropping events whose
    /// commit failed, and starts again every command without a journaled result (its
    /// result may be among those lost). Duplicate results are dropped on arrival: the
    /// first one journaled wins.
    async fn reload(&mut self) -> Result<(), String> {
        let events = self
            .inner
            .journal
            .events(&self.run.run_id)
            .await
            .map_err(|e| e.to_string())?;
        self.state = RunState::new(events).map_err(|e| e.to_string())?;
        self.pending.clear();
        self.unconfirmed.clear();
        self.unspawned.clear();
        self.meter.discard();
        let outstanding = self.state.outstanding();
        self.start_effects(outstanding, true).await;
        self.wake_for_waiting_signals().await;
        Ok(())
    }

    /// Signals left in the inbox (by a restart, or a commit that failed) are journaled at
    /// the next wait.
    async fn wake_for_waiting_signals(&mut self) {
        match self.inner.journal.inbox(&self.run.run_id).await {
            Ok(waiting) if !waiting.is_empty() => {
                let _ = self.outbox.try_send(RunMsg::SignalsArrived);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(run = %self.run.run_id, error = %e, "cannot read the signal inbox")
            }
        }
    }

    /// Waits for at least one message from the run's tasks, journals every result that
    /// is waiting, and returns once they are committed.
    async fn receive(&mut self) -> Result<Received, JournalError> {
        if self.flush().await? {
            return Ok(Received::Events);
        }
        let first = self.inbox.recv().await.ok_or(JournalError::Closed)?;
        let mut events = Vec::new();
        let mut signals_arrived = false;
        let mut terminate = None;
        // Set once the run has no room for more (`max_events_per_run`): what arrives
        // after that is dropped, and the run fails.
        let mut over_quota = None;
        let mut next = Some(first);
        while let Some(message) = next {
            next = self.inbox.try_recv().ok();
            let now = self.inner.clock.now_ms();
            if let RunMsg::ActivityDone { handle, .. } = &message {
                self.running.remove(handle);
            }
            let kind = match message {
                RunMsg::SignalsArrived => {
                    signals_arrived = true;
                    continue;
                }
                RunMsg::Terminate { reason, done } => {
                    terminate = Some((reason, done));
                    break;
                }
                RunMsg::ActivityDone { handle, .. } | RunMsg::TimerFired { handle }
                    if !self.state.awaits_result(handle) =>
                {
                    // A result for a command the journal does not hold (its commit
                    // failed and the state was reloaded) or already has: the command is
                    // issued anew.
                    tracing::debug!(run = %self.run.run_id, %handle, "dropping a result the journal does not expect");
                    continue;
                }
                RunMsg::ActivityDone {
                    handle,
                    result: Ok(output),
                    attempts,
                } => EventKind::ActivityCompleted {
                    handle,
                    output,
                    attempts,
                },
                RunMsg::ActivityDone {
                    handle,
                    result: Err(failure),
                    attempts,
                } => EventKind::ActivityFailed {
                    handle,
                    failure,
                    attempts,
                },
                RunMsg::TimerFired { handle } => EventKind::TimerFired { handle },
            };
            if over_quota.is_none() {
                over_quota = self.check_room(1).err();
            }
            if over_quota.is_none() {
                events.push(self.state.record(kind, now));
            }
        }
        // Inbox entries move into the journal in one transaction, in arrival order; the
        // previous receive committed before this read, so none moves twice.
        let mut signals_upto = None;
        if signals_arrived && over_quota.is_none() {
            for entry in self.inner.journal.inbox(&self.run.run_id).await? {
                if let Err(message) = self.check_room(1) {
                    // Left in the inbox: the run fails before it could see them.
                    over_quota = Some(message);
                    break;
                }
                signals_upto = Some(entry.id);
                // Two requests with one update id can both pass the check for a repeat
                // before either is journaled: the first one journaled is the update.
                if let Some(update_id) = entry.event.received_update() {
                    if self.state.update_state(update_id).0 {
                        continue;
                    }
                }
                if let Some(handle) = entry.event.completes() {
                    if !self.state.awaits_result(handle) {
                        tracing::warn!(run = %self.run.run_id, %handle, "dropping an inbox result for a handle that does not expect one");
                        continue;
                    }
                }
                events.push(self.state.record(entry.event, self.inner.clock.now_ms()));
            }
        }
        if let Some((reason, done)) = terminate {
            // Commands issued but not yet queued are kept for the record, like at a
            // normal end; results received with the request are kept too.
            let mut all = std::mem::take(&mut self.pending);
            all.append(&mut events);
            let end = EventKind::RunTerminated {
                reason: reason.clone(),
            };
            all.push(self.state.record(end, self.inner.clock.now_ms()));
            // The run ends: count the activations that waited to be counted.
            self.meter.settle();
            let status = StatusChange::Terminated { reason };
            let ticket = self.submit(all, Some(status), signals_upto).await;
            let outcome = self.confirm(ticket).await;
            let _ = done.send(outcome.clone());
            return outcome.map(|()| Received::Terminated);
        }
        let ticket = self.submit(events, None, signals_upto).await;
        self.confirm(ticket).await?;
        Ok(match over_quota {
            Some(message) => Received::OverQuota(message),
            None => Received::Events,
        })
    }

    /// Waits until `ticket` and everything queued before it is durable.
    async fn confirm(&mut self, ticket: CommitTicket) -> Result<(), JournalError> {
        for earlier in std::mem::take(&mut self.unconfirmed) {
            earlier.await?;
        }
        ticket.await?;
        // The child runs those writes created exist now: start them. A child whose id
        // was taken was not created (its handle failed instead): nothing to start. A
        // cancel passed down from this run may already wait in a child's inbox.
        for (child, started) in std::mem::take(&mut self.unspawned) {
            match self.inner.journal.run(&child.run_id).await {
                Ok(Some(_)) => {
                    self.inner
                        .spawn_driver(child, vec![started], super::Inbox::MayHoldSignals);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(run = %self.run.run_id, child = %child.run_id, error = %e, "cannot start a child run; it starts on the next restart")
                }
            }
        }
        Ok(())
    }

    /// True when the guest waits only on timers that are far off, so its memory is
    /// better spent elsewhere; replay rebuilds it when a timer fires.
    fn should_evict(&self, handles: &[Handle]) -> bool {
        let Some(evict_after) = self.inner.config.evict_after else {
            return false;
        };
        let mut earliest = u64::MAX;
        for &handle in handles {
            match self.state.pending_timer_fire_at(handle) {
                Some(fire_at) => earliest = earliest.min(fire_at),
                // An activity: results usually come soon; stay in memory.
                None => return false,
            }
        }
        earliest.saturating_sub(self.inner.clock.now_ms()) > evict_after.as_millis() as u64
    }

    async fn finish(&mut self, result: Result<String, Failure>) -> Result<(), JournalError> {
        let limit = self.max_payload();
        let result = result
            .and_then(|output| check_output("workflow output", output, limit, FailureKind::Sandbox))
            .map_err(|failure| {
                if failure.size() <= limit {
                    return failure;
                }
                // An oversized failure is the sandbox's verdict on the guest, like an
                // oversized output.
                let failure = Failure {
                    kind: FailureKind::Sandbox,
                    ..failure
                };
                failure.bounded("the workflow", limit).non_retryable()
            });
        let now = self.inner.clock.now_ms();
        let (kind, status) = match result {
            Ok(output) => (
                EventKind::RunCompleted {
                    output: output.clone(),
                },
                StatusChange::Completed { output },
            ),
            Err(failure) => (
                EventKind::RunFailed {
                    failure: failure.clone(),
                },
                StatusChange::Failed { failure },
            ),
        };
        // Commands issued but never awaited are journaled for the record; the run has
        // ended, so their effects are not started.
        let mut events = std::mem::take(&mut self.pending);
        events.push(self.state.record(kind, now));
        // The run ends: every activation not yet counted is (a run failed from outside
        // its guest, by a quota, still has some waiting).
        self.meter.settle();
        self.commit(events, Some(status)).await
    }

    /// Ends this run and starts its successor on `input` with the type's current module,
    /// in one transaction that also hands over the signals this run did not consume.
    async fn continue_as_new(&mut self, input: String) -> Result<(), String> {
        let run = &self.run;
        let module = self
            .inner
            .journal
            .module_for_type(&run.namespace, &run.workflow_type)
            .await
            .map_err(|e| e.to_string())?
            .filter(|m| m.kind == ModuleKind::Workflow)
            .map(|m| m.hash)
            // The type was re-registered as something else: stay on this run's module.
            .unwrap_or_else(|| run.module_hash.clone());
        let (mut new_run, new_started) = self.inner.new_run(
            run.namespace.clone(),
            run.workflow_id.clone(),
            run.workflow_type.clone(),
            module,
            input.clone(),
            Some(run.run_id.clone()),
        );
        // A child's chain stays the parent's child: its last run reports back.
        new_run.parent = run.parent.clone();
        let carried = self
            .state
            .undelivered_signals()
            .into_iter()
            .map(|event| InboxEntry {
                id: 0,
                event: event.kind.clone(),
                received_at_ms: event.recorded_at_ms,
            })
            .collect();
        // Commands issued but never awaited are journaled for the record, as at any end.
        let mut events = std::mem::take(&mut self.pending);
        let end = EventKind::RunContinuedAsNew {
            input,
            new_run_id: new_run.run_id.clone(),
        };
        events.push(self.state.record(end, self.inner.clock.now_ms()));
        let write = Write::ContinueAsNew {
            run_id: self.run.run_id.clone(),
            events,
            new_run: Box::new(new_run.clone()),
            new_started: new_started.clone(),
            carried,
            usage: self.meter.take_due(),
        };
        let ticket = self.inner.journal.submit(write).await;
        self.confirm(ticket).await.map_err(|e| e.to_string())?;
        // Signals that were in the inbox now belong to the new run: let it look.
        self.inner
            .spawn_driver(new_run, vec![new_started], super::Inbox::MayHoldSignals);
        Ok(())
    }

    async fn block(&mut self, error: NonDeterminism) -> Result<(), JournalError> {
        self.pending.clear();
        // Nothing the blocked instance ran is journaled: a resumed run counts it again.
        self.meter.discard();
        self.commit(
            Vec::new(),
            Some(StatusChange::Blocked {
                reason: error.to_string(),
            }),
        )
        .await
    }

    fn issue(&mut self, command: Command) -> wasmtime::Result<u32> {
        let now = self.inner.clock.now_ms();
        if self.query.is_none() && !self.state.is_replaying() {
            // A new command: it and its result must leave room for the run's end; a
            // child that cannot start gets its failure right after its command.
            let more = match command {
                Command::StartChild { .. } => 2,
                _ => 1,
            };
            self.check_room(more).map_err(|m| abort(Abort::Quota(m)))?;
        }
        match self.state.issue(command, now).map_err(abort)? {
            Issued::Replayed(handle) => {
                self.meter.produced_replayed();
                Ok(handle.0)
            }
            Issued::New(event) => {
                let handle = event.kind.command_handle().map(|h| h.0).unwrap_or_default();
                self.pending.push(*event);
                self.meter.produced_new();
                Ok(handle)
            }
        }
    }

    /// True while the guest repeats work whose output (logs) an earlier instance already
    /// produced, so it is not logged twice.
    fn replaying_output(&self) -> bool {
        match self.previous_deliveries {
            // An earlier instance in this process got this far, and ran on after its
            // last delivery until it had to wait.
            Some(previous) => !self.caught_up && self.deliveries <= previous,
            // The first instance since the process started: only commands tell.
            None => self.state.is_replaying(),
        }
    }

    fn check_payload(&self, what: &str, payload: &str) -> wasmtime::Result<()> {
        let limit = self.max_payload();
        if payload.len() > limit {
            return Err(abort(Abort::Payload(format!(
                "{what} of {} bytes exceeds the limit of {limit} (quota max_payload_bytes)",
                payload.len()
            ))));
        }
        Ok(())
    }
}
