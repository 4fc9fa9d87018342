//! The metadata store's queries against a real (in-memory) SQLite with the real migrations.

use super::{Abandon, Meta, NewObject, ShardRow, StoredBody};
use crate::gateway::{BucketPolicy, GatewayError};
use crate::registry::Registry;

const POLICY: BucketPolicy = BucketPolicy {
    k: 4,
    m: 2,
    copies: 2,
    high_share: 0.5,
    inline_max: 4096,
};

/// A gateway starting with nobody else alive.
const AT_START: Abandon = Abandon::AtStart {
    own: "me",
    alive_since: 0,
};

fn meta(registry: Registry) -> (Registry, Meta) {
    let meta = Meta::new(registry.db().clone());
    (registry, meta)
}

fn shard(n: u8) -> ShardRow {
    ShardRow {
        info_hash: raidtorrent_codec::InfoHash([n; 20]),
        idx: n.into(),
        length: 1000,
        info: vec![n; 10],
    }
}

/// Records shard `n` pending and commits it as the one-shard swarm object `bucket`/`key` of
/// `size` bytes.
async fn commit_one_shard(m: &Meta, bucket: &str, key: &str, n: u8, size: u64) {
    m.begin_shards(&[shard(n)], 1).await.unwrap();
    let object = NewObject {
        bucket,
        key,
        size,
        sha256: &[n; 32],
        attrs: None,
        placed_by: None,
        body: StoredBody::Swarm {
            manifest: b"m",
            shards: &[shard(n).info_hash],
        },
    };
    m.commit_object(&object, 2).await.unwrap();
}

async fn buckets_are_unique_and_keep_their_policy(db: Registry) {
    let (_r, m) = meta(db);
    m.create_bucket("photos", &POLICY, 1).await.unwrap();
    assert!(matches!(
        m.create_bucket("photos", &POLICY, 2).await,
        Err(GatewayError::BucketExists(_))
    ));
    assert_eq!(m.bucket("photos").await.unwrap().policy, POLICY);
    assert!(matches!(
        m.bucket("nope").await,
        Err(GatewayError::NoSuchBucket(_))
    ));
}

async fn replacing_an_object_orphans_the_old_shards_in_the_same_step(db: Registry) {
    let (registry, m) = meta(db);
    let node = registry.create_node("n1").await.unwrap().node.id;
    m.create_bucket("b-1", &POLICY, 1).await.unwrap();
    m.begin_shards(&[shard(1), shard(2)], 1).await.unwrap();
    assert!(m.add_holding(&shard(1).info_hash, node, 1).await.unwrap());
    let hashes = vec![shard(1).info_hash, shard(2).info_hash];
    let swarm = |manifest, shards| NewObject {
        bucket: "b-1",
        key: "k",
        size: 10,
        sha256: &[7; 32],
        attrs: None,
        placed_by: None,
        body: StoredBody::Swarm { manifest, shards },
    };
    m.commit_object(&swarm(b"manifest", &hashes), 2)
        .await
        .unwrap();
    let row = m.object("b-1", "k").await.unwrap();
    assert_eq!(m.shards_of(row.id).await.unwrap().len(), 2);
    assert!(m.orphans(10).await.unwrap().is_empty());

    // An inline object replaces it: the two shards become orphans, with their holders.
    let inline = NewObject {
        bucket: "b-1",
        key: "k",
        size: 3,
        sha256: &[8; 32],
        attrs: None,
        placed_by: None,
        body: StoredBody::Inline(b"abc"),
    };
    let info = m.commit_object(&inline, 3).await.unwrap();
    assert!(info.inline);
    let orphans = m.orphans(10).await.unwrap();
    assert_eq!(orphans.len(), 2);
    assert!(orphans.contains(&(shard(1).info_hash, vec![node])));
    // A copy confirmed now, for an orphan, does not count but is recorded for the collector.
    assert!(!m.add_holding(&shard(2).info_hash, node, 3).await.unwrap());
    assert!(m
        .add_orphan_holding(&shard(2).info_hash, node, 3)
        .await
        .unwrap());
    assert!(m
        .orphans(10)
        .await
        .unwrap()
        .contains(&(shard(2).info_hash, vec![node])));
    m.remove_holding(&shard(2).info_hash, node).await.unwrap();

    // An orphan is forgotten only once no node holds it.
    m.forget_orphan(&shard(1).info_hash).await.unwrap();
    assert_eq!(m.orphans(10).await.unwrap().len(), 2);
    m.remove_holding(&shard(1).info_hash, node).await.unwrap();
    m.forget_orphan(&shard(1).info_hash).await.unwrap();
    m.forget_orphan(&shard(2).info_hash).await.unwrap();
    assert!(m.orphans(10).await.unwrap().is_empty());
    // A copy of a shard that is not recorded at all is not recorded either.
    assert!(!m.add_holding(&shard(1).info_hash, node, 4).await.unwrap());
    assert!(!m
        .add_orphan_holding(&shard(1).info_hash, node, 4)
        .await
        .unwrap());
    assert!(m.holders(&shard(1).info_hash).await.unwrap().is_empty());
}

