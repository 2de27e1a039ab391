//! Retry policies for activities, and their conversion to the WIT `retry-policy`.
//!
//! The host does the retrying; the workflow only describes how. This module owns that
//! description and the one place where `Duration`s become the contract's milliseconds.

use std::time::Duration;

use crate::__bindings::spool::workflow::context as wit;

/// How the host retries a failed activity attempt.
///
/// The delay before attempt `n + 1` is
/// `min(initial_interval * backoff_coefficient^(n - 1), maximum_interval)`.
/// Retrying stops at once when an attempt fails with a non-retryable error, and after
/// [`maximum_attempts`](RetryPolicy::maximum_attempts) attempts in total.
///
/// | setting              | default | meaning                                    |
/// |----------------------|---------|--------------------------------------------|
/// | `initial_interval`   | 1 s     | delay before the second attempt            |
/// | `backoff_coefficient`| 2.0     | factor applied to the delay after each try |
/// | `maximum_interval`   | 60 s    | upper bound on any single delay            |
/// | `maximum_attempts`   | 5       | attempts including the first; 0: unlimited |
///
/// These are also the host's defaults, used when an activity is started without
/// [`ActivityBuilder::retry`](crate::ActivityBuilder::retry).
///
/// ```
/// use std::time::Duration;
/// use spool_sdk::RetryPolicy;
///
/// let policy = RetryPolicy::new()
///     .initial_interval(Duration::from_millis(200))
///     .backoff_coefficient(2.0)
///     .maximum_interval(Duration::from_secs(2))
///     .maximum_attempts(10);
/// assert_eq!(policy.get_maximum_attempts(), 10);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    initial_interval: Duration,
    backoff_coefficient: f64,
    maximum_interval: Duration,
    maximum_attempts: u32,
    non_retryable_error_types: Vec<String>,
}

