//! The settings family: what a mount can be told, from where, and in what
//! order the sources win.
//!
//! Subtle: the modules here form a one-way chain (values, dirs and key at
//! the bottom), and this file only re-exports them, so that no module of
//! the family imports one that imports it back.

pub mod dirs;
pub mod key;
pub mod values;

pub use dirs::{default_cache_dir, default_config_path, default_log_file};
pub use key::{read_api_key, KEY_ENV, NO_KEY_HELP};
pub use values::{format_size, parse_chunk_size, parse_metrics_addr, parse_size, parse_streams};
