//! Who may call, and what happens to requests that are malformed or cut short.

use super::*;

#[tokio::test]
async fn api_keys_are_required_unless_open() {
    let t = TestApi::start(ApiAuth::keys(["other-key", KEY])).await;
    let url = format!("http://{}/", t.addr);
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer "),
        Some(KEY),
        Some("Basic eDp5"),
    ] {
        let mut r = t.client.get(&url);
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        let (status, headers, body) = t.send(r).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "Unauthorized");
    }
    // Nothing happens without the key, not even on paths that do not exist.
    let (status, _, _) = t
        .send(t.client.put(format!("http://{}/sneaky", t.addr)))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    t.json(t.req(Method::PUT, "/keyed"), StatusCode::OK).await;
    let v = t.json(t.req(Method::GET, "/"), StatusCode::OK).await;
    assert_eq!(v["buckets"].as_array().unwrap().len(), 1);
    let second = t.client.get(&url).bearer_auth("other-key");
    assert_eq!(t.send(second).await.0, StatusCode::OK);
    t.stop().await;

    let open = TestApi::open().await;
    let (status, _, _) = open
        .send(open.client.get(format!("http://{}/", open.addr)))
        .await;
    assert_eq!(status, StatusCode::OK);
    open.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_clear_client_errors() {
    let t = TestApi::open().await;
    t.json(t.req(Method::PUT, "/mal"), StatusCode::OK).await;
    let host = t.addr;
    for target in ["/mal/%zz", "/mal/a%", "/mal/%C3%28", "/%E0/k"] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (status, _, body) = raw(t.addr, req.as_bytes()).await;
        assert_eq!(status, 400, "{target}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            v["message"].as_str().unwrap().contains("encoding")
                || v["message"].as_str().unwrap().contains("UTF-8"),
            "{v}"
        );
    }
    // A header block far larger than any client sends is refused by the HTTP layer (431).
    let req = format!(
        "GET /mal/a HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let (status, _, _) = raw(t.addr, req.as_bytes()).await;
    assert!((400..500).contains(&status), "{status}");
    // A Range header that is not ASCII.
    let mut req =
        format!("GET /mal/a HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nRange: bytes=")
            .into_bytes();
    req.extend_from_slice(b"\xff\xfe-1\r\n\r\n");
    t.put_object("/mal/a", b"abc").await;
    let (status, _, body) = raw(t.addr, &req).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    // Two Range headers.
    let req = format!("GET /mal/a HTTP/1.1\r\nHost: {host}\r\nRange: bytes=0-0\r\nRange: bytes=1-1\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(t.addr, req.as_bytes()).await.0, 400);
    // Methods the API does not have.
    let (status, headers, _) = t.send(t.req(Method::POST, "/mal/a")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "GET, HEAD, PUT, DELETE");
    t.error(
        t.req(Method::DELETE, "/mal"),
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
    )
    .await;
    t.error(
        t.req(Method::PUT, "/"),
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
    )
    .await;
    t.stop().await;
}

#[tokio::test]
async fn an_upload_cut_short_stores_nothing() {
    let t = TestApi::open().await;
    t.json(t.req(Method::PUT, "/cut"), StatusCode::OK).await;
    t.put_object("/cut/kept", b"the first version").await;
    for path in ["/cut/kept", "/cut/new"] {
        let mut s = TcpStream::connect(t.addr).await.unwrap();
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 500000\r\n\r\n",
            t.addr
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&random_bytes(200_000, 1)).await.unwrap();
        s.shutdown().await.unwrap();
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp).await;
        let (status, _, body) = parse_raw(&resp);
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "IncompleteBody");
    }
    let (_, _, body) = t.send(t.req(Method::GET, "/cut/kept")).await;
    assert_eq!(body, b"the first version");
    t.error(
        t.req(Method::GET, "/cut/new"),
        StatusCode::NOT_FOUND,
        "NoSuchKey",
    )
    .await;
    let page = t.json(t.req(Method::GET, "/cut"), StatusCode::OK).await;
    assert_eq!(page["objects"].as_array().unwrap().len(), 1);
    t.stop().await;
}
