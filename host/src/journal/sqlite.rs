//! The SQLite journal: WAL, `synchronous=FULL`, numbered migrations, one writer thread
//! with group commit, and a small pool of reader connections.
//!
//! Why one writer thread: SQLite allows one writer at a time anyway, and a thread that
//! owns the write connection can fold every write that queued up during the previous
//! fsync into the next transaction. Throughput then scales with concurrency instead of
//! being capped at one fsync per event. Each write runs inside its own savepoint, so one
//! failing write (say, a duplicate workflow id) does not undo its neighbours.

use super::*;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// The schema, one entry per version; `PRAGMA user_version` records how many ran.
/// Never edit an entry that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE modules (
    namespace   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    bytes       BLOB NOT NULL,
    size_bytes  INTEGER NOT NULL,
    PRIMARY KEY (namespace, hash)
);
CREATE TABLE module_types (
    namespace      TEXT NOT NULL,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    hash           TEXT NOT NULL,
    uploaded_at_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE runs (
    run_id         TEXT PRIMARY KEY,
    namespace      TEXT NOT NULL,
    workflow_id    TEXT NOT NULL,
    workflow_type  TEXT NOT NULL,
    module_hash    TEXT NOT NULL,
    status         TEXT NOT NULL,
    input          TEXT NOT NULL,
    output         TEXT,
    failure        TEXT,
    blocked_reason TEXT,
    created_at_ms  INTEGER NOT NULL,
    closed_at_ms   INTEGER
);
CREATE INDEX runs_by_workflow ON runs (namespace, workflow_id, created_at_ms);
CREATE INDEX runs_by_namespace ON runs (namespace, created_at_ms);
CREATE UNIQUE INDEX one_open_run_per_workflow ON runs (namespace, workflow_id)
    WHERE status IN ('running', 'blocked');
CREATE TABLE events (
    run_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    format INTEGER NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE timers (
    run_id     TEXT NOT NULL,
    handle     INTEGER NOT NULL,
    fire_at_ms INTEGER NOT NULL,
    PRIMARY KEY (run_id, handle)
) WITHOUT ROWID;
CREATE INDEX timers_by_time ON timers (fire_at_ms);
CREATE TABLE activity_tasks (
    run_id          TEXT NOT NULL,
    handle          INTEGER NOT NULL,
    name            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    scheduled_at_ms INTEGER NOT NULL,
    closed_at_ms    INTEGER,
    PRIMARY KEY (run_id, handle)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE signal_inbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         TEXT NOT NULL,
    name           TEXT NOT NULL,
    input          TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL
);
CREATE INDEX signal_inbox_by_run ON signal_inbox (run_id, id);
"#,
    r#"
ALTER TABLE runs ADD COLUMN continued_from TEXT;
"#,
    r#"
ALTER TABLE runs ADD COLUMN parent_workflow_id TEXT;
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN parent_handle INTEGER;
ALTER TABLE runs ADD COLUMN parent_close_policy TEXT;
CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX runs_by_parent_workflow ON runs (namespace, parent_workflow_id)
    WHERE parent_workflow_id IS NOT NULL;
-- Entries other than signals (a child's result) keep their event as JSON here; a
-- signal keeps name and input in their columns, as before.
ALTER TABLE signal_inbox ADD COLUMN event TEXT;
"#,
    r#"
CREATE TABLE activity_attempts (
    run_id        TEXT NOT NULL,
    handle        INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL,
    ended_at_ms   INTEGER NOT NULL,
    failure       TEXT NOT NULL,
    PRIMARY KEY (run_id, handle, attempt)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE namespaces (
    name          TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    quotas        TEXT NOT NULL,
    -- Copied out of `quotas`: the one quota the writer checks itself, inside the
    -- transaction that creates a run.
    max_running_workflows INTEGER
);
CREATE TABLE api_keys (
    key_id        TEXT PRIMARY KEY,
    namespace     TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    label         TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER,
    revoked_at_ms INTEGER
);
CREATE INDEX api_keys_by_namespace ON api_keys (namespace, created_at_ms);
CREATE TABLE namespace_usage (
    namespace     TEXT PRIMARY KEY,
    fuel_consumed INTEGER NOT NULL DEFAULT 0,
    activations   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX open_runs_by_namespace ON runs (namespace)
    WHERE status IN ('running', 'blocked');
"#,
];

/// Writes folded into one transaction at most; bounds the latency of a batch.
const MAX_BATCH: usize = 1_024;
/// Writes that may wait for the writer; submitters wait beyond this (back-pressure).
const QUEUE_DEPTH: usize = 8_192;
const READERS: usize = 4;

struct WriteRequest {
    write: Write,
    done: oneshot::Sender<JournalResult<()>>,
}

pub struct SqliteJournal {
    writes: mpsc::Sender<WriteRequest>,
    readers: Arc<ReaderPool>,
}

fn storage(e: impl std::fmt::Display) -> JournalError {
    JournalError::Storage(e.to_string())
}

fn open_connection(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteJournal {
    /// Opens (creating if needed) the journal at `path` and starts its writer thread.
    pub fn open(path: impl Into<PathBuf>) -> JournalResult<Self> {
        let path = path.into();
        let mut conn = open_connection(&path).map_err(storage)?;
        migrate(&mut conn).map_err(storage)?;
        let (writes, rx) = mpsc::channel(QUEUE_DEPTH);
        // The writer ends when the last sender is dropped, after committing what was
        // queued. It is not joined: every acknowledged write is already durable.
        std::thread::Builder::new()
            .name("spool-journal-writer".into())
            .spawn(move || run_writer(conn, rx))
            .map_err(storage)?;
        Ok(Self {
            writes,
            readers: Arc::new(ReaderPool {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> JournalResult<T> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .map_err(storage)?
    }
}

struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> JournalResult<T> {
        let conn = self.idle.lock().map_err(storage)?.pop();
        let conn = match conn {
            Some(conn) => conn,
            None => open_connection(&self.path).map_err(storage)?,
        };
        let result = f(&conn).map_err(storage);
        let mut idle = self.idle.lock().map_err(storage)?;
        if idle.len() < READERS {
            idle.push(conn);
        }
        result
    }
}

fn run_writer(mut conn: Connection, mut rx: mpsc::Receiver<WriteRequest>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let outcomes = commit_batch(&mut conn, &batch);
        for (request, outcome) in batch.drain(..).zip(outcomes) {
            // The submitter may have gone away (e.g. a cancelled HTTP request); the write
            // is committed regardless.
            let _ = request.done.send(outcome);
        }
    }
}

/// Applies every write of the batch in one transaction, each in its own savepoint, and
/// returns one outcome per write. A failed commit fails them all.
///
/// The usage of the writes that succeeded (`Append::usage`, `ContinueAsNew::usage`) is
/// added to `namespace_usage` at the end of the transaction, once per namespace: one
/// update per batch instead of one per write, in the same commit as the events.
fn commit_batch(conn: &mut Connection, batch: &[WriteRequest]) -> Vec<JournalResult<()>> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let result = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut usage: Vec<(String, Usage)> = Vec::new();
        for request in batch {
            if matches!(request.write, Write::DeleteNamespace(_)) {
                // Counted before, so that a deleted namespace leaves no usage behind.
                write_usage(&tx, &mut usage)?;
            }
            let mut savepoint = tx.savepoint()?;
            match apply(&savepoint, &request.write) {
                Ok(()) => {
                    savepoint.commit()?;
                    outcomes.push(Ok(()));
                    if let Some((run_id, used)) = request.write.usage() {
                        add_usage(&tx, &mut usage, run_id, used)?;
                    }
                }
                Err(error) => {
                    savepoint.rollback()?;
                    drop(savepoint);
                    outcomes.push(Err(error));
                }
            }
        }
        write_usage(&tx, &mut usage)?;
        tx.commit()
    })();
    match result {
        Ok(()) => outcomes,
        Err(e) => {
            tracing::error!(error = %e, "journal commit failed");
            batch.iter().map(|_| Err(storage(&e))).collect()
        }
    }
}

fn apply(conn: &Connection, write: &Write) -> JournalResult<()> {
    match write {
        Write::PutModule { record, bytes } => {
            conn.prepare_cached(
                "INSERT INTO modules (namespace, hash, bytes, size_bytes) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (namespace, hash) DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    record.namespace.as_str(),
                    record.hash.as_str(),
                    bytes,
                    bytes.len() as i64
                ])
            })
            .map_err(storage)?;
            conn.prepare_cached(
                "INSERT INTO module_types (namespace, name, kind, hash, uploaded_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (namespace, name) DO UPDATE SET
                    kind = excluded.kind, hash = excluded.hash,
                    uploaded_at_ms = excluded.uploaded_at_ms",
            )
            .and_then(|mut s| {
                s.execute(params![
                    record.namespace.as_str(),
                    record.name.as_str(),
                    record.kind.as_str(),
                    record.hash.as_str(),
                    record.uploaded_at_ms as i64
                ])
            })
            .map_err(storage)?;
        }
        Write::CreateRun { record, started } => {
            // Inserted first, so that a taken workflow id is `AlreadyRunning` (which a
            // client may accept) whatever the quota; over the quota, this write's
            // savepoint undoes the insert.
            insert_run(conn, record, started)?;
            check_running_quota(conn, record, 1)?
        }
        Write::ContinueAsNew {
            run_id,
            events,
            new_run,
            new_started,
            carried,
            usage: _,
        } => {
            insert_events(conn, run_id, events)?;
            // Unconsumed signals keep their order: the journaled ones first, then those
            // still in the inbox; all get fresh ids under the new run.
            for entry in carried {
                insert_inbox(conn, &new_run.run_id, entry, false)?;
            }
            // Signals and updates go on; children's results belong to this run's
            // handles and would mean nothing to the next run.
            conn.prepare_cached(
                "INSERT INTO signal_inbox (run_id, name, input, received_at_ms, event)
                 SELECT ?2, name, input, received_at_ms, event FROM signal_inbox
                 WHERE run_id = ?1
                   AND (event IS NULL OR json_extract(event, '$.type') = 'update_received')
                 ORDER BY id",
            )
            .and_then(|mut s| s.execute(params![run_id.as_str(), new_run.run_id.as_str()]))
            .map_err(storage)?;
            // Closing the old run clears its inbox and frees the workflow id.
            update_status(
                conn,
                run_id,
                &StatusChange::ContinuedAsNew,
                events.last().map(|e| e.recorded_at_ms),
            )?;
            insert_run(conn, new_run, new_started)?;
        }
        Write::Append {
            run_id,
            events,
            status,
            signals_upto,
            children,
            usage: _,
        } => {
            insert_events(conn, run_id, events)?;
            if let Some(upto) = signals_upto {
                conn.prepare_cached("DELETE FROM signal_inbox WHERE run_id = ?1 AND id <= ?2")
                    .and_then(|mut s| s.execute(params![run_id.as_str(), upto]))
                    .map_err(storage)?;
            }
            for child in children {
                start_child(conn, run_id, child, events.last().map(|e| e.recorded_at_ms))?;
            }
            if let Some(status) = status {
                let at_ms = events.last().map(|e| e.recorded_at_ms);
                update_status(conn, run_id, status, at_ms)?;
                report_to_parent(conn, run_id, status, at_ms)?;
            }
        }
        Write::Signal { run_id, signal } => {
            // Accepted only while the run is open; the writer orders this against the
            // run's own writes, so a signal never lands in a closed run's inbox.
            if !insert_inbox(conn, run_id, signal, true)? {
                return Err(JournalError::RunClosed(run_id.clone()));
            }
        }
        Write::RecordAttempt(record) => {
            let failure = serde_json::to_string(&record.failure).map_err(storage)?;
            // A retry after a restart may repeat an attempt number: the newer wins.
            conn.prepare_cached(
                "INSERT OR REPLACE INTO activity_attempts
                    (run_id, handle, attempt, started_at_ms, ended_at_ms, failure)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    record.run_id.as_str(),
                    record.handle.0,
                    record.attempt,
                    record.started_at_ms as i64,
                    record.ended_at_ms as i64,
                    failure
                ])
            })
            .map_err(storage)?;
        }
        Write::Repin {
            run_id,
            module_hash,
        } => {
            conn.prepare_cached("UPDATE runs SET module_hash = ?2 WHERE run_id = ?1")
                .and_then(|mut s| s.execute(params![run_id.as_str(), module_hash.as_str()]))
                .map_err(storage)?;
        }
        Write::CreateNamespace(record) => {
            let quotas = serde_json::to_string(&record.quotas).map_err(storage)?;
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO namespaces (name, created_at_ms, quotas, max_running_workflows)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        record.name.as_str(),
                        record.created_at_ms as i64,
                        quotas,
                        record.quotas.max_running_workflows.map(|m| m as i64)
                    ])
                })
                .map_err(storage)?;
            if inserted == 0 {
                return Err(JournalError::Conflict(format!(
                    "namespace {} already exists",
                    record.name
                )));
            }
        }
        Write::SetQuotas { name, quotas } => {
            let json = serde_json::to_string(quotas).map_err(storage)?;
            let updated = conn
                .prepare_cached(
                    "UPDATE namespaces SET quotas = ?2, max_running_workflows = ?3
                     WHERE name = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        name.as_str(),
                        json,
                        quotas.max_running_workflows.map(|m| m as i64)
                    ])
                })
                .map_err(storage)?;
            if updated == 0 {
                return Err(JournalError::NotFound(format!(
                    "namespace {name} not found"
                )));
            }
        }
        Write::DeleteNamespace(name) => delete_namespace(conn, name)?,
        Write::PutApiKey(key) => {
            conn.prepare_cached(
                "INSERT INTO api_keys (key_id, namespace, secret_sha256, label, created_at_ms,
                    expires_at_ms, revoked_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key.key_id,
                    key.namespace.as_str(),
                    key.secret_sha256,
                    key.label,
                    key.created_at_ms as i64,
                    key.expires_at_ms.map(|t| t as i64),
                    key.revoked_at_ms.map(|t| t as i64),
                ])
            })
            .map_err(storage)?;
        }
        Write::RevokeApiKey {
            namespace,
            key_id,
            at_ms,
        } => {
            let updated = conn
                .prepare_cached(
                    "UPDATE api_keys SET revoked_at_ms = COALESCE(revoked_at_ms, ?3)
                     WHERE key_id = ?1 AND namespace = ?2",
                )
                .and_then(|mut s| s.execute(params![key_id, namespace.as_str(), *at_ms as i64]))
                .map_err(storage)?;
            if updated == 0 {
                return Err(JournalError::NotFound(format!(
                    "namespace {namespace} has no key {key_id}"
                )));
            }
        }
    }
    Ok(())
}

