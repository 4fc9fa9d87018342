//! A client placement as a stranger sends it (RT-0004 §2): the JSON body, and the manifest and
//! info dicts it carries, checked against each other and a (4, 2) bucket. Nothing may panic; what
//! is accepted names one info dict per shard of the manifest, each with the manifest's info-hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raidtorrent_tracker::api::client_shards;
use raidtorrent_tracker::gateway::model::{Bucket, BucketPolicy};
use raidtorrent_tracker::gateway::{check_client_shards, ClientShards};

/// Separates the manifest and the info dicts when the input is taken raw.
const SEPARATOR: &[u8] = b"\xff\xfe";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let req = match mode & 1 {
        0 => match client_shards(rest) {
            Ok(req) => req,
            Err(_) => return,
        },
        _ => raw(rest),
    };
    let bucket = Bucket {
        name: "b".into(),
        policy: BucketPolicy {
            k: 4,
            m: 2,
            copies: 2,
            high_share: 0.0,
            inline_max: 0,
        },
        created_at: 0,
    };
    if let Ok((manifest, infos)) = check_client_shards(&bucket, &req, 1 << 40) {
        assert_eq!(infos.len(), manifest.shards.len());
        for (info, shard) in infos.iter().zip(&manifest.shards) {
            assert_eq!(info.info_hash(), shard.info_hash);
        }
    }
});

/// The manifest and info dicts as raw bytes, so the fuzzer reaches their parsers without JSON
/// and base64 in the way.
fn raw(data: &[u8]) -> ClientShards {
    let mut parts = split(data).into_iter();
    ClientShards {
        manifest: parts.next().unwrap_or_default(),
        infos: parts.collect(),
        peers: Vec::new(),
    }
}

fn split(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        out.push(rest[..at].to_vec());
        rest = &rest[at + SEPARATOR.len()..];
    }
    out.push(rest.to_vec());
    out
}
