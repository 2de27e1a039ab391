//! Task queues: activity attempts handed to remote workers over the HTTP API.
//!
//! An activity whose options name a task queue is not run by the host. Each attempt is
//! queued here; a worker long-polls the queue, takes the attempt under a task token,
//! heartbeats while it works and reports the outcome. The attempt's timeouts
//! (schedule-to-start, start-to-close, heartbeat) are enforced by the engine's attempt
//! loop, which revokes the token when one passes, so a late report from a slow or
//! presumed-dead worker is refused rather than recorded.
//!
//! The queues live in memory: an attempt is an effect of an `activity_scheduled` event
//! without a result, and the engine starts such effects again when it resumes a run,
//! so after a restart every unfinished attempt is queued anew (the at-least-once
//! promise of activities). Tokens handed out before a restart are unknown after it.

use crate::ids::Namespace;
use crate::journal::Failure;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// What a worker gets when it takes an attempt.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Task {
    /// Names this attempt in heartbeats and reports; valid until the attempt ends.
    pub task_token: String,
    /// The activity name the workflow gave; tells the worker what to do.
    pub activity: String,
    /// JSON.
    pub input: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The details of the previous attempt's last heartbeat (JSON), for resuming work.
    pub heartbeat_details: Option<String>,
    pub workflow_id: String,
    pub run_id: String,
    /// The activity's handle in its run: with the run id, names the activity.
    pub activity_handle: u32,
    /// Heartbeat at least this often, if set.
    pub heartbeat_timeout_ms: Option<u64>,
    pub start_to_close_timeout_ms: u64,
}

/// What a worker tells the attempt waiting for it.
#[derive(Debug)]
pub enum Report {
    /// A worker took the attempt.
    Started,
    /// The worker is alive; details (JSON) to hand to a later attempt, if any.
    Heartbeat(Option<String>),
    Completed(String),
    Failed(Failure),
}

/// Why a worker's call about a task was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TaskError {
    #[error("no task with this token: it was completed, timed out or cancelled, or the server restarted (the attempt is retried per its policy)")]
    UnknownToken,
}

/// The answer to a heartbeat.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct HeartbeatAck {
    /// The workflow cancelled the activity: stop, and report the failure.
    pub cancel_requested: bool,
}

struct Queued {
    task: Task,
    reports: mpsc::UnboundedSender<Report>,
    cancel: Arc<AtomicBool>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Queued>,
    /// Wakes long-polling workers when an attempt is queued.
    arrived: Arc<Notify>,
}

/// A taken attempt: where its reports go.
struct Lease {
    /// Only workers of this namespace may report on the lease; to others the token is
    /// unknown.
    namespace: Namespace,
    reports: mpsc::UnboundedSender<Report>,
    cancel: Arc<AtomicBool>,
    /// Set when the attempt was cancelled: the lease stays a while so that the worker
    /// hears "cancel" on its next heartbeat rather than "unknown task".
    cancelled_at: Option<std::time::Instant>,
}

/// How long a cancelled attempt's lease keeps answering its worker.
const CANCELLED_LEASE_GRACE: Duration = Duration::from_secs(600);

/// The attempt's side of a queued task: reports arrive on `reports`; dropping it (or
/// calling [`TaskQueues::revoke`]) refuses further reports.
pub struct Dispatched {
    pub token: String,
    pub reports: mpsc::UnboundedReceiver<Report>,
}

#[derive(Default)]
pub struct TaskQueues {
    queues: Mutex<HashMap<(Namespace, String), Queue>>,
    leases: Mutex<HashMap<String, Lease>>,
}

/// Bound on one long poll.
pub const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

impl TaskQueues {
    /// Queues an attempt for workers of `queue`.
    pub fn dispatch(&self, namespace: &Namespace, queue: &str, mut task: Task) -> Dispatched {
        let token = format!("tt-{:032x}", rand::random::<u128>());
        task.task_token = token.clone();
        let (reports, receiver) = mpsc::unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let queued = Queued {
            task,
            reports,
            cancel: cancel.clone(),
        };
        if let Ok(mut queues) = self.queues.lock() {
            let entry = queues
                .entry((namespace.clone(), queue.to_owned()))
                .or_default();
            entry.waiting.push_back(queued);
            entry.arrived.notify_one();
        }
        Dispatched {
            token,
            reports: receiver,
        }
    }

