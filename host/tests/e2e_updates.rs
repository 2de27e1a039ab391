//! End-to-end: updates through the real binary, on the expense-approval example's
//! `amend` update — answered, validated before they are journaled, validated again
//! once the state has changed, asked again by id without a second delivery, and
//! replayed after a SIGKILL.

mod common;

use common::{guest, tempdir, Server, Sink};
use serde_json::{json, Value};
use std::time::Duration;

fn start_expense(server: &Server, sink: &Sink, id: &str) {
    let input = json!({
        "expense_id": id, "amount": 420, "requester": "bob",
        "notify_endpoint": sink.url, "timeout_secs": 600,
    })
    .to_string();
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "expense-approval",
        "--id",
        id,
        "--input",
        &input,
    ]);
    server.wait_for_history(id, Duration::from_secs(20), |t| {
        t.iter().any(|t| t == "timer_started")
    });
}

fn expense_server(dir: &std::path::Path) -> Server {
    let module = format!("expense-approval={}", guest("expense-approval").display());
    Server::start(dir, &["--module", &module])
}

fn history_types(server: &Server, id: &str) -> Vec<String> {
    server.cli_json(&["workflow", "history", "--id", id])["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_owned())
        .collect()
}

fn count(types: &[String], wanted: &str) -> usize {
    types.iter().filter(|t| *t == wanted).count()
}

#[test]
fn an_update_changes_the_state_answers_the_caller_and_survives_sigkill() {
    let dir = tempdir();
    let sink = Sink::start();
    let mut server = expense_server(dir.path());
    start_expense(&server, &sink, "exp-u1");

    let answer = server.cli_json(&[
        "workflow",
        "update",
        "--id",
        "exp-u1",
        "--name",
        "amend",
        "--input",
        r#"{"amount": 380}"#,
    ]);
    assert_eq!(answer["amount"], 380, "{answer}");
    assert_eq!(answer["status"], "pending");
    let status = server.cli_json(&["workflow", "query", "--id", "exp-u1", "--name", "status"]);
    assert_eq!(status["amount"], 380);
    let types = history_types(&server, "exp-u1");
    assert_eq!(count(&types, "update_received"), 1, "{types:?}");
    assert_eq!(count(&types, "update_completed"), 1, "{types:?}");

    // The update is in the journal: after a crash, replay applies it at the same point.
    server.kill9();
    server.restart();
    server.cli_ok(&[
        "workflow",
        "signal",
        "--id",
        "exp-u1",
        "--name",
        "approve",
        "--input",
        r#"{"by": "alice"}"#,
    ]);
    let output = server.cli_json(&["workflow", "result", "--id", "exp-u1", "--timeout", "30"]);
    assert_eq!(output["status"], "approved");
    assert_eq!(output["amount"], 380, "{output}");
    sink.wait_for("approved", 1, Duration::from_secs(10));
}

#[test]
fn a_refused_update_leaves_no_trace_and_a_late_one_is_refused_by_the_new_state() {
    let dir = tempdir();
    let sink = Sink::start();
    let server = expense_server(dir.path());
    start_expense(&server, &sink, "exp-u2");
    let before = history_types(&server, "exp-u2");

    let refused = server.cli(&[
        "workflow",
        "update",
        "--id",
        "exp-u2",
        "--name",
        "amend",
        "--input",
        r#"{"amount": -5}"#,
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("update_rejected") && stderr.contains("must be positive"),
        "{stderr}"
    );
    let unknown = server.cli(&["workflow", "update", "--id", "exp-u2", "--name", "discount"]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("update_rejected") && stderr.contains("amend"),
        "{stderr}"
    );
    assert_eq!(
        history_types(&server, "exp-u2"),
        before,
        "refused updates journal nothing"
    );

    server.cli_ok(&[
        "workflow",
        "signal",
        "--id",
        "exp-u2",
        "--name",
        "reject",
        "--input",
        r#"{"by": "carol"}"#,
    ]);
    let output = server.cli_json(&["workflow", "result", "--id", "exp-u2", "--timeout", "30"]);
    assert_eq!(output["status"], "rejected");
    let closed = server.cli(&[
        "workflow",
        "update",
        "--id",
        "exp-u2",
        "--name",
        "amend",
        "--input",
        r#"{"amount": 1}"#,
    ]);
    let stderr = String::from_utf8_lossy(&closed.stderr);
    assert!(stderr.contains("workflow_closed"), "{stderr}");
}

#[test]
fn asking_again_with_the_same_update_id_returns_the_same_answer_without_reapplying() {
    let dir = tempdir();
    let sink = Sink::start();
    let server = expense_server(dir.path());
    start_expense(&server, &sink, "exp-u3");
    let send = |amount: u32| -> Value {
        let input = json!({ "amount": amount }).to_string();
        server.cli_json(&[
            "workflow",
            "update",
            "--id",
            "exp-u3",
            "--name",
            "amend",
            "--input",
            &input,
            "--update-id",
            "fix-amount-1",
        ])
    };
    assert_eq!(send(300)["amount"], 300);
    // The same id with another input is the same update: its first answer stands.
    assert_eq!(send(999)["amount"], 300);
    let types = history_types(&server, "exp-u3");
    assert_eq!(count(&types, "update_received"), 1, "{types:?}");
    let status = server.cli_json(&["workflow", "query", "--id", "exp-u3", "--name", "status"]);
    assert_eq!(status["amount"], 300);
}
