//! Namespaces, API keys and quotas against the real binary in production mode
//! (`spool server start --config`): what a tenant can reach with its key, what it
//! cannot see, and what it is refused when over a quota.

mod common;

use common::{tempdir, Server, ADMIN_KEY};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::time::Duration;

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A raw API call: (status, headers' Retry-After, JSON body or Null).
fn call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let mut request = http().request(method, format!("{}/api/v1{path}", server.address));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().expect("reach the server");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, retry_after, body)
}

fn get(server: &Server, path: &str, key: Option<&str>) -> (u16, Value) {
    let (status, _, body) = call(server, reqwest::Method::GET, path, key, None);
    (status, body)
}

fn post(
    server: &Server,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> (u16, Option<String>, Value) {
    call(server, reqwest::Method::POST, path, key, Some(body))
}

/// Creates a key for `namespace` through the CLI (admin key) and returns it.
fn new_key(server: &Server, namespace: &str, extra: &[&str]) -> String {
    let mut args = vec!["namespace", "key", "create", namespace];
    args.extend_from_slice(extra);
    let created = server.cli_json(&args);
    created["key"]
        .as_str()
        .expect("the key is shown")
        .to_owned()
}

/// Uploads the steps guest into `ns` and runs one workflow there to the end.
fn run_steps(server: &Server, key: &str, ns: &str, id: &str) -> Value {
    let upload = server.upload_in(key, ns, "steps", "steps");
    assert!(upload.status.success(), "{upload:?}");
    let done = server.cli_with_key(
        Some(key),
        &[
            "--namespace",
            ns,
            "workflow",
            "start",
            "--type",
            "steps",
            "--id",
            id,
            "--input",
            r#"{"steps": 3, "mode": "sequential"}"#,
        ],
    );
    assert!(done.status.success(), "{done:?}");
    let result = server.cli_with_key(
        Some(key),
        &["--namespace", ns, "workflow", "result", "--id", id],
    );
    assert!(result.status.success(), "{result:?}\n{}", server.log_tail());
    serde_json::from_slice(&result.stdout).unwrap()
}

const TWO_TENANTS: &str = "[namespaces.acme]\n[namespaces.beta]\n";

#[test]
fn every_request_needs_a_valid_key_and_a_key_sees_only_its_namespace() {
    let dir = tempdir();
    let server = Server::start_production(dir.path(), TWO_TENANTS);
    let acme = new_key(&server, "acme", &["--label", "ci"]);
    let beta = new_key(&server, "beta", &[]);

    // No key, a malformed key, a made-up key of the right shape: 401, nothing else said.
    let forged = "spool_0123456789ab_0123456789abcdef0123456789abcdef";
    for key in [None, Some("hunter2"), Some(forged)] {
        let (status, body) = get(&server, "/namespaces/acme/workflows", key);
        assert_eq!(status, 401, "{key:?}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated");
    }
    // Health needs no key (load balancers).
    assert_eq!(get(&server, "/health", None).0, 200);

    let output = run_steps(&server, &acme, "acme", "order-1");
    assert_eq!(output["sum"], 6, "{output}");

    // beta's key on acme's workflow: the same 404 as a namespace that does not exist.
    let (status, foreign) = get(&server, "/namespaces/acme/workflows/order-1", Some(&beta));
    assert_eq!(status, 404, "{foreign}");
    let (status, missing) = get(&server, "/namespaces/nosuch/workflows/order-1", Some(&beta));
    assert_eq!(status, 404, "{missing}");
    assert_eq!(foreign["error"]["code"], missing["error"]["code"]);
    assert_eq!(
        foreign["error"]["message"]
            .as_str()
            .unwrap()
            .replace("acme", "X"),
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .replace("nosuch", "X"),
        "the two refusals must read alike"
    );
    // Every route under another namespace is closed to it, writes included.
    let (status, _, _) = post(
        &server,
        "/namespaces/acme/workflows",
        Some(&beta),
        json!({"workflow_id": "intruder", "workflow_type": "steps", "input": {"steps": 1}}),
    );
    assert_eq!(status, 404);
    let (status, _, _) = post(
        &server,
        "/namespaces/acme/workflows/order-1/signals",
        Some(&beta),
        json!({"name": "x"}),
    );
    assert_eq!(status, 404);
    // beta's own namespace does not hold acme's workflow or module.
    let (status, _) = get(&server, "/namespaces/beta/workflows/order-1", Some(&beta));
    assert_eq!(status, 404);
    let (_, listed) = get(&server, "/namespaces/beta/workflows", Some(&beta));
    assert_eq!(listed["workflows"], json!([]));
    let (_, modules) = get(&server, "/namespaces/beta/modules", Some(&beta));
    assert_eq!(modules["modules"], json!([]));

    // A namespace key cannot manage namespaces; the admin key can see everything.
    let (status, body) = get(&server, "/admin/namespaces", Some(&acme));
    assert_eq!(status, 403, "{body}");
    let (status, _) = get(
        &server,
        "/namespaces/acme/workflows/order-1",
        Some(ADMIN_KEY),
    );
    assert_eq!(status, 200);
    // A tenant may read its own namespace (quotas and usage), not another's.
    let (status, own) = get(&server, "/namespaces/acme", Some(&acme));
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["name"], "acme");
    assert!(own["usage"]["runs"].as_u64() == Some(1), "{own}");
    assert_eq!(get(&server, "/namespaces/beta", Some(&acme)).0, 404);
}

