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

#[test]
fn sigterm_shuts_down_cleanly_and_open_runs_resume_on_restart() {
    let dir = tempdir();
    let module = format!("steps={}", guest("steps").display());
    let mut server = Server::start(dir.path(), &["--module", &module]);
    let input = r#"{"steps": 2, "mode": "sequential", "sleep_ms": 1000}"#;
    server.cli_ok(&[
        "workflow", "start", "--type", "steps", "--id", "term", "--input", input,
    ]);
    server.wait_for_history("term", Duration::from_secs(20), |t| {
        t.iter().any(|t| t == "timer_started")
    });
    // A client waiting on the result must not hold the shutdown hostage.
    let address = server.address.clone();
    let waiter = std::thread::spawn(move || {
        std::process::Command::new(common::spool_binary())
            .args(["workflow", "result", "--id", "term"])
            .env("SPOOL_ADDRESS", address)
            .output()
    });
    std::thread::sleep(Duration::from_millis(200));
    let status = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "clean shutdown exits 0, got {status}");
    let _ = waiter.join();
    server.restart();
    let output = server.cli_json(&["workflow", "result", "--id", "term", "--timeout", "30"]);
    assert_eq!(output["sum"], 3);
}

/// A deploy that changed the code under a running workflow: the restart detects it, the
/// run is blocked (not failed), `result` reports why, and a repin to the right module
/// resumes it to completion.
#[test]
fn a_blocked_run_is_reported_and_resumes_after_a_repin() {
    let dir = tempdir();
    let mut server = Server::start(dir.path(), &[]);
    let steps = guest("steps");
    let changed = guest("steps-changed");
    let original = server.cli_ok(&[
        "module",
        "upload",
        steps.to_str().unwrap(),
        "--name",
        "steps",
    ]);
    let changed = server.cli_ok(&[
        "module",
        "upload",
        changed.to_str().unwrap(),
        "--name",
        "steps-v2",
    ]);
    let (original, changed) = (original.trim().to_owned(), changed.trim().to_owned());
    let input = r#"{"steps": 2, "mode": "sequential", "sleep_ms": 1500}"#;
    server.cli_ok(&[
        "workflow", "start", "--type", "steps", "--id", "nd", "--input", input,
    ]);
    server.wait_for_history("nd", Duration::from_secs(20), |t| {
        t.iter().any(|t| t == "timer_started")
    });
    server.kill9();
    // Swap the module under the run behind the API's back, as a bad deploy would.
    server.swap_module_under("nd", &changed);
    server.restart();

    let out = server.cli(&["workflow", "result", "--id", "nd", "--timeout", "20"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a blocked run is reported, not waited on"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("blocked") && stderr.contains("non-determinism at event seq 1"),
        "{stderr}"
    );
    let run = server.cli_json(&["workflow", "describe", "--id", "nd"]);
    assert_eq!(run["status"], "blocked");

    let repinned = server.cli_ok(&[
        "workflow",
        "repin",
        "--id",
        "nd",
        "--module-hash",
        &original,
    ]);
    assert!(repinned.contains("resumed"), "{repinned}");
    let output = server.cli_json(&["workflow", "result", "--id", "nd", "--timeout", "30"]);
    assert_eq!(output["sum"], 3);
    // Only a blocked run can be repinned.
    let again = server.cli(&["workflow", "repin", "--id", "nd", "--module-hash", &changed]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("only a blocked run"));
}

#[test]
fn terminate_ends_a_waiting_run_at_once_and_records_why() {
    let dir = tempdir();
    let module = format!("steps={}", guest("steps").display());
    let server = Server::start(dir.path(), &["--module", &module]);
    let input = r#"{"steps": 2, "mode": "sequential", "sleep_ms": 600000}"#;
    server.cli_ok(&[
        "workflow", "start", "--type", "steps", "--id", "stuck", "--input", input,
    ]);
    server.wait_for_history("stuck", Duration::from_secs(20), |t| {
        t.iter().any(|t| t == "timer_started")
    });
    server.cli_ok(&[
        "workflow",
        "terminate",
        "--id",
        "stuck",
        "--reason",
        "customer cancelled the order",
    ]);

    let run = server.cli_json(&["workflow", "describe", "--id", "stuck"]);
    assert_eq!(run["status"], "terminated");
    assert_eq!(run["failure"]["message"], "customer cancelled the order");
    let events = server.cli_json(&["workflow", "history", "--id", "stuck"])["events"]
        .as_array()
        .unwrap()
        .clone();
    let last = events.last().unwrap();
    assert_eq!(last["type"], "run_terminated");
    assert_eq!(last["reason"], "customer cancelled the order");
    let out = server.cli(&["workflow", "result", "--id", "stuck", "--timeout", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("terminated"));

    let again = server.cli(&["workflow", "terminate", "--id", "stuck"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("workflow_closed"));
    // The id is free again once its run is closed.
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "steps",
        "--id",
        "stuck",
        "--input",
        r#"{"steps": 1, "mode": "sequential"}"#,
    ]);
    assert_eq!(
        server.cli_json(&["workflow", "result", "--id", "stuck", "--timeout", "30"])["sum"],
        1
    );
}
