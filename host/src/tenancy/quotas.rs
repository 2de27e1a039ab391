//! What one namespace may spend: the quota set, how partial changes apply to it, and
//! the token bucket behind `starts_per_second`.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The quotas of one namespace. Every field has a value; `None` means unlimited where
/// a quota may be off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quotas {
    /// Open (running or blocked) workflow runs at one time, children included.
    pub max_running_workflows: Option<u64>,
    /// Sustained workflow starts per second (token bucket); over it → 429.
    pub starts_per_second: Option<f64>,
    /// Starts the bucket holds when full: how large a burst may be.
    pub start_burst: u32,
    /// Fuel for one activation of a workflow guest (deterministic units of work).
    /// Enforced by the store of every workflow instance of the namespace, throwaway
    /// query and update-validation instances included (`driver::new_instance` →
    /// `Runtime::new_store`, refilled as each activation starts): past it the run fails
    /// with `fuel_exhausted`. An attempt of an activity component gets
    /// `ACTIVITY_ATTEMPT_ACTIVATIONS` times as much (`ActivityQuotas::of`). What
    /// activations burn is metered into the namespace's usage (`driver::meter`).
    pub fuel_per_activation: u64,
    /// Linear memory one guest instance may grow to: the store limit of every workflow
    /// instance (`Runtime::budget`) and activity component attempt (`ActivityQuotas`),
    /// within the server's `max_memory_bytes`; growing past it traps the guest
    /// (`memory_exhausted`).
    pub max_memory_bytes: u64,
    /// Largest workflow input/output, signal, query, update or activity payload.
    /// Checked at the API (`Engine::check_payload`, and query answers in
    /// `Engine::query`) and inside runs: what the guest sends (`RunHost::check_payload`),
    /// its output (`RunHost::finish`), activity outputs (`RunHost::start_effects`) and
    /// `http.request` response bodies (`ActivityQuotas`).
    pub max_payload_bytes: u64,
    /// Events one run may journal, its end included; a run that needs more fails with
    /// `quota_exceeded` (`RunHost::check_room`: before each new command, cancel request
    /// and update answer of the guest, and each result or inbox entry its driver
    /// journals; room for the run's end is always kept).
    pub max_events_per_run: u64,
    /// Largest component accepted at upload.
    pub max_module_bytes: u64,
    /// Guest activations of this namespace that run at one time: its share of the
    /// executor. Others wait their turn instead of crowding out other namespaces.
    /// A guest holds a permit of `Tenant::activations()` while its code runs
    /// (`RunHost::acquire_permit`: taken before an instance starts and before
    /// `await-next` hands over an event, given back while it waits and when the
    /// instance ends); and every guest yields its thread every `FUEL_YIELD_INTERVAL`.
    pub max_concurrent_activations: u32,
    /// Where the namespace's activities may send HTTP requests (`[METHODS ]HOST[:PORT]`
    /// rules), within the server's list: a request must pass both (`http.request` in
    /// `activity/builtin.rs`, components' outgoing HTTP in `AllowListHooks`), or fails
    /// with `http_forbidden`. `None`: the server's list alone.
    pub allow_http: Option<Vec<String>>,
}

pub use spool_formats::api::QuotaPatch;

/// The server's hard ceilings: no namespace's quota may go above them, because the
/// HTTP layer and the sandbox are sized by them.
#[derive(Clone, Debug, PartialEq)]
pub struct Ceilings {
    pub max_payload_bytes: u64,
    pub max_module_bytes: u64,
    pub max_memory_bytes: u64,
}

impl Default for Ceilings {
    fn default() -> Self {
        Self {
            max_payload_bytes: 2 << 20,
            max_module_bytes: 64 << 20,
            max_memory_bytes: 4 << 30,
        }
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_running_workflows: None,
            starts_per_second: None,
            start_burst: 100,
            // About a quarter of a second of tight-loop work on this class of machine.
            fuel_per_activation: 1_000_000_000,
            max_memory_bytes: 256 << 20,
            max_payload_bytes: 2 << 20,
            max_events_per_run: 50_000,
            max_module_bytes: 64 << 20,
            max_concurrent_activations: default_concurrent_activations(),
            allow_http: None,
        }
    }
}

/// One namespace may keep every core busy, but not more: beyond that its activations
/// would only queue inside the executor in front of other namespaces'.
fn default_concurrent_activations() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(2)
        .max(1)
}