/// Adds the usage counted so far in a batch to `namespace_usage`, and empties it.
fn write_usage(conn: &Connection, usage: &mut Vec<(String, Usage)>) -> rusqlite::Result<()> {
    for (namespace, used) in usage.drain(..) {
        conn.prepare_cached(
            "INSERT INTO namespace_usage (namespace, fuel_consumed, activations)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (namespace) DO UPDATE SET
                fuel_consumed = fuel_consumed + excluded.fuel_consumed,
                activations = activations + excluded.activations",
        )?
        .execute(params![
            namespace,
            used.fuel as i64,
            used.activations as i64
        ])?;
    }
    Ok(())
}

/// Counts a guest's work to the namespace of its run, in `into` (one entry per
/// namespace; batches hold few namespaces).
fn add_usage(
    conn: &Connection,
    into: &mut Vec<(String, Usage)>,
    run_id: &RunId,
    usage: &Usage,
) -> rusqlite::Result<()> {
    let namespace: Option<String> = conn
        .prepare_cached("SELECT namespace FROM runs WHERE run_id = ?1")?
        .query_row(params![run_id.as_str()], |row| row.get(0))
        .optional()?;
    let Some(namespace) = namespace else {
        return Ok(());
    };
    match into.iter_mut().find(|(ns, _)| *ns == namespace) {
        Some((_, total)) => total.add(*usage),
        None => into.push((namespace, *usage)),
    }
    Ok(())
}