impl Default for RetryPolicy {
    /// 1 s initial interval, coefficient 2.0, 60 s maximum interval, 5 attempts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use spool_sdk::RetryPolicy;
    ///
    /// let policy = RetryPolicy::default();
    /// assert_eq!(policy.get_initial_interval(), Duration::from_secs(1));
    /// ```
    fn default() -> Self {
        RetryPolicy {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_secs(60),
            maximum_attempts: 5,
            non_retryable_error_types: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// The default policy (see the table on [`RetryPolicy`]); adjust it with the setters.
    ///
    /// ```
    /// use spool_sdk::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new(), RetryPolicy::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A policy that makes exactly one attempt.
    ///
    /// ```
    /// use spool_sdk::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::no_retries().get_maximum_attempts(), 1);
    /// ```
    pub fn no_retries() -> Self {
        Self::default().maximum_attempts(1)
    }

    /// Sets the delay before the second attempt. Millisecond resolution, rounded up.
    ///
    /// ```
    /// use std::time::Duration;
    /// use spool_sdk::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new().initial_interval(Duration::from_millis(250));
    /// ```
    pub fn initial_interval(mut self, interval: Duration) -> Self {
        self.initial_interval = interval;
        self
    }

    /// Sets the factor by which the delay grows after each failed attempt.
    ///
    /// # Panics
    ///
    /// If `coefficient` is not a finite number of at least 1.0: a shrinking delay is
    /// almost certainly a mistake, and a panic fails the run where it is made.
    ///
    /// ```
    /// use spool_sdk::RetryPolicy;
    ///
    /// let steady = RetryPolicy::new().backoff_coefficient(1.0);
    /// ```
    pub fn backoff_coefficient(mut self, coefficient: f64) -> Self {
        assert!(
            coefficient.is_finite() && coefficient >= 1.0,
            "backoff coefficient must be finite and at least 1.0, got {coefficient}"
        );
        self.backoff_coefficient = coefficient;
        self
    }

    /// Sets the upper bound on any single delay. Millisecond resolution, rounded up.
    ///
    /// ```
    /// use std::time::Duration;
    /// use spool_sdk::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new().maximum_interval(Duration::from_secs(10));
    /// ```
    pub fn maximum_interval(mut self, interval: Duration) -> Self {
        self.maximum_interval = interval;
        self
    }

    /// Sets the total number of attempts, the first included; 0 means unlimited.
    ///
    /// ```
    /// use spool_sdk::RetryPolicy;
    ///
    /// let forever = RetryPolicy::new().maximum_attempts(0);
    /// ```
    pub fn maximum_attempts(mut self, attempts: u32) -> Self {
        self.maximum_attempts = attempts;
        self
    }

    /// Marks failures with this error type as final: the host does not retry them,
    /// whatever attempts are left. For errors the activity itself cannot know are
    /// final (an activity can also fail with `non_retryable` set).
    ///
    /// ```
    /// use spool_sdk::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new()
    ///     .non_retryable_error_type("card_declined")
    ///     .non_retryable_error_type("http_status");
    /// assert_eq!(policy.get_non_retryable_error_types(), ["card_declined", "http_status"]);
    /// ```
    pub fn non_retryable_error_type(mut self, error_type: impl Into<String>) -> Self {
        self.non_retryable_error_types.push(error_type.into());
        self
    }

    /// The error types that are never retried.
    pub fn get_non_retryable_error_types(&self) -> &[String] {
        &self.non_retryable_error_types
    }

    /// The delay before the second attempt.
    ///
    /// ```
    /// use std::time::Duration;
    /// use spool_sdk::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().get_initial_interval(), Duration::from_secs(1));
    /// ```
    pub fn get_initial_interval(&self) -> Duration {
        self.initial_interval
    }

    /// The factor by which the delay grows after each failed attempt.
    ///
    /// ```
    /// use spool_sdk::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().get_backoff_coefficient(), 2.0);
    /// ```
    pub fn get_backoff_coefficient(&self) -> f64 {
        self.backoff_coefficient
    }

    /// The upper bound on any single delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use spool_sdk::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().get_maximum_interval(), Duration::from_secs(60));
    /// ```
    pub fn get_maximum_interval(&self) -> Duration {
        self.maximum_interval
    }

    /// The total number of attempts; 0 means unlimited.
    ///
    /// ```
    /// use spool_sdk::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().get_maximum_attempts(), 5);
    /// ```
    pub fn get_maximum_attempts(&self) -> u32 {
        self.maximum_attempts
    }

    pub(crate) fn to_wit(&self) -> wit::RetryPolicy {
        wit::RetryPolicy {
            initial_interval_ms: duration_to_ms(self.initial_interval),
            backoff_coefficient: self.backoff_coefficient,
            maximum_interval_ms: duration_to_ms(self.maximum_interval),
            maximum_attempts: self.maximum_attempts,
            non_retryable_error_types: self.non_retryable_error_types.clone(),
        }
    }
}

/// Converts a duration to whole milliseconds for the contract, rounding a fraction of a
/// millisecond up (a 0.5 ms sleep waits 1 ms, not 0) and saturating at `u64::MAX`.
pub(crate) fn duration_to_ms(duration: Duration) -> u64 {
    let nanos = duration.as_nanos();
    let ms = nanos.div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_matches_the_documented_values() {
        let wit = RetryPolicy::default().to_wit();
        assert_eq!(wit.initial_interval_ms, 1_000);
        assert_eq!(wit.backoff_coefficient, 2.0);
        assert_eq!(wit.maximum_interval_ms, 60_000);
        assert_eq!(wit.maximum_attempts, 5);
    }

    #[test]
    fn setters_reach_the_wit_record() {
        let wit = RetryPolicy::new()
            .initial_interval(Duration::from_millis(200))
            .backoff_coefficient(3.5)
            .maximum_interval(Duration::from_secs(2))
            .maximum_attempts(10)
            .to_wit();
        assert_eq!(wit.initial_interval_ms, 200);
        assert_eq!(wit.backoff_coefficient, 3.5);
        assert_eq!(wit.maximum_interval_ms, 2_000);
        assert_eq!(wit.maximum_attempts, 10);
    }

    #[test]
    fn no_retries_means_one_attempt() {
        assert_eq!(RetryPolicy::no_retries().to_wit().maximum_attempts, 1);
    }

    #[test]
    #[should_panic(expected = "backoff coefficient")]
    fn shrinking_backoff_is_refused() {
        let _ = RetryPolicy::new().backoff_coefficient(0.5);
    }

    #[test]
    #[should_panic(expected = "backoff coefficient")]
    fn nan_backoff_is_refused() {
        let _ = RetryPolicy::new().backoff_coefficient(f64::NAN);
    }

    #[test]
    fn durations_round_up_to_whole_milliseconds() {
        assert_eq!(duration_to_ms(Duration::ZERO), 0);
        assert_eq!(duration_to_ms(Duration::from_nanos(1)), 1);
        assert_eq!(duration_to_ms(Duration::from_micros(1_500)), 2);
        assert_eq!(duration_to_ms(Duration::from_millis(7)), 7);
        assert_eq!(duration_to_ms(Duration::from_secs(3)), 3_000);
    }

    #[test]
    fn huge_durations_saturate() {
        assert_eq!(duration_to_ms(Duration::MAX), u64::MAX);
    }
}