async fn a_commit_of_shards_that_are_not_pending_changes_nothing(db: Registry) {
    let (_r, m) = meta(db);
    m.create_bucket("b-1", &POLICY, 1).await.unwrap();
    let object = NewObject {
        bucket: "b-1",
        key: "k",
        size: 10,
        sha256: &[7; 32],
        attrs: None,
        placed_by: None,
        body: StoredBody::Swarm {
            manifest: b"m",
            shards: &[shard(9).info_hash],
        },
    };
    let err = m.commit_object(&object, 2).await;
    assert!(matches!(err, Err(GatewayError::Internal(_))));
    assert!(matches!(
        m.object("b-1", "k").await,
        Err(GatewayError::NoSuchKey(_))
    ));
}

async fn pending_uploads_are_abandoned_at_start(db: Registry) {
    let (_r, m) = meta(db);
    m.begin_shards(&[shard(3)], 1).await.unwrap();
    assert_eq!(m.abandon_pending(AT_START).await.unwrap(), 1);
    assert_eq!(m.orphans(10).await.unwrap().len(), 1);
}

async fn the_work_lease_has_one_holder_until_it_expires_or_is_given_up(db: Registry) {
    let (_r, m) = meta(db);
    assert_eq!(m.lease_holder("work").await.unwrap(), None);
    // (who tries, when, whether they hold it after, why); each try asks for 30 s.
    let tries = [
        ("a", 100, true, "free: a takes it"),
        ("b", 110, false, "a holds it"),
        ("a", 120, true, "a renews"),
        ("b", 150, false, "renewed until 150"),
        ("b", 151, true, "expired: b takes over"),
        ("a", 152, false, "a lost it"),
    ];
    for (who, at, held, why) in tries {
        assert_eq!(
            m.take_lease("work", who, at, 30).await.unwrap(),
            held,
            "{why}"
        );
    }
    let until = m.lease_holder("work").await.unwrap();
    assert_eq!(until, Some(("b".to_owned(), 181)));
    m.release_lease("work", "a").await.unwrap();
    let after_a_gave_up = m.take_lease("work", "a", 153, 30).await.unwrap();
    assert!(!after_a_gave_up, "only the holder gives it up");
    m.release_lease("work", "b").await.unwrap();
    let after_b_gave_up = m.take_lease("work", "a", 154, 30).await.unwrap();
    assert!(after_b_gave_up, "given up: a takes it at once");
    let other = m.take_lease("other", "b", 154, 30).await.unwrap();
    assert!(other, "leases are separate");
}

