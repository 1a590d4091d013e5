//! HTTPS for the emulator: [`TlsFiles`] (a certificate chain and its key, as
//! PEM files) loaded into the one TLS acceptor both listeners share.
//!
//! Subtle points:
//! - The ring provider is named explicitly: no process-wide default crypto
//!   provider is installed, so rustls' plain `ServerConfig::builder()` would
//!   panic (and the client side of the process may have chosen another).
//! - ALPN offers `http/1.1` only: the listeners speak HTTP/1 alone, and a
//!   client that offers only `h2` then fails the handshake instead of sending
//!   frames the server cannot read.
//! - The files are read once, in `Emulator::start`, before any port is bound:
//!   a bad file is an error of the start that names the file. The handshakes
//!   happen per connection, off the accept loop (see `conn`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The PEM files of an HTTPS emulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, leaf first (one or more
    /// `CERTIFICATE` blocks).
    pub cert: PathBuf,
    /// The leaf's private key (a PKCS#8, PKCS#1 or SEC1 block).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The acceptor of both listeners, or an error naming the file at fault.
    pub(crate) fn acceptor(&self) -> io::Result<TlsAcceptor> {
        Ok(TlsAcceptor::from(Arc::new(self.server_config()?)))
    }

    fn server_config(&self) -> io::Result<rustls::ServerConfig> {
        let chain = read_chain(&self.cert)?;
        let key = read_key(&self.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("cannot set up TLS: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                invalid(format!(
                    "the TLS certificate {} and key {} cannot serve together: {e}",
                    self.cert.display(),
                    self.key.display()
                ))
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Every certificate of a PEM file, leaf first.
fn read_chain(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let bad = |e: pem::Error| unreadable("certificate", path, e);
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if chain.is_empty() {
        return Err(invalid(format!("no certificate in {}", path.display())));
    }
    Ok(chain)
}

/// The first private key of a PEM file.
fn read_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => invalid(format!("no private key in {}", path.display())),
        e => unreadable("key", path, e),
    })
}

/// "cannot read the TLS certificate FILE: why", keeping an I/O error's kind.
fn unreadable(what: &str, path: &Path, e: pem::Error) -> io::Error {
    let (kind, why) = match e {
        pem::Error::Io(e) => (e.kind(), e.to_string()),
        e => (io::ErrorKind::InvalidData, e.to_string()),
    };
    io::Error::new(
        kind,
        format!("cannot read the TLS {what} {}: {why}", path.display()),
    )
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for 127.0.0.1 and its key, as PEM.
    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert).expect("write cert");
        std::fs::write(&files.key, key).expect("write key");
        files
    }

    fn error(files: &TlsFiles) -> String {
        files.acceptor().err().expect("an error").to_string()
    }

    #[test]
    fn a_matching_pair_loads_and_offers_http1_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = pair();
        let config = files(dir.path(), &cert, &key)
            .server_config()
            .expect("loads");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = pair();
        let (other_cert, _) = pair();
        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("key.pem"),
        };
        let e = error(&missing);
        assert!(
            e.starts_with(&format!(
                "cannot read the TLS certificate {}: ",
                missing.cert.display()
            )),
            "{e}"
        );
        assert_eq!(
            missing.acceptor().err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
        // The key given as the certificate, the certificate as the key.
        let swapped = files(dir.path(), &key, &cert);
        let e = error(&swapped);
        assert_eq!(e, format!("no certificate in {}", swapped.cert.display()));
        let no_key = files(dir.path(), &cert, &cert);
        let e = error(&no_key);
        assert_eq!(e, format!("no private key in {}", no_key.key.display()));
        let garbled = files(dir.path(), &cert.replace('M', "*"), &key);
        let e = error(&garbled);
        assert!(e.starts_with("cannot read the TLS certificate"), "{e}");
        let mismatched = files(dir.path(), &other_cert, &key);
        let e = error(&mismatched);
        assert!(e.contains("cannot serve together"), "{e}");
    }
}
