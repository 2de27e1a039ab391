//! End-to-end: activities other than the happy-path built-ins — uploaded activity
//! components with outgoing HTTP, the allow-list, unknown activities — through the real
//! binary, with the `relay` test workflow calling them.

mod common;

use common::{guest, tempdir, Server, Sink};

fn relay(server: &Server, id: &str, activity: &str, input: serde_json::Value) -> serde_json::Value {
    relay_with(
        server,
        id,
        serde_json::json!({ "activity": activity, "input": input }),
    )
}

/// Runs the `relay` workflow with the given input and returns the finished run.
fn relay_with(server: &Server, id: &str, input: serde_json::Value) -> serde_json::Value {
    let input = input.to_string();
    server.cli_ok(&[
        "workflow", "start", "--type", "relay", "--id", id, "--input", &input,
    ]);
    server.cli(&["workflow", "result", "--id", id, "--timeout", "30"]);
    server.cli_json(&["workflow", "describe", "--id", id])
}

fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let module = format!("relay={}", guest("relay").display());
    let mut args = vec!["--module", module.as_str()];
    args.extend_from_slice(extra);
    Server::start(dir, &args)
}

#[test]
fn an_uploaded_activity_component_makes_outgoing_http_calls() {
    let dir = tempdir();
    let sink = Sink::start();
    let server = start(dir.path(), &[]);
    let component = guest("http-activity");
    let hash = server.cli_ok(&[
        "module",
        "upload",
        component.to_str().unwrap(),
        "--name",
        "notify",
        "--kind",
        "activity",
    ]);
    assert_eq!(
        hash.trim().len(),
        64,
        "upload prints the content hash: {hash}"
    );
    let run = relay(
        &server,
        "comp-1",
        "notify",
        serde_json::json!({ "url": sink.url, "body": { "template": "component" } }),
    );
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"], serde_json::json!({ "status": 200 }));
    assert_eq!(sink.count("component"), 1);
}

#[test]
fn the_allow_list_stops_outgoing_http_of_components_and_built_ins() {
    let dir = tempdir();
    let sink = Sink::start();
    // The sink listens on 127.0.0.1; only an unrelated host is allowed.
    let server = start(dir.path(), &["--allow-http", "api.example.com"]);
    let component = guest("http-activity");
    server.cli_ok(&[
        "module",
        "upload",
        component.to_str().unwrap(),
        "--name",
        "notify",
        "--kind",
        "activity",
    ]);

    let run = relay(
        &server,
        "denied-1",
        "notify",
        serde_json::json!({ "url": sink.url, "body": { "template": "component" } }),
    );
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("denied"),
        "{run}"
    );

    let request =
        serde_json::json!({ "method": "POST", "url": sink.url, "body": { "template": "builtin" } });
    let run = relay(&server, "denied-2", "http.request", request);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["failure"]["error_type"], "http_forbidden");
    assert_eq!(run["failure"]["non_retryable"], true);
    assert_eq!(
        sink.count("component") + sink.count("builtin"),
        0,
        "nothing got through"
    );
}

