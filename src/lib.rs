//! importfs: an Import.io account (API v2) as a FUSE filesystem.
//!
//! Layers, one module each: `api` is the client and the
//! models, `emulator` a local Import.io server for tests and demos, `fs` the
//! filesystem (a kernel-free core plus a thin fuser adapter) and `cli` the
//! command line; `metrics` the mount's Prometheus endpoint.

pub mod api;
pub mod cli;
pub mod emulator;
#[cfg(target_os = "linux")]
pub mod fs;
#[cfg(target_os = "linux")]
pub mod metrics;
