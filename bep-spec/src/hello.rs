//! The BEP 10 extended handshakes (extended id 0) of a control connection. The gateway speaks first
//! ([`GatewayHello`], with the nonce the node signs); the node answers with its facts and proof
//! ([`NodeHello`]). Keys other than those below, and other extensions in `m`, are ignored.
//!
//! The node's proof covers its whole extended handshake as sent: it is computed over the payload
//! with the proof's own 32 bytes set to zero ([`NodeHello::sign`]), and the gateway checks it over
//! the bytes it received with those 32 bytes zeroed ([`NodeHello::unsigned_payload`]), so no
//! re-encoding is involved and keys the gateway does not know are covered too.

use raidtorrent_codec::bencode::{self, BencodeError, Dict, Value};

use crate::auth::{self, Nonce, Proof, Transcript};
use crate::bencode_out::{DictOut, Out};
use crate::fields::{self, FieldError};
use crate::EXTENSION_NAME;

/// The gateway's extended handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayHello {
    /// Extended id the gateway receives placement messages on (1..=255).
    pub ext_id: u8,
    /// `v`: software and version.
    pub client: Option<String>,
    /// Highest placement protocol version the gateway speaks.
    pub ver: u64,
    pub nonce: Nonce,
}

/// The node's extended handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHello {
    /// Extended id the node receives placement messages on (1..=255).
    pub ext_id: u8,
    pub client: Option<String>,
    /// `p`: the node's BitTorrent data port.
    pub data_port: Option<u16>,
    pub facts: NodeFacts,
}

/// The `rt` dictionary of a node's extended handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub ver: u64,
    pub node: u64,
    pub nonce: Nonce,
    pub proof: Proof,
    pub zone: String,
    pub capacity: u64,
    pub free: u64,
}

/// Why an extended handshake does not open a placement session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    #[error("extended handshake is not bencode: {0}")]
    Bencode(#[from] BencodeError),
    #[error("extended handshake is not a dictionary")]
    NotADict,
    #[error("the peer does not advertise {EXTENSION_NAME}")]
    NoPlacement,
    #[error("extended handshake has no `rt` dictionary: not a raidtorrent peer")]
    NoFacts,
    #[error("extended handshake: {0}")]
    Field(#[from] FieldError),
}

fn top(payload: &[u8]) -> Result<bencode::Value<'_>, HelloError> {
    Ok(bencode::decode(payload)?)
}

/// The peer's extended id for `rt_placement`; 0 means "disabled" in BEP 10.
fn placement_id(d: &Dict<'_>) -> Result<u8, HelloError> {
    let Some(m) = d.get("m") else {
        return Err(HelloError::NoPlacement);
    };
    let m = m.dict("m").map_err(FieldError::from)?;
    let Some(id) = m.get(EXTENSION_NAME) else {
        return Err(HelloError::NoPlacement);
    };
    match id.u64("m.rt_placement").map_err(FieldError::from)? {
        0 => Err(HelloError::NoPlacement),
        n => u8::try_from(n).map_err(|_| {
            FieldError::OutOfRange {
                field: "m.rt_placement",
            }
            .into()
        }),
    }
}

fn facts<'v, 'a>(d: &'v Dict<'a>) -> Result<&'v Dict<'a>, HelloError> {
    match d.get("rt") {
        None => Err(HelloError::NoFacts),
        Some(v) => Ok(v.dict("rt").map_err(FieldError::from)?),
    }
}

fn m_dict(ext_id: u8) -> Out {
    DictOut::default()
        .put(EXTENSION_NAME, Out::Int(ext_id.into()))
        .done()
}

impl GatewayHello {
    pub fn parse(payload: &[u8]) -> Result<Self, HelloError> {
        let v = top(payload)?;
        let d = fields::as_dict(&v).ok_or(HelloError::NotADict)?;
        let ext_id = placement_id(d)?;
        let rt = facts(d)?;
        Ok(GatewayHello {
            ext_id,
            client: fields::opt_string(d, "v")?,
            ver: fields::u64_of(rt, "ver")?,
            nonce: fields::fixed(rt, "nonce")?,
        })
    }

