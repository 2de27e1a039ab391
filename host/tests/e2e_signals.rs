//! End-to-end: signals through the real binary — durable once acknowledged (even if the
//! server is killed before the workflow sees them), delivered in arrival order,
//! signal-with-start, timeouts, and refusal for closed workflows.

mod common;

use common::{guest, tempdir, Server};
use std::time::Duration;

fn approval_server(dir: &std::path::Path) -> Server {
    let module = format!("approval={}", guest("approval").display());
    Server::start(dir, &["--module", &module])
}

fn start_approval(server: &Server, id: &str, timeout_ms: u64) {
    let input = serde_json::json!({ "timeout_ms": timeout_ms }).to_string();
    server.cli_ok(&[
        "workflow", "start", "--type", "approval", "--id", id, "--input", &input,
    ]);
}

#[test]
fn acknowledged_signals_survive_sigkill_before_delivery() {
    let dir = tempdir();
    let mut server = approval_server(dir.path());
    let ids: Vec<String> = (0..8).map(|i| format!("approve-{i}")).collect();
    for id in &ids {
        start_approval(&server, id, 600_000);
    }
    for id in &ids {
        server.wait_for_history(id, Duration::from_secs(20), |t| {
            t.iter().any(|t| t == "timer_started")
        });
    }
    // Acknowledge every signal, then crash at once: some are still in the inbox, not
    // yet journaled or delivered.
    for (i, id) in ids.iter().enumerate() {
        let input = format!(r#"{{"by": "alice-{i}"}}"#);
        server.cli_ok(&[
            "workflow", "signal", "--id", id, "--name", "approve", "--input", &input,
        ]);
    }
    server.kill9();
    server.restart();
    for (i, id) in ids.iter().enumerate() {
        let output = server.cli_json(&["workflow", "result", "--id", id, "--timeout", "30"]);
        assert_eq!(output["outcome"], "approved", "{id}: {output}");
        assert_eq!(output["by"], format!("alice-{i}"));
        let events = server.cli_json(&["workflow", "history", "--id", id])["events"]
            .as_array()
            .unwrap()
            .clone();
        let signals: Vec<_> = events
            .iter()
            .filter(|e| e["type"] == "signal_received")
            .collect();
        assert_eq!(signals.len(), 1, "{id}: journaled exactly once");
        assert_eq!(signals[0]["input"]["by"], format!("alice-{i}"));
    }
}

/// The expense-approval example notifies an approver before it waits; holding that
/// notification queues both signals before the workflow looks at any.
#[test]
fn signals_are_delivered_in_arrival_order() {
    let dir = tempdir();
    let sink = common::Sink::start();
    sink.hold("approval-requested", Duration::from_secs(1));
    let module = format!("expense-approval={}", guest("expense-approval").display());
    let server = Server::start(dir.path(), &["--module", &module]);
    let input = serde_json::json!({
        "expense_id": "exp-1", "amount": 120, "requester": "dan",
        "notify_endpoint": sink.url, "timeout_secs": 600,
    })
    .to_string();
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "expense-approval",
        "--id",
        "order",
        "--input",
        &input,
    ]);
    sink.wait_for("approval-requested", 1, Duration::from_secs(10));
    server.cli_ok(&[
        "workflow",
        "signal",
        "--id",
        "order",
        "--name",
        "reject",
        "--input",
        r#"{"by": "bob"}"#,
    ]);
    server.cli_ok(&[
        "workflow",
        "signal",
        "--id",
        "order",
        "--name",
        "approve",
        "--input",
        r#"{"by": "alice"}"#,
    ]);
    let output = server.cli_json(&["workflow", "result", "--id", "order", "--timeout", "30"]);
    assert_eq!(
        output["status"], "rejected",
        "the first signal to arrive decides: {output}"
    );
    assert_eq!(output["decided_by"], "bob");
    assert_eq!(sink.count("rejected"), 1);
    let events = server.cli_json(&["workflow", "history", "--id", "order"])["events"]
        .as_array()
        .unwrap()
        .clone();
    let signals: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "signal_received")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(signals, ["reject", "approve"], "journaled in arrival order");
}

