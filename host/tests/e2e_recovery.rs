//! End-to-end: the real binary is killed with SIGKILL at chosen points and restarted on
//! the same journal. Every workflow still completes, and no completed activity runs twice.

mod common;

use common::{guest, tempdir, Server, Sink};
use std::time::Duration;

fn onboarding_server(dir: &std::path::Path) -> Server {
    let module = format!("onboarding={}", guest("onboarding").display());
    Server::start(dir, &["--module", &module])
}

fn onboarding_input(user: &str, sink: &Sink, follow_up_secs: u64) -> String {
    serde_json::json!({ "user_id": user, "email_endpoint": sink.url, "follow_up_secs": follow_up_secs }).to_string()
}

#[test]
fn onboarding_completes_after_sigkill_during_the_durable_sleep() {
    let dir = tempdir();
    let sink = Sink::start();
    let mut server = onboarding_server(dir.path());
    let input = onboarding_input("ada", &sink, 3);
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "onboarding",
        "--id",
        "onb-1",
        "--input",
        &input,
    ]);
    // The welcome email is journaled as completed and the timer has started: kill now.
    server.wait_for_history("onb-1", Duration::from_secs(20), |t| {
        t.iter().any(|t| t == "timer_started")
    });
    server.kill9();
    server.restart();
    let result = server.cli_json(&["workflow", "result", "--id", "onb-1", "--timeout", "30"]);
    assert_eq!(result, "Onboarding complete for ada");
    assert_eq!(
        sink.count("welcome"),
        1,
        "the completed welcome activity must not run again"
    );
    assert_eq!(sink.count("follow-up"), 1);
    // The sleep lasted its full length across the crash: the timer fired no earlier than
    // 3 s after it started.
    let events = server.cli_json(&["workflow", "history", "--id", "onb-1"])["events"]
        .as_array()
        .unwrap()
        .clone();
    let started = events
        .iter()
        .find(|e| e["type"] == "timer_started")
        .unwrap();
    let fired = events.iter().find(|e| e["type"] == "timer_fired").unwrap();
    assert!(fired["recorded_at_ms"].as_u64().unwrap() >= started["fire_at_ms"].as_u64().unwrap());
    assert_eq!(started["duration_ms"], 3_000);
}

#[test]
fn sigkill_during_an_activity_reruns_it_but_never_a_completed_one() {
    let dir = tempdir();
    let sink = Sink::start();
    // The follow-up request is held long enough to kill the server while it is in flight.
    sink.hold("follow-up", Duration::from_secs(3));
    let mut server = onboarding_server(dir.path());
    let input = onboarding_input("grace", &sink, 1);
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "onboarding",
        "--id",
        "onb-2",
        "--input",
        &input,
    ]);
    sink.wait_for("follow-up", 1, Duration::from_secs(20));
    server.kill9();
    server.restart();
    let result = server.cli_json(&["workflow", "result", "--id", "onb-2", "--timeout", "30"]);
    assert_eq!(result, "Onboarding complete for grace");
    assert_eq!(
        sink.count("welcome"),
        1,
        "completed before the crash: never again"
    );
    assert_eq!(
        sink.count("follow-up"),
        2,
        "in flight at the crash: run again once"
    );
    let events = server.cli_json(&["workflow", "history", "--id", "onb-2"])["events"]
        .as_array()
        .unwrap()
        .clone();
    let completions = events
        .iter()
        .filter(|e| e["type"] == "activity_completed")
        .count();
    assert_eq!(
        completions, 2,
        "each activity has exactly one result in the journal"
    );
}

#[test]
fn failed_attempts_are_retried_with_backoff() {
    let dir = tempdir();
    let sink = Sink::start();
    sink.fail_first(2);
    let server = onboarding_server(dir.path());
    let input = onboarding_input("lin", &sink, 0);
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "onboarding",
        "--id",
        "onb-3",
        "--input",
        &input,
    ]);
    let result = server.cli_json(&["workflow", "result", "--id", "onb-3", "--timeout", "30"]);
    assert_eq!(result, "Onboarding complete for lin");
    assert_eq!(sink.count("welcome"), 3, "two 503s, then success");
    let events = server.cli_json(&["workflow", "history", "--id", "onb-3"])["events"]
        .as_array()
        .unwrap()
        .clone();
    let first = events
        .iter()
        .find(|e| e["type"] == "activity_completed")
        .unwrap();
    assert_eq!(first["attempts"], 3);
    // Backoff: 200 ms then 400 ms between the attempts.
    let scheduled = events
        .iter()
        .find(|e| e["type"] == "activity_scheduled")
        .unwrap();
    let waited =
        first["recorded_at_ms"].as_u64().unwrap() - scheduled["recorded_at_ms"].as_u64().unwrap();
    assert!(
        waited >= 600,
        "attempts were not spaced by the backoff: {waited} ms"
    );
}

#[test]
fn fifty_concurrent_workflows_all_complete_after_sigkill() {
    let dir = tempdir();
    let module = format!("steps={}", guest("steps").display());
    let mut server = Server::start(dir.path(), &["--module", &module]);
    let input = r#"{"steps": 5, "mode": "sequential", "sleep_ms": 150}"#;
    for i in 0..50 {
        server.cli_ok(&[
            "workflow",
            "start",
            "--type",
            "steps",
            "--id",
            &format!("many-{i}"),
            "--input",
            input,
        ]);
    }
    // Kill while the runs are part-way through their steps.
    server.wait_for_history("many-49", Duration::from_secs(20), |t| {
        t.iter().filter(|t| *t == "activity_completed").count() >= 1
    });
    server.kill9();
    server.restart();
    for i in 0..50 {
        let id = format!("many-{i}");
        let output = server.cli_json(&["workflow", "result", "--id", &id, "--timeout", "60"]);
        assert_eq!(output["sum"], 15, "{id}");
        let events = server.cli_json(&["workflow", "history", "--id", &id])["events"]
            .as_array()
            .unwrap()
            .clone();
        let mut handles: Vec<u64> = events
            .iter()
            .filter(|e| e["type"] == "activity_completed")
            .map(|e| e["handle"].as_u64().unwrap())
            .collect();
        handles.sort();
        handles.dedup();
        assert_eq!(handles.len(), 5, "{id}: one result per activity");
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (0..events.len() as u64).collect::<Vec<_>>(),
            "{id}: gapless journal"
        );
    }
}
