//! What TLS said, in words a user can act on.
//!
//! A refused certificate reaches us as a reqwest error whose chain holds,
//! somewhere, a `rustls::Error`, wrapped in an `io::Error` by the
//! connector. Its text ("invalid peer certificate: UnknownIssuer") names
//! the problem but not the fix, so each kind gets a sentence that says
//! both: add the CA with `--ca-cert`, renew the certificate, use the name
//! it was issued for, or http:// for a server without TLS.
//!
//! Subtle: `io::Error::source()` skips the error it wraps (it returns that
//! error's own source), and the connector wraps rustls's `io::Error` in
//! another, so each `io::Error` in the chain is opened with `get_ref()`,
//! as deep as they nest.

use rustls::{CertificateError, Error as TlsError};
use std::error::Error as StdError;

/// The TLS problem behind a failed request, said with its fix; `None` when
/// the failure is not TLS's.
pub(crate) fn diagnose(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = as_tls(err) {
            return Some(say(t));
        }
        cur = err.source();
    }
    None
}

/// `err` as a rustls error, looking through `io::Error`s wrapped in one
/// another (the connector wraps rustls's io::Error in one of its own).
fn as_tls<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a TlsError> {
    let mut err = err;
    loop {
        if let Some(t) = err.downcast_ref::<TlsError>() {
            return Some(t);
        }
        err = err.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

fn say(t: &TlsError) -> String {
    match t {
        TlsError::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "TLS: the server's certificate is not signed by a CA this machine trusts: add \
                 that CA with --ca-cert FILE (or to the system's store), as a company's TLS \
                 proxy needs"
                    .into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS: the server's certificate has expired (or this machine's clock is wrong): \
                 the server needs a new one"
                    .into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS: the server's certificate is not valid yet (is this machine's clock right?)"
                    .into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "TLS: the server's certificate is for another name: use the host name it was \
                 issued for in --api-url"
                    .into()
            }
            other => format!("TLS: the server's certificate was refused ({other:?})"),
        },
        TlsError::InvalidMessage(_) | TlsError::InappropriateMessage { .. } => {
            "TLS: the server does not speak TLS there (plain HTTP on an https:// URL?): check \
             the URL's scheme and port"
                .into()
        }
        other => format!("TLS: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_certificate_problem_says_its_fix() {
        let wrapped = |t: TlsError| std::io::Error::other(t);
        let e = wrapped(TlsError::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert!(diagnose(&e).unwrap().contains("--ca-cert"));
        let e = wrapped(TlsError::InvalidCertificate(CertificateError::Expired));
        assert!(diagnose(&e).unwrap().contains("expired"));
        let e = wrapped(TlsError::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        assert!(diagnose(&e).unwrap().contains("another name"));
        let e = wrapped(TlsError::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(diagnose(&e).unwrap().contains("plain HTTP"));
        // As the connector hands it over: an io::Error in an io::Error.
        let inner = wrapped(TlsError::InvalidCertificate(CertificateError::Expired));
        let e = std::io::Error::other(inner);
        assert!(diagnose(&e).unwrap().contains("expired"));
        assert!(diagnose(&std::io::Error::other("refused")).is_none());
    }
}
