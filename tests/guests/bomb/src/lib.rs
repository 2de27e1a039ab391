//! A component bomb: a small component whose core module declares a linear memory of
//! over 1 GiB. The zeroed static below lands in `.bss`, which takes no room in the
//! file (the component is a few hundred KiB) but raises the memory's declared minimum
//! size past 1 GiB. A host whose memory limit is lower must refuse it at upload, or
//! fail its runs at instantiation; it must never hand it the memory.
//!
//! If it does run, it reads one byte of the ballast (chosen by the input, a number)
//! and returns it.

use spool_sdk::{Context, WorkflowError};

const BALLAST_BYTES: usize = 1 << 30;

/// `static mut` (and not a plain static) so that it is zero-initialised writable
/// data, `.bss`, and not read-only data that the linker would write out in full.
static mut BALLAST: [u8; BALLAST_BYTES] = [0; BALLAST_BYTES];

fn bomb(_ctx: &Context, index: usize) -> Result<u8, WorkflowError> {
    let at = std::ptr::addr_of!(BALLAST).cast::<u8>();
    // SAFETY: the index is within the static, and nothing writes to it. The volatile
    // read keeps the static, and with it its size, in the binary.
    Ok(unsafe { at.add(index % BALLAST_BYTES).read_volatile() })
}

spool_sdk::workflow!(bomb);