    /// Takes the oldest attempt waiting in `queue`, waiting up to `wait` for one.
    pub async fn poll(&self, namespace: &Namespace, queue: &str, wait: Duration) -> Option<Task> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_POLL_WAIT);
        loop {
            let arrived = {
                let mut queues = self.queues.lock().ok()?;
                let entry = queues
                    .entry((namespace.clone(), queue.to_owned()))
                    .or_default();
                while let Some(queued) = entry.waiting.pop_front() {
                    // An attempt that timed out or was revoked while queued is gone.
                    if queued.reports.send(Report::Started).is_err() {
                        continue;
                    }
                    let lease = Lease {
                        namespace: namespace.clone(),
                        reports: queued.reports,
                        cancel: queued.cancel,
                        cancelled_at: None,
                    };
                    if let Ok(mut leases) = self.leases.lock() {
                        leases.insert(queued.task.task_token.clone(), lease);
                    }
                    return Some(queued.task);
                }
                entry.arrived.clone()
            };
            // Several pollers may wait on one queue: each queued attempt wakes one, and
            // one that finds the queue empty again goes back to waiting.
            if tokio::time::timeout_at(deadline, arrived.notified())
                .await
                .is_err()
            {
                drop(arrived);
                self.forget_if_idle(namespace, queue);
                return None;
            }
        }
    }

    /// Drops the entry of a queue that holds no attempt and no waiting poller, so that
    /// polling made-up queue names leaves nothing behind.
    fn forget_if_idle(&self, namespace: &Namespace, queue: &str) {
        if let Ok(mut queues) = self.queues.lock() {
            let key = (namespace.clone(), queue.to_owned());
            let idle = queues.get(&key).is_some_and(|entry| {
                entry.waiting.is_empty() && Arc::strong_count(&entry.arrived) == 1
            });
            if idle {
                queues.remove(&key);
            }
        }
    }

    /// How many queues have an entry (attempts or pollers); for tests.
    #[cfg(test)]
    fn known_queues(&self) -> usize {
        self.queues.lock().map_or(0, |queues| queues.len())
    }

    /// Records a heartbeat of the attempt holding `token`.
    pub fn heartbeat(
        &self,
        namespace: &Namespace,
        token: &str,
        details: Option<String>,
    ) -> Result<HeartbeatAck, TaskError> {
        let leases = self.leases.lock().map_err(|_| TaskError::UnknownToken)?;
        let lease = leases
            .get(token)
            .filter(|lease| &lease.namespace == namespace)
            .ok_or(TaskError::UnknownToken)?;
        let cancel_requested = lease.cancel.load(Ordering::Relaxed);
        if lease.reports.send(Report::Heartbeat(details)).is_err() && !cancel_requested {
            return Err(TaskError::UnknownToken);
        }
        Ok(HeartbeatAck { cancel_requested })
    }

    /// Reports the attempt's outcome; the token is spent.
    pub fn finish(
        &self,
        namespace: &Namespace,
        token: &str,
        outcome: Result<String, Failure>,
    ) -> Result<(), TaskError> {
        let lease = self
            .leases
            .lock()
            .ok()
            .and_then(|mut leases| {
                let ours = leases.get(token)?.namespace == *namespace;
                ours.then(|| leases.remove(token)).flatten()
            })
            .ok_or(TaskError::UnknownToken)?;
        let report = match outcome {
            Ok(output) => Report::Completed(output),
            Err(failure) => Report::Failed(failure),
        };
        // A cancelled attempt's worker reporting back is doing as asked.
        let cancelled = lease.cancelled_at.is_some();
        match lease.reports.send(report) {
            Err(_) if !cancelled => Err(TaskError::UnknownToken),
            _ => Ok(()),
        }
    }

    /// Withdraws the attempt because it was cancelled: a queued attempt is never
    /// handed out, and the worker holding a taken one hears `cancel_requested` on its
    /// next heartbeat (for a while; then the token is forgotten).
    pub fn cancel(&self, token: &str) {
        let Ok(mut leases) = self.leases.lock() else {
            return;
        };
        let now = std::time::Instant::now();
        leases.retain(|_, lease| {
            lease
                .cancelled_at
                .is_none_or(|at| now.duration_since(at) < CANCELLED_LEASE_GRACE)
        });
        if let Some(lease) = leases.get_mut(token) {
            lease.cancel.store(true, Ordering::Relaxed);
            lease.cancelled_at = Some(now);
        }
    }

    /// Forgets the attempt: reports on its token are refused from now on. Queued
    /// attempts are skipped by pollers once their receiver is dropped.
    pub fn revoke(&self, token: &str) {
        if let Ok(mut leases) = self.leases.lock() {
            leases.remove(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(activity: &str) -> Task {
        Task {
            task_token: String::new(),
            activity: activity.into(),
            input: "null".into(),
            attempt: 1,
            heartbeat_details: None,
            workflow_id: "w".into(),
            run_id: "r".into(),
            activity_handle: 1,
            heartbeat_timeout_ms: None,
            start_to_close_timeout_ms: 1_000,
        }
    }

    #[tokio::test]
    async fn polling_made_up_queues_leaves_nothing_behind_and_a_waiting_poller_is_kept() {
        let queues = Arc::new(TaskQueues::default());
        let ns = Namespace("default".into());
        for i in 0..100 {
            assert!(queues
                .poll(&ns, &format!("q{i}"), Duration::ZERO)
                .await
                .is_none());
        }
        assert_eq!(queues.known_queues(), 0);

        // One poller gives up while another still waits: the queue stays, and an
        // attempt queued then reaches the waiting one.
        let patient = {
            let (queues, ns) = (queues.clone(), ns.clone());
            tokio::spawn(async move { queues.poll(&ns, "shared", Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(queues
            .poll(&ns, "shared", Duration::from_millis(10))
            .await
            .is_none());
        assert_eq!(queues.known_queues(), 1);
        let _dispatched = queues.dispatch(&ns, "shared", task("a"));
        let taken = patient
            .await
            .unwrap()
            .expect("the waiting poller gets the attempt");
        assert_eq!(taken.activity, "a");
    }

    #[tokio::test]
    async fn a_worker_takes_the_oldest_task_and_its_reports_reach_the_attempt() {
        let queues = TaskQueues::default();
        let ns = Namespace("default".into());
        let mut first = queues.dispatch(&ns, "q", task("a"));
        let _second = queues.dispatch(&ns, "q", task("b"));
        let taken = queues.poll(&ns, "q", Duration::ZERO).await.unwrap();
        assert_eq!(taken.activity, "a");
        assert_eq!(taken.task_token, first.token);
        assert!(matches!(first.reports.recv().await, Some(Report::Started)));
        // Another namespace's worker cannot touch the attempt, and does not spend it.
        let other = Namespace("other".into());
        assert_eq!(
            queues.heartbeat(&other, &first.token, None).unwrap_err(),
            TaskError::UnknownToken
        );
        assert_eq!(
            queues.finish(&other, &first.token, Ok("stolen".into())),
            Err(TaskError::UnknownToken)
        );
        let ack = queues
            .heartbeat(&ns, &first.token, Some("7".into()))
            .unwrap();
        assert!(!ack.cancel_requested);
        queues.finish(&ns, &first.token, Ok("42".into())).unwrap();
        assert!(matches!(first.reports.recv().await, Some(Report::Heartbeat(Some(d))) if d == "7"));
        assert!(matches!(first.reports.recv().await, Some(Report::Completed(o)) if o == "42"));
        assert_eq!(
            queues.finish(&ns, &first.token, Ok("again".into())),
            Err(TaskError::UnknownToken),
            "a token is spent once"
        );
    }

    #[tokio::test]
    async fn revoked_and_abandoned_attempts_are_not_handed_out() {
        let queues = TaskQueues::default();
        let ns = Namespace("default".into());
        let dropped = queues.dispatch(&ns, "q", task("gone"));
        drop(dropped);
        let kept = queues.dispatch(&ns, "q", task("kept"));
        let taken = queues.poll(&ns, "q", Duration::ZERO).await.unwrap();
        assert_eq!(taken.activity, "kept");
        queues.revoke(&kept.token);
        assert_eq!(
            queues.heartbeat(&ns, &kept.token, None).unwrap_err(),
            TaskError::UnknownToken
        );
        assert!(queues
            .poll(&ns, "q", Duration::from_millis(10))
            .await
            .is_none());
    }

    #[tokio::test]
    async fn the_worker_of_a_cancelled_attempt_hears_it_and_may_report_back() {
        let queues = TaskQueues::default();
        let ns = Namespace("default".into());
        let dispatched = queues.dispatch(&ns, "q", task("long"));
        let taken = queues.poll(&ns, "q", Duration::ZERO).await.unwrap();
        // The attempt is cancelled: its side goes away, the worker is told.
        queues.cancel(&taken.task_token);
        drop(dispatched);
        assert!(
            queues
                .heartbeat(&ns, &taken.task_token, None)
                .unwrap()
                .cancel_requested
        );
        let stopped = Failure::new(crate::journal::FailureKind::Cancelled, "cancelled", "ok");
        assert_eq!(queues.finish(&ns, &taken.task_token, Err(stopped)), Ok(()));
        assert_eq!(
            queues.heartbeat(&ns, &taken.task_token, None).unwrap_err(),
            TaskError::UnknownToken,
            "the report spent the token"
        );
    }

    #[tokio::test]
    async fn a_long_poll_wakes_when_a_task_arrives() {
        let queues = Arc::new(TaskQueues::default());
        let ns = Namespace("default".into());
        let poller = {
            let (queues, ns) = (queues.clone(), ns.clone());
            tokio::spawn(async move { queues.poll(&ns, "q", Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _dispatched = queues.dispatch(&ns, "q", task("late"));
        let taken = poller.await.unwrap().unwrap();
        assert_eq!(taken.activity, "late");
    }
}
