//! The sandbox: the wasmtime engine, its configuration and limits, the compiled
//! component cache, upload validation, and the deterministic WASI a workflow sees.
//!
//! Everything that makes a guest deterministic and bounded lives here; what a workflow
//! *does* through its `context` import is the engine's business (see `engine::driver`).

pub mod wasi;

use crate::ids::ModuleHash;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};

/// Host bindings of the workflow world (`wit/workflow`).
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/workflow",
        world: "spool:workflow/workflow",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// Host bindings of the activity world (`wit/activity`).
pub mod activity_bindings {
    wasmtime::component::bindgen!({
        path: "../wit/activity",
        world: "spool:activity/activity",
        exports: { default: async },
    });
}

/// The server's bounds on what one guest instance may use. Deterministic bounds (fuel)
/// decide a run's fate identically on every replay; the wall-clock deadline is a second
/// guard. Fuel per activation, and memory within `max_memory_bytes`, come from the
/// namespace's quotas (`Runtime::budget`).
#[derive(Clone, Debug)]
pub struct SandboxLimits {
    /// Wall-clock bound on one activation.
    pub activation_deadline: Duration,
    /// No namespace's instance or activity attempt grows past this, whatever its quota.
    pub max_memory_bytes: usize,
    pub max_table_elements: usize,
    /// Bound on the guest's call stack; deep recursion traps past it.
    pub max_wasm_stack_bytes: usize,
    /// Largest component accepted at upload.
    pub max_module_bytes: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            activation_deadline: Duration::from_secs(10),
            max_memory_bytes: 256 << 20,
            max_table_elements: 100_000,
            max_wasm_stack_bytes: 1 << 20,
            max_module_bytes: 64 << 20,
        }
    }
}

/// How often the epoch advances; the activation deadline is counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A workflow guest yields to the tokio scheduler after burning this much fuel (under a
/// millisecond of tight-loop work), so that a long activation, even an endless loop on
/// its way to running out of fuel, cannot keep a worker thread from other runs for its
/// whole budget. Normal activations burn far less and never yield; for a guest that
/// computes for long a yield costs about 1% (at a tenth of this interval: 5-10%).
pub const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// What one workflow guest instance may spend: its namespace's quotas, within the
/// server's `SandboxLimits`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceBudget {
    /// Fuel for one activation: the namespace's `fuel_per_activation`.
    pub fuel_per_activation: u64,
    /// Linear memory: the namespace's `max_memory_bytes`, at most the server's limit.
    pub max_memory_bytes: usize,
}

/// Why a component was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModuleError {
    #[error("the module is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    #[error("the component imports interfaces a {kind} may not use: {}", .imports.join(", "))]
    ForbiddenImports {
        kind: &'static str,
        imports: Vec<String>,
    },
    #[error("the component does not fit the {world} world: {reason}")]
    WrongWorld { world: &'static str, reason: String },
}

/// WASI interfaces a workflow may import: the deterministic subset the host implements
/// itself (virtual clocks, seeded randomness, captured stdio, empty environment and
/// filesystem). Versions 0.2.x are accepted.
const WORKFLOW_WASI: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
];
const CONTEXT_INTERFACE: &str = "spool:workflow/context";
const CONTEXT_VERSION: &str = "0.1.";

/// Returns the imports of a workflow component that the sandbox does not provide.
pub fn forbidden_workflow_imports<'a>(imports: impl Iterator<Item = &'a str>) -> Vec<String> {
    imports
        .filter(|name| {
            let (base, version) = name.split_once('@').unwrap_or((name, ""));
            let allowed = if base == CONTEXT_INTERFACE {
                version.starts_with(CONTEXT_VERSION)
            } else {
                WORKFLOW_WASI.contains(&base) && version.starts_with("0.2.")
            };
            !allowed
        })
        .map(str::to_owned)
        .collect()
}

/// Per-store state every guest instance carries, next to the host state `H` of whoever
/// drives it.
pub struct Sandbox<H> {
    pub wasi: wasmtime_wasi::WasiCtx,
    pub table: ResourceTable,
    pub limits: StoreLimits,
    pub host: H,
}

/// Lets the sandbox ask the host state whether the guest just received an event, which
/// starts a new activation with a fresh fuel budget, and tell it how much fuel is left
/// whenever the guest calls the host (so the host can meter an activation that ends in
/// one of its calls).
pub trait Activations {
    fn take_new_activation(&mut self) -> bool;
    /// The guest is calling the host with `fuel_left` of its activation's budget.
    fn host_called(&mut self, _fuel_left: u64) {}
}