/// Runs of `namespace` that are running or blocked (index `open_runs_by_namespace`).
fn count_open_runs(conn: &Connection, namespace: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT COUNT(*) FROM runs WHERE namespace = ?1 AND status IN ('running', 'blocked')",
    )?
    .query_row(params![namespace], |r| r.get(0))
}

fn delete_namespace(conn: &Connection, name: &Namespace) -> JournalResult<()> {
    let ns = name.as_str();
    let open = count_open_runs(conn, ns).map_err(storage)?;
    if open > 0 {
        return Err(JournalError::Conflict(format!(
            "namespace {name} has {open} open runs; terminate them first"
        )));
    }
    // Per-run tables first, while `runs` still says which runs are the namespace's.
    for table in [
        "events",
        "timers",
        "activity_tasks",
        "signal_inbox",
        "activity_attempts",
    ] {
        conn.execute(
            &format!(
                "DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM runs WHERE namespace = ?1)"
            ),
            params![ns],
        )
        .map_err(storage)?;
    }
    for (table, column) in [
        ("runs", "namespace"),
        ("module_types", "namespace"),
        ("modules", "namespace"),
        ("api_keys", "namespace"),
        ("namespace_usage", "namespace"),
        ("namespaces", "name"),
    ] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE {column} = ?1"),
            params![ns],
        )
        .map_err(storage)?;
    }
    Ok(())
}