async fn only_uploads_of_this_gateway_and_of_gone_ones_are_abandoned(db: Registry) {
    let (r, _) = meta(db);
    let me = Meta::new(r.db().clone()).for_gateway("me");
    let alive = Meta::new(r.db().clone()).for_gateway("alive");
    let gone = Meta::new(r.db().clone()).for_gateway("gone");
    me.gateway_alive("me", 1, 100).await.unwrap();
    alive.gateway_alive("alive", 1, 100).await.unwrap();
    gone.gateway_alive("gone", 1, 60).await.unwrap();
    assert!(me.others_alive("me", 70).await.unwrap());
    assert!(
        !me.others_alive("me", 101).await.unwrap(),
        "all silent since"
    );
    me.begin_shards(&[shard(1)], 1).await.unwrap();
    alive.begin_shards(&[shard(2)], 1).await.unwrap();
    gone.begin_shards(&[shard(3)], 1).await.unwrap();
    Meta::new(r.db().clone())
        .begin_shards(&[shard(4)], 1)
        .await
        .unwrap();
    let pending = |ns: &[u8]| ns.iter().map(|&n| shard(n).info_hash).collect();
    assert_eq!(me.pending_shards().await.unwrap(), pending(&[1, 2, 3, 4]));

    // The lease holder, while running: only the gone gateway's.
    let running = Abandon::Gone { alive_since: 70 };
    assert_eq!(me.abandon_pending(running).await.unwrap(), 1);
    assert_eq!(me.pending_shards().await.unwrap(), pending(&[1, 2, 4]));
    // A gateway starting: its own and unnamed ones, never a living gateway's.
    let start = Abandon::AtStart {
        own: "me",
        alive_since: 70,
    };
    assert_eq!(me.abandon_pending(start).await.unwrap(), 2);
    assert_eq!(me.pending_shards().await.unwrap(), pending(&[2]));
    // Once "alive" goes silent too, its upload goes.
    let later = Abandon::Gone { alive_since: 101 };
    assert_eq!(me.abandon_pending(later).await.unwrap(), 1);
    assert!(me.pending_shards().await.unwrap().is_empty());
    assert_eq!(me.orphans(10).await.unwrap().len(), 4);
}

async fn loose_parts_of_a_living_gateway_stay_until_it_is_gone(db: Registry) {
    let (r, m) = meta(db);
    m.create_bucket("big", &POLICY, 1).await.unwrap();
    let parts = m
        .part_bucket(&m.bucket("big").await.unwrap())
        .await
        .unwrap();
    let alive = Meta::new(r.db().clone()).for_gateway("alive");
    alive.gateway_alive("alive", 1, 100).await.unwrap();
    // A part of an upload in flight on "alive", and one of nobody's.
    for (n, by) in [(1u8, &alive), (2, &m)] {
        commit_one_shard(by, &parts.name, &format!("up/{n}"), n, 4).await;
    }
    let running = Abandon::Gone { alive_since: 70 };
    assert_eq!(m.drop_loose_parts(running).await.unwrap(), 0);
    let start = Abandon::AtStart {
        own: "me",
        alive_since: 70,
    };
    assert_eq!(m.drop_loose_parts(start).await.unwrap(), 1, "nobody's part");
    let later = Abandon::Gone { alive_since: 101 };
    assert_eq!(m.drop_loose_parts(later).await.unwrap(), 1, "alive went");
    assert_eq!(m.orphans(10).await.unwrap().len(), 2);
}

async fn listing_by_prefix_in_key_order(db: Registry) {
    let (_r, m) = meta(db);
    m.create_bucket("b-1", &POLICY, 1).await.unwrap();
    for key in ["a/1", "a/2", "a/3", "b/1", "a%", "a_"] {
        let object = NewObject {
            bucket: "b-1",
            key,
            size: 1,
            sha256: &[0; 32],
            attrs: None,
            placed_by: None,
            body: StoredBody::Inline(b"x"),
        };
        m.commit_object(&object, 1).await.unwrap();
    }
    let keys =
        |v: Vec<crate::gateway::ObjectInfo>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
    assert_eq!(
        keys(m.list("b-1", "a/", "", 10).await.unwrap()),
        ["a/1", "a/2", "a/3"]
    );
    assert_eq!(keys(m.list("b-1", "a/", "a/1", 1).await.unwrap()), ["a/2"]);
    // `%` and `_` are plain characters in prefixes.
    assert_eq!(keys(m.list("b-1", "a%", "", 10).await.unwrap()), ["a%"]);
    assert_eq!(m.list("b-1", "", "", 100).await.unwrap().len(), 6);
    m.delete_object("b-1", "a/2").await.unwrap();
    assert!(matches!(
        m.delete_object("b-1", "a/2").await,
        Err(GatewayError::NoSuchKey(_))
    ));
}

