//! End-to-end: activities on remote workers through task queues, served by the Python
//! worker library (`workers/python`) against the real binary — results and typed
//! failures, a worker killed mid-task (its lease lapses at the heartbeat timeout and
//! another worker resumes from the last heartbeat's details), and a queue nobody
//! serves (schedule-to-start timeout).

mod common;

use common::{guest, tempdir, Server};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The example Python worker, serving `queue`; its output lines arrive on `lines`.
struct PythonWorker {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl PythonWorker {
    fn start(server: &Server, queue: &str) -> Self {
        Self::start_in(server, queue, "default", None)
    }

    /// A worker of `namespace`, showing `api_key` (production servers).
    fn start_in(server: &Server, queue: &str, namespace: &str, api_key: Option<&str>) -> Self {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workers/python/example_worker.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .args(["--address", &server.address, "--queue", queue])
            .args(["--namespace", namespace])
            .env_remove("SPOOL_API_KEY");
        if let Some(key) = api_key {
            command.env("SPOOL_API_KEY", key);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the example Python worker");
        let stdout = child.stdout.take().expect("worker stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self { child, lines }
    }

    /// Waits (up to 20 s) for an output line containing `text`.
    fn wait_for(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("the worker never printed {text:?}"),
            }
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PythonWorker {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn relay_server(dir: &std::path::Path) -> Server {
    let module = format!("relay={}", guest("relay").display());
    Server::start(dir, &["--module", &module])
}

fn start_relay(server: &Server, id: &str, input: &Value) {
    let input = input.to_string();
    server.cli_ok(&[
        "workflow", "start", "--type", "relay", "--id", id, "--input", &input,
    ]);
}

fn result(server: &Server, id: &str) -> Value {
    server.cli_json(&["workflow", "result", "--id", id, "--timeout", "30"])
}

#[test]
fn a_python_worker_runs_activities_and_reports_typed_failures() {
    let dir = tempdir();
    let server = relay_server(dir.path());
    let _worker = PythonWorker::start(&server, "media");

    start_relay(
        &server,
        "shout",
        &json!({ "activity": "text.shout", "input": "hello", "task_queue": "media" }),
    );
    assert_eq!(result(&server, "shout"), json!("HELLO"));

    // Non-retryable: one attempt, although five are allowed.
    start_relay(
        &server,
        "reject",
        &json!({ "activity": "media.reject", "task_queue": "media", "max_attempts": 5 }),
    );
    let failed = server.cli(&["workflow", "result", "--id", "reject", "--timeout", "30"]);
    assert!(!failed.status.success());
    let run = server.cli_json(&["workflow", "describe", "--id", "reject"]);
    assert_eq!(run["failure"]["error_type"], "unsupported_format", "{run}");
    let history = server.cli_json(&["workflow", "history", "--id", "reject"]);
    let failed_event = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["type"] == "activity_failed")
        .expect("an activity_failed event")
        .clone();
    assert_eq!(failed_event["attempts"], 1, "{failed_event}");
}

#[test]
fn a_worker_killed_mid_task_loses_its_lease_and_another_resumes_from_its_heartbeat() {
    let dir = tempdir();
    let server = relay_server(dir.path());
    let mut first = PythonWorker::start(&server, "media");
    start_relay(
        &server,
        "transcode",
        &json!({
            "activity": "media.transcode", "task_queue": "media",
            "input": { "chunks": 8, "secs_per_chunk": 0.1 },
            "heartbeat_ms": 1_000, "start_to_close_ms": 60_000, "max_attempts": 5,
        }),
    );
    first.wait_for("took media.transcode attempt 1 at chunk 0");
    first.wait_for("chunk 2 done");
    first.kill9();
    let second = PythonWorker::start(&server, "media");

    let output = result(&server, "transcode");
    assert_eq!(output["chunks"], 8);
    assert_eq!(output["attempt"], 2, "{output}");
    let resumed_at = output["resumed_at"].as_u64().expect("resumed_at");
    assert!(
        (3..8).contains(&resumed_at),
        "the second attempt resumed from the first one's last heartbeat: {output}"
    );
    second.wait_for("done media.transcode");

    let history = server.cli_json(&["workflow", "history", "--id", "transcode"]);
    let attempts = history["failed_attempts"]
        .as_array()
        .expect("failed_attempts");
    assert_eq!(attempts.len(), 1, "{history}");
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["failure"]["error_type"], "heartbeat_timeout");
    assert_eq!(attempts[0]["failure"]["kind"], "timeout");
}

#[test]
fn an_attempt_nobody_takes_fails_at_its_schedule_to_start_timeout() {
    let dir = tempdir();
    let server = relay_server(dir.path());
    start_relay(
        &server,
        "unserved",
        &json!({
            "activity": "text.shout", "task_queue": "nobody-polls-this",
            "schedule_to_start_ms": 300, "max_attempts": 5,
        }),
    );
    let failed = server.cli(&["workflow", "result", "--id", "unserved", "--timeout", "30"]);
    assert!(!failed.status.success());
    let run = server.cli_json(&["workflow", "describe", "--id", "unserved"]);
    assert_eq!(
        run["failure"]["error_type"], "schedule_to_start_timeout",
        "{run}"
    );
    assert_eq!(run["failure"]["kind"], "timeout");
}

#[test]
fn a_workflow_cancels_a_remote_activity_and_its_worker_hears_it_on_its_heartbeat() {
    let dir = tempdir();
    let server = relay_server(dir.path());
    let worker = PythonWorker::start(&server, "media");
    start_relay(
        &server,
        "cancel-remote",
        &json!({
            "activity": "media.transcode", "task_queue": "media",
            "input": { "chunks": 600, "secs_per_chunk": 0.05 },
            "heartbeat_ms": 5_000, "start_to_close_ms": 60_000, "cancel_after_ms": 300,
        }),
    );
    let output = result(&server, "cancel-remote");
    assert_eq!(
        output,
        json!({ "cancelled": true, "error_type": "activity_cancelled" })
    );
    worker.wait_for("media.transcode attempt 1 stopped");
    let history = server.cli_json(&["workflow", "history", "--id", "cancel-remote"]);
    let types: Vec<&str> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    let requested = types.iter().position(|t| *t == "activity_cancel_requested");
    let failed = types.iter().position(|t| *t == "activity_failed");
    assert!(
        requested.is_some() && requested < failed,
        "the cancel request is journaled before the cancelled result: {types:?}"
    );
}

#[test]
fn a_workflow_cancels_an_activity_running_in_the_host() {
    let dir = tempdir();
    let sink = common::Sink::start();
    sink.hold("slow", Duration::from_secs(30));
    let server = relay_server(dir.path());
    let request = json!({
        "method": "POST", "url": sink.url, "headers": { "content-type": "application/json" },
        "body": { "template": "slow" },
    });
    start_relay(
        &server,
        "cancel-local",
        &json!({ "activity": "http.request", "input": request, "cancel_after_ms": 1_000,
                 "start_to_close_ms": 60_000 }),
    );
    let output = result(&server, "cancel-local");
    assert_eq!(output["cancelled"], true, "{output}");
    assert_eq!(
        sink.count("slow"),
        1,
        "the request was sent once, then abandoned"
    );
}

#[test]
fn in_production_a_worker_authenticates_with_its_namespace_key() {
    let dir = tempdir();
    let server = Server::start_production(dir.path(), "[namespaces.media]\n[namespaces.other]\n");
    let key = |ns: &str| {
        server.cli_json(&["namespace", "key", "create", ns])["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (media, other) = (key("media"), key("other"));
    let as_media = |args: &[&str]| {
        let mut all = vec!["--namespace", "media"];
        all.extend_from_slice(args);
        let out = server.cli_with_key(Some(&media), &all);
        assert!(out.status.success(), "{args:?}: {out:?}");
        out
    };
    let relay = guest("relay");
    as_media(&[
        "module",
        "upload",
        relay.to_str().unwrap(),
        "--name",
        "relay",
    ]);
    let input = json!({ "activity": "text.shout", "input": "quiet", "task_queue": "media" });
    as_media(&[
        "workflow",
        "start",
        "--type",
        "relay",
        "--id",
        "shout",
        "--input",
        &input.to_string(),
    ]);

    // A key of another namespace finds no such queue, and takes nothing from it.
    let poll = reqwest::blocking::Client::new()
        .post(format!(
            "{}/api/v1/namespaces/media/task-queues/media/poll",
            server.address
        ))
        .bearer_auth(&other)
        .json(&json!({ "wait_secs": 0 }))
        .send()
        .unwrap();
    assert_eq!(poll.status().as_u16(), 404);

    let worker = PythonWorker::start_in(&server, "media", "media", Some(&media));
    worker.wait_for("took text.shout attempt 1");
    let out = as_media(&["workflow", "result", "--id", "shout", "--timeout", "30"]);
    let output: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output, json!("QUIET"));
}
