//! The HTTP API at the router level: requests go straight into `api::router` with
//! `tower::ServiceExt::oneshot` (no socket, no child process), served by an in-process
//! engine on a temporary journal with a manual clock. Every error answer is checked for
//! both its HTTP status and its stable JSON code (`openapi.yaml` lists them).

mod common;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use spool::activity::{ActivityExecutor, HttpAllowList};
use spool::api::{self, ApiState};
use spool::clock::{Clock, ManualClock};
use spool::engine::{Engine, EngineConfig};
use spool::ids::{Handle, ModuleHash, Namespace, RunId, Seq, TypeName, WorkflowId};
use spool::journal::sqlite::SqliteJournal;
use spool::journal::{self, Event, EventKind, Journal, RunRecord, RunStatus, Write};
use spool::runtime::{Runtime, SandboxLimits};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const NS: &str = "/api/v1/namespaces/default";

/// An engine on a fresh journal and the API router in front of it.
struct Api {
    router: axum::Router,
    engine: Engine,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

/// One answer of the router.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    /// Asserts an error answer's status and code; returns its message.
    fn error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"]["code"], code, "{}", self.body);
        let message = self.body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("an error carries a message: {}", self.body));
        assert!(!message.is_empty());
        message.to_owned()
    }

    fn ok(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        &self.body
    }
}

impl Api {
    fn new() -> Self {
        Self::with_limits(
            SandboxLimits::default().max_module_bytes,
            EngineConfig::default().max_payload_bytes,
        )
    }

    /// The same module limit for the API's body limit and the sandbox's validator, and
    /// the same payload limit for the API and the engine, as `server.rs` wires them.
    fn with_limits(max_module_bytes: usize, max_payload_bytes: usize) -> Self {
        let dir = common::tempdir();
        let journal: Arc<dyn Journal> =
            Arc::new(SqliteJournal::open(dir.path().join("spool.db")).unwrap());
        let limits = SandboxLimits {
            max_module_bytes,
            ..SandboxLimits::default()
        };
        let runtime = Runtime::new(limits, None).unwrap();
        let config = EngineConfig {
            evict_after: None,
            max_payload_bytes,
            tenancy: None,
        };
        let executor = Arc::new(
            ActivityExecutor::new(
                journal.clone(),
                runtime.clone(),
                HttpAllowList::any(),
                spool::activity::Secrets::default(),
                max_payload_bytes,
            )
            .unwrap(),
        );
        let clock = ManualClock::new(1_800_000_000_000);
        let engine =
            Engine::new(journal, runtime, Arc::new(clock.clone()), executor, config).unwrap();
        let router = api::router(ApiState {
            engine: engine.clone(),
            max_module_bytes,
            max_payload_bytes,
        });
        Self {
            router,
            engine,
            clock,
            _dir: dir,
        }
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "HTTP {status}: the body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn request(&self, method: Method, uri: &str) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.request(Method::GET, uri).await
    }

    /// POSTs `body` as it is, with a JSON content type.
    async fn post_raw(&self, uri: &str, body: impl Into<Body>) -> Reply {
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap();
        self.send(request).await
    }

    async fn post(&self, uri: &str, body: Value) -> Reply {
        self.post_raw(uri, body.to_string()).await
    }

    async fn upload(&self, query: &str, bytes: Vec<u8>) -> Reply {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{NS}/modules?{query}"))
            .header(header::CONTENT_TYPE, "application/wasm")
            .body(Body::from(bytes))
            .unwrap();
        self.send(request).await
    }

