//! Shared helpers: an in-process tracker on port 0, raw HTTP and UDP clients, a bencode reader and
//! a .torrent builder. Waiting, seeded data, librqbit sessions, ports and the stock-tool gate come
//! from `raidtorrent-testkit`, re-exported here for the suite.

use bendy::decoding::{Decoder, Object};
use raidtorrent_tracker::config::Config;
use raidtorrent_tracker::protocol::udp::{OwnedResponse, Request};
use raidtorrent_tracker::registry::Registry;
use raidtorrent_tracker::server::{bind_tcp, bind_udp, Listeners, Service};
use sha1::{Digest, Sha1};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub use raidtorrent_testkit::{
    free_port, python_libtorrent, random_bytes, swarm, tool, wait_for, wait_until,
};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A tracker serving on 127.0.0.1 ports chosen by the kernel.
pub struct TestTracker {
    pub service: Service,
    pub http: SocketAddr,
    pub udp: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

/// A config for tests: short intervals, fast flushes, an admin token.
pub fn test_config(open: bool) -> Config {
    let mut c = Config {
        open,
        admin_token: Some(ADMIN_TOKEN.into()),
        ..Config::default()
    };
    c.announce.interval_secs = 60;
    c.announce.min_interval_secs = 5;
    c.announce.node_interval_secs = 600;
    c.records.flush_interval_ms = 50;
    c
}

impl TestTracker {
    pub async fn start(config: Config) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("tracker.db");
        let mut t = Self::start_on(config, &db).await;
        t._dir = Some(dir);
        t
    }

    /// Starts on an existing database file (to test restarts).
    pub async fn start_on(config: Config, db: &Path) -> Self {
        config.validate().unwrap();
        let registry = Registry::open(db).await.unwrap();
        let http = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let udp = bind_udp("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let service = Service::start(
            &config,
            registry,
            Listeners {
                http: Some(http),
                udp: Some(udp),
                tls: None,
            },
        )
        .await
        .unwrap();
        TestTracker {
            http: service.http_addr.unwrap(),
            udp: service.udp_addr.unwrap(),
            service,
            _dir: None,
        }
    }

    pub fn registry(&self) -> &Registry {
        self.service.tracker().registry()
    }

    /// Registers a node; returns (id, announce token): what its announce URLs carry (the
    /// passkey, its control credential, never goes in a URL).
    pub async fn node(&self, name: &str) -> (i64, String) {
        let n = self.registry().create_node(name).await.unwrap();
        (n.node.id, n.announce_token)
    }

    pub fn announce_url(&self, token: &str) -> String {
        format!("http://{}/announce/{token}", self.http)
    }
}

/// One HTTP/1.1 request on a fresh connection; returns (status, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    parse_response(&resp)
}

fn parse_response(resp: &[u8]) -> (u16, Vec<u8>) {
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&resp[..end]);
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, resp[end + 4..].to_vec())
}

pub async fn get(addr: SocketAddr, target: &str) -> (u16, Vec<u8>) {
    http(addr, "GET", target, &[], b"").await
}

/// A GET of the admin API with the test's admin token.
pub async fn admin_get(addr: SocketAddr, target: &str) -> (u16, Vec<u8>) {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    http(addr, "GET", target, &[("Authorization", &auth)], b"").await
}

