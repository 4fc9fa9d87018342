//! The small parsers of request fields a stranger controls: object API paths, ranges and
//! listing queries; S3 continuation tokens, copy ranges, Content-MD5, presigned-URL queries and
//! listing key encoding, `x-amz-checksum-*` and `x-amz-trailer` headers; the admin credential. None may panic, and what is written is read back
//! the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raidtorrent_tracker::api::parse;
use raidtorrent_tracker::s3;
use raidtorrent_tracker::server::http::presented_token;

fuzz_target!(|data: &[u8]| {
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let size = u64::from(size) * 1000;
    let _ = parse::target(text);
    if let Ok(parse::RangeAnswer::Part(r)) = parse::range(text, size) {
        assert!(r.start < r.end && r.end <= size, "{r:?} outside {size}");
    }
    let _ = parse::list_query(text);
    for keep in [&b"-._~"[..], &b"-._~/"[..]] {
        let encoded = parse::percent_encode(text, keep);
        assert_eq!(parse::percent_decode(&encoded, false).as_deref(), Ok(text));
    }
    assert_eq!(
        s3::decode_token(&s3::encode_token(text)).ok().as_deref(),
        Some(text)
    );
    let _ = s3::decode_token(text);
    if let Ok(r) = s3::copy_range(text, size) {
        assert!(r.start <= r.end && r.end <= size, "{r:?} outside {size}");
    }
    let _ = s3::content_md5(Some(text));
    let _ = s3::presigned_v2(text);
    let _ = s3::percent_decoded(text);
    let url = s3::KeyEncoding::Url.apply(text);
    assert_eq!(s3::percent_decoded(&url).as_deref(), Some(text));
    let _ = presented_token(Some(text));
    if let Ok(value) = http::HeaderValue::from_str(text) {
        for name in [
            "x-amz-checksum-crc32",
            "x-amz-checksum-sha256",
            "x-amz-trailer",
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert(name, value.clone());
            let _ = s3::announced_checksum(&headers, None);
        }
    }
    if let Some(a) = s3::ChecksumAlgorithm::of_header(text) {
        assert!(a.header().eq_ignore_ascii_case(text.trim()));
    }
});
