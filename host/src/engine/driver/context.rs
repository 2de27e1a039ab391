//! The `context` interface as the guest calls it: each host function, and the
//! conversions between WIT types and the journal's.

use super::{abort, Abort, Question, Received, RunHost, MAX_RANDOM_BYTES};

/// A query instance answers exactly one query.
const QUERY_ID: u64 = 1;
use crate::engine::replay::{Command, ContractViolation};
use crate::ids::{Handle, TypeName, WorkflowId};
use crate::journal::{
    ActivityOptions, EventKind, Failure, FailureKind, ParentClosePolicy, RetryPolicy,
};
use crate::runtime::bindings::spool::workflow::context as wit;

pub(super) fn failure_from_wit(f: wit::Failure) -> Failure {
    Failure {
        kind: match f.kind {
            wit::FailureKind::Application => FailureKind::Application,
            wit::FailureKind::Timeout => FailureKind::Timeout,
            wit::FailureKind::UnknownActivity => FailureKind::UnknownActivity,
            wit::FailureKind::Cancelled => FailureKind::Cancelled,
            wit::FailureKind::Terminated => FailureKind::Terminated,
        },
        error_type: f.error_type,
        message: f.message,
        non_retryable: f.non_retryable,
        details: f.details,
    }
}

fn failure_to_wit(f: Failure) -> wit::Failure {
    wit::Failure {
        kind: match f.kind {
            FailureKind::Application | FailureKind::Sandbox => wit::FailureKind::Application,
            FailureKind::Terminated => wit::FailureKind::Terminated,
            FailureKind::Timeout => wit::FailureKind::Timeout,
            FailureKind::UnknownActivity => wit::FailureKind::UnknownActivity,
            FailureKind::Cancelled => wit::FailureKind::Cancelled,
        },
        error_type: f.error_type,
        message: f.message,
        non_retryable: f.non_retryable,
        details: f.details,
    }
}

fn options_from_wit(o: wit::ActivityOptions) -> ActivityOptions {
    let defaults = ActivityOptions::default();
    ActivityOptions {
        retry: o
            .retry
            .map(|r| RetryPolicy {
                initial_interval_ms: r.initial_interval_ms,
                backoff_coefficient: r.backoff_coefficient,
                maximum_interval_ms: r.maximum_interval_ms,
                maximum_attempts: r.maximum_attempts,
                non_retryable_error_types: r.non_retryable_error_types,
            })
            .unwrap_or(defaults.retry),
        start_to_close_timeout_ms: o
            .start_to_close_timeout_ms
            .unwrap_or(defaults.start_to_close_timeout_ms),
        schedule_to_close_timeout_ms: o.schedule_to_close_timeout_ms,
        schedule_to_start_timeout_ms: o.schedule_to_start_timeout_ms,
        heartbeat_timeout_ms: o.heartbeat_timeout_ms,
        task_queue: o.task_queue,
    }
}

impl wit::Host for RunHost {
    async fn start_activity(
        &mut self,
        name: String,
        input: String,
        options: wit::ActivityOptions,
    ) -> wasmtime::Result<u32> {
        self.check_payload("activity input", &input)?;
        self.issue(Command::ScheduleActivity {
            name,
            input,
            options: options_from_wit(options),
        })
    }

