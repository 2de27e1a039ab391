//! What a guest instance's store may allocate: one memory budget for all of its linear
//! memories together, and bounded tables and instance counts.
//!
//! wasmtime's `StoreLimits` bounds each linear memory on its own, so a component with
//! several memories (one per core module it instantiates) could hold that many times
//! its namespace's quota. This limiter counts every memory of the store against the
//! one budget.

use wasmtime::ResourceLimiter;

/// Most instances, tables and memories one store may create: a Rust component has a
/// handful of each.
const MAX_STORE_ITEMS: usize = 100;

pub struct SandboxLimiter {
    max_memory_bytes: usize,
    max_table_elements: usize,
    /// Bytes of linear memory the store's memories hold together.
    memory_bytes: usize,
}

impl SandboxLimiter {
    pub fn new(max_memory_bytes: usize, max_table_elements: usize) -> Self {
        Self {
            max_memory_bytes,
            max_table_elements,
            memory_bytes: 0,
        }
    }

    /// Bytes of linear memory the store's memories hold together.
    #[cfg(test)]
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }
}

impl ResourceLimiter for SandboxLimiter {
    /// Called with `current` 0 when a memory is created, then for each growth. A refusal
    /// is an error, so the guest traps (and the run fails `memory_exhausted`) instead of
    /// seeing `memory.grow` return -1 and carrying on in a state it may not handle.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_bytes
            .saturating_add(desired.saturating_sub(current));
        if total > self.max_memory_bytes {
            wasmtime::bail!(
                "growing a linear memory to {desired} bytes would bring the instance's \
                 memories to {total} bytes; the limit is {} bytes",
                self.max_memory_bytes
            );
        }
        if maximum.is_some_and(|maximum| desired > maximum) {
            wasmtime::bail!(
                "growing a linear memory to {desired} bytes is over its declared maximum"
            );
        }
        // A growth that then fails makes the guest trap (below), which ends the
        // instance, so nothing needs taking back.
        self.memory_bytes = total;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("growing a linear memory failed"))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements || maximum.is_some_and(|maximum| desired > maximum) {
            wasmtime::bail!(
                "growing a table to {desired} elements is over the limit of {} elements",
                self.max_table_elements
            );
        }
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("growing a table failed"))
    }

    fn instances(&self) -> usize {
        MAX_STORE_ITEMS
    }

    fn tables(&self) -> usize {
        MAX_STORE_ITEMS
    }

    fn memories(&self) -> usize {
        MAX_STORE_ITEMS
    }
}
