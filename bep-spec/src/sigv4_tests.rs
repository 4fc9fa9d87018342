//! The signer and verifier against AWS's published examples (the Signature Version 4 test suite
//! and the S3 API reference's header-signing examples), then properties.

use proptest::prelude::*;

use super::*;

const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const S3_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const S3_HOST: &str = "examplebucket.s3.amazonaws.com";

fn suite_signature(query: &str) -> String {
    let headers = [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
    ];
    let req = Request {
        method: "GET",
        path: "/",
        query,
        headers: &headers,
        payload_hash: EMPTY_SHA256,
    };
    let signed = ["host".to_owned(), "x-amz-date".to_owned()];
    let scope = Scope {
        date: "20150830".into(),
        region: "us-east-1".into(),
        service: "service".into(),
    };
    let canonical = canonical_request(&req, &signed).unwrap();
    to_hex(&signature(
        SUITE_SECRET,
        "20150830T123600Z",
        &scope,
        &canonical,
    ))
}

#[test]
fn the_test_suites_get_vanilla_cases() {
    assert_eq!(
        suite_signature(""),
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
    assert_eq!(
        suite_signature("Param2=value2&Param1=value1"),
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
    );
}

/// Signs an S3 example with every header it lists, and checks the signature and that it verifies.
fn s3_example(method: &str, path: &str, query: &str, headers: &[(&str, &str)], want: &str) {
    let payload_hash = header(
        &Request {
            method,
            path,
            query,
            headers,
            payload_hash: "",
        },
        "x-amz-content-sha256",
    )
    .unwrap();
    let req = Request {
        method,
        path,
        query,
        headers,
        payload_hash,
    };
    let auth = sign(
        &req,
        "AKIAIOSFODNN7EXAMPLE",
        S3_SECRET,
        "20130524T000000Z",
        "us-east-1",
    )
    .unwrap();
    assert_eq!(to_hex(&auth.signature), want);
    let parsed = Authorization::parse(&auth.header_value()).unwrap();
    assert_eq!(parsed, auth);
    verify(&req, &parsed, S3_SECRET).unwrap();
}

#[test]
fn the_s3_references_get_object_example() {
    let headers = [
        ("Host", S3_HOST),
        ("Range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20130524T000000Z"),
    ];
    let req = Request {
        method: "GET",
        path: "/test.txt",
        query: "",
        headers: &headers,
        payload_hash: EMPTY_SHA256,
    };
    let signed: Vec<String> = ["host", "range", "x-amz-content-sha256", "x-amz-date"]
        .map(String::from)
        .to_vec();
    let canonical = canonical_request(&req, &signed).unwrap();
    let scope = Scope {
        date: "20130524".into(),
        region: "us-east-1".into(),
        service: "s3".into(),
    };
    assert!(string_to_sign("20130524T000000Z", &scope, &canonical)
        .ends_with("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"));
    s3_example(
        "GET",
        "/test.txt",
        "",
        &headers,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    );
}

#[test]
fn the_s3_references_put_object_example() {
    let body_hash = payload_sha256(b"Welcome to Amazon S3.");
    assert_eq!(
        body_hash,
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    );
    let headers = [
        ("Host", S3_HOST),
        ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", body_hash.as_str()),
    ];
    s3_example(
        "PUT",
        "/test$file.text",
        "",
        &headers,
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    );
}

#[test]
fn the_s3_references_list_objects_example() {
    let headers = [
        ("Host", S3_HOST),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20130524T000000Z"),
    ];
    s3_example(
        "GET",
        "/",
        "max-keys=2&prefix=J",
        &headers,
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    );
}

#[test]
fn a_verifier_insists_on_the_headers_that_bind_a_request() {
    let headers = [("Host", "h"), ("x-amz-date", "20261204T120000Z")];
    let req = Request {
        method: "GET",
        path: "/b/k",
        query: "",
        headers: &headers,
        payload_hash: EMPTY_SHA256,
    };
    let auth = sign(&req, "AK", "s", "20261204T120000Z", "r").unwrap();
    assert_eq!(
        verify(&req, &auth, "s"),
        Err(SigV4Error::Unsigned("x-amz-content-sha256"))
    );
    let headers = [
        ("Host", "h"),
        ("x-amz-date", "20261204T120000Z"),
        ("x-amz-content-sha256", EMPTY_SHA256),
    ];
    let req = Request {
        headers: &headers,
        ..req
    };
    let mut auth = sign(&req, "AK", "s", "20261204T120000Z", "r").unwrap();
    assert!(verify(&req, &auth, "s").is_ok());
    auth.scope.date = "20261203".into();
    assert_eq!(verify(&req, &auth, "s"), Err(SigV4Error::BadDate));
}

#[test]
fn a_signers_headers_are_what_the_verifier_checks() {
    let signer = Signer {
        access_key: "AK",
        secret: "s",
        region: "eu-west-3",
    };
    let body = b"object bytes";
    let [(auth_name, auth), (sha_name, sha), (date_name, date)] = signer
        .headers(
            "PUT",
            "127.0.0.1:9000",
            "/b/a key",
            "x=1",
            body,
            1_440_938_160,
        )
        .unwrap();
    assert_eq!(
        (auth_name, sha_name, date_name),
        ("authorization", "x-amz-content-sha256", "x-amz-date")
    );
    assert_eq!(
        (sha.as_str(), date.as_str()),
        (payload_sha256(body).as_str(), "20150830T123600Z")
    );
    let headers = [
        ("Host", "127.0.0.1:9000"),
        ("X-Amz-Date", date.as_str()),
        ("X-Amz-Content-Sha256", sha.as_str()),
        ("content-length", "12"),
    ];
    let req = Request {
        method: "PUT",
        path: "/b/a key",
        query: "x=1",
        headers: &headers,
        payload_hash: &sha,
    };
    let parsed = Authorization::parse(&auth).unwrap();
    assert_eq!(parsed.scope.region, "eu-west-3");
    assert_eq!(verify(&req, &parsed, "s"), Ok(()));
    assert_eq!(verify(&req, &parsed, "t"), Err(SigV4Error::Mismatch));
    let moved = Request {
        path: "/b/other",
        ..req
    };
    assert_eq!(verify(&moved, &parsed, "s"), Err(SigV4Error::Mismatch));
}

#[test]
fn dates() {
    assert_eq!(amz_date(0), "19700101T000000Z");
    assert_eq!(amz_date_seconds("20150830T123600Z"), Some(1_440_938_160));
    assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
    for bad in [
        "",
        "20150830 123600Z",
        "20151330T123600Z",
        "2015083xT123600Z",
        "20150830T123600",
    ] {
        assert_eq!(amz_date_seconds(bad), None, "{bad}");
    }
}

#[test]
fn malformed_headers_are_named() {
    for bad in [
        "",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws4_request",
        "AWS4-HMAC-SHA256 Credential=a/2015/r/s/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws4_request, SignedHeaders=x-b;host, \
         Signature=0000000000000000000000000000000000000000000000000000000000000000",
        "Bearer abc",
    ] {
        assert!(
            matches!(Authorization::parse(bad), Err(SigV4Error::Malformed(_))),
            "{bad}"
        );
    }
}

proptest! {
    #[test]
    fn parsing_never_panics(s in ".{0,300}") {
        let _ = Authorization::parse(&s);
        let _ = amz_date_seconds(&s);
        let _ = canonical_path(&s);
        let _ = canonical_query(&s);
    }

    #[test]
    fn dates_round_trip(t in 0i64..8_000_000_000) {
        prop_assert_eq!(amz_date_seconds(&amz_date(t)), Some(t));
    }

    #[test]
    fn what_is_signed_verifies_and_any_change_does_not(
        key in "[a-z0-9 %/._~+-]{0,40}",
        query in "[a-z0-9=&+]{0,30}",
        value in "[ -~]{0,30}",
        secret in "[ -~]{1,40}",
        t in 0i64..4_000_000_000,
    ) {
        let date = amz_date(t);
        let path = format!("/bucket/{}", encode(key.as_bytes()));
        let headers = [
            ("host", "127.0.0.1:9"),
            ("x-amz-date", date.as_str()),
            ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
            ("x-meta", value.as_str()),
        ];
        let req = Request { method: "POST", path: &path, query: &query, headers: &headers,
                            payload_hash: UNSIGNED_PAYLOAD };
        let auth = sign(&req, "AK", &secret, &date, "us-east-1").unwrap();
        let parsed = Authorization::parse(&auth.header_value()).unwrap();
        prop_assert!(verify(&req, &parsed, &secret).is_ok());
        let other_secret = format!("{secret}x");
        let other_path = format!("{path}x");
        let other_value = format!("{value}!");
        let changed = [headers[0], headers[1], headers[2], ("x-meta", other_value.as_str())];
        let variants = [
            (req, other_secret.as_str()),
            (Request { path: &other_path, ..req }, secret.as_str()),
            (Request { method: "PUT", ..req }, secret.as_str()),
            (Request { headers: &changed, ..req }, secret.as_str()),
        ];
        for (changed_req, key) in variants {
            let outcome = verify(&changed_req, &parsed, key);
            prop_assert!(outcome.is_err());
        }
    }
}
