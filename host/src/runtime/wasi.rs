//! The deterministic WASI a workflow sees, and the workflow linker.
//!
//! Ordinary Rust `std` (and componentize-py / componentize-js) guests import WASI even
//! when they do no I/O. Rather than refusing them, the host links its own deterministic
//! implementation: clocks read the run's virtual time, randomness comes from the run's
//! journaled seed, stdout and stderr are captured into the workflow log, and the
//! environment, arguments and filesystem are empty. Sockets and HTTP are not linked at
//! all, so even a component that slipped past upload validation cannot instantiate.

use super::{Activations, Sandbox};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime::Engine;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bytes of stdout/stderr kept per guest instance; writes beyond it fail in the guest.
pub const MAX_CAPTURED_OUTPUT: usize = 1 << 20;

impl<H: Send> WasiView for Sandbox<H> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The run's virtual time in milliseconds since the Unix epoch, shared between the
/// engine (which moves it when it delivers an event) and the WASI clocks.
#[derive(Clone, Debug, Default)]
pub struct VirtualTime(Arc<AtomicU64>);

impl VirtualTime {
    pub fn new(ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(ms)))
    }

    pub fn set_ms(&self, ms: u64) {
        self.0.store(ms, Ordering::Relaxed);
    }

    pub fn ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct VirtualWallClock(VirtualTime);

impl wasmtime_wasi::HostWallClock for VirtualWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.0.ms())
    }
}

/// Monotonic time: nanoseconds of virtual time since the run started.
struct VirtualMonotonicClock {
    time: VirtualTime,
    start_ms: u64,
}

impl wasmtime_wasi::HostMonotonicClock for VirtualMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    fn now(&self) -> u64 {
        self.time
            .ms()
            .saturating_sub(self.start_ms)
            .saturating_mul(1_000_000)
    }
}

/// A small, fast, seedable generator (xoshiro256**, seeded through splitmix64). Written
/// out here rather than taken from a crate so that its output can never change under a
/// dependency upgrade: journaled runs depend on it.
#[derive(Clone, Debug)]
pub struct SeededRandom {
    s: [u64; 4],
}

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    pub fn fill(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

impl rand_core::TryRng for SeededRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.next_u64() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.fill(dst);
        Ok(())
    }
}

/// Captured stdout and stderr of one guest instance.
#[derive(Clone)]
pub struct CapturedOutput {
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
}

/// Builds the WASI context of a workflow instance. The WASI generators get streams of
/// their own, derived from the run's seed, so they never disturb `random-bytes`.
pub fn deterministic_wasi(
    time: &VirtualTime,
    start_ms: u64,
    seed: u64,
) -> (WasiCtx, CapturedOutput) {
    let output = CapturedOutput {
        stdout: MemoryOutputPipe::new(MAX_CAPTURED_OUTPUT),
        stderr: MemoryOutputPipe::new(MAX_CAPTURED_OUTPUT),
    };
    let mut builder = WasiCtx::builder();
    builder
        .wall_clock(VirtualWallClock(time.clone()))
        .monotonic_clock(VirtualMonotonicClock {
            time: time.clone(),
            start_ms,
        })
        .secure_random(SeededRandom::new(seed ^ 0x5EC0_4E00_0000_0001))
        .insecure_random(SeededRandom::new(seed ^ 0x1A5E_C04E_0000_0002))
        .insecure_random_seed(u128::from(seed) << 64 | u128::from(seed.rotate_left(17)))
        .stdout(output.stdout.clone())
        .stderr(output.stderr.clone());
    (builder.build(), output)
}

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Gives the `context` host functions access to the driver's state inside the sandbox.
pub struct HostOf<H>(std::marker::PhantomData<H>);

impl<H: 'static> HasData for HostOf<H> {
    type Data<'a> = &'a mut H;
}

