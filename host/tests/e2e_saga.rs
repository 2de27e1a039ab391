//! End-to-end: the order-saga example through the real binary, against an in-process
//! server standing in for the inventory, payments and shipping services that records
//! the order of the calls — the happy path, a failed step unwound by compensations in
//! reverse order, a SIGKILL in the middle of the saga, and a cancel request.

mod common;

use common::{guest, tempdir, Recorder, Server};
use serde_json::{json, Value};
use std::time::Duration;

const RESERVE: &str = "/inventory/reserve";
const RELEASE: &str = "/inventory/release";
const CHARGE: &str = "/payments/charge";
const REFUND: &str = "/payments/refund";
const SHIP: &str = "/shipping/ship";

fn saga_server(dir: &std::path::Path) -> Server {
    let module = format!("order-saga={}", guest("order-saga").display());
    Server::start(dir, &["--module", &module])
}

/// The three services, answering each step with an id.
fn services() -> Recorder {
    let services = Recorder::start();
    services.answer(RESERVE, 200, json!({ "reservation_id": "res-1" }));
    services.answer(CHARGE, 200, json!({ "charge_id": "ch-1" }));
    services.answer(SHIP, 200, json!({ "shipment_id": "shp-1" }));
    services
}

fn start(server: &Server, services: &Recorder, id: &str) {
    let input = json!({
        "order_id": id,
        "items": ["sku-1", "sku-2"],
        "amount_cents": 4200,
        "inventory_url": format!("{}/inventory", services.url),
        "payments_url": format!("{}/payments", services.url),
        "shipping_url": format!("{}/shipping", services.url),
    })
    .to_string();
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "order-saga",
        "--id",
        id,
        "--input",
        &input,
    ]);
}

/// Waits for the run to end and returns its description.
fn finished(server: &Server, id: &str) -> Value {
    server.cli(&["workflow", "result", "--id", id, "--timeout", "40"]);
    let run = server.cli_json(&["workflow", "describe", "--id", id]);
    assert_ne!(run["status"], "running", "{run}\n{}", server.log_tail());
    run
}

fn failure_details(run: &Value) -> Value {
    let details = run["failure"]["details"]
        .as_str()
        .unwrap_or_else(|| panic!("the failure has details: {run}"));
    serde_json::from_str(details).expect("details are JSON")
}

fn body_of(services: &Recorder, path: &str) -> Value {
    services
        .calls()
        .into_iter()
        .find(|c| c.path == path)
        .unwrap_or_else(|| panic!("no call to {path}"))
        .body
}

#[test]
fn the_happy_path_reserves_charges_and_ships_in_order_without_compensating() {
    let dir = tempdir();
    let server = saga_server(dir.path());
    let services = services();
    start(&server, &services, "order-1");

    let run = finished(&server, "order-1");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        run["output"],
        json!({
            "order_id": "order-1",
            "reservation": { "reservation_id": "res-1" },
            "charge": { "charge_id": "ch-1" },
            "shipment": { "shipment_id": "shp-1" },
        })
    );
    assert_eq!(services.paths(), [RESERVE, CHARGE, SHIP]);
    assert_eq!(
        body_of(&services, RESERVE),
        json!({ "order_id": "order-1", "items": ["sku-1", "sku-2"] })
    );
    assert_eq!(
        body_of(&services, CHARGE),
        json!({ "order_id": "order-1", "amount_cents": 4200 })
    );

    let status = server.cli_json(&["workflow", "query", "--id", "order-1", "--name", "status"]);
    assert_eq!(status["stage"], "completed", "{status}");
    assert_eq!(status["completed"], json!(["reserve", "charge", "ship"]));
    assert_eq!(status["compensated"], json!([]));
}

