//! S3 access keys on the object API (RT-0004 section 5): requests signed with AWS Signature
//! Version 4 reach only the key's buckets, count against its quota and must carry the body they
//! declared; a wrong secret, an unknown key and a stale date are refused with S3's codes. The
//! client's signer is also checked against the S3 API's own verifier (s3s), which nobody here
//! wrote.

use raidtorrent_proto::sigv4;
use raidtorrent_tracker::registry::unix_now;

use super::*;

struct Key {
    id: String,
    secret: String,
}

impl TestApi {
    /// A request to `addr` signed with `key` at `at` (Unix seconds), declaring `body`'s hash.
    fn signed_to(
        &self,
        addr: SocketAddr,
        method: Method,
        path_and_query: &str,
        body: &[u8],
        key: &Key,
        at: i64,
    ) -> reqwest::RequestBuilder {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let signer = sigv4::Signer {
            access_key: &key.id,
            secret: &key.secret,
            region: "us-east-1",
        };
        let headers = signer
            .headers(method.as_str(), &addr.to_string(), path, query, body, at)
            .unwrap();
        let request = self
            .client
            .request(method, format!("http://{addr}{path_and_query}"));
        headers
            .into_iter()
            .fold(request, |r, (name, value)| r.header(name, value))
            .body(body.to_vec())
    }

    fn signed(
        &self,
        method: Method,
        path: &str,
        body: &[u8],
        key: &Key,
    ) -> reqwest::RequestBuilder {
        self.signed_to(self.addr, method, path, body, key, unix_now())
    }

    async fn key(&self, buckets: &[&str], quota: Option<u64>) -> Key {
        let buckets: Vec<String> = buckets.iter().map(|b| b.to_string()).collect();
        let keys = self.cloud.gateway.access_keys();
        let (made, secret) = keys.create("alice", &buckets, quota).await.unwrap();
        Key {
            id: made.access_key,
            secret,
        }
    }
}

