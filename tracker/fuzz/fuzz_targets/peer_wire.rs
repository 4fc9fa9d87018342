//! Untrusted peer-wire bytes: the decoder never panics, never asks for more than its cap, and
//! whatever it parses encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raidtorrent_tracker::audit::wire::{decode_with_limit, Parsed, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    // The first byte picks a cap, small ones included, so refusals are exercised too.
    let (cap, mut rest) = match data.split_first() {
        Some((&c, rest)) if c < 0x80 => (u32::from(c) * 512, rest),
        Some((_, rest)) => (MAX_FRAME, rest),
        None => return,
    };
    while let Ok(Parsed::Done(m, used)) = decode_with_limit(rest, cap) {
        assert!(used >= 4 && used <= rest.len());
        assert_eq!(m.to_bytes(), &rest[..used], "{m:?}");
        rest = &rest[used..];
    }
    if let Ok(Parsed::Incomplete(n)) = decode_with_limit(rest, cap) {
        assert!(n > rest.len() && n <= 4 + cap as usize);
    }
});
