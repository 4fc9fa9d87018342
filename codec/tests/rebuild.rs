//! Lost shards rebuilt from the others: byte-identical, verified, and refused when they cannot be.

use std::io::Cursor;

use proptest::prelude::*;
use raidtorrent_codec::layout::MIN_PIECE_LENGTH;
use raidtorrent_codec::*;
use raidtorrent_testkit::random_bytes;
use sha1::{Digest, Sha1};

struct Stored {
    shards: Vec<Vec<u8>>,
    infos: Vec<ShardInfo>,
    manifest: Manifest,
}

fn store(object: &[u8], k: u16, m: u16, segment_target: u64) -> Stored {
    let geometry = Geometry::choose(k, m, segment_target, Some(object.len() as u64)).unwrap();
    let key = DataKey::generate().unwrap();
    let mut shards = vec![Vec::new(); geometry.shard_count()];
    let encoded = encode(geometry, &key, object, &mut shards).unwrap();
    let infos = encoded.shard_infos();
    let manifest = encoded.manifest(
        KeyRef::Client {
            fingerprint: key.fingerprint(),
        },
        &infos,
    );
    Stored {
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

    fn targets(&self, indices: &[usize]) -> Vec<RebuildTarget<'_>> {
        indices
            .iter()
            .map(|&index| RebuildTarget {
                index,
                info: &self.infos[index],
            })
            .collect()
    }

    /// Rebuilds `lost` from every other shard.
    fn rebuild(&self, lost: &[usize]) -> Result<(Vec<Vec<u8>>, RebuildReport), RebuildError> {
        self.rebuild_from(self.inputs(lost), lost)
    }

    fn rebuild_from(
        &self,
        inputs: Vec<Option<ShardInput<'_, Cursor<&[u8]>>>>,
        lost: &[usize],
    ) -> Result<(Vec<Vec<u8>>, RebuildReport), RebuildError> {
        let mut outputs = vec![Vec::new(); lost.len()];
        let report = rebuild(&self.manifest, inputs, &self.targets(lost), &mut outputs)?;
        Ok((outputs, report))
    }
}

/// The SHA-1 of every piece of `bytes`, computed here rather than by the codec.
fn piece_hashes(bytes: &[u8], piece_length: u64) -> Vec<[u8; 20]> {
    bytes
        .chunks(piece_length as usize)
        .map(|p| Sha1::digest(p).into())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn lost_shards_come_back_byte_for_byte(
        len in 0usize..1_200_000,
        k in 1u16..8,
        m in 1u16..5,
        target in prop_oneof![Just(64u64 * 1024), Just(128 * 1024), Just(300 * 1024)],
        seed in any::<u64>(),
        lose in proptest::collection::vec(any::<prop::sample::Index>(), 1..5),
    ) {
        let s = store(&random_bytes(len, seed), k, m, target);
        let n = usize::from(k + m);
        let mut lost: Vec<usize> = lose.iter().map(|i| i.index(n)).collect();
        lost.sort();
        lost.dedup();
        lost.truncate(usize::from(m));
        let (rebuilt, report) = s.rebuild(&lost).unwrap();
        prop_assert_eq!(report.segments, s.manifest.layout.segment_count());
        prop_assert!(report.bad_pieces.is_empty() && report.failed_shards.is_empty());
        // Exactly k blocks of every segment were read, no more.
        prop_assert_eq!(report.bytes_read, u64::from(k) * s.manifest.layout.shard_len());
        for (bytes, &i) in rebuilt.iter().zip(&lost) {
            prop_assert!(*bytes == s.shards[i], "shard {} differs", i);
            prop_assert_eq!(&piece_hashes(bytes, s.infos[i].piece_length), &s.infos[i].pieces);
        }
    }
}

#[test]
fn a_parity_shard_and_a_data_shard_together() {
    let s = store(&random_bytes(2_000_000, 1), 4, 2, 256 * 1024);
    assert!(s.manifest.layout.segment_count() > 2);
    for lost in [[0, 5], [5, 0], [4, 5], [1, 2]] {
        let (rebuilt, _) = s.rebuild(&lost).unwrap();
        assert!(rebuilt[0] == s.shards[lost[0]], "{lost:?}");
        assert!(rebuilt[1] == s.shards[lost[1]], "{lost:?}");
    }
}

#[test]
fn a_corrupted_input_piece_is_worked_around_when_enough_others_remain() {
    let mut s = store(&random_bytes(1_500_000, 2), 4, 2, 256 * 1024);
    let piece = s.manifest.layout.geometry.piece_length;
    let at = 5 * MIN_PIECE_LENGTH as usize + 3;
    s.shards[1][at] ^= 0x40;
    let (rebuilt, report) = s.rebuild(&[0]).unwrap();
    assert!(rebuilt[0] == s.shards[0]);
    assert_eq!(report.bad_pieces, vec![(1, at as u64 / piece)]);
    // The segment holding the bad piece read a fifth input in place of the bad one.
    let layout = s.manifest.layout;
    let extra = layout.block_len(at as u64 / layout.geometry.block_size);
    assert_eq!(report.bytes_read, 4 * layout.shard_len() + extra);
}

