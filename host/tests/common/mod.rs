//! Shared pieces of the end-to-end tests: the real `spool` binary as a child process
//! (which the tests kill with SIGKILL), the guest components built once per run by
//! `scripts/build-guests.sh`, and an HTTP sink that stands in for outside services.

#![allow(dead_code)]

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of a guest component; they are built once per test run, not per test.
pub fn guest(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/guests")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-guests.sh first (scripts/test.sh does)",
        path.display()
    );
    path
}

pub fn spool_binary() -> &'static str {
    env!("CARGO_BIN_EXE_spool")
}

/// A `spool server start-dev` (or `server start`) child process on a journal in `dir`.
pub struct Server {
    child: Child,
    pub address: String,
    dir: PathBuf,
    /// The arguments of `spool` that start it.
    args: Vec<String>,
    starts: usize,
    /// The key the CLI shows (`SPOOL_API_KEY`), for production servers.
    pub api_key: Option<String>,
}

/// The admin key of production test servers (their config reads it from this variable).
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef0123456789";
const ADMIN_KEY_VAR: &str = "SPOOL_TEST_ADMIN_KEY";

/// A value every test server finds in its environment as `TEST_SECRET_VAR`, for
/// configs that read secrets from the environment.
#[allow(dead_code)]
pub const TEST_SECRET: &str = "sk-test-5eb0c1a9";
#[allow(dead_code)]
pub const TEST_SECRET_VAR: &str = "SPOOL_TEST_SECRET";

impl Server {
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut args: Vec<String> = ["server", "start-dev", "--port", "0", "--no-ui", "--db"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(dir.join("spool.db").display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn_with(dir, args, None)
    }

    /// A production server (`server start --config`) whose config is `[server]` and
    /// `[auth]` (admin key [`ADMIN_KEY`]) followed by `more` (quotas, namespaces). The
    /// CLI uses the admin key until `api_key` is changed.
    pub fn start_production(dir: &Path, more: &str) -> Self {
        let config = dir.join("spool.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\ndb = \"spool.db\"\nlisten = \"127.0.0.1:0\"\n\
                 [auth]\nadmin_key_env = \"{ADMIN_KEY_VAR}\"\n{more}"
            ),
        )
        .expect("write the config");
        let args = vec![
            "server".into(),
            "start".into(),
            "--config".into(),
            config.display().to_string(),
        ];
        Self::spawn_with(dir, args, Some(ADMIN_KEY.to_owned()))
    }

    fn spawn_with(dir: &Path, args: Vec<String>, api_key: Option<String>) -> Self {
        let (child, address) = spawn(dir, &args, 0);
        Self {
            child,
            address,
            dir: dir.to_owned(),
            args,
            starts: 1,
            api_key,
        }
    }

    /// Uploads the test guest `guest_name` as workflow type `name` into `namespace`,
    /// showing `key`.
    pub fn upload_in(&self, key: &str, namespace: &str, guest_name: &str, name: &str) -> Output {
        let file = guest(guest_name);
        self.cli_with_key(
            Some(key),
            &[
                "--namespace",
                namespace,
                "module",
                "upload",
                file.to_str().expect("a UTF-8 path"),
                "--name",
                name,
            ],
        )
    }

    /// Runs a client command with `key` as the API key (None: no key at all).
    pub fn cli_with_key(&self, key: Option<&str>, args: &[&str]) -> Output {
        let mut command = Command::new(spool_binary());
        command
            .args(args)
            .env("SPOOL_ADDRESS", &self.address)
            .env_remove("SPOOL_API_KEY");
        if let Some(key) = key {
            command.env("SPOOL_API_KEY", key);
        }
        command.output().expect("run the spool CLI")
    }

