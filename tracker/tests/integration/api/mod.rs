//! The object API over real TCP: a real gateway (SQLite metadata store, control hub, librqbit
//! session) behind `api::routes`, served on 127.0.0.1:0 and driven by reqwest and by raw sockets
//! for requests no polite client sends. Objects here fit the inline path, so no node is needed.

use std::net::SocketAddr;
use std::time::Duration;

use raidtorrent_testkit::random_bytes;
use raidtorrent_tracker::api::ApiAuth;
use raidtorrent_tracker::cloud::{Cloud, CloudListeners, CloudSettings};
use raidtorrent_tracker::config::{Config, ObjectConfig};
use raidtorrent_tracker::gateway::BucketPolicy;
use raidtorrent_tracker::net::TlsIdentity;
use raidtorrent_tracker::registry::Registry;
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod access_keys;
mod data_path;
mod errors;
mod hostile;
mod objects;
mod placements;
mod service;
mod tls;

const KEY: &str = "api-key-for-tests-5f1e0c";

/// Objects up to this size stay in the metadata store.
const INLINE_MAX: u64 = 1 << 20;

struct TestApi {
    addr: SocketAddr,
    /// "https" when the configuration turned TLS on, else "http".
    scheme: &'static str,
    client: reqwest::Client,
    key: Option<&'static str>,
    cloud: Cloud,
    _dir: tempfile::TempDir,
}

impl TestApi {
    /// A whole gateway with no nodes, its object API on 127.0.0.1:0.
    async fn start(auth: ApiAuth) -> Self {
        Self::start_with(auth, |_| {}).await
    }

    /// The same, with `edit` applied to its configuration first.
    async fn start_with(auth: ApiAuth, edit: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            http_listen: "127.0.0.1:0".into(),
            udp_listen: "off".into(),
            db: dir.path().join("gateway.db"),
            objects: ObjectConfig {
                api_listen: "127.0.0.1:0".into(),
                control_listen: "127.0.0.1:0".into(),
                data_dir: dir.path().join("data"),
                default_policy: BucketPolicy {
                    k: 2,
                    m: 1,
                    copies: 1,
                    high_share: 0.0,
                    inline_max: INLINE_MAX,
                },
                max_object_size: 1 << 30,
                hold_timeout_secs: 10,
                fetch_timeout_secs: 10,
                read_hedge: 0,
                segment_target: 1 << 20,
                ..ObjectConfig::default()
            },
            ..Config::default()
        };
        let mut config = config;
        // Objects of every size take the swarm path here; packing has tests of its own.
        config.objects.packing.max_object_size = 0;
        edit(&mut config);
        let registry = Registry::open(&config.db).await.unwrap();
        let identity = config.tls_identity().unwrap();
        let tls = identity.as_ref().map(|i| i.acceptor().unwrap());
        let listeners = CloudListeners::bind(&config, tls).await.unwrap();
        let settings = CloudSettings {
            auth: auth.clone(),
            ..CloudSettings::from_config(&config)
        };
        let cloud = Cloud::start(&config, registry, listeners, settings)
            .await
            .unwrap();
        TestApi {
            addr: cloud.api_addr,
            scheme: if identity.is_some() { "https" } else { "http" },
            client: client(identity.as_ref()),
            key: (!auth.is_open()).then_some(KEY),
            cloud,
            _dir: dir,
        }
    }

    async fn open() -> Self {
        Self::start(ApiAuth::open()).await
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .client
            .request(method, format!("{}://{}{path}", self.scheme, self.addr));
        match self.key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> (StatusCode, header::HeaderMap, Vec<u8>) {
        let res = r.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        (status, headers, res.bytes().await.unwrap().to_vec())
    }

    async fn json(&self, r: reqwest::RequestBuilder, want: StatusCode) -> Value {
        let (status, headers, body) = self.send(r).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, want, "{text}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Asserts an error answer: its status and its `error` code.
    async fn error(&self, r: reqwest::RequestBuilder, want: StatusCode, code: &str) -> String {
        let v = self.json(r, want).await;
        assert_eq!(v["error"], code, "{v}");
        v["message"].as_str().unwrap().to_owned()
    }

    async fn put_object(&self, path: &str, data: &[u8]) -> Value {
        self.json(
            self.req(Method::PUT, path).body(data.to_vec()),
            StatusCode::OK,
        )
        .await
    }

    async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(10), self.cloud.shutdown())
            .await
            .expect("the gateway stops");
    }
}

/// A client that trusts the gateway's certificate, and no other, when there is one.
fn client(identity: Option<&TlsIdentity>) -> reqwest::Client {
    let Some(identity) = identity else {
        return reqwest::Client::new();
    };
    let pem = std::fs::read(identity.cert_file()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One raw HTTP/1.1 exchange: returns the status, the header block and the body.
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp).await;
    parse_raw(&resp)
}

fn parse_raw(resp: &[u8]) -> (u16, String, Vec<u8>) {
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(resp)));
    let head = String::from_utf8_lossy(&resp[..end]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, resp[end + 4..].to_vec())
}
