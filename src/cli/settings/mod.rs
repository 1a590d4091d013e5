//! The settings family: what a mount can be told, from where, and which
//! source wins. [`layer`] holds the list of settings, each declared once;
//! the other modules read them from a source ([`options`], [`mod@file`]),
//! combine the sources ([`mod@resolve`]) or print the result ([`render`]).
//!
//! Subtle: the modules here import one another in one direction only
//! (values, dirs, key and stored at the bottom, resolve and render at the top), and
//! this file only re-exports them, so that no module of the family imports
//! one that imports it back.

pub mod dirs;
pub mod file;
pub mod key;
pub mod layer;
pub mod options;
pub mod render;
pub mod resolve;
pub mod stored;
pub mod values;

pub use dirs::{default_config_path, default_log_file};
pub use file::load_file;
pub use key::{read_api_key, KEY_ENV, NO_KEY_HELP};
pub use layer::{ApiSettings, Layer, MountSettings, Setting, Settings, Source, KEYS};
pub use options::{parse_options, ParsedOptions};
pub use resolve::{
    resolve, resolve_api, ApiFlags, ConfigFile, Effective, KeySource, SettingsFlags, CONFIG_ENV,
    URL_ENV,
};
pub use values::{
    format_size, parse_chunk_size, parse_metrics_addr, parse_size, parse_streams, Backend, ProxyUrl,
};

#[cfg(test)]
mod tests;
