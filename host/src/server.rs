//! Puts the pieces together into a running server: journal, sandbox runtime, activity
//! executor, engine, recovery of open runs, the HTTP API and the web UI.

use crate::activity::{ActivityExecutor, HttpAllowList, Secrets};
use crate::api::{self, ApiState};
use crate::clock::SystemClock;
use crate::engine::{Engine, EngineConfig};
use crate::ids::{Namespace, TypeName};
use crate::journal::sqlite::SqliteJournal;
use crate::journal::ModuleKind;
use crate::runtime::{Runtime, SandboxLimits};
use axum::serve::ListenerExt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long in-flight requests may finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
pub struct DevServerConfig {
    pub db: PathBuf,
    pub port: u16,
    pub ui_port: Option<u16>,
    /// Workflow modules to upload at start: (type name, file).
    pub modules: Vec<(TypeName, PathBuf)>,
    /// Activity modules to upload at start: (activity name, file).
    pub activity_modules: Vec<(TypeName, PathBuf)>,
    /// Hosts outgoing HTTP may reach; empty means any (dev mode).
    pub allow_http: Vec<String>,
    /// Secrets for activities (name, value).
    pub secrets: Vec<(String, String)>,
    pub evict_after: Option<Duration>,
}

/// Runs the dev server until `shutdown` completes.
pub async fn run_dev_server(
    config: DevServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let journal =
        Arc::new(SqliteJournal::open(&config.db).map_err(|e| {
            anyhow::anyhow!("cannot open the journal {}: {e}", config.db.display())
        })?);
    let limits = SandboxLimits::default();
    let max_module_bytes = limits.max_module_bytes;
    let runtime = Runtime::new(limits, Some(config.db.with_extension("cache")))?;
    let engine_config = EngineConfig {
        evict_after: config.evict_after,
        ..EngineConfig::default()
    };
    let allow = if config.allow_http.is_empty() {
        HttpAllowList::any()
    } else {
        HttpAllowList::new(config.allow_http.clone())
    };
    let executor = Arc::new(ActivityExecutor::new(
        journal.clone(),
        runtime.clone(),
        allow,
        Secrets::new(config.secrets.clone()).map_err(|e| anyhow::anyhow!(e))?,
        engine_config.max_payload_bytes,
    )?);
    let max_payload_bytes = engine_config.max_payload_bytes;
    let engine = Engine::new(
        journal,
        runtime,
        Arc::new(SystemClock),
        executor,
        engine_config,
    )?;

    let namespace = Namespace::default_namespace();
    let uploads = config
        .modules
        .iter()
        .map(|m| (m, ModuleKind::Workflow))
        .chain(
            config
                .activity_modules
                .iter()
                .map(|m| (m, ModuleKind::Activity)),
        );
    for ((name, file), kind) in uploads {
        let bytes = std::fs::read(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        let record = engine
            .upload_module(&namespace, name, kind, bytes)
            .await
            .map_err(|e| anyhow::anyhow!("cannot upload {}: {e}", file.display()))?;
        tracing::info!(name = %name, hash = %record.hash, "module uploaded");
    }
    let resumed = engine.recover().await?;

    let app = api::router(ApiState {
        engine: engine.clone(),
        max_module_bytes,
        max_payload_bytes,
    });
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], config.port))).await?;
    let address = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(ui_port) = config.ui_port {
        let ui_listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], ui_port))).await?;
        let ui_address = ui_listener.local_addr()?;
        println!("spool: web UI on http://{ui_address}");
        let mut stop = stop_rx.clone();
        let ui = crate::ui::router(engine.clone());
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(ui_listener, ui)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "web UI stopped");
            }
        });
    }
    // Tests and scripts wait for this line; keep its shape.
    println!("spool: API listening on http://{address} ({resumed} open runs resumed)");
    let listener = listener.tap_io(|tcp| {
        // Small JSON answers must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
    });
    let mut stopping = stop_rx.clone();
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        tracing::info!("shutting down: no new requests; acknowledged work is already durable");
    });
    // In-flight requests get a grace period; long polls (`workflow result`) would
    // otherwise hold the shutdown for up to a minute. Nothing acknowledged is lost by
    // cutting them off: every accepted write was committed before its answer.
    let grace = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = serve => served?,
        () = grace => tracing::info!("grace period over; closing open requests"),
    }
    Ok(())
}