#[test]
fn waiting_for_a_signal_times_out_durably() {
    let dir = tempdir();
    let server = approval_server(dir.path());
    start_approval(&server, "nobody", 300);
    let output = server.cli_json(&["workflow", "result", "--id", "nobody", "--timeout", "30"]);
    assert_eq!(output["outcome"], "timed_out");
    // Too late: the run is closed, and the signal is refused rather than lost silently.
    // Names starting with "spool." belong to the host (cancellation travels as one).
    let reserved = server.cli(&[
        "workflow",
        "signal",
        "--id",
        "nobody",
        "--name",
        "spool.cancel",
    ]);
    assert!(String::from_utf8_lossy(&reserved.stderr).contains("reserved"));
    let late = server.cli(&["workflow", "signal", "--id", "nobody", "--name", "approve"]);
    assert!(!late.status.success());
    assert!(String::from_utf8_lossy(&late.stderr).contains("workflow_closed"));
}

#[test]
fn signal_with_start_starts_the_workflow_then_delivers() {
    let dir = tempdir();
    let server = approval_server(dir.path());
    let start_input = r#"{"timeout_ms": 600000}"#;
    let args = [
        "workflow",
        "signal",
        "--id",
        "sws",
        "--name",
        "approve",
        "--input",
        r#"{"by": "carol"}"#,
        "--start-type",
        "approval",
        "--start-input",
        start_input,
    ];
    server.cli_ok(&args);
    let output = server.cli_json(&["workflow", "result", "--id", "sws", "--timeout", "30"]);
    assert_eq!(output["outcome"], "approved");
    assert_eq!(output["by"], "carol");
    // A plain signal to an id that never ran is not found.
    let missing = server.cli(&["workflow", "signal", "--id", "ghost", "--name", "approve"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not_found"));
}

#[test]
fn a_cancelled_workflow_compensates_and_ends_as_cancelled() {
    let dir = tempdir();
    let sink = common::Sink::start();
    let module = format!("cancellable={}", guest("cancellable").display());
    let server = Server::start(dir.path(), &["--module", &module]);
    let input = serde_json::json!({ "notify_endpoint": sink.url, "sleep_ms": 600_000 }).to_string();
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "cancellable",
        "--id",
        "order-1",
        "--input",
        &input,
    ]);
    server.wait_for_history("order-1", Duration::from_secs(20), |t| {
        t.iter().any(|t| t == "timer_started")
    });
    assert_eq!(sink.count("reserved"), 1);
    server.cli_ok(&[
        "workflow",
        "cancel",
        "--id",
        "order-1",
        "--reason",
        "customer changed their mind",
    ]);

    let out = server.cli(&["workflow", "result", "--id", "order-1", "--timeout", "30"]);
    assert_eq!(out.status.code(), Some(1));
    let run = server.cli_json(&["workflow", "describe", "--id", "order-1"]);
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(run["failure"]["kind"], "cancelled");
    assert!(run["failure"]["message"]
        .as_str()
        .unwrap()
        .contains("customer changed their mind"));
    assert_eq!(sink.count("released"), 1, "the compensation ran");
    assert_eq!(sink.count("confirmed"), 0);
    let events = server.cli_json(&["workflow", "history", "--id", "order-1"])["events"]
        .as_array()
        .unwrap()
        .clone();
    let cancel = events
        .iter()
        .find(|e| e["type"] == "signal_received")
        .unwrap();
    assert_eq!(cancel["name"], "spool.cancel");

    // Cancelling a closed run is refused.
    let again = server.cli(&["workflow", "cancel", "--id", "order-1"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("workflow_closed"));

    // Without a cancel the same workflow confirms.
    let input = serde_json::json!({ "notify_endpoint": sink.url, "sleep_ms": 10 }).to_string();
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "cancellable",
        "--id",
        "order-2",
        "--input",
        &input,
    ]);
    let output = server.cli_json(&["workflow", "result", "--id", "order-2", "--timeout", "30"]);
    assert_eq!(output["outcome"], "confirmed");
}

