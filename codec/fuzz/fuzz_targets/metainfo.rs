#![no_main]
//! Untrusted metainfo: parsing never panics, and whatever parses as a shard torrent re-encodes to the
//! same info-hash.
use libfuzzer_sys::fuzz_target;
use raidtorrent_codec::Metainfo;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Metainfo::parse(data) {
        if let Ok(shard) = m.shard() {
            assert_eq!(shard.info_hash(), m.info_hash);
        }
    }
});