    /// Uploads a guest from `target/guests`; returns its hash.
    async fn upload_guest(&self, name: &str, kind: &str, file: &str) -> String {
        let bytes = std::fs::read(common::guest(file)).unwrap();
        let reply = self
            .upload(&format!("name={name}&kind={kind}"), bytes)
            .await;
        reply.ok(StatusCode::CREATED)["hash"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn start(&self, id: &str, workflow_type: &str, input: Value) -> Reply {
        let body = json!({ "workflow_id": id, "workflow_type": workflow_type, "input": input });
        self.post(&format!("{NS}/workflows"), body).await
    }

    /// Polls `describe` until the run has `status`.
    async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        for _ in 0..1_000 {
            let reply = self.get(&format!("{NS}/workflows/{id}")).await;
            if reply.status == StatusCode::OK && reply.body["status"] == status {
                return reply.body;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{id} never became {status}: {}",
            self.get(&format!("{NS}/workflows/{id}")).await.body
        );
    }

    /// Polls the history until it has `count` events of type `event_type`.
    async fn wait_for_events(&self, id: &str, event_type: &str, count: usize) {
        for _ in 0..1_000 {
            let reply = self.get(&format!("{NS}/workflows/{id}/history")).await;
            if reply.status == StatusCode::OK
                && reply.body["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["type"] == event_type)
                    .count()
                    >= count
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{id} never journaled {count} × {event_type}");
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Waits for a timer that never fires (the clock is manual): keeps a run open.
fn sleeping_input() -> Value {
    json!({ "steps": 1, "mode": "sequential", "sleep_ms": 60_000 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_ok() {
    let api = Api::new();
    let reply = api.get("/api/v1/health").await;
    assert_eq!(reply.ok(StatusCode::OK), &json!({ "status": "ok" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_module_is_registered_under_its_sha256() {
    let api = Api::new();
    let bytes = std::fs::read(common::guest("steps")).unwrap();
    let reply = api.upload("name=steps", bytes.clone()).await;
    let module = reply.ok(StatusCode::CREATED);
    assert_eq!(module["hash"], sha256_hex(&bytes));
    assert_eq!(module["name"], "steps");
    assert_eq!(module["kind"], "workflow", "kind defaults to workflow");
    assert_eq!(module["size_bytes"], bytes.len() as u64);
    assert_eq!(module["uploaded_at_ms"], api.clock.now_ms());

    let listed = api.get(&format!("{NS}/modules")).await;
    assert_eq!(
        listed.ok(StatusCode::OK)["modules"],
        json!([module.clone()])
    );

    // The same namespace name elsewhere sees nothing: modules belong to a namespace.
    let other = api.get("/api/v1/namespaces/other/modules").await;
    assert_eq!(other.ok(StatusCode::OK)["modules"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_upload_requests_are_invalid_arguments() {
    let api = Api::new();
    let bytes = std::fs::read(common::guest("steps")).unwrap();
    for query in ["kind=workflow", "name=steps&kind=plugin", "name=..%2Fetc"] {
        api.upload(query, bytes.clone())
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
    // A built-in activity's name is reserved.
    let http_activity = std::fs::read(common::guest("http-activity")).unwrap();
    let message = api
        .upload("name=spool.echo&kind=activity", http_activity)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    assert!(message.contains("built-in"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_that_do_not_fit_are_refused_with_a_reason() {
    let api = Api::new();
    let garbage = b"\0asm\x0d\0\x01\0this is not a component".to_vec();
    api.upload("name=garbage", garbage)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_module");

    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let message = api
        .upload("name=core", core_module)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_module");
    assert!(message.contains("core WebAssembly module"), "{message}");

    let sockets = std::fs::read(common::guest("sockets")).unwrap();
    let message = api
        .upload("name=sneaky", sockets)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "forbidden_imports");
    assert!(message.contains("wasi:sockets/tcp@"), "{message}");

    // A workflow component is not an activity component.
    let steps = std::fs::read(common::guest("steps")).unwrap();
    let message = api
        .upload("name=not-an-activity&kind=activity", steps)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "wrong_world");
    assert!(message.contains("spool:activity/activity"), "{message}");

    let listed = api.get(&format!("{NS}/modules")).await;
    assert_eq!(
        listed.ok(StatusCode::OK)["modules"],
        json!([]),
        "nothing refused was registered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_over_the_limit_are_refused_as_module_too_large() {
    let limit = 1_024;
    let api = Api::with_limits(limit, EngineConfig::default().max_payload_bytes);
    // One byte over passes the body limit and is measured by the validator…
    let message = api
        .upload("name=big", vec![0; limit + 1])
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "module_too_large");
    assert!(message.contains(&limit.to_string()), "{message}");
    // …anything larger is cut off while the body is read; the same code either way.
    let steps = std::fs::read(common::guest("steps")).unwrap();
    assert!(steps.len() > limit + 1);
    let message = api
        .upload("name=steps", steps)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "module_too_large");
    assert!(message.contains(&limit.to_string()), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_start_requests_get_stable_codes() {
    let api = Api::new();
    api.upload_guest("steps", "workflow", "steps").await;
    api.upload_guest("fetch", "activity", "http-activity").await;
    let workflows = format!("{NS}/workflows");

    api.start("x", "nope", Value::Null)
        .await
        .error(StatusCode::NOT_FOUND, "unknown_workflow_type");
    api.start("x", "fetch", Value::Null)
        .await
        .error(StatusCode::BAD_REQUEST, "wrong_module_kind");
    api.post_raw(&workflows, "{nope")
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    api.post(
        &workflows,
        json!({ "workflow_id": "x", "workflow_type": "steps", "extra": 1 }),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "invalid_argument");
    api.post(&workflows, json!({ "workflow_type": "steps" }))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    api.start("a/b", "steps", Value::Null)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    // Without a JSON content type.
    let request = Request::builder()
        .method(Method::POST)
        .uri(&workflows)
        .body(Body::from(
            json!({ "workflow_id": "x", "workflow_type": "steps" }).to_string(),
        ))
        .unwrap();
    api.send(request)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");

    // Nothing refused was journaled.
    let listed = api.get(&workflows).await;
    assert_eq!(listed.ok(StatusCode::OK)["workflows"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_over_the_limit_are_refused_as_payload_too_large() {
    let limit = 1_024;
    let api = Api::with_limits(SandboxLimits::default().max_module_bytes, limit);
    api.upload_guest("steps", "workflow", "steps").await;
    // Within the body limit (payload + 64 KiB of envelope) but over the input limit.
    let message = api
        .start("big", "steps", json!("x".repeat(limit)))
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(message.contains(&limit.to_string()), "{message}");
    // Over the body limit: cut off while the body is read.
    api.start("big", "steps", json!("x".repeat(limit + 70 * 1_024)))
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    api.get(&format!("{NS}/workflows/big"))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_of_an_open_workflow_id_is_already_running() {
    let api = Api::new();
    let hash = api.upload_guest("steps", "workflow", "steps").await;
    let reply = api.start("dup", "steps", sleeping_input()).await;
    let run = reply.ok(StatusCode::CREATED);
    assert_eq!(run["namespace"], "default");
    assert_eq!(run["workflow_id"], "dup");
    assert_eq!(run["workflow_type"], "steps");
    assert_eq!(run["module_hash"], hash.as_str());
    assert_eq!(run["status"], "running");
    assert_eq!(run["input"], sleeping_input(), "input is embedded as JSON");
    assert!(run["run_id"]
        .as_str()
        .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    assert!(run.get("output").is_none() && run.get("closed_at_ms").is_none());

    let message = api
        .start("dup", "steps", sleeping_input())
        .await
        .error(StatusCode::CONFLICT, "already_running");
    assert!(message.contains("dup"), "{message}");

    // The open run is listed; the same id in another namespace is free.
    let listed = api.get(&format!("{NS}/workflows?status=running")).await;
    let listed = listed.ok(StatusCode::OK)["workflows"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["run_id"], run["run_id"]);
    let elsewhere = api
        .get("/api/v1/namespaces/other/workflows/dup")
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert!(elsewhere.contains("dup"), "{elsewhere}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_workflow_ids() {
    let api = Api::new();
    for path in ["", "/result?wait_secs=0", "/history"] {
        api.get(&format!("{NS}/workflows/ghost{path}"))
            .await
            .error(StatusCode::NOT_FOUND, "not_found");
        let message = api
            .get(&format!("{NS}/workflows/a%2Fb{path}"))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_argument");
        assert!(message.contains("workflow id"), "{message}");
    }
    let message = api
        .get("/api/v1/namespaces/bad%2Fns/workflows")
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    assert!(message.contains("namespace"), "{message}");
    api.get(&format!("{NS}/workflows/ghost/result?wait_secs=soon"))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_queries_are_checked() {
    let api = Api::new();
    let workflows = format!("{NS}/workflows");
    let message = api
        .get(&format!("{workflows}?status=sleeping"))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    assert!(message.contains("sleeping"), "{message}");
    api.get(&format!("{workflows}?type=a%2Fb"))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    api.get(&format!("{workflows}?limit=many"))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    // A list is bounded: no request reads a whole namespace in one answer.
    for limit in ["0", "1001", "4294967295", "-1"] {
        api.get(&format!("{workflows}?limit={limit}"))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
    api.get(&format!("{workflows}?parent=..%2F..%2Fetc"))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    // A namespace with path characters, or percent-encoded, is refused as sent.
    for ns in ["a%2Fb", "%2e%2e", "d%65fault"] {
        api.get(&format!("/api/v1/namespaces/{ns}/workflows"))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
    for status in ["running", "completed", "failed", "blocked"] {
        let reply = api
            .get(&format!("{workflows}?status={status}&limit=5"))
            .await;
        assert_eq!(reply.ok(StatusCode::OK)["workflows"], json!([]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_and_unknown_routes_answer_in_json() {
    let api = Api::new();
    for (method, uri) in [
        (Method::DELETE, format!("{NS}/workflows")),
        (Method::PUT, format!("{NS}/modules")),
        (Method::POST, "/api/v1/health".to_owned()),
        (Method::POST, format!("{NS}/workflows/x")),
        (Method::GET, format!("{NS}/workflows/x/repin")),
    ] {
        let reply = api.request(method.clone(), &uri).await;
        reply.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert!(
            reply.headers.contains_key(header::ALLOW),
            "{method} {uri}: a 405 names the allowed methods"
        );
    }
    for uri in [
        "/",
        "/api/v1/nope",
        "/api/v2/health",
        "/api/v1/namespaces/default/workflows/a/b",
    ] {
        api.get(uri).await.error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_blocked_run_can_be_repinned_and_only_with_a_well_formed_hash() {
    let api = Api::new();
    let hash = api.upload_guest("steps", "workflow", "steps").await;
    api.start("busy", "steps", sleeping_input())
        .await
        .ok(StatusCode::CREATED);
    let repin = format!("{NS}/workflows/busy/repin");

    let message = api
        .post(&repin, json!({ "module_hash": hash }))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    assert!(message.contains("only a blocked run"), "{message}");

    for bad in [
        json!("xyz"),
        json!(&hash[1..]),
        json!(format!("{}g", &hash[1..])),
    ] {
        let message = api
            .post(&repin, json!({ "module_hash": bad }))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_argument");
        assert!(message.contains("64 hex digits"), "{message}");
    }
    api.post(&repin, json!({ "module_hash": hash, "force": true }))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    api.post(&repin, json!({}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    api.post(
        &format!("{NS}/workflows/ghost/repin"),
        json!({ "module_hash": hash }),
    )
    .await
    .error(StatusCode::NOT_FOUND, "not_found");
    api.post(
        &format!("{NS}/workflows/a%2Fb/repin"),
        json!({ "module_hash": hash }),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "invalid_argument");

    let run = api.get(&format!("{NS}/workflows/busy")).await;
    assert_eq!(run.ok(StatusCode::OK)["status"], "running", "untouched");
}

/// A run whose module was swapped under it (as a bad deploy would) is blocked at
/// recovery; the long poll reports it, and a repin to the right module resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_run_is_reported_and_resumed_by_a_repin() {
    let api = Api::new();
    let original = api.upload_guest("steps", "workflow", "steps").await;
    let changed = api
        .upload_guest("steps-changed", "workflow", "steps-changed")
        .await;
    let activity = api.upload_guest("fetch", "activity", "http-activity").await;

    // The journal of a `steps` run that slept before its first step, now pinned to the
    // changed module (which starts an activity first).
    let now = api.clock.now_ms();
    let input = json!({ "steps": 2, "mode": "sequential", "sleep_ms": 60_000 }).to_string();
    let run_id = RunId(format!("{now:012x}{:020x}", 42));
    let record = RunRecord {
        namespace: Namespace::default_namespace(),
        workflow_id: WorkflowId("nd".into()),
        run_id: run_id.clone(),
        workflow_type: TypeName("steps".into()),
        module_hash: ModuleHash(changed.clone()),
        status: RunStatus::Running,
        input: input.clone(),
        output: None,
        failure: None,
        blocked_reason: None,
        created_at_ms: now,
        closed_at_ms: None,
        continued_from: None,
        parent: None,
    };
    let started = Event {
        seq: Seq(0),
        recorded_at_ms: now,
        kind: EventKind::RunStarted {
            workflow_type: TypeName("steps".into()),
            workflow_id: WorkflowId("nd".into()),
            input,
            seed: 7,
            module_hash: ModuleHash(original.clone()),
        },
    };
    let timer = Event {
        seq: Seq(1),
        recorded_at_ms: now,
        kind: EventKind::TimerStarted {
            handle: Handle(1),
            duration_ms: 60_000,
            fire_at_ms: now + 60_000,
        },
    };
    let journal = api.engine.journal().clone();
    journal::commit(
        &*journal,
        Write::CreateRun {
            record: Box::new(record),
            started,
        },
    )
    .await
    .unwrap();
    journal::commit(
        &*journal,
        Write::Append {
            run_id,
            events: vec![timer],
            status: None,
            signals_upto: None,
            children: Vec::new(),
            usage: Default::default(),
        },
    )
    .await
    .unwrap();
    assert_eq!(api.engine.recover().await.unwrap(), 1);

    let blocked = api.wait_for_status("nd", "blocked").await;
    let reason = blocked["blocked_reason"].as_str().unwrap();
    assert!(
        reason.contains("non-determinism at event seq 1"),
        "{reason}"
    );
    // The long poll answers with the run whatever its status.
    let reply = api
        .get(&format!("{NS}/workflows/nd/result?wait_secs=0"))
        .await;
    assert_eq!(reply.ok(StatusCode::OK)["status"], "blocked");
    let listed = api.get(&format!("{NS}/workflows?status=blocked")).await;
    assert_eq!(
        listed.ok(StatusCode::OK)["workflows"][0]["workflow_id"],
        "nd"
    );
    // A blocked run keeps its workflow id.
    api.start("nd", "steps", Value::Null)
        .await
        .error(StatusCode::CONFLICT, "already_running");

    let repin = format!("{NS}/workflows/nd/repin");
    let message = api
        .post(&repin, json!({ "module_hash": "0".repeat(64) }))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert!(message.contains("module"), "{message}");
    let message = api
        .post(&repin, json!({ "module_hash": activity }))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_argument");
    assert!(message.contains("not a workflow"), "{message}");

    // Hex digits in either case name the same module.
    let reply = api
        .post(
            &repin,
            json!({ "module_hash": original.to_ascii_uppercase() }),
        )
        .await;
    assert_eq!(reply.ok(StatusCode::OK)["module_hash"], original.as_str());
    let running = api.wait_for_status("nd", "running").await;
    assert_eq!(running["module_hash"], original.as_str());
    assert!(running.get("blocked_reason").is_none(), "{running}");

    // Each step sleeps a minute of virtual time; advance only once its timer is
    // journaled, so that the timer is due at the advanced time.
    for step in 1..=2 {
        api.wait_for_events("nd", "timer_started", step).await;
        api.clock.advance(Duration::from_secs(60));
        api.wait_for_events("nd", "timer_fired", step).await;
    }
    let done = api
        .get(&format!("{NS}/workflows/nd/result?wait_secs=30"))
        .await;
    let done = done.ok(StatusCode::OK);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output"]["sum"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_of_a_completed_run_expands_payloads_to_json() {
    let api = Api::new();
    let hash = api.upload_guest("steps", "workflow", "steps").await;
    let input = json!({ "steps": 2, "mode": "sequential" });
    api.start("hist", "steps", input.clone())
        .await
        .ok(StatusCode::CREATED);

    let reply = api
        .get(&format!("{NS}/workflows/hist/result?wait_secs=30"))
        .await;
    let run = reply.ok(StatusCode::OK);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"]["steps"], 2);
    assert_eq!(run["output"]["sum"], 3);
    assert!(run["closed_at_ms"].is_u64());

    let reply = api.get(&format!("{NS}/workflows/hist/history")).await;
    let events = reply.ok(StatusCode::OK)["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "run_started",
            "activity_scheduled",
            "activity_completed",
            "activity_scheduled",
            "activity_completed",
            "run_completed",
        ]
    );
    for (seq, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], seq as u64, "gapless from 0: {event}");
        assert!(event["recorded_at_ms"].is_u64(), "{event}");
    }
    let started = &events[0];
    assert_eq!(started["input"], input, "expanded, not JSON text");
    assert_eq!(started["workflow_id"], "hist");
    assert_eq!(started["workflow_type"], "steps");
    assert_eq!(started["module_hash"], hash.as_str());
    assert!(started["seed"].is_u64());

    let scheduled = &events[1];
    assert_eq!(scheduled["handle"], 1);
    assert_eq!(scheduled["name"], "spool.echo");
    assert_eq!(scheduled["input"], json!({ "step": 1 }));
    assert!(scheduled["options"]["retry"]["maximum_attempts"].is_u64());
    assert!(scheduled["options"]["start_to_close_timeout_ms"].is_u64());

    let completed = &events[2];
    assert_eq!(completed["handle"], 1);
    assert_eq!(completed["output"], json!({ "step": 1 }));
    assert_eq!(completed["attempts"], 1);

    let finished = &events[5];
    assert!(finished["output"].is_object(), "{finished}");
    assert_eq!(finished["output"], run["output"]);
}
