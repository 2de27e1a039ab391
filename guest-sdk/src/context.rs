//! [`Context`]: the workflow's only door to the outside world.
//!
//! Everything here calls one import of `spool:workflow/context`, whose answers the host
//! journals, so a workflow that learns the outside world only through its `Context`
//! makes the same decisions on every replay.

use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::__bindings::spool::workflow::context as wit;
use crate::cancel::Cancellation;
use crate::retry::duration_to_ms;
use crate::signal::Handlers;
use crate::{ActivityError, ActivityHandle, RetryPolicy, TimerHandle, WorkflowError};

/// The workflow's handle on the host: activities, timers, signals, queries, time,
/// randomness, logging, continue-as-new.
///
/// The SDK creates one per run and passes it to the workflow function; it cannot be
/// built by hand.
///
/// ```no_run
/// use std::time::Duration;
/// use spool_sdk::{Context, WorkflowError};
///
/// fn remind(ctx: &Context, user: String) -> Result<(), WorkflowError> {
///     ctx.sleep(Duration::from_secs(24 * 3600))?;
///     ctx.activity("email.send").input(&user).call::<()>()?;
///     ctx.log_info(format!("reminded {user}"));
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Context {
    /// The handlers registered with [`Context::on_signal`].
    pub(crate) signals: Handlers,
    /// Whether the cancel request has arrived; shared with every handle made here.
    pub(crate) cancel: Rc<Cancellation>,
}

impl Context {
    /// The context of a new run, which starts with no query handlers.
    pub(crate) fn new() -> Self {
        crate::query::clear();
        crate::update::clear();
        Context {
            signals: Handlers::default(),
            cancel: Rc::default(),
        }
    }