    async fn start_child(
        &mut self,
        workflow_type: String,
        input: String,
        options: wit::ChildOptions,
    ) -> wasmtime::Result<u32> {
        self.check_payload("child workflow input", &input)?;
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&input) {
            return Err(abort(Abort::InvalidPayload(format!(
                "child workflow input is not JSON: {e}"
            ))));
        }
        // The default id names the parent and the handle: the same on every replay.
        let handle = self.state.next_handle();
        let workflow_id = options
            .workflow_id
            .unwrap_or_else(|| format!("{}.child-{handle}", self.run.workflow_id));
        self.issue(Command::StartChild {
            workflow_type: TypeName(workflow_type),
            workflow_id: WorkflowId(workflow_id),
            input,
            parent_close_policy: match options.parent_close_policy {
                wit::ParentClosePolicy::Terminate => ParentClosePolicy::Terminate,
                wit::ParentClosePolicy::RequestCancel => ParentClosePolicy::RequestCancel,
                wit::ParentClosePolicy::Abandon => ParentClosePolicy::Abandon,
            },
        })
    }

    async fn cancel_activity(&mut self, handle: u32) -> wasmtime::Result<()> {
        let handle = Handle(handle);
        if !self.state.is_issued_activity(handle) {
            return Err(abort(ContractViolation::NotAnActivity(handle)));
        }
        // Replayed, or asked twice: the journal holds the request.
        if self.state.cancel_requested(handle) {
            self.meter.produced_replayed();
            return Ok(());
        }
        // Too late: nothing to do.
        if !self.state.awaits_result(handle) {
            return Ok(());
        }
        if self.query.is_none() {
            self.check_room(1).map_err(|m| abort(Abort::Quota(m)))?;
        }
        self.meter.produced_new();
        let requested = EventKind::ActivityCancelRequested { handle };
        let event = self.state.record(requested, self.inner.clock.now_ms());
        self.pending.push(event);
        if self.query.is_none() {
            self.cancel_running_activity(handle);
        }
        Ok(())
    }

    async fn start_timer(&mut self, duration_ms: u64) -> wasmtime::Result<u32> {
        self.issue(Command::StartTimer { duration_ms })
    }

    async fn await_next(
        &mut self,
        handles: Vec<u32>,
        signals: Vec<String>,
    ) -> wasmtime::Result<wit::Event> {
        // The activation ends here, whatever comes next: measured with the fuel the
        // guest had as it called.
        self.meter.end_activation();
        let handles: Vec<Handle> = handles.into_iter().map(Handle).collect();
        self.state.check_await(&handles, &signals).map_err(abort)?;
        loop {
            if let Some(event) = self.state.next_completion(&handles, &signals) {
                self.time.set_ms(self.state.virtual_now_ms());
                self.new_activation = true;
                self.deliveries += 1;
                self.meter.begin_activation();
                // The guest runs again when this returns: it needs the namespace's
                // permit (it still holds it if the event was waiting in the journal).
                self.acquire_permit().await;
                return Ok(match event.kind {
                    EventKind::ActivityCompleted { handle, output, .. } => {
                        wit::Event::ActivityCompleted(wit::ActivityCompleted {
                            handle: handle.0,
                            output,
                        })
                    }
                    EventKind::ActivityFailed {
                        handle, failure, ..
                    } => wit::Event::ActivityFailed(wit::ActivityFailed {
                        handle: handle.0,
                        failure: failure_to_wit(failure),
                    }),
                    EventKind::TimerFired { handle } => wit::Event::TimerFired(handle.0),
                    EventKind::ChildCompleted { handle, output, .. } => {
                        wit::Event::ChildCompleted(wit::ActivityCompleted {
                            handle: handle.0,
                            output,
                        })
                    }
                    EventKind::ChildFailed {
                        handle, failure, ..
                    } => wit::Event::ChildFailed(wit::ActivityFailed {
                        handle: handle.0,
                        failure: failure_to_wit(failure),
                    }),
                    EventKind::SignalReceived { name, input } => {
                        wit::Event::Signal(wit::SignalReceived { name, input })
                    }
                    EventKind::UpdateReceived {
                        update_id,
                        name,
                        input,
                    } => wit::Event::Update(wit::UpdateRequest {
                        id: update_id,
                        name,
                        input,
                        validate_only: false,
                    }),
                    other => unreachable!("next_completion returned {}", other.type_name()),
                });
            }
            // Nothing journaled is left for this wait. A query instance asks its query
            // here (the state is as current as the journal) and stops after the answer.
            if let Some(query) = &mut self.query {
                if query.asked {
                    return Err(abort(Abort::QueryAnswered));
                }
                query.asked = true;
                // The handler gets a fresh budget, like any activation.
                self.new_activation = true;
                return Ok(match query.question.clone() {
                    Question::Query { name, input } => wit::Event::Query(wit::QueryRequest {
                        id: QUERY_ID,
                        name,
                        input,
                    }),
                    Question::ValidateUpdate {
                        update_id,
                        name,
                        input,
                    } => wit::Event::Update(wit::UpdateRequest {
                        id: update_id,
                        name,
                        input,
                        validate_only: true,
                    }),
                });
            }
            // Nothing journaled is left for this wait: the instance is live from here on.
            self.caught_up = true;
            self.previous_deliveries =
                Some(self.previous_deliveries.unwrap_or(0).max(self.deliveries));
            // The guest waits for the host: other runs of the namespace may run.
            self.release_permit();
            if self.should_evict(&handles) {
                self.flush().await.map_err(abort)?;
                return Err(abort(Abort::Evict));
            }
            match self.receive().await.map_err(abort)? {
                Received::Events => {}
                Received::Terminated => return Err(abort(Abort::Terminated)),
                Received::OverQuota(message) => return Err(abort(Abort::Quota(message))),
            }
        }
    }

    async fn continue_as_new(&mut self, input: String) -> wasmtime::Result<()> {
        self.check_payload("continue-as-new input", &input)?;
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&input) {
            return Err(abort(Abort::InvalidPayload(format!(
                "continue-as-new input is not JSON: {e}"
            ))));
        }
        Err(abort(Abort::ContinueAsNew(input)))
    }

    async fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.time.ms())
    }

    async fn random_bytes(&mut self, n: u32) -> wasmtime::Result<Vec<u8>> {
        if n > MAX_RANDOM_BYTES {
            return Err(abort(Abort::Payload(format!(
                "random-bytes({n}) exceeds the limit of {MAX_RANDOM_BYTES}"
            ))));
        }
        let mut bytes = vec![0; n as usize];
        self.random.fill(&mut bytes);
        Ok(bytes)
    }

    async fn respond_query(
        &mut self,
        id: u64,
        answer: Result<String, String>,
    ) -> wasmtime::Result<()> {
        // Outside a query instance (or for another id) there is nobody to answer.
        if let Some(query) = &mut self.query {
            if id == QUERY_ID
                && query.answer.is_none()
                && matches!(query.question, Question::Query { .. })
            {
                query.answer = Some(answer);
            }
        }
        Ok(())
    }

    async fn respond_update(
        &mut self,
        id: String,
        answer: Result<String, String>,
    ) -> wasmtime::Result<()> {
        if let Some(query) = &mut self.query {
            // A throwaway instance journals nothing; it takes only the validation it
            // asked for (answers to journaled updates it replays are old news).
            if let Question::ValidateUpdate { update_id, .. } = &query.question {
                if *update_id == id && query.answer.is_none() {
                    query.answer = Some(answer);
                }
            }
            return Ok(());
        }
        match self.state.update_state(&id) {
            // Replaying an answer the journal holds: nothing to record.
            (_, true) => {
                self.meter.produced_replayed();
                return Ok(());
            }
            // Answering an update that never came: nothing to record.
            (false, _) => return Ok(()),
            (true, false) => {}
        }
        self.check_room(1).map_err(|m| abort(Abort::Quota(m)))?;
        self.meter.produced_new();
        let kind = match answer {
            Ok(output) => {
                self.check_payload("update output", &output)?;
                if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&output) {
                    return Err(abort(Abort::InvalidPayload(format!(
                        "update output is not JSON: {e}"
                    ))));
                }
                EventKind::UpdateCompleted {
                    update_id: id,
                    output,
                }
            }
            Err(message) => EventKind::UpdateFailed {
                update_id: id,
                message: message.chars().take(4_096).collect(),
            },
        };
        let event = self.state.record(kind, self.inner.clock.now_ms());
        self.pending.push(event);
        Ok(())
    }

    async fn log(&mut self, level: wit::LogLevel, message: String) -> wasmtime::Result<()> {
        if self.query.is_some() || self.replaying_output() {
            return Ok(());
        }
        let run = self.run_id();
        let message: String = message.chars().take(4_096).collect();
        match level {
            wit::LogLevel::Trace => tracing::trace!(target: "workflow", %run, "{message}"),
            wit::LogLevel::Debug => tracing::debug!(target: "workflow", %run, "{message}"),
            wit::LogLevel::Info => tracing::info!(target: "workflow", %run, "{message}"),
            wit::LogLevel::Warn => tracing::warn!(target: "workflow", %run, "{message}"),
            wit::LogLevel::Error => tracing::error!(target: "workflow", %run, "{message}"),
        }
        Ok(())
    }

    async fn info(&mut self) -> wasmtime::Result<wit::WorkflowInfo> {
        let start = self.state.start();
        Ok(wit::WorkflowInfo {
            workflow_id: start.workflow_id.0.clone(),
            run_id: self.run.run_id.0.clone(),
            workflow_type: start.workflow_type.0.clone(),
            start_time_ms: start.start_ms,
        })
    }
}