pub struct Runtime {
    engine: Engine,
    limits: SandboxLimits,
    cache_dir: Option<PathBuf>,
    compiled: Mutex<HashMap<ModuleHash, Component>>,
}

impl Runtime {
    /// `cache_dir`: where compiled components are kept across restarts (None: memory only).
    pub fn new(limits: SandboxLimits, cache_dir: Option<PathBuf>) -> anyhow::Result<Arc<Self>> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .max_wasm_stack(limits.max_wasm_stack_bytes)
            // Threads are off: the `threads` feature is not compiled in.
            // The host's own frames need room beyond the guest's stack bound.
            .async_stack_size(limits.max_wasm_stack_bytes + (1 << 20));
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir)?;
        }
        spawn_epoch_ticker(engine.weak());
        Ok(Arc::new(Self {
            engine,
            limits,
            cache_dir,
            compiled: Mutex::new(HashMap::new()),
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// The budget of an instance of a namespace with these quotas: its fuel per
    /// activation, and its memory quota capped by the server's limit.
    pub fn budget(&self, fuel_per_activation: u64, max_memory_bytes: u64) -> InstanceBudget {
        InstanceBudget {
            fuel_per_activation,
            max_memory_bytes: usize::try_from(max_memory_bytes)
                .unwrap_or(usize::MAX)
                .min(self.limits.max_memory_bytes),
        }
    }

    /// Compiles and checks a workflow component for upload against the linker that will
    /// run it.
    pub fn validate_workflow<H: Send + 'static>(
        &self,
        linker: &Linker<Sandbox<H>>,
        bytes: &[u8],
    ) -> Result<Component, ModuleError> {
        let component = self.compile_checked(bytes)?;
        let ty = component.component_type();
        let offenders = forbidden_workflow_imports(ty.imports(&self.engine).map(|(name, _)| name));
        if !offenders.is_empty() {
            return Err(ModuleError::ForbiddenImports {
                kind: "workflow",
                imports: offenders,
            });
        }
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| ModuleError::WrongWorld {
                world: "spool:workflow/workflow@0.1.0",
                reason: format!("{:#}", e),
            })?;
        bindings::WorkflowPre::new(pre).map_err(|e| ModuleError::WrongWorld {
            world: "spool:workflow/workflow@0.1.0",
            reason: format!("{:#}", e),
        })?;
        Ok(component)
    }

    /// Compiles a component after the checks every upload gets (size, and a clear error
    /// for core modules). World-specific checks are the caller's.
    pub fn compile_checked(&self, bytes: &[u8]) -> Result<Component, ModuleError> {
        if bytes.len() > self.limits.max_module_bytes {
            return Err(ModuleError::TooLarge {
                size: bytes.len(),
                limit: self.limits.max_module_bytes,
            });
        }
        if wasmparser_is_core_module(bytes) {
            return Err(ModuleError::Invalid(
                "this is a core WebAssembly module, not a component; build for wasm32-wasip2 \
                 (or wrap it with `wasm-tools component new`)"
                    .into(),
            ));
        }
        Component::new(&self.engine, bytes).map_err(|e| ModuleError::Invalid(format!("{e:#}")))
    }

    /// Records a freshly validated component in the caches.
    pub fn remember(&self, hash: &ModuleHash, component: &Component) {
        if let Some(path) = self.cache_path(hash) {
            if !path.exists() {
                match component.serialize() {
                    Ok(bytes) => {
                        let tmp = path.with_extension("tmp");
                        if let Err(e) =
                            std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, &path))
                        {
                            tracing::warn!(error = %e, path = %path.display(), "could not cache compiled component");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not serialize compiled component"),
                }
            }
        }
        if let Ok(mut compiled) = self.compiled.lock() {
            compiled.insert(hash.clone(), component.clone());
        }
    }

    /// The compiled component for `hash`: from memory, the disk cache, or by compiling
    /// `bytes()` (the module as uploaded).
    pub fn component(
        &self,
        hash: &ModuleHash,
        bytes: impl FnOnce() -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<Component> {
        if let Some(component) = self.compiled.lock().ok().and_then(|c| c.get(hash).cloned()) {
            return Ok(component);
        }
        if let Some(path) = self.cache_path(hash) {
            if path.exists() {
                // SAFETY: the file was written by `remember` from a component this engine
                // compiled; its name carries the engine's compatibility hash, and
                // wasmtime re-checks compatibility when loading.
                match unsafe { Component::deserialize_file(&self.engine, &path) } {
                    Ok(component) => {
                        self.remember(hash, &component);
                        return Ok(component);
                    }
                    Err(e) => tracing::warn!(error = %e, "stale compiled component; recompiling"),
                }
            }
        }
        let component = Component::new(&self.engine, bytes()?).map_err(anyhow::Error::from)?;
        self.remember(hash, &component);
        Ok(component)
    }

    fn cache_path(&self, hash: &ModuleHash) -> Option<PathBuf> {
        use std::hash::{Hash, Hasher};
        let dir = self.cache_dir.as_ref()?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        Some(dir.join(format!("{}-{:016x}.cwasm", hash, hasher.finish())))
    }

    /// A store with the sandbox limits applied, ready for one guest instance: fuel and
    /// memory from `budget` (the run's namespace), the rest from the server's limits.
    pub fn new_store<H: Activations + Send + 'static>(
        &self,
        wasi: wasmtime_wasi::WasiCtx,
        host: H,
        budget: InstanceBudget,
    ) -> Store<Sandbox<H>> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(budget.max_memory_bytes)
            .table_elements(self.limits.max_table_elements)
            .instances(100)
            .tables(100)
            .memories(100)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            Sandbox {
                wasi,
                table: ResourceTable::new(),
                limits,
                host,
            },
        );
        store.limiter(|s| &mut s.limits);
        let fuel = budget.fuel_per_activation;
        let ticks = self.deadline_ticks();
        // These only fail when fuel is not enabled, which `new` guarantees (and the
        // interval is not 0). The interval first: `set_fuel` splits the budget by it.
        let _ = store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL));
        let _ = store.set_fuel(fuel);
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        // When the host delivers an event a new activation begins: the guest gets a fresh
        // fuel budget and a fresh wall-clock deadline (time spent waiting in the host for
        // the event does not count against either). Every call into the host tells it the
        // fuel left, for metering.
        store.call_hook(move |mut ctx, hook| {
            match hook {
                wasmtime::CallHook::CallingHost => {
                    let left = ctx.get_fuel()?;
                    ctx.data_mut().host.host_called(left);
                }
                wasmtime::CallHook::ReturningFromHost
                    if ctx.data_mut().host.take_new_activation() =>
                {
                    ctx.set_epoch_deadline(ticks);
                    ctx.set_fuel(fuel)?;
                }
                _ => {}
            }
            Ok(())
        });
        store
    }

    fn deadline_ticks(&self) -> u64 {
        (self.limits.activation_deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }
}

