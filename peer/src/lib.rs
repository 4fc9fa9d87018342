//! raidtorrent-peer: the node a volunteer runs to donate disk space to a raidtorrent cloud.
//!
//! A node keeps one control connection (BEP RT-0002, `bep-spec/`) to every gateway it joins and one
//! librqbit session for the shard swarms. Gateways send `hold` and `drop`; the node fetches, verifies
//! and seeds shards within its quota, deletes what it is told to drop, and reports what it holds and
//! how its transfers go. It survives restarts without downloading again: the held set and each shard's
//! metainfo are kept in the data directory and the data is hash-checked on start.
//!
//! Layers, pure first:
//! - [`size`] (shared with the gateway, from `raidtorrent-proto`), [`backoff`], [`ledger`] (the
//!   directive state machine, `STATE.md`), [`config`]: synchronous and unit-tested without I/O;
//! - [`held`]: the held set's snapshot and journal as bytes (pure);
//! - [`store`] and [`status`]: the files in the data directory; [`fds`]: the open-file limit and
//!   the shard-file budget under it;
//! - [`files`]: shard data files opened on demand through one node-wide cache of descriptors, so
//!   a node serves every shard it holds within a fixed number of open files;
//! - [`engine`]: the librqbit session;
//! - [`node`], `restore`, `directives`, `control`: the running node (held shards brought back from
//!   disk, directives, the control connections), every task named under one cancellation token
//!   ([`tasks`]);
//! - [`client`]: the same binary as a client of BEP RT-0004 (`put`, `get`, `ls`, `rm`, `stat`):
//!   objects encoded and seeded here, read back with a capability.
//!
//! ```no_run
//! # async fn example(config: raidtorrent_peer::config::Config) -> anyhow::Result<()> {
//! let node = raidtorrent_peer::RunningNode::start(config).await?;
//! println!("seeding on {}", node.listen_addr());
//! assert!(node.shutdown().await.is_empty(), "every task stopped");
//! # Ok(()) }
//! ```

pub mod backoff;
pub mod client;
pub mod config;
mod control;
mod directives;
pub mod engine;
pub mod fds;
pub mod files;
pub mod held;
pub mod ledger;
pub mod node;
pub mod reported;
mod restore;
pub use raidtorrent_proto::size;
pub mod status;
mod status_task;
pub mod store;
pub mod tasks;
pub mod tls;

pub use control::NODE_EXT_ID;
pub use node::RunningNode;
