//! The raidtorrent gateway's tracker: a BitTorrent tracker (BEP 3 HTTP announce, BEP 23 compact
//! peers, BEP 7 IPv6, BEP 48 scrape, BEP 15 UDP with BEP 41 URL data) for private swarms
//! (BEP 27) of registered nodes, which records how every node behaves.
//!
//! Layers, bottom up:
//! - [`protocol`]: wire formats, pure functions;
//! - [`swarm`]: in-memory swarm state (the hot path);
//! - [`registry`]: nodes, passkeys and reliability records in SQLite (off the hot path);
//! - [`tracker`]: access control and interval policy over the two;
//! - [`server`]: the HTTP and UDP fronts and the service's tasks;
//! - [`config`]: the TOML configuration;
//! - [`cloud`]: one running gateway, every part started together and stopped in order;
//! - [`control`]: the control listener nodes dial (BEP RT-0002): authentication, directives, reports;
//! - [`gateway`]: the object path: buckets, objects, the write and read pipelines over the swarm;
//! - [`api`]: the object API over HTTP in front of the gateway (S3-style paths, JSON, API keys);
//! - [`placement`]: which nodes take which copies of a shard (pure, simulated in tests);
//! - [`scoring`]: each node's reliability score and tier, with reasons (pure);
//! - [`audit`]: checking that a node really serves the pieces it holds, over the BitTorrent wire;
//! - [`repair`]: which shards need copies and which copies move, riskiest first (pure).
//!
//! ```
//! use raidtorrent_tracker::protocol::http::AnnounceRequest;
//! let q = b"info_hash=%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13%14\
//!           &peer_id=-rQ0910-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=0";
//! let req = AnnounceRequest::parse(q).unwrap();
//! assert_eq!(req.port, 6881);
//! assert_eq!(req.left, 0); // a seeder: librqbit never sends `completed`
//! ```

pub mod api;
pub mod audit;
pub mod cloud;
pub mod config;
pub mod control;
pub mod gateway;
pub mod placement;
pub mod protocol;
pub mod registry;
pub mod repair;
pub mod scoring;
pub mod server;
pub mod swarm;
pub mod tracker;
