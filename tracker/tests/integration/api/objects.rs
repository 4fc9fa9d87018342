//! Buckets, objects, ranges and listings: every success path and the errors next to each.

use super::*;

#[tokio::test]
async fn buckets_are_created_listed_and_checked() {
    let t = TestApi::open().await;
    let b = t.json(t.req(Method::PUT, "/photos"), StatusCode::OK).await;
    assert_eq!(b["name"], "photos");
    assert_eq!(b["policy"]["k"], 2);
    t.error(
        t.req(Method::PUT, "/photos"),
        StatusCode::CONFLICT,
        "BucketAlreadyExists",
    )
    .await;
    let policy = json!({"k": 4, "m": 2, "copies": 2, "high_share": 0.5, "inline_max": 4096});
    let b = t
        .json(t.req(Method::PUT, "/wide").json(&policy), StatusCode::OK)
        .await;
    assert_eq!(b["policy"], policy);
    let v = t.json(t.req(Method::GET, "/"), StatusCode::OK).await;
    let names: Vec<_> = v["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].clone())
        .collect();
    assert_eq!(names, [json!("photos"), json!("wide")]);

    let (status, _, body) = t.send(t.req(Method::HEAD, "/photos")).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    let (status, _, _) = t.send(t.req(Method::HEAD, "/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    t.error(
        t.req(Method::PUT, "/No_Such"),
        StatusCode::BAD_REQUEST,
        "InvalidBucketName",
    )
    .await;
    let msg = t
        .error(
            t.req(Method::PUT, "/b-json").body("k=4"),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        )
        .await;
    assert!(msg.contains("JSON bucket policy"), "{msg}");
    let msg = t
        .error(
            t.req(Method::PUT, "/b-json").body(r#"{"k": 4}"#),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        )
        .await;
    assert!(msg.contains("missing field"), "{msg}");
    let zero_k = json!({"k": 0, "m": 2, "copies": 2, "high_share": 0.5, "inline_max": 4096});
    t.error(
        t.req(Method::PUT, "/b-json").json(&zero_k),
        StatusCode::BAD_REQUEST,
        "BadRequest",
    )
    .await;
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(70_000));
    t.error(
        t.req(Method::PUT, "/b-json").body(big),
        StatusCode::BAD_REQUEST,
        "BadRequest",
    )
    .await;
    // None of the refused creations left a bucket behind.
    let v = t.json(t.req(Method::GET, "/"), StatusCode::OK).await;
    assert_eq!(v["buckets"].as_array().unwrap().len(), 2);
    t.stop().await;
}

#[tokio::test]
async fn objects_are_stored_read_described_and_deleted() {
    let t = TestApi::open().await;
    t.json(t.req(Method::PUT, "/docs"), StatusCode::OK).await;
    for len in [0, 1, 4096, INLINE_MAX as usize] {
        let data = random_bytes(len, len as u64);
        let path = format!("/docs/dir/sub dir/o%C3%BCt-{len}.bin");
        let info = t.put_object(&path, &data).await;
        let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &data));
        assert_eq!(info["size"], len as u64);
        assert_eq!(info["sha256"], sha.as_str());
        assert_eq!(info["key"], format!("dir/sub dir/oüt-{len}.bin"));

        let (status, headers, body) = t.send(t.req(Method::GET, &path)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body == data, "{len} bytes read back differ");
        assert_eq!(headers[header::CONTENT_LENGTH], len.to_string().as_str());
        assert_eq!(headers[header::ETAG], format!("\"{sha}\"").as_str());
        assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
        let modified = headers[header::LAST_MODIFIED].to_str().unwrap();
        let modified = httpdate::parse_http_date(modified).unwrap();
        let age = std::time::SystemTime::now()
            .duration_since(modified)
            .unwrap();
        assert!(age < Duration::from_secs(120), "{age:?}");

        let (status, headers, body) = t.send(t.req(Method::HEAD, &path)).await;
        assert_eq!((status, body.len()), (StatusCode::OK, 0));
        assert_eq!(headers[header::CONTENT_LENGTH], len.to_string().as_str());
        assert_eq!(headers[header::ETAG], format!("\"{sha}\"").as_str());
    }
    // Replacing an object changes what every reader sees.
    t.put_object("/docs/a", b"first").await;
    t.put_object("/docs/a", b"second").await;
    let (_, _, body) = t.send(t.req(Method::GET, "/docs/a")).await;
    assert_eq!(body, b"second");

    let (status, _, body) = t.send(t.req(Method::DELETE, "/docs/a")).await;
    assert_eq!((status, body.len()), (StatusCode::NO_CONTENT, 0));
    t.error(
        t.req(Method::GET, "/docs/a"),
        StatusCode::NOT_FOUND,
        "NoSuchKey",
    )
    .await;
    let (status, _, _) = t.send(t.req(Method::HEAD, "/docs/a")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.error(
        t.req(Method::GET, "/nobucket/a"),
        StatusCode::NOT_FOUND,
        "NoSuchBucket",
    )
    .await;
    t.error(
        t.req(Method::PUT, "/nobucket/a").body("x"),
        StatusCode::NOT_FOUND,
        "NoSuchBucket",
    )
    .await;
    let key = "k".repeat(1025);
    t.error(
        t.req(Method::PUT, &format!("/docs/{key}")).body("x"),
        StatusCode::BAD_REQUEST,
        "InvalidKey",
    )
    .await;
    t.error(
        t.req(Method::PUT, "/docs/a%0Ab").body("x"),
        StatusCode::BAD_REQUEST,
        "InvalidKey",
    )
    .await;
    t.stop().await;
}

#[tokio::test]
async fn ranged_reads_at_odd_offsets() {
    let t = TestApi::open().await;
    t.json(t.req(Method::PUT, "/rng"), StatusCode::OK).await;
    // Random bytes: a misplaced range cannot match by chance.
    let data = random_bytes(100_003, 2);
    t.put_object("/rng/obj", &data).await;
    let size = data.len() as u64;
    let cases: &[(&str, u64, u64)] = &[
        ("bytes=0-0", 0, 1),
        ("bytes=1-1", 1, 2),
        ("bytes=7-4100", 7, 4101),
        ("bytes=65535-65537", 65535, 65538),
        ("bytes=99999-", 99999, size),
        ("bytes=100002-100002", 100002, size),
        ("bytes=3-999999999", 3, size),
        ("bytes=-1", size - 1, size),
        ("bytes=-4097", size - 4097, size),
        ("bytes=-999999", 0, size),
    ];
    for &(range, start, end) in cases {
        let (status, headers, body) = t
            .send(t.req(Method::GET, "/rng/obj").header(header::RANGE, range))
            .await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert!(
            body == data[start as usize..end as usize],
            "{range}: wrong bytes"
        );
        let content_range = format!("bytes {start}-{}/{size}", end - 1);
        assert_eq!(
            headers[header::CONTENT_RANGE],
            content_range.as_str(),
            "{range}"
        );
        assert_eq!(
            headers[header::CONTENT_LENGTH],
            (end - start).to_string().as_str()
        );
    }
    for range in ["bytes=100003-", "bytes=200000-200001", "bytes=-0"] {
        let (status, headers, body) = t
            .send(t.req(Method::GET, "/rng/obj").header(header::RANGE, range))
            .await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(headers[header::CONTENT_RANGE], "bytes */100003");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "InvalidRange");
    }
    for range in [
        "bytes=5-2",
        "bytes=x-",
        "lines=1-2",
        "bytes 1-2",
        "bytes=--1",
    ] {
        let msg = t
            .error(
                t.req(Method::GET, "/rng/obj").header(header::RANGE, range),
                StatusCode::BAD_REQUEST,
                "BadRequest",
            )
            .await;
        assert!(
            msg.contains("Range") || msg.contains("range"),
            "{range}: {msg}"
        );
    }
    // Several ranges: the whole object, as documented.
    let (status, headers, body) = t
        .send(
            t.req(Method::GET, "/rng/obj")
                .header(header::RANGE, "bytes=0-9,20-29"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == data);
    assert!(headers.get(header::CONTENT_RANGE).is_none());
    // An empty object has no satisfiable range.
    t.put_object("/rng/empty", b"").await;
    let (status, headers, _) = t
        .send(
            t.req(Method::GET, "/rng/empty")
                .header(header::RANGE, "bytes=0-"),
        )
        .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(headers[header::CONTENT_RANGE], "bytes */0");
    t.stop().await;
}

#[tokio::test]
async fn listings_page_through_a_prefix() {
    let t = TestApi::open().await;
    t.json(t.req(Method::PUT, "/list"), StatusCode::OK).await;
    let mut keys: Vec<String> = (0..23).map(|i| format!("logs/2026/{i:03}")).collect();
    keys.push("logs/2027 x".into());
    keys.push("other".into());
    for k in &keys {
        t.put_object(&format!("/list/{}", k.replace(' ', "%20")), k.as_bytes())
            .await;
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/list?prefix=logs%2F2026%2F&limit=7".to_owned();
        if let Some(a) = &after {
            path.push_str(&format!("&after={}", encode(a)));
        }
        let page = t.json(t.req(Method::GET, &path), StatusCode::OK).await;
        pages += 1;
        let objects = page["objects"].as_array().unwrap();
        assert!(objects.len() <= 7);
        for o in objects {
            assert_eq!(o["size"], o["key"].as_str().unwrap().len());
            seen.push(o["key"].as_str().unwrap().to_owned());
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, keys[..23]);
    assert_eq!(pages, 4);
    let page = t
        .json(
            t.req(Method::GET, "/list?prefix=logs%2F2027+x"),
            StatusCode::OK,
        )
        .await;
    assert_eq!(page["objects"][0]["key"], "logs/2027 x");
    let page = t.json(t.req(Method::GET, "/list"), StatusCode::OK).await;
    assert_eq!(page["objects"].as_array().unwrap().len(), keys.len());
    assert!(page["next_after"].is_null());
    for bad in [
        "/list?limit=0",
        "/list?limit=1001",
        "/list?limit=ten",
        "/list?prefx=a",
        "/list?prefix=%G1",
    ] {
        t.error(
            t.req(Method::GET, bad),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        )
        .await;
    }
    t.error(
        t.req(Method::GET, "/none?limit=5"),
        StatusCode::NOT_FOUND,
        "NoSuchBucket",
    )
    .await;
    t.stop().await;
}

#[tokio::test]
async fn the_health_report_is_served_beside_the_buckets() {
    let t = TestApi::open().await;
    // Every worker steps once at start; once the health worker's first pass is over it idles.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let v = loop {
        let v = t.json(t.req(Method::GET, "/_health"), StatusCode::OK).await;
        if v["workers"][1]["steps"].as_u64() >= Some(1) || std::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(v["state"], "idle");
    let workers: Vec<&str> = v["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(workers, ["collector", "health", "audits", "packer"]);
    assert_eq!(v["health"]["objects"], 0);
    assert_eq!(v["tasks_done"], 0);
    let (status, headers, _) = t.send(t.req(Method::PUT, "/_health")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "GET");
    // It is no bucket: a bucket of that name cannot exist.
    t.error(
        t.req(Method::PUT, "/_health2"),
        StatusCode::BAD_REQUEST,
        "InvalidBucketName",
    )
    .await;
}
