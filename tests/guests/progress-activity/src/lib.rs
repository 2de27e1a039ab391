//! An activity component (world `spool:activity/activity`) that works through steps,
//! for tests of heartbeats, heartbeat timeouts, details handover and secrets.
//!
//! Input `{"steps": N, "step_ms": M, "heartbeat": true, "fail_attempt_at": K,
//! "secret": "NAME"}`: sleeps M ms per step, starting at the `next_step` of the previous
//! attempt's last heartbeat (0 for the first attempt), heartbeating `{"next_step": i}`
//! after each step if `heartbeat` is set. On attempt 1, fails (retryably, type
//! `"crashed"`) once it reaches step K, if given. Output `{"attempt", "resumed_at",
//! "steps", "secret_length"}`, where `secret_length` is the length of the environment
//! variable `secret` names (never its value), or null.

use serde::Deserialize;
use serde_json::json;

wit_bindgen::generate!({
    path: "../../../wit/activity",
    world: "spool:activity/activity",
});

#[derive(Deserialize)]
struct Input {
    steps: u32,
    #[serde(default)]
    step_ms: u64,
    #[serde(default)]
    heartbeat: bool,
    fail_attempt_at: Option<u32>,
    secret: Option<String>,
}

struct Progress;

impl Guest for Progress {
    fn execute(input: String) -> Result<String, ActivityError> {
        let input: Input = serde_json::from_str(&input).map_err(|e| ActivityError {
            error_type: "invalid_input".into(),
            message: e.to_string(),
            non_retryable: true,
        })?;
        let info = attempt();
        let resumed_at = info
            .heartbeat_details
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .and_then(|d| d["next_step"].as_u64())
            .unwrap_or(0) as u32;
        for step in resumed_at..input.steps {
            if info.attempt == 1 && input.fail_attempt_at == Some(step) {
                return Err(ActivityError {
                    error_type: "crashed".into(),
                    message: format!("attempt 1 gave up at step {step}"),
                    non_retryable: false,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(input.step_ms));
            if input.heartbeat {
                heartbeat(Some(&json!({ "next_step": step + 1 }).to_string()));
            }
        }
        let secret_length = input
            .secret
            .and_then(|name| std::env::var(name).ok())
            .map(|value| value.len());
        Ok(json!({
            "attempt": info.attempt, "resumed_at": resumed_at, "steps": input.steps,
            "secret_length": secret_length,
        })
        .to_string())
    }
}

export!(Progress);
