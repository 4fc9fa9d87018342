//! Test support written once for every crate of the workspace: its tests, benches and the
//! simulations in its unit tests.
//!
//! - [`Rng`] and [`random_bytes`]: seeded, reproducible data and choices;
//! - [`wait_for`], [`wait_until`] and [`within`]: wait for a condition or a future with a deadline,
//!   and fail naming what was awaited (no test sleeps for a fixed time);
//! - [`swarm`]: librqbit sessions on loopback that seed and fetch torrents;
//! - [`Node`], [`peer_binary`], [`workspace_binary`], [`corrupt`], [`files_under`]: child processes
//!   (`raidtorrent-peer` nodes, a `raidtorrent-tracker` gateway) and their data folders;
//! - [`tool`], [`tool_works`], [`python_libtorrent`]: stock tools, skipped when missing unless
//!   `RAIDTORRENT_REQUIRE_TOOLS=1`;
//! - [`Postgres`]: a real PostgreSQL server in a temporary cluster, for the metadata store;
//! - [`free_port`]: a port for a process that must be told its port before it binds.
//!
//! This crate depends on no crate of the workspace, so every one of them can dev-depend on it.
//!
//! ```
//! use raidtorrent_testkit::{random_bytes, Rng};
//!
//! let data = random_bytes(1000, 7);
//! assert_eq!(data, Rng::new(7).bytes(1000));
//! assert_ne!(data, random_bytes(1000, 8));
//! ```

mod net;
mod postgres;
mod process;
mod rng;
pub mod swarm;
mod tools;
mod wait;

pub use net::free_port;
pub use postgres::Postgres;
pub use process::{corrupt, files_under, held_set, peer_binary, workspace_binary, Node};
pub use rng::{random_bytes, Rng};
pub use tools::{python_libtorrent, tool, tool_works};
pub use wait::{wait_for, wait_until, within};