/// The linker for workflow instances: the deterministic WASI subset and `context`,
/// nothing else.
pub fn workflow_linker<H>(engine: &Engine) -> wasmtime::Result<Linker<Sandbox<H>>>
where
    H: super::bindings::spool::workflow::context::Host + Activations + Send + 'static,
{
    use wasmtime_wasi::cli::WasiCli;
    use wasmtime_wasi::clocks::WasiClocks;
    use wasmtime_wasi::filesystem::WasiFilesystem;
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};
    use wasmtime_wasi::random::WasiRandom;

    let mut linker = Linker::new(engine);
    let l = &mut linker;
    type T<H> = Sandbox<H>;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<T<H>, HasIo>(l, |t| &mut t.table)?;
    wasmtime_wasi_io::bindings::wasi::io::poll::add_to_linker::<T<H>, HasIo>(l, |t| &mut t.table)?;
    wasmtime_wasi_io::bindings::wasi::io::streams::add_to_linker::<T<H>, HasIo>(l, |t| {
        &mut t.table
    })?;
    {
        use wasmtime_wasi::clocks::WasiClocksView as _;
        clocks::wall_clock::add_to_linker::<T<H>, WasiClocks>(l, T::<H>::clocks)?;
        clocks::monotonic_clock::add_to_linker::<T<H>, WasiClocks>(l, T::<H>::clocks)?;
    }
    {
        use wasmtime_wasi::random::WasiRandomView as _;
        random::random::add_to_linker::<T<H>, WasiRandom>(l, T::<H>::random)?;
        random::insecure::add_to_linker::<T<H>, WasiRandom>(l, T::<H>::random)?;
        random::insecure_seed::add_to_linker::<T<H>, WasiRandom>(l, T::<H>::random)?;
    }
    {
        use wasmtime_wasi::cli::WasiCliView as _;
        cli::exit::add_to_linker::<T<H>, WasiCli>(l, T::<H>::cli)?;
        cli::environment::add_to_linker::<T<H>, WasiCli>(l, T::<H>::cli)?;
        cli::stdin::add_to_linker::<T<H>, WasiCli>(l, T::<H>::cli)?;
        cli::stdout::add_to_linker::<T<H>, WasiCli>(l, T::<H>::cli)?;
        cli::stderr::add_to_linker::<T<H>, WasiCli>(l, T::<H>::cli)?;
        cli::terminal_input::add_to_linker::<T<H>, WasiCli>(l, T::<H>::cli)?;
        cli::terminal_output::add_to_linker::<T<H>, WasiCli>(l, T::<H>::cli)?;
        cli::terminal_stdin::add_to_linker::<T<H>, WasiCli>(l, T::<H>::cli)?;
        cli::terminal_stdout::add_to_linker::<T<H>, WasiCli>(l, T::<H>::cli)?;
        cli::terminal_stderr::add_to_linker::<T<H>, WasiCli>(l, T::<H>::cli)?;
    }
    {
        use wasmtime_wasi::filesystem::WasiFilesystemView as _;
        filesystem::types::add_to_linker::<T<H>, WasiFilesystem>(l, T::<H>::filesystem)?;
        filesystem::preopens::add_to_linker::<T<H>, WasiFilesystem>(l, T::<H>::filesystem)?;
    }
    super::bindings::spool::workflow::context::add_to_linker::<T<H>, HostOf<H>>(l, |t| {
        &mut t.host
    })?;
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_random_is_stable_across_versions() {
        // Journaled runs replay against this sequence: it must never change.
        let mut r = SeededRandom::new(42);
        let first: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        let mut again = SeededRandom::new(42);
        assert_eq!(first, (0..3).map(|_| again.next_u64()).collect::<Vec<_>>());
        assert_ne!(first, {
            let mut other = SeededRandom::new(43);
            (0..3).map(|_| other.next_u64()).collect::<Vec<_>>()
        });
        assert_eq!(
            first[0], 1_546_998_764_402_558_742,
            "generator output changed"
        );
    }
}