/// A core module starts with the same magic as a component but a different version.
fn wasmparser_is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// Advances the engine's epoch every tick until the engine is dropped. A plain thread:
/// it must keep ticking even when every tokio worker is busy running guests.
fn spawn_epoch_ticker(engine: wasmtime::EngineWeak) {
    let spawned = std::thread::Builder::new()
        .name("spool-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the epoch thread; deadlines will not fire");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_deterministic_subset_and_the_context_may_be_imported() {
        let imports = [
            "spool:workflow/context@0.1.0",
            "wasi:io/streams@0.2.6",
            "wasi:clocks/wall-clock@0.2.6",
            "wasi:sockets/tcp@0.2.6",
            "wasi:http/outgoing-handler@0.2.6",
            "wasi:clocks/monotonic-clock@0.3.0",
            "spool:workflow/context@0.2.0",
            "acme:secret/backdoor",
        ];
        assert_eq!(
            forbidden_workflow_imports(imports.into_iter()),
            vec![
                "wasi:sockets/tcp@0.2.6",
                "wasi:http/outgoing-handler@0.2.6",
                "wasi:clocks/monotonic-clock@0.3.0",
                "spool:workflow/context@0.2.0",
                "acme:secret/backdoor",
            ]
        );
    }

    #[test]
    fn garbage_and_core_modules_are_refused_with_a_reason() {
        let runtime = Runtime::new(SandboxLimits::default(), None).unwrap();
        assert!(matches!(
            runtime.compile_checked(b"not wasm at all"),
            Err(ModuleError::Invalid(_))
        ));
        let core = b"\0asm\x01\0\0\0";
        let err = runtime.compile_checked(core).unwrap_err();
        assert!(err.to_string().contains("core WebAssembly module"), "{err}");
        let truncated = b"\0asm\x0d\0\x01\0\x01";
        assert!(matches!(
            runtime.compile_checked(truncated),
            Err(ModuleError::Invalid(_))
        ));
    }

    #[test]
    fn oversized_modules_are_refused_before_compiling() {
        let limits = SandboxLimits {
            max_module_bytes: 10,
            ..SandboxLimits::default()
        };
        let runtime = Runtime::new(limits, None).unwrap();
        assert_eq!(
            runtime.compile_checked(&[0; 11]).err(),
            Some(ModuleError::TooLarge {
                size: 11,
                limit: 10
            })
        );
    }
}
