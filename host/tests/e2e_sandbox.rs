//! End-to-end: the hostile-guest defense suite, through the real `spool` binary. Each
//! case shows a clear error on the run or upload that misbehaves, and that the host
//! keeps serving afterwards (a normal run completes).
//!
//! | case | what the host does | test |
//! |---|---|---|
//! | endless loop | fails the run: `fuel_exhausted` | `hostile_guests_fail_only_their_own_run_with_a_clear_error` |
//! | memory bomb (growth) | fails the run: `memory_exhausted` | same; per namespace: `a_namespaces_memory_quota_caps_its_guests_memory` (e2e_quotas.rs) |
//! | deep recursion | fails the run: `stack_overflow` | same |
//! | panic | fails the run: `trap`, with the panic message | same |
//! | huge output, huge activity input from the guest | fails the run: `payload_too_large` | same |
//! | huge failure message | the run fails with `payload_too_large` naming the quota; nothing of that size is journaled | `a_huge_failure_message_is_refused_like_a_huge_output` |
//! | huge input, signal or upload body from a client | 413 before anything is journaled | `api_errors_have_stable_codes`, `oversized_payloads_and_uploads_are_refused_and_the_host_keeps_serving` |
//! | trap on every replay (after a timer or an activity result; with eviction, after SIGKILL) | fails the run once; not retried after a restart; a query gets `query_failed` | `a_guest_that_traps_on_every_replay_fails_once_and_is_not_retried` |
//! | forbidden imports | 422 `forbidden_imports` naming each import | `uploads_with_forbidden_imports_or_bad_bytes_are_refused_with_a_reason` |
//! | malformed, truncated, empty Wasm, core module | 422 `invalid_module` | same |
//! | component bomb: huge declared memory or table; nested instantiations that compiling would flatten into billions of copies | 422 `invalid_module` naming the size and the limit, the latter before compiling | `component_bombs_are_refused_at_upload_naming_the_declared_size` |
//! | component bomb that slipped through (its namespace's memory quota lowered after the upload) | fails each run at instantiation: `memory_exhausted` | `a_component_bomb_over_the_namespaces_memory_quota_fails_its_runs_at_instantiation` |
//! | module name with path characters (`../../etc/passwd`, `a/b`, `%2e%2e`, ...) or of dots alone | 400 `invalid_argument` naming the problem; nothing written | `module_names_with_path_characters_are_refused_and_nothing_is_written` |
//! | oversized upload | 413 `module_too_large` (server limit) or `quota_exceeded` (namespace quota) | `oversized_payloads_and_uploads_are_refused_and_the_host_keeps_serving`, `an_upload_over_a_namespaces_module_quota_is_refused_naming_it` |
//!
//! Unit tests of the same defenses, in `host/src/runtime/mod.rs`:
//! `components_declaring_more_memory_or_table_than_allowed_are_refused_naming_sizes`
//! (memory, table, several memories together),
//! `components_that_would_flatten_into_too_much_are_refused_before_compiling`,
//! `garbage_and_core_modules_are_refused_with_a_reason`,
//! `oversized_modules_are_refused_before_compiling`,
//! `only_the_deterministic_subset_and_the_context_may_be_imported`.

mod common;

use common::{guest, tempdir, Server};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// Starts `workflow_type` with `input` as `id`, waits for the run's end and returns its
/// description (status, output, failure).
fn run_to_end(server: &Server, workflow_type: &str, id: &str, input: &Value) -> Value {
    server.run_to_end("default", workflow_type, id, input)
}

/// Uploads the hostile guest into `default` and checks that a fresh run of it (`id`)
/// completes: the server took whatever came before and still serves.
fn upload_hostile_and_check_serving(server: &Server, id: &str) {
    server.cli_ok(&[
        "module",
        "upload",
        guest("hostile").to_str().unwrap(),
        "--name",
        "hostile",
    ]);
    assert_still_serving(server, id);
}

/// A dev server with the hostile guest loaded as workflow type `hostile`.
fn start_with_hostile(dir: &Path) -> Server {
    let hostile = format!("hostile={}", guest("hostile").display());
    Server::start(dir, &["--module", &hostile])
}

/// The host still serves: a fresh run of `hostile` in mode `ok` completes.
fn assert_still_serving(server: &Server, id: &str) {
    let run = run_to_end(server, "hostile", id, &json!({"mode": "ok"}));
    assert_eq!(run["status"], "completed", "{run}\n{}", server.log_tail());
    assert_eq!(run["output"], "fine", "{run}");
}

