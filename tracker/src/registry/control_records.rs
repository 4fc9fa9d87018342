//! What the control listener (`crate::control`) needs from the registry: a node's passkey by id, to
//! check the HMAC proof a node sends on its control connection (RT-0002 section 4), and the facts
//! its operator assigned it, to check its claims against. The proof is keyed by the passkey, so
//! the gateway must know it by the node id the node claims.

use super::{NodeId, Registration, Registry, RegistryError};

/// A node's standing, looked up by id.
#[derive(Clone, PartialEq, Eq)]
pub enum NodePasskey {
    Valid(String, Registration),
    Revoked,
    Unknown,
}

impl std::fmt::Debug for NodePasskey {
    // The passkey is a secret: keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodePasskey::Valid(_, r) => write!(f, "Valid(.., {r:?})"),
            NodePasskey::Revoked => f.write_str("Revoked"),
            NodePasskey::Unknown => f.write_str("Unknown"),
        }
    }
}

impl Registry {
    /// The passkey and registered facts of node `id`. From the database by primary key:
    /// authentications are rare next to announces, and a gateway restart that brings every node
    /// back at once stays linear.
    pub async fn passkey_of(&self, id: NodeId) -> Result<NodePasskey, RegistryError> {
        type Row = (String, Option<i64>, Option<String>, Option<i64>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT passkey, revoked_at, zone, capacity_limit FROM nodes WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        Ok(match row {
            None => NodePasskey::Unknown,
            Some((_, Some(_), _, _)) => NodePasskey::Revoked,
            Some((passkey, None, zone, limit)) => {
                let capacity_limit = limit.and_then(|l| u64::try_from(l).ok());
                NodePasskey::Valid(
                    passkey,
                    Registration {
                        zone,
                        capacity_limit,
                    },
                )
            }
        })
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
        assert_eq!(
            r.passkey_of(a.node.id).await.unwrap(),
            NodePasskey::Valid(a.passkey, Registration::default())
        );
        assert_eq!(
            r.passkey_of(b.node.id).await.unwrap(),
            NodePasskey::Valid(b.passkey, Registration::default())
        );
        assert_eq!(
            r.passkey_of(b.node.id + 1).await.unwrap(),
            NodePasskey::Unknown
        );
        r.revoke(a.node.id).await.unwrap();
        assert_eq!(r.passkey_of(a.node.id).await.unwrap(), NodePasskey::Revoked);
        assert_eq!(
            format!("{:?}", r.passkey_of(b.node.id).await.unwrap()),
            "Valid(.., Registration { zone: None, capacity_limit: None })"
        );
    }
}