    /// SIGKILL: no shutdown code runs, exactly like a crash or power loss.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: asks for a clean shutdown; returns how the process exited.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "could not signal the server");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {timeout:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("spool.db")
    }

    /// A client command in namespace `ns`.
    #[allow(dead_code)]
    pub fn cli_in(&self, ns: &str, args: &[&str]) -> Output {
        let mut all = vec!["--namespace", ns];
        all.extend_from_slice(args);
        self.cli(&all)
    }

    /// Starts `workflow_type` with `input` as `id` in namespace `ns`, waits for the
    /// run's end and returns its description (status, output, failure).
    #[allow(dead_code)]
    pub fn run_to_end(
        &self,
        ns: &str,
        workflow_type: &str,
        id: &str,
        input: &serde_json::Value,
    ) -> serde_json::Value {
        let input = input.to_string();
        let start = [
            "workflow",
            "start",
            "--type",
            workflow_type,
            "--id",
            id,
            "--input",
            &input,
        ];
        let started = self.cli_in(ns, &start);
        assert!(
            started.status.success(),
            "starting {ns}/{id} failed: {}\n{}",
            String::from_utf8_lossy(&started.stderr),
            self.log_tail()
        );
        // Exits 1 for a failed run; describe tells how it ended.
        let _ = self.cli_in(ns, &["workflow", "result", "--id", id, "--timeout", "60"]);
        let described = self.cli_in(ns, &["workflow", "describe", "--id", id]);
        serde_json::from_slice(&described.stdout).unwrap_or_else(|e| {
            panic!(
                "describe {ns}/{id} printed non-JSON ({e}): {}",
                String::from_utf8_lossy(&described.stderr)
            )
        })
    }

    /// Swaps the module under the runs of `workflow_id` behind the API's back, as a bad
    /// deploy would (call it with the server stopped): the next replay is blocked.
    #[allow(dead_code)]
    pub fn swap_module_under(&self, workflow_id: &str, module_hash: &str) {
        let db = rusqlite::Connection::open(self.journal_path()).expect("open the journal");
        let swapped = db
            .execute(
                "UPDATE runs SET module_hash = ?1 WHERE workflow_id = ?2",
                [module_hash, workflow_id],
            )
            .expect("swap the module");
        assert_eq!(swapped, 1, "one run of {workflow_id}");
    }

    /// Starts the server again on the same journal (after `kill9`).
    pub fn restart(&mut self) {
        self.kill9();
        let (child, address) = spawn(&self.dir, &self.args, self.starts);
        self.child = child;
        self.address = address;
        self.starts += 1;
    }

    /// Runs a `spool` client command against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_key(self.api_key.as_deref(), args)
    }

    /// Runs a client command that must succeed; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "spool {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a client command whose stdout is JSON.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli_ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("spool {args:?} printed non-JSON ({e}): {out}"))
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join(format!("server-{}.log", self.starts - 1)))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- server log (tail) ---\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    /// Polls the workflow's history until `pred` holds for its event types.
    pub fn wait_for_history(
        &self,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&[String]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.cli(&["workflow", "history", "--id", id]);
            if out.status.success() {
                let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let events = history["events"].as_array().cloned().unwrap_or_default();
                let types: Vec<String> = events
                    .iter()
                    .map(|e| e["type"].as_str().unwrap_or("").to_owned())
                    .collect();
                if pred(&types) {
                    return events;
                }
            }
            assert!(
                Instant::now() < deadline,
                "history of {id} never matched\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn(dir: &Path, args: &[String], start: usize) -> (Child, String) {
    let log =
        std::fs::File::create(dir.join(format!("server-{start}.log"))).expect("create server log");
    let mut child = Command::new(spool_binary())
        .args(args)
        .env(ADMIN_KEY_VAR, ADMIN_KEY)
        .env(TEST_SECRET_VAR, TEST_SECRET)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start spool server");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("spool: API listening on ") {
                let address = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if let Some(tx) = tx.take() {
                    let _ = tx.send(address);
                }
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!(
                "server did not start; see {}",
                dir.join(format!("server-{start}.log")).display()
            )
        });
    (child, address)
}

/// An HTTP endpoint standing in for an email service: it records every JSON body it
/// receives (on arrival), can fail the first requests, and can hold some requests.
#[derive(Clone, Default)]
pub struct Sink {
    state: Arc<Mutex<SinkState>>,
    pub url: String,
}

#[derive(Default)]
struct SinkState {
    received: Vec<serde_json::Value>,
    fail_first: usize,
    hold: Option<(String, Duration)>,
}

impl Sink {
    /// Starts the sink on a thread of its own, so it serves even while a test blocks.
    pub fn start() -> Self {
        let state: Arc<Mutex<SinkState>> = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/email", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/email", post(receive))
            .with_state(state.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Self { state, url }
    }

    /// The next `n` requests get HTTP 503.
    pub fn fail_first(&self, n: usize) {
        self.state.lock().unwrap().fail_first = n;
    }

    /// Requests whose `template` is `template` are answered only after `delay`.
    pub fn hold(&self, template: &str, delay: Duration) {
        self.state.lock().unwrap().hold = Some((template.to_owned(), delay));
    }

