//! Untrusted announce and scrape query strings: never panic, and whatever parses writes back
//! to a query that parses to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raidtorrent_tracker::protocol::http::{parse_scrape, AnnounceRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = AnnounceRequest::parse(data) {
        let again = AnnounceRequest::parse(req.to_query().as_bytes()).expect("own query parses");
        assert_eq!(again, req);
    }
    let _ = parse_scrape(data);
});
