//! A gateway whose own data path is off (`objects.data_path = false`): it refuses to carry an
//! object's bytes and says what to use instead, while the rest of the API answers as before.

use super::*;

#[tokio::test]
async fn without_a_data_path_object_bytes_are_refused_and_the_rest_answers() {
    let t = TestApi::start_with(ApiAuth::open(), |c| c.objects.data_path = false).await;
    t.json(t.req(Method::PUT, "/bkt"), StatusCode::OK).await;

    let put = t.req(Method::PUT, "/bkt/k").body(random_bytes(64 << 10, 3));
    let message = t.error(put, StatusCode::FORBIDDEN, "DataPathOff").await;
    assert!(message.contains("raidtorrent-peer put"), "{message}");
    let get = t.req(Method::GET, "/bkt/k");
    t.error(get, StatusCode::FORBIDDEN, "DataPathOff").await;
    let ranged = t
        .req(Method::GET, "/bkt/k")
        .header(header::RANGE, "bytes=0-9");
    t.error(ranged, StatusCode::FORBIDDEN, "DataPathOff").await;

    // Nothing of the refused PUT was stored or staged.
    let listing = t.json(t.req(Method::GET, "/bkt"), StatusCode::OK).await;
    assert_eq!(listing["objects"].as_array().unwrap().len(), 0, "{listing}");
    assert_eq!(
        t.send(t.req(Method::HEAD, "/bkt/k")).await.0,
        StatusCode::NOT_FOUND
    );
    let staged = raidtorrent_testkit::files_under(&t._dir.path().join("data"));
    assert!(
        staged
            .iter()
            .all(|f| !f.to_string_lossy().contains("staging")),
        "{staged:?}"
    );

    // Everything that moves no object bytes still answers.
    t.json(t.req(Method::GET, "/_health"), StatusCode::OK).await;
    let bad_placement = t.req(Method::POST, "/_place/bkt/k").body("{}");
    t.error(bad_placement, StatusCode::BAD_REQUEST, "BadRequest")
        .await;
    let zeros = "0".repeat(64);
    let cap = t.req(Method::GET, &format!("/_cap/bkt/k?manifest={zeros}"));
    t.error(cap, StatusCode::NOT_FOUND, "NoSuchKey").await;
    t.stop().await;
}

#[tokio::test]
async fn an_unknown_placement_cannot_be_cancelled() {
    let t = TestApi::open().await;
    let id = "0".repeat(32);
    let cancel = t.req(Method::DELETE, &format!("/_place/{id}"));
    let message = t
        .error(cancel, StatusCode::NOT_FOUND, "NoSuchPlacement")
        .await;
    assert!(message.contains(&id), "{message}");
    t.stop().await;
}