/// Refuses a new open run beyond the namespace's `max_running_workflows`; `inserted`:
/// whether `record` is already among the open runs counted (1) or not (0).
fn check_running_quota(conn: &Connection, record: &RunRecord, inserted: i64) -> JournalResult<()> {
    let limit: Option<Option<i64>> = conn
        .prepare_cached("SELECT max_running_workflows FROM namespaces WHERE name = ?1")
        .and_then(|mut s| {
            s.query_row(params![record.namespace.as_str()], |r| r.get(0))
                .optional()
        })
        .map_err(storage)?;
    let Some(Some(limit)) = limit else {
        return Ok(());
    };
    let open = count_open_runs(conn, record.namespace.as_str()).map_err(storage)?;
    let open = open - inserted;
    if open >= limit {
        return Err(JournalError::QuotaExceeded {
            quota: "max_running_workflows",
            message: format!(
                "namespace {} has {open} open runs, its quota max_running_workflows is {limit}; \
                 wait for runs to finish",
                record.namespace
            ),
        });
    }
    Ok(())
}

/// Puts `entry` in the inbox of `run_id`; with `only_if_open`, only while the run is
/// open. Returns whether it was stored.
fn insert_inbox(
    conn: &Connection,
    run_id: &RunId,
    entry: &InboxEntry,
    only_if_open: bool,
) -> JournalResult<bool> {
    // Signals keep name and input in their own columns; other entries are JSON.
    let (name, input, event) = match &entry.event {
        EventKind::SignalReceived { name, input } => (name.as_str(), input.as_str(), None),
        other => ("", "", Some(serde_json::to_string(other).map_err(storage)?)),
    };
    let sql = if only_if_open {
        "INSERT INTO signal_inbox (run_id, name, input, received_at_ms, event)
         SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (
            SELECT 1 FROM runs WHERE run_id = ?1 AND status IN ('running', 'blocked'))"
    } else {
        "INSERT INTO signal_inbox (run_id, name, input, received_at_ms, event)
         VALUES (?1, ?2, ?3, ?4, ?5)"
    };
    let inserted = conn
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.execute(params![
                run_id.as_str(),
                name,
                input,
                entry.received_at_ms as i64,
                event
            ])
        })
        .map_err(storage)?;
    Ok(inserted > 0)
}

/// Creates a child run, or, if its workflow id is taken by an open run, fails the
/// parent's handle on it through the parent's inbox.
fn start_child(
    conn: &Connection,
    parent_run: &RunId,
    child: &NewChild,
    at_ms: Option<EpochMs>,
) -> JournalResult<()> {
    let Some(link) = &child.record.parent else {
        return Err(storage("a child run without a parent link"));
    };
    // A continued run replaces its predecessor and is not counted again; a child is a
    // new open run like any other.
    let created = check_running_quota(conn, &child.record, 0)
        .and_then(|()| insert_run(conn, &child.record, &child.started));
    match created {
        Err(refused @ (JournalError::AlreadyRunning(_) | JournalError::QuotaExceeded { .. })) => {
            let error_type = match &refused {
                JournalError::QuotaExceeded { .. } => "quota_exceeded",
                _ => "already_running",
            };
            let failure = Failure::new(
                FailureKind::Application,
                error_type,
                format!("cannot start the child workflow: {refused}"),
            )
            .non_retryable();
            let entry = InboxEntry {
                id: 0,
                event: EventKind::ChildFailed {
                    handle: link.handle,
                    run_id: None,
                    failure,
                },
                received_at_ms: at_ms.unwrap_or(child.record.created_at_ms),
            };
            insert_inbox(conn, parent_run, &entry, false).map(|_| ())
        }
        other => other,
    }
}

