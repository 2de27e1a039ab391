//! Engine-level tests with an injected clock: durable timers across restarts,
//! non-determinism detection, and eviction (replay) versus hot instances.

mod common;

use common::guest;
use spool::activity::{ActivityExecutor, HttpAllowList};
use spool::clock::{Clock, ManualClock};
use spool::engine::{Engine, EngineConfig, StartRequest};
use spool::ids::{Namespace, TypeName, WorkflowId};
use spool::journal::sqlite::SqliteJournal;
use spool::journal::{self, EventKind, Journal, ModuleKind, RunStatus, Write};
use spool::runtime::{Runtime, SandboxLimits};
use spool::tenancy::quotas::Quotas;
use spool::tenancy::Tenancy;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const DAY_MS: u64 = 24 * 60 * 60 * 1_000;

/// One "process": an engine on the journal at `db`, on its own tokio runtime, so that
/// dropping it stops every task of that engine, like a crash.
struct Host {
    rt: tokio::runtime::Runtime,
    engine: Engine,
}

impl Host {
    fn start(db: &Path, clock: &ManualClock, evict_after: Option<Duration>) -> Self {
        Self::start_with(db, clock, evict_after, None)
    }

    /// An engine in open mode whose namespaces all get `quotas` (None: the defaults).
    fn start_with(
        db: &Path,
        clock: &ManualClock,
        evict_after: Option<Duration>,
        quotas: Option<Quotas>,
    ) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let engine = rt.block_on(async {
            let journal: Arc<dyn Journal> = Arc::new(SqliteJournal::open(db).unwrap());
            let runtime =
                Runtime::new(SandboxLimits::default(), Some(db.with_extension("cache"))).unwrap();
            let tenancy = quotas
                .map(|quotas| Tenancy::open(journal.clone(), Arc::new(clock.clone()), quotas));
            let config = EngineConfig {
                evict_after,
                tenancy,
                ..EngineConfig::default()
            };
            let executor = Arc::new(
                ActivityExecutor::new(
                    journal.clone(),
                    runtime.clone(),
                    HttpAllowList::any(),
                    spool::activity::Secrets::default(),
                    config.max_payload_bytes,
                )
                .unwrap(),
            );
            Engine::new(journal, runtime, Arc::new(clock.clone()), executor, config).unwrap()
        });
        Self { rt, engine }
    }

    fn upload(&self, name: &str, file: &str) -> spool::ids::ModuleHash {
        let bytes = std::fs::read(guest(file)).unwrap();
        let ns = Namespace::default_namespace();
        self.rt
            .block_on(self.engine.upload_module(
                &ns,
                &TypeName(name.into()),
                ModuleKind::Workflow,
                bytes,
            ))
            .unwrap()
            .hash
    }

    fn start_run(&self, workflow_type: &str, id: &str, input: &str) -> spool::journal::RunRecord {
        self.rt
            .block_on(self.engine.start_workflow(StartRequest {
                namespace: Namespace::default_namespace(),
                workflow_id: WorkflowId(id.into()),
                workflow_type: TypeName(workflow_type.into()),
                input: input.into(),
            }))
            .unwrap()
    }

    fn recover(&self) -> usize {
        self.rt.block_on(self.engine.recover()).unwrap()
    }

    fn run(&self, id: &str) -> spool::journal::RunRecord {
        self.rt
            .block_on(
                self.engine
                    .describe(&Namespace::default_namespace(), &WorkflowId(id.into())),
            )
            .unwrap()
    }

    fn events(&self, id: &str) -> Vec<spool::journal::Event> {
        self.rt
            .block_on(
                self.engine
                    .history(&Namespace::default_namespace(), &WorkflowId(id.into())),
            )
            .unwrap()
    }

    /// Waits (in real time) until the run's journal satisfies `pred`.
    fn wait_until(&self, id: &str, what: &str, pred: impl Fn(&[spool::journal::Event]) -> bool) {
        for _ in 0..1_000 {
            if pred(&self.events(id)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "{id}: never reached: {what}; events: {:#?}",
            self.events(id)
        );
    }

    fn wait_for_status(&self, id: &str, status: RunStatus) {
        for _ in 0..1_000 {
            if self.run(id).status == status {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{id} never became {status:?}: {:?}", self.run(id));
    }

    fn crash(self) {
        self.rt.shutdown_background();
    }
}

fn has_type(events: &[spool::journal::Event], name: &str) -> bool {
    events.iter().any(|e| e.kind.type_name() == name)
}

#[test]
fn a_three_day_timer_survives_a_restart_and_fires_on_time() {
    let dir = common::tempdir();
    let db = dir.path().join("spool.db");
    let clock = ManualClock::new(1_800_000_000_000);
    let start_ms = clock.now_ms();
    let host = Host::start(&db, &clock, Some(Duration::from_secs(5)));
    host.upload("steps", "steps");
    let input = format!(
        r#"{{"steps": 1, "mode": "sequential", "sleep_ms": {}}}"#,
        3 * DAY_MS
    );
    host.start_run("steps", "sleeper", &input);
    host.wait_until("sleeper", "timer started", |e| has_type(e, "timer_started"));
    host.crash();

    let host = Host::start(&db, &clock, Some(Duration::from_secs(5)));
    assert_eq!(host.recover(), 1);
    clock.advance(Duration::from_millis(3 * DAY_MS - 1));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !has_type(&host.events("sleeper"), "timer_fired"),
        "fired a millisecond early"
    );
    assert_eq!(host.run("sleeper").status, RunStatus::Running);

    clock.advance(Duration::from_millis(1));
    host.wait_until("sleeper", "completed", |e| has_type(e, "run_completed"));
    let events = host.events("sleeper");
    let fired = events
        .iter()
        .find(|e| e.kind.type_name() == "timer_fired")
        .unwrap();
    assert_eq!(fired.recorded_at_ms, start_ms + 3 * DAY_MS);
    assert_eq!(host.run("sleeper").status, RunStatus::Completed);
    host.crash();
}

#[test]
fn a_changed_module_is_detected_as_non_determinism_and_the_run_stays_resumable() {
    let dir = common::tempdir();
    let db = dir.path().join("spool.db");
    let clock = ManualClock::new(1_800_000_000_000);
    let host = Host::start(&db, &clock, None);
    let original = host.upload("steps", "steps");
    let changed = host.upload("steps-changed", "steps-changed");
    let input = r#"{"steps": 2, "mode": "sequential", "sleep_ms": 60000}"#;
    let run = host.start_run("steps", "nd", input);
    host.wait_until("nd", "timer started", |e| has_type(e, "timer_started"));
    // Simulate a deploy that swapped the module under the running workflow (pinning
    // prevents this through the API, so go to the journal directly).
    let swap = Write::Repin {
        run_id: run.run_id.clone(),
        module_hash: changed,
    };
    host.rt
        .block_on(journal::commit(&**host.engine.journal(), swap))
        .unwrap();
    host.crash();

    let host = Host::start(&db, &clock, None);
    host.recover();
    host.wait_for_status("nd", RunStatus::Blocked);
    let blocked = host.run("nd");
    let reason = blocked.blocked_reason.unwrap();
    assert!(
        reason.contains("non-determinism at event seq 1"),
        "{reason}"
    );
    assert!(
        reason.contains("start-timer 60000 ms"),
        "names the journaled command: {reason}"
    );
    assert!(
        reason.contains(r#"start-activity "spool.echo" with input {"step":1000}"#),
        "names the issued command: {reason}"
    );
    // Nothing was appended by the diverging replay.
    assert_eq!(host.events("nd").len(), 2);

    // Repinned to the right module, the blocked run resumes at once and completes.
    let ns = Namespace::default_namespace();
    let resumed = host
        .rt
        .block_on(host.engine.repin(&ns, &WorkflowId("nd".into()), &original))
        .unwrap();
    assert_eq!(resumed.module_hash, original);
    host.wait_for_status("nd", RunStatus::Running);
    assert_eq!(host.run("nd").blocked_reason, None);
    clock.advance(Duration::from_secs(120));
    host.wait_until("nd", "timer fired", |e| has_type(e, "timer_fired"));
    clock.advance(Duration::from_secs(120));
    host.wait_until("nd", "completed", |e| has_type(e, "run_completed"));
    assert_eq!(host.run("nd").status, RunStatus::Completed);
    host.crash();
}

/// The same workflow, once kept hot and once evicted at every timer and rebuilt by
/// replay, produces the same journal shape and the same result, including the value
/// drawn from the seeded random generator before the first sleep.
#[test]
fn evicted_runs_replay_to_the_same_result_as_hot_ones() {
    let mut outputs = Vec::new();
    for evict_after in [None, Some(Duration::ZERO)] {
        let dir = common::tempdir();
        let db = dir.path().join("spool.db");
        let clock = ManualClock::new(1_800_000_000_000);
        let host = Host::start(&db, &clock, evict_after);
        host.upload("steps", "steps");
        host.start_run(
            "steps",
            "twice",
            r#"{"steps": 3, "mode": "sequential", "sleep_ms": 1000}"#,
        );
        for fired in 1..=3 {
            host.wait_until("twice", "timer started", |e| {
                e.iter()
                    .filter(|e| e.kind.type_name() == "timer_started")
                    .count()
                    == fired
            });
            clock.advance(Duration::from_secs(1));
        }
        host.wait_until("twice", "completed", |e| has_type(e, "run_completed"));
        let events = host.events("twice");
        let seed = match &events[0].kind {
            EventKind::RunStarted { seed, .. } => *seed,
            other => panic!("{other:?}"),
        };
        let output: serde_json::Value =
            serde_json::from_str(host.run("twice").output.as_deref().unwrap()).unwrap();
        let types: Vec<&str> = events.iter().map(|e| e.kind.type_name()).collect();
        outputs.push((types.join(","), output["sum"].clone()));
        // ctx.random_u64() reads 8 bytes from the seeded generator, little-endian.
        let mut expected = spool::runtime::wasi::SeededRandom::new(seed);
        assert_eq!(
            output["random"],
            expected.next_u64().to_string(),
            "random replays from the journaled seed"
        );
        host.crash();
    }
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn compiled_components_are_cached_on_disk_so_a_restart_does_not_recompile() {
    let dir = common::tempdir();
    let cache = dir.path().join("cache");
    let bytes = std::fs::read(guest("steps")).unwrap();
    let hash = spool::ids::ModuleHash::of(&bytes);
    {
        let runtime = Runtime::new(SandboxLimits::default(), Some(cache.clone())).unwrap();
        let component = runtime.compile_checked(&bytes).unwrap();
        runtime.remember(&hash, &component);
    }
    let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(cached.len(), 1, "one compiled artifact per module");
    let restarted = Runtime::new(SandboxLimits::default(), Some(cache)).unwrap();
    let loaded = restarted.component(&hash, || {
        anyhow::bail!("asked for the module's bytes: the disk cache was not used")
    });
    assert!(loaded.is_ok(), "{:?}", loaded.err());
}

/// A journal that fails the first commit of an activity result, as a full disk would.
struct FailFirstResult {
    inner: SqliteJournal,
    armed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Journal for FailFirstResult {
    async fn submit(&self, write: Write) -> journal::CommitTicket {
        let carries_result = matches!(&write, Write::Append { events, .. }
            if events.iter().any(|e| matches!(e.kind, EventKind::ActivityCompleted { .. })));
        if carries_result && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(async {
                Err(journal::JournalError::Storage("injected: disk full".into()))
            });
        }
        self.inner.submit(write).await
    }
    async fn module_for_type(
        &self,
        n: &Namespace,
        t: &TypeName,
    ) -> journal::JournalResult<Option<journal::ModuleRecord>> {
        self.inner.module_for_type(n, t).await
    }
    async fn module_bytes(
        &self,
        n: &Namespace,
        h: &spool::ids::ModuleHash,
    ) -> journal::JournalResult<Option<Vec<u8>>> {
        self.inner.module_bytes(n, h).await
    }
    async fn list_modules(
        &self,
        n: &Namespace,
    ) -> journal::JournalResult<Vec<journal::ModuleRecord>> {
        self.inner.list_modules(n).await
    }
    async fn latest_run(
        &self,
        n: &Namespace,
        w: &WorkflowId,
    ) -> journal::JournalResult<Option<journal::RunRecord>> {
        self.inner.latest_run(n, w).await
    }
    async fn run(
        &self,
        r: &spool::ids::RunId,
    ) -> journal::JournalResult<Option<journal::RunRecord>> {
        self.inner.run(r).await
    }
    async fn runs_of(
        &self,
        n: &Namespace,
        w: &WorkflowId,
    ) -> journal::JournalResult<Vec<journal::RunRecord>> {
        self.inner.runs_of(n, w).await
    }
    async fn list_runs(
        &self,
        n: &Namespace,
        f: &journal::RunFilter,
    ) -> journal::JournalResult<Vec<journal::RunRecord>> {
        self.inner.list_runs(n, f).await
    }
    async fn open_runs(&self) -> journal::JournalResult<Vec<journal::RunRecord>> {
        self.inner.open_runs().await
    }
    async fn events(&self, r: &spool::ids::RunId) -> journal::JournalResult<Vec<journal::Event>> {
        self.inner.events(r).await
    }
    async fn inbox(
        &self,
        r: &spool::ids::RunId,
    ) -> journal::JournalResult<Vec<journal::InboxEntry>> {
        self.inner.inbox(r).await
    }
    async fn inbox_len(&self, r: &spool::ids::RunId) -> journal::JournalResult<u64> {
        self.inner.inbox_len(r).await
    }
    async fn children(
        &self,
        r: &spool::ids::RunId,
    ) -> journal::JournalResult<Vec<journal::RunRecord>> {
        self.inner.children(r).await
    }
    async fn namespaces(&self) -> journal::JournalResult<Vec<journal::NamespaceRecord>> {
        self.inner.namespaces().await
    }
    async fn namespace_usage(
        &self,
        n: &Namespace,
    ) -> journal::JournalResult<journal::NamespaceUsage> {
        self.inner.namespace_usage(n).await
    }
    async fn api_keys(&self, n: &Namespace) -> journal::JournalResult<Vec<journal::ApiKeyRecord>> {
        self.inner.api_keys(n).await
    }
    async fn api_key(&self, id: &str) -> journal::JournalResult<Option<journal::ApiKeyRecord>> {
        self.inner.api_key(id).await
    }
    async fn attempts(
        &self,
        r: &spool::ids::RunId,
    ) -> journal::JournalResult<Vec<journal::AttemptRecord>> {
        self.inner.attempts(r).await
    }
}

/// Regression: a result whose commit failed was still handed to the guest on the retry,
/// and later events were written with a gap in `seq`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_whose_commit_failed_never_reaches_the_guest() {
    let dir = common::tempdir();
    let journal: Arc<dyn Journal> = Arc::new(FailFirstResult {
        inner: SqliteJournal::open(dir.path().join("spool.db")).unwrap(),
        armed: std::sync::atomic::AtomicBool::new(true),
    });
    let runtime = Runtime::new(SandboxLimits::default(), None).unwrap();
    let config = EngineConfig {
        evict_after: None,
        ..EngineConfig::default()
    };
    let executor = Arc::new(
        ActivityExecutor::new(
            journal.clone(),
            runtime.clone(),
            HttpAllowList::any(),
            spool::activity::Secrets::default(),
            config.max_payload_bytes,
        )
        .unwrap(),
    );
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let engine = Engine::new(journal, runtime, clock, executor, config).unwrap();
    let ns = Namespace::default_namespace();
    let bytes = std::fs::read(guest("steps")).unwrap();
    engine
        .upload_module(&ns, &TypeName("steps".into()), ModuleKind::Workflow, bytes)
        .await
        .unwrap();
    let id = WorkflowId("disk-full".into());
    engine
        .start_workflow(StartRequest {
            namespace: ns.clone(),
            workflow_id: id.clone(),
            workflow_type: TypeName("steps".into()),
            input: r#"{"steps": 2, "mode": "sequential"}"#.into(),
        })
        .await
        .unwrap();
    let run = engine
        .wait_closed(&ns, &id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    let output: serde_json::Value = serde_json::from_str(run.output.as_deref().unwrap()).unwrap();
    assert_eq!(output["sum"], 3);
    let events = engine.history(&ns, &id).await.unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq.0).collect();
    assert_eq!(
        seqs,
        (0..events.len() as u64).collect::<Vec<_>>(),
        "gapless journal"
    );
    let results = events
        .iter()
        .filter(|e| e.kind.type_name() == "activity_completed")
        .count();
    assert_eq!(results, 2, "one result per activity");
}

/// A run of the expense-approval example on an injected clock, waiting up to a week
/// for a decision, with a sink for its notifications.
struct WeekLongApproval {
    host: Host,
    clock: ManualClock,
    sink: common::Sink,
    _dir: tempfile::TempDir,
}

const WEEK_MS: u64 = 7 * DAY_MS;
const START_MS: u64 = 1_800_000_000_000;

impl WeekLongApproval {
    /// Starts run `id` and waits until its decision timer is on the clock.
    fn start(id: &str) -> Self {
        let dir = common::tempdir();
        let clock = ManualClock::new(START_MS);
        let sink = common::Sink::start();
        let host = Host::start(&dir.path().join("spool.db"), &clock, None);
        host.upload("expense-approval", "expense-approval");
        let input = serde_json::json!({
            "expense_id": id, "amount": 99, "requester": "bob",
            "notify_endpoint": sink.url, "timeout_secs": WEEK_MS / 1_000,
        });
        host.start_run("expense-approval", id, &input.to_string());
        sink.wait_for("approval-requested", 1, Duration::from_secs(10));
        host.wait_until(id, "the decision timer is started", |e| {
            has_type(e, "timer_started")
        });
        for _ in 0..1_000 {
            if clock.sleeping().contains(&(START_MS + WEEK_MS)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(clock.sleeping(), [START_MS + WEEK_MS], "one week to wait");
        Self {
            host,
            clock,
            sink,
            _dir: dir,
        }
    }

    fn output(&self, id: &str) -> serde_json::Value {
        self.host.wait_for_status(id, RunStatus::Completed);
        let run = self.host.run(id);
        serde_json::from_str(run.output.as_deref().expect("an output")).unwrap()
    }
}

/// The expense-approval example's seven-day wait, on an injected clock: a minute short
/// of the week the run still waits; past it, the run says so to the notification
/// service and ends `timed_out`.
#[test]
fn expense_approval_times_out_after_seven_days_with_an_injected_clock() {
    let week = WeekLongApproval::start("exp-week");

    week.clock.advance(Duration::from_millis(WEEK_MS - 60_000));
    // Give a wrongly early timer a moment to show; the clock must still hold it.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(week.clock.sleeping(), [START_MS + WEEK_MS]);
    assert_eq!(week.host.run("exp-week").status, RunStatus::Running);
    assert!(!has_type(&week.host.events("exp-week"), "timer_fired"));
    assert_eq!(week.sink.count("timed-out"), 0);

    week.clock.advance(Duration::from_millis(60_000));
    let output = week.output("exp-week");
    assert_eq!(output["status"], "timed_out", "{output}");
    assert!(output["decided_by"].is_null());
    week.sink.wait_for("timed-out", 1, Duration::from_secs(10));
    assert_eq!(week.sink.count("approval-requested"), 1);
}

/// The same wait, with an approval on day six (through the engine's signal API): the
/// run ends approved by that person, and no timeout follows.
#[test]
fn expense_approval_approved_on_day_six_with_an_injected_clock() {
    let week = WeekLongApproval::start("exp-day6");

    week.clock.advance(Duration::from_millis(6 * DAY_MS));
    let (ns, id) = (
        Namespace::default_namespace(),
        WorkflowId("exp-day6".into()),
    );
    let signal = week
        .host
        .engine
        .signal(&ns, &id, "approve", r#"{"by": "alice"}"#);
    week.host.rt.block_on(signal).unwrap();
    let output = week.output("exp-day6");
    assert_eq!(output["status"], "approved", "{output}");
    assert_eq!(output["decided_by"], "alice");
    week.sink.wait_for("approved", 1, Duration::from_secs(10));

    // The week passes: nothing more happens.
    week.clock.advance(Duration::from_millis(DAY_MS));
    assert_eq!(week.host.run("exp-day6").status, RunStatus::Completed);
    assert_eq!(week.sink.count("timed-out"), 0);
}

/// Starts a run of `workflow_type` in `namespace` through the journal, with a chosen
/// run id, seed and start time, as `start_workflow` would (which draws the seed), so
/// that two hosts can run exactly the same run; `recover` starts its driver.
fn create_run(host: &Host, namespace: &str, workflow_type: &str, hash: &str, input: &str) {
    let ns = Namespace(namespace.into());
    let started = spool::journal::Event {
        seq: spool::ids::Seq(0),
        recorded_at_ms: START_MS,
        kind: EventKind::RunStarted {
            workflow_type: TypeName(workflow_type.into()),
            workflow_id: WorkflowId("same".into()),
            input: input.into(),
            seed: 42,
            module_hash: spool::ids::ModuleHash(hash.into()),
        },
    };
    let record = spool::journal::RunRecord {
        namespace: ns,
        workflow_id: WorkflowId("same".into()),
        run_id: spool::ids::RunId("0000000000000000000000000000000a".into()),
        workflow_type: TypeName(workflow_type.into()),
        module_hash: spool::ids::ModuleHash(hash.into()),
        status: RunStatus::Running,
        input: input.into(),
        output: None,
        failure: None,
        blocked_reason: None,
        created_at_ms: START_MS,
        closed_at_ms: None,
        continued_from: None,
        parent: None,
    };
    let write = Write::CreateRun {
        record: Box::new(record),
        started,
    };
    host.rt
        .block_on(journal::commit(&**host.engine.journal(), write))
        .unwrap();
}

fn usage(host: &Host, namespace: &str) -> (u64, u64) {
    let usage = host
        .rt
        .block_on(
            host.engine
                .journal()
                .namespace_usage(&Namespace(namespace.into())),
        )
        .unwrap();
    (usage.fuel_consumed, usage.activations)
}

/// Fuel is metered once per activation, however the run gets there: the same run
/// (same seed, clock and results) kept hot, and evicted at every timer with a crash in
/// the middle (so most of it is replayed twice), counts the same fuel and activations.
#[test]
fn metered_fuel_is_the_same_for_a_run_kept_hot_and_one_replayed_after_evictions_and_a_crash() {
    let input = r#"{"steps": 3, "mode": "sequential", "sleep_ms": 1000}"#;
    let mut counted = Vec::new();
    for interrupted in [false, true] {
        let dir = common::tempdir();
        let db = dir.path().join("spool.db");
        let clock = ManualClock::new(START_MS);
        let evict_after = interrupted.then_some(Duration::ZERO);
        let mut host = Host::start(&db, &clock, evict_after);
        let bytes = std::fs::read(guest("steps")).unwrap();
        let hash = host
            .rt
            .block_on(host.engine.upload_module(
                &Namespace("metered".into()),
                &TypeName("steps".into()),
                ModuleKind::Workflow,
                bytes,
            ))
            .unwrap()
            .hash;
        create_run(&host, "metered", "steps", &hash.0, input);
        assert_eq!(host.recover(), 1);
        let ns = Namespace("metered".into());
        let events = |host: &Host| {
            host.rt
                .block_on(host.engine.history(&ns, &WorkflowId("same".into())))
                .unwrap()
        };
        for fired in 1..=3 {
            for _ in 0..1_000 {
                let started = events(&host)
                    .iter()
                    .filter(|e| e.kind.type_name() == "timer_started")
                    .count();
                if started == fired {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if interrupted && fired == 2 {
                host.crash();
                host = Host::start(&db, &clock, evict_after);
                assert_eq!(host.recover(), 1);
            }
            // The timer task sleeps on the clock once its command is journaled.
            for _ in 0..1_000 {
                if !clock.sleeping().is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            clock.advance(Duration::from_secs(1));
        }
        for _ in 0..1_000 {
            if has_type(&events(&host), "run_completed") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(has_type(&events(&host), "run_completed"));
        counted.push(usage(&host, "metered"));
        host.crash();
    }
    let (fuel, activations) = counted[0];
    assert!(fuel > 0, "{counted:?}");
    // Start to the first sleep, then each timer and each echo starts one.
    assert_eq!(activations, 7, "{counted:?}");
    assert_eq!(
        counted[0], counted[1],
        "hot vs replayed: (fuel, activations)"
    );
}

/// A guest holds one of its namespace's activation permits only while its code runs:
/// with one permit, three runs all get to their wait (each gave the permit back when it
/// waited), and all finish once signalled.
#[test]
fn a_run_waiting_for_the_host_gives_its_namespaces_activation_permit_back() {
    let dir = common::tempdir();
    let clock = ManualClock::new(START_MS);
    let quotas = Quotas {
        max_concurrent_activations: 1,
        ..Quotas::default()
    };
    // Never evicted: the instances stay in memory, waiting inside `await-next`.
    let host = Host::start_with(&dir.path().join("spool.db"), &clock, None, Some(quotas));
    host.upload("approval", "approval");
    let ids = ["one", "two", "three"];
    for id in ids {
        host.start_run(
            "approval",
            id,
            r#"{"timeout_ms": 3600000, "mode": "signal"}"#,
        );
    }
    for id in ids {
        host.wait_until(id, "waiting on its timer and signal", |e| {
            has_type(e, "timer_started")
        });
    }
    let ns = Namespace::default_namespace();
    let permits = host
        .engine
        .tenancy()
        .tenant(&ns)
        .unwrap()
        .activations()
        .clone();
    assert_eq!(permits.available_permits(), 1, "nobody runs while all wait");
    for id in ids {
        let id = WorkflowId(id.into());
        let signal = host.engine.signal(&ns, &id, "approve", r#"{"by": "x"}"#);
        host.rt.block_on(signal).unwrap();
    }
    for id in ids {
        host.wait_for_status(id, RunStatus::Completed);
    }
    assert_eq!(permits.available_permits(), 1);
    host.crash();
}

/// A guest in an endless loop holds its permit while it runs, and yields to the
/// scheduler as it burns its fuel: on a single-threaded runtime, another task runs
/// many times while the permit is taken, which it could not if the guest kept the
/// thread until its fuel ran out.
#[tokio::test(flavor = "current_thread")]
async fn a_looping_guest_yields_the_thread_while_it_holds_its_permit() {
    let dir = common::tempdir();
    let journal: Arc<dyn Journal> =
        Arc::new(SqliteJournal::open(dir.path().join("spool.db")).unwrap());
    let clock = Arc::new(ManualClock::new(START_MS));
    let quotas = Quotas {
        max_concurrent_activations: 1,
        // 50 yield intervals: the run fails quickly.
        fuel_per_activation: 50 * spool::runtime::FUEL_YIELD_INTERVAL,
        ..Quotas::default()
    };
    let config = EngineConfig {
        tenancy: Some(Tenancy::open(journal.clone(), clock.clone(), quotas)),
        ..EngineConfig::default()
    };
    let runtime = Runtime::new(SandboxLimits::default(), None).unwrap();
    let executor = Arc::new(
        ActivityExecutor::new(
            journal.clone(),
            runtime.clone(),
            HttpAllowList::any(),
            spool::activity::Secrets::default(),
            config.max_payload_bytes,
        )
        .unwrap(),
    );
    let engine = Engine::new(journal, runtime, clock, executor, config).unwrap();
    let ns = Namespace::default_namespace();
    let bytes = std::fs::read(guest("hostile")).unwrap();
    engine
        .upload_module(
            &ns,
            &TypeName("hostile".into()),
            ModuleKind::Workflow,
            bytes,
        )
        .await
        .unwrap();
    let permits = engine.tenancy().tenant(&ns).unwrap().activations().clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let (permits, done) = (permits.clone(), done.clone());
        tokio::spawn(async move {
            let mut while_taken = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if permits.available_permits() == 0 {
                    while_taken += 1;
                }
                // Straight back to the run queue (tokio's `yield_now` defers the
                // wake-up to the scheduler's next park instead).
                let mut yielded = false;
                std::future::poll_fn(|cx| {
                    if std::mem::replace(&mut yielded, true) {
                        std::task::Poll::Ready(())
                    } else {
                        cx.waker().wake_by_ref();
                        std::task::Poll::Pending
                    }
                })
                .await;
            }
            while_taken
        })
    };
    let id = WorkflowId("spin".into());
    engine
        .start_workflow(StartRequest {
            namespace: ns.clone(),
            workflow_id: id.clone(),
            workflow_type: TypeName("hostile".into()),
            input: r#"{"mode": "loop"}"#.into(),
        })
        .await
        .unwrap();
    let run = engine
        .wait_closed(&ns, &id, Duration::from_secs(60))
        .await
        .unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let while_taken = ticker.await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.failure.unwrap().error_type, "fuel_exhausted");
    assert!(
        while_taken >= 10,
        "the ticker ran only {while_taken} times while the guest held its permit"
    );
    assert_eq!(
        permits.available_permits(),
        1,
        "given back when the run ended"
    );
}