    pub fn to_payload(&self) -> Vec<u8> {
        let rt = DictOut::default()
            .put("nonce", Out::bytes(&self.nonce))
            .put("ver", Out::uint(self.ver))
            .done();
        DictOut::default()
            .put("m", m_dict(self.ext_id))
            .put("rt", rt)
            .put_opt("v", self.client.as_deref().map(Out::str))
            .done()
            .encode()
    }
}

impl NodeHello {
    /// Fills `facts.proof` for the gateway's hello (`gateway_payload`: its bytes as received) and
    /// returns the transcript both sides derive the session keys from. Send `to_payload()` after.
    pub fn sign(
        &mut self,
        passkey: &str,
        gateway_nonce: &Nonce,
        gateway_payload: &[u8],
    ) -> Transcript {
        self.facts.proof = [0; auth::PROOF_LEN];
        let t = Transcript::new(
            gateway_nonce,
            &self.facts.nonce,
            gateway_payload,
            &self.to_payload(),
        );
        self.facts.proof = auth::node_proof(passkey, &t);
        t
    }

    /// A received node hello with the 32 bytes of its `rt.proof` set to zero: what the proof was
    /// computed over.
    pub fn unsigned_payload(payload: &[u8]) -> Result<Vec<u8>, HelloError> {
        let v = top(payload)?;
        let d = fields::as_dict(&v).ok_or(HelloError::NotADict)?;
        let rt = facts(d)?;
        fields::fixed::<{ auth::PROOF_LEN }>(rt, "proof")?;
        let Some(Value::Bytes(proof)) = rt.get("proof") else {
            return Err(FieldError::Missing("proof").into());
        };
        // The decoder borrows every byte string from `payload`, so this is the proof's offset.
        let at = (proof.as_ptr() as usize)
            .checked_sub(payload.as_ptr() as usize)
            .filter(|at| at + auth::PROOF_LEN <= payload.len())
            .ok_or(FieldError::Missing("proof"))?;
        let mut out = payload.to_vec();
        out[at..at + auth::PROOF_LEN].fill(0);
        Ok(out)
    }

    pub fn parse(payload: &[u8]) -> Result<Self, HelloError> {
        let v = top(payload)?;
        let d = fields::as_dict(&v).ok_or(HelloError::NotADict)?;
        let ext_id = placement_id(d)?;
        let rt = facts(d)?;
        let data_port = fields::opt_u64(d, "p")?
            .map(|p| u16::try_from(p).map_err(|_| FieldError::OutOfRange { field: "p" }))
            .transpose()?;
        Ok(NodeHello {
            ext_id,
            client: fields::opt_string(d, "v")?,
            data_port,
            facts: NodeFacts {
                ver: fields::u64_of(rt, "ver")?,
                node: fields::u64_of(rt, "node")?,
                nonce: fields::fixed(rt, "nonce")?,
                proof: fields::fixed(rt, "proof")?,
                zone: fields::opt_string(rt, "zone")?.unwrap_or_default(),
                capacity: fields::u64_of(rt, "capacity")?,
                free: fields::u64_of(rt, "free")?,
            },
        })
    }

