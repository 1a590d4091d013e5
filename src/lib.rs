//! importfs: an Import.io account (API v2) as a FUSE filesystem.
//!
//! Layers, one module each: `api` is the client and the
//! models, `emulator` a local Import.io server for tests and demos, `fs` the
//! filesystem (a kernel-free core plus a thin fuser adapter) and `cli` the
//! command line; `metrics` the mount's Prometheus endpoint; `platform`
//! what differs between Linux and macOS.

pub mod api;
pub mod cli;
pub mod emulator;
pub mod fs;
pub mod metrics;
pub mod platform;
