//! The API client of a command, from its settings: the URL and the key,
//! the CA certificates of `--ca-cert` on top of the system's store, and
//! the proxy of `--proxy` (or the config key `proxy`).
//!
//! Subtle: a `--ca-cert` file that cannot be read, or holds no
//! certificate, is an error before any call, not a silent fallback to the
//! system's store alone: the user asked for those roots, and without them
//! every call would fail later with a less helpful "unknown issuer".

use crate::api::{ApiKey, ClientConfig};
use crate::cli::settings::Settings;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The client's settings for `s`, with the client's defaults for the rest.
pub fn client_config(s: &Settings, key: ApiKey) -> Result<ClientConfig> {
    let mut cfg = ClientConfig::new(s.api_url.clone(), key);
    if let Some(path) = &s.ca_cert {
        cfg.extra_roots = read_roots(path)?;
    }
    cfg.proxy = s.proxy.as_ref().map(|p| p.0.clone());
    Ok(cfg)
}

/// Every certificate of a PEM file (one, several, a bundle).
fn read_roots(path: &Path) -> Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path).with_context(|| {
        format!(
            "cannot read the CA certificates (--ca-cert) {}",
            path.display()
        )
    })?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
        format!(
            "{} (--ca-cert) is not a PEM file of certificates",
            path.display()
        )
    })?;
    if roots.is_empty() {
        bail!(
            "{} (--ca-cert) holds no certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_missing_or_empty_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_roots(&dir.path().join("none.pem")).unwrap_err();
        assert!(format!("{e:#}").contains("cannot read"), "{e:#}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = read_roots(&junk).unwrap_err();
        assert!(format!("{e:#}").contains("no certificate"), "{e:#}");
    }
}