#[test]
fn keys_are_stored_hashed_survive_restarts_and_can_be_revoked_or_expire() {
    let dir = tempdir();
    let mut server = Server::start_production(dir.path(), TWO_TENANTS);
    let key = new_key(&server, "acme", &["--label", "deploy"]);
    let short = new_key(&server, "acme", &["--expires-in-secs", "1"]);
    assert_eq!(
        get(&server, "/namespaces/acme/workflows", Some(&key)).0,
        200
    );
    assert_eq!(
        get(&server, "/namespaces/acme/workflows", Some(&short)).0,
        200
    );

    // Listed without the key itself.
    let listed = server.cli_json(&["namespace", "key", "list", "acme"]);
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["label"], "deploy");
    assert!(!listed.to_string().contains(&key[20..]), "{listed}");

    // The journal holds no key, only hashes.
    server.restart();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(&key), "{} holds the key", path.display());
        }
    }
    // Still valid after the restart.
    assert_eq!(
        get(&server, "/namespaces/acme/workflows", Some(&key)).0,
        200
    );

    std::thread::sleep(Duration::from_millis(1_200));
    let (status, body) = get(&server, "/namespaces/acme/workflows", Some(&short));
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );

    let key_id = keys[0]["key_id"].as_str().unwrap();
    server.cli_ok(&["namespace", "key", "revoke", "acme", key_id]);
    let (status, body) = get(&server, "/namespaces/acme/workflows", Some(&key));
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );
    // Revoking a key through another namespace's path finds nothing.
    let other = new_key(&server, "beta", &[]);
    let other_id = &other["spool_".len().."spool_".len() + 12];
    let out = server.cli(&["namespace", "key", "revoke", "acme", other_id]);
    assert!(!out.status.success());
    assert_eq!(
        get(&server, "/namespaces/beta/workflows", Some(&other)).0,
        200
    );
}

