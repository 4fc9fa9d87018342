#![no_main]
//! Sealed small objects as read back from a database: opening never panics, and whatever opens
//! was sealed under the key (any other bytes fail authentication).
use libfuzzer_sys::fuzz_target;
use raidtorrent_codec::{sealed, MasterKey};

fuzz_target!(|data: &[u8]| {
    let master = MasterKey::new("master-1", &[7; 32]).expect("32 bytes is a key");
    if let Ok(plain) = sealed::open(&master, data) {
        let again = sealed::seal(&master, &plain).expect("sealing");
        assert_eq!(sealed::open(&master, &again).as_ref(), Ok(&plain));
    }
});
