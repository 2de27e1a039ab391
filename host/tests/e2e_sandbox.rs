//! End-to-end: hostile guests, refused uploads and API errors, through the real binary.

mod common;

use common::{guest, tempdir, Server};

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

    let bad_name = server.cli(&[
        "module",
        "upload",
        guest("steps").to_str().unwrap(),
        "--name",
        "../etc",
    ]);
    assert!(String::from_utf8_lossy(&bad_name.stderr).contains("invalid_argument"));

    // Nothing refused was registered.
    let modules = server.cli_json(&["module", "list"]);
    assert_eq!(modules["modules"], serde_json::json!([]));
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

    // A payload over the limit is refused before anything is journaled.
    let client = reqwest::blocking::Client::new();
    let big = "x".repeat(3 << 20);
    let response = client
        .post(format!(
            "{}/api/v1/namespaces/default/workflows",
            server.address
        ))
        .json(&serde_json::json!({"workflow_id": "big", "workflow_type": "steps", "input": big}))
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