#[test]
fn namespaces_are_managed_through_the_cli_and_deleted_with_their_data() {
    let dir = tempdir();
    let server = Server::start_production(dir.path(), "");
    let created = server.cli_json(&[
        "namespace",
        "create",
        "gamma",
        "--quota",
        "max_running_workflows=5",
        "--quota",
        "starts_per_second=2.5",
    ]);
    assert_eq!(created["quotas"]["max_running_workflows"], 5);
    assert_eq!(created["quotas"]["starts_per_second"], 2.5);

    let again = server.cli(&["namespace", "create", "gamma"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = server.cli(&["namespace", "create", "a/b"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("namespace"),
        "{bad:?}"
    );
    let bad = server.cli(&[
        "namespace",
        "create",
        "delta",
        "--quota",
        "fuel_per_activation=1",
    ]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("fuel_per_activation"),
        "{bad:?}"
    );

    let names: Vec<String> = server.cli_json(&["namespace", "list"])["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["default", "gamma"]);

    let changed = server.cli_json(&[
        "namespace",
        "set-quotas",
        "gamma",
        "--quota",
        "max_running_workflows=0",
    ]);
    assert_eq!(changed["quotas"]["max_running_workflows"], Value::Null);
    assert_eq!(changed["quotas"]["starts_per_second"], 2.5, "untouched");

    let key = new_key(&server, "gamma", &[]);
    let described = server.cli_with_key(
        Some(&key),
        &["--namespace", "gamma", "namespace", "describe"],
    );
    assert!(described.status.success(), "{described:?}");

    // A namespace with an open run is not deleted; once closed, it goes with its data.
    server.upload_in(&key, "gamma", "steps", "steps");
    let started = server.cli_with_key(
        Some(&key),
        &[
            "--namespace",
            "gamma",
            "workflow",
            "start",
            "--type",
            "steps",
            "--id",
            "slow",
            "--input",
            r#"{"steps": 1, "mode": "sequential", "sleep_ms": 60000}"#,
        ],
    );
    assert!(started.status.success(), "{started:?}");
    let refused = server.cli(&["namespace", "delete", "gamma"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("open runs"),
        "{refused:?}"
    );
    server.cli_ok(&[
        "--namespace",
        "gamma",
        "workflow",
        "terminate",
        "--id",
        "slow",
    ]);
    server.cli_ok(&["namespace", "delete", "gamma"]);
    assert_eq!(
        get(&server, "/namespaces/gamma/workflows", Some(&key)).0,
        401
    );
    assert_eq!(
        get(&server, "/admin/namespaces/gamma", Some(ADMIN_KEY)).0,
        404
    );
    let again = server.cli(&["namespace", "delete", "gamma"]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not found"),
        "{again:?}"
    );
    // The name can be used again, empty.
    server.cli_ok(&["namespace", "create", "gamma"]);
    let fresh = server.cli_json(&["--namespace", "gamma", "workflow", "list"]);
    assert_eq!(fresh["workflows"], json!([]));
}

#[test]
fn quotas_refuse_starts_payloads_and_modules_naming_the_quota() {
    let dir = tempdir();
    let server = Server::start_production(
        dir.path(),
        "[namespaces.small]\nmax_running_workflows = 2\nmax_payload_bytes = 2048\n\
         max_module_bytes = 4096\n\
         [namespaces.slow]\nstarts_per_second = 0.5\nstart_burst = 2\n",
    );
    // The module quota refuses before anything is compiled or stored.
    let small = new_key(&server, "small", &[]);
    let upload = server.upload_in(&small, "small", "steps", "steps");
    assert!(!upload.status.success());
    let stderr = String::from_utf8_lossy(&upload.stderr);
    assert!(
        stderr.contains("max_module_bytes") && stderr.contains("quota_exceeded"),
        "{stderr}"
    );
    server.cli_ok(&[
        "namespace",
        "set-quotas",
        "small",
        "--quota",
        &format!("max_module_bytes={}", 64 << 20),
    ]);
    let upload = server.upload_in(&small, "small", "steps", "steps");
    assert!(upload.status.success(), "{upload:?}");

    // Two open runs are the most; the third start is refused until one closes.
    let start = |key: &str, ns: &str, id: &str, input: Value| {
        post(
            &server,
            &format!("/namespaces/{ns}/workflows"),
            Some(key),
            json!({"workflow_id": id, "workflow_type": "steps", "input": input}),
        )
    };
    let waiting = json!({"steps": 1, "mode": "sequential", "sleep_ms": 60000});
    assert_eq!(start(&small, "small", "a", waiting.clone()).0, 201);
    assert_eq!(start(&small, "small", "b", waiting.clone()).0, 201);
    let (status, _, body) = start(&small, "small", "c", waiting.clone());
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert_eq!(body["error"]["quota"], "max_running_workflows");
    // A start that may reuse the open run gets it, full namespace or not.
    let (status, _, reused) = post(
        &server,
        "/namespaces/small/workflows",
        Some(&small),
        json!({"workflow_id": "a", "workflow_type": "steps", "input": waiting.clone(),
               "if_running": "use_existing"}),
    );
    assert_eq!(
        (status, &reused["workflow_id"]),
        (200, &json!("a")),
        "{reused}"
    );
    server.cli_with_key(
        Some(&small),
        &["--namespace", "small", "workflow", "terminate", "--id", "a"],
    );
    assert_eq!(start(&small, "small", "c", waiting).0, 201);

    // Payloads above the namespace's quota, though far below the server's ceiling.
    let big = json!({"steps": 1, "mode": "sequential", "padding": "x".repeat(4096)});
    let (status, _, body) = start(&small, "small", "d", big.clone());
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_payload_bytes"),
        "{body}"
    );
    let (status, _, body) = post(
        &server,
        "/namespaces/small/workflows/b/signals",
        Some(&small),
        json!({"name": "poke", "input": big}),
    );
    assert_eq!(status, 413, "{body}");

    // Starts per second: a burst of two, then 429 with Retry-After.
    let slow = new_key(&server, "slow", &[]);
    server.upload_in(&slow, "slow", "steps", "steps");
    let quick = json!({"steps": 1, "mode": "sequential"});
    assert_eq!(start(&slow, "slow", "s1", quick.clone()).0, 201);
    assert_eq!(start(&slow, "slow", "s2", quick.clone()).0, 201);
    let (status, retry_after, body) = start(&slow, "slow", "s3", quick.clone());
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["quota"], "starts_per_second");
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    std::thread::sleep(Duration::from_secs(retry_after));
    assert_eq!(start(&slow, "slow", "s3", quick).0, 201);
}

#[test]
fn a_bad_config_file_stops_the_server_with_the_key_named() {
    let dir = tempdir();
    let config = dir.path().join("spool.toml");
    std::fs::write(
        &config,
        "[server]\ndb = \"spool.db\"\n[auth]\nadmin_key_env = \"SPOOL_TEST_ADMIN_KEY\"\n\
         [namespaces.acme]\nmax_running_workflow = 3\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::spool_binary())
        .args(["server", "start", "--config"])
        .arg(&config)
        .env("SPOOL_TEST_ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spool.toml") && stderr.contains("max_running_workflow"),
        "{stderr}"
    );
    assert!(!dir.path().join("spool.db").exists(), "nothing is created");
}