/// POSTs `bytes` to the default namespace's modules with the raw query `query`;
/// returns the status and the JSON body.
fn upload_raw(server: &Server, query: &str, bytes: Vec<u8>) -> (u16, Value) {
    let response = reqwest::blocking::Client::new()
        .post(format!(
            "{}/api/v1/namespaces/default/modules?{query}",
            server.address
        ))
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .expect("the upload gets an answer");
    let status = response.status().as_u16();
    let body = response.json().unwrap_or(Value::Null);
    (status, body)
}

/// The `failure` of a failed run: its error type and message.
fn failure(run: &Value) -> (&str, &str) {
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["failure"]["kind"], "sandbox", "{run}");
    (
        run["failure"]["error_type"].as_str().unwrap(),
        run["failure"]["message"].as_str().unwrap(),
    )
}

/// Asserts that `body` is an API error with `code` whose message mentions `mentions`.
fn assert_error(body: &Value, code: &str, mentions: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(mentions), "{body}");
}

/// The event types of a run's history.
fn history(server: &Server, id: &str) -> Vec<String> {
    server.cli_json(&["workflow", "history", "--id", id])["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

#[test]
fn hostile_guests_fail_only_their_own_run_with_a_clear_error() {
    let dir = tempdir();
    let hostile = format!("hostile={}", guest("hostile").display());
    let steps = format!("steps={}", guest("steps").display());
    let server = Server::start(dir.path(), &["--module", &hostile, "--module", &steps]);
    let cases = [
        ("loop", "fuel_exhausted"),
        ("memory", "memory_exhausted"),
        ("recursion", "stack_overflow"),
        ("trap", "trap"),
        ("huge-output", "payload_too_large"),
        ("huge-activity-input", "payload_too_large"),
    ];
    for (mode, _) in &cases {
        let input = format!(r#"{{"mode": "{mode}"}}"#);
        server.cli_ok(&[
            "workflow",
            "start",
            "--type",
            "hostile",
            "--id",
            &format!("bad-{mode}"),
            "--input",
            &input,
        ]);
    }
    // A well-behaved run beside them completes.
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "steps",
        "--id",
        "good",
        "--input",
        r#"{"steps": 3, "mode": "parallel"}"#,
    ]);
    assert_eq!(
        server.cli_json(&["workflow", "result", "--id", "good", "--timeout", "60"])["sum"],
        6
    );
    for (mode, error_type) in &cases {
        let id = format!("bad-{mode}");
        let out = server.cli(&["workflow", "result", "--id", &id, "--timeout", "60"]);
        assert_eq!(out.status.code(), Some(1), "{id} should fail");
        let run = server.cli_json(&["workflow", "describe", "--id", &id]);
        assert_eq!(run["status"], "failed", "{id}");
        assert_eq!(
            run["failure"]["error_type"], *error_type,
            "{id}: {}",
            run["failure"]
        );
        assert_eq!(run["failure"]["kind"], "sandbox", "{id}");
    }
    let trap = server.cli_json(&["workflow", "describe", "--id", "bad-trap"]);
    assert!(
        trap["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("boom"),
        "the panic message reaches the user: {}",
        trap["failure"]
    );
    // And the host keeps serving.
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "hostile",
        "--id",
        "fine",
        "--input",
        r#"{"mode": "ok"}"#,
    ]);
    assert_eq!(
        server.cli_json(&["workflow", "result", "--id", "fine", "--timeout", "30"]),
        "fine"
    );
}

