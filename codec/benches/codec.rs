//! Codec throughput against the bound that matters: SHA-1 over the bytes the write path must hash.
//!
//! For each code, in one run: `sha1-bound` hashes object × (k+m)/k bytes in pieces on every core (the
//! least work any writer of these shard torrents must do); `encode` seals, codes and hashes the object;
//! `decode` reads it back from all shards; `rebuild` reads it back with m data shards missing;
//! `rebuild-shard` rewrites lost shard 0 from k others (no key), which must hash k + 1 shards, so its
//! own SHA-1 bound is `sha1-bound` × (k+m)/(k+1).
//! All are reported as GB/s of object, and the ratios are printed at the end, with the content hash
//! the encoder must compute (`sha256`, sequential, one core) beside what BLAKE3 would cost
//! (`blake3` on one core, `blake3-rayon` on every core) for the same object.
//!
//! `cargo bench -p raidtorrent-codec --bench codec`

use std::io::{self, Cursor};
use std::path::PathBuf;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use raidtorrent_codec::*;
use raidtorrent_testkit::random_bytes;
use rayon::prelude::*;
use sha1::{Digest, Sha1};
use sha2::Sha256;

const SIZE: usize = 256 << 20;
const CODES: [(u16, u16); 2] = [(4, 2), (10, 4)];

fn output_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion")
}

fn bench(c: &mut Criterion) {
    // Incompressible enough, and fast to make.
    let object = random_bytes(SIZE, 1);
    let key = DataKey::generate().unwrap();
    let mut group = c.benchmark_group("codec");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(SIZE as u64));

    content_hashes(&mut group, &object);
    for (k, m) in CODES {
        let id = format!("k{k}m{m}");
        let geometry = Geometry::choose(k, m, DEFAULT_SEGMENT_TARGET, Some(SIZE as u64)).unwrap();
        let n = geometry.shard_count();

        let shard_bytes = SIZE * n / usize::from(k);
        let piece = geometry.piece_length as usize;
        group.bench_function(BenchmarkId::new("sha1-bound", &id), |b| {
            b.iter(|| {
                (0..shard_bytes.div_ceil(piece))
                    .into_par_iter()
                    .map(|p| {
                        let at = p * piece % SIZE;
                        Sha1::digest(&object[at..(at + piece).min(SIZE)])[0]
                    })
                    .reduce(|| 0, |a, b| a ^ b)
            })
        });

        let mut sinks: Vec<io::Sink> = (0..n).map(|_| io::sink()).collect();
        group.bench_function(BenchmarkId::new("encode", &id), |b| {
            b.iter(|| encode(geometry, &key, &object[..], &mut sinks).unwrap())
        });

        let mut shards = vec![Vec::with_capacity(SIZE / usize::from(k) + (8 << 20)); n];
        let encoded = encode(geometry, &key, &object[..], &mut shards).unwrap();
        let infos = encoded.shard_infos();
        let manifest = encoded.manifest(
            KeyRef::Client {
                fingerprint: key.fingerprint(),
            },
            &infos,
        );
        let inputs = |missing: usize| {
            (0..n)
                .map(|i| {
                    (i >= missing).then(|| ShardInput {
                        info: &infos[i],
                        reader: Cursor::new(&shards[i][..]),
                    })
                })
                .collect::<Vec<_>>()
        };
        group.bench_function(BenchmarkId::new("decode", &id), |b| {
            b.iter(|| decode(&manifest, &key, inputs(0), io::sink()).unwrap())
        });
        group.bench_function(BenchmarkId::new("rebuild", &id), |b| {
            b.iter(|| decode(&manifest, &key, inputs(usize::from(m)), io::sink()).unwrap())
        });
        let lost = [RebuildTarget {
            index: 0,
            info: &infos[0],
        }];
        let mut out = [io::sink()];
        group.bench_function(BenchmarkId::new("rebuild-shard", &id), |b| {
            b.iter(|| rebuild(&manifest, inputs(1), &lost, &mut out).unwrap())
        });
    }
    group.finish();
}

/// The plaintext content hash as the manifest stores it (SHA-256), against BLAKE3.
fn content_hashes(group: &mut BenchmarkGroup<'_, WallTime>, object: &[u8]) {
    group.bench_function("sha256", |b| b.iter(|| Sha256::digest(object)));
    group.bench_function("blake3", |b| b.iter(|| blake3::hash(object)));
    group.bench_function("blake3-rayon", |b| {
        b.iter(|| blake3::Hasher::new().update_rayon(object).finalize())
    });
}

/// Mean time of one benchmark from criterion's saved estimates, if this run measured it.
fn mean_seconds(function: &str, id: &str) -> Option<f64> {
    let path = output_dir().join(format!("codec/{function}{id}/new/estimates.json"));
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(json["mean"]["point_estimate"].as_f64()? / 1e9)
}

fn report() {
    println!(
        "\ncodec throughput, GB/s of object ({} MiB), and ratios:",
        SIZE >> 20
    );
    let hash = |f: &str| mean_seconds(f, "").map(|s| SIZE as f64 / s / 1e9);
    if let (Some(sha), Some(b3), Some(b3r)) = (hash("sha256"), hash("blake3"), hash("blake3-rayon"))
    {
        println!(
            "  content hash: sha256 {sha:.2}  blake3 {b3:.2} (one core)  blake3-rayon {b3r:.2}"
        );
    }
    for (k, m) in CODES {
        let id = format!("k{k}m{m}");
        let get = |f: &str| mean_seconds(f, &format!("/{id}")).map(|s| SIZE as f64 / s / 1e9);
        let (Some(bound), Some(enc), Some(dec), Some(reb), Some(shard)) = (
            get("sha1-bound"),
            get("encode"),
            get("decode"),
            get("rebuild"),
            get("rebuild-shard"),
        ) else {
            println!("  {id}: no estimates (run without --test to measure)");
            continue;
        };
        println!(
            "  ({k},{m}): sha1-bound {bound:.2}  encode {enc:.2} ({:.0}% of bound)  decode {dec:.2}  rebuild {reb:.2} ({:.0}% of encode)",
            100.0 * enc / bound,
            100.0 * reb / enc
        );
        let shard_bound = bound * f64::from(k + m) / f64::from(k + 1);
        println!(
            "         rebuild-shard {shard:.2} ({:.0}% of its SHA-1 bound {shard_bound:.2})",
            100.0 * shard / shard_bound
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().output_directory(&output_dir());
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        report();
    }
}
