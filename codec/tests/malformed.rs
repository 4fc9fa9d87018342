//! The checked-in corpus of malformed metainfo and manifests: each file gets exactly the error
//! listed for it in `corpus/EXPECTED.tsv` (`*` = any bencode syntax error). A file without an
//! expectation fails the test, so the corpus and its answers stay together.

use std::path::Path;

use raidtorrent_codec::{Manifest, Metainfo};

#[test]
fn every_corpus_file_gets_its_expected_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let table = std::fs::read_to_string(root.join("EXPECTED.tsv")).unwrap();
    let mut checked = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (file, expected) = line.split_once('\t').expect("file<TAB>error");
        let bytes = std::fs::read(root.join(file)).unwrap();
        let error = if file.ends_with(".torrent") {
            Metainfo::parse(&bytes).expect_err(file).to_string()
        } else {
            Manifest::parse(&bytes).expect_err(file).to_string()
        };
        if expected == "*" {
            assert!(error.starts_with("malformed bencode"), "{file}: {error}");
        } else {
            assert_eq!(error, expected, "{file}");
        }
        checked += 1;
    }
    let on_disk = ["metainfo", "manifest"]
        .iter()
        .map(|d| std::fs::read_dir(root.join(d)).unwrap().count())
        .sum::<usize>();
    assert_eq!(
        checked, on_disk,
        "every corpus file needs a line in EXPECTED.tsv"
    );
}