async fn small_objects_stored_in_plaintext_are_sealed_once(db: Registry) {
    let (registry, m) = meta(db);
    m.create_bucket("b-1", &POLICY, 1).await.unwrap();
    // A row as a gateway wrote it before small objects were sealed.
    sqlx::query(
        "INSERT INTO objects (bucket, key, size, sha256, created_at, inline_data)
         VALUES ('b-1', 'old', 5, $1, 1, $2)",
    )
    .bind(&[0u8][..])
    .bind(&b"hello"[..])
    .execute(registry.writer())
    .await
    .unwrap();
    let master = raidtorrent_codec::MasterKey::new("master-1", &[3; 32]).unwrap();
    assert_eq!(m.seal_plain_inline(&master).await.unwrap(), 1);
    assert_eq!(
        m.seal_plain_inline(&master).await.unwrap(),
        0,
        "sealed once"
    );
    let row = m.object("b-1", "old").await.unwrap();
    assert!(row.inline_sealed);
    let stored = row.inline_data.unwrap();
    assert!(!stored.windows(5).any(|w| w == b"hello"));
    let opened = raidtorrent_codec::sealed::open(&master, &stored).unwrap();
    assert_eq!(opened, b"hello");
}

async fn recorded_copies_are_listed_per_node_whatever_the_shard_state(db: Registry) {
    let (registry, m) = meta(db);
    let a = registry.create_node("a").await.unwrap().node.id;
    let b = registry.create_node("b").await.unwrap().node.id;
    m.begin_shards(&[shard(1), shard(2)], 1).await.unwrap();
    let (one, two) = (shard(1).info_hash, shard(2).info_hash);
    assert!(m.add_holding(&one, a, 1).await.unwrap());
    assert!(m.add_holding(&two, b, 1).await.unwrap());
    // The upload fails: its shards are orphans, and their copies stay recorded for the collector.
    m.abandon_shards(&[one, two]).await.unwrap();
    assert!(m.is_recorded(&one, a).await.unwrap());
    assert!(!m.is_recorded(&one, b).await.unwrap());
    let on_a = m.recorded_on(&[a]).await.unwrap();
    assert_eq!(on_a, [(one, a)].into_iter().collect());
    let both = m.recorded_on(&[a, b]).await.unwrap();
    assert_eq!(both, [(one, a), (two, b)].into_iter().collect());
    m.remove_holding(&one, a).await.unwrap();
    assert!(!m.is_recorded(&one, a).await.unwrap());
}

async fn the_health_pass_loads_the_same_objects_by_id_by_shard_and_whole(db: Registry) {
    let (registry, m) = meta(db);
    let node = registry.create_node("a").await.unwrap().node.id;
    m.create_bucket("b", &POLICY, 1).await.unwrap();
    let mut ids = Vec::new();
    for (key, n) in [("x", 1u8), ("y", 3)] {
        m.begin_shards(&[shard(n), shard(n + 1)], 1).await.unwrap();
        assert!(m.add_holding(&shard(n).info_hash, node, 1).await.unwrap());
        let o = NewObject {
            bucket: "b",
            key,
            size: 10,
            sha256: &[n; 32],
            attrs: None,
            placed_by: None,
            body: StoredBody::Swarm {
                manifest: b"m",
                shards: &[shard(n).info_hash, shard(n + 1).info_hash],
            },
        };
        m.commit_object(&o, 2).await.unwrap();
        ids.push(m.object("b", key).await.unwrap().id);
    }
    let whole = m.health_snapshot().await.unwrap();
    assert_eq!(whole.len(), 2);
    assert_eq!(whole[0].shards[0].copies.len(), 1);
    assert_eq!(m.objects_state(&ids).await.unwrap(), whole);
    assert_eq!(m.objects_state(&ids[1..]).await.unwrap(), whole[1..]);
    let by_shard = [shard(4).info_hash, shard(1).info_hash, shard(9).info_hash];
    assert_eq!(m.objects_of_shards(&by_shard).await.unwrap(), ids);
}

/// Commits an object of `size` bytes waiting for a pack, its "sealed" bytes `data`.
async fn wait_for_pack(m: &Meta, key: &str, data: &[u8]) -> i64 {
    let o = NewObject {
        bucket: "small",
        key,
        size: data.len() as u64,
        sha256: &[1; 32],
        attrs: None,
        placed_by: None,
        body: StoredBody::Waiting(data),
    };
    let info = m.commit_object(&o, 5).await.unwrap();
    assert_eq!(info.storage, crate::gateway::model::Storage::Waiting);
    assert!(!info.inline);
    m.object("small", key).await.unwrap().id
}