impl Quotas {
    /// `self` with `patch` applied, checked against the ceilings. The error names the
    /// quota and says what is allowed.
    pub fn patched(&self, patch: &QuotaPatch, ceilings: &Ceilings) -> Result<Quotas, String> {
        let mut q = self.clone();
        let off_if_zero = |v: u64| (v > 0).then_some(v);
        if let Some(v) = patch.max_running_workflows {
            q.max_running_workflows = off_if_zero(v);
        }
        if let Some(v) = patch.starts_per_second {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "quota starts_per_second must be a number >= 0 (0 = unlimited), got {v}"
                ));
            }
            q.starts_per_second = (v > 0.0).then_some(v);
        }
        if let Some(v) = patch.start_burst {
            q.start_burst = v;
        }
        if let Some(v) = patch.fuel_per_activation {
            q.fuel_per_activation = v;
        }
        if let Some(v) = patch.max_memory_bytes {
            q.max_memory_bytes = v;
        }
        if let Some(v) = patch.max_payload_bytes {
            q.max_payload_bytes = v;
        }
        if let Some(v) = patch.max_events_per_run {
            q.max_events_per_run = v;
        }
        if let Some(v) = patch.max_module_bytes {
            q.max_module_bytes = v;
        }
        if let Some(v) = patch.max_concurrent_activations {
            q.max_concurrent_activations = v;
        }
        if let Some(rules) = &patch.allow_http {
            for rule in rules {
                crate::activity::HttpAllowList::check_rule(rule)
                    .map_err(|e| format!("quota allow_http: {e}"))?;
            }
            q.allow_http = Some(rules.clone());
        }
        q.check(ceilings)?;
        Ok(q)
    }

    fn check(&self, ceilings: &Ceilings) -> Result<(), String> {
        let at_least = |name: &str, value: u64, min: u64| {
            if value < min {
                Err(format!("quota {name} must be at least {min}, got {value}"))
            } else {
                Ok(())
            }
        };
        let at_most = |name: &str, value: u64, max: u64| {
            if value > max {
                Err(format!(
                    "quota {name} may be at most {max} (the server's limit), got {value}"
                ))
            } else {
                Ok(())
            }
        };
        at_least("start_burst", self.start_burst.into(), 1)?;
        at_least("fuel_per_activation", self.fuel_per_activation, 10_000)?;
        at_least("max_memory_bytes", self.max_memory_bytes, 1 << 20)?;
        at_most(
            "max_memory_bytes",
            self.max_memory_bytes,
            ceilings.max_memory_bytes,
        )?;
        at_least("max_payload_bytes", self.max_payload_bytes, 1024)?;
        at_most(
            "max_payload_bytes",
            self.max_payload_bytes,
            ceilings.max_payload_bytes,
        )?;
        at_least("max_events_per_run", self.max_events_per_run, 10)?;
        at_least("max_module_bytes", self.max_module_bytes, 1024)?;
        at_most(
            "max_module_bytes",
            self.max_module_bytes,
            ceilings.max_module_bytes,
        )?;
        at_least(
            "max_concurrent_activations",
            self.max_concurrent_activations.into(),
            1,
        )?;
        Ok(())
    }
}

/// A namespace's size quota in bytes, within the server's `ceiling` for it (the
/// ceiling itself when there is no quota).
pub fn within(quota: impl Into<Option<u64>>, ceiling: usize) -> usize {
    quota.into().map_or(ceiling, |quota| {
        usize::try_from(quota).unwrap_or(usize::MAX).min(ceiling)
    })
}

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_changes_only_what_it_names_and_zero_turns_a_quota_off() {
        let base = Quotas {
            max_running_workflows: Some(10),
            ..Quotas::default()
        };
        let patched = base
            .patched(
                &QuotaPatch {
                    fuel_per_activation: Some(5_000_000),
                    max_running_workflows: Some(0),
                    ..QuotaPatch::default()
                },
                &Ceilings::default(),
            )
            .unwrap();
        assert_eq!(patched.fuel_per_activation, 5_000_000);
        assert_eq!(patched.max_running_workflows, None);
        assert_eq!(patched.max_payload_bytes, base.max_payload_bytes);
    }

    #[test]
    fn quotas_above_the_server_ceiling_or_below_sense_are_refused_by_name() {
        let ceilings = Ceilings::default();
        let too_big = QuotaPatch {
            max_payload_bytes: Some(ceilings.max_payload_bytes + 1),
            ..QuotaPatch::default()
        };
        let err = Quotas::default().patched(&too_big, &ceilings).unwrap_err();
        assert!(
            err.contains("max_payload_bytes") && err.contains("at most"),
            "{err}"
        );
        let tiny_fuel = QuotaPatch {
            fuel_per_activation: Some(1),
            ..QuotaPatch::default()
        };
        let err = Quotas::default()
            .patched(&tiny_fuel, &ceilings)
            .unwrap_err();
        assert!(err.contains("fuel_per_activation"), "{err}");
        let negative_rate = QuotaPatch {
            starts_per_second: Some(-1.0),
            ..QuotaPatch::default()
        };
        assert!(Quotas::default()
            .patched(&negative_rate, &ceilings)
            .is_err());
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate_and_says_when_to_retry() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 3, t0);
        for _ in 0..3 {
            assert!(bucket.take(t0).is_ok());
        }
        let wait = bucket.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Half a second later one token has come back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(bucket.take(t1).is_ok());
        assert!(bucket.take(t1).is_err());
    }
}
