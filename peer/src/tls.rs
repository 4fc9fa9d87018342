//! TLS to gateways that serve it. A gateway is pinned by the certificate file its operator hands
//! out: the control connection accepts a server holding that certificate's key and nothing else
//! (no CA, no name check), and the session's HTTPS announces and metainfo fetches trust the pinned
//! certificates (see [`trust_pinned`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::Config;

/// A gateway's pinned key, with the connector that accepts only it.
#[derive(Clone)]
pub struct Pin {
    connector: TlsConnector,
}

impl Pin {
    /// Pins the key of the first certificate in the PEM file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Pin> {
        let cert = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading {}", path.display()))?
            .next()
            .with_context(|| format!("{}: no PEM certificate in it", path.display()))?
            .with_context(|| format!("{}: not a PEM certificate", path.display()))?;
        let spki = spki(&cert).with_context(|| format!("{}: not a certificate", path.display()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = PinnedKey {
            spki,
            algs: provider.signature_verification_algorithms,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(Pin {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// The TLS handshake on `stream` to the gateway at `host` (sent as SNI when it is a name).
    pub async fn connect(&self, stream: TcpStream, host: &str) -> io::Result<TlsStream<TcpStream>> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.connector.connect(name, stream).await
    }
}

/// The DER SubjectPublicKeyInfo of a certificate.
fn spki(cert: &CertificateDer<'_>) -> Result<Vec<u8>, webpki::Error> {
    let ee = webpki::EndEntityCert::try_from(cert)?;
    Ok(ee.subject_public_key_info().as_ref().to_vec())
}

/// Accepts the server whose certificate carries the pinned key, whatever its names, issuer or
/// dates; the handshake signature then proves the server holds that key.
#[derive(Debug)]
struct PinnedKey {
    spki: Vec<u8>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match spki(end_entity) {
            Ok(key) if key == self.spki => Ok(ServerCertVerified::assertion()),
            Ok(_) => Err(rustls::Error::General(
                "the gateway's key is not the pinned one".into(),
            )),
            Err(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// When some gateway is pinned, makes the HTTPS requests of this process (the session's
/// announces, metainfo fetches) trust the pinned certificates, plus the system's roots only if
/// some gateway is not pinned. Writes the bundle into the data directory and points
/// `SSL_CERT_FILE` at it, so it must run before any other thread exists.
pub fn trust_pinned(config: &Config) -> anyhow::Result<Option<PathBuf>> {
    let pinned: Vec<&Path> = config
        .gateways
        .iter()
        .filter_map(|g| g.tls_cert.as_deref())
        .collect();
    if pinned.is_empty() {
        return Ok(None);
    }
    let mut bundle = Vec::new();
    if pinned.len() < config.gateways.len() {
        for cert in rustls_native_certs::load_native_certs().certs {
            bundle.extend(pem(&cert).into_bytes());
        }
    }
    for path in pinned {
        Pin::load(path)?;
        bundle.extend(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
        bundle.push(b'\n');
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let file = std::path::absolute(config.data_dir.join("trusted-gateways.pem"))?;
    std::fs::write(&file, bundle).with_context(|| format!("writing {}", file.display()))?;
    std::env::set_var("SSL_CERT_FILE", &file);
    std::env::remove_var("SSL_CERT_DIR");
    Ok(Some(file))
}

/// A certificate in PEM.
fn pem(cert: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).expect("base64 is ascii"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips() {
        for len in [1usize, 2, 3, 4, 47, 48, 49, 700] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let text = pem(&CertificateDer::from(der.clone()));
            let back = CertificateDer::from_pem_slice(text.as_bytes()).unwrap();
            assert_eq!(back.as_ref(), &der[..], "length {len}");
        }
    }
}