async fn a_pack_lives_while_an_object_refers_to_it_and_members_always_have_their_bytes(
    db: Registry,
) {
    use crate::gateway::model::Storage;
    let (_r, m) = meta(db);
    let bucket = m.create_bucket("small", &POLICY, 1).await.unwrap();
    let a = wait_for_pack(&m, "a", b"aaaaa").await;
    let b = wait_for_pack(&m, "b", b"bbb").await;
    let waiting = m.waiting_buckets().await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!((waiting[0].objects, waiting[0].bytes), (2, 8));
    assert_eq!(m.waiting("small", 5).await.unwrap().len(), 1);
    assert_eq!(m.waiting("small", 8).await.unwrap().len(), 2);

    // The pack bucket is the gateway's own: clients neither see nor reach it.
    let packs = m.pack_bucket(&bucket).await.unwrap();
    assert_eq!(packs.policy, POLICY);
    assert!(matches!(
        m.bucket(&packs.name).await,
        Err(GatewayError::NoSuchBucket(_))
    ));
    assert_eq!(m.buckets().await.unwrap().len(), 1);

    m.begin_shards(&[shard(1)], 1).await.unwrap();
    let pack = NewObject {
        bucket: &packs.name,
        key: "p1",
        size: 8,
        sha256: &[9; 32],
        attrs: None,
        placed_by: None,
        body: StoredBody::Swarm {
            manifest: b"m",
            shards: &[shard(1).info_hash],
        },
    };
    m.commit_object(&pack, 6).await.unwrap();
    let p = m.object(&packs.name, "p1").await.unwrap().id;
    // "b" was replaced meanwhile: only "a" is settled, "b" keeps waiting.
    let b2 = wait_for_pack(&m, "b", b"BBB").await;
    assert_ne!(b, b2);
    assert_eq!(m.settle_pack(p, &[(a, 0..5), (b, 5..8)]).await.unwrap(), 1);
    let row = m.object("small", "a").await.unwrap();
    assert_eq!(
        (row.pack, row.inline_data, row.info.storage),
        (Some((p, 0)), None, Storage::Packed)
    );
    let stats = m.packs(&packs.name).await.unwrap();
    assert_eq!((stats[0].live, stats[0].members, stats[0].size), (5, 1, 8));
    assert_eq!(m.pack_members(p).await.unwrap()[0].at, 0..5);

    // The schema holds every row to one place for its bytes.
    let both = sqlx::query("UPDATE objects SET pack_id = $1, pack_offset = 0 WHERE id = $2")
        .bind(p)
        .bind(b2)
        .execute(m.writer())
        .await;
    assert!(
        both.is_err(),
        "an object waiting for a pack cannot also be packed"
    );
    // Nothing deletes a pack an object still refers to.
    assert!(m.delete_object(&packs.name, "p1").await.is_err());
    // Unpacking puts "a" back to waiting with its bytes, and the unused pack goes with its shards.
    assert!(m.unpack(p, &[(a, b"aaaaa".to_vec())]).await.unwrap());
    let row = m.object("small", "a").await.unwrap();
    assert_eq!(row.info.storage, Storage::Waiting);
    assert_eq!(row.inline_data.as_deref(), Some(&b"aaaaa"[..]));
    assert!(m.packs(&packs.name).await.unwrap().is_empty());
    assert_eq!(m.orphans(10).await.unwrap().len(), 1);
}

