//! The raidtorrent gateway's tracker: a BitTorrent tracker (BEP 3 HTTP announce, BEP 23 compact
//! peers, BEP 7 IPv6, BEP 48 scrape, BEP 15 UDP with BEP 41 URL data) for private swarms
//! (BEP 27) of registered nodes, which records how every node behaves.
//!
//! Layers, bottom up; a module imports only modules above it in this list (ARCHITECTURE.md at
//! the top of the workspace has the picture; `tests/integration/architecture.rs` checks it):
//! - pure cores, no I/O, no clock: [`ids`] (the node-id and info-hash types every layer shares),
//!   [`protocol`] (tracker wire formats), [`scoring`] (each node's score, tier and reasons),
//!   [`placement`] (which nodes take which copies of a shard), [`repair`] (which shards need
//!   copies and which copies move, riskiest first), [`audit`] (the BEP 3 conversation an audit
//!   speaks, pure, and the probe that speaks it over TCP);
//! - state and storage: [`swarm`] (in-memory swarms, the hot path), [`registry`] (nodes,
//!   passkeys and reliability records in SQLite, off the hot path); [`metrics`] (the counters
//!   and gauges `GET /metrics` exports);
//! - [`net`]: connections from strangers: caps per listener and per address, TLS with the
//!   gateway's certificate, and the HTTP server with header, idle and send timeouts that every
//!   HTTP listener runs on;
//! - [`control`]: the control listener nodes dial (BEP RT-0002): authentication, directives,
//!   reports;
//! - [`gateway`]: the object path (write and read pipelines, metadata, copies, workers),
//!   [`api`], its native HTTP front, and [`s3`], its S3 front; [`ops`], the operator view
//!   (dashboard, its JSON, the metrics' snapshot gauges, shard export);
//! - [`config`]: the TOML configuration of every part;
//! - the tracker service: [`tracker`] (access control and interval policy over swarms and
//!   registry) and [`server`] (the HTTP and UDP fronts);
//! - [`cloud`]: one running gateway, every part started together and stopped in order.
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
pub mod ids;
pub mod metrics;
pub mod net;
pub mod ops;
pub mod placement;
pub mod protocol;
pub mod registry;
pub mod repair;
pub mod s3;
pub mod scoring;
pub mod server;
pub mod swarm;
pub mod tracker;
