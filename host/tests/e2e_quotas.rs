//! Per-instance quotas against the real binary in production mode (`spool server start
//! --config`): each namespace's fuel, memory, event and HTTP quotas bound its runs and
//! activities, and the fuel its activations burn is metered, once per activation,
//! whatever replays happen.

mod common;

use common::{guest, tempdir, Recorder, Server, TEST_SECRET, TEST_SECRET_VAR};
use serde_json::{json, Value};
use std::process::Output;
use std::time::{Duration, Instant};

/// A client command in namespace `ns` (with the admin key).
fn in_ns(server: &Server, ns: &str, args: &[&str]) -> Output {
    server.cli_in(ns, args)
}

fn in_ns_ok(server: &Server, ns: &str, args: &[&str]) -> Value {
    let out = in_ns(server, ns, args);
    assert!(
        out.status.success(),
        "spool --namespace {ns} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_tail()
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Uploads a guest component into `ns` under `name`.
fn upload(server: &Server, ns: &str, file: &str, name: &str, kind: &str) {
    let path = guest(file);
    in_ns_ok(
        server,
        ns,
        &[
            "module",
            "upload",
            path.to_str().unwrap(),
            "--name",
            name,
            "--kind",
            kind,
        ],
    );
}

/// Starts a run of `workflow_type` in `ns`, waits for its end and returns its
/// description (status, output, failure).
fn run(server: &Server, ns: &str, workflow_type: &str, id: &str, input: Value) -> Value {
    let run = server.run_to_end(ns, workflow_type, id, &input);
    assert_ne!(run["status"], "running", "{run}\n{}", server.log_tail());
    run
}

/// The event types of the newest run of `id` in `ns`.
fn history(server: &Server, ns: &str, id: &str) -> Vec<String> {
    let history = in_ns_ok(server, ns, &["workflow", "history", "--id", id]);
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

fn wait_for_event(server: &Server, ns: &str, id: &str, event: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !history(server, ns, id).iter().any(|t| t == event) {
        assert!(
            Instant::now() < deadline,
            "{ns}/{id} never journaled {event}\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (fuel_consumed, activations) of a namespace, as describe shows them.
fn usage(server: &Server, ns: &str) -> (u64, u64) {
    let view = server.cli_json(&["namespace", "describe", ns]);
    let usage = &view["usage"];
    (
        usage["fuel_consumed"].as_u64().expect("fuel_consumed"),
        usage["activations"].as_u64().expect("activations"),
    )
}

fn failure(run: &Value) -> (&str, &str) {
    (
        run["failure"]["error_type"].as_str().unwrap_or_default(),
        run["failure"]["message"].as_str().unwrap_or_default(),
    )
}

/// The byte count in the sandbox's "… would bring the instance's memories to N bytes":
/// all of its linear memories together, had the refused growth happened.
fn grown_to(message: &str) -> u64 {
    let rest = message
        .split("memories to ")
        .nth(1)
        .unwrap_or_else(|| panic!("no size in {message:?}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// The same guest's work fits the default fuel budget and not a small one: a tight
/// namespace's endless loop and heavy activation fail with `fuel_exhausted`, its light
/// work completes, and the heavy work completes in a namespace with the default quota.
#[test]
fn a_namespaces_fuel_quota_bounds_each_activation_of_its_runs() {
    let dir = tempdir();
    let server = Server::start_production(
        dir.path(),
        "[namespaces.tight]\nfuel_per_activation = 5000000\n[namespaces.roomy]\n",
    );
    for ns in ["tight", "roomy"] {
        upload(&server, ns, "hostile", "hostile", "workflow");
    }
    // About 10 million fuel: encoding 400 KB of output.
    let heavy = json!({"mode": "huge-output", "output_bytes": 400_000});

    let light = run(&server, "tight", "hostile", "light", json!({"mode": "ok"}));
    assert_eq!(light["status"], "completed", "{light}");
    let looping = run(&server, "tight", "hostile", "loop", json!({"mode": "loop"}));
    assert_eq!(looping["status"], "failed", "{looping}");
    assert_eq!(failure(&looping).0, "fuel_exhausted", "{looping}");
    let (fuel, _) = usage(&server, "tight");
    assert!(
        fuel >= 5_000_000,
        "the loop burnt the whole budget of its activation: {fuel}"
    );
    let heavy_tight = run(&server, "tight", "hostile", "heavy", heavy.clone());
    assert_eq!(failure(&heavy_tight).0, "fuel_exhausted", "{heavy_tight}");

    let heavy_roomy = run(&server, "roomy", "hostile", "heavy", heavy);
    assert_eq!(heavy_roomy["status"], "completed", "{heavy_roomy}");
    let (fuel, _) = usage(&server, "roomy");
    assert!(fuel > 5_000_000, "the same work burnt {fuel}");
}

/// A memory bomb in a namespace with a small memory quota fails at a size the default
/// quota would have allowed; in the default namespace it goes on to the default limit.
#[test]
fn a_namespaces_memory_quota_caps_its_guests_memory() {
    let dir = tempdir();
    let small = 32u64 << 20;
    let server = Server::start_production(
        dir.path(),
        &format!("[namespaces.small]\nmax_memory_bytes = {small}\n"),
    );
    for ns in ["small", "default"] {
        upload(&server, ns, "hostile", "hostile", "workflow");
    }
    let bomb = json!({"mode": "memory"});
    let capped = run(&server, "small", "hostile", "bomb", bomb.clone());
    let (error_type, message) = failure(&capped);
    assert_eq!(error_type, "memory_exhausted", "{capped}");
    // The bomb grows in 16 MiB chunks: the failing growth is at most one past the quota.
    let at = grown_to(message);
    assert!(at > small && at <= small + (17 << 20), "{message}");

    let default = run(&server, "default", "hostile", "bomb", bomb);
    let (error_type, message) = failure(&default);
    assert_eq!(error_type, "memory_exhausted", "{default}");
    assert!(grown_to(message) > 256 << 20, "{message}");
    // And the small namespace's runs still work.
    let ok = run(&server, "small", "hostile", "after", json!({"mode": "ok"}));
    assert_eq!(ok["status"], "completed", "{ok}");
}

/// Inside a run, payloads are held to the run's namespace's `max_payload_bytes`, not to
/// the server's: an output that another namespace takes fails the run.
#[test]
fn a_namespaces_payload_quota_holds_inside_its_runs() {
    let dir = tempdir();
    let server = Server::start_production(
        dir.path(),
        "[namespaces.tiny]
max_payload_bytes = 4096
",
    );
    for ns in ["tiny", "default"] {
        upload(&server, ns, "hostile", "hostile", "workflow");
    }
    let output = json!({"mode": "huge-output", "output_bytes": 10_000});
    let refused = run(&server, "tiny", "hostile", "big", output.clone());
    let (error_type, message) = failure(&refused);
    assert_eq!(error_type, "payload_too_large", "{refused}");
    assert!(
        message.contains("4096") && message.contains("max_payload_bytes"),
        "{message}"
    );
    let fits = run(&server, "default", "hostile", "big", output);
    assert_eq!(fits["status"], "completed", "{fits}");
}

/// A run that would journal more events than its namespace's `max_events_per_run` fails
/// with `quota_exceeded` naming the quota and the limit; its journal stays within it
/// (its end included), whether the command or the result was one too many, and the
/// namespace and the server go on serving.
#[test]
fn a_run_over_its_namespaces_event_quota_fails_naming_it() {
    let dir = tempdir();
    let server =
        Server::start_production(dir.path(), "[namespaces.short]\nmax_events_per_run = 10\n");
    for ns in ["short", "default"] {
        upload(&server, ns, "steps", "steps", "workflow");
    }
    let over_quota = |id: &str, input: Value| {
        let run = run(&server, "short", "steps", id, input);
        assert_eq!(run["status"], "failed", "{run}");
        let (error_type, message) = failure(&run);
        assert_eq!(error_type, "quota_exceeded", "{run}");
        assert!(
            message.contains("max_events_per_run") && message.contains("10"),
            "{message}"
        );
        let events = history(&server, "short", id);
        assert!(events.len() <= 10, "{events:?}");
        assert_eq!(events.last().map(String::as_str), Some("run_failed"));
    };
    // Sequential: a command is one too many.
    over_quota("sequential", json!({"steps": 20, "mode": "sequential"}));
    // Parallel, 5 echoes: the commands fit, their results do not.
    over_quota("parallel", json!({"steps": 5, "mode": "parallel"}));

    // Within the quota (2 steps: 6 events) the namespace's runs complete, and other
    // namespaces have the default.
    let fits = run(
        &server,
        "short",
        "steps",
        "fits",
        json!({"steps": 2, "mode": "sequential"}),
    );
    assert_eq!(fits["status"], "completed", "{fits}");
    let long = run(
        &server,
        "default",
        "steps",
        "long",
        json!({"steps": 20, "mode": "sequential"}),
    );
    assert_eq!(long["status"], "completed", "{long}");
}

/// A namespace's `allow_http` narrows the server's list: a request to a local endpoint
/// the server allows is refused in a namespace whose list does not name it (built-in
/// `http.request` and an activity component alike), goes through in a namespace without
/// a list of its own, and a namespace's list cannot reach beyond the server's.
#[test]
fn a_namespaces_allow_list_narrows_the_servers() {
    let dir = tempdir();
    let recorder = Recorder::start();
    let server = Server::start_production(
        dir.path(),
        "[activities]\nallow_http = [\"127.0.0.1\"]\n\
         [namespaces.narrow]\nallow_http = [\"api.example.com\"]\n\
         [namespaces.wide]\nallow_http = [\"*\"]\n\
         [namespaces.plain]\n",
    );
    for ns in ["narrow", "wide", "plain"] {
        upload(&server, ns, "relay", "relay", "workflow");
        upload(&server, ns, "http-activity", "notify", "activity");
    }
    let builtin = |path: &str| {
        json!({"activity": "http.request", "input": {
            "method": "POST", "url": format!("{}/{path}", recorder.url), "body": {"n": 1}
        }})
    };
    let component = |path: &str| {
        json!({"activity": "notify", "input": {
            "url": format!("{}/{path}", recorder.url), "body": {"n": 2}
        }})
    };

    let refused = run(
        &server,
        "narrow",
        "relay",
        "builtin",
        builtin("narrow-builtin"),
    );
    assert_eq!(refused["status"], "failed", "{refused}");
    let (error_type, message) = failure(&refused);
    assert_eq!(error_type, "http_forbidden", "{refused}");
    assert!(message.contains("allow_http"), "{message}");
    let refused = run(
        &server,
        "narrow",
        "relay",
        "component",
        component("narrow-component"),
    );
    assert_eq!(refused["status"], "failed", "{refused}");
    assert!(failure(&refused).1.contains("denied"), "{refused}");
    assert_eq!(
        recorder.count("/narrow-builtin") + recorder.count("/narrow-component"),
        0
    );

    for ns in ["plain", "wide"] {
        let sent = run(
            &server,
            ns,
            "relay",
            "builtin",
            builtin(&format!("{ns}-builtin")),
        );
        assert_eq!(sent["status"], "completed", "{ns}: {sent}");
        assert_eq!(sent["output"]["status"], 200, "{sent}");
        let sent = run(
            &server,
            ns,
            "relay",
            "component",
            component(&format!("{ns}-component")),
        );
        assert_eq!(sent["status"], "completed", "{ns}: {sent}");
        assert_eq!(sent["output"], json!({"status": 200}), "{sent}");
    }
    assert_eq!(recorder.count("/plain-builtin"), 1);
    assert_eq!(recorder.count("/wide-component"), 1);

    // `*` in a namespace does not open what the server closes: `localhost` is not on
    // the server's list.
    let port = recorder.url.rsplit(':').next().unwrap();
    let beyond = json!({"activity": "http.request", "input": {
        "method": "POST", "url": format!("http://localhost:{port}/beyond"), "body": {}
    }});
    let refused = run(&server, "wide", "relay", "beyond", beyond);
    assert_eq!(failure(&refused).0, "http_forbidden", "{refused}");
    assert_eq!(recorder.count("/beyond"), 0);
}

/// A namespace's own secrets (`[namespace_secrets.NAME]`) reach its activities, in
/// `http.request` headers and a component's environment, and no other namespace's: there
/// the same name is unknown, and its activities never see the value.
#[test]
fn a_namespaces_secrets_reach_only_its_own_activities() {
    let dir = tempdir();
    let recorder = Recorder::start();
    let server = Server::start_production(
        dir.path(),
        &format!(
            "[activities]\nallow_http = [\"127.0.0.1\"]\n\
             [namespaces.acme]\n[namespaces.other]\n\
             [namespace_secrets.acme]\nAPI_KEY = \"{TEST_SECRET_VAR}\"\n"
        ),
    );
    for ns in ["acme", "other"] {
        upload(&server, ns, "relay", "relay", "workflow");
        upload(&server, ns, "progress-activity", "progress", "activity");
    }
    let charge = |path: &str| {
        json!({"activity": "http.request", "input": {
            "method": "POST", "url": format!("{}/{path}", recorder.url),
            "headers": {"authorization": "Bearer {{secret:API_KEY}}"}, "body": {}
        }})
    };
    let in_env = json!({"activity": "progress", "input": {"steps": 1, "secret": "API_KEY"}});

    let sent = run(&server, "acme", "relay", "charge", charge("acme"));
    assert_eq!(sent["status"], "completed", "{sent}");
    let calls = recorder.calls();
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {TEST_SECRET}").as_str())
    );
    let seen = run(&server, "acme", "relay", "env", in_env.clone());
    assert_eq!(seen["output"]["secret_length"], TEST_SECRET.len(), "{seen}");

    let refused = run(&server, "other", "relay", "charge", charge("other"));
    let (error_type, message) = failure(&refused);
    assert_eq!(error_type, "unknown_secret", "{refused}");
    assert!(message.contains("API_KEY"), "{message}");
    assert_eq!(recorder.count("/other"), 0);
    let unseen = run(&server, "other", "relay", "env", in_env);
    assert_eq!(unseen["status"], "completed", "{unseen}");
    assert_eq!(unseen["output"]["secret_length"], Value::Null, "{unseen}");
}

/// A failure a remote worker reports over its namespace's `max_payload_bytes` (but within
/// what the HTTP layer reads) is replaced by one naming the quota before it reaches the
/// attempt log or the journal, as a workflow's own failure is.
#[test]
fn a_workers_huge_failure_is_held_to_the_namespaces_payload_quota() {
    let dir = tempdir();
    let server =
        Server::start_production(dir.path(), "[namespaces.small]\nmax_payload_bytes = 4096\n");
    upload(&server, "small", "relay", "relay", "workflow");
    let input = json!({"activity": "charge", "task_queue": "payments", "max_attempts": 2,
                       "initial_interval_ms": 10, "input": {}});
    in_ns_ok(
        &server,
        "small",
        &[
            "workflow",
            "start",
            "--type",
            "relay",
            "--id",
            "huge-failure",
            "--input",
            &input.to_string(),
        ],
    );
    let http = reqwest::blocking::Client::new();
    let api = format!("{}/api/v1/namespaces/small", server.address);
    let huge = "x".repeat(100_000);
    for attempt in 1..=2 {
        let task: Value = http
            .post(format!("{api}/task-queues/payments/poll"))
            .bearer_auth(common::ADMIN_KEY)
            .json(&json!({"wait_secs": 30}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let token = task["task_token"]
            .as_str()
            .unwrap_or_else(|| panic!("attempt {attempt}: {task}"));
        let failed = http
            .post(format!("{api}/tasks/{token}/fail"))
            .bearer_auth(common::ADMIN_KEY)
            .json(&json!({"error_type": "declined", "message": huge, "details": {"why": huge}}))
            .send()
            .unwrap();
        assert!(
            failed.status().is_success(),
            "attempt {attempt}: {}",
            failed.status()
        );
    }
    in_ns(
        &server,
        "small",
        &[
            "workflow",
            "result",
            "--id",
            "huge-failure",
            "--timeout",
            "30",
        ],
    );
    let run = in_ns_ok(
        &server,
        "small",
        &["workflow", "describe", "--id", "huge-failure"],
    );
    let (error_type, message) = failure(&run);
    assert_eq!(error_type, "payload_too_large", "{run}");
    assert!(
        message.contains("the activity failed") && message.contains("max_payload_bytes"),
        "{message}"
    );
    // Neither the history nor its log of failed attempts holds the huge message.
    let history = in_ns(
        &server,
        "small",
        &["workflow", "history", "--id", "huge-failure"],
    );
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(history.contains("payload_too_large"), "{history}");
    assert!(
        !history.contains(&"x".repeat(5_000)),
        "the huge failure was journaled"
    );
}

/// A blocked run has no driver to move what reaches its inbox into its journal, where
/// `max_events_per_run` would hold it: signals to it are held to the quota in the
/// inbox, and one past it is refused naming the quota.
#[test]
fn signals_to_a_blocked_run_are_held_to_the_events_quota() {
    let dir = tempdir();
    let mut server =
        Server::start_production(dir.path(), "[namespaces.small]\nmax_events_per_run = 10\n");
    upload(&server, "small", "steps", "steps", "workflow");
    let changed = in_ns(
        &server,
        "small",
        &[
            "module",
            "upload",
            guest("steps-changed").to_str().unwrap(),
            "--name",
            "steps-v2",
        ],
    );
    let changed = String::from_utf8_lossy(&changed.stdout).trim().to_owned();
    let input = r#"{"steps": 1, "mode": "sequential", "sleep_ms": 60000}"#;
    in_ns_ok(
        &server,
        "small",
        &[
            "workflow", "start", "--type", "steps", "--id", "nd", "--input", input,
        ],
    );
    wait_for_event(&server, "small", "nd", "timer_started");
    server.kill9();
    // A deploy that changed the code under the run: it is blocked at the restart.
    server.swap_module_under("nd", &changed);
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while in_ns_ok(&server, "small", &["workflow", "describe", "--id", "nd"])["status"] != "blocked"
    {
        assert!(Instant::now() < deadline, "the run was never blocked");
        std::thread::sleep(Duration::from_millis(50));
    }

    let signal = || {
        in_ns(
            &server,
            "small",
            &[
                "workflow", "signal", "--id", "nd", "--name", "poke", "--input", "1",
            ],
        )
    };
    for i in 0..10 {
        assert!(signal().status.success(), "signal {i} is accepted");
    }
    let refused = signal();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("quota_exceeded") && stderr.contains("max_events_per_run"),
        "{stderr}"
    );
}

/// The fuel a namespace's runs burn is metered: a run adds to `fuel_consumed` and
/// `activations`, a throwaway query adds nothing, and a run killed with SIGKILL while it
/// waits, replayed after the restart and completed, counts exactly what the same run
/// counts in another namespace where nothing interrupted it.
#[test]
fn metered_fuel_is_deterministic_across_a_sigkill_and_replay() {
    let dir = tempdir();
    let mut server =
        Server::start_production(dir.path(), "[namespaces.steady]\n[namespaces.crashed]\n");
    for ns in ["steady", "crashed"] {
        upload(&server, ns, "approval", "approval", "workflow");
    }
    assert_eq!(usage(&server, "steady"), (0, 0));
    // No randomness, no clock: the same input does the same work in any run.
    let input = json!({"timeout_ms": 600_000, "mode": "condition"}).to_string();
    let start = |server: &Server, ns: &str| {
        in_ns_ok(
            server,
            ns,
            &[
                "workflow", "start", "--type", "approval", "--id", "same", "--input", &input,
            ],
        );
        wait_for_event(server, ns, "same", "timer_started");
    };
    let approve_and_wait = |server: &Server, ns: &str| {
        in_ns_ok(
            server,
            ns,
            &[
                "workflow",
                "signal",
                "--id",
                "same",
                "--name",
                "approve",
                "--input",
                r#"{"by": "ada"}"#,
            ],
        );
        let output = in_ns_ok(server, ns, &["workflow", "result", "--id", "same"]);
        assert_eq!(output["outcome"], "approved", "{output}");
    };

    start(&server, "steady");
    let waiting = usage(&server, "steady");
    assert!(waiting.0 > 0 && waiting.1 >= 1, "{waiting:?}");
    // A query replays the run in a throwaway instance: not metered.
    let status = in_ns_ok(
        &server,
        "steady",
        &["workflow", "query", "--id", "same", "--name", "status"],
    );
    assert_eq!(status["decided"], false, "{status}");
    assert_eq!(usage(&server, "steady"), waiting);
    approve_and_wait(&server, "steady");
    let steady = usage(&server, "steady");
    assert!(steady.0 > waiting.0 && steady.1 > waiting.1, "{steady:?}");

    start(&server, "crashed");
    let before_kill = usage(&server, "crashed");
    assert_eq!(before_kill, waiting, "the same activations so far");
    server.restart();
    // Recovery replays the run up to its wait: nothing new to count.
    in_ns_ok(
        &server,
        "crashed",
        &["workflow", "query", "--id", "same", "--name", "status"],
    );
    assert_eq!(usage(&server, "crashed"), before_kill);
    approve_and_wait(&server, "crashed");
    assert_eq!(
        usage(&server, "crashed"),
        steady,
        "(fuel, activations) of the interrupted run vs the uninterrupted one"
    );
    assert_eq!(usage(&server, "steady"), steady);
}
