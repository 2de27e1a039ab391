//! Updates: a request that may change a run's state and answers the caller.
//!
//! An update goes through three steps. The workflow's validator is asked first, in a
//! throwaway replay instance (like a query), so that a rejected update never enters
//! the journal. An accepted update is put in the run's inbox like a signal — durable
//! once the caller has its acknowledgement — and the driver journals it; the workflow
//! gets it at whatever wait it is in, runs the validator again (its state may have
//! changed meanwhile) and the handler, and answers with `respond-update`, which is
//! journaled too. The caller waits for that answer; a caller that gave up can ask again
//! with the same update id and gets the same answer, without a second delivery.

use super::{Engine, EngineError, EngineResult, Question, RESERVED_SIGNAL_PREFIX};
use crate::ids::{validate_name, Namespace, WorkflowId};
use crate::journal::{EventKind, RunStatus};
use std::time::Duration;
use tokio::sync::oneshot;

/// An update as a caller sends it.
#[derive(Clone, Debug)]
pub struct UpdateRequest {
    pub name: String,
    /// JSON.
    pub input: String,
    /// Chosen by the caller to ask again for the same update; generated if `None`.
    pub update_id: Option<String>,
    /// How long to wait for the answer.
    pub wait: Duration,
}

/// Where an accepted update stands.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateOutcome {
    /// The handler's answer (JSON).
    Completed(String),
    /// The handler failed it, or the validator rejected it on delivery.
    Failed(String),
    /// Accepted, and durable, but not answered within the wait: ask again later.
    Pending,
}

impl Engine {
    /// Sends an update to the open run of `workflow_id` and waits for its answer.
    /// Returns the update id with the outcome.
    ///
    /// # Errors
    ///
    /// `UpdateRejected` if the validator refused it (nothing was journaled);
    /// `NotOpen` if the workflow has no open run; `QueryFailed` if the run could not be
    /// replayed to ask the validator.
    pub async fn update(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
        request: UpdateRequest,
    ) -> EngineResult<(String, UpdateOutcome)> {
        validate_name("update name", &request.name).map_err(EngineError::InvalidInput)?;
        if request.name.starts_with(RESERVED_SIGNAL_PREFIX) {
            return Err(EngineError::InvalidInput(format!(
                "update names starting with {RESERVED_SIGNAL_PREFIX:?} are reserved for the host"
            )));
        }
        self.check_payload(namespace, &request.input)?;
        let update_id = match request.update_id {
            Some(id) => {
                validate_name("update id", &id).map_err(EngineError::InvalidInput)?;
                id
            }
            None => format!("upd-{:016x}", rand::random::<u64>()),
        };
        let run = self.describe(namespace, workflow_id).await?;
        if !self
            .already_sent(namespace, workflow_id, &update_id)
            .await?
        {
            if !run.status.is_open() {
                return Err(EngineError::NotOpen(
                    workflow_id.clone(),
                    run.status.as_str(),
                ));
            }
            self.validate(&run, &update_id, &request.name, &request.input)
                .await?;
            let update = EventKind::UpdateReceived {
                update_id: update_id.clone(),
                name: request.name,
                input: request.input,
            };
            self.deliver(namespace, workflow_id, update).await?;
        }
        let outcome = self
            .wait_for_answer(namespace, workflow_id, &update_id, request.wait)
            .await?;
        Ok((update_id, outcome))
    }

    /// Whether an update with this id is already in the journal or inbox of any run of
    /// the workflow id (it may have been carried over by a continue-as-new).
    async fn already_sent(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
        update_id: &str,
    ) -> EngineResult<bool> {
        let journal = &self.inner.journal;
        for run in self.runs_of(namespace, workflow_id).await? {
            let events = journal.events(&run.run_id).await?;
            if events
                .iter()
                .any(|e| e.kind.received_update() == Some(update_id))
            {
                return Ok(true);
            }
            if run.status.is_open() {
                let inbox = journal.inbox(&run.run_id).await?;
                if inbox
                    .iter()
                    .any(|e| e.event.received_update() == Some(update_id))
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Asks the workflow's validator, in a throwaway instance, whether it accepts.
    async fn validate(
        &self,
        run: &crate::journal::RunRecord,
        update_id: &str,
        name: &str,
        input: &str,
    ) -> EngineResult<()> {
        let events = self.inner.journal.events(&run.run_id).await?;
        let question = Question::ValidateUpdate {
            update_id: update_id.to_owned(),
            name: name.to_owned(),
            input: input.to_owned(),
        };
        match super::driver::answer_query(self.inner.clone(), run.clone(), events, question).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(refusal)) => Err(EngineError::UpdateRejected(refusal)),
            Err(super::driver::QueryError::Ended) => {
                Err(EngineError::NotOpen(run.workflow_id.clone(), "ending"))
            }
            Err(e) => Err(EngineError::QueryFailed(e.to_string())),
        }
    }

    /// Waits until the update's answer is journaled, following the workflow id's runs
    /// (an update not handled before a continue-as-new goes to the next run).
    async fn wait_for_answer(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
        update_id: &str,
        wait: Duration,
    ) -> EngineResult<UpdateOutcome> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let newest = self.describe(namespace, workflow_id).await?;
            // Register before looking, so an answer between the look and the wait is
            // not missed.
            let (tx, rx) = oneshot::channel();
            self.inner.add_waiter(&newest.run_id, tx);
            for run in self.runs_of(namespace, workflow_id).await? {
                for event in self.inner.journal.events(&run.run_id).await? {
                    match event.kind {
                        EventKind::UpdateCompleted {
                            update_id: id,
                            output,
                        } if id == update_id => return Ok(UpdateOutcome::Completed(output)),
                        EventKind::UpdateFailed {
                            update_id: id,
                            message,
                        } if id == update_id => return Ok(UpdateOutcome::Failed(message)),
                        _ => {}
                    }
                }
            }
            if !newest.status.is_open() && newest.status != RunStatus::ContinuedAsNew {
                return Ok(UpdateOutcome::Failed(format!(
                    "the workflow's run ended ({}) before it answered the update",
                    newest.status.as_str()
                )));
            }
            if tokio::time::timeout_at(deadline, rx).await.is_err() {
                return Ok(UpdateOutcome::Pending);
            }
        }
    }
}
