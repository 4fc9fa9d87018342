//! Object → shards → object, under loss, corruption and tampering.

use std::io::Cursor;

use proptest::prelude::*;
use raidtorrent_codec::layout::{CHUNK_PLAINTEXT, MIN_PIECE_LENGTH};
use raidtorrent_codec::*;
use raidtorrent_testkit::random_bytes;

struct Stored {
    object: Vec<u8>,
    key: DataKey,
    shards: Vec<Vec<u8>>,
    infos: Vec<ShardInfo>,
    manifest: Manifest,
}

fn store(object: Vec<u8>, k: u16, m: u16, segment_target: u64) -> Stored {
    let geometry = Geometry::choose(k, m, segment_target, Some(object.len() as u64)).unwrap();
    let key = DataKey::generate().unwrap();
    let mut shards = vec![Vec::new(); geometry.shard_count()];
    let encoded = encode(geometry, &key, &object[..], &mut shards).unwrap();
    let infos = encoded.shard_infos();
    let manifest = encoded.manifest(
        KeyRef::Client {
            fingerprint: key.fingerprint(),
        },
        &infos,
    );
    Stored {
        object,
        key,
        shards,
        infos,
        manifest,
    }
}

impl Stored {
    fn inputs(&self, missing: &[usize]) -> Vec<Option<ShardInput<'_, Cursor<&[u8]>>>> {
        (0..self.shards.len())
            .map(|i| {
                (!missing.contains(&i)).then(|| ShardInput {
                    info: &self.infos[i],
                    reader: Cursor::new(&self.shards[i][..]),
                })
            })
            .collect()
    }

    fn get(&self, missing: &[usize]) -> Result<(Vec<u8>, DecodeReport), DecodeError> {
        let mut out = Vec::new();
        let report = decode(&self.manifest, &self.key, self.inputs(missing), &mut out)?;
        Ok((out, report))
    }
}

/// Sizes around the boundaries that matter: empty, one byte, chunk and segment edges.
fn sizes(segment: u64) -> Vec<usize> {
    let c = CHUNK_PLAINTEXT as usize;
    let s = segment as usize;
    vec![0, 1, c - 1, c, c + 1, s - 1, s, s + 1, 2 * s, 2 * s + 7]
}

#[test]
fn boundary_sizes_round_trip() {
    for (k, m) in [(1, 1), (4, 2), (3, 5)] {
        let g = Geometry::choose(k, m, 256 * 1024, None).unwrap();
        for len in sizes(g.segment_size) {
            let s = store(random_bytes(len, 7), k, m, 256 * 1024);
            assert_eq!(
                s.manifest.layout.geometry, g,
                "the hint must not change segment size here"
            );
            let (back, report) = s.get(&[]).unwrap();
            assert!(back == s.object, "k={k} m={m} len={len}");
            assert_eq!(report, DecodeReport::default());
            assert!(s
                .shards
                .iter()
                .all(|sh| sh.len() as u64 == s.manifest.layout.shard_len()));
        }
    }
}

#[test]
fn every_choice_of_m_missing_shards_rebuilds() {
    let s = store(random_bytes(700_000, 3), 3, 3, 128 * 1024);
    let n = 6;
    for a in 0..n {
        for b in a + 1..n {
            for c in b + 1..n {
                let (back, report) = s.get(&[a, b, c]).unwrap();
                assert!(back == s.object, "missing {a},{b},{c}");
                if a < 3 {
                    assert!(report.rebuilt_segments > 0);
                }
            }
        }
    }
    match s.get(&[0, 1, 2, 3]) {
        Err(DecodeError::NotEnoughShards {
            available: 2,
            needed: 3,
            ..
        }) => {}
        other => panic!("expected NotEnoughShards, got {other:?}"),
    }
}

#[test]
fn a_flipped_bit_is_caught_by_its_piece_hash_and_the_shard_is_worked_around() {
    let mut s = store(random_bytes(1_000_000, 9), 4, 2, 256 * 1024);
    let at = 3 * MIN_PIECE_LENGTH as usize + 5;
    s.shards[1][at] ^= 0x10;
    let (back, report) = s.get(&[]).unwrap();
    assert!(back == s.object);
    assert_eq!(
        report.bad_pieces,
        vec![(1, at as u64 / s.manifest.layout.geometry.piece_length)]
    );
    assert!(report.rebuilt_segments >= 1);
}

#[test]
fn tampered_ciphertext_with_forged_piece_hashes_is_an_error_not_wrong_bytes() {
    let mut s = store(random_bytes(300_000, 1), 2, 1, 256 * 1024);
    s.shards[0][100] ^= 1;
    // An attacker who also rewrites the piece hashes gets past the torrent layer...
    let piece_length = s.infos[0].piece_length as usize;
    s.infos[0].pieces[0] = sha1_of(&s.shards[0][..piece_length]);
    // ...but the manifest pins the info-hash,
    assert!(matches!(
        s.get(&[]),
        Err(DecodeError::WrongShard { index: 0, .. })
    ));
    // and with a manifest that trusts the forged torrent, AES-GCM still refuses the bytes.
    s.manifest.shards[0].info_hash = s.infos[0].info_hash();
    assert!(matches!(
        s.get(&[]),
        Err(DecodeError::Unauthentic {
            segment: 0,
            chunk: 0
        })
    ));
}

fn sha1_of(b: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(b).into()
}

#[test]
fn wrong_key_is_named() {
    let s = store(random_bytes(10, 1), 2, 1, 256 * 1024);
    let other = DataKey::generate().unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        decode(&s.manifest, &other, s.inputs(&[]), &mut out),
        Err(DecodeError::WrongKey)
    ));
}