#[test]
fn unknown_activities_and_misfit_components_get_clear_errors() {
    let dir = tempdir();
    let server = start(dir.path(), &[]);
    let run = relay(
        &server,
        "unknown-1",
        "no.such.activity",
        serde_json::Value::Null,
    );
    assert_eq!(run["status"], "failed");
    assert_eq!(run["failure"]["kind"], "unknown_activity");
    assert!(run["failure"]["message"]
        .as_str()
        .unwrap()
        .contains("no.such.activity"));

    // A workflow component is not an activity component.
    let steps = guest("steps");
    let out = server.cli(&[
        "module",
        "upload",
        steps.to_str().unwrap(),
        "--name",
        "not-an-activity",
        "--kind",
        "activity",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wrong_world") && stderr.contains("spool:activity/activity"),
        "{stderr}"
    );

    // Built-in names are reserved.
    let component = guest("http-activity");
    let out = server.cli(&[
        "module",
        "upload",
        component.to_str().unwrap(),
        "--name",
        "http.request",
        "--kind",
        "activity",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("built-in"));
}

#[test]
fn an_attempt_past_its_start_to_close_timeout_fails_as_a_timeout_after_its_retries() {
    let dir = tempdir();
    let sink = Sink::start();
    sink.hold("slow", std::time::Duration::from_secs(3));
    let server = start(dir.path(), &[]);
    let request =
        serde_json::json!({ "method": "POST", "url": sink.url, "body": { "template": "slow" } });
    let input = serde_json::json!({ "activity": "http.request", "input": request, "max_attempts": 2, "start_to_close_ms": 300 });
    let run = relay_with(&server, "slow-1", input);
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(
        run["failure"]["kind"], "timeout",
        "a timeout is told apart from an application error"
    );
    assert_eq!(
        sink.count("slow"),
        2,
        "two attempts, each cut off at 300 ms"
    );
    let events = server.cli_json(&["workflow", "history", "--id", "slow-1"])["events"]
        .as_array()
        .unwrap()
        .clone();
    let failed = events
        .iter()
        .find(|e| e["type"] == "activity_failed")
        .unwrap();
    assert_eq!(failed["attempts"], 2);
    assert_eq!(failed["failure"]["error_type"], "start_to_close_timeout");
}

#[test]
fn an_activity_can_race_a_durable_deadline() {
    let dir = tempdir();
    let sink = Sink::start();
    sink.hold("slow", std::time::Duration::from_secs(3));
    let server = start(dir.path(), &[]);
    let slow =
        serde_json::json!({ "method": "POST", "url": sink.url, "body": { "template": "slow" } });
    let run = relay_with(
        &server,
        "race-1",
        serde_json::json!({ "activity": "http.request", "input": slow, "deadline_ms": 300 }),
    );
    assert_eq!(
        run["output"],
        serde_json::json!({ "timed_out": true }),
        "{run}"
    );

    let fast =
        serde_json::json!({ "method": "POST", "url": sink.url, "body": { "template": "fast" } });
    let run = relay_with(
        &server,
        "race-2",
        serde_json::json!({ "activity": "http.request", "input": fast, "deadline_ms": 10000 }),
    );
    assert_eq!(run["output"]["status"], 200, "{run}");
    assert_eq!(run["output"]["body"], serde_json::json!({ "sent": true }));
}

/// A secret set on the server reaches the `http.request` header that names it and an
/// activity component's environment, and is written nowhere: not the journal, not the
/// history, not the log.
#[test]
fn secrets_reach_activities_but_never_the_journal_or_the_log() {
    const SECRET: &str = "sk-live-7f3a9c";
    let dir = tempdir();
    let services = common::Recorder::start();
    let secret_arg = format!("API_KEY={SECRET}");
    let progress = format!("progress={}", guest("progress-activity").display());
    let server = start(
        dir.path(),
        &["--secret", &secret_arg, "--activity-module", &progress],
    );
    let request = serde_json::json!({
        "method": "POST", "url": format!("{}/charge", services.url),
        "headers": { "authorization": "Bearer {{secret:API_KEY}}" }, "body": { "cents": 5 },
    });
    let run = relay(&server, "with-secret", "http.request", request);
    assert_eq!(run["status"], "completed", "{run}");
    let calls = services.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );

    let run = relay(
        &server,
        "component-secret",
        "progress",
        serde_json::json!({ "steps": 1, "secret": "API_KEY" }),
    );
    assert_eq!(run["output"]["secret_length"], SECRET.len(), "{run}");

    let unknown = serde_json::json!({
        "method": "POST", "url": format!("{}/charge", services.url),
        "headers": { "authorization": "Bearer {{secret:NOPE}}" },
    });
    let run = relay(&server, "unknown-secret", "http.request", unknown);
    assert_eq!(run["failure"]["error_type"], "unknown_secret", "{run}");

    for id in ["with-secret", "component-secret", "unknown-secret"] {
        let history = server.cli_ok(&["workflow", "history", "--id", id]);
        assert!(!history.contains(SECRET), "{id}'s history shows the secret");
    }
    server.cli_ok(&["workflow", "list"]);
    drop(server);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(!found, "{} contains the secret", path.display());
        }
    }
}

#[test]
fn the_allow_list_can_restrict_methods() {
    let dir = tempdir();
    let services = common::Recorder::start();
    let server = start(dir.path(), &["--allow-http", "GET,HEAD 127.0.0.1"]);
    let post = serde_json::json!({ "method": "POST", "url": format!("{}/write", services.url) });
    let run = relay(&server, "post", "http.request", post);
    assert_eq!(run["failure"]["error_type"], "http_forbidden", "{run}");
    assert!(run["failure"]["message"].as_str().unwrap().contains("POST"));
    let get = serde_json::json!({ "method": "GET", "url": format!("{}/read", services.url) });
    let run = relay(&server, "get", "http.request", get);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(services.paths(), ["/read"]);
}

/// An activity component heartbeats through its import; a failed attempt's last
/// heartbeat details reach the next attempt, and one that stops heartbeating fails
/// with a heartbeat timeout (then is retried).
#[test]
fn component_heartbeats_carry_progress_to_the_next_attempt_and_silence_times_out() {
    let dir = tempdir();
    let progress = format!("progress={}", guest("progress-activity").display());
    let server = start(dir.path(), &["--activity-module", &progress]);

    let resume = serde_json::json!({
        "activity": "progress", "max_attempts": 3, "heartbeat_ms": 5_000,
        "input": { "steps": 6, "step_ms": 10, "heartbeat": true, "fail_attempt_at": 4 },
    });
    let run = relay_with(&server, "resume", resume);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"]["attempt"], 2);
    assert_eq!(
        run["output"]["resumed_at"], 4,
        "attempt 2 starts where attempt 1's heartbeats left off"
    );

    let silent = serde_json::json!({
        "activity": "progress", "max_attempts": 2, "heartbeat_ms": 300,
        "input": { "steps": 1, "step_ms": 3_000, "heartbeat": false },
    });
    let run = relay_with(&server, "silent", silent);
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["failure"]["error_type"], "heartbeat_timeout");
    assert_eq!(run["failure"]["kind"], "timeout");
    let history = server.cli_json(&["workflow", "history", "--id", "silent"]);
    let attempts = history["failed_attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "both attempts timed out: {history}");
}
