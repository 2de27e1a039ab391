//! Wasm activity components (world `spool:activity/activity`): full WASI 0.2 with real
//! clocks and randomness, and outgoing HTTP limited by the allow-list. Each attempt gets
//! a fresh instance with memory limits; the attempt's time bound is the engine's
//! start-to-close timeout.

use super::{ActivityExecutor, HttpAllowList};
use crate::journal::{Failure, FailureKind, ModuleRecord};
use crate::runtime::activity_bindings::ActivityPre;
use std::sync::Arc;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Fuel for one activity attempt. Activities are bounded by time, not determinism; this
/// only keeps a runaway attempt from holding a thread forever between timeout checks.
const ACTIVITY_FUEL: u64 = 50_000_000_000;

struct ActivityState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: AllowListHooks,
    table: ResourceTable,
    limits: StoreLimits,
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

struct AllowListHooks {
    allow: Arc<HttpAllowList>,
}

impl WasiHttpHooks for AllowListHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn std::future::Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<
                            dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>>
                                + Send,
                        >,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        let uri = request.uri();
        let port = uri.port_u16().or_else(|| match uri.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        });
        let allowed = uri.host().is_some_and(|host| self.allow.allows(host, port));
        if !allowed {
            tracing::warn!(uri = %uri, "activity component's HTTP request denied by the allow-list");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
    }
}

fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<ActivityState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Ok(linker)
}

pub(super) async fn execute(
    executor: &ActivityExecutor,
    module: &ModuleRecord,
    input: &str,
) -> Result<String, Failure> {
    let internal = |e: String| Failure::new(FailureKind::Application, "activity_host_error", e);
    let bytes = executor
        .journal
        .module_bytes(&module.namespace, &module.hash)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let runtime = executor.runtime.clone();
    let hash = module.hash.clone();
    let component = tokio::task::spawn_blocking(move || {
        runtime.component(&hash, || {
            bytes.ok_or_else(|| anyhow::anyhow!("module bytes missing"))
        })
    })
    .await
    .map_err(|e| internal(e.to_string()))?
    .map_err(|e| internal(format!("{e:#}")))?;
    let engine = executor.runtime.engine();
    let pre = linker(engine)
        .and_then(|l| l.instantiate_pre(&component))
        .and_then(ActivityPre::new)
        .map_err(|e| internal(format!("{e:#}")))?;
    let limits = executor.runtime.limits();
    let mut store = Store::new(
        engine,
        ActivityState {
            wasi: WasiCtx::builder().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            hooks: AllowListHooks {
                allow: executor.allow.clone(),
            },
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.max_memory_bytes)
                .table_elements(limits.max_table_elements)
                .trap_on_grow_failure(true)
                .build(),
        },
    );
    store.limiter(|s| &mut s.limits);
    let _ = store.set_fuel(ACTIVITY_FUEL);
    // The activity's bound is the engine's start-to-close timeout; the epoch only
    // yields so a long computation does not starve other tasks.
    store.epoch_deadline_async_yield_and_update(1);
    store.set_epoch_deadline(1);
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
            format!("the activity component trapped: {:#}", trap),
        )),
    }
}