/// A node report (`/admin/nodes...`), read with the admin token.
pub async fn admin_json(addr: SocketAddr, target: &str) -> serde_json::Value {
    let (status, body) = admin_get(addr, target).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// A bencode value read by an independent decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(m) => m.get(key.as_bytes()),
            _ => None,
        }
    }

    pub fn int(&self, key: &str) -> i64 {
        match self.get(key) {
            Some(Value::Int(i)) => *i,
            other => panic!("{key}: {other:?} in {self:?}"),
        }
    }

    pub fn bytes(&self, key: &str) -> &[u8] {
        match self.get(key) {
            Some(Value::Bytes(b)) => b,
            other => panic!("{key}: {other:?} in {self:?}"),
        }
    }

    pub fn failure(&self) -> Option<String> {
        match self.get("failure reason") {
            Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

fn convert(o: Object<'_, '_>) -> Value {
    match o {
        Object::Integer(s) => Value::Int(s.parse().unwrap()),
        Object::Bytes(b) => Value::Bytes(b.to_vec()),
        Object::List(mut l) => {
            let mut v = Vec::new();
            while let Some(item) = l.next_object().unwrap() {
                v.push(convert(item));
            }
            Value::List(v)
        }
        Object::Dict(mut d) => {
            let mut m = BTreeMap::new();
            while let Some((k, item)) = d.next_pair().unwrap() {
                m.insert(k.to_vec(), convert(item));
            }
            Value::Dict(m)
        }
    }
}

pub fn decode(b: &[u8]) -> Value {
    let mut dec = Decoder::new(b);
    convert(
        dec.next_object()
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
            .unwrap(),
    )
}

/// Compact peers (6 bytes each) as addresses.
pub fn compact_peers(b: &[u8]) -> Vec<SocketAddr> {
    b.chunks(6)
        .map(|c| SocketAddr::from(([c[0], c[1], c[2], c[3]], u16::from_be_bytes([c[4], c[5]]))))
        .collect()
}

pub fn enc(b: &[u8]) -> String {
    let mut s = String::new();
    raidtorrent_tracker::protocol::http::percent_encode(b, &mut s);
    s
}

/// A query string for an announce.
pub fn announce_query(info_hash: &[u8; 20], peer_id: &[u8; 20], port: u16, left: u64) -> String {
    format!(
        "info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}&compact=1",
        enc(info_hash),
        enc(peer_id)
    )
}

/// A UDP client socket bound to `local` (e.g. 127.0.0.5:0), talking to `server`.
pub struct UdpClient {
    pub sock: UdpSocket,
    pub server: SocketAddr,
}

impl UdpClient {
    pub async fn new(local: &str, server: SocketAddr) -> Self {
        UdpClient {
            sock: UdpSocket::bind(local).await.unwrap(),
            server,
        }
    }

    pub async fn send_raw(&self, b: &[u8]) {
        self.sock.send_to(b, self.server).await.unwrap();
    }

    pub async fn recv(&self) -> OwnedResponse {
        let raw = self.recv_raw().await;
        OwnedResponse::parse(&raw, false).expect("well-formed answer")
    }

    /// The next datagram's bytes.
    pub async fn recv_raw(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), self.sock.recv_from(&mut buf))
            .await
            .expect("UDP answer within 10 s")
            .unwrap();
        buf.truncate(n);
        buf
    }

    pub async fn request(&self, r: &Request) -> OwnedResponse {
        let mut b = Vec::new();
        r.write(&mut b);
        self.send_raw(&b).await;
        self.recv().await
    }

    pub async fn connect(&self) -> u64 {
        match self.request(&Request::Connect { transaction_id: 7 }).await {
            OwnedResponse::Connect {
                transaction_id: 7,
                connection_id,
            } => connection_id,
            other => panic!("connect answered {other:?}"),
        }
    }
}

fn bstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{}:", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// A single-file v1 .torrent for `data`; returns (metainfo bytes, info-hash).
pub fn make_torrent(name: &str, data: &[u8], announce: &str, private: bool) -> (Vec<u8>, [u8; 20]) {
    let piece_len = 16 * 1024;
    let mut pieces = Vec::new();
    for chunk in data.chunks(piece_len) {
        pieces.extend_from_slice(&Sha1::digest(chunk));
    }
    let mut info = b"d".to_vec();
    bstr(&mut info, b"length");
    info.extend_from_slice(format!("i{}e", data.len()).as_bytes());
    bstr(&mut info, b"name");
    bstr(&mut info, name.as_bytes());
    bstr(&mut info, b"piece length");
    info.extend_from_slice(format!("i{piece_len}e").as_bytes());
    bstr(&mut info, b"pieces");
    bstr(&mut info, &pieces);
    if private {
        bstr(&mut info, b"private");
        info.extend_from_slice(b"i1e");
    }
    info.push(b'e');
    let hash: [u8; 20] = Sha1::digest(&info).into();
    let mut t = b"d".to_vec();
    bstr(&mut t, b"announce");
    bstr(&mut t, announce.as_bytes());
    bstr(&mut t, b"info");
    t.extend_from_slice(&info);
    t.push(b'e');
    (t, hash)
}