    /// Prepares a call to the activity `name`: a built-in such as `"spool.echo"` or
    /// `"http.request"`, or an uploaded activity component.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) -> Result<(), spool_sdk::ActivityError> {
    /// let echoed: String = ctx.activity("spool.echo").input(&"hello").call()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn activity(&self, name: impl Into<String>) -> ActivityBuilder {
        ActivityBuilder {
            name: name.into(),
            input: Ok("null".to_owned()),
            retry: None,
            start_to_close: None,
            schedule_to_close: None,
            schedule_to_start: None,
            heartbeat: None,
            task_queue: None,
            cancel: Rc::clone(&self.cancel),
        }
    }

    /// Starts a durable timer that fires after `duration` of virtual time, and returns
    /// at once. Millisecond resolution, rounded up.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # fn f(ctx: &spool_sdk::Context) -> Result<(), spool_sdk::WorkflowError> {
    /// let deadline = ctx.timer(Duration::from_secs(30));
    /// // ... start other work ...
    /// deadline.wait()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn timer(&self, duration: Duration) -> TimerHandle {
        let handle = wit::start_timer(duration_to_ms(duration));
        TimerHandle::pending(handle, Rc::clone(&self.cancel))
    }

    /// Sleeps durably for `duration` of virtual time: a crash in between does not
    /// shorten or restart the sleep. Millisecond resolution, rounded up.
    ///
    /// # Errors
    ///
    /// If the workflow's cancel request arrives during the sleep: a [`WorkflowError`]
    /// of kind [`Cancelled`](crate::FailureKind::Cancelled) (type `"cancelled"`, the
    /// reason as message). `?` ends the run as cancelled; or clean up first and then
    /// return the error (see the crate docs, "Cancellation").
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # fn f(ctx: &spool_sdk::Context) -> Result<(), spool_sdk::WorkflowError> {
    /// ctx.sleep(Duration::from_secs(7 * 24 * 3600))?; // a week, survives restarts
    /// # Ok(())
    /// # }
    /// ```
    pub fn sleep(&self, duration: Duration) -> Result<(), WorkflowError> {
        self.timer(duration).wait()
    }

    /// The current virtual time: when the newest event the workflow has seen was
    /// recorded. Use this, not the wall clock, for anything that decides control flow.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// let started = ctx.now();
    /// # }
    /// ```
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_ms())
    }

    /// [`now`](Context::now) as milliseconds since the Unix epoch.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// let stamp = ctx.now_ms();
    /// # }
    /// ```
    pub fn now_ms(&self) -> u64 {
        wit::now_ms()
    }

    /// A random `u64` from the run's seeded generator: the same on every replay.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// let coupon = format!("C-{:016x}", ctx.random_u64());
    /// # }
    /// ```
    pub fn random_u64(&self) -> u64 {
        let bytes = wit::random_bytes(8);
        let bytes: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .expect("host returned the 8 random bytes asked for");
        u64::from_le_bytes(bytes)
    }

    /// `n` random bytes from the run's seeded generator: the same on every replay.
    ///
    /// # Panics
    ///
    /// If `n` exceeds `u32::MAX`.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// let token = ctx.random_bytes(16);
    /// assert_eq!(token.len(), 16);
    /// # }
    /// ```
    pub fn random_bytes(&self, n: usize) -> Vec<u8> {
        let n = u32::try_from(n).expect("at most u32::MAX random bytes per call");
        wit::random_bytes(n)
    }

    /// Ends this run and starts a new run of the same workflow (same id, same type, the
    /// type's current module) on `input`, with an empty history. Does not return.
    ///
    /// Every command a run issues stays in its journal, and the host replays the whole
    /// journal whenever it rebuilds the run, so a workflow that loops forever would
    /// replay ever longer. Continuing as new keeps each run short: do a bounded amount
    /// of work, then hand the state the next run needs (a cursor, a counter) over as
    /// its input. The new run has a run id of its own; the workflow id stays.
    ///
    /// Signals this run received but did not consume (no wait took them) go to the new
    /// run, in their order, so no signal is lost at the seam. Nothing else carries
    /// over: the new run runs the workflow function from the top, with no signal or
    /// query handlers until it registers them, and cannot wait on the activities and
    /// timers this run started. State the next run needs goes in `input`.
    ///
    /// The type is `!`, so a workflow can end with it wherever it could `return`,
    /// whatever its output type.
    ///
    /// # Panics
    ///
    /// If `input` does not serialize as JSON (say, a map with non-string keys): the
    /// panic traps and the host fails the run. The input is usually a plain struct,
    /// for which serializing cannot fail.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use serde::{Deserialize, Serialize};
    /// use spool_sdk::{Context, WorkflowError};
    ///
    /// /// Where the previous run stopped; `{}` starts from the beginning.
    /// #[derive(Serialize, Deserialize, Default)]
    /// struct Cursor {
    ///     #[serde(default)]
    ///     after: Option<String>,
    /// }
    ///
    /// #[derive(Deserialize)]
    /// struct Batch {
    ///     /// The last item handled, `None` when there was nothing new.
    ///     last: Option<String>,
    /// }
    ///
    /// /// Runs forever, one batch per run: each run's history stays short.
    /// fn sync_feed(ctx: &Context, cursor: Cursor) -> Result<(), WorkflowError> {
    ///     let batch: Batch = ctx.activity("feed.sync").input(&cursor).call()?;
    ///     ctx.sleep(Duration::from_secs(60))?;
    ///     let next = Cursor { after: batch.last.or(cursor.after) };
    ///     ctx.continue_as_new(&next)
    /// }
    ///
    /// spool_sdk::workflow!(sync_feed);
    /// # fn main() {}
    /// ```
    pub fn continue_as_new<T: Serialize + ?Sized>(&self, input: &T) -> ! {
        continue_with(input, wit::continue_as_new)
    }

    /// Facts about this run: ids, workflow type and start time.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// let info = ctx.info();
    /// ctx.log_info(format!("run {} of {}", info.run_id, info.workflow_id));
    /// # }
    /// ```
    pub fn info(&self) -> WorkflowInfo {
        let info = wit::info();
        WorkflowInfo {
            workflow_id: info.workflow_id,
            run_id: info.run_id,
            workflow_type: info.workflow_type,
            start_time_ms: info.start_time_ms,
        }
    }

    /// Writes to the workflow log. Silent while the run is replaying, so each line
    /// appears once however often the host replays the run.
    ///
    /// ```no_run
    /// use spool_sdk::Level;
    ///
    /// # fn f(ctx: &spool_sdk::Context) {
    /// ctx.log(Level::Debug, "starting");
    /// # }
    /// ```
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        wit::log(level.to_wit(), message.as_ref());
    }

    /// Logs at [`Level::Trace`].
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// ctx.log_trace("entering step 3");
    /// # }
    /// ```
    pub fn log_trace(&self, message: impl AsRef<str>) {
        self.log(Level::Trace, message);
    }

    /// Logs at [`Level::Debug`].
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// ctx.log_debug(format!("cart has {} items", 3));
    /// # }
    /// ```
    pub fn log_debug(&self, message: impl AsRef<str>) {
        self.log(Level::Debug, message);
    }

    /// Logs at [`Level::Info`].
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// ctx.log_info("order shipped");
    /// # }
    /// ```
    pub fn log_info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Logs at [`Level::Warn`].
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// ctx.log_warn("stock is low");
    /// # }
    /// ```
    pub fn log_warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Logs at [`Level::Error`].
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// ctx.log_error("payment provider unreachable");
    /// # }
    /// ```
    pub fn log_error(&self, message: impl AsRef<str>) {
        self.log(Level::Error, message);
    }
}