#[tokio::test]
async fn a_signed_request_reaches_only_its_keys_buckets_within_its_quota() {
    let t = TestApi::start(ApiAuth::keys([KEY])).await;
    for b in ["mine", "theirs"] {
        t.json(t.req(Method::PUT, &format!("/{b}")), StatusCode::OK)
            .await;
    }
    let alice = t.key(&["mine"], Some(1_000_000)).await;
    let listed = t
        .json(t.signed(Method::GET, "/", b"", &alice), StatusCode::OK)
        .await;
    let names: Vec<_> = listed["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["name"])
        .collect();
    assert_eq!(names, ["mine"], "{listed}");

    let object = random_bytes(600_000, 1);
    t.json(
        t.signed(Method::PUT, "/mine/a", &object, &alice),
        StatusCode::OK,
    )
    .await;
    let theirs = t.signed(Method::PUT, "/theirs/a", &object, &alice);
    t.error(theirs, StatusCode::FORBIDDEN, "AccessDenied").await;
    let over = t.signed(Method::PUT, "/mine/b", &object, &alice);
    let message = t.error(over, StatusCode::FORBIDDEN, "QuotaExceeded").await;
    assert!(
        message.contains("1000000") && message.contains("600000"),
        "{message}"
    );
    let health = t.signed(Method::GET, "/_health", b"", &alice);
    t.error(health, StatusCode::FORBIDDEN, "AccessDenied").await;
    assert_eq!(
        t.send(t.req(Method::HEAD, "/mine/b")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.send(t.req(Method::HEAD, "/theirs/a")).await.0,
        StatusCode::NOT_FOUND
    );

    // What it stored is its own: deleting it gives the quota back.
    let gone = t.signed(Method::DELETE, "/mine/a", b"", &alice);
    assert_eq!(t.send(gone).await.0, StatusCode::NO_CONTENT);
    t.json(
        t.signed(Method::PUT, "/mine/b", &object, &alice),
        StatusCode::OK,
    )
    .await;
    let keys = t.cloud.gateway.access_keys();
    assert_eq!(keys.usage(&alice.id).await.unwrap(), 600_000);
    t.stop().await;
}

#[tokio::test]
async fn forged_stale_and_mismatched_requests_are_refused_and_store_nothing() {
    let t = TestApi::start(ApiAuth::keys([KEY])).await;
    t.json(t.req(Method::PUT, "/mine"), StatusCode::OK).await;
    let alice = t.key(&["*"], None).await;
    let wrong = Key {
        id: alice.id.clone(),
        secret: "not the secret".into(),
    };
    let unknown = Key {
        id: "RTNOSUCHKEY".into(),
        secret: alice.secret.clone(),
    };
    let r = t.signed(Method::PUT, "/mine/a", b"abc", &wrong);
    t.error(r, StatusCode::FORBIDDEN, "SignatureDoesNotMatch")
        .await;
    let r = t.signed(Method::PUT, "/mine/a", b"abc", &unknown);
    t.error(r, StatusCode::FORBIDDEN, "InvalidAccessKeyId")
        .await;
    let stale = t.signed_to(
        t.addr,
        Method::PUT,
        "/mine/a",
        b"abc",
        &alice,
        unix_now() - 20 * 60,
    );
    t.error(stale, StatusCode::FORBIDDEN, "RequestTimeTooSkewed")
        .await;
    // A body that is not the one signed: the upload fails and nothing becomes visible.
    let swapped = t
        .signed(Method::PUT, "/mine/a", b"abc", &alice)
        .body(b"abd".to_vec());
    let message = t
        .error(swapped, StatusCode::BAD_REQUEST, "IncompleteBody")
        .await;
    assert!(message.contains("x-amz-content-sha256"), "{message}");
    let swapped = t
        .signed(Method::POST, "/_place/mine/a", b"{}", &alice)
        .body(b"{} ".to_vec());
    t.error(swapped, StatusCode::BAD_REQUEST, "BadRequest")
        .await;
    let malformed = t
        .client
        .get(format!("http://{}/mine", t.addr))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=x");
    t.error(
        malformed,
        StatusCode::BAD_REQUEST,
        "AuthorizationHeaderMalformed",
    )
    .await;
    assert_eq!(
        t.send(t.req(Method::HEAD, "/mine/a")).await.0,
        StatusCode::NOT_FOUND
    );
    // A revoked key is refused from its next request on.
    t.cloud
        .gateway
        .access_keys()
        .revoke(&alice.id)
        .await
        .unwrap();
    let r = t.signed(Method::GET, "/mine", b"", &alice);
    t.error(r, StatusCode::FORBIDDEN, "InvalidAccessKeyId")
        .await;
    t.stop().await;
}

/// The client's signer, checked by the S3 API's verifier: paths and queries with characters
/// that need encoding sign the same way on both sides.
#[tokio::test]
async fn the_clients_signer_satisfies_the_s3_apis_verifier() {
    let t = TestApi::start_with(ApiAuth::keys([KEY]), |c| {
        c.objects.s3_listen = "127.0.0.1:0".into()
    })
    .await;
    let s3 = t.cloud.s3_addr.expect("the S3 API is served");
    let alice = t.key(&["*"], None).await;
    let now = unix_now();
    let made = t.signed_to(s3, Method::PUT, "/spaced", b"", &alice, now);
    assert_eq!(t.send(made).await.0, StatusCode::OK);
    let key = "/spaced/dir/a%20b%2Bc~%28%C3%A9%29.bin";
    let object = random_bytes(5000, 2);
    let put = t.signed_to(s3, Method::PUT, key, &object, &alice, now);
    let (status, _, body) = t.send(put).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let get = t.signed_to(s3, Method::GET, key, b"", &alice, now);
    let (status, _, body) = t.send(get).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == object);
    let list = t.signed_to(
        s3,
        Method::GET,
        "/spaced?list-type=2&prefix=dir%2Fa%20b",
        b"",
        &alice,
        now,
    );
    let (status, _, body) = t.send(list).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("<KeyCount>1</KeyCount>"), "{text}");
    // The same object through the object API, signed by the same key.
    let native = t.signed(Method::GET, key, b"", &alice);
    assert_eq!(t.send(native).await.2, object);
    t.stop().await;
}
