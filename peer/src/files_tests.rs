use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::fds::open_files_under;

/// `n` files of 4 KiB in a fresh folder, each filled with its own index.
fn folder(n: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let paths = (0..n)
        .map(|i| {
            let path = root.join(format!("shard-{i}"));
            std::fs::write(&path, vec![i as u8; 4096]).unwrap();
            path
        })
        .collect();
    (dir, paths)
}

fn first_byte(cache: &FileCache, path: &Path) -> u8 {
    let mut buf = [0u8; 1];
    cache
        .get(path, false)
        .unwrap()
        .read_exact_at(&mut buf, 100)
        .unwrap();
    buf[0]
}

#[test]
fn the_budget_is_never_exceeded_under_concurrent_use() {
    let (dir, paths) = folder(20);
    let cache = FileCache::new(3);
    let paths = Arc::new(paths);
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (cache, paths) = (cache.clone(), paths.clone());
            std::thread::spawn(move || {
                let mut most = 0;
                for round in 0..300 {
                    let i = (round * 7 + t * 3) % paths.len();
                    let file = cache.get(&paths[i], false).unwrap();
                    let mut buf = [0u8; 16];
                    file.read_exact_at(&mut buf, 64).unwrap();
                    assert_eq!(buf, [i as u8; 16]);
                    // The tally is raised before a file opens and lowered after it closes, so it
                    // bounds the real count at every instant. A scan of `/proc/self/fd` is no
                    // snapshot while other threads open and close files (descriptor numbers are
                    // reused between listing and reading the links), so it is checked at rest.
                    most = most.max(cache.open_files());
                }
                most
            })
        })
        .collect();
    for t in threads {
        let most = t.join().unwrap();
        assert!(most <= 3, "{most} files open under a budget of 3");
    }
    assert_eq!(open_files_under(dir.path()), cache.open_files());
    assert!(cache.open_files() <= 3);
}

#[test]
fn the_least_recently_used_file_is_closed_first() {
    let (dir, paths) = folder(3);
    let cache = FileCache::new(2);
    first_byte(&cache, &paths[0]);
    first_byte(&cache, &paths[1]);
    first_byte(&cache, &paths[0]);
    first_byte(&cache, &paths[2]);
    let open = crate::fds::files_open_under(dir.path());
    assert_eq!(open, vec![paths[0].clone(), paths[2].clone()]);
}

#[test]
fn a_file_evicted_while_in_use_stays_valid_and_counted() {
    let (dir, paths) = folder(3);
    let cache = FileCache::new(2);
    let in_use = cache.get(&paths[0], false).unwrap();
    first_byte(&cache, &paths[1]);
    // Opening a third file evicts both: the first stays open for its user, the second closes.
    assert_eq!(first_byte(&cache, &paths[2]), 2);
    assert_eq!(cache.open_files(), 2);
    assert_eq!(open_files_under(dir.path()), 2);
    let mut buf = [0u8; 8];
    in_use.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, [0; 8]);
    drop(in_use);
    assert_eq!(cache.open_files(), 1);
    assert_eq!(open_files_under(dir.path()), 1);
}

#[test]
fn a_thread_waits_for_a_file_in_use_when_the_budget_is_taken() {
    let (dir, paths) = folder(2);
    let cache = FileCache::new(1);
    let in_use = cache.get(&paths[0], false).unwrap();
    let waiter = {
        let (cache, path) = (cache.clone(), paths[1].clone());
        std::thread::spawn(move || first_byte(&cache, &path))
    };
    // Whether or not the waiter has started, it cannot open its file while this one is held.
    assert!(open_files_under(dir.path()) <= 1);
    let mut buf = [0u8; 1];
    in_use.read_exact_at(&mut buf, 4095).unwrap();
    drop(in_use);
    assert_eq!(waiter.join().unwrap(), 1);
    assert!(open_files_under(dir.path()) <= 1);
}

#[test]
fn a_read_after_eviction_opens_the_file_again() {
    let (dir, paths) = folder(2);
    let cache = FileCache::new(1);
    assert_eq!(first_byte(&cache, &paths[0]), 0);
    assert_eq!(first_byte(&cache, &paths[1]), 1);
    // Replaced on disk while closed: the next read opens the new file, not a stale descriptor.
    let fresh = dir.path().join("fresh");
    std::fs::write(&fresh, vec![9u8; 4096]).unwrap();
    std::fs::rename(&fresh, &paths[0]).unwrap();
    assert_eq!(first_byte(&cache, &paths[0]), 9);
    assert_eq!(
        crate::fds::files_open_under(dir.path()),
        vec![paths[0].clone()]
    );
}

#[test]
fn a_failed_open_gives_its_place_back() {
    let (dir, paths) = folder(1);
    let cache = FileCache::new(1);
    let missing = dir.path().join("missing");
    assert!(matches!(
        cache.get(&missing, false),
        Err(FileError::Open { .. })
    ));
    assert_eq!(cache.open_files(), 0);
    assert_eq!(first_byte(&cache, &paths[0]), 0);
    // Creating is allowed when asked for.
    drop(cache.get(&missing, true).unwrap());
    assert!(missing.exists());
}

#[test]
fn forgetting_a_file_closes_it() {
    let (dir, paths) = folder(1);
    let cache = FileCache::new(4);
    first_byte(&cache, &paths[0]);
    assert_eq!(open_files_under(dir.path()), 1);
    cache.forget(&paths[0]);
    assert_eq!((cache.open_files(), open_files_under(dir.path())), (0, 0));
}