#[test]
fn uploads_with_forbidden_imports_or_bad_bytes_are_refused_with_a_reason() {
    let dir = tempdir();
    let server = Server::start(dir.path(), &[]);
    let sockets = guest("sockets");
    let out = server.cli(&[
        "module",
        "upload",
        sockets.to_str().unwrap(),
        "--name",
        "sneaky",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("forbidden_imports"), "{stderr}");
    assert!(
        stderr.contains("wasi:sockets/tcp"),
        "the offending import is named: {stderr}"
    );
    assert!(
        stderr.contains("wasi:sockets/network"),
        "every offending import is named: {stderr}"
    );

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x0d\0\x01\0this is not a component").unwrap();
    let out = server.cli(&[
        "module",
        "upload",
        garbage.to_str().unwrap(),
        "--name",
        "garbage",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_module"));

    // A real component cut short at several points, an empty file, a core module.
    let steps = std::fs::read(guest("steps")).unwrap();
    let mut broken: Vec<(String, Vec<u8>)> = [9, 100, steps.len() / 2, steps.len() - 1]
        .into_iter()
        .map(|at| (format!("truncated at {at}"), steps[..at].to_vec()))
        .collect();
    broken.push(("empty".into(), Vec::new()));
    broken.push(("core module".into(), b"\0asm\x01\0\0\0".to_vec()));
    for (what, bytes) in broken {
        let file = dir.path().join("broken.wasm");
        std::fs::write(&file, bytes).unwrap();
        let out = server.cli(&[
            "module",
            "upload",
            file.to_str().unwrap(),
            "--name",
            "broken",
        ]);
        assert!(!out.status.success(), "{what}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("invalid_module"), "{what}: {stderr}");
    }

    let bad_name = server.cli(&[
        "module",
        "upload",
        guest("steps").to_str().unwrap(),
        "--name",
        "../etc",
    ]);
    assert!(String::from_utf8_lossy(&bad_name.stderr).contains("invalid_argument"));

    // Nothing refused was registered, and the host goes on: the intact component
    // uploads and runs.
    let modules = server.cli_json(&["module", "list"]);
    assert_eq!(modules["modules"], serde_json::json!([]));
    server.cli_ok(&[
        "module",
        "upload",
        guest("steps").to_str().unwrap(),
        "--name",
        "steps",
    ]);
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "steps",
        "--id",
        "intact",
        "--input",
        r#"{"steps": 2, "mode": "sequential"}"#,
    ]);
    assert_eq!(
        server.cli_json(&["workflow", "result", "--id", "intact", "--timeout", "60"])["sum"],
        3
    );
}

#[test]
fn api_errors_have_stable_codes() {
    let dir = tempdir();
    let steps = format!("steps={}", guest("steps").display());
    let server = Server::start(dir.path(), &["--module", &steps]);
    let unknown = server.cli(&["workflow", "start", "--type", "nope", "--id", "x"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown_workflow_type"));

    let input = r#"{"steps": 1, "mode": "sequential", "sleep_ms": 60000}"#;
    server.cli_ok(&[
        "workflow", "start", "--type", "steps", "--id", "dup", "--input", input,
    ]);
    let again = server.cli(&[
        "workflow", "start", "--type", "steps", "--id", "dup", "--input", input,
    ]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already_running"));
    // Asked to, a start hands back the open run instead of failing.
    let reuse = server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "steps",
        "--id",
        "dup",
        "--input",
        input,
        "--if-running",
        "use-existing",
    ]);
    assert!(reuse.contains("already running"), "{reuse}");
    assert_eq!(
        server.cli_json(&["workflow", "list", "--type", "steps"])["workflows"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let missing = server.cli(&["workflow", "describe", "--id", "ghost"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not_found"));

    let bad_json = server.cli(&[
        "workflow", "start", "--type", "steps", "--id", "y", "--input", "{nope",
    ]);
    assert!(String::from_utf8_lossy(&bad_json.stderr).contains("not valid JSON"));

    // A body over the HTTP layer's limit for JSON (payload limit + 64 KiB) is refused
    // before anything is journaled.
    let body = start_body_of_len("big", JSON_LIMIT + 1);
    let response = reqwest::blocking::Client::new()
        .post(format!(
            "{}/api/v1/namespaces/default/workflows",
            server.address
        ))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    let timeout = server.cli(&["workflow", "result", "--id", "dup", "--timeout", "1"]);
    assert_eq!(
        timeout.status.code(),
        Some(2),
        "still running after the timeout"
    );
}

/// A guest that traps at a point every replay reaches again (past a timer, or past an
/// activity's result) fails its run once, with the trap's message, whether the replay
/// comes from an eviction or from a restart after SIGKILL; the failed run is not
/// replayed again after another restart (nothing about it in the log, its history
/// unchanged), queries on it get a clear `query_failed`, and other runs go on.
#[test]
fn a_guest_that_traps_on_every_replay_fails_once_and_is_not_retried() {
    let dir = tempdir();
    let hostile = format!("hostile={}", guest("hostile").display());
    // Every instance waiting on a timer is evicted at once: the next one replays.
    let mut server = Server::start(dir.path(), &["--module", &hostile, "--evict-after-ms", "0"]);
    let boom_after_timer = "boom after the timer";

    // Evicted while sleeping; the replay after the timer fires reaches the panic.
    let evicted = run_to_end(
        &server,
        "hostile",
        "trap-evicted",
        &json!({"mode": "trap-after-timer", "sleep_ms": 300}),
    );
    let (error_type, message) = failure(&evicted);
    assert_eq!(error_type, "trap", "{evicted}");
    assert!(message.contains(boom_after_timer), "{message}");

    // A panic right after an activity's result.
    let after_activity = run_to_end(
        &server,
        "hostile",
        "trap-activity",
        &json!({"mode": "trap-after-activity"}),
    );
    let (error_type, message) = failure(&after_activity);
    assert_eq!(error_type, "trap", "{after_activity}");
    assert!(message.contains("boom after the activity"), "{message}");

    // Killed while sleeping; after the restart the replay reaches the panic.
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "hostile",
        "--id",
        "trap-restarted",
        "--input",
        r#"{"mode": "trap-after-timer", "sleep_ms": 2000}"#,
    ]);
    server.wait_for_history("trap-restarted", Duration::from_secs(20), |t| {
        t.iter().any(|t| t == "timer_started")
    });
    server.kill9();
    server.restart();
    let _ = server.cli(&[
        "workflow",
        "result",
        "--id",
        "trap-restarted",
        "--timeout",
        "60",
    ]);
    let restarted = server.cli_json(&["workflow", "describe", "--id", "trap-restarted"]);
    let (error_type, message) = failure(&restarted);
    assert_eq!(error_type, "trap", "{restarted}");
    assert!(message.contains(boom_after_timer), "{message}");

    // Each run failed exactly once, as its last event.
    let ids = ["trap-evicted", "trap-activity", "trap-restarted"];
    let histories: Vec<Vec<String>> = ids.iter().map(|id| history(&server, id)).collect();
    for (id, events) in ids.iter().zip(&histories) {
        let failed = events.iter().filter(|t| *t == "run_failed").count();
        assert_eq!(failed, 1, "{id}: {events:?}");
        assert_eq!(events.last().unwrap(), "run_failed", "{id}: {events:?}");
    }

    // A query replays the run in a throwaway instance, which traps again: the caller
    // is told, the run is untouched.
    let query = server.cli(&[
        "workflow",
        "query",
        "--id",
        "trap-evicted",
        "--name",
        "status",
    ]);
    assert!(!query.status.success());
    let stderr = String::from_utf8_lossy(&query.stderr);
    assert!(
        stderr.contains("query_failed") && stderr.contains(boom_after_timer),
        "{stderr}"
    );

    // Another restart: failed runs are closed, so nothing replays them. The server's
    // log says nothing of them and stops growing once it is up.
    server.kill9();
    server.restart();
    assert_still_serving(&server, "after-restart");
    let log = dir.path().join("server-2.log");
    let quiet_since = std::fs::metadata(&log).unwrap().len();
    std::thread::sleep(Duration::from_secs(3));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.len() as u64,
        quiet_since,
        "the log grows with nothing to do:\n{text}"
    );
    for id in ids {
        assert!(
            !text.contains(id),
            "{id} is touched after the restart:\n{text}"
        );
    }
    assert!(!text.contains("boom"), "{text}");
    for (id, events) in ids.iter().zip(&histories) {
        assert_eq!(&history(&server, id), events, "{id}");
        let run = server.cli_json(&["workflow", "describe", "--id", id]);
        assert_eq!(run["status"], "failed", "{run}");
    }
}

/// The bomb guest's core module declares over 1 GiB of memory; the default
/// namespace's instances may have 256 MiB (its quota `max_memory_bytes`). A hand-made
/// component declaring a table of ten million elements (the limit is 100,000) fares the
/// same. Both are refused at upload naming the size and the limit. A component built to
/// blow up the compiler is refused before compiling. Nothing is registered and the host
/// goes on.
#[test]
fn component_bombs_are_refused_at_upload_naming_the_declared_size() {
    let dir = tempdir();
    let server = start_with_hostile(dir.path());
    let bomb = guest("bomb");
    assert!(
        std::fs::metadata(&bomb).unwrap().len() < 1 << 20,
        "the bomb is small on disk"
    );
    let out = server.cli(&["module", "upload", bomb.to_str().unwrap(), "--name", "bomb"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid_module"), "{stderr}");
    assert!(
        stderr.contains("declares a linear memory of") && stderr.contains("GiB"),
        "the declared size is named: {stderr}"
    );
    assert!(
        stderr.contains("268435456 bytes (256.0 MiB) (namespace default's quota max_memory_bytes)"),
        "the limit is named: {stderr}"
    );

    let table_bomb = dir.path().join("table-bomb.wasm");
    std::fs::write(&table_bomb, wasm::table_bomb(10_000_000)).unwrap();
    let out = server.cli(&[
        "module",
        "upload",
        table_bomb.to_str().unwrap(),
        "--name",
        "tables",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid_module")
            && stderr.contains("table of 10000000 elements")
            && stderr.contains("100000 elements (the server's max_table_elements)"),
        "{stderr}"
    );

    // A few hundred bytes that compiling would flatten into 10^9 instances (tens of
    // gigabytes: the allocation fails and aborts the process, or the kernel kills it).
    // Measured before wasmtime sees it.
    let (status, body) = upload_raw(&server, "name=flat", wasm::instantiation_bomb(9, 10));
    assert_eq!(status, 422, "{body}");
    assert_error(&body, "invalid_module", "more than 100000 items");

    let modules = server.cli_json(&["module", "list"]);
    let names: Vec<&str> = modules["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hostile"], "{modules}");
    assert_still_serving(&server, "after-bombs");
}

/// Hand-made components, a few bytes each (the binary format, written out).
mod wasm {
    const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn leb(mut n: u32, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn section(id: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![id];
        leb(body.len() as u32, &mut out);
        out.extend(body);
        out
    }

    /// A component whose one core module declares a funcref table of `elements`
    /// elements, instantiated once.
    pub fn table_bomb(elements: u32) -> Vec<u8> {
        let mut table = vec![1, 0x70, 0x00];
        leb(elements, &mut table);
        let module = [b"\0asm\x01\0\0\0".as_slice(), &section(4, &table)].concat();
        let mut out = COMPONENT.to_vec();
        out.extend(section(1, &module));
        // Core instances: instantiate module 0 with no arguments.
        out.extend(section(2, &[1, 0x00, 0x00, 0x00]));
        out
    }

    /// A component that defines a small one, then `levels` components each of which
    /// instantiates the one before it (reached by an outer alias) `breadth` times, and
    /// instantiates the last. Compiling flattens it into `breadth ^ levels` copies.
    pub fn instantiation_bomb(levels: u32, breadth: u32) -> Vec<u8> {
        let mut out = COMPONENT.to_vec();
        out.extend(section(4, &table_bomb(1)));
        for level in 0..levels {
            // alias outer 1 `level` (sort component): the level before.
            let mut alias = vec![1, 0x04, 0x02, 0x01];
            leb(level, &mut alias);
            let mut instances = Vec::new();
            leb(breadth, &mut instances);
            for _ in 0..breadth {
                instances.extend([0x00, 0x00, 0x00]);
            }
            let inner = [COMPONENT, &section(6, &alias), &section(5, &instances)].concat();
            out.extend(section(4, &inner));
        }
        let mut top = vec![1, 0x00];
        leb(levels, &mut top);
        top.push(0);
        out.extend(section(5, &top));
        out
    }
}

/// A namespace whose memory quota is 2 GiB takes the bomb, and runs it (its memory is
/// reserved, not touched). Once the quota is lowered to 256 MiB, what slipped through
/// fails each run as it instantiates, with a clear error, and the host goes on.
#[test]
fn a_component_bomb_over_the_namespaces_memory_quota_fails_its_runs_at_instantiation() {
    let dir = tempdir();
    let server = Server::start_production(
        dir.path(),
        "[namespaces.roomy]\nmax_memory_bytes = 2147483648\n",
    );
    let in_roomy = |server: &Server, args: &[&str]| {
        let mut all = vec!["--namespace", "roomy"];
        all.extend(args);
        server.cli(&all)
    };
    for name in ["bomb", "hostile"] {
        let path = guest(name);
        let out = in_roomy(
            &server,
            &["module", "upload", path.to_str().unwrap(), "--name", name],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let run_in_roomy = |id: &str| -> Value {
        let out = in_roomy(
            &server,
            &[
                "workflow", "start", "--type", "bomb", "--id", id, "--input", "7",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = in_roomy(
            &server,
            &["workflow", "result", "--id", id, "--timeout", "60"],
        );
        let out = in_roomy(&server, &["workflow", "describe", "--id", id]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let allowed = run_in_roomy("allowed");
    assert_eq!(allowed["status"], "completed", "{allowed}");
    assert_eq!(allowed["output"], 0, "{allowed}");

    server.cli_ok(&[
        "namespace",
        "set-quotas",
        "roomy",
        "--quota",
        "max_memory_bytes=268435456",
    ]);
    let started = Instant::now();
    let refused = run_in_roomy("refused");
    let (error_type, message) = failure(&refused);
    assert_eq!(error_type, "memory_exhausted", "{refused}");
    assert!(
        message.contains("memory") && message.contains("limit"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it failed at once"
    );
    // Another namespace's runs go on, and so do the roomy namespace's others.
    let out = in_roomy(
        &server,
        &[
            "workflow",
            "start",
            "--type",
            "hostile",
            "--id",
            "fine",
            "--input",
            r#"{"mode": "ok"}"#,
        ],
    );
    assert!(out.status.success());
    let out = in_roomy(
        &server,
        &["workflow", "result", "--id", "fine", "--timeout", "60"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "\"fine\"");
    upload_hostile_and_check_serving(&server, "after-bomb");
}

/// Module names are checked before anything else: path characters, percent-encoded or
/// not, and names of dots alone are refused with a 400 naming the problem, and nothing
/// is registered or written.
#[test]
fn module_names_with_path_characters_are_refused_and_nothing_is_written() {
    let dir = tempdir();
    let server = start_with_hostile(dir.path());
    let bytes = std::fs::read(guest("steps")).unwrap();
    let before = files_under(dir.path());
    let names = [
        ("../../etc/passwd", "'/'"),
        ("a/b", "'/'"),
        ("%2e%2e", "\"..\""),
        ("%2e", "\".\""),
        ("..", "\"..\""),
        ("%2e%2e%2f%2e%2e%2fetc%2fpasswd", "'/'"),
        ("..%5c..%5cwindows", "'\\\\'"),
        ("%2Fetc%2Fpasswd", "'/'"),
        ("a%00b", "'\\0'"),
        ("", "1 to 200 characters"),
    ];
    for (name, problem) in names {
        let (status, body) = upload_raw(&server, &format!("name={name}"), bytes.clone());
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error"]["code"], "invalid_argument", "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("module name") && message.contains(problem),
            "{name}: {message}"
        );
    }
    // The CLI says the same.
    let out = server.cli(&[
        "module",
        "upload",
        guest("steps").to_str().unwrap(),
        "--name",
        "../../etc/passwd",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid_argument"), "{stderr}");

    let modules = server.cli_json(&["module", "list"]);
    assert_eq!(modules["modules"].as_array().unwrap().len(), 1, "{modules}");
    // No file appeared beside the journal (its WAL files come and go).
    let after = files_under(dir.path());
    let new: Vec<&String> = after
        .difference(&before)
        .filter(|f| !f.ends_with("-wal") && !f.ends_with("-shm"))
        .collect();
    assert!(new.is_empty(), "files written: {new:?}");
    assert_still_serving(&server, "after-names");
}

/// The dev server's payload limit (2 MiB) and the HTTP layer's limit for JSON bodies
/// (the payload limit and 64 KiB for the envelope).
const MAX_PAYLOAD: usize = 2 << 20;
const JSON_LIMIT: usize = MAX_PAYLOAD + (64 << 10);
/// The dev server's module limit.
const MAX_MODULE: usize = 64 << 20;

/// A start request's JSON body of exactly `len` bytes (its input a long string).
fn start_body_of_len(id: &str, len: usize) -> String {
    let empty = json!({"workflow_id": id, "workflow_type": "steps", "input": ""}).to_string();
    let body = json!({"workflow_id": id, "workflow_type": "steps", "input": "x".repeat(len - empty.len())})
        .to_string();
    assert_eq!(body.len(), len);
    body
}

/// Bodies over the server's limits get a 413 that says which limit, before anything is
/// stored: an upload over the module limit (the HTTP layer's: `module_too_large`, and
/// the namespace's quota: `quota_exceeded`), a signal whose input is over the payload
/// limit. The limits are exact (a byte over is refused), and a body far over one gets
/// the same answer rather than a connection reset under a client that writes all of
/// its body before reading (as reqwest does).
#[test]
fn oversized_payloads_and_uploads_are_refused_and_the_host_keeps_serving() {
    let dir = tempdir();
    let server = start_with_hostile(dir.path());

    // Over what the HTTP layer reads for an upload (the module limit and a byte).
    for len in [MAX_MODULE + 2, 3 * MAX_MODULE] {
        let (status, body) = upload_raw(&server, "name=big", vec![0; len]);
        assert_eq!(status, 413, "{len} bytes: {body}");
        assert_error(&body, "module_too_large", &MAX_MODULE.to_string());
    }
    // A byte over the namespace's module quota (the same size here): through the CLI.
    let big = dir.path().join("big.wasm");
    std::fs::write(&big, vec![0u8; MAX_MODULE + 1]).unwrap();
    let out = server.cli(&["module", "upload", big.to_str().unwrap(), "--name", "big"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("quota_exceeded") && stderr.contains("max_module_bytes"),
        "{stderr}"
    );

    // A signal whose input is over the payload limit, to a waiting run.
    server.cli_ok(&[
        "workflow",
        "start",
        "--type",
        "hostile",
        "--id",
        "sleeper",
        "--input",
        r#"{"mode": "trap-after-timer", "sleep_ms": 600000}"#,
    ]);
    let signal = |input: String| {
        reqwest::blocking::Client::new()
            .post(format!(
                "{}/api/v1/namespaces/default/workflows/sleeper/signals",
                server.address
            ))
            .json(&json!({"name": "poke", "input": input}))
            .send()
            .expect("the signal gets an answer")
    };
    // Within what the HTTP layer reads, over the payload limit: the engine names it;
    // far over what the HTTP layer reads: the same code, with the limit in bytes.
    for (len, mentions) in [
        (MAX_PAYLOAD, "max_payload_bytes".to_owned()),
        (8 * JSON_LIMIT, MAX_PAYLOAD.to_string()),
    ] {
        let response = signal("x".repeat(len));
        assert_eq!(response.status(), 413);
        assert_error(&response.json().unwrap(), "payload_too_large", &mentions);
    }
    assert!(
        !history(&server, "sleeper").contains(&"signal_received".to_owned()),
        "nothing was journaled"
    );

    let modules = server.cli_json(&["module", "list"]);
    assert_eq!(modules["modules"].as_array().unwrap().len(), 1, "{modules}");
    assert_still_serving(&server, "after-big-uploads");
}

/// A namespace's own module quota, under the server's limit, refuses an upload with a
/// 413 naming the quota.
#[test]
fn an_upload_over_a_namespaces_module_quota_is_refused_naming_it() {
    let dir = tempdir();
    let server =
        Server::start_production(dir.path(), "[namespaces.small]\nmax_module_bytes = 65536\n");
    let out = server.cli(&[
        "--namespace",
        "small",
        "module",
        "upload",
        guest("hostile").to_str().unwrap(),
        "--name",
        "hostile",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("quota_exceeded") && stderr.contains("max_module_bytes"),
        "{stderr}"
    );
    // The same module fits the default namespace, and runs.
    upload_hostile_and_check_serving(&server, "after-quota");
}

/// A guest that fails with a message of 3 MiB, over the 2 MiB payload limit, should
/// fail like one that returns 3 MiB: kind `sandbox`, `payload_too_large`, naming the
/// quota, with nothing of that size journaled (`Failure::bounded`).
#[test]
fn a_huge_failure_message_is_refused_like_a_huge_output() {
    let dir = tempdir();
    let server = start_with_hostile(dir.path());
    let run = run_to_end(
        &server,
        "hostile",
        "huge-failure",
        &json!({"mode": "huge-failure"}),
    );
    // The run is not printed: it may hold the whole message.
    let failure = &run["failure"];
    let message = failure["message"].as_str().unwrap_or_default();
    let short = &message[..message.len().min(200)];
    assert_eq!(run["status"], "failed", "{short}");
    assert_eq!(failure["kind"], "sandbox", "{short}");
    assert_eq!(failure["error_type"], "payload_too_large", "{short}");
    assert!(
        message.len() < 4096 && message.contains("max_payload_bytes"),
        "a message of {} bytes: {short}",
        message.len()
    );
    assert!(
        std::fs::metadata(server.journal_path()).unwrap().len() < 2 << 20,
        "nothing of that size is journaled"
    );
    assert_still_serving(&server, "after-huge-failure");
}
