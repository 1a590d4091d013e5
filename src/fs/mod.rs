//! The filesystem: a kernel-free core over the API client, and a thin fuser
//! adapter.
//!
//! A FUSE request enters `fuse` (the only module that knows fuser), becomes
//! one call of an operation on [`Fs`] (`core` for reads, `write` and
//! `control` for changes), which asks `tree` what the node means and
//! `objects` for the API objects behind it, through the caches (`cache` for
//! metadata, `data` and `store` for result files). `inodes` and `names` give
//! nodes their numbers and API objects their path names; `buffers` holds
//! the in-memory files, `inputs` the text of an `inputs` file. Nothing here but `fuse` sees a kernel type, so the
//! core is tested by calling it (`tests/fs_core.rs`).

pub mod buffers;
pub mod cache;
pub mod changes;
pub mod control;
pub mod core;
pub mod counters;
pub mod data;
pub mod error;
pub mod events;
#[cfg(any(target_os = "linux", feature = "macfuse"))]
pub mod fuse;
pub mod inodes;
pub mod inputs;
pub mod names;
pub mod nfs;
pub mod objects;
pub mod opened;
pub mod outage;
pub mod poll;
pub mod runs;
pub mod store;
pub mod tree;
pub mod write;

pub use self::core::{Fs, FsConfig};
pub use data::FetchPlan;
pub use error::FsError;
