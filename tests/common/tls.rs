//! Certificates for HTTPS tests, made at run time (none is committed): a CA
//! and three server certificates it signed, as PEM files in a temp dir.
//!
//! Subtle points:
//! - The good certificate names both `127.0.0.1` (an IP SAN: clients check
//!   an IP URL against IP SANs only, never DNS ones) and `localhost`.
//! - The expired and wrong-name certificates are signed by the same CA, so a
//!   client trusting the CA rejects them for exactly that one reason.
//! - Keys are ECDSA P-256 (rcgen's default), which rustls, OpenSSL (curl)
//!   and reqwest all take.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A certificate's PEM file and its key's, in that order.
pub type Pair = (PathBuf, PathBuf);

/// A CA and server certificates it signed; the files live as long as this.
pub struct Certs {
    pub dir: tempfile::TempDir,
    /// The CA's certificate: the bundle a client should trust.
    pub ca: PathBuf,
    /// For `127.0.0.1` and `localhost`, valid now.
    pub good: Pair,
    /// For `127.0.0.1` and `localhost`, expired in 2001.
    pub expired: Pair,
    /// Valid now, but only for `wrong.example`.
    pub wrong_name: Pair,
}

impl Certs {
    pub fn new() -> Certs {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "importfs test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = params.self_signed(&ca_key).expect("CA cert");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).expect("write CA");
        let ca = (ca_cert, ca_key, ca);
        let here = ["127.0.0.1", "localhost"];
        let good = server(dir.path(), "good", &here, false, &ca);
        let expired = server(dir.path(), "expired", &here, true, &ca);
        let wrong_name = server(dir.path(), "wrong-name", &["wrong.example"], false, &ca);
        Certs {
            ca: ca.2,
            dir,
            good,
            expired,
            wrong_name,
        }
    }
}

impl Default for Certs {
    fn default() -> Self {
        Certs::new()
    }
}

/// A server certificate for `names` signed by the CA, written as
/// `<stem>.pem` and `<stem>.key`.
fn server(
    dir: &Path,
    stem: &str,
    names: &[&str],
    expired: bool,
    (ca_cert, ca_key, _): &(Certificate, KeyPair, PathBuf),
) -> Pair {
    let key = KeyPair::generate().expect("server key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = params.signed_by(&key, ca_cert, ca_key).expect("sign");
    let pem = dir.join(format!("{stem}.pem"));
    let key_file = dir.join(format!("{stem}.key"));
    std::fs::write(&pem, cert.pem()).expect("write cert");
    std::fs::write(&key_file, key.serialize_pem()).expect("write key");
    (pem, key_file)
}