#[test]
fn a_failing_reader_counts_as_a_missing_shard() {
    struct Broken;
    impl ShardReader for Broken {
        fn read_at(&mut self, _: u64, _: &mut [u8]) -> std::io::Result<()> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    enum Either<'a> {
        Good(Cursor<&'a [u8]>),
        Bad(Broken),
    }
    impl ShardReader for Either<'_> {
        fn read_at(&mut self, o: u64, b: &mut [u8]) -> std::io::Result<()> {
            match self {
                Either::Good(c) => c.read_at(o, b),
                Either::Bad(x) => x.read_at(o, b),
            }
        }
    }
    let s = store(random_bytes(900_000, 2), 2, 2, 256 * 1024);
    let inputs = (0..4)
        .map(|i| {
            Some(ShardInput {
                info: &s.infos[i],
                reader: if i == 0 {
                    Either::Bad(Broken)
                } else {
                    Either::Good(Cursor::new(&s.shards[i][..]))
                },
            })
        })
        .collect();
    let mut out = Vec::new();
    let report = decode(&s.manifest, &s.key, inputs, &mut out).unwrap();
    assert!(out == s.object);
    assert_eq!(report.failed_shards.len(), 1);
    assert_eq!(report.failed_shards[0].0, 0);
}

#[test]
fn sequential_sources_decode_too() {
    let s = store(random_bytes(1_500_000, 4), 3, 2, 256 * 1024);
    let inputs = (0..5)
        .map(|i| {
            (i != 0).then(|| ShardInput {
                info: &s.infos[i],
                reader: Sequential::new(&s.shards[i][..]),
            })
        })
        .collect();
    let mut out = Vec::new();
    decode(&s.manifest, &s.key, inputs, &mut out).unwrap();
    assert!(out == s.object);
}

#[test]
fn truncating_the_object_by_whole_segments_is_detected() {
    // Drop the last segment from every shard and from the manifest's size: the new last chunk was not
    // sealed as last, so authentication fails.
    let mut s = store(random_bytes(600_000, 5), 2, 1, 256 * 1024);
    let g = s.manifest.layout.geometry;
    let keep = s.manifest.layout.block_offset(1);
    for sh in &mut s.shards {
        sh.truncate(keep as usize);
    }
    let layout = Layout::new(g, g.segment_size).unwrap();
    s.infos = s
        .infos
        .iter()
        .map(|i| ShardInfo {
            length: keep,
            pieces: i.pieces[..(keep / g.piece_length) as usize].to_vec(),
            ..i.clone()
        })
        .collect();
    s.manifest.layout = layout;
    for (r, i) in s.manifest.shards.iter_mut().zip(&s.infos) {
        r.info_hash = i.info_hash();
        r.length = keep;
    }
    let mut out = Vec::new();
    let r = decode_range(
        &s.manifest,
        &s.key,
        s.inputs(&[]),
        0..g.segment_size,
        &mut out,
    );
    assert!(
        matches!(r, Err(DecodeError::Unauthentic { segment: 0, .. })),
        "{r:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_objects_round_trip_with_random_losses(
        len in 0usize..1_200_000,
        k in 1u16..8,
        m in 1u16..5,
        seed in any::<u64>(),
        lose in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let s = store(random_bytes(len, seed), k, m, 128 * 1024);
        let n = usize::from(k + m);
        let mut missing: Vec<usize> = lose.iter().map(|i| i.index(n)).collect();
        missing.sort();
        missing.dedup();
        missing.truncate(usize::from(m));
        let (back, _) = s.get(&missing).unwrap();
        prop_assert!(back == s.object);
    }

    #[test]
    fn ranged_reads_return_exactly_the_slice(
        len in 1usize..1_000_000,
        k in 1u16..6,
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
        lose_first in any::<bool>(),
    ) {
        let s = store(random_bytes(len, 11), k, 2, 128 * 1024);
        let (x, y) = (a.index(len + 1), b.index(len + 1));
        let (start, end) = (x.min(y), x.max(y));
        let missing = if lose_first { vec![0] } else { vec![] };
        let mut out = Vec::new();
        decode_range(&s.manifest, &s.key, s.inputs(&missing), start as u64..end as u64, &mut out).unwrap();
        prop_assert!(out[..] == s.object[start..end]);
    }
}

/// A writer that blocks until it is let go, as a client that stopped reading.
struct Stalled(std::sync::mpsc::Receiver<()>);

impl std::io::Write for Stalled {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.recv();
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn decodes_whose_clients_stopped_reading_do_not_stall_the_others() {
    let stored = std::sync::Arc::new(store(random_bytes(2 << 20, 3), 4, 2, 256 << 10));
    // More stalled decodes than the pool has threads, each holding its second segment.
    let stalled = rayon::current_num_threads() + 1;
    let mut release = Vec::new();
    let mut stuck = Vec::new();
    for _ in 0..stalled {
        let (tx, rx) = std::sync::mpsc::channel();
        release.push(tx);
        let stored = stored.clone();
        stuck.push(std::thread::spawn(move || {
            let out = Stalled(rx);
            decode(&stored.manifest, &stored.key, stored.inputs(&[]), out).map(drop)
        }));
    }
    // Another read goes through meanwhile.
    let (done, finished) = std::sync::mpsc::channel();
    let other = stored.clone();
    std::thread::spawn(move || {
        let _ = done.send(other.get(&[0]).map(|(out, _)| out == other.object));
    });
    let other = finished.recv_timeout(std::time::Duration::from_secs(60));
    assert!(
        matches!(other, Ok(Ok(true))),
        "a read behind stalled ones did not finish: {other:?}"
    );
    // Every stalled client may go on; each of its decodes completes.
    drop(release);
    for s in stuck {
        s.join().unwrap().unwrap();
    }
}