#[test]
fn queries_read_waiting_restarted_and_finished_runs_without_changing_them() {
    let dir = tempdir();
    let mut server = approval_server(dir.path());
    start_approval(&server, "q1", 600_000);
    let before = server.wait_for_history("q1", Duration::from_secs(20), |t| {
        t.iter().any(|t| t == "timer_started")
    });
    let status = server.cli_json(&["workflow", "query", "--id", "q1", "--name", "status"]);
    assert_eq!(status["decided"], false, "{status}");
    assert_eq!(status["signals_seen"], 0);
    let after = server.cli_json(&["workflow", "history", "--id", "q1"])["events"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, before.len(), "a query journals nothing");

    // After a crash the run is only in the journal: the query replays it.
    server.kill9();
    server.restart();
    let status = server.cli_json(&["workflow", "query", "--id", "q1", "--name", "status"]);
    assert_eq!(status["decided"], false);

    server.cli_ok(&[
        "workflow",
        "signal",
        "--id",
        "q1",
        "--name",
        "approve",
        "--input",
        r#"{"by": "alice"}"#,
    ]);
    let output = server.cli_json(&["workflow", "result", "--id", "q1", "--timeout", "30"]);
    assert_eq!(output["outcome"], "approved");
    let status = server.cli_json(&["workflow", "query", "--id", "q1", "--name", "status"]);
    assert_eq!(
        status["decided"], true,
        "a finished run answers from its final state: {status}"
    );
    assert_eq!(status["outcome"], "approved");
    assert_eq!(status["signals_seen"], 1);

    let unknown = server.cli(&["workflow", "query", "--id", "q1", "--name", "balance"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("query_rejected") && stderr.contains("balance"),
        "{stderr}"
    );
}

/// The continuous example sleeps in each run and continues as new; only its last run
/// reads `tick` signals, so ticks sent to earlier runs must be carried over.
#[test]
fn continue_as_new_starts_a_fresh_run_and_carries_unconsumed_signals_across_a_crash() {
    let dir = tempdir();
    let module = format!("continuous={}", guest("continuous").display());
    let mut server = Server::start(dir.path(), &["--module", &module]);
    let input = r#"{"max_iterations": 3, "sleep_ms": 800}"#;
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "continuous",
        "--id",
        "loop",
        "--input",
        input,
    ]);
    server.wait_for_history("loop", Duration::from_secs(20), |t| {
        t.iter().any(|t| t == "timer_started")
    });
    let first = server.cli_json(&["workflow", "describe", "--id", "loop"]);
    assert_eq!(first["runs"].as_array().unwrap().len(), 1);
    for _ in 0..2 {
        server.cli_ok(&["workflow", "signal", "--id", "loop", "--name", "tick"]);
    }
    assert_eq!(
        server.cli_json(&["workflow", "query", "--id", "loop", "--name", "status"])["iteration"],
        0
    );
    // Crash in the middle of the chain.
    server.kill9();
    server.restart();
    let output = server.cli_json(&["workflow", "result", "--id", "loop", "--timeout", "30"]);
    assert_eq!(output["iterations"], 3, "{output}");
    assert_eq!(
        output["ticks"], 2,
        "signals sent to the first run reached the last one"
    );

    let described = server.cli_json(&["workflow", "describe", "--id", "loop"]);
    let runs = described["runs"].as_array().unwrap().clone();
    let statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        ["completed", "continued_as_new", "continued_as_new"]
    );
    assert_eq!(runs[0]["continued_from"], runs[1]["run_id"]);
    assert_eq!(runs[1]["continued_from"], runs[2]["run_id"]);
    assert!(runs[2]["continued_from"].is_null());
    // Each run has a history of its own; the newest starts empty but for its start.
    let history = server.cli_json(&["workflow", "history", "--id", "loop"])["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(history[0]["type"], "run_started");
    assert_eq!(history[0]["input"]["iteration"], 2);
}
