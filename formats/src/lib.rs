//! Spool's data formats, with their decoders: the identifier newtypes ([`ids`]), the
//! journal's events as stored ([`event`]) and the JSON bodies of the HTTP API's
//! requests ([`api`]).
//!
//! The host (`spool`) uses these types as its own: `spool::ids` is [`ids`],
//! `spool::journal` re-exports [`event`], its API handlers take the bodies of [`api`].
//! They are a crate of their own so that the fuzz targets in `fuzz/` decode with this
//! very code without building the rest of the host (wasmtime above all). It depends on
//! serde and hashing only, and its decoders never panic.

pub mod api;
pub mod event;
pub mod ids;

/// Milliseconds since the Unix epoch.
pub type EpochMs = u64;
