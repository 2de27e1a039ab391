//! One activity, from first attempt to final outcome: attempts bounded by their
//! timeouts, retried with backoff per the retry policy, run in the host or handed to a
//! remote worker through a task queue.
//!
//! Timeouts, all measured on the host's clock:
//! - start-to-close bounds one attempt from its start (for a queued attempt, from the
//!   moment a worker takes it);
//! - heartbeat bounds the gap between a queued attempt's heartbeats;
//! - schedule-to-start bounds a queued attempt's wait for a worker (not retried:
//!   another attempt would wait in the same queue);
//! - schedule-to-close bounds the whole activity, backoff included (final).
//!
//! Each failed attempt is recorded in the journal's attempt log, for operators; the log
//! is not part of replay. After a restart the attempt count goes on from the log.

use crate::activity::task_queue::{Report, Task};
use crate::activity::{ActivityExecutor, ActivityQuotas, AttemptContext};
use crate::clock::{Clock, EpochMs};
use crate::ids::{Handle, Namespace, RunId, WorkflowId};
use crate::journal::{ActivityOptions, AttemptRecord, Failure, FailureKind, Journal, Write};

/// Everything an activity's attempts need to know.
pub(super) struct Activity<'a> {
    pub executor: &'a ActivityExecutor,
    pub clock: &'a dyn Clock,
    pub journal: &'a dyn Journal,
    pub namespace: &'a Namespace,
    pub workflow_id: &'a WorkflowId,
    pub run_id: &'a RunId,
    pub handle: Handle,
    pub name: &'a str,
    pub input: &'a str,
    pub options: &'a ActivityOptions,
    /// When the activity was scheduled: the start of its schedule-to-close budget.
    pub scheduled_at_ms: EpochMs,
    /// Attempts made before (by earlier processes); the next one is `previous + 1`.
    pub previous_attempts: u32,
    /// The run's namespace's quotas, for attempts run by the host.
    pub quotas: &'a ActivityQuotas,
    /// The namespace's `max_payload_bytes`: a failure over it, from the host or a
    /// worker, is replaced by one that says so before it is logged or journaled.
    pub max_payload: usize,
}

/// The shortest wait between two attempts, whatever the policy says: a policy of
/// unlimited attempts without delay would otherwise spin, writing a row to the attempt
/// log per turn.
pub const MIN_RETRY_DELAY_MS: u64 = 10;

/// Runs attempts until one succeeds, one fails for good, the policy is exhausted or
/// the schedule-to-close timeout passes. Returns the outcome and the attempts made.
pub(super) async fn run_with_retries(activity: Activity<'_>) -> (Result<String, Failure>, u32) {
    let options = activity.options;
    let clock = activity.clock;
    let whole_deadline = options
        .schedule_to_close_timeout_ms
        .map(|t| activity.scheduled_at_ms.saturating_add(t));
    let whole_timeout = || {
        Failure::new(
            FailureKind::Timeout,
            "schedule_to_close_timeout",
            format!(
                "the activity did not finish within its schedule-to-close timeout of {} ms",
                options.schedule_to_close_timeout_ms.unwrap_or_default()
            ),
        )
        .non_retryable()
    };
    let mut attempt = activity.previous_attempts + 1;
    let mut details = None;
    loop {
        let started_at_ms = clock.now_ms();
        let outcome = tokio::select! {
            outcome = one_attempt(&activity, attempt, &mut details) => outcome,
            () = sleep_until(clock, whole_deadline) => Err(whole_timeout()),
        };
        let failure = match outcome {
            Ok(output) => return (Ok(output), attempt),
            Err(failure) => failure.bounded("the activity", activity.max_payload),
        };
        record_attempt(&activity, attempt, started_at_ms, &failure).await;
        if options.retry.is_final(&failure) {
            return (Err(failure), attempt);
        }
        let Some(delay_ms) = options.retry.delay_before(attempt + 1) else {
            return (Err(failure), attempt);
        };
        let delay_ms = delay_ms.max(MIN_RETRY_DELAY_MS);
        let retry_at = clock.now_ms().saturating_add(delay_ms);
        if whole_deadline.is_some_and(|d| retry_at >= d) {
            // The next attempt could not start in time: say so, with the last error.
            let mut timeout = whole_timeout();
            timeout.message = format!("{} (last attempt: {})", timeout.message, failure.message);
            return (Err(timeout), attempt);
        }
        tracing::debug!(activity = activity.name, attempt, delay_ms, error = %failure.message, "activity attempt failed; retrying");
        clock.sleep_until(retry_at).await;
        attempt += 1;
    }
}

