//! Wasm activity components (world `spool:activity/activity`): full WASI 0.2 with real
//! clocks and randomness, and outgoing HTTP limited by the allow-list. Each attempt gets
//! a fresh instance with memory limits; the attempt's time bound is the engine's
//! start-to-close timeout.

use super::AttemptContext;
use super::HttpAllowList;
use crate::ids::{ModuleHash, Namespace};
use crate::journal::{Failure, FailureKind, Journal, ModuleRecord};
use crate::runtime::activity_bindings::{Activity, ActivityImports, ActivityPre, AttemptInfo};
use crate::runtime::SandboxLimiter;
use crate::runtime::{ModuleError, Runtime};
use crate::tenancy::quotas::within;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Fuel for one activity attempt when no namespace quota says otherwise. Activities are
/// bounded by time, not determinism; this only keeps a runaway attempt from holding a
/// thread forever between timeout checks.
const ACTIVITY_FUEL: u64 = 50_000_000_000;
/// An attempt of a namespace's component gets the fuel of this many of its workflow
/// activations (`fuel_per_activation`): `ACTIVITY_FUEL` with the default quota.
pub(super) const ACTIVITY_ATTEMPT_ACTIVATIONS: u64 = 50;
const WORLD: &str = "spool:activity/activity@0.1.0";

pub(super) struct ActivityState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: AllowListHooks,
    table: ResourceTable,
    limits: SandboxLimiter,
    attempt: AttemptContext,
}

/// The world's own imports: heartbeats and the attempt's number.
impl ActivityImports for ActivityState {
    fn heartbeat(&mut self, details: Option<String>) {
        if let Some(heartbeats) = &self.attempt.heartbeats {
            // The attempt's side is gone only when the attempt is over.
            let _ = heartbeats.send(details);
        }
    }

    fn attempt(&mut self) -> AttemptInfo {
        AttemptInfo {
            attempt: self.attempt.attempt,
            heartbeat_details: self.attempt.heartbeat_details.clone(),
        }
    }
}

impl WasiView for ActivityState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ActivityState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Sends a component's outgoing requests only to hosts on the server's allow-list and
/// on its namespace's (quota `allow_http`), if it has one.
struct AllowListHooks {
    allow: Arc<HttpAllowList>,
    namespace: Option<Arc<HttpAllowList>>,
}

type HttpResult<T> = Result<T, wasmtime_wasi_http::Error>;
type IoFuture = Box<dyn Future<Output = HttpResult<()>> + Send>;

impl WasiHttpHooks for AllowListHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: IoFuture,
    ) -> Box<
        dyn Future<Output = HttpResult<(http::Response<wasmtime_wasi_http::WasiBody>, IoFuture)>>
            + Send,
    > {
        let uri = request.uri();
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        });
        let method = request.method().as_str();
        let allowed = uri.host().is_some_and(|host| {
            self.allow.allows(method, host, port)
                && self
                    .namespace
                    .as_ref()
                    .is_none_or(|own| own.allows(method, host, port))
        });
        if !allowed {
            tracing::warn!(uri = %uri, "activity component's HTTP request denied by the allow-list");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        drop(fut);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as IoFuture,
            ))
        })
    }
}

/// The activity linker (built once) and the instantiation templates of the activity
/// components in use.
pub(super) struct Components {
    linker: Linker<ActivityState>,
    pres: Mutex<HashMap<(Namespace, ModuleHash), ActivityPre<ActivityState>>>,
}

impl Components {
    pub(super) fn new(engine: &wasmtime::Engine) -> anyhow::Result<Self> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)?;
        Activity::add_to_linker_imports::<_, wasmtime::component::HasSelf<ActivityState>>(
            &mut linker,
            |state| state,
        )
        .map_err(anyhow::Error::from)?;
        Ok(Self {
            linker,
            pres: Mutex::new(HashMap::new()),
        })
    }

    /// Compiles and type-checks an activity component for upload.
    pub(super) fn validate(
        &self,
        runtime: &Runtime,
        bytes: &[u8],
    ) -> Result<Component, ModuleError> {
        let component = runtime.compile_checked(bytes)?;
        let wrong_world = |e: wasmtime::Error| ModuleError::WrongWorld {
            world: WORLD,
            reason: format!("{e:#}"),
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        ActivityPre::new(pre).map_err(wrong_world)?;
        Ok(component)
    }

    async fn pre(
        &self,
        journal: &dyn Journal,
        runtime: &Arc<Runtime>,
        module: &ModuleRecord,
    ) -> Result<ActivityPre<ActivityState>, String> {
        let key = (module.namespace.clone(), module.hash.clone());
        if let Some(pre) = self.pres.lock().ok().and_then(|p| p.get(&key).cloned()) {
            return Ok(pre);
        }
        let bytes = journal
            .module_bytes(&module.namespace, &module.hash)
            .await
            .map_err(|e| e.to_string())?;
        let runtime = runtime.clone();
        let hash = module.hash.clone();
        let component = tokio::task::spawn_blocking(move || {
            runtime.component(&hash, || {
                bytes.ok_or_else(|| anyhow::anyhow!("module {hash} is missing"))
            })
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{e:#}"))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(ActivityPre::new)
            .map_err(|e| format!("{e:#}"))?;
        if let Ok(mut pres) = self.pres.lock() {
            pres.insert(key, pre.clone());
        }
        Ok(pre)
    }

    /// Runs one attempt of an activity component.
    pub(super) async fn execute(
        &self,
        executor: &super::ActivityExecutor,
        namespace: &Namespace,
        module: &ModuleRecord,
        input: &str,
        attempt: AttemptContext,
        quotas: &super::ActivityQuotas,
    ) -> Result<String, Failure> {
        let runtime = &executor.runtime;
        let pre = self
            .pre(&*executor.journal, runtime, module)
            .await
            .map_err(|e| Failure::new(FailureKind::Application, "activity_host_error", e))?;
        let limits = runtime.limits();
        // The namespace's memory quota, within the server's limit.
        let max_memory_bytes = within(quotas.max_memory_bytes, limits.max_memory_bytes);
        let mut store = Store::new(
            runtime.engine(),
            ActivityState {
                // Secrets reach the component as environment variables: configured
                // per deployment, never part of its input, so never journaled.
                wasi: WasiCtx::builder()
                    .inherit_stderr()
                    .envs(&executor.secrets.of(namespace).as_env())
                    .build(),
                http: WasiHttpCtx::new(),
                hooks: AllowListHooks {
                    allow: executor.allow.clone(),
                    namespace: quotas.allow_http.clone(),
                },
                table: ResourceTable::new(),
                limits: SandboxLimiter::new(max_memory_bytes, limits.max_table_elements),
                attempt,
            },
        );
        store.limiter(|s| &mut s.limits);
        // Fuel is enabled engine-wide; `set_fuel` cannot fail here.
        let _ = store.set_fuel(quotas.fuel_per_attempt.unwrap_or(ACTIVITY_FUEL));
        // The attempt's bound is the engine's start-to-close timeout; the epoch only
        // makes a long computation yield so it does not starve other tasks.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let outcome = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_execute(&mut store, input).await
        }
        .await;
        match outcome {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(e)) => {
                let failure = Failure::new(FailureKind::Application, &e.error_type, e.message);
                Err(if e.non_retryable {
                    failure.non_retryable()
                } else {
                    failure
                })
            }
            Err(trap) => Err(Failure::new(
                FailureKind::Application,
                "activity_trap",
                format!("the activity component trapped: {trap:#}"),
            )),
        }
    }
}