/// Hands a closed child's outcome to its parent's inbox (if the parent is still open).
fn report_to_parent(
    conn: &Connection,
    run_id: &RunId,
    status: &StatusChange,
    at_ms: Option<EpochMs>,
) -> JournalResult<()> {
    let parent: Option<(Option<String>, Option<i64>)> = conn
        .prepare_cached("SELECT parent_run_id, parent_handle FROM runs WHERE run_id = ?1")
        .and_then(|mut s| {
            s.query_row(params![run_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(storage)?;
    let Some((Some(parent_run), Some(handle))) = parent else {
        return Ok(());
    };
    let handle = Handle(handle as u32);
    let event = match status {
        StatusChange::Completed { output } => EventKind::ChildCompleted {
            handle,
            run_id: run_id.clone(),
            output: output.clone(),
        },
        StatusChange::Failed { failure } => EventKind::ChildFailed {
            handle,
            run_id: Some(run_id.clone()),
            failure: failure.clone(),
        },
        StatusChange::Terminated { reason } => EventKind::ChildFailed {
            handle,
            run_id: Some(run_id.clone()),
            failure: Failure::new(FailureKind::Terminated, "terminated", reason.clone()),
        },
        StatusChange::Blocked { .. } | StatusChange::ContinuedAsNew | StatusChange::Running => {
            return Ok(())
        }
    };
    let entry = InboxEntry {
        id: 0,
        event,
        received_at_ms: at_ms.unwrap_or_default(),
    };
    insert_inbox(conn, &RunId(parent_run), &entry, true).map(|_| ())
}

fn insert_run(conn: &Connection, record: &RunRecord, started: &Event) -> JournalResult<()> {
    let parent = record.parent.as_ref();
    let inserted = conn
        .prepare_cached(
            "INSERT INTO runs (run_id, namespace, workflow_id, workflow_type, module_hash,
                status, input, created_at_ms, continued_from, parent_workflow_id,
                parent_run_id, parent_handle, parent_close_policy)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .and_then(|mut s| {
            s.execute(params![
                record.run_id.as_str(),
                record.namespace.as_str(),
                record.workflow_id.as_str(),
                record.workflow_type.as_str(),
                record.module_hash.as_str(),
                record.status.as_str(),
                record.input,
                record.created_at_ms as i64,
                record.continued_from.as_ref().map(|r| r.as_str()),
                parent.map(|p| p.workflow_id.as_str()),
                parent.map(|p| p.run_id.as_str()),
                parent.map(|p| p.handle.0),
                parent.map(|p| p.close_policy.as_str()),
            ])
        });
    match inserted {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(JournalError::AlreadyRunning(record.workflow_id.clone()));
        }
        Err(e) => return Err(storage(e)),
    }
    insert_events(conn, &record.run_id, std::slice::from_ref(started))
}

fn insert_events(conn: &Connection, run_id: &RunId, events: &[Event]) -> JournalResult<()> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (run_id, seq, kind, format, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(storage)?;
    for event in events {
        let body = serde_json::to_string(event).map_err(storage)?;
        insert
            .execute(params![
                run_id.as_str(),
                event.seq.0 as i64,
                event.kind.type_name(),
                EVENT_FORMAT_VERSION,
                body
            ])
            .map_err(storage)?;
        index_event(conn, run_id, event)?;
    }
    Ok(())
}

/// Keeps the `timers` and `activity_tasks` tables, which let operators see what a run
/// waits for without decoding its events, in step with the events.
fn index_event(conn: &Connection, run_id: &RunId, event: &Event) -> JournalResult<()> {
    let run = run_id.as_str();
    let result = match &event.kind {
        EventKind::TimerStarted {
            handle, fire_at_ms, ..
        } => conn
            .prepare_cached("INSERT INTO timers (run_id, handle, fire_at_ms) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![run, handle.0, *fire_at_ms as i64])),
        EventKind::TimerFired { handle } => conn
            .prepare_cached("DELETE FROM timers WHERE run_id = ?1 AND handle = ?2")
            .and_then(|mut s| s.execute(params![run, handle.0])),
        EventKind::ActivityScheduled { handle, name, .. } => conn
            .prepare_cached(
                "INSERT INTO activity_tasks (run_id, handle, name, status, scheduled_at_ms)
                 VALUES (?1, ?2, ?3, 'scheduled', ?4)",
            )
            .and_then(|mut s| s.execute(params![run, handle.0, name, event.recorded_at_ms as i64])),
        EventKind::ActivityCompleted {
            handle, attempts, ..
        }
        | EventKind::ActivityFailed {
            handle, attempts, ..
        } => {
            let status = if matches!(event.kind, EventKind::ActivityCompleted { .. }) {
                "completed"
            } else {
                "failed"
            };
            conn.prepare_cached(
                "UPDATE activity_tasks SET status = ?3, attempts = ?4, closed_at_ms = ?5
                 WHERE run_id = ?1 AND handle = ?2",
            )
            .and_then(|mut s| {
                s.execute(params![
                    run,
                    handle.0,
                    status,
                    attempts,
                    event.recorded_at_ms as i64
                ])
            })
        }
        _ => Ok(0),
    };
    result.map(|_| ()).map_err(storage)
}

fn update_status(
    conn: &Connection,
    run_id: &RunId,
    status: &StatusChange,
    at_ms: Option<EpochMs>,
) -> JournalResult<()> {
    if matches!(
        status,
        StatusChange::Completed { .. }
            | StatusChange::Failed { .. }
            | StatusChange::Terminated { .. }
            | StatusChange::ContinuedAsNew
    ) {
        // A closed run waits for nothing: its timers are dropped, and activities without
        // a result are marked abandoned (attempts in flight are not cancelled; their
        // results are no longer recorded).
        let run = run_id.as_str();
        conn.prepare_cached("DELETE FROM timers WHERE run_id = ?1")
            .and_then(|mut s| s.execute(params![run]))
            .map_err(storage)?;
        // Signals accepted while the run was open but never journaled go with it.
        conn.prepare_cached("DELETE FROM signal_inbox WHERE run_id = ?1")
            .and_then(|mut s| s.execute(params![run]))
            .map_err(storage)?;
        conn.prepare_cached(
            "UPDATE activity_tasks SET status = 'abandoned' WHERE run_id = ?1 AND status = 'scheduled'",
        )
        .and_then(|mut s| s.execute(params![run]))
        .map_err(storage)?;
    }
    let (status, output, failure, reason, closed) = match status {
        StatusChange::Completed { output } => (
            RunStatus::Completed,
            Some(output.clone()),
            None,
            None,
            at_ms,
        ),
        StatusChange::Failed { failure } => (
            // A workflow that ends with a cancellation error (normally after a cancel
            // request) ends as cancelled, not failed.
            if failure.kind == FailureKind::Cancelled {
                RunStatus::Cancelled
            } else {
                RunStatus::Failed
            },
            None,
            Some(serde_json::to_string(failure).map_err(storage)?),
            None,
            at_ms,
        ),
        StatusChange::Blocked { reason } => {
            (RunStatus::Blocked, None, None, Some(reason.clone()), None)
        }
        StatusChange::Terminated { reason } => {
            let failure = Failure::new(FailureKind::Terminated, "terminated", reason.clone());
            (
                RunStatus::Terminated,
                None,
                Some(serde_json::to_string(&failure).map_err(storage)?),
                None,
                at_ms,
            )
        }
        StatusChange::ContinuedAsNew => (RunStatus::ContinuedAsNew, None, None, None, at_ms),
        StatusChange::Running => (RunStatus::Running, None, None, None, None),
    };
    conn.prepare_cached(
        "UPDATE runs SET status = ?2, output = ?3, failure = ?4, blocked_reason = ?5,
            closed_at_ms = ?6 WHERE run_id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            run_id.as_str(),
            status.as_str(),
            output,
            failure,
            reason,
            closed.map(|t| t as i64)
        ])
    })
    .map(|_| ())
    .map_err(storage)
}

const RUN_COLUMNS: &str = "namespace, workflow_id, run_id, workflow_type, module_hash, status,
    input, output, failure, blocked_reason, created_at_ms, closed_at_ms, continued_from,
    parent_workflow_id, parent_run_id, parent_handle, parent_close_policy";

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    let status: String = row.get(5)?;
    let failure: Option<String> = row.get(8)?;
    let bad = |column: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, what.into())
    };
    Ok(RunRecord {
        namespace: Namespace(row.get(0)?),
        workflow_id: WorkflowId(row.get(1)?),
        run_id: RunId(row.get(2)?),
        workflow_type: TypeName(row.get(3)?),
        module_hash: ModuleHash(row.get(4)?),
        status: RunStatus::parse(&status).ok_or_else(|| bad(5, format!("status {status}")))?,
        input: row.get(6)?,
        output: row.get(7)?,
        failure: failure
            .map(|f| serde_json::from_str(&f).map_err(|e| bad(8, e.to_string())))
            .transpose()?,
        blocked_reason: row.get(9)?,
        created_at_ms: row.get::<_, i64>(10)? as u64,
        closed_at_ms: row.get::<_, Option<i64>>(11)?.map(|t| t as u64),
        continued_from: row.get::<_, Option<String>>(12)?.map(RunId),
        parent: match (
            row.get::<_, Option<String>>(13)?,
            row.get::<_, Option<String>>(14)?,
            row.get::<_, Option<i64>>(15)?,
        ) {
            (Some(workflow_id), Some(run_id), Some(handle)) => {
                let policy: Option<String> = row.get(16)?;
                Some(ParentLink {
                    workflow_id: WorkflowId(workflow_id),
                    run_id: RunId(run_id),
                    handle: Handle(handle as u32),
                    close_policy: policy
                        .as_deref()
                        .and_then(ParentClosePolicy::parse)
                        .unwrap_or_default(),
                })
            }
            _ => None,
        },
    })
}