/// The body of [`Context::continue_as_new`], with the host call passed in so that tests
/// can stand in for the host.
fn continue_with<T: Serialize + ?Sized>(input: &T, host: impl FnOnce(&str)) -> ! {
    let input = continue_input(input);
    host(&input);
    unreachable!("the host returned from continue-as-new, which ends the run")
}

/// The new run's input as JSON.
///
/// # Panics
///
/// If `input` does not serialize.
fn continue_input<T: Serialize + ?Sized>(input: &T) -> String {
    crate::export::to_json(input)
        .unwrap_or_else(|e| panic!("continue_as_new: the new run's input did not serialize: {e}"))
}

/// Facts about the current run, from [`Context::info`].
///
/// ```no_run
/// # fn f(ctx: &spool_sdk::Context) {
/// let info = ctx.info();
/// let age = ctx.now().duration_since(info.start_time()).unwrap_or_default();
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowInfo {
    /// The workflow's id, stable across its runs.
    pub workflow_id: String,
    /// This run's id.
    pub run_id: String,
    /// The workflow type (the name the module was uploaded under).
    pub workflow_type: String,
    /// Virtual time at which the run started, milliseconds since the Unix epoch.
    pub start_time_ms: u64,
}

impl WorkflowInfo {
    /// [`start_time_ms`](WorkflowInfo::start_time_ms) as a `SystemTime`.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// let started = ctx.info().start_time();
    /// # }
    /// ```
    pub fn start_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.start_time_ms)
    }
}

/// Severity of a log line written with [`Context::log`].
///
/// ```no_run
/// use spool_sdk::Level;
///
/// # fn f(ctx: &spool_sdk::Context, verbose: bool) {
/// let level = if verbose { Level::Info } else { Level::Debug };
/// ctx.log(level, "checkpoint");
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Detail useful while debugging.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the workflow handled.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    fn to_wit(self) -> wit::LogLevel {
        match self {
            Level::Trace => wit::LogLevel::Trace,
            Level::Debug => wit::LogLevel::Debug,
            Level::Info => wit::LogLevel::Info,
            Level::Warn => wit::LogLevel::Warn,
            Level::Error => wit::LogLevel::Error,
        }
    }
}

/// A call to an activity being prepared; made by [`Context::activity`].
///
/// Without [`input`](ActivityBuilder::input) the activity receives JSON `null`; without
/// [`retry`](ActivityBuilder::retry) or [`start_to_close`](ActivityBuilder::start_to_close)
/// the host's defaults apply (see [`RetryPolicy`]; 60 s per attempt).
///
/// ```no_run
/// use std::time::Duration;
/// use spool_sdk::RetryPolicy;
///
/// # fn f(ctx: &spool_sdk::Context) -> Result<(), spool_sdk::ActivityError> {
/// let receipt: serde_json::Value = ctx
///     .activity("payments.charge")
///     .input(&serde_json::json!({ "cents": 1999 }))
///     .retry(RetryPolicy::new().maximum_attempts(3))
///     .start_to_close(Duration::from_secs(10))
///     .call()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "an activity does nothing until `start` or `call`"]
pub struct ActivityBuilder {
    name: String,
    input: Result<String, serde_json::Error>,
    retry: Option<RetryPolicy>,
    start_to_close: Option<Duration>,
    schedule_to_close: Option<Duration>,
    schedule_to_start: Option<Duration>,
    heartbeat: Option<Duration>,
    task_queue: Option<String>,
    cancel: Rc<Cancellation>,
}

