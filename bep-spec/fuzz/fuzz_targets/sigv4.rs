//! Everything the gateway parses from a stranger's signed request: the `Authorization` header,
//! the path and query, the headers and the `x-amz-date`. Nothing may panic; a header that parses
//! must print back to a value that parses to the same thing; a request signed with one secret
//! must verify with it and with no other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raidtorrent_proto::sigv4::{
    amz_date, amz_date_seconds, canonical_request, sign, verify, Authorization, Request,
};

/// Splits the input into the fields of a request at NUL bytes.
fn fields(text: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = text.split('\0').collect();
    parts.resize(6, "");
    parts
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let f = fields(&text);
    if let Ok(auth) = Authorization::parse(f[0]) {
        assert_eq!(Authorization::parse(&auth.header_value()).as_ref(), Ok(&auth));
    }
    if let Some(secs) = amz_date_seconds(f[1]) {
        assert_eq!(amz_date_seconds(&amz_date(secs)), Some(secs));
    }
    let date = "20261204T120000Z";
    let headers = [
        ("host", f[4]),
        ("x-amz-date", date),
        ("x-amz-content-sha256", f[5]),
        (f[3], f[4]),
    ];
    let req = Request { method: f[2], path: f[1], query: f[3], headers: &headers, payload_hash: f[5] };
    let _ = canonical_request(&req, &[f[3].to_ascii_lowercase()]);
    if let Ok(auth) = Authorization::parse(f[0]) {
        let _ = verify(&req, &auth, "secret");
    }
    if let Ok(auth) = sign(&req, "AKID", "secret", date, "us-east-1") {
        assert_eq!(verify(&req, &auth, "secret"), Ok(()));
        assert!(verify(&req, &auth, "other").is_err());
    }
});
