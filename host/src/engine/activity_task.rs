//! One activity, from first attempt to final outcome: attempts bounded by the
//! start-to-close timeout, retried with backoff per the retry policy.

use crate::activity::ActivityExecutor;
use crate::clock::Clock;
use crate::ids::Namespace;
use crate::journal::{ActivityOptions, Failure, FailureKind};

/// Runs attempts until one succeeds, one fails for good, or the policy is exhausted.
/// Returns the outcome and the number of attempts made.
pub(super) async fn run_with_retries(
    executor: &ActivityExecutor,
    clock: &dyn Clock,
    namespace: &Namespace,
    name: &str,
    input: &str,
    options: &ActivityOptions,
) -> (Result<String, Failure>, u32) {
    let mut attempt = 1;
    loop {
        let deadline = clock
            .now_ms()
            .saturating_add(options.start_to_close_timeout_ms);
        let outcome = tokio::select! {
            outcome = executor.execute(namespace, name, input) => outcome,
            () = clock.sleep_until(deadline) => Err(Failure::new(
                FailureKind::Timeout,
                "start_to_close_timeout",
                format!("attempt {attempt} did not finish within {} ms", options.start_to_close_timeout_ms),
            )),
        };
        let failure = match outcome {
            Ok(output) => return (Ok(output), attempt),
            Err(failure) => failure,
        };
        if failure.non_retryable || failure.kind == FailureKind::UnknownActivity {
            return (Err(failure), attempt);
        }
        let Some(delay_ms) = options.retry.delay_before(attempt + 1) else {
            return (Err(failure), attempt);
        };
        tracing::debug!(activity = name, attempt, delay_ms, error = %failure.message, "activity attempt failed; retrying");
        clock
            .sleep_until(clock.now_ms().saturating_add(delay_ms))
            .await;
        attempt += 1;
    }
}
