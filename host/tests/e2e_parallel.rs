//! End-to-end: the parallel example (fan-out/fan-in) through the real binary — many
//! activities at once with results in input order, failed items reported without
//! stopping the others, and a SIGKILL in the middle of a fan-out of HTTP calls after
//! which every item is done at least once and none whose result was journaled is done
//! again.

mod common;

use common::{guest, tempdir, Recorder, Server};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

fn parallel_server(dir: &std::path::Path) -> Server {
    let module = format!("parallel={}", guest("parallel").display());
    Server::start(dir, &["--module", &module])
}

fn run(server: &Server, id: &str, input: &Value) -> Value {
    let input = input.to_string();
    server.cli_ok(&[
        "workflow", "start", "--type", "parallel", "--id", id, "--input", &input,
    ]);
    server.cli(&["workflow", "result", "--id", id, "--timeout", "40"]);
    let run = server.cli_json(&["workflow", "describe", "--id", id]);
    assert_eq!(run["status"], "completed", "{run}\n{}", server.log_tail());
    run["output"].clone()
}

fn history(server: &Server, id: &str) -> Vec<Value> {
    server.cli_json(&["workflow", "history", "--id", id])["events"]
        .as_array()
        .expect("events")
        .clone()
}

/// An `http.request` input POSTing `{"item": i}` to `url`.
fn post(url: &str, i: usize) -> Value {
    json!({ "method": "POST", "url": url, "body": { "item": i } })
}

#[test]
fn a_hundred_echoes_run_at_once_and_come_back_in_input_order() {
    let dir = tempdir();
    let server = parallel_server(dir.path());
    let items: Vec<Value> = (0..100).map(|i| json!({ "n": i })).collect();
    let output = run(&server, "echo-100", &json!({ "items": items }));
    assert_eq!(output["count"], 100);
    assert_eq!(output["results"], json!(items));
    assert_eq!(output["failed"], json!([]));

    // All started before the workflow waited for any of them.
    let types: Vec<String> = history(&server, "echo-100")
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_owned())
        .collect();
    let scheduled = types.iter().filter(|t| *t == "activity_scheduled").count();
    let completed = types.iter().filter(|t| *t == "activity_completed").count();
    assert_eq!((scheduled, completed), (100, 100));
    let first_completed = types
        .iter()
        .position(|t| t == "activity_completed")
        .expect("a completion");
    assert_eq!(
        types[..first_completed]
            .iter()
            .filter(|t| *t == "activity_scheduled")
            .count(),
        100,
        "{types:?}"
    );
}

#[test]
fn failed_items_are_listed_and_do_not_stop_the_others() {
    let dir = tempdir();
    let server = parallel_server(dir.path());
    let services = Recorder::start();
    services.answer("/bad", 422, json!({ "error": "no such item" }));
    let items: Vec<Value> = (0..6)
        .map(|i| {
            let path = if i % 3 == 1 { "bad" } else { "ok" };
            post(&format!("{}/{path}", services.url), i)
        })
        .collect();
    let output = run(
        &server,
        "mixed",
        &json!({ "items": items, "activity": "http.request", "batch": 2 }),
    );
    assert_eq!(output["count"], 6);
    let results = output["results"].as_array().expect("results");
    for (i, result) in results.iter().enumerate() {
        if i % 3 == 1 {
            assert_eq!(result, &Value::Null, "{output}");
        } else {
            assert_eq!(result["status"], 200, "{output}");
            assert_eq!(result["body"]["received"], json!({ "item": i }), "{output}");
        }
    }
    let failed = output["failed"].as_array().expect("failed");
    let indexes: Vec<u64> = failed
        .iter()
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 4], "{output}");
    assert!(failed.iter().all(|f| f["error_type"] == "http_status"));
    // A 4xx is final: one request per item.
    assert_eq!(services.calls().len(), 6);
}

#[test]
fn after_a_sigkill_mid_fan_out_every_item_runs_and_journaled_ones_do_not_run_again() {
    const ITEMS: usize = 50;
    const BATCH: usize = 10;
    let dir = tempdir();
    let mut server = parallel_server(dir.path());
    let services = Recorder::start();
    services.hold("/item", Duration::from_millis(200));
    let url = format!("{}/item", services.url);
    let items: Vec<Value> = (0..ITEMS).map(|i| post(&url, i)).collect();
    let input = json!({ "items": items, "activity": "http.request", "batch": BATCH }).to_string();
    server.cli_ok(&[
        "workflow", "start", "--type", "parallel", "--id", "fan-out", "--input", &input,
    ]);

    let item_of = |body: &Value| body["item"].as_u64().expect("item") as usize;
    services.wait_until(Duration::from_secs(30), "half the items", |calls| {
        let mut seen: Vec<usize> = calls.iter().map(|c| item_of(&c.body)).collect();
        seen.sort();
        seen.dedup();
        seen.len() >= ITEMS / 2
    });
    let kill_ms = UNIX_EPOCH.elapsed().unwrap().as_millis() as u64;
    server.kill9();
    server.restart();

    server.cli(&["workflow", "result", "--id", "fan-out", "--timeout", "40"]);
    let described = server.cli_json(&["workflow", "describe", "--id", "fan-out"]);
    assert_eq!(
        described["status"],
        "completed",
        "{described}\n{}",
        server.log_tail()
    );
    let output = &described["output"];
    assert_eq!(output["count"], ITEMS);
    assert_eq!(output["failed"], json!([]));
    let results = output["results"].as_array().expect("results");
    assert_eq!(results.len(), ITEMS);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["body"]["received"], json!({ "item": i }), "{output}");
    }

    // Requests per item, as the services saw them.
    let mut received: HashMap<usize, usize> = HashMap::new();
    for call in services.calls() {
        *received.entry(item_of(&call.body)).or_default() += 1;
    }
    for i in 0..ITEMS {
        assert!(received.contains_key(&i), "item {i} was never requested");
    }

    // The items whose completion the journal held before the kill.
    let events = history(&server, "fan-out");
    let mut item_of_handle = HashMap::new();
    for event in events.iter().filter(|e| e["type"] == "activity_scheduled") {
        // The API shows an event's JSON input as JSON, not as a string.
        let item = item_of(&event["input"]["body"]);
        item_of_handle.insert(event["handle"].as_u64().expect("handle"), item);
    }
    let journaled_before_kill: Vec<usize> = events
        .iter()
        .filter(|e| e["type"] == "activity_completed")
        .filter(|e| e["recorded_at_ms"].as_u64().expect("recorded_at_ms") < kill_ms)
        .map(|e| item_of_handle[&e["handle"].as_u64().expect("handle")])
        .collect();
    // At most BATCH items are in flight, and the next one starts only once the
    // workflow has seen (so the journal holds) a completion: with half the items
    // requested, at least half minus BATCH had completed before the kill.
    assert!(
        journaled_before_kill.len() >= ITEMS / 2 - BATCH,
        "{journaled_before_kill:?}"
    );
    for item in &journaled_before_kill {
        assert_eq!(
            received[item], 1,
            "item {item} completed before the kill but was requested again"
        );
    }
}