async fn a_grouped_object_owns_its_parts_and_loose_parts_go_at_start(db: Registry) {
    use super::NewPart;
    use crate::gateway::model::Storage;
    let (_r, m) = meta(db);
    m.create_bucket("big", &POLICY, 1).await.unwrap();
    let bucket = m.bucket("big").await.unwrap();
    let parts = m.part_bucket(&bucket).await.unwrap();
    assert_eq!(
        m.buckets().await.unwrap().len(),
        1,
        "the part bucket is hidden"
    );
    // Three parts of 4 + 4 + 2 bytes, each with a shard of its own.
    for (n, size) in [(1u8, 4u64), (2, 4), (3, 2)] {
        commit_one_shard(&m, &parts.name, &format!("up/{n}"), n, size).await;
    }
    let new_part = |n: u8, offset| NewPart {
        key: format!("up/{n}"),
        offset,
    };
    fn grouped(parts: &[NewPart], size: u64) -> NewObject<'_> {
        NewObject {
            bucket: "big",
            key: "k",
            size,
            sha256: &[0; 32],
            attrs: None,
            placed_by: None,
            body: StoredBody::Grouped {
                part_bucket: "_part.big",
                parts,
            },
        }
    }
    // Parts that do not tile the object, or are missing, are refused and change nothing.
    let wrong = [new_part(1, 0), new_part(2, 5)];
    assert!(m.commit_object(&grouped(&wrong, 9), 3).await.is_err());
    assert!(m
        .commit_object(&grouped(&[new_part(9, 0)], 4), 3)
        .await
        .is_err());
    assert!(m.object("big", "k").await.is_err());

    let all = [new_part(1, 0), new_part(2, 4), new_part(3, 8)];
    let info = m.commit_object(&grouped(&all, 10), 3).await.unwrap();
    assert_eq!(info.storage, Storage::Grouped);
    let row = m.object("big", "k").await.unwrap();
    assert_eq!(row.info.storage, Storage::Grouped);
    let stored = m.parts(row.id).await.unwrap();
    let spans: Vec<_> = stored.iter().map(|p| (p.offset, p.size)).collect();
    assert_eq!(spans, [(0, 4), (4, 4), (8, 2)]);
    // Referenced parts survive a start; a loose one (an upload cut short) does not.
    m.begin_shards(&[shard(4)], 1).await.unwrap();
    let loose = NewObject {
        bucket: &parts.name,
        key: "cut/0",
        size: 1,
        sha256: &[4; 32],
        attrs: None,
        placed_by: None,
        body: StoredBody::Swarm {
            manifest: b"m",
            shards: &[shard(4).info_hash],
        },
    };
    m.commit_object(&loose, 4).await.unwrap();
    assert_eq!(m.drop_loose_parts(AT_START).await.unwrap(), 1);
    assert_eq!(m.orphans(10).await.unwrap().len(), 1);
    assert_eq!(m.parts(row.id).await.unwrap().len(), 3);
    // Deleting the object deletes its parts; their shards become orphans.
    m.delete_object("big", "k").await.unwrap();
    assert_eq!(m.orphans(10).await.unwrap().len(), 4);
    assert!(m.object(&parts.name, "up/1").await.is_err());
}