impl ActivityBuilder {
    /// Sets the input, serialized as JSON.
    ///
    /// If it does not serialize (say, a map with non-string keys), the activity is
    /// never started and waiting on it gives an [`ActivityError`] of kind
    /// [`InvalidInput`](crate::FailureKind::InvalidInput).
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) {
    /// #[derive(serde::Serialize)]
    /// struct Charge { cents: u64, currency: &'static str }
    ///
    /// let handle = ctx
    ///     .activity("payments.charge")
    ///     .input(&Charge { cents: 1999, currency: "EUR" })
    ///     .start();
    /// # }
    /// ```
    pub fn input<T: Serialize + ?Sized>(mut self, input: &T) -> Self {
        self.input = serde_json::to_string(input);
        self
    }

    /// Sets how the host retries failed attempts.
    ///
    /// ```no_run
    /// use spool_sdk::RetryPolicy;
    ///
    /// # fn f(ctx: &spool_sdk::Context) {
    /// let handle = ctx.activity("ledger.post").retry(RetryPolicy::no_retries()).start();
    /// # }
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Bounds each attempt; an attempt that runs longer fails with kind
    /// [`Timeout`](crate::FailureKind::Timeout) and may be retried. Millisecond
    /// resolution, rounded up.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # fn f(ctx: &spool_sdk::Context) {
    /// let handle = ctx
    ///     .activity("reports.build")
    ///     .start_to_close(Duration::from_secs(300))
    ///     .start();
    /// # }
    /// ```
    pub fn start_to_close(mut self, timeout: Duration) -> Self {
        self.start_to_close = Some(timeout);
        self
    }

    /// Bounds the whole activity, every attempt and the waits between them included:
    /// when it passes, the activity fails with kind
    /// [`Timeout`](crate::FailureKind::Timeout) (type `"schedule_to_close_timeout"`),
    /// however many attempts the retry policy has left.
    pub fn schedule_to_close(mut self, timeout: Duration) -> Self {
        self.schedule_to_close = Some(timeout);
        self
    }

    /// Bounds how long an attempt may wait in its task queue before a worker takes it
    /// (type `"schedule_to_start_timeout"`; not retried: another attempt would wait in
    /// the same queue). Only meaningful with [`task_queue`](ActivityBuilder::task_queue).
    pub fn schedule_to_start(mut self, timeout: Duration) -> Self {
        self.schedule_to_start = Some(timeout);
        self
    }

    /// Requires the activity to heartbeat at least this often: an attempt that goes
    /// longer without one fails with kind [`Timeout`](crate::FailureKind::Timeout)
    /// (type `"heartbeat_timeout"`) and is retried per the policy, and the next attempt
    /// gets the details of the last heartbeat. Lets a dead worker be noticed long
    /// before the start-to-close timeout.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat = Some(timeout);
        self
    }

    /// Runs the activity on a remote worker that polls task queue `queue` through the
    /// HTTP API (any language; see `workers/python/spool_worker.py`), rather than in
    /// the host. The name passed to [`Context::activity`] tells the worker what to do.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # fn f(ctx: &spool_sdk::Context) -> Result<(), spool_sdk::ActivityError> {
    /// let label: String = ctx
    ///     .activity("shipping.print_label")
    ///     .task_queue("warehouse")
    ///     .input(&"order-17")
    ///     .heartbeat_timeout(Duration::from_secs(30))
    ///     .call()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn task_queue(mut self, queue: impl Into<String>) -> Self {
        self.task_queue = Some(queue.into());
        self
    }

    /// Starts the activity and returns its handle at once, so that several activities
    /// can run at the same time.
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) -> Result<(), spool_sdk::ActivityError> {
    /// let a = ctx.activity("spool.echo").input(&1).start();
    /// let b = ctx.activity("spool.echo").input(&2).start();
    /// let sum = a.result::<u32>()? + b.result::<u32>()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(self) -> ActivityHandle {
        let options = self.options();
        match self.input {
            Ok(input) => {
                let handle = wit::start_activity(&self.name, &input, &options);
                ActivityHandle::pending(self.name, handle, self.cancel)
            }
            Err(e) => {
                let error = ActivityError::invalid_input(&self.name, &e);
                ActivityHandle::failed(self.name, error, self.cancel)
            }
        }
    }

    /// Starts the activity, waits for it, and deserializes its output.
    ///
    /// # Errors
    ///
    /// As for [`ActivityHandle::result`]: the activity's failure, or kind
    /// [`Cancelled`](crate::FailureKind::Cancelled) if the workflow's cancel request
    /// arrives during the wait (the activity itself goes on, but its handle is gone;
    /// use [`start`](ActivityBuilder::start) to keep it).
    ///
    /// ```no_run
    /// # fn f(ctx: &spool_sdk::Context) -> Result<(), spool_sdk::ActivityError> {
    /// let total: u64 = ctx.activity("cart.total").input(&"cart-17").call()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn call<T: serde::de::DeserializeOwned>(self) -> Result<T, ActivityError> {
        self.start().result()
    }

    fn options(&self) -> wit::ActivityOptions {
        wit::ActivityOptions {
            retry: self.retry.as_ref().map(RetryPolicy::to_wit),
            start_to_close_timeout_ms: self.start_to_close.map(duration_to_ms),
            schedule_to_close_timeout_ms: self.schedule_to_close.map(duration_to_ms),
            schedule_to_start_timeout_ms: self.schedule_to_start.map(duration_to_ms),
            heartbeat_timeout_ms: self.heartbeat.map(duration_to_ms),
            task_queue: self.task_queue.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_without_options_uses_host_defaults() {
        let builder = Context::new().activity("spool.echo");
        let options = builder.options();
        assert!(options.retry.is_none());
        assert!(options.start_to_close_timeout_ms.is_none());
        assert_eq!(builder.input.unwrap(), "null");
    }

    #[test]
    fn activity_options_reach_the_wit_record() {
        let builder = Context::new()
            .activity("http.request")
            .input(&serde_json::json!({ "method": "POST" }))
            .retry(RetryPolicy::new().maximum_attempts(10))
            .start_to_close(Duration::from_secs(10));
        let options = builder.options();
        assert_eq!(options.retry.unwrap().maximum_attempts, 10);
        assert_eq!(options.start_to_close_timeout_ms, Some(10_000));
        assert_eq!(builder.input.unwrap(), r#"{"method":"POST"}"#);
    }

    #[test]
    fn input_that_does_not_serialize_fails_the_handle_without_a_host_call() {
        use std::collections::BTreeMap;
        let map = BTreeMap::from([((1, 2), 3)]);
        // `start` would trap natively if it reached the host import.
        let handle = Context::new().activity("spool.echo").input(&map).start();
        let err = handle.result::<()>().unwrap_err();
        assert_eq!(err.kind, crate::FailureKind::InvalidInput);
        assert_eq!(err.error_type, "invalid_input");
        assert!(err.non_retryable);
    }

    #[test]
    fn levels_map_one_to_one() {
        assert_eq!(Level::Trace.to_wit(), wit::LogLevel::Trace);
        assert_eq!(Level::Debug.to_wit(), wit::LogLevel::Debug);
        assert_eq!(Level::Info.to_wit(), wit::LogLevel::Info);
        assert_eq!(Level::Warn.to_wit(), wit::LogLevel::Warn);
        assert_eq!(Level::Error.to_wit(), wit::LogLevel::Error);
    }

    #[test]
    fn continue_as_new_hands_the_host_the_input_as_json() {
        #[derive(Serialize)]
        struct Next {
            iteration: u32,
            cursor: Option<&'static str>,
        }
        let next = Next {
            iteration: 3,
            cursor: Some("c-9"),
        };
        let mut seen = None;
        // The stand-in host stops the "guest" as the real one does: it never returns.
        let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            continue_with(&next, |input| {
                seen = Some(input.to_owned());
                std::panic::resume_unwind(Box::new("stopped"))
            })
        }));
        let payload = stopped.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"stopped"));
        assert_eq!(seen.as_deref(), Some(r#"{"iteration":3,"cursor":"c-9"}"#));
    }

    #[test]
    fn continue_as_new_takes_unsized_inputs() {
        assert_eq!(continue_input("next"), r#""next""#);
        assert_eq!(continue_input(&[1, 2][..]), "[1,2]");
    }

    #[test]
    #[should_panic(expected = "continue_as_new: the new run's input did not serialize")]
    fn continue_as_new_input_that_does_not_serialize_panics_before_the_host_call() {
        use std::collections::BTreeMap;
        let map = BTreeMap::from([((1, 2), 3)]);
        continue_with(&map, |_| panic!("reached the host"));
    }

    #[test]
    #[should_panic(expected = "the host returned from continue-as-new")]
    fn a_host_that_returns_from_continue_as_new_is_a_bug() {
        continue_with(&1, |_| {});
    }

    #[test]
    fn start_time_is_epoch_based() {
        let info = WorkflowInfo {
            workflow_id: "w".to_owned(),
            run_id: "r".to_owned(),
            workflow_type: "t".to_owned(),
            start_time_ms: 1_500,
        };
        assert_eq!(info.start_time(), UNIX_EPOCH + Duration::from_millis(1_500));
    }
}
