//! Strangers on the object API: idle and trickling connections, clients that stop reading or
//! sending, one address taking every slot, junk, absurd bucket policies. Each ends with the
//! service answering a polite client, quickly.

use std::time::{Duration, Instant};

use raidtorrent_testkit::{random_bytes, wait_until, within};
use raidtorrent_tracker::config::Config;
use tokio::net::TcpSocket;

use super::*;

/// Short limits, so the tests see them act.
pub(super) fn short_limits(c: &mut Config) {
    c.limits.header_timeout_secs = 2;
    c.limits.send_timeout_secs = 2;
    c.limits.api_connections_per_ip = 300;
    c.objects.body_timeout_secs = 2;
}

/// A connection from `ip` (any 127/8 address) to `to`.
async fn dial_from(ip: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(format!("{ip}:0").parse().unwrap())?;
    s.connect(to).await
}

/// True once the server has closed `s` (EOF or reset) within `limit`.
pub(super) async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Stores and reads back a 64 KiB object; returns how long the round trip took.
pub(super) async fn round_trip(api: &TestApi, key: &str) -> Duration {
    let data = random_bytes(64 << 10, key.len() as u64);
    let started = Instant::now();
    api.put_object(&format!("/hostile/{key}"), &data).await;
    let (status, _, body) = api
        .send(api.req(Method::GET, &format!("/hostile/{key}")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == data, "{key} read back different bytes");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sockets_do_not_starve_a_client_and_are_closed() {
    // The sockets of both ends live in this process.
    raidtorrent_tracker::net::raise_open_file_limit().unwrap();
    let api = TestApi::start_with(ApiAuth::open(), |c| {
        short_limits(c);
        // Long enough that the round trips below run while every idle socket is open.
        c.limits.header_timeout_secs = 6;
    })
    .await;
    api.json(api.req(Method::PUT, "/hostile"), StatusCode::OK)
        .await;
    // 2,000 connections from eight addresses on the object API and as many on the tracker, each
    // sending one byte of a request and no more.
    let tracker = api.cloud.service.http_addr.unwrap();
    let mut idle = Vec::new();
    for i in 0..4000 {
        let to = if i % 2 == 0 { api.addr } else { tracker };
        let mut s = dial_from(&format!("127.0.1.{}", 1 + i % 8), to)
            .await
            .unwrap();
        s.write_all(b"G").await.unwrap();
        idle.push(s);
    }
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        worst = worst.max(round_trip(&api, &format!("k{i}")).await);
        let started = Instant::now();
        let announce = api
            .client
            .get(format!("http://{tracker}/announce?info_hash=x"));
        let body = announce.send().await.unwrap().bytes().await.unwrap();
        assert!(
            body.starts_with(b"d14:failure reason"),
            "the tracker answers"
        );
        worst = worst.max(started.elapsed());
    }
    assert!(
        worst < Duration::from_secs(2),
        "a round trip or announce took {worst:?}"
    );
    // Every idle socket is closed by the server after the header timeout.
    within(
        Duration::from_secs(20),
        "the idle sockets to be closed",
        async {
            for s in &mut idle {
                assert!(closed_within(s, Duration::from_secs(10)).await);
            }
        },
    )
    .await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_take_every_slot() {
    let api = TestApi::start_with(ApiAuth::open(), |c| {
        short_limits(c);
        c.limits.header_timeout_secs = 30;
        c.limits.api_connections_per_ip = 10;
    })
    .await;
    api.json(api.req(Method::PUT, "/hostile"), StatusCode::OK)
        .await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(dial_from("127.0.2.1", api.addr).await.unwrap());
    }
    // Over the cap, a connection is closed at once; other addresses are served.
    let mut extra = dial_from("127.0.2.1", api.addr).await.unwrap();
    assert!(closed_within(&mut extra, Duration::from_secs(5)).await);
    round_trip(&api, "other-address").await;
    for s in &mut held {
        assert!(!closed_within(s, Duration::from_millis(10)).await);
    }
    drop(held);
    wait_until(Duration::from_secs(10), "slots to be freed", || async {
        let mut s = dial_from("127.0.2.1", api.addr).await.unwrap();
        s.write_all(b"GET /hostile HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp).await;
        resp.starts_with(b"HTTP/1.1 200")
    })
    .await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trickled_headers_are_cut_off() {
    let api = TestApi::start_with(ApiAuth::open(), short_limits).await;
    let mut s = TcpStream::connect(api.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    // One header byte every 200 ms never finishes a head: the header timeout still fires.
    let closed = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if s.write_all(b"X").await.is_err() || started.elapsed() > Duration::from_secs(10) {
            break closed_within(&mut s, Duration::from_secs(1)).await;
        }
        if closed_within(&mut s, Duration::from_millis(1)).await {
            break true;
        }
    };
    assert!(closed, "a trickled head kept its connection");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    round_trip_on_fresh_bucket(&api).await;
    api.stop().await;
}

async fn round_trip_on_fresh_bucket(api: &TestApi) {
    api.json(api.req(Method::PUT, "/hostile"), StatusCode::OK)
        .await;
    round_trip(api, "after").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_cut_off() {
    let api = TestApi::start_with(ApiAuth::open(), short_limits).await;
    api.json(api.req(Method::PUT, "/hostile"), StatusCode::OK)
        .await;
    let data = random_bytes(1 << 20, 7);
    api.put_object("/hostile/big", &data).await;
    // A tiny receive window, sixteen requests pipelined and nobody reading: the responses
    // (16 MiB) outgrow every socket buffer, stall, and the server gives up on the client.
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(api.addr).await.unwrap();
    let requests = "GET /hostile/big HTTP/1.1\r\nHost: x\r\n\r\n".repeat(16);
    s.write_all(requests.as_bytes()).await.unwrap();
    let started = Instant::now();
    within(
        Duration::from_secs(20),
        "the stalled client to be cut off",
        async {
            // The server's close shows as an error on a later write (it never read these bytes).
            while s.write_all(b"\r\n").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "cut before the send timeout"
    );
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got).await;
    assert!(
        got.len() < 16 * data.len(),
        "the stalled responses were all delivered ({} bytes)",
        got.len()
    );
    round_trip(&api, "after").await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_upload_fails_and_leaves_nothing() {
    let api = TestApi::start_with(ApiAuth::open(), short_limits).await;
    api.json(api.req(Method::PUT, "/hostile"), StatusCode::OK)
        .await;
    let mut s = TcpStream::connect(api.addr).await.unwrap();
    // More than the inline limit announced, part of it sent, then silence.
    let head = format!(
        "PUT /hostile/silent HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        4 * INLINE_MAX
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![1u8; 2 * INLINE_MAX as usize])
        .await
        .unwrap();
    let mut resp = Vec::new();
    within(
        Duration::from_secs(15),
        "the silent upload to be answered",
        async {
            let _ = s.read_to_end(&mut resp).await;
        },
    )
    .await;
    let (status, _, body) = parse_raw(&resp);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("IncompleteBody"));
    api.error(
        api.req(Method::GET, "/hostile/silent"),
        StatusCode::NOT_FOUND,
        "NoSuchKey",
    )
    .await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn absurd_policies_are_refused() {
    let api = TestApi::open().await;
    for (policy, needle) in [
        (
            json!({"k": 1, "m": 255, "copies": 16, "high_share": 0.0, "inline_max": 0}),
            "k + m = 256",
        ),
        (
            json!({"k": 1, "m": 6, "copies": 1, "high_share": 0.0, "inline_max": 0}),
            "7.00",
        ),
        (
            json!({"k": 4, "m": 2, "copies": 5, "high_share": 0.0, "inline_max": 0}),
            "copies = 5",
        ),
    ] {
        let r = api.req(Method::PUT, "/greedy").json(&policy);
        let msg = api
            .error(r, StatusCode::FORBIDDEN, "PolicyNotAllowed")
            .await;
        assert!(msg.contains(needle), "{msg}");
    }
    let fair = json!({"k": 4, "m": 2, "copies": 3, "high_share": 0.0, "inline_max": 0});
    api.json(api.req(Method::PUT, "/fair").json(&fair), StatusCode::OK)
        .await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn junk_gets_an_error_or_a_close_and_the_service_answers() {
    let api = TestApi::start_with(ApiAuth::open(), short_limits).await;
    for (i, junk) in [
        random_bytes(4096, 1),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(1 << 20)).into_bytes(),
        format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(10_000)).into_bytes(),
    ]
    .iter()
    .enumerate()
    {
        let mut s = TcpStream::connect(api.addr).await.unwrap();
        let _ = s.write_all(junk).await;
        let mut resp = Vec::new();
        within(
            Duration::from_secs(10),
            "junk to be answered or closed",
            async {
                let _ = s.read_to_end(&mut resp).await;
            },
        )
        .await;
        assert!(
            resp.is_empty() || resp.starts_with(b"HTTP/1.1 4"),
            "junk {i} got {:?}",
            String::from_utf8_lossy(&resp[..resp.len().min(80)])
        );
    }
    round_trip_on_fresh_bucket(&api).await;
    api.stop().await;
}
