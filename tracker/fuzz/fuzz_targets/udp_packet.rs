//! Untrusted UDP datagrams: never panic, and whatever parses writes back to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raidtorrent_tracker::protocol::udp::Request;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::parse(data) {
        let mut out = Vec::new();
        req.write(&mut out);
        assert_eq!(Request::parse(&out).expect("own packet parses"), req);
    }
});
