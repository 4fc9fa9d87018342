//! TLS on the gateway's TCP listeners (rustls): the gateway's certificate (the operator's, or one
//! the gateway creates once and keeps, so the pin nodes hold stays valid across restarts) and the
//! accept side that the HTTP listeners and the control listener share.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

/// What is wrong with the gateway's certificate or key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{0}: no PEM certificate in it")]
    NoCertificate(PathBuf),
    #[error("{0}: no PEM private key in it")]
    NoKey(PathBuf),
    #[error("{0} exists but {1} does not: give both files, or neither to have them created")]
    HalfPair(PathBuf, PathBuf),
    #[error("creating a self-signed certificate: {0}")]
    Create(String),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("the certificate and key cannot serve TLS: {0}")]
    Unusable(#[from] rustls::Error),
}

/// The gateway's certificate chain and private key.
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_file: PathBuf,
}

impl TlsIdentity {
    /// Reads `cert_file` and `key_file`; when neither exists, first creates a self-signed
    /// certificate for `names` there (the key readable by its owner only).
    pub fn load_or_create(
        cert_file: &Path,
        key_file: &Path,
        names: &[String],
    ) -> Result<Self, TlsError> {
        match (cert_file.exists(), key_file.exists()) {
            (false, false) => create(cert_file, key_file, names)?,
            (true, false) => return Err(TlsError::HalfPair(cert_file.into(), key_file.into())),
            (false, true) => return Err(TlsError::HalfPair(key_file.into(), cert_file.into())),
            (true, true) => {}
        }
        Self::load(cert_file, key_file)
    }

    /// Reads a PEM certificate chain and its PEM private key.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let cert_pem = read(cert_file)?;
        let chain: Vec<_> = CertificateDer::pem_slice_iter(&cert_pem)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(cert_file.into()));
        }
        let key = PrivateKeyDer::from_pem_slice(&read(key_file)?)
            .map_err(|_| TlsError::NoKey(key_file.into()))?;
        let identity = TlsIdentity {
            chain,
            key,
            cert_file: cert_file.into(),
        };
        identity.acceptor()?;
        Ok(identity)
    }

    /// The chain, the gateway's own certificate first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The file nodes and clients are given to trust (and nodes pin).
    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }

    /// SHA-256 of the gateway's certificate, lowercase hex (what `openssl x509 -fingerprint
    /// -sha256` prints, without the colons).
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(&self.chain[0]))
    }

    /// The accept side for every listener.
    pub fn acceptor(&self) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        // HTTP/1.1 on the HTTP listeners; clients that offer no ALPN (nodes) are served too.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls(TlsAcceptor::from(Arc::new(config))))
    }
}

/// Names the certificate, never the key.
impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_file", &self.cert_file)
            .field("sha256", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })
}

/// Creates a self-signed certificate for `names` and writes it and its key.
fn create(cert_file: &Path, key_file: &Path, names: &[String]) -> Result<(), TlsError> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Create(e.to_string()))?;
    write(key_file, made.key_pair.serialize_pem().as_bytes(), 0o600)?;
    write(cert_file, made.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert_file.display(), ?names, "created a self-signed TLS certificate");
    Ok(())
}

/// Writes `bytes` to `path` durably (temporary file, fsync, rename), with permissions `mode`.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |source| TlsError::Write {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(failed)
}

/// Any byte stream a listener serves: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The server side of TLS; cheap to clone.
#[derive(Clone)]
pub struct Tls(TlsAcceptor);

impl Tls {
    /// The handshake on `stream`, which must finish within `within`.
    pub async fn accept<S: Io>(
        &self,
        stream: S,
        within: Duration,
    ) -> io::Result<tokio_rustls::server::TlsStream<S>> {
        tokio::time::timeout(within, self.0.accept(stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake in time"))?
    }
}

/// `stream` as it is without `tls`, or inside TLS once the handshake finished within `within`.
pub async fn secure<S: Io + 'static>(
    tls: Option<&Tls>,
    stream: S,
    within: Duration,
) -> io::Result<Box<dyn Io>> {
    Ok(match tls {
        None => Box::new(stream),
        Some(tls) => Box::new(tls.accept(stream, within).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_certificate_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (
            dir.path().join("tls/cert.pem"),
            dir.path().join("tls/key.pem"),
        );
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let first = TlsIdentity::load_or_create(&cert, &key, &names).unwrap();
        let again = TlsIdentity::load_or_create(&cert, &key, &[]).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(first.fingerprint().len(), 64);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
    }

    #[test]
    fn half_a_pair_or_junk_is_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, "not a certificate").unwrap();
        let e = TlsIdentity::load_or_create(&cert, &key, &[]).unwrap_err();
        assert!(matches!(e, TlsError::HalfPair(..)), "{e}");
        std::fs::write(&key, "not a key").unwrap();
        let e = TlsIdentity::load_or_create(&cert, &key, &[]).unwrap_err();
        assert!(e.to_string().contains("cert.pem"), "{e}");
        TlsIdentity::load_or_create(
            &dir.path().join("c2.pem"),
            &dir.path().join("k2.pem"),
            &["localhost".into()],
        )
        .unwrap();
        std::fs::copy(dir.path().join("c2.pem"), &cert).unwrap();
        let e = TlsIdentity::load(&cert, &key).unwrap_err();
        assert!(e.to_string().contains("key.pem"), "{e}");
    }
}
