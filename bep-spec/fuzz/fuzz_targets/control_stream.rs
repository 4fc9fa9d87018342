//! Everything a control connection parses from untrusted bytes: the handshake, then frames, then
//! extended handshakes (and the unsigned view the proof is checked over), tagged frames and
//! placement messages. Whatever parses must encode back to something that parses to the same
//! value; no junk passes a tag check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raidtorrent_proto::auth::{SessionKeys, Transcript};
use raidtorrent_proto::session::{FrameAuth, Role};
use raidtorrent_proto::{frame, Envelope, Frame, GatewayHello, Handshake, NodeHello, Parsed};

fuzz_target!(|data: &[u8]| {
    let keys = SessionKeys::derive("0123456789abcdef0123456789abcdef", &Transcript::new(&[1; 32], &[2; 32], b"", b""));
    let mut gateway = FrameAuth::new(&keys, Role::Gateway);
    let mut rest = data;
    if let Ok(Parsed::Done(h, used)) = Handshake::parse(rest) {
        let _ = h.check_control();
        assert_eq!(Handshake::parse(&h.to_bytes()), Ok(Parsed::Done(h, used)));
        rest = &rest[used..];
    }
    // Small limit so the fuzzer reaches the size check.
    while let Ok(Parsed::Done(f, used)) = frame::decode_with_limit(rest, 1 << 16) {
        rest = &rest[used..];
        let Frame::Extended { id, payload } = f else { continue };
        assert!(gateway.open(id, &payload).is_err(), "junk passed a tag check");
        if let Ok(env) = Envelope::parse(&payload) {
            assert_eq!(Envelope::parse(&env.to_payload()).as_ref(), Ok(&env));
        }
        if let Ok(h) = NodeHello::parse(&payload) {
            assert_eq!(NodeHello::parse(&h.to_payload()).as_ref(), Ok(&h));
            let unsigned = NodeHello::unsigned_payload(&payload).expect("a parsed hello has a proof");
            assert_eq!(unsigned.len(), payload.len());
            let mut zeroed = h.clone();
            zeroed.facts.proof = [0; 32];
            assert_eq!(NodeHello::parse(&unsigned).as_ref(), Ok(&zeroed));
        }
        if let Ok(h) = GatewayHello::parse(&payload) {
            assert_eq!(GatewayHello::parse(&h.to_payload()).as_ref(), Ok(&h));
        }
    }
});