const KEY_COLUMNS: &str =
    "key_id, namespace, secret_sha256, label, created_at_ms, expires_at_ms, revoked_at_ms";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        key_id: row.get(0)?,
        namespace: Namespace(row.get(1)?),
        secret_sha256: row.get(2)?,
        label: row.get(3)?,
        created_at_ms: row.get::<_, i64>(4)? as EpochMs,
        expires_at_ms: row.get::<_, Option<i64>>(5)?.map(|t| t as EpochMs),
        revoked_at_ms: row.get::<_, Option<i64>>(6)?.map(|t| t as EpochMs),
    })
}

fn module_from_row(row: &Row<'_>) -> rusqlite::Result<ModuleRecord> {
    let kind: String = row.get(2)?;
    Ok(ModuleRecord {
        namespace: Namespace(row.get(0)?),
        name: TypeName(row.get(1)?),
        kind: ModuleKind::parse(&kind).unwrap_or(ModuleKind::Workflow),
        hash: ModuleHash(row.get(3)?),
        size_bytes: row.get::<_, i64>(4)? as u64,
        uploaded_at_ms: row.get::<_, i64>(5)? as u64,
    })
}

const MODULE_QUERY: &str = "SELECT t.namespace, t.name, t.kind, t.hash, m.size_bytes,
    t.uploaded_at_ms FROM module_types t JOIN modules m
    ON m.namespace = t.namespace AND m.hash = t.hash";

#[async_trait::async_trait]
impl Journal for SqliteJournal {
    async fn submit(&self, write: Write) -> CommitTicket {
        let (done, committed) = oneshot::channel();
        let sent = self.writes.send(WriteRequest { write, done }).await;
        Box::pin(async move {
            sent.map_err(|_| JournalError::Closed)?;
            committed.await.map_err(|_| JournalError::Closed)?
        })
    }

