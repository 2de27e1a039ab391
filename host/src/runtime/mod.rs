//! The sandbox: the wasmtime engine, its configuration and limits, the compiled
//! component cache, upload validation, and the deterministic WASI a workflow sees.
//!
//! Everything that makes a guest deterministic and bounded lives here; what a workflow
//! *does* through its `context` import is the engine's business (see `engine::driver`).

mod limiter;
pub mod wasi;

pub use limiter::SandboxLimiter;

use crate::ids::ModuleHash;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};

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
    pub limits: SandboxLimiter,
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
            max_memory_bytes: crate::tenancy::quotas::within(
                max_memory_bytes,
                self.limits.max_memory_bytes,
            ),
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
        check_shape(bytes)?;
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| ModuleError::Invalid(format!("{e:#}")))?;
        self.check_declared_sizes(&component)?;
        Ok(component)
    }

    /// Refuses a component whose core modules declare, at instantiation, more linear
    /// memory or more table elements than an instance may ever have (a "component
    /// bomb": a few bytes that ask for gigabytes): it could never start, so the upload
    /// says so, naming the size and the limit, rather than every run failing. What an
    /// instance grows to later is the store's limiter's business (`new_store`).
    fn check_declared_sizes(&self, component: &Component) -> Result<(), ModuleError> {
        self.check_declared_memory(
            component,
            self.limits.max_memory_bytes as u64,
            "the server's max_memory_bytes",
        )?;
        let Some(required) = component.resources_required() else {
            return Ok(());
        };
        check_declared(
            ("table", "tables"),
            required.num_tables,
            required.max_initial_table_size,
            self.limits.max_table_elements as u64,
            "the server's max_table_elements",
            |n| format!("{n} elements"),
        )
    }

    /// Refuses a component whose core modules declare more linear memory at
    /// instantiation than `limit` bytes (`setting` names the limit in the error): each
    /// memory alone, and all of them together (counted as the largest times their
    /// number, since wasmtime reports only the largest). Uploads check it against the
    /// namespace's memory quota too: a run of such a component would fail as it starts.
    pub fn check_declared_memory(
        &self,
        component: &Component,
        limit: u64,
        setting: &str,
    ) -> Result<(), ModuleError> {
        // None when a core module is imported rather than embedded: no linker of the
        // host provides core modules, so the world check refuses the component anyway.
        let Some(required) = component.resources_required() else {
            return Ok(());
        };
        let memory = required
            .max_initial_memory_size
            .map(|pages| pages.saturating_mul(WASM_PAGE_BYTES));
        check_declared(
            ("linear memory", "linear memories"),
            required.num_memories,
            memory,
            limit,
            setting,
            bytes_in_words,
        )
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
        let limits = SandboxLimiter::new(budget.max_memory_bytes, self.limits.max_table_elements);
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

/// Most core modules a component may hold, its nested components' included.
const MAX_CORE_MODULES: u64 = 1_000;
/// Most components a component may nest, at any depth.
const MAX_NESTED_COMPONENTS: u64 = 1_000;
/// Most items (core and component instances, aliases, canonical functions, imports,
/// exports) a component may have once every component instantiation in it is
/// flattened, as compiling does.
const MAX_FLATTENED_ITEMS: u64 = 100_000;

/// Refuses a component whose shape would make compiling it ask for more memory than
/// the host has, before wasmtime sees it. Compiling flattens every instantiation of a
/// nested component into a copy of its contents: a component instantiated ten times by
/// one instantiated ten times, and so on for eight levels, is a component of a few
/// hundred bytes that flattens into 10^8 instances and tens of gigabytes, and the
/// failed allocation aborts the whole process (or the kernel kills it). The compiler's
/// memory also grows faster than linearly with the number of core modules and nested
/// components. Real components are far below these bounds: a Rust component has three
/// core modules, no nested component, and a few hundred items.
///
/// Measured with the parser wasmtime uses, as the bytes are read: a component that does
/// not parse is left to wasmtime to refuse with its own message (nothing before the
/// point where it stops was over a bound).
fn check_shape(bytes: &[u8]) -> Result<(), ModuleError> {
    use wasmparser::{
        ComponentAlias, ComponentExternalKind, ComponentInstance, ComponentOuterAliasKind,
        ComponentTypeRef, Encoding, Parser, Payload,
    };

    /// A component being read: the items instantiating it makes once flattened, and
    /// the same for each entry of its component index space.
    struct Scope {
        cost: u64,
        components: Vec<u64>,
    }
    enum Frame {
        Component(Scope),
        Module,
    }
    let over = |what: &str, limit: u64| {
        Err(ModuleError::Invalid(format!(
            "the component has more than {limit} {what}; that is more than the host \
             compiles (real components have far fewer)"
        )))
    };
    let mut stack: Vec<Frame> = Vec::new();
    let (mut modules, mut nested) = (0u64, 0u64);
    // The largest cost of any component read so far: a bound on what a component taken
    // from an instance's exports costs.
    let mut largest = 1u64;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            return Ok(());
        };
        // What this payload adds to the current component's cost, and the costs of the
        // entries it adds to its component index space.
        let mut added = 0u64;
        let mut new_components: Vec<u64> = Vec::new();
        let current = match stack.last() {
            Some(Frame::Component(scope)) => Some(scope),
            _ => None,
        };
        let cost_of = |index: u32| {
            current
                .and_then(|scope| scope.components.get(index as usize).copied())
                .unwrap_or(largest)
        };
        match payload {
            Payload::Version { encoding, .. } => {
                stack.push(match encoding {
                    Encoding::Component => Frame::Component(Scope {
                        cost: 1,
                        components: Vec::new(),
                    }),
                    Encoding::Module => Frame::Module,
                });
                continue;
            }
            Payload::End(_) => {
                if let Some(Frame::Component(scope)) = stack.pop() {
                    largest = largest.max(scope.cost);
                    if let Some(Frame::Component(parent)) = stack.last_mut() {
                        parent.components.push(scope.cost);
                    }
                }
                continue;
            }
            Payload::ModuleSection { .. } => {
                modules += 1;
                if modules > MAX_CORE_MODULES {
                    return over("core modules", MAX_CORE_MODULES);
                }
            }
            Payload::ComponentSection { .. } => {
                nested += 1;
                if nested > MAX_NESTED_COMPONENTS {
                    return over("nested components", MAX_NESTED_COMPONENTS);
                }
            }
            Payload::InstanceSection(reader) => added = u64::from(reader.count()),
            Payload::ComponentCanonicalSection(reader) => added = u64::from(reader.count()),
            Payload::ComponentStartSection { .. } => added = 1,
            Payload::ComponentInstanceSection(reader) => {
                for instance in reader.into_iter().flatten() {
                    added = added.saturating_add(match instance {
                        ComponentInstance::Instantiate {
                            component_index, ..
                        } => cost_of(component_index).saturating_add(1),
                        ComponentInstance::FromExports(_) => 1,
                    });
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for alias in reader.into_iter().flatten() {
                    added = added.saturating_add(1);
                    match alias {
                        ComponentAlias::InstanceExport {
                            kind: ComponentExternalKind::Component,
                            ..
                        } => new_components.push(largest),
                        ComponentAlias::Outer {
                            kind: ComponentOuterAliasKind::Component,
                            count,
                            index,
                        } => {
                            let outer =
                                stack.len().checked_sub(1 + count as usize).and_then(|at| {
                                    match &stack[at] {
                                        Frame::Component(scope) => {
                                            scope.components.get(index as usize).copied()
                                        }
                                        Frame::Module => None,
                                    }
                                });
                            new_components.push(outer.unwrap_or(largest));
                        }
                        _ => {}
                    }
                }
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader.into_iter().flatten() {
                    added = added.saturating_add(1);
                    if let ComponentTypeRef::Component(_) = import.ty {
                        new_components.push(1);
                    }
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader.into_iter().flatten() {
                    added = added.saturating_add(1);
                    if export.kind == ComponentExternalKind::Component {
                        new_components.push(cost_of(export.index));
                    }
                }
            }
            _ => {}
        }
        if let Some(Frame::Component(scope)) = stack.last_mut() {
            scope.cost = scope.cost.saturating_add(added);
            scope.components.extend(new_components);
            if scope.cost > MAX_FLATTENED_ITEMS {
                return over(
                    "items (instances, aliases, functions, imports, exports) once its \
                     nested components' instantiations are flattened",
                    MAX_FLATTENED_ITEMS,
                );
            }
        }
    }
    Ok(())
}

/// Bytes in a WebAssembly page, the unit of declared memory sizes.
const WASM_PAGE_BYTES: u64 = 1 << 16;

/// Checks what `count` memories or tables (`what`: singular, plural), the largest
/// declaring `largest` at instantiation, ask for against `limit` (the setting
/// `setting`): the largest alone, then all of them at the largest's size.
fn check_declared(
    (what, plural): (&str, &str),
    count: u32,
    largest: Option<u64>,
    limit: u64,
    setting: &str,
    show: impl Fn(u64) -> String,
) -> Result<(), ModuleError> {
    let Some(largest) = largest else {
        return Ok(());
    };
    if largest > limit {
        return Err(ModuleError::Invalid(format!(
            "the component declares a {what} of {} at instantiation; an instance may have \
             at most {} ({setting})",
            show(largest),
            show(limit)
        )));
    }
    let total = largest.saturating_mul(u64::from(count));
    if total > limit {
        return Err(ModuleError::Invalid(format!(
            "the component declares {count} {plural} at instantiation, the largest {}: up \
             to {} in all; an instance may have at most {} ({setting})",
            show(largest),
            show(total),
            show(limit)
        )));
    }
    Ok(())
}

/// A byte count for people: exact bytes, and MiB or GiB when it is that large.
fn bytes_in_words(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if bytes >= GIB {
        format!("{bytes} bytes ({:.1} GiB)", bytes as f64 / GIB as f64)
    } else if bytes >= MIB {
        format!("{bytes} bytes ({:.1} MiB)", bytes as f64 / MIB as f64)
    } else {
        format!("{bytes} bytes")
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

    /// Unsigned LEB128, as WebAssembly encodes sizes.
    fn leb(mut n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn section(id: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![id];
        out.extend(leb(body.len() as u64));
        out.extend(body);
        out
    }

    /// A core module defining one memory of `pages` and one funcref table of
    /// `elements` (minimum sizes), each if given.
    fn core_module(pages: Option<u64>, elements: Option<u64>) -> Vec<u8> {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        if let Some(elements) = elements {
            let mut table = vec![1, 0x70, 0x00];
            table.extend(leb(elements));
            out.extend(section(4, &table));
        }
        if let Some(pages) = pages {
            let mut memory = vec![1, 0x00];
            memory.extend(leb(pages));
            out.extend(section(5, &memory));
        }
        out
    }

    /// A component that embeds `modules` and instantiates each once: a bomb when they
    /// declare large sizes, a few hundred bytes however large.
    fn component_of(modules: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"\0asm\x0d\0\x01\0".to_vec();
        for module in modules {
            out.extend(section(1, module));
        }
        let mut instances = leb(modules.len() as u64);
        for index in 0..modules.len() {
            instances.push(0x00);
            instances.extend(leb(index as u64));
            instances.push(0);
        }
        out.extend(section(2, &instances));
        out
    }

    #[test]
    fn components_declaring_more_memory_or_table_than_allowed_are_refused_naming_sizes() {
        let runtime = Runtime::new(SandboxLimits::default(), None).unwrap();
        // What a Rust guest declares (17 pages, some hundred table slots) passes, also
        // twice over.
        let normal = core_module(Some(17), Some(128));
        runtime
            .compile_checked(&component_of(std::slice::from_ref(&normal)))
            .unwrap();
        runtime
            .compile_checked(&component_of(&[normal.clone(), normal]))
            .unwrap();

        // 1 GiB and a page of memory, in a component of under a hundred bytes.
        let bomb = component_of(&[core_module(Some(16_385), None)]);
        assert!(bomb.len() < 100, "{}", bomb.len());
        let err = runtime.compile_checked(&bomb).unwrap_err().to_string();
        assert!(
            err.contains("linear memory of 1073807360 bytes (1.0 GiB)")
                && err.contains(
                    "at most 268435456 bytes (256.0 MiB) (the server's max_memory_bytes)"
                ),
            "{err}"
        );

        let tables = component_of(&[core_module(None, Some(10_000_000))]);
        let err = runtime.compile_checked(&tables).unwrap_err().to_string();
        assert!(
            err.contains("table of 10000000 elements")
                && err.contains("at most 100000 elements (the server's max_table_elements)"),
            "{err}"
        );

        // Each memory within the limit, together over it: 3 x 200 MiB.
        let spread = component_of(&vec![core_module(Some(3_200), None); 3]);
        let err = runtime.compile_checked(&spread).unwrap_err().to_string();
        assert!(
            err.contains("3 linear memories")
                && err.contains("the largest 209715200 bytes (200.0 MiB)")
                && err.contains("up to 629145600 bytes (600.0 MiB) in all"),
            "{err}"
        );
        // The limit is the server's: a roomier sandbox takes the same component.
        roomy_runtime().compile_checked(&spread).unwrap();
    }

    /// A runtime whose server limit on memory is 1 GiB.
    fn roomy_runtime() -> Arc<Runtime> {
        let limits = SandboxLimits {
            max_memory_bytes: 1 << 30,
            ..SandboxLimits::default()
        };
        Runtime::new(limits, None).unwrap()
    }

    /// A store host with nothing to say about activations.
    struct Idle;

    impl Activations for Idle {
        fn take_new_activation(&mut self) -> bool {
            false
        }
    }

    /// Instantiates `component` in a store of `budget`; the bytes its memories hold
    /// together, or why it could not be instantiated.
    async fn instantiate(
        runtime: &Runtime,
        component: &[u8],
        budget: InstanceBudget,
    ) -> Result<usize, String> {
        let component = runtime.compile_checked(component).unwrap();
        let wasi = wasmtime_wasi::WasiCtx::builder().build();
        let mut store = runtime.new_store(wasi, Idle, budget);
        wasmtime::component::Linker::new(runtime.engine())
            .instantiate_async(&mut store, &component)
            .await
            .map_err(|e| format!("{:#}", e))?;
        Ok(store.data().limits.memory_bytes())
    }

    #[tokio::test]
    async fn the_memory_budget_holds_all_of_an_instances_memories_together() {
        let runtime = roomy_runtime();
        // Three memories of 100 MiB each: each is within 256 MiB, together they are not.
        let three = component_of(&vec![core_module(Some(1_600), None); 3]);
        let budget = |max_memory_bytes| InstanceBudget {
            fuel_per_activation: 1_000_000,
            max_memory_bytes,
        };
        let err = instantiate(&runtime, &three, budget(256 << 20))
            .await
            .unwrap_err();
        assert!(
            err.contains("memories to 314572800 bytes; the limit is 268435456 bytes"),
            "{err}"
        );
        assert_eq!(
            instantiate(&runtime, &three, budget(512 << 20)).await,
            Ok(300 << 20)
        );
    }

    /// A component that defines `base` (one core module, instantiated once) and then,
    /// `levels` times, a component that takes the previous one with an outer alias and
    /// instantiates it `breadth` times; the top one is instantiated once. Flattened:
    /// `breadth ^ levels` copies of `base`, from a few bytes per level.
    fn instantiation_bomb(levels: u32, breadth: u32) -> Vec<u8> {
        let mut out = b"\0asm\x0d\0\x01\0".to_vec();
        out.extend(section(4, &component_of(&[core_module(Some(1), None)])));
        for level in 0..levels {
            let mut inner = b"\0asm\x0d\0\x01\0".to_vec();
            // alias outer 1 `level` (sort component): the previous level.
            let mut alias = vec![1, 0x04, 0x02, 0x01];
            alias.extend(leb(u64::from(level)));
            inner.extend(section(6, &alias));
            let mut instances = leb(u64::from(breadth));
            for _ in 0..breadth {
                instances.extend([0x00, 0x00, 0x00]);
            }
            inner.extend(section(5, &instances));
            out.extend(section(4, &inner));
        }
        let mut top = vec![1, 0x00];
        top.extend(leb(u64::from(levels)));
        top.push(0);
        out.extend(section(5, &top));
        out
    }

    #[test]
    fn components_that_would_flatten_into_too_much_are_refused_before_compiling() {
        let runtime = Runtime::new(SandboxLimits::default(), None).unwrap();
        // Small, it compiles: the encoding is right.
        runtime.compile_checked(&instantiation_bomb(2, 2)).unwrap();
        // 10^9 copies from a few hundred bytes: compiling it would take the process
        // down. Refused before wasmtime sees it.
        let bomb = instantiation_bomb(9, 10);
        assert!(bomb.len() < 500, "{}", bomb.len());
        let started = std::time::Instant::now();
        let err = runtime.compile_checked(&bomb).unwrap_err().to_string();
        assert!(
            err.contains("more than 100000 items") && err.contains("flattened"),
            "{err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));

        let modules = component_of(&vec![core_module(None, None); 1_001]);
        let err = runtime.compile_checked(&modules).unwrap_err().to_string();
        assert!(err.contains("more than 1000 core modules"), "{err}");

        // Components nested 1,001 deep.
        let mut deep = b"\0asm\x0d\0\x01\0".to_vec();
        for _ in 0..1_001 {
            let mut outer = b"\0asm\x0d\0\x01\0".to_vec();
            outer.extend(section(4, &deep));
            deep = outer;
        }
        let err = runtime.compile_checked(&deep).unwrap_err().to_string();
        assert!(err.contains("more than 1000 nested components"), "{err}");
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
