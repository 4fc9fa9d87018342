//! The shards of a fixed object under a fixed key are pinned: whatever the encoder does to go faster,
//! it must write the very bytes (and piece hashes, and content hash) that nodes already hold.

use raidtorrent_codec::layout::CHUNK_PLAINTEXT;
use raidtorrent_codec::*;
use raidtorrent_testkit::random_bytes;
use sha2::{Digest, Sha256};

/// SHA-256 over everything an encoding produced: each shard's bytes, its piece hashes, and the
/// object's content hash.
fn fingerprint(k: u16, m: u16, segment_target: u64, size: usize) -> String {
    let object = random_bytes(size, 7 + size as u64);
    let geometry = Geometry::choose(k, m, segment_target, Some(size as u64)).unwrap();
    let key = DataKey::from_bytes([0x5a; 32]);
    let mut shards = vec![Vec::new(); geometry.shard_count()];
    let encoded = encode(geometry, &key, &object[..], &mut shards).unwrap();
    let mut h = Sha256::new();
    for (shard, pieces) in shards.iter().zip(&encoded.pieces) {
        h.update((shard.len() as u64).to_be_bytes());
        h.update(shard);
        pieces.iter().for_each(|p| h.update(p));
    }
    h.update(encoded.sha256);
    hex::encode(h.finalize())
}

/// Computed by the encoder as it was before it was made faster (commit 794f68f), one per case.
const WANT: [&str; 7] = [
    "42b84e11eee741c2e2aa5dc2da54bbd3c4732c1ad89d1b69645ff1cce6db2bc8",
    "afefff30bb0d5a028266fc1715fbbb6559247d634417d3554485ca9888f281db",
    "a3dd9a7fa2ace16ec8cef9b8caf8bc6db7f11bb6fce13e6ad29563bf56ba91cb",
    "57978898fb6d65432d11122f1dff88e5d66fce53c41e3e2c07249c0631843077",
    "292f01f748459da3bcbed8075aded8372bd37bb26608c1cfa60216e4116f2fdd",
    "71f87a03ca796a2bea0ea2e6f636d3a68a67d6f4efe0e63a2477db902c746d37",
    "709706e83f556c5e9bd4801bbfc202613cb0b918b143b8e8847389cebeed82fd",
];

#[test]
fn shards_are_byte_for_byte_what_they_were() {
    let c = CHUNK_PLAINTEXT as usize;
    // (k, m, segment target, object size): empty, one byte, a chunk and a bit, several segments
    // with a short last one, an exact number of segments, and the default segment size.
    let cases: [(u16, u16, u64, usize); 7] = [
        (4, 2, 1 << 20, 0),
        (4, 2, 1 << 20, 1),
        (4, 2, 1 << 20, c + 17),
        (4, 2, 1 << 20, 5 * (1 << 20) + 12345),
        (10, 4, 1 << 20, 3 * (1 << 20)),
        (2, 1, 4 << 20, 9 * (1 << 20) - 3),
        (4, 2, DEFAULT_SEGMENT_TARGET, 70 << 20),
    ];
    for ((k, m, seg, size), want) in cases.into_iter().zip(WANT) {
        let got = fingerprint(k, m, seg, size);
        assert_eq!(got, want, "({k},{m}) segment target {seg}, {size} bytes");
    }
}
