//! What the control listener (`crate::control`) needs from the registry: a node's passkey by id, to
//! check the HMAC proof a node sends on its control connection (RT-0002 section 4). The proof is
//! keyed by the passkey, so the gateway must know it by the node id the node claims.

use super::{NodeId, Registry};

/// A node's standing, looked up by id.
#[derive(Clone, PartialEq, Eq)]
pub enum NodePasskey {
    Valid(String),
    Revoked,
    Unknown,
}

impl std::fmt::Debug for NodePasskey {
    // The passkey is a secret: keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodePasskey::Valid(_) => f.write_str("Valid(..)"),
            NodePasskey::Revoked => f.write_str("Revoked"),
            NodePasskey::Unknown => f.write_str("Unknown"),
        }
    }
}

impl Registry {
    /// The passkey of node `id`, from the in-memory map (no database round trip). A scan: node
    /// connections are rare next to announces, and the map stays the one place revocations land.
    pub fn passkey_of(&self, id: NodeId) -> NodePasskey {
        let map = self.passkeys.read().unwrap_or_else(|e| e.into_inner());
        map.iter().find(|(_, (node, _))| *node == id).map_or(
            NodePasskey::Unknown,
            |(key, (_, revoked))| {
                if *revoked {
                    NodePasskey::Revoked
                } else {
                    NodePasskey::Valid(String::from_utf8_lossy(key).into_owned())
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passkeys_are_found_by_node_id() {
        let r = Registry::open_in_memory().await.unwrap();
        let a = r.create_node("alpha").await.unwrap();
        let b = r.create_node("beta").await.unwrap();
        assert_eq!(r.passkey_of(a.node.id), NodePasskey::Valid(a.passkey));
        assert_eq!(r.passkey_of(b.node.id), NodePasskey::Valid(b.passkey));
        assert_eq!(r.passkey_of(b.node.id + 1), NodePasskey::Unknown);
        r.revoke(a.node.id).await.unwrap();
        assert_eq!(r.passkey_of(a.node.id), NodePasskey::Revoked);
        assert_eq!(format!("{:?}", r.passkey_of(b.node.id)), "Valid(..)");
    }
}