/// One attempt, in the host or on a worker. `details` carries the last heartbeat's
/// details from attempt to attempt.
async fn one_attempt(
    activity: &Activity<'_>,
    attempt: u32,
    details: &mut Option<String>,
) -> Result<String, Failure> {
    let options = activity.options;
    match &options.task_queue {
        Some(queue) => remote_attempt(activity, queue, attempt, details).await,
        None => local_attempt(activity, attempt, details).await,
    }
}

/// An attempt run by the host: a built-in, or an activity component (which may
/// heartbeat through its `heartbeat` import).
async fn local_attempt(
    activity: &Activity<'_>,
    attempt: u32,
    details: &mut Option<String>,
) -> Result<String, Failure> {
    let (options, clock) = (activity.options, activity.clock);
    let (heartbeats, mut beats) = tokio::sync::mpsc::unbounded_channel();
    let context = AttemptContext {
        attempt,
        heartbeat_details: details.clone(),
        heartbeats: Some(heartbeats),
    };
    let execute = activity.executor.execute(
        activity.namespace,
        activity.name,
        activity.input,
        context,
        activity.quotas,
    );
    tokio::pin!(execute);
    let close_deadline = clock
        .now_ms()
        .saturating_add(options.start_to_close_timeout_ms);
    // Built-ins cannot heartbeat: a heartbeat timeout binds activity components only.
    let heartbeat_due = |now: EpochMs| {
        options
            .heartbeat_timeout_ms
            .filter(|_| !crate::activity::is_builtin(activity.name))
            .map(|t| now.saturating_add(t))
    };
    let mut heartbeat_deadline = heartbeat_due(clock.now_ms());
    loop {
        tokio::select! {
            outcome = &mut execute => {
                // Heartbeats sent just before the end are still in the channel.
                while let Ok(new_details) = beats.try_recv() {
                    if new_details.is_some() {
                        *details = new_details;
                    }
                }
                return outcome;
            }
            Some(new_details) = beats.recv() => {
                if new_details.is_some() {
                    *details = new_details;
                }
                heartbeat_deadline = heartbeat_due(clock.now_ms());
            }
            () = clock.sleep_until(close_deadline) => {
                return Err(start_to_close_timeout(attempt, options));
            }
            () = sleep_until(clock, heartbeat_deadline) => return Err(heartbeat_timeout(attempt, options)),
        }
    }
}

/// An attempt handed to a worker of `queue`: queued, taken, heartbeated, reported.
async fn remote_attempt(
    activity: &Activity<'_>,
    queue: &str,
    attempt: u32,
    details: &mut Option<String>,
) -> Result<String, Failure> {
    let options = activity.options;
    let queues = activity.executor.task_queues();
    let task = Task {
        task_token: String::new(),
        activity: activity.name.to_owned(),
        input: activity.input.to_owned(),
        attempt,
        heartbeat_details: details.clone(),
        workflow_id: activity.workflow_id.0.clone(),
        run_id: activity.run_id.0.clone(),
        activity_handle: activity.handle.0,
        heartbeat_timeout_ms: options.heartbeat_timeout_ms,
        start_to_close_timeout_ms: options.start_to_close_timeout_ms,
    };
    let mut dispatched = queues.dispatch(activity.namespace, queue, task);
    let mut lease = Lease {
        queues,
        token: dispatched.token.clone(),
        ended: false,
    };
    let outcome = follow(activity, queue, attempt, details, &mut dispatched).await;
    lease.ended = true;
    outcome
}

/// Waits for a worker to take the attempt, then for its heartbeats and report, within
/// the attempt's timeouts.
async fn follow(
    activity: &Activity<'_>,
    queue: &str,
    attempt: u32,
    details: &mut Option<String>,
    dispatched: &mut crate::activity::task_queue::Dispatched,
) -> Result<String, Failure> {
    let (options, clock) = (activity.options, activity.clock);

    let start_deadline = options
        .schedule_to_start_timeout_ms
        .map(|t| clock.now_ms().saturating_add(t));
    tokio::select! {
        report = dispatched.reports.recv() => match report {
            Some(Report::Started) => {}
            other => return Err(lost(other)),
        },
        () = sleep_until(clock, start_deadline) => {
            return Err(Failure::new(
                FailureKind::Timeout,
                "schedule_to_start_timeout",
                format!(
                    "no worker of task queue {queue:?} took attempt {attempt} within {} ms",
                    options.schedule_to_start_timeout_ms.unwrap_or_default()
                ),
            )
            .non_retryable());
        }
    }

    let close_deadline = clock
        .now_ms()
        .saturating_add(options.start_to_close_timeout_ms);
    let heartbeat_due = |now: EpochMs| options.heartbeat_timeout_ms.map(|t| now.saturating_add(t));
    let mut heartbeat_deadline = heartbeat_due(clock.now_ms());
    loop {
        tokio::select! {
            report = dispatched.reports.recv() => match report {
                Some(Report::Heartbeat(new_details)) => {
                    if new_details.is_some() {
                        *details = new_details;
                    }
                    heartbeat_deadline = heartbeat_due(clock.now_ms());
                }
                Some(Report::Completed(output)) => return Ok(output),
                Some(Report::Failed(failure)) => return Err(failure),
                other => return Err(lost(other)),
            },
            () = clock.sleep_until(close_deadline) => {
                return Err(start_to_close_timeout(attempt, options));
            }
            () = sleep_until(clock, heartbeat_deadline) => return Err(heartbeat_timeout(attempt, options)),
        }
    }
}

