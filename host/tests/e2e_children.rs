//! End-to-end: child workflows through the real binary — results and failures flowing
//! to the parent, the links in `list` and `describe`, parent-close policies,
//! cancellation flowing down, id conflicts, and a SIGKILL while a child runs.
//!
//! Every test uses the `family` guest: one module that is parent or child by its input.

mod common;

use common::{guest, tempdir, Server};
use serde_json::{json, Value};
use std::time::Duration;

fn family_server(dir: &std::path::Path) -> Server {
    let module = format!("family={}", guest("family").display());
    Server::start(dir, &["--module", &module])
}

fn start(server: &Server, id: &str, input: &Value) {
    let input = input.to_string();
    server.cli_ok(&[
        "workflow", "start", "--type", "family", "--id", id, "--input", &input,
    ]);
}

fn describe(server: &Server, id: &str) -> Value {
    server.cli_json(&["workflow", "describe", "--id", id])
}

/// Waits (up to 30 s) until the workflow's newest run has `status`.
fn wait_for_status(server: &Server, id: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let run = describe(server, id);
        if run["status"] == status {
            return run;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never became {status}: {run}\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn child(value: Value) -> Value {
    json!({ "role": "child", "value": value })
}

#[test]
fn a_parent_gets_each_childs_result_or_failure_and_children_link_to_it() {
    let dir = tempdir();
    let server = family_server(dir.path());
    let input = json!({ "role": "parent", "wait": true, "children": [
        { "id": "kid-ok", "input": child(json!("apples")) },
        { "id": "kid-bad", "input": { "role": "child", "value": 1, "fail": "out_of_stock" } },
        // No id: the default names the parent and the handle.
        { "input": { "role": "child", "value": "chain", "continue_times": 2 } },
    ]});
    start(&server, "family-1", &input);

    let output = server.cli_json(&["workflow", "result", "--id", "family-1", "--timeout", "30"]);
    let results = output["results"].as_array().expect("results").clone();
    assert_eq!(results[0], json!({ "id": "kid-ok", "ok": "apples" }));
    assert_eq!(results[1]["id"], "kid-bad");
    assert_eq!(results[1]["error"]["type"], "out_of_stock");
    assert_eq!(results[1]["error"]["kind"], "Application");
    // A child that continues as new is followed to the end of its chain.
    assert_eq!(
        results[2],
        json!({ "id": "family-1.child-3", "ok": "chain" })
    );
    let chain = describe(&server, "family-1.child-3");
    assert_eq!(chain["runs"].as_array().map(Vec::len), Some(3), "{chain}");

    let children = server.cli_json(&["workflow", "list", "--parent", "family-1"]);
    let mut ids: Vec<&str> = children["workflows"]
        .as_array()
        .expect("workflows")
        .iter()
        .map(|r| r["workflow_id"].as_str().expect("id"))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, ["family-1.child-3", "kid-bad", "kid-ok"]);

    let parent = describe(&server, "family-1");
    let kid = describe(&server, "kid-ok");
    assert_eq!(kid["parent"]["workflow_id"], "family-1");
    assert_eq!(kid["parent"]["run_id"], parent["run_id"]);
    assert_eq!(kid["parent"]["close_policy"], "terminate");
    assert_eq!(describe(&server, "kid-bad")["status"], "failed");

    let history = server.cli_json(&["workflow", "history", "--id", "family-1"]);
    let types: Vec<&str> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types.iter().filter(|t| **t == "child_scheduled").count(), 3);
    assert_eq!(types.iter().filter(|t| **t == "child_completed").count(), 2);
    assert_eq!(types.iter().filter(|t| **t == "child_failed").count(), 1);
}

#[test]
fn parent_close_policies_terminate_cancel_or_abandon_the_children_still_running() {
    let dir = tempdir();
    let server = family_server(dir.path());
    let sleeper = json!({ "role": "child", "value": 0, "sleep_ms": 600_000 });
    let input = json!({ "role": "parent", "wait": false, "children": [
        { "id": "kid-terminate", "policy": "terminate", "input": sleeper },
        { "id": "kid-cancel", "policy": "request_cancel", "input": sleeper },
        { "id": "kid-abandon", "policy": "abandon", "input": sleeper },
    ]});
    start(&server, "family-2", &input);
    let output = server.cli_json(&["workflow", "result", "--id", "family-2", "--timeout", "30"]);
    assert_eq!(
        output["started"],
        json!(["kid-terminate", "kid-cancel", "kid-abandon"])
    );

    let terminated = wait_for_status(&server, "kid-terminate", "terminated");
    assert!(
        terminated["failure"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("family-2")),
        "{terminated}"
    );
    let cancelled = wait_for_status(&server, "kid-cancel", "cancelled");
    assert_eq!(cancelled["failure"]["kind"], "cancelled");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(describe(&server, "kid-abandon")["status"], "running");
    server.cli_ok(&[
        "workflow",
        "terminate",
        "--id",
        "kid-abandon",
        "--reason",
        "test over",
    ]);
}

