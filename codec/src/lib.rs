//! raidtorrent's codec: an object becomes encrypted Reed-Solomon shards, each shard one private
//! BitTorrent v1 torrent; any k of the k + m shards give the object back, and any k rebuild a lost
//! shard byte for byte without the data key ([`rebuild()`]).
//!
//! Pure and synchronous: `Read` and `Write` at the edges, no sockets, no async runtime. Work inside a
//! segment (sealing, coding, hashing) is spread over every core with rayon.
//!
//! ```
//! use raidtorrent_codec::{decode, encode, DataKey, Geometry, KeyRef, ShardInput};
//!
//! let object = b"hello, volunteer cloud".repeat(1000);
//! let geometry = Geometry::choose(4, 2, 1 << 20, Some(object.len() as u64)).unwrap();
//! let key = DataKey::generate().unwrap();
//! let mut shards = vec![Vec::new(); 6];
//! let encoded = encode(geometry, &key, &object[..], &mut shards).unwrap();
//! let infos = encoded.shard_infos();
//! let manifest = encoded.manifest(KeyRef::Client { fingerprint: key.fingerprint() }, &infos);
//!
//! // Lose any two shards: the object still comes back.
//! let inputs = (0..6)
//!     .map(|i| (i != 1 && i != 4).then(|| ShardInput {
//!         info: &infos[i],
//!         reader: std::io::Cursor::new(&shards[i]),
//!     }))
//!     .collect();
//! let mut back = Vec::new();
//! decode(&manifest, &key, inputs, &mut back).unwrap();
//! assert_eq!(back, object);
//! ```

pub mod bencode;
pub mod crypto;
pub mod decode;
pub mod encode;
pub mod layout;
pub mod manifest;
pub mod metainfo;
pub mod rebuild;
pub mod sealed;
mod segment;

pub use crypto::{CryptoError, DataKey, MasterKey, WrappedKey};
pub use decode::{
    decode, decode_range, DecodeError, DecodeReport, Sequential, ShardInput, ShardReader,
};
pub use encode::{encode, EncodeError, Encoded, SegmentEncoder};
pub use layout::{Geometry, Layout, LayoutError, RangePlan, DEFAULT_SEGMENT_TARGET};
pub use manifest::{KeyRef, Manifest, ManifestError, ShardRef};
pub use metainfo::{InfoHash, Metainfo, MetainfoError, ShardInfo};
pub use rebuild::{rebuild, RebuildError, RebuildReport, RebuildTarget};
pub use sealed::SealedError;