#[test]
fn a_failed_step_undoes_the_completed_ones_in_reverse_order_and_fails_with_its_error() {
    let dir = tempdir();
    let server = saga_server(dir.path());
    let services = services();
    services.answer(SHIP, 422, json!({ "error": "address undeliverable" }));
    start(&server, &services, "order-2");

    let run = finished(&server, "order-2");
    assert_eq!(services.paths(), [RESERVE, CHARGE, SHIP, REFUND, RELEASE]);
    // Each compensation names what it undoes, with the service's own answer.
    assert_eq!(
        body_of(&services, REFUND),
        json!({ "order_id": "order-2", "amount_cents": 4200, "charge": { "charge_id": "ch-1" } })
    );
    assert_eq!(
        body_of(&services, RELEASE),
        json!({ "order_id": "order-2", "reservation": { "reservation_id": "res-1" } })
    );

    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["failure"]["error_type"], "http_status");
    assert!(
        run["failure"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("ship:") && m.contains("422")),
        "{run}"
    );
    let details = failure_details(&run);
    assert_eq!(details["failed_step"], "ship");
    assert_eq!(details["completed"], json!(["reserve", "charge"]));
    assert_eq!(details["compensated"], json!(["refund", "release"]));
    assert_eq!(details["compensation_failures"], json!([]));
    assert_eq!(
        details["error_details"],
        json!({ "error": "address undeliverable" })
    );
}

#[test]
fn a_compensation_that_fails_is_recorded_and_the_others_still_run() {
    let dir = tempdir();
    let server = saga_server(dir.path());
    let services = services();
    services.answer(SHIP, 422, json!({ "error": "address undeliverable" }));
    // A 4xx is final, so the refund fails without retries.
    services.answer(REFUND, 409, json!({ "error": "charge already settled" }));
    start(&server, &services, "order-3");

    let run = finished(&server, "order-3");
    assert_eq!(services.paths(), [RESERVE, CHARGE, SHIP, REFUND, RELEASE]);
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["failure"]["error_type"], "http_status");
    let details = failure_details(&run);
    assert_eq!(details["compensated"], json!(["release"]));
    let failures = details["compensation_failures"].as_array().expect("array");
    assert_eq!(failures.len(), 1, "{details}");
    assert_eq!(failures[0]["compensation"], "refund");
    assert_eq!(failures[0]["error_type"], "http_status");
}

#[test]
fn after_a_sigkill_in_the_middle_of_the_saga_each_compensation_runs_exactly_once() {
    let dir = tempdir();
    let mut server = saga_server(dir.path());
    let services = services();
    services.answer(SHIP, 422, json!({ "error": "address undeliverable" }));
    services.hold(SHIP, Duration::from_millis(1_500));
    start(&server, &services, "order-4");

    // Reserved and charged; the shipping call is in flight.
    services.wait_until(Duration::from_secs(30), "a ship call", |calls| {
        calls.iter().any(|c| c.path == SHIP)
    });
    server.kill9();
    server.restart();

    let run = finished(&server, "order-4");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["failure"]["error_type"], "http_status");
    assert_eq!(
        failure_details(&run)["compensated"],
        json!(["refund", "release"])
    );

    let paths = services.paths();
    // The steps whose answers were journaled ran once; the ship call that was in
    // flight ran again after the restart (at least once), then the compensations, once
    // each, after the last ship call and newest first.
    assert_eq!(services.count(RESERVE), 1, "{paths:?}");
    assert_eq!(services.count(CHARGE), 1, "{paths:?}");
    assert!(services.count(SHIP) >= 1, "{paths:?}");
    let ships = paths.iter().filter(|p| *p == SHIP).count();
    assert_eq!(&paths[..2], [RESERVE, CHARGE], "{paths:?}");
    assert_eq!(
        &paths[2..],
        [vec![SHIP; ships], vec![REFUND, RELEASE]].concat(),
        "{paths:?}"
    );
}

#[test]
fn a_cancel_request_during_the_saga_undoes_the_completed_steps_and_ends_cancelled() {
    let dir = tempdir();
    let server = saga_server(dir.path());
    let services = services();
    services.hold(CHARGE, Duration::from_millis(3_000));
    start(&server, &services, "order-5");

    services.wait_until(Duration::from_secs(30), "a charge call", |calls| {
        calls.iter().any(|c| c.path == CHARGE)
    });
    server.cli_ok(&[
        "workflow",
        "cancel",
        "--id",
        "order-5",
        "--reason",
        "customer changed their mind",
    ]);

    let run = finished(&server, "order-5");
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(run["failure"]["kind"], "cancelled");
    assert!(
        run["failure"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("customer changed their mind")),
        "{run}"
    );
    // The charge in flight was waited for, so it is refunded too; nothing shipped.
    assert_eq!(services.paths(), [RESERVE, CHARGE, REFUND, RELEASE]);
    let details = failure_details(&run);
    assert_eq!(details["completed"], json!(["reserve", "charge"]));
    assert_eq!(details["compensated"], json!(["refund", "release"]));
}
