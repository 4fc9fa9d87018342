//! The `[tls]` table: whether the control listener, the HTTP tracker and the object API speak
//! TLS, and with which certificate.

use crate::net::{TlsError, TlsIdentity};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// TLS settings of the gateway's TCP listeners.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// Serve the control listener, the HTTP tracker and the object API over TLS only.
    pub enabled: bool,
    /// PEM certificate chain, the gateway's own certificate first; empty is
    /// `<objects.data_dir>/tls/cert.pem`.
    pub cert_file: PathBuf,
    /// PEM private key of that certificate; empty is `<objects.data_dir>/tls/key.pem`.
    pub key_file: PathBuf,
    /// Host names and addresses a certificate the gateway creates itself is valid for, besides
    /// `localhost`, 127.0.0.1, ::1 and the addresses the listeners and `objects.tracker_url` name.
    pub names: Vec<String>,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            enabled: false,
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            names: Vec::new(),
        }
    }
}

impl TlsSection {
    /// Checks the values, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.cert_file.as_os_str().is_empty() != self.key_file.as_os_str().is_empty() {
            return Err("tls.cert_file and tls.key_file: give both, or neither".into());
        }
        if !self.cert_file.as_os_str().is_empty() && self.cert_file == self.key_file {
            return Err("tls.cert_file and tls.key_file must be two files".into());
        }
        if let Some(bad) = self
            .names
            .iter()
            .find(|n| n.is_empty() || n.contains(['/', ' ']))
        {
            return Err(format!("tls.names: {bad:?} is not a host name or address"));
        }
        Ok(())
    }
}

impl super::Config {
    /// The gateway's certificate when `tls.enabled`, created on first use (see [`TlsSection`]).
    pub fn tls_identity(&self) -> Result<Option<TlsIdentity>, TlsError> {
        if !self.tls.enabled {
            return Ok(None);
        }
        let names = self.certificate_names();
        let (cert, key) = self.tls_files();
        TlsIdentity::load_or_create(&cert, &key, &names).map(Some)
    }

    /// The certificate and key files, defaults filled in.
    pub fn tls_files(&self) -> (PathBuf, PathBuf) {
        let tls = &self.tls;
        if tls.cert_file.as_os_str().is_empty() {
            let dir = self.objects.data_dir.join("tls");
            return (dir.join("cert.pem"), dir.join("key.pem"));
        }
        (tls.cert_file.clone(), tls.key_file.clone())
    }

    /// Names a created certificate is valid for: loopback, the listeners' own addresses, the
    /// host of `objects.tracker_url` and `tls.names`.
    fn certificate_names(&self) -> Vec<String> {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
        let objects = &self.objects;
        let addrs = [
            self.http_addr().ok().flatten(),
            objects.api_addr().ok().flatten(),
            objects.control_addr().ok(),
        ];
        let ips = addrs.into_iter().flatten().map(|a| a.ip());
        names.extend(
            ips.filter(|ip| !ip.is_unspecified())
                .map(|ip| ip.to_string()),
        );
        names.extend(url_host(&objects.tracker_url).map(String::from));
        names.extend(self.tls.names.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }
}

/// The host of an `http://` or `https://` URL, without brackets or port.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("https://gw.example:6969/x"), Some("gw.example"));
        assert_eq!(url_host("https://[2001:db8::1]:6969"), Some("2001:db8::1"));
        assert_eq!(url_host("http://10.0.0.1"), Some("10.0.0.1"));
        assert_eq!(url_host(""), None);
    }

    #[test]
    fn created_certificates_name_the_listeners_and_the_tracker_url() {
        let mut c = Config {
            http_listen: "10.1.2.3:6969".into(),
            ..Config::default()
        };
        c.objects.tracker_url = "https://gw.example:6969".into();
        c.tls.names = vec!["storage.example".into(), "localhost".into()];
        let names = c.certificate_names();
        for n in [
            "localhost",
            "127.0.0.1",
            "10.1.2.3",
            "gw.example",
            "storage.example",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        assert_eq!(names.iter().filter(|n| *n == "localhost").count(), 1);
        assert!(!names.iter().any(|n| n == "0.0.0.0"));
    }

    #[test]
    fn enabled_tls_needs_an_https_tracker_url() {
        let mut c = Config::default();
        c.tls.enabled = true;
        c.validate().unwrap();
        c.objects.tracker_url = "http://gw.example:6969".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("https://"), "{e}");
    }
}
