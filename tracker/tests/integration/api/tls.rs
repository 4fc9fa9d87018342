//! The gateway with `tls.enabled` and a certificate it created: the object API and the tracker
//! answer over HTTPS to a client that trusts only that certificate, and plaintext or a stalled
//! handshake is closed without an answer and without costing the next client anything.

use std::time::Duration;

use super::hostile::{closed_within, round_trip, short_limits};
use super::*;

/// A gateway serving TLS, with the bucket `round_trip` uses.
async fn tls_api() -> TestApi {
    let api = TestApi::start_with(ApiAuth::open(), |c| {
        short_limits(c);
        c.tls.enabled = true;
    })
    .await;
    api.json(api.req(Method::PUT, "/hostile"), StatusCode::OK)
        .await;
    api
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_and_announces_travel_over_tls() {
    let api = tls_api().await;
    assert_eq!(api.scheme, "https");
    round_trip(&api, "over-tls").await;
    // The tracker speaks TLS too: an announce without a token is refused in bencode, over HTTPS.
    let tracker = api.cloud.service.http_addr.unwrap();
    let res = api
        .client
        .get(format!("https://{tracker}/announce?info_hash=x"))
        .send()
        .await
        .unwrap();
    let body = res.bytes().await.unwrap();
    assert!(
        body.starts_with(b"d14:failure reason"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // A client that trusts only the system's roots refuses the gateway's own certificate.
    let stranger = reqwest::Client::new();
    let e = stranger
        .get(format!("https://{}/_health", api.addr))
        .send()
        .await;
    assert!(
        e.is_err(),
        "a self-signed certificate was trusted by default"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_and_stalled_handshakes_are_closed() {
    let api = tls_api().await;
    // Plain HTTP on the TLS port: closed, and nothing in the answer is HTTP.
    let mut plain = TcpStream::connect(api.addr).await.unwrap();
    plain
        .write_all(b"GET /_health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plaintext got an HTTP answer"
    );
    // A connection that never starts its handshake goes away after the header timeout (2 s).
    let mut silent = TcpStream::connect(api.addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(6)).await);
    // The control listener is behind TLS too.
    let mut control = TcpStream::connect(api.cloud.control_addr).await.unwrap();
    let mut bep3 = vec![19u8];
    bep3.extend_from_slice(b"BitTorrent protocol");
    bep3.extend_from_slice(&[0u8; 48]);
    control.write_all(&bep3).await.unwrap();
    let mut reply = [0u8; 20];
    let got = tokio::time::timeout(Duration::from_secs(5), control.read(&mut reply)).await;
    assert!(
        !matches!(got, Ok(Ok(n)) if n > 0 && reply[0] == 19),
        "the control listener spoke BEP 3 in the clear"
    );
    round_trip(&api, "after-strangers").await;
    api.stop().await;
}