    async fn module_for_type(
        &self,
        namespace: &Namespace,
        name: &TypeName,
    ) -> JournalResult<Option<ModuleRecord>> {
        let (ns, name) = (namespace.0.clone(), name.0.clone());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "{MODULE_QUERY} WHERE t.namespace = ?1 AND t.name = ?2"
            ))?
            .query_row(params![ns, name], module_from_row)
            .optional()
        })
        .await
    }

    async fn module_bytes(
        &self,
        namespace: &Namespace,
        hash: &ModuleHash,
    ) -> JournalResult<Option<Vec<u8>>> {
        let (ns, hash) = (namespace.0.clone(), hash.0.clone());
        self.read(move |c| {
            c.prepare_cached("SELECT bytes FROM modules WHERE namespace = ?1 AND hash = ?2")?
                .query_row(params![ns, hash], |r| r.get(0))
                .optional()
        })
        .await
    }

    async fn list_modules(&self, namespace: &Namespace) -> JournalResult<Vec<ModuleRecord>> {
        let ns = namespace.0.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "{MODULE_QUERY} WHERE t.namespace = ?1 ORDER BY t.name"
            ))?
            .query_map(params![ns], module_from_row)?
            .collect()
        })
        .await
    }

    async fn latest_run(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
    ) -> JournalResult<Option<RunRecord>> {
        let (ns, id) = (namespace.0.clone(), workflow_id.0.clone());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE namespace = ?1 AND workflow_id = ?2
                 ORDER BY created_at_ms DESC, rowid DESC LIMIT 1"
            ))?
            .query_row(params![ns, id], run_from_row)
            .optional()
        })
        .await
    }

    async fn run(&self, run_id: &RunId) -> JournalResult<Option<RunRecord>> {
        let id = run_id.0.clone();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"))?
                .query_row(params![id], run_from_row)
                .optional()
        })
        .await
    }

    async fn list_runs(
        &self,
        namespace: &Namespace,
        filter: &RunFilter,
    ) -> JournalResult<Vec<RunRecord>> {
        let ns = namespace.0.clone();
        let status = filter.status.map(|s| s.as_str().to_owned());
        let workflow_type = filter.workflow_type.as_ref().map(|t| t.0.clone());
        let parent = filter.parent_workflow_id.as_ref().map(|p| p.0.clone());
        let limit = filter.limit.clamp(1, 1_000) as i64;
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE namespace = ?1
                   AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR workflow_type = ?3)
                   AND (?5 IS NULL OR parent_workflow_id = ?5)
                 ORDER BY created_at_ms DESC, rowid DESC LIMIT ?4"
            ))?
            .query_map(
                params![ns, status, workflow_type, limit, parent],
                run_from_row,
            )?
            .collect()
        })
        .await
    }

    async fn runs_of(
        &self,
        namespace: &Namespace,
        workflow_id: &WorkflowId,
    ) -> JournalResult<Vec<RunRecord>> {
        let (ns, id) = (namespace.0.clone(), workflow_id.0.clone());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE namespace = ?1 AND workflow_id = ?2
                 ORDER BY created_at_ms DESC, rowid DESC LIMIT 1000"
            ))?
            .query_map(params![ns, id], run_from_row)?
            .collect()
        })
        .await
    }

    async fn open_runs(&self) -> JournalResult<Vec<RunRecord>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE status IN ('running', 'blocked')
                 ORDER BY created_at_ms"
            ))?
            .query_map([], run_from_row)?
            .collect()
        })
        .await
    }

    async fn inbox(&self, run_id: &RunId) -> JournalResult<Vec<InboxEntry>> {
        let id = run_id.0.clone();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, name, input, received_at_ms, event FROM signal_inbox
                 WHERE run_id = ?1 ORDER BY id",
            )?
            .query_map(params![id], |r| {
                let event = match r.get::<_, Option<String>>(4)? {
                    Some(json) => serde_json::from_str(&json).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            4,
                            rusqlite::types::Type::Text,
                            e.into(),
                        )
                    })?,
                    None => EventKind::SignalReceived {
                        name: r.get(1)?,
                        input: r.get(2)?,
                    },
                };
                Ok(InboxEntry {
                    id: r.get(0)?,
                    event,
                    received_at_ms: r.get::<_, i64>(3)? as u64,
                })
            })?
            .collect()
        })
        .await
    }

    async fn inbox_len(&self, run_id: &RunId) -> JournalResult<u64> {
        let id = run_id.0.clone();
        self.read(move |c| {
            c.prepare_cached("SELECT COUNT(*) FROM signal_inbox WHERE run_id = ?1")?
                .query_row(params![id], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
        .await
    }

    async fn attempts(&self, run_id: &RunId) -> JournalResult<Vec<AttemptRecord>> {
        let id = run_id.0.clone();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT handle, attempt, started_at_ms, ended_at_ms, failure
                 FROM activity_attempts WHERE run_id = ?1 ORDER BY handle, attempt",
            )?
            .query_map(params![id], |r| {
                let failure: String = r.get(4)?;
                Ok(AttemptRecord {
                    run_id: RunId(id.clone()),
                    handle: Handle(r.get(0)?),
                    attempt: r.get(1)?,
                    started_at_ms: r.get::<_, i64>(2)? as u64,
                    ended_at_ms: r.get::<_, i64>(3)? as u64,
                    failure: serde_json::from_str(&failure).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            4,
                            rusqlite::types::Type::Text,
                            e.into(),
                        )
                    })?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn children(&self, run_id: &RunId) -> JournalResult<Vec<RunRecord>> {
        let id = run_id.0.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE parent_run_id = ?1
                 ORDER BY created_at_ms, rowid"
            ))?
            .query_map(params![id], run_from_row)?
            .collect()
        })
        .await
    }

    async fn namespaces(&self) -> JournalResult<Vec<NamespaceRecord>> {
        let rows: Vec<(String, i64, String)> = self
            .read(|c| {
                c.prepare_cached(
                    "SELECT name, created_at_ms, quotas FROM namespaces ORDER BY name",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
            })
            .await?;
        rows.into_iter()
            .map(|(name, created_at_ms, quotas)| {
                Ok(NamespaceRecord {
                    name: Namespace(name),
                    created_at_ms: created_at_ms as EpochMs,
                    quotas: serde_json::from_str(&quotas).map_err(storage)?,
                })
            })
            .collect()
    }

    async fn namespace_usage(&self, namespace: &Namespace) -> JournalResult<NamespaceUsage> {
        let ns = namespace.0.clone();
        self.read(move |c| {
            let (fuel_consumed, activations): (i64, i64) = c
                .prepare_cached(
                    "SELECT fuel_consumed, activations FROM namespace_usage WHERE namespace = ?1",
                )?
                .query_row(params![ns], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .unwrap_or((0, 0));
            let count = |sql: &str| -> rusqlite::Result<u64> {
                c.prepare_cached(sql)?
                    .query_row(params![ns], |r| r.get::<_, i64>(0))
                    .map(|n| n as u64)
            };
            Ok(NamespaceUsage {
                fuel_consumed: fuel_consumed as u64,
                activations: activations as u64,
                open_runs: count_open_runs(c, &ns)? as u64,
                runs: count("SELECT COUNT(*) FROM runs WHERE namespace = ?1")?,
                modules: count("SELECT COUNT(*) FROM module_types WHERE namespace = ?1")?,
            })
        })
        .await
    }

    async fn api_keys(&self, namespace: &Namespace) -> JournalResult<Vec<ApiKeyRecord>> {
        let ns = namespace.0.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE namespace = ?1
                 ORDER BY created_at_ms, key_id"
            ))?
            .query_map(params![ns], key_from_row)?
            .collect()
        })
        .await
    }

    async fn api_key(&self, key_id: &str) -> JournalResult<Option<ApiKeyRecord>> {
        let id = key_id.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = ?1"
            ))?
            .query_row(params![id], key_from_row)
            .optional()
        })
        .await
    }

    async fn events(&self, run_id: &RunId) -> JournalResult<Vec<Event>> {
        let id = run_id.0.clone();
        let rows: Vec<(i64, String)> = self
            .read(move |c| {
                c.prepare_cached("SELECT format, body FROM events WHERE run_id = ?1 ORDER BY seq")?
                    .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .await?;
        rows.iter()
            .map(|(format, body)| decode_event(*format, body).map_err(storage))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Seq;

    fn run_record(workflow_id: &str, run_id: &str) -> RunRecord {
        RunRecord {
            namespace: Namespace::default_namespace(),
            workflow_id: WorkflowId(workflow_id.into()),
            run_id: RunId(run_id.into()),
            workflow_type: TypeName("t".into()),
            module_hash: ModuleHash("h".into()),
            status: RunStatus::Running,
            input: "{}".into(),
            output: None,
            failure: None,
            blocked_reason: None,
            created_at_ms: 1,
            closed_at_ms: None,
            continued_from: None,
            parent: None,
        }
    }

    fn started(seq: u64) -> Event {
        Event {
            seq: Seq(seq),
            recorded_at_ms: 1,
            kind: EventKind::RunStarted {
                workflow_type: TypeName("t".into()),
                workflow_id: WorkflowId("w".into()),
                input: "{}".into(),
                seed: 7,
                module_hash: ModuleHash("h".into()),
            },
        }
    }

    #[tokio::test]
    async fn events_survive_reopen_and_status_changes_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        {
            let journal = SqliteJournal::open(&path).unwrap();
            commit(
                &journal,
                Write::CreateRun {
                    record: Box::new(run_record("w", "r1")),
                    started: started(0),
                },
            )
            .await
            .unwrap();
            let timer = Event {
                seq: Seq(1),
                recorded_at_ms: 2,
                kind: EventKind::TimerStarted {
                    handle: Handle(1),
                    duration_ms: 10,
                    fire_at_ms: 12,
                },
            };
            commit(
                &journal,
                Write::Append {
                    run_id: RunId("r1".into()),
                    events: vec![timer],
                    status: None,
                    signals_upto: None,
                    children: Vec::new(),
                    usage: Default::default(),
                },
            )
            .await
            .unwrap();
        }
        let journal = SqliteJournal::open(&path).unwrap();
        let events = journal.events(&RunId("r1".into())).await.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], started(0));
        assert_eq!(journal.open_runs().await.unwrap().len(), 1);
        let done = Event {
            seq: Seq(2),
            recorded_at_ms: 3,
            kind: EventKind::RunCompleted {
                output: "\"ok\"".into(),
            },
        };
        commit(
            &journal,
            Write::Append {
                run_id: RunId("r1".into()),
                events: vec![done],
                status: Some(StatusChange::Completed {
                    output: "\"ok\"".into(),
                }),
                signals_upto: None,
                children: Vec::new(),
                usage: Default::default(),
            },
        )
        .await
        .unwrap();
        let run = journal.run(&RunId("r1".into())).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Completed);
        assert_eq!(run.output.as_deref(), Some("\"ok\""));
        assert_eq!(run.closed_at_ms, Some(3));
        assert!(journal.open_runs().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_second_open_run_of_one_workflow_id_is_refused_without_harming_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqliteJournal::open(dir.path().join("j.db")).unwrap();
        // Queue all three before awaiting any, so they share one transaction.
        let a = journal
            .submit(Write::CreateRun {
                record: Box::new(run_record("w", "r1")),
                started: started(0),
            })
            .await;
        let b = journal
            .submit(Write::CreateRun {
                record: Box::new(run_record("w", "r2")),
                started: started(0),
            })
            .await;
        let c = journal
            .submit(Write::CreateRun {
                record: Box::new(run_record("other", "r3")),
                started: started(0),
            })
            .await;
        assert_eq!(a.await, Ok(()));
        assert_eq!(
            b.await,
            Err(JournalError::AlreadyRunning(WorkflowId("w".into())))
        );
        assert_eq!(c.await, Ok(()));
        assert!(journal.run(&RunId("r2".into())).await.unwrap().is_none());
        assert_eq!(journal.events(&RunId("r2".into())).await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn a_duplicate_event_seq_fails_only_its_own_write() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqliteJournal::open(dir.path().join("j.db")).unwrap();
        commit(
            &journal,
            Write::CreateRun {
                record: Box::new(run_record("w", "r1")),
                started: started(0),
            },
        )
        .await
        .unwrap();
        let dup = commit(
            &journal,
            Write::Append {
                run_id: RunId("r1".into()),
                events: vec![started(0)],
                status: None,
                signals_upto: None,
                children: Vec::new(),
                usage: Default::default(),
            },
        )
        .await;
        assert!(matches!(dup, Err(JournalError::Storage(_))));
        assert_eq!(journal.events(&RunId("r1".into())).await.unwrap().len(), 1);
    }

    /// Usage is added once per write that commits, summed per namespace over a batch;
    /// a write that fails adds nothing.
    #[tokio::test]
    async fn usage_of_committed_writes_is_added_to_their_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqliteJournal::open(dir.path().join("j.db")).unwrap();
        for (workflow, run) in [("w1", "r1"), ("w2", "r2")] {
            commit(
                &journal,
                Write::CreateRun {
                    record: Box::new(run_record(workflow, run)),
                    started: started(0),
                },
            )
            .await
            .unwrap();
        }
        let timer = |seq| Event {
            seq: Seq(seq),
            recorded_at_ms: 2,
            kind: EventKind::TimerStarted {
                handle: Handle(1),
                duration_ms: 10,
                fire_at_ms: 12,
            },
        };
        let append = |run: &str, event: Event, fuel| Write::Append {
            run_id: RunId(run.into()),
            events: vec![event],
            status: None,
            signals_upto: None,
            children: Vec::new(),
            usage: Usage {
                fuel,
                activations: 1,
            },
        };
        // Queued together, so they share one transaction; the duplicate seq fails.
        let tickets = [
            journal.submit(append("r1", timer(1), 100)).await,
            journal.submit(append("r2", timer(1), 20)).await,
            journal.submit(append("r1", started(0), 5_000)).await,
        ];
        let mut outcomes = Vec::new();
        for ticket in tickets {
            outcomes.push(ticket.await.is_ok());
        }
        assert_eq!(outcomes, [true, true, false]);
        let usage = journal
            .namespace_usage(&Namespace::default_namespace())
            .await
            .unwrap();
        assert_eq!((usage.fuel_consumed, usage.activations), (120, 2));
    }
}
