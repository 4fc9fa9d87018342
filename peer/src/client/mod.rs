//! The client side of BEP RT-0004 (`bep-spec/bep-rt-0004-client-placement.md`): the node binary
//! also stores and reads objects without the gateway ever seeing their plaintext or data key.
//!
//! - `put` encrypts and erasure-codes a file here ([`put`]), asks the gateway where its shards go
//!   (`POST /_place/...`), seeds them to the nodes named from a short-lived BitTorrent session,
//!   follows the placement to `stored`, and prints a read capability ([`cap`]) that it also keeps
//!   in the [`keyring`]; a [`journal`] beside the keyring lets the same `put` stopped outright
//!   resume, and any `put` clean up after it;
//! - `get` turns a capability into the object ([`get`]): manifest and holders from
//!   `GET /_cap/...` (no API key), shards straight from the nodes, checked and decoded here;
//! - `ls`, `rm` and `stat` are thin calls of the object API ([`api`]).
//!
//! Pure first: [`cap`] (the capability string) and [`keyring`] (a file) are tested without a
//! network; [`api`] is the HTTP wire; [`put`] and [`get`] drive the codec and the [`Engine`]
//! (`crate::engine`). Errors are [`ClientError`], whose [`ClientError::exit_code`] the binary
//! returns.
//!
//! [`Engine`]: crate::engine::Engine

pub mod api;
pub mod cap;
pub mod cli;
pub mod get;
pub mod journal;
pub mod keyring;
pub mod progress;
pub mod put;
mod resume;
pub mod session;

use cap::CapError;

/// The exit codes of the client commands, for their `--help`.
pub const EXIT_CODES: &str = "Exit codes: 0 success; 1 any other failure (HTTP errors, a failed \
placement, no such object, local I/O); 2 the capability is not one or is damaged; 3 the gateway \
could not be reached; 4 fewer than k shards could be fetched; 130 interrupted (Ctrl-C or SIGTERM).";

/// Why a client command failed, shaped by what the user does next.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Mistyped or truncated: ask for the capability again.
    #[error(transparent)]
    Capability(#[from] CapError),
    /// Nothing answered: check the URL or the network.
    #[error("gateway {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    /// The gateway answered with an error.
    #[error("gateway answered {status} {code}: {message}")]
    Http {
        status: u16,
        code: String,
        message: String,
    },
    /// `_cap` answers 404 for an absent object and a wrong manifest hash alike.
    #[error("no such object (or the capability does not match it)")]
    NoSuchObject,
    /// The gateway's answer contradicts the capability or itself.
    #[error("the gateway's answer cannot be trusted: {0}")]
    Untrusted(String),
    #[error("placement failed: {0}")]
    PlacementFailed(String),
    #[error("only {reachable} of the {needed} shards needed could be fetched ({listed} of {total} shards had holders listed)")]
    NotEnoughShards {
        reachable: usize,
        needed: usize,
        listed: usize,
        total: usize,
    },
    /// Ctrl-C or SIGTERM: what was begun was undone, so the same command can simply run again.
    #[error("interrupted: {0}")]
    Interrupted(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl ClientError {
    /// The process exit code for this error (see [`EXIT_CODES`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Capability(_) => 2,
            ClientError::Unreachable { .. } => 3,
            ClientError::NotEnoughShards { .. } => 4,
            ClientError::Interrupted(_) => 130,
            _ => 1,
        }
    }
}

impl From<keyring::KeyringError> for ClientError {
    fn from(e: keyring::KeyringError) -> Self {
        ClientError::Other(e.into())
    }
}

impl From<journal::JournalError> for ClientError {
    fn from(e: journal::JournalError) -> Self {
        ClientError::Other(e.into())
    }
}

/// An object's name, `bucket/key`: the key may itself contain `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName {
    pub bucket: String,
    pub key: String,
}

impl ObjectName {
    /// Splits `bucket/key` at its first `/`; both parts must be non-empty.
    pub fn parse(s: &str) -> Result<Self, ClientError> {
        match s.split_once('/') {
            Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok(ObjectName {
                bucket: b.to_owned(),
                key: k.to_owned(),
            }),
            _ => Err(ClientError::Other(anyhow::anyhow!(
                "{s:?} is not BUCKET/KEY"
            ))),
        }
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.bucket, self.key)
    }
}

/// `s` with every byte but ASCII letters, digits and `-._~` and the bytes of `keep`
/// percent-encoded, as the object API decodes paths and queries.
pub fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        let n = ObjectName::parse("photos/2026/cat.jpg").unwrap();
        assert_eq!(
            (n.bucket.as_str(), n.key.as_str()),
            ("photos", "2026/cat.jpg")
        );
        assert_eq!(n.to_string(), "photos/2026/cat.jpg");
        for bad in ["photos", "photos/", "/key", ""] {
            assert!(ObjectName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_encoding_keeps_slashes_only_when_asked() {
        assert_eq!(percent_encode("a b/c%", b"/"), "a%20b/c%25");
        assert_eq!(percent_encode("a/b", b""), "a%2Fb");
        assert_eq!(percent_encode("é", b""), "%C3%A9");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(ClientError::from(CapError::Prefix).exit_code(), 2);
        let unreachable = ClientError::Unreachable {
            url: "http://x".into(),
            reason: "refused".into(),
        };
        assert_eq!(unreachable.exit_code(), 3);
        assert_eq!(ClientError::NoSuchObject.exit_code(), 1);
        assert_eq!(ClientError::Interrupted("x".into()).exit_code(), 130);
    }
}
