//! Everything a control connection parses from untrusted bytes: the handshake, then frames, then
//! extended handshakes and placement messages. Whatever parses must encode back to something that
//! parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raidtorrent_proto::{frame, Envelope, Frame, GatewayHello, Handshake, NodeHello, Parsed};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    if let Ok(Parsed::Done(h, used)) = Handshake::parse(rest) {
        let _ = h.check_control();
        assert_eq!(Handshake::parse(&h.to_bytes()), Ok(Parsed::Done(h, used)));
        rest = &rest[used..];
    }
    // Small limit so the fuzzer reaches the size check.
    while let Ok(Parsed::Done(f, used)) = frame::decode_with_limit(rest, 1 << 16) {
        rest = &rest[used..];
        let Frame::Extended { payload, .. } = f else { continue };
        if let Ok(env) = Envelope::parse(&payload) {
            assert_eq!(Envelope::parse(&env.to_payload()).as_ref(), Ok(&env));
        }
        if let Ok(h) = NodeHello::parse(&payload) {
            assert_eq!(NodeHello::parse(&h.to_payload()).as_ref(), Ok(&h));
        }
        if let Ok(h) = GatewayHello::parse(&payload) {
            assert_eq!(GatewayHello::parse(&h.to_payload()).as_ref(), Ok(&h));
        }
    }
});