    /// How many requests with this `template` arrived.
    pub fn count(&self, template: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|b| b["template"] == template)
            .count()
    }

    pub fn wait_for(&self, template: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count(template) < n {
            assert!(
                Instant::now() < deadline,
                "sink never saw {n} {template:?} requests"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

async fn receive(
    State(state): State<Arc<Mutex<SinkState>>>,
    Json(body): Json<serde_json::Value>,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    let (fail, hold) = {
        let mut s = state.lock().unwrap();
        s.received.push(body.clone());
        let fail = s.fail_first > 0;
        if fail {
            s.fail_first -= 1;
        }
        let hold = s
            .hold
            .as_ref()
            .filter(|(t, _)| body["template"] == *t)
            .map(|(_, d)| *d);
        (fail, hold)
    };
    if fail {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": "try later"})),
        );
    }
    if let Some(delay) = hold {
        tokio::time::sleep(delay).await;
    }
    (
        axum::http::StatusCode::OK,
        Json(serde_json::json!({"sent": true})),
    )
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// An HTTP server standing in for several outside services at once: it answers a POST
/// to any path, records each request on arrival (path, JSON body, wall-clock time), and
/// can be told, per path, what to answer (a fixed answer, or one computed from the
/// request's body) and how long to hold the answer back. Unconfigured paths answer 200 `{"path": PATH, "call": N, "received": BODY}` (N counts
/// the requests to PATH from 1; BODY is the request's body).
#[derive(Clone)]
pub struct Recorder {
    state: Arc<Mutex<RecorderState>>,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub url: String,
}

/// One request a [`Recorder`] received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    /// The body as JSON (a JSON string if it was not JSON).
    pub body: serde_json::Value,
    pub at: std::time::SystemTime,
    /// The `authorization` header, if any.
    pub authorization: Option<String>,
}

/// Computes a 200 answer from a request's JSON body (see [`Recorder::respond`]).
type Responder = Arc<dyn Fn(&serde_json::Value) -> serde_json::Value + Send + Sync>;

#[derive(Default)]
struct RecorderState {
    calls: Vec<Recorded>,
    answers: std::collections::HashMap<String, (u16, serde_json::Value)>,
    responders: std::collections::HashMap<String, Responder>,
    holds: std::collections::HashMap<String, Duration>,
}

impl Recorder {
    /// Starts the server on a thread of its own, so it serves even while a test blocks.
    pub fn start() -> Self {
        let state: Arc<Mutex<RecorderState>> = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(record).with_state(state.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Self { state, url }
    }

    /// Requests to `path` are answered with `status` and `body`.
    pub fn answer(&self, path: &str, status: u16, body: serde_json::Value) {
        self.state
            .lock()
            .unwrap()
            .answers
            .insert(path.to_owned(), (status, body));
    }

    /// Requests to `path` are answered 200 with what `respond` makes of their body
    /// (instead of any fixed [`answer`](Self::answer)). It runs under the recorder's
    /// lock, so it must not call the recorder.
    pub fn respond(
        &self,
        path: &str,
        respond: impl Fn(&serde_json::Value) -> serde_json::Value + Send + Sync + 'static,
    ) {
        self.state
            .lock()
            .unwrap()
            .responders
            .insert(path.to_owned(), Arc::new(respond));
    }

    /// Requests to `path` are answered only after `delay`.
    pub fn hold(&self, path: &str, delay: Duration) {
        self.state
            .lock()
            .unwrap()
            .holds
            .insert(path.to_owned(), delay);
    }

    /// Every request so far, in the order they arrived.
    pub fn calls(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The paths of every request so far, in the order they arrived.
    pub fn paths(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.path).collect()
    }

    /// How many requests to `path` arrived.
    pub fn count(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.path == path)
            .count()
    }

    /// Waits until `pred` holds for the requests received so far.
    pub fn wait_until(&self, timeout: Duration, what: &str, pred: impl Fn(&[Recorded]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !pred(&self.state.lock().unwrap().calls) {
            assert!(
                Instant::now() < deadline,
                "the recorder never saw {what}; it saw {:?}",
                self.paths()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

async fn record(
    State(state): State<Arc<Mutex<RecorderState>>>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    let path = uri.path().to_owned();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    let (status, answer, hold) = {
        let mut s = state.lock().unwrap();
        s.calls.push(Recorded {
            path: path.clone(),
            body: body.clone(),
            at: std::time::SystemTime::now(),
            authorization,
        });
        let call = s.calls.iter().filter(|c| c.path == path).count();
        let (status, answer) = match s.responders.get(&path) {
            Some(respond) => (200, respond(&body)),
            None => s.answers.get(&path).cloned().unwrap_or_else(|| {
                let answer = serde_json::json!({ "path": path, "call": call, "received": body });
                (200, answer)
            }),
        };
        (status, answer, s.holds.get(&path).copied())
    };
    if let Some(delay) = hold {
        tokio::time::sleep(delay).await;
    }
    (
        axum::http::StatusCode::from_u16(status).expect("a valid status code"),
        Json(answer),
    )
}
