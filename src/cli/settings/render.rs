//! `importfs config`: every setting as `key = value  # source`, so that a
//! user can see what a mount would use and why, before mounting.
//!
//! Subtle: the API key gets a line of its own right after `api_url`, and
//! that line only ever says `<redacted>`, `not set` or `unreadable` (with
//! where the key comes from, a stored one included): this
//! output can be shown to anyone. The key is still read
//! (not just looked for), so that an unreadable key file shows up here.

use super::key::KEY_ENV;
use super::layer::Source;
use super::resolve::{ConfigFile, Effective, KeySource};

impl Effective {
    /// The lines of `importfs config`, in the order of the settings list.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String, src: String| {
            out.push_str(&format!("{k} = {v}  # {src}\n"));
        };
        let (file, file_src) = match &self.config_file {
            ConfigFile::Loaded(p) => (quoted(p), "read"),
            ConfigFile::Absent(p) => (quoted(p), "not found, defaults used"),
            ConfigFile::Off => ("none".into(), "--no-config or no home directory"),
        };
        line("config_file", file, file_src.into());
        for (key, row) in self.layer.rows() {
            let set = row.is_some();
            let (value, mut src) = match row {
                Some((value, source)) => (value, source.to_string()),
                // Only settings without a default can be unset.
                None => (unset(key).into(), Source::Default.to_string()),
            };
            if key == "api_key_file" && set && self.key == KeySource::Env {
                src.push_str(&format!("; not used: {KEY_ENV} wins"));
            }
            line(key, value, src);
            if key == "api_url" {
                let (value, src) = self.key_line();
                line("api_key", value, src);
            }
        }
        out
    }

    /// The `api_key` line's value and comment (`importfs login --status` too).
    pub fn key_line(&self) -> (String, String) {
        match &self.key {
            KeySource::Stored => match self.stored_key() {
                Ok(Some((_, place))) => (
                    "<redacted>".into(),
                    format!("stored by importfs login in {place}"),
                ),
                Ok(None) => (
                    "not set".into(),
                    format!("run importfs login, or set {KEY_ENV} or api_key_file"),
                ),
                Err(e) => ("unreadable".into(), format!("{e:#}")),
            },
            KeySource::Env => match self.api_key() {
                Ok(_) => ("<redacted>".into(), format!("environment {KEY_ENV}")),
                Err(_) => ("not set".into(), format!("{KEY_ENV} is empty")),
            },
            KeySource::File(p, src) => match self.api_key() {
                Ok(_) => (
                    "<redacted>".into(),
                    format!("read from {} ({src})", p.display()),
                ),
                Err(e) => ("unreadable".into(), format!("{}", e.root_cause())),
            },
        }
    }
}

/// What an unset setting shows: a metrics address that is not set means no
/// metrics server at all.
fn unset(key: &str) -> &'static str {
    if key == "metrics_addr" {
        "off"
    } else {
        "not set"
    }
}

fn quoted(p: &std::path::Path) -> String {
    format!("{:?}", p.display().to_string())
}