#[test]
fn too_many_missing_is_named_with_the_segment() {
    let s = store(&random_bytes(900_000, 3), 4, 2, 256 * 1024);
    match s.rebuild_from(s.inputs(&[0, 1, 2]), &[0, 1]) {
        Err(RebuildError::NotEnoughShards {
            segment: 0,
            available: 3,
            needed: 4,
            ..
        }) => {}
        other => panic!("expected NotEnoughShards, got {other:?}"),
    }

    // Enough shards, but a bad piece in segment 1 leaves that segment one short.
    let mut s = s;
    let block = s.manifest.layout.geometry.block_size as usize;
    s.shards[3][block + 10] ^= 1;
    match s.rebuild_from(s.inputs(&[0, 1]), &[0, 1]) {
        Err(RebuildError::NotEnoughShards {
            segment: 1,
            available: 3,
            needed: 4,
            report,
        }) => {
            let piece = s.manifest.layout.geometry.piece_length;
            assert_eq!(report.bad_pieces, vec![(3, (block as u64 + 10) / piece)]);
        }
        other => panic!("expected NotEnoughShards in segment 1, got {other:?}"),
    }
}

#[test]
fn a_targets_own_bytes_are_never_read() {
    let mut s = store(&random_bytes(700_000, 4), 3, 2, 128 * 1024);
    let original = s.shards[4].clone();
    s.shards[4].iter_mut().for_each(|b| *b = !*b);
    let (rebuilt, report) = s.rebuild_from(s.inputs(&[]), &[4]).unwrap();
    assert!(rebuilt[0] == original);
    assert!(report.bad_pieces.is_empty());
}

#[test]
fn forward_only_sources_rebuild_too() {
    let s = store(&random_bytes(1_100_000, 5), 3, 2, 128 * 1024);
    let inputs = (0..5)
        .map(|i| {
            (i != 1).then(|| ShardInput {
                info: &s.infos[i],
                reader: Sequential::new(&s.shards[i][..]),
            })
        })
        .collect();
    let mut out = vec![Vec::new()];
    rebuild(&s.manifest, inputs, &s.targets(&[1]), &mut out).unwrap();
    assert!(out[0] == s.shards[1]);
}

#[test]
fn a_failing_reader_is_reported_and_replaced() {
    struct Flaky<'a> {
        bytes: &'a [u8],
        broken: bool,
    }
    impl ShardReader for Flaky<'_> {
        fn read_at(&mut self, o: u64, b: &mut [u8]) -> std::io::Result<()> {
            if self.broken {
                return Err(std::io::Error::other("disk on fire"));
            }
            Cursor::new(self.bytes).read_at(o, b)
        }
    }
    let s = store(&random_bytes(800_000, 6), 2, 2, 128 * 1024);
    let inputs = (0..4)
        .map(|i| {
            (i != 0).then(|| ShardInput {
                info: &s.infos[i],
                reader: Flaky {
                    bytes: &s.shards[i],
                    broken: i == 1,
                },
            })
        })
        .collect();
    let mut out = vec![Vec::new()];
    let report = rebuild(&s.manifest, inputs, &s.targets(&[0]), &mut out).unwrap();
    assert!(out[0] == s.shards[0]);
    assert_eq!(report.failed_shards.len(), 1);
    assert_eq!(report.failed_shards[0].0, 1);
}

#[test]
fn shards_that_disagree_with_the_manifest_are_an_error_not_a_different_shard() {
    // Two encodings of the same bytes under different keys: each is self-consistent, but a manifest
    // that names shard 0 of the first and the rest of the second describes no real object.
    let bytes = random_bytes(600_000, 7);
    let a = store(&bytes, 3, 2, 128 * 1024);
    let mut b = store(&bytes, 3, 2, 128 * 1024);
    b.infos[0] = a.infos[0].clone();
    b.manifest.shards[0].info_hash = a.infos[0].info_hash();
    match b.rebuild(&[0]) {
        Err(RebuildError::Mismatch { index: 0, piece: 0 }) => {}
        other => panic!("expected Mismatch, got {other:?}"),
    }
}

#[test]
fn bad_requests_are_named() {
    let s = store(&random_bytes(100_000, 8), 2, 1, 128 * 1024);
    let mut one = vec![Vec::new()];
    let mut two = vec![Vec::new(), Vec::new()];
    let wrong_target = [RebuildTarget {
        index: 0,
        info: &s.infos[1],
    }];
    assert!(matches!(
        rebuild(
            &s.manifest,
            s.inputs(&[0]),
            &[RebuildTarget {
                index: 3,
                info: &s.infos[0],
            }],
            &mut one
        ),
        Err(RebuildError::BadTarget {
            index: 3,
            shards: 3
        })
    ));
    assert!(matches!(
        rebuild(&s.manifest, s.inputs(&[0]), &s.targets(&[0, 0]), &mut two),
        Err(RebuildError::BadTarget { index: 0, .. })
    ));
    assert!(matches!(
        rebuild(&s.manifest, s.inputs(&[0]), &s.targets(&[0]), &mut two),
        Err(RebuildError::OutputCount {
            expected: 1,
            actual: 2
        })
    ));
    assert!(matches!(
        rebuild(&s.manifest, s.inputs(&[0]), &wrong_target, &mut one),
        Err(RebuildError::WrongShard { index: 0, .. })
    ));
    let mut short = s.inputs(&[0]);
    short.pop();
    assert!(matches!(
        rebuild(&s.manifest, short, &s.targets(&[0]), &mut one),
        Err(RebuildError::ShardCount {
            expected: 3,
            actual: 2
        })
    ));
}

#[test]
fn a_failing_output_is_named() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::StorageFull.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let s = store(&random_bytes(100_000, 9), 2, 2, 128 * 1024);
    let mut outputs = [Full];
    assert!(matches!(
        rebuild(&s.manifest, s.inputs(&[3]), &s.targets(&[3]), &mut outputs),
        Err(RebuildError::Write { index: 3, .. })
    ));
}