async fn a_multipart_upload_keeps_its_parts_until_it_ends_and_then_owns_or_drops_them(
    db: Registry,
) {
    use super::{new_parts, Upload, UploadPart};
    use crate::gateway::ObjectAttrs;
    let (_r, m) = meta(db);
    m.create_bucket("mp", &POLICY, 1).await.unwrap();
    let bucket = m.bucket("mp").await.unwrap();
    let parts = m.part_bucket(&bucket).await.unwrap();
    let upload = |id: &str| Upload {
        upload_id: id.into(),
        bucket: "mp".into(),
        key: "k".into(),
        attrs: ObjectAttrs::default(),
        checksum_algorithm: (id == "u1").then(|| "CRC32".to_owned()),
        checksum_type: (id == "u1").then(|| "FULL_OBJECT".to_owned()),
        created_at: 1,
    };
    m.create_upload(&upload("u1")).await.unwrap();
    m.create_upload(&upload("u2")).await.unwrap();
    // One part object (its own shard) under each prefix.
    let store = |n: u8, prefix: &'static str| {
        let m = m.clone();
        let bucket = parts.name.clone();
        async move {
            commit_one_shard(&m, &bucket, &format!("{prefix}/000000"), n, 4).await;
            UploadPart {
                part_number: 1,
                prefix: prefix.into(),
                size: 4,
                md5: [n; 16],
                sha256: [n; 32],
                checksum: None,
                created_at: 2,
            }
        }
    };
    let first = store(1, "pa").await;
    m.record_part("mp", "u1", &first).await.unwrap();
    // Sending part 1 again replaces it: the older part's shard is orphaned at once.
    // A part keeps the checksum it was verified against.
    let again = UploadPart {
        checksum: Some(crate::gateway::Checksum {
            algorithm: "CRC32".into(),
            value: "DUoRhQ==".into(),
            parts: None,
        }),
        ..store(2, "pb").await
    };
    let u1 = m.upload("mp", "u1").await.unwrap();
    assert_eq!(
        (
            u1.checksum_algorithm.as_deref(),
            u1.checksum_type.as_deref()
        ),
        (Some("CRC32"), Some("FULL_OBJECT"))
    );
    m.record_part("mp", "u1", &again).await.unwrap();
    assert_eq!(
        m.upload_parts("u1").await.unwrap(),
        std::slice::from_ref(&again)
    );
    assert_eq!(m.orphans(10).await.unwrap().len(), 1);
    // A start keeps the parts of uploads in progress.
    let other = store(3, "pc").await;
    m.record_part("mp", "u2", &other).await.unwrap();
    assert_eq!(m.drop_loose_parts(AT_START).await.unwrap(), 0);
    // Completing commits the object with the listed parts' part objects, in one step.
    let objects = m.part_objects("mp", "pb").await.unwrap();
    let new = new_parts(&objects);
    let object = NewObject {
        bucket: "mp",
        key: "k",
        size: 4,
        sha256: &[0; 32],
        attrs: None,
        placed_by: None,
        body: StoredBody::Grouped {
            part_bucket: &parts.name,
            parts: &new,
        },
    };
    let refused = m
        .complete_upload("u1", &object, 3, |_| Err(GatewayError::InvalidPartOrder))
        .await;
    assert!(refused.is_err());
    assert!(
        m.object("mp", "k").await.is_err(),
        "a refused completion commits nothing"
    );
    m.complete_upload("u1", &object, 3, |_| Ok(vec!["pb".into()]))
        .await
        .unwrap();
    let row = m.object("mp", "k").await.unwrap();
    assert_eq!(m.parts(row.id).await.unwrap().len(), 1);
    assert!(matches!(
        m.upload("mp", "u1").await,
        Err(GatewayError::NoSuchUpload(_))
    ));
    // Aborting drops its parts; the upload is gone, and so is a late part's record.
    m.abort_upload("mp", "u2").await.unwrap();
    assert_eq!(m.orphans(10).await.unwrap().len(), 2);
    assert!(matches!(
        m.record_part("mp", "u2", &other).await,
        Err(GatewayError::NoSuchUpload(_))
    ));
    assert!(matches!(
        m.abort_upload("mp", "u2").await,
        Err(GatewayError::NoSuchUpload(_))
    ));
    // A bucket with an object is not empty; once the object goes it can be deleted.
    assert!(matches!(
        m.delete_bucket("mp").await,
        Err(GatewayError::BucketNotEmpty(_))
    ));
    m.delete_object("mp", "k").await.unwrap();
    m.delete_bucket("mp").await.unwrap();
    assert!(matches!(
        m.delete_bucket("mp").await,
        Err(GatewayError::NoSuchBucket(_))
    ));
}

crate::registry::test_engines::on_both_engines!(
    a_pack_lives_while_an_object_refers_to_it_and_members_always_have_their_bytes,
    a_grouped_object_owns_its_parts_and_loose_parts_go_at_start,
    a_multipart_upload_keeps_its_parts_until_it_ends_and_then_owns_or_drops_them,
    buckets_are_unique_and_keep_their_policy,
    replacing_an_object_orphans_the_old_shards_in_the_same_step,
    a_commit_of_shards_that_are_not_pending_changes_nothing,
    pending_uploads_are_abandoned_at_start,
    the_work_lease_has_one_holder_until_it_expires_or_is_given_up,
    only_uploads_of_this_gateway_and_of_gone_ones_are_abandoned,
    loose_parts_of_a_living_gateway_stay_until_it_is_gone,
    listing_by_prefix_in_key_order,
    small_objects_stored_in_plaintext_are_sealed_once,
    recorded_copies_are_listed_per_node_whatever_the_shard_state,
    the_health_pass_loads_the_same_objects_by_id_by_shard_and_whole,
);
