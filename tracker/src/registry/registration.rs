//! What an operator assigns a node when registering it, stored in the `nodes` table: its zone and
//! the most capacity it may offer. These are the facts placement trusts; the node's own claims in
//! its control handshake are checked against them (`crate::control`), never taken instead.

use serde::{Deserialize, Serialize};

use super::{unix_now, NewNode, Node, NodeId, Registry, RegistryError};

/// Longest zone label accepted, in characters.
const MAX_ZONE: usize = 128;

/// The facts an operator assigns a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The node's location label (e.g. `eu-west/paris/home-3`). `None`: not assigned, and then
    /// the node counts as in no zone at all (the empty zone) whatever it claims.
    #[serde(default)]
    pub zone: Option<String>,
    /// Most bytes the node may offer; it may claim less, never more. `None`: its claim.
    #[serde(default)]
    pub capacity_limit: Option<u64>,
}

impl Registration {
    pub fn validate(&self) -> Result<(), RegistryError> {
        if let Some(zone) = &self.zone {
            if zone.is_empty()
                || zone.chars().count() > MAX_ZONE
                || zone.chars().any(char::is_control)
            {
                return Err(RegistryError::BadRegistration(format!(
                    "zone must be 1 to {MAX_ZONE} printable characters"
                )));
            }
        }
        if self.capacity_limit == Some(0) || self.capacity_limit > Some(i64::MAX as u64) {
            return Err(RegistryError::BadRegistration(
                "capacity_limit must be a positive number of bytes".into(),
            ));
        }
        Ok(())
    }
}

/// The columns a [`Node`] is read from, in [`NodeRow`] order.
pub(super) const NODE_COLUMNS: &str = "id, name, created_at, revoked_at, zone, capacity_limit";

pub(super) type NodeRow = (
    NodeId,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

impl From<NodeRow> for Node {
    fn from((id, name, created_at, revoked_at, zone, limit): NodeRow) -> Self {
        Node {
            id,
            name,
            created_at,
            revoked_at,
            registration: Registration {
                zone,
                capacity_limit: limit.and_then(|l| u64::try_from(l).ok()),
            },
        }
    }
}

impl Registry {
    /// Registers a node with the facts its operator assigns and returns it with a new random
    /// passkey.
    pub async fn register_node(
        &self,
        name: &str,
        registration: &Registration,
    ) -> Result<NewNode, RegistryError> {
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(RegistryError::BadName);
        }
        registration.validate()?;
        let mut raw = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| RegistryError::Random)?;
        let passkey = hex::encode(raw);
        let created_at = unix_now();
        let id: NodeId = sqlx::query_scalar(
            "INSERT INTO nodes (name, passkey, created_at, zone, capacity_limit)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(&passkey)
        .bind(created_at)
        .bind(&registration.zone)
        .bind(registration.capacity_limit.map(|l| l as i64))
        .fetch_one(self.writer())
        .await?;
        self.tokens_mut().insert(id, &passkey, false);
        self.standing_changed();
        Ok(NewNode {
            announce_token: raidtorrent_proto::auth::announce_token(&passkey),
            node: Node {
                id,
                name: name.to_owned(),
                created_at,
                revoked_at: None,
                registration: registration.clone(),
            },
            passkey,
        })
    }

    /// Assigns a registered node new facts; they apply from its next control connection.
    pub async fn set_registration(
        &self,
        id: NodeId,
        registration: &Registration,
    ) -> Result<Node, RegistryError> {
        registration.validate()?;
        let done = sqlx::query("UPDATE nodes SET zone = $1, capacity_limit = $2 WHERE id = $3")
            .bind(&registration.zone)
            .bind(registration.capacity_limit.map(|l| l as i64))
            .bind(id)
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::NoSuchNode(id));
        }
        self.node(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registered_facts_are_stored_validated_and_changed() {
        let r = Registry::open_in_memory().await.unwrap();
        let facts = Registration {
            zone: Some("eu/paris".into()),
            capacity_limit: Some(10 << 30),
        };
        let n = r.register_node("alpha", &facts).await.unwrap();
        assert_eq!(n.node.registration, facts);
        assert_eq!(r.node(n.node.id).await.unwrap().registration, facts);
        let plain = r.create_node("beta").await.unwrap();
        assert_eq!(
            r.node(plain.node.id).await.unwrap().registration,
            Registration::default()
        );
        let moved = Registration {
            zone: Some("eu/lyon".into()),
            capacity_limit: None,
        };
        assert_eq!(
            r.set_registration(plain.node.id, &moved)
                .await
                .unwrap()
                .registration,
            moved
        );
        assert!(matches!(
            r.set_registration(999, &moved).await,
            Err(RegistryError::NoSuchNode(999))
        ));
        for bad in [
            Registration {
                zone: Some(String::new()),
                capacity_limit: None,
            },
            Registration {
                zone: Some("a\nb".into()),
                capacity_limit: None,
            },
            Registration {
                zone: None,
                capacity_limit: Some(0),
            },
        ] {
            assert!(matches!(
                r.register_node("gamma", &bad).await,
                Err(RegistryError::BadRegistration(_))
            ));
        }
        let json = serde_json::to_value(r.node(n.node.id).await.unwrap()).unwrap();
        assert_eq!(json["zone"], "eu/paris");
        assert_eq!(json["capacity_limit"], 10u64 << 30);
    }
}