#[test]
fn cancelling_a_parent_cancels_its_children_and_it_sees_their_outcome() {
    let dir = tempdir();
    let server = family_server(dir.path());
    let sleeper = json!({ "role": "child", "value": 0, "sleep_ms": 600_000 });
    // kid-b is abandoned: not cancelled with its parent, it ends on its own.
    let napper = json!({ "role": "child", "value": "rested", "sleep_ms": 2_000 });
    let input = json!({ "role": "parent", "wait": true, "children": [
        { "id": "kid-a", "input": sleeper },
        { "id": "kid-b", "policy": "abandon", "input": napper },
    ]});
    start(&server, "family-3", &input);
    for kid in ["kid-a", "kid-b"] {
        server.wait_for_history(kid, Duration::from_secs(20), |t| {
            t.iter().any(|t| t == "timer_started")
        });
    }
    server.cli_ok(&[
        "workflow",
        "cancel",
        "--id",
        "family-3",
        "--reason",
        "order withdrawn",
    ]);

    let parent = wait_for_status(&server, "family-3", "cancelled");
    let kid = wait_for_status(&server, "kid-a", "cancelled");
    assert!(
        kid["failure"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("family-3") && m.contains("order withdrawn")),
        "{kid}"
    );
    // After its cancel the parent waited for each child's own outcome: kid-a's
    // cancellation, and kid-b's result, which its cancel did not reach.
    let details: Value = serde_json::from_str(
        parent["failure"]["details"]
            .as_str()
            .expect("the parent's failure has details"),
    )
    .expect("details are JSON");
    assert_eq!(details[0]["id"], "kid-a");
    assert_eq!(details[0]["error"]["kind"], "Cancelled");
    assert_eq!(details[1], json!({ "id": "kid-b", "ok": "rested" }));
    assert_eq!(describe(&server, "kid-b")["status"], "completed");
}

#[test]
fn a_child_id_that_is_taken_fails_the_handle_not_the_other_run() {
    let dir = tempdir();
    let server = family_server(dir.path());
    let sleeper = json!({ "role": "child", "value": 0, "sleep_ms": 600_000 });
    start(&server, "busy", &sleeper);
    let input = json!({ "role": "parent", "wait": true, "children": [
        { "id": "busy", "input": child(json!(1)) },
    ]});
    start(&server, "family-4", &input);
    let output = server.cli_json(&["workflow", "result", "--id", "family-4", "--timeout", "30"]);
    assert_eq!(output["results"][0]["error"]["type"], "already_running");
    let busy = describe(&server, "busy");
    assert_eq!(busy["status"], "running");
    assert!(busy["parent"].is_null(), "{busy}");
}

#[test]
fn a_parent_and_its_child_survive_sigkill_and_the_child_starts_once() {
    let dir = tempdir();
    let mut server = family_server(dir.path());
    let input = json!({ "role": "parent", "wait": true, "children": [
        { "id": "kid-slow", "input": { "role": "child", "value": "late", "sleep_ms": 1_500 } },
    ]});
    start(&server, "family-5", &input);
    server.wait_for_history("kid-slow", Duration::from_secs(20), |t| {
        t.iter().any(|t| t == "timer_started")
    });
    server.kill9();
    server.restart();

    let output = server.cli_json(&["workflow", "result", "--id", "family-5", "--timeout", "30"]);
    assert_eq!(
        output["results"][0],
        json!({ "id": "kid-slow", "ok": "late" })
    );
    let runs = describe(&server, "kid-slow")["runs"].clone();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
}

/// The child-workflows example: one `onboarding` child per member, collected as they
/// finish; the children link to the team's run and each sent its emails once.
#[test]
fn the_team_onboarding_example_onboards_every_member_through_a_child() {
    let dir = tempdir();
    let sink = common::Sink::start();
    let onboarding = format!("onboarding={}", guest("onboarding").display());
    let team = format!("team-onboarding={}", guest("team-onboarding").display());
    let server = Server::start(dir.path(), &["--module", &onboarding, "--module", &team]);
    let input = json!({
        "team": "apollo", "members": ["ada", "grace", "alan"],
        "email_endpoint": sink.url, "follow_up_secs": 1,
    })
    .to_string();
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "team-onboarding",
        "--id",
        "team-apollo",
        "--input",
        &input,
    ]);
    let progress = server.cli_json(&[
        "workflow",
        "query",
        "--id",
        "team-apollo",
        "--name",
        "progress",
    ]);
    assert!(progress["pending"].is_array(), "{progress}");

    let output = server.cli_json(&[
        "workflow",
        "result",
        "--id",
        "team-apollo",
        "--timeout",
        "30",
    ]);
    let mut onboarded: Vec<&str> = output["onboarded"]
        .as_array()
        .expect("onboarded")
        .iter()
        .map(|m| m.as_str().expect("member"))
        .collect();
    onboarded.sort();
    assert_eq!(onboarded, ["ada", "alan", "grace"], "{output}");
    assert_eq!(output["failed"], json!([]));
    assert_eq!(output["pending"], json!([]));

    let children = server.cli_json(&["workflow", "list", "--parent", "team-apollo"]);
    let children = children["workflows"].as_array().expect("workflows");
    assert_eq!(children.len(), 3);
    for child in children {
        assert_eq!(child["workflow_type"], "onboarding");
        assert_eq!(child["status"], "completed");
        assert_eq!(child["parent"]["workflow_id"], "team-apollo");
    }
    assert_eq!(sink.count("welcome"), 3);
    assert_eq!(sink.count("follow-up"), 3);
}