fn heartbeat_timeout(attempt: u32, options: &ActivityOptions) -> Failure {
    Failure::new(
        FailureKind::Timeout,
        "heartbeat_timeout",
        format!(
            "attempt {attempt} sent no heartbeat for {} ms; it is presumed dead",
            options.heartbeat_timeout_ms.unwrap_or_default()
        ),
    )
}

fn start_to_close_timeout(attempt: u32, options: &ActivityOptions) -> Failure {
    Failure::new(
        FailureKind::Timeout,
        "start_to_close_timeout",
        format!(
            "attempt {attempt} did not finish within {} ms",
            options.start_to_close_timeout_ms
        ),
    )
}

/// A report stream that ended or said something out of turn: only a bug gets here.
fn lost(report: Option<Report>) -> Failure {
    Failure::new(
        FailureKind::Application,
        "task_lost",
        format!("the task queue lost the attempt (last report: {report:?})"),
    )
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(clock: &dyn Clock, deadline: Option<EpochMs>) {
    match deadline {
        Some(deadline) => clock.sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The worker's token dies with the attempt. An attempt that ended (a report, a
/// timeout) revokes it: a late report is refused. One dropped before its end (the
/// workflow cancelled the activity, or the run closed) cancels it: its worker hears
/// `cancel_requested` on its next heartbeat.
struct Lease<'a> {
    queues: &'a crate::activity::task_queue::TaskQueues,
    token: String,
    ended: bool,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.ended {
            self.queues.revoke(&self.token);
        } else {
            self.queues.cancel(&self.token);
        }
    }
}

/// Puts a failed attempt in the journal's attempt log. Not awaited: the log is for
/// people, and the outcome does not wait for it.
async fn record_attempt(
    activity: &Activity<'_>,
    attempt: u32,
    started_at_ms: EpochMs,
    failure: &Failure,
) {
    let record = AttemptRecord {
        run_id: activity.run_id.clone(),
        handle: activity.handle,
        attempt,
        started_at_ms,
        ended_at_ms: activity.clock.now_ms(),
        failure: failure.clone(),
    };
    drop(activity.journal.submit(Write::RecordAttempt(record)).await);
}

#[cfg(test)]
mod tests {
    //! The retry and timeout rules on an injected clock: every attempt of an
    //! `http.request` to a closed port fails at once (a retryable transport error), so
    //! the attempt log's start times are exactly the policy's schedule.

    use super::*;
    use crate::activity::{HttpAllowList, Secrets};
    use crate::clock::ManualClock;
    use crate::journal::sqlite::SqliteJournal;
    use crate::journal::RetryPolicy;
    use crate::runtime::{Runtime, SandboxLimits};
    use std::sync::Arc;
    use std::time::Duration;

    const T0: EpochMs = 1_800_000_000_000;

    struct Fixture {
        journal: Arc<SqliteJournal>,
        executor: ActivityExecutor,
        clock: ManualClock,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(SqliteJournal::open(dir.path().join("j.db")).unwrap());
        let runtime = Runtime::new(SandboxLimits::default(), None).unwrap();
        let executor = ActivityExecutor::new(
            journal.clone(),
            runtime,
            HttpAllowList::any(),
            Secrets::default(),
            1 << 20,
        )
        .unwrap();
        Fixture {
            journal,
            executor,
            clock: ManualClock::new(T0),
            _dir: dir,
        }
    }

    /// An `http.request` input whose every attempt fails at once.
    fn unreachable() -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        serde_json::json!({ "url": format!("http://127.0.0.1:{port}/") }).to_string()
    }

    fn policy(maximum_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            initial_interval_ms: 100,
            backoff_coefficient: 2.0,
            maximum_interval_ms: 300,
            maximum_attempts,
            non_retryable_error_types: Vec::new(),
        }
    }

    /// Runs the activity with `options`, moving the clock to the deadline the activity
    /// sleeps for whenever a failed attempt has been logged and it waits for its next
    /// one (its only sleep then), and returns the outcome, the attempts made, and the
    /// logged attempts' start times relative to T0.
    async fn run(
        fixture: &Fixture,
        options: ActivityOptions,
    ) -> (Result<String, Failure>, u32, Vec<u64>) {
        let run_id = RunId("run-1".into());
        let input = unreachable();
        let activity = Activity {
            executor: &fixture.executor,
            clock: &fixture.clock,
            journal: &*fixture.journal,
            namespace: &Namespace::default_namespace(),
            workflow_id: &WorkflowId("w".into()),
            run_id: &run_id,
            handle: Handle(1),
            name: "http.request",
            input: &input,
            options: &options,
            scheduled_at_ms: T0,
            previous_attempts: 0,
            quotas: &ActivityQuotas::default(),
            max_payload: 1 << 20,
        };
        let outcome = run_with_retries(activity);
        tokio::pin!(outcome);
        let mut seen = 0;
        let (result, attempts) = loop {
            tokio::select! {
                done = &mut outcome => break done,
                () = tokio::time::sleep(Duration::from_millis(5)) => {
                    let logged = fixture.journal.attempts(&run_id).await.unwrap().len();
                    if let [backoff] = fixture.clock.sleeping()[..] {
                        if logged > seen {
                            seen = logged;
                            fixture.clock.advance_to(backoff);
                        }
                    }
                }
            }
        };
        // The log is written without waiting for the commit: let the last one land.
        let mut logged = Vec::new();
        for _ in 0..400 {
            logged = fixture.journal.attempts(&run_id).await.unwrap();
            if logged.len() == attempts as usize {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let starts = logged.iter().map(|a| a.started_at_ms - T0).collect();
        (result, attempts, starts)
    }

    #[tokio::test]
    async fn attempts_follow_the_backoff_schedule_up_to_the_maximum_interval_and_count() {
        let fixture = fixture();
        let options = ActivityOptions {
            retry: policy(5),
            ..ActivityOptions::default()
        };
        let (result, attempts, starts) = run(&fixture, options).await;
        assert_eq!(attempts, 5);
        assert_eq!(result.unwrap_err().error_type, "http_transport");
        assert_eq!(starts.len(), 5);
        assert_eq!(starts[0], 0);
        let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        // min(100 * 2^(n-1), 300): the interval doubles until the cap.
        assert_eq!(gaps, [100, 200, 300, 300]);
    }

    #[tokio::test]
    async fn a_policy_without_delay_still_waits_the_minimum_between_attempts() {
        let fixture = fixture();
        let mut retry = policy(4);
        (retry.initial_interval_ms, retry.maximum_interval_ms) = (0, 0);
        let options = ActivityOptions {
            retry,
            ..ActivityOptions::default()
        };
        let (_, attempts, starts) = run(&fixture, options).await;
        assert_eq!(attempts, 4);
        let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps, [MIN_RETRY_DELAY_MS; 3]);
    }

    #[tokio::test]
    async fn a_non_retryable_error_type_ends_the_activity_after_one_attempt() {
        let fixture = fixture();
        let mut retry = policy(5);
        retry.non_retryable_error_types = vec!["http_transport".into()];
        let options = ActivityOptions {
            retry,
            ..ActivityOptions::default()
        };
        let (result, attempts, starts) = run(&fixture, options).await;
        assert_eq!(attempts, 1);
        assert_eq!(result.unwrap_err().error_type, "http_transport");
        assert_eq!(starts, [0]);
    }

    #[tokio::test]
    async fn the_schedule_to_close_timeout_bounds_all_attempts_together() {
        let fixture = fixture();
        let options = ActivityOptions {
            // Unlimited attempts: only the schedule-to-close budget stops them.
            retry: policy(0),
            schedule_to_close_timeout_ms: Some(650),
            ..ActivityOptions::default()
        };
        let (result, attempts, starts) = run(&fixture, options).await;
        let failure = result.unwrap_err();
        assert_eq!(failure.error_type, "schedule_to_close_timeout");
        assert_eq!(failure.kind, FailureKind::Timeout);
        assert!(
            failure.message.contains("http_transport")
                || failure.message.contains("request failed")
        );
        // Attempts at 0, 100, 300, 600; the next would start at 900, past 650.
        assert_eq!(starts, [0, 100, 300, 600]);
        assert_eq!(attempts, 4);
    }
}
