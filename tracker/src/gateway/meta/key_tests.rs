//! Access keys' quotas and the bytes their objects take, against a real (in-memory) SQLite with
//! the real migrations.

use super::{Meta, NewObject, StoredBody};
use crate::gateway::{AccessKey, AccessKeys, BucketPolicy, GatewayError, ALL_BUCKETS};
use crate::registry::Registry;

const POLICY: BucketPolicy = BucketPolicy {
    k: 4,
    m: 2,
    copies: 2,
    high_share: 0.5,
    inline_max: 4096,
};

async fn meta(registry: Registry) -> (Registry, Meta) {
    let meta = Meta::new(registry.db().clone());
    meta.create_bucket("photos", &POLICY, 1).await.unwrap();
    (registry, meta)
}

/// Stores `size` bytes inline under `bucket`/`key`, placed by `by`.
async fn put(m: &Meta, bucket: &str, key: &str, size: usize, by: Option<&str>) {
    let data = vec![1u8; size];
    let o = NewObject {
        bucket,
        key,
        size: size as u64,
        sha256: &[size as u8; 32],
        attrs: None,
        body: StoredBody::Inline(&data),
        placed_by: by,
    };
    m.commit_object(&o, 2).await.unwrap();
}

async fn usage_counts_only_the_keys_own_live_objects(db: Registry) {
    let (_r, m) = meta(db).await;
    put(&m, "photos", "a", 10, Some("RTA")).await;
    put(&m, "photos", "b", 20, Some("RTA")).await;
    put(&m, "photos", "c", 5, Some("RTB")).await;
    put(&m, "photos", "d", 100, None).await;
    // An internal object (a part of a large upload) is never a key's own, whatever it says.
    let photos = m.bucket("photos").await.unwrap();
    let parts = m.part_bucket(&photos).await.unwrap();
    put(&m, &parts.name, "up/1", 1000, Some("RTA")).await;

    assert_eq!(m.key_usage("RTA").await.unwrap(), 30);
    assert_eq!(m.key_usage("RTB").await.unwrap(), 5);
    assert_eq!(m.key_usage("RTNONE").await.unwrap(), 0);
    let all = m.keys_usage().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!((all["RTA"], all["RTB"]), (30, 5));
}

async fn usage_drops_after_an_overwrite_or_a_delete(db: Registry) {
    let (_r, m) = meta(db).await;
    put(&m, "photos", "a", 10, Some("RTA")).await;
    put(&m, "photos", "b", 20, Some("RTA")).await;
    // The key overwrites its own object: the new size counts, not both.
    put(&m, "photos", "a", 15, Some("RTA")).await;
    assert_eq!(m.key_usage("RTA").await.unwrap(), 35);
    // Another key overwrites it: the bytes move to that key.
    put(&m, "photos", "b", 7, Some("RTB")).await;
    assert_eq!(m.key_usage("RTA").await.unwrap(), 15);
    assert_eq!(m.key_usage("RTB").await.unwrap(), 7);
    // The operator overwrites the other: nobody's quota pays for it.
    put(&m, "photos", "a", 50, None).await;
    assert_eq!(m.key_usage("RTA").await.unwrap(), 0);
    m.delete_object("photos", "b").await.unwrap();
    assert_eq!(m.key_usage("RTB").await.unwrap(), 0);
    assert!(m.keys_usage().await.unwrap().is_empty());
}

/// Key `id` as `list` shows it.
async fn listed(keys: &AccessKeys, id: &str) -> AccessKey {
    let all = keys.list().await.unwrap();
    all.into_iter().find(|k| k.access_key == id).unwrap()
}

fn keys(m: &Meta) -> AccessKeys {
    let master = raidtorrent_codec::MasterKey::new("master-1", &[3; 32]).unwrap();
    AccessKeys::new(m.clone(), master)
}

async fn a_key_keeps_its_quota_and_shows_its_usage(db: Registry) {
    let (_r, m) = meta(db).await;
    let keys = keys(&m);
    let every = [ALL_BUCKETS.to_owned()];
    let (limited, _) = keys.create("alice", &every, Some(1 << 20)).await.unwrap();
    let (free, _) = keys.create("bob", &every, None).await.unwrap();
    assert_eq!(
        (limited.quota_bytes, limited.used_bytes),
        (Some(1 << 20), 0)
    );
    put(&m, "photos", "a", 300, Some(&limited.access_key)).await;

    let active = keys.active(&limited.access_key).await.unwrap().unwrap();
    assert_eq!(active.access_key, limited.access_key);
    assert_eq!(active.quota_bytes, Some(1 << 20));
    assert_eq!(keys.usage(&limited.access_key).await.unwrap(), 300);
    let shown = listed(&keys, &limited.access_key).await;
    assert_eq!((shown.quota_bytes, shown.used_bytes), (Some(1 << 20), 300));
    let shown = listed(&keys, &free.access_key).await;
    assert_eq!((shown.quota_bytes, shown.used_bytes), (None, 0));

    keys.set_quota(&free.access_key, Some(0)).await.unwrap();
    keys.set_quota(&limited.access_key, None).await.unwrap();
    let active = keys.active(&free.access_key).await.unwrap().unwrap();
    assert_eq!(active.quota_bytes, Some(0));
    assert_eq!(listed(&keys, &limited.access_key).await.quota_bytes, None);
}

async fn a_quota_needs_a_known_key_and_fits_the_store(db: Registry) {
    let (_r, m) = meta(db).await;
    let keys = keys(&m);
    assert!(matches!(
        keys.set_quota("RTNOSUCHKEY", Some(5)).await,
        Err(GatewayError::NoSuchAccessKey(_))
    ));
    assert!(matches!(
        keys.revoke("RTNOSUCHKEY").await,
        Err(GatewayError::NoSuchAccessKey(_))
    ));
    let every = [ALL_BUCKETS.to_owned()];
    assert!(matches!(
        keys.create("alice", &every, Some(u64::MAX)).await,
        Err(GatewayError::BadRequest(_))
    ));
    let (k, _) = keys.create("alice", &every, None).await.unwrap();
    assert!(matches!(
        keys.set_quota(&k.access_key, Some(u64::MAX)).await,
        Err(GatewayError::BadRequest(_))
    ));
    keys.set_quota(&k.access_key, Some(i64::MAX as u64))
        .await
        .unwrap();
    assert_eq!(
        keys.list().await.unwrap()[0].quota_bytes,
        Some(i64::MAX as u64)
    );
}

crate::registry::test_engines::on_both_engines!(
    usage_counts_only_the_keys_own_live_objects,
    usage_drops_after_an_overwrite_or_a_delete,
    a_key_keeps_its_quota_and_shows_its_usage,
    a_quota_needs_a_known_key_and_fits_the_store,
);
