//! The LAN listener's certificate: self-signed (rcgen, ECDSA P-256), its subject alternative names
//! this computer's LAN addresses, kept in `HOME/web-lan.pem` (certificate and private key, mode
//! 0600) so a phone that checked its fingerprint once sees the same one on every later launch.
//!
//! **Invariant:** the kept file is reused as long as it names every address served; only when it
//! does not (the computer moved to another network) is a new one made, and the launch says so.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256};

use super::LanError;

/// The file in the home that keeps the certificate and its key.
pub const CERT_FILE: &str = "web-lan.pem";

/// The certificate the LAN listener presents, with its key.
pub(crate) struct KeptCert {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// Whether it was made at this launch (none was kept, or the kept one named other addresses).
    pub(crate) made_now: bool,
}

/// Hex SHA-256 of a certificate's DER bytes: what a member compares with the browser's view.
pub fn fingerprint(cert_der: &[u8]) -> String {
    hex::encode(Sha256::digest(cert_der))
}

/// The certificate kept in `home_dir`, or a new one naming `ips` (then kept, mode 0600).
pub(crate) fn load_or_make(home_dir: &Path, ips: &[Ipv4Addr]) -> Result<KeptCert, LanError> {
    let path = home_dir.join(CERT_FILE);
    match std::fs::metadata(&path) {
        Ok(meta) => {
            // Like the device key: a file other users could read is refused, never used.
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(LanError::NotPrivate { path });
            }
            let text = std::fs::read(&path).map_err(|e| file_error(&path, e))?;
            if let Some(kept) = parse(&text)
                && names_all(&kept.cert, ips)
            {
                return Ok(kept);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_error(&path, e)),
    }
    make(&path, ips)
}

fn file_error(path: &Path, source: std::io::Error) -> LanError {
    LanError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// The certificate and key of a kept file; `None` when it holds no usable pair.
fn parse(text: &[u8]) -> Option<KeptCert> {
    let cert = CertificateDer::pem_slice_iter(text).next()?.ok()?;
    let key = PrivateKeyDer::from_pem_slice(text).ok()?;
    Some(KeptCert {
        cert,
        key,
        made_now: false,
    })
}

/// Whether the certificate is valid for every one of `ips` (the check a TLS client makes).
fn names_all(cert: &CertificateDer<'_>, ips: &[Ipv4Addr]) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    ips.iter().all(|ip| {
        let name = ServerName::IpAddress(IpAddr::V4(*ip).into());
        ee.verify_is_valid_for_subject_name(&name).is_ok()
    })
}

fn make(path: &Path, ips: &[Ipv4Addr]) -> Result<KeptCert, LanError> {
    let bad = |e: rcgen::Error| LanError::Certificate(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(bad)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
    params.subject_alt_names = ips
        .iter()
        .map(|ip| rcgen::SanType::IpAddress(IpAddr::V4(*ip)))
        .collect();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "Roundtable on this computer");
    params.distinguished_name = dn;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let year = jiff::Zoned::now().year();
    params.not_before = rcgen::date_time_ymd(i32::from(year) - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(i32::from(year) + 10, 1, 1);
    let cert = params.self_signed(&key).map_err(bad)?;
    let text = format!("{}{}", cert.pem(), key.serialize_pem());
    write_private(path, text.as_bytes())?;
    let key = PrivateKeyDer::from_pem_slice(text.as_bytes())
        .map_err(|e| LanError::Certificate(e.to_string()))?;
    Ok(KeptCert {
        cert: cert.der().clone(),
        key,
        made_now: true,
    })
}

/// Writes `bytes` to `path` with mode 0600, whole or not at all (a new file, synced, renamed).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), LanError> {
    let tmp: PathBuf = path.with_extension("pem.new");
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        file_error(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_certificate_is_reused_only_while_it_names_every_address() {
        let dir = tempfile::tempdir().unwrap();
        let a: Ipv4Addr = "192.168.1.5".parse().unwrap();
        let b: Ipv4Addr = "10.0.0.7".parse().unwrap();
        let first = load_or_make(dir.path(), &[a, b]).unwrap();
        assert!(first.made_now);
        let mode = std::fs::metadata(dir.path().join(CERT_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_make(dir.path(), &[a]).unwrap();
        assert!(!again.made_now);
        assert_eq!(fingerprint(&again.cert), fingerprint(&first.cert));
        let moved = load_or_make(dir.path(), &["192.168.7.9".parse().unwrap()]).unwrap();
        assert!(moved.made_now);
        assert_ne!(fingerprint(&moved.cert), fingerprint(&first.cert));
    }

    #[test]
    fn a_certificate_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ip: Ipv4Addr = "192.168.1.5".parse().unwrap();
        load_or_make(dir.path(), &[ip]).unwrap();
        let path = dir.path().join(CERT_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_make(dir.path(), &[ip]),
            Err(LanError::NotPrivate { .. })
        ));
    }
}