    pub fn to_payload(&self) -> Vec<u8> {
        let f = &self.facts;
        let rt = DictOut::default()
            .put("capacity", Out::uint(f.capacity))
            .put("free", Out::uint(f.free))
            .put("node", Out::uint(f.node))
            .put("nonce", Out::bytes(&f.nonce))
            .put("proof", Out::bytes(&f.proof))
            .put("ver", Out::uint(f.ver))
            .put("zone", Out::str(&f.zone))
            .done();
        DictOut::default()
            .put("m", m_dict(self.ext_id))
            .put_opt("p", self.data_port.map(|p| Out::Int(p.into())))
            .put("rt", rt)
            .put_opt("v", self.client.as_deref().map(Out::str))
            .done()
            .encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_stock_client_hello_is_not_a_placement_peer() {
        // What libtorrent sends: other extensions, no rt_placement.
        let stock = b"d1:md11:ut_metadatai2e6:ut_pexi1ee1:pi6881e1:v16:libtorrent 2.0.8e";
        assert_eq!(NodeHello::parse(stock), Err(HelloError::NoPlacement));
        assert_eq!(GatewayHello::parse(stock), Err(HelloError::NoPlacement));
        assert_eq!(
            NodeHello::parse(b"d1:md12:rt_placementi0eee"),
            Err(HelloError::NoPlacement)
        );
        assert_eq!(
            NodeHello::parse(b"d1:md12:rt_placementi1eee"),
            Err(HelloError::NoFacts)
        );
        assert_eq!(
            NodeHello::parse(b"d1:md12:rt_placementi256eee"),
            Err(HelloError::Field(FieldError::OutOfRange {
                field: "m.rt_placement"
            }))
        );
    }

    #[test]
    fn gateway_hello_has_the_documented_length() {
        let h = GatewayHello {
            ext_id: 3,
            client: Some("raidtorrent-tracker 0.1.0".into()),
            ver: 1,
            nonce: [0; 32],
        };
        assert_eq!(h.to_payload().len(), 112);
    }

    pub(crate) fn any_node_hello() -> impl Strategy<Value = NodeHello> {
        (
            1u8..,
            proptest::option::of(".{0,20}"),
            proptest::option::of(any::<u16>()),
            (
                0u64..1 << 62,
                0u64..1 << 62,
                any::<[u8; 32]>(),
                any::<[u8; 32]>(),
            ),
            (".{0,30}", 0u64..1 << 62, 0u64..1 << 62),
        )
            .prop_map(
                |(ext_id, client, data_port, (ver, node, nonce, proof), (zone, capacity, free))| {
                    NodeHello {
                        ext_id,
                        client,
                        data_port,
                        facts: NodeFacts {
                            ver,
                            node,
                            nonce,
                            proof,
                            zone,
                            capacity,
                            free,
                        },
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn node_hellos_round_trip(h in any_node_hello()) {
            prop_assert_eq!(NodeHello::parse(&h.to_payload()), Ok(h));
        }

        /// The gateway's view of what the node signed is exactly what the node signed, whatever
        /// the other fields hold (even bytes that look like a proof).
        #[test]
        fn signing_covers_the_hello_as_sent(mut h in any_node_hello(), g in any::<[u8; 32]>()) {
            h.client = Some(format!("5:proof32:{}", "x".repeat(32)));
            let t = h.sign("0123456789abcdef0123456789abcdef", &g, b"gateway hello");
            let sent = h.to_payload();
            let unsigned = NodeHello::unsigned_payload(&sent).unwrap();
            let again = Transcript::new(&g, &h.facts.nonce, b"gateway hello", &unsigned);
            prop_assert_eq!(again, t);
            prop_assert!(auth::verify_node_proof("0123456789abcdef0123456789abcdef", &t, &h.facts.proof));
            // Another zone in the same bytes no longer verifies.
            let mut other = h.clone();
            other.facts.zone.push('!');
            let unsigned = NodeHello::unsigned_payload(&other.to_payload()).unwrap();
            let forged = Transcript::new(&g, &h.facts.nonce, b"gateway hello", &unsigned);
            prop_assert!(!auth::verify_node_proof("0123456789abcdef0123456789abcdef", &forged, &h.facts.proof));
        }

        #[test]
        fn gateway_hellos_round_trip(ext_id in 1u8.., client in proptest::option::of(".{0,20}"), ver in 0u64..1 << 62, nonce: [u8; 32]) {
            let h = GatewayHello { ext_id, client, ver, nonce };
            prop_assert_eq!(GatewayHello::parse(&h.to_payload()), Ok(h));
        }
    }
}
