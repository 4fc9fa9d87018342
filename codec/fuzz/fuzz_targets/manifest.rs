#![no_main]
//! Untrusted manifests: parsing never panics, and an accepted manifest round-trips.
use libfuzzer_sys::fuzz_target;
use raidtorrent_codec::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        assert_eq!(Manifest::parse(&m.to_bytes()).as_ref(), Ok(&m));
    }
});
