//! Puts the pieces together into a running server: journal, sandbox runtime, activity
//! executor, engine, recovery of open runs, the HTTP API and the web UI.

use crate::activity::{ActivityExecutor, HttpAllowList, Secrets};
use crate::api::{self, ApiState};
use crate::clock::{SharedClock, SystemClock};
use crate::engine::{Engine, EngineConfig};
use crate::ids::{Namespace, TypeName};
use crate::journal::sqlite::SqliteJournal;
use crate::journal::ModuleKind;
use crate::runtime::{Runtime, SandboxLimits};
use crate::tenancy::quotas::{Ceilings, QuotaPatch, Quotas};
use crate::tenancy::{AuthMode, Tenancy};
use axum::serve::ListenerExt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long in-flight requests may finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Everything a server runs with; the dev server's flags and the production config
/// file (`config.rs`) both end up here.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub db: PathBuf,
    pub listen: SocketAddr,
    /// The web UI; only in open mode (it has no login yet).
    pub ui_listen: Option<SocketAddr>,
    /// Workflow modules to upload at start into `default`: (type name, file).
    pub modules: Vec<(TypeName, PathBuf)>,
    /// Activity modules to upload at start into `default`: (activity name, file).
    pub activity_modules: Vec<(TypeName, PathBuf)>,
    /// Where outgoing HTTP of activities may go (namespace quotas may narrow it per
    /// namespace); None means anywhere (dev mode).
    pub allow_http: Option<Vec<String>>,
    /// Secrets for the activities of every namespace (name, value).
    pub secrets: Vec<(String, String)>,
    /// Secrets for one namespace's activities only (over the shared ones).
    pub namespace_secrets: Vec<(Namespace, Vec<(String, String)>)>,
    pub evict_after: Option<Duration>,
    pub auth: AuthMode,
    /// Quotas of namespaces that do not set their own.
    pub defaults: Quotas,
    pub ceilings: Ceilings,
    /// Namespaces to create, or update with these quotas, at start.
    pub namespaces: Vec<(Namespace, QuotaPatch)>,
}

impl ServerConfig {
    /// The dev server: open mode, default quotas, any outgoing HTTP, on 127.0.0.1.
    pub fn dev(db: PathBuf, port: u16) -> Self {
        Self {
            db,
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            ui_listen: None,
            modules: Vec::new(),
            activity_modules: Vec::new(),
            allow_http: None,
            secrets: Vec::new(),
            namespace_secrets: Vec::new(),
            evict_after: EngineConfig::default().evict_after,
            auth: AuthMode::Open,
            defaults: Quotas::default(),
            ceilings: Ceilings::default(),
            namespaces: Vec::new(),
        }
    }
}

/// Runs a server until `shutdown` completes.
pub async fn run_server(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let journal: Arc<SqliteJournal> =
        Arc::new(SqliteJournal::open(&config.db).map_err(|e| {
            anyhow::anyhow!("cannot open the journal {}: {e}", config.db.display())
        })?);
    let clock: SharedClock = Arc::new(SystemClock);
    let tenancy = Tenancy::load(
        journal.clone(),
        clock.clone(),
        config.auth.clone(),
        config.defaults.clone(),
        config.ceilings.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot load the namespaces: {e}"))?;
    for (name, patch) in &config.namespaces {
        tenancy
            .ensure_namespace(name, patch)
            .await
            .map_err(|e| anyhow::anyhow!("namespace {name}: {e}"))?;
    }
    if matches!(config.auth, AuthMode::ApiKeys { .. }) {
        // `default` exists in key mode too, so that a fresh server has somewhere to work.
        let default = Namespace::default_namespace();
        if tenancy.tenant(&default).is_none() {
            tenancy
                .create_namespace(&default, &QuotaPatch::default())
                .await
                .map_err(|e| anyhow::anyhow!("namespace default: {e}"))?;
        }
    }
    // The ceilings are the server's own limits: a namespace's quotas apply within them
    // (fuel, memory and payloads per instance and attempt, from the run's namespace).
    let limits = SandboxLimits {
        max_module_bytes: config.ceilings.max_module_bytes as usize,
        max_memory_bytes: usize::try_from(config.ceilings.max_memory_bytes).unwrap_or(usize::MAX),
        ..SandboxLimits::default()
    };
    let max_module_bytes = limits.max_module_bytes;
    let runtime = Runtime::new(limits, Some(config.db.with_extension("cache")))?;
    let max_payload_bytes = config.ceilings.max_payload_bytes as usize;
    let engine_config = EngineConfig {
        evict_after: config.evict_after,
        max_payload_bytes,
        tenancy: Some(tenancy),
    };
    let allow = match &config.allow_http {
        None => HttpAllowList::any(),
        Some(rules) => HttpAllowList::new(rules.clone()),
    };
    let executor = Arc::new(ActivityExecutor::new(
        journal.clone(),
        runtime.clone(),
        allow,
        secrets(&config).map_err(|e| anyhow::anyhow!(e))?,
        max_payload_bytes,
    )?);
    let engine = Engine::new(journal, runtime, clock, executor, engine_config)?;

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
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let address = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(ui_listen) = config.ui_listen {
        let ui_listener = tokio::net::TcpListener::bind(ui_listen).await?;
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

/// The activities' secrets: the shared ones, and each namespace's own.
fn secrets(config: &ServerConfig) -> Result<Secrets, String> {
    let shared = Secrets::new(config.secrets.clone())?;
    config
        .namespace_secrets
        .iter()
        .try_fold(shared, |secrets, (namespace, values)| {
            secrets.with_namespace(namespace.clone(), values.clone())
        })
}
