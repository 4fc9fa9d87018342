//! A discrete-event durability and availability simulator for raidtorrent.
//!
//! It drives the gateway's own decision code, not a model of it: uploads are placed by
//! `placement::place`, and every health pass goes through the incremental
//! `repair::dirty::Tracker` and `repair::plan`, exactly in the gateway's order. Around them it
//! simulates the world: volunteer nodes arriving and leaving for good, daily offline hours,
//! whole-zone outages, silent corruption found by audits, and repair transfers under a
//! bandwidth model. One run is single-threaded and deterministic from its seed; runs go in
//! parallel.
//!
//! ```no_run
//! let cfg = raidtorrent_durability::config::SimConfig::load("durability/presets/quick.toml".as_ref())?;
//! let runs = raidtorrent_durability::runner::run_all(&cfg, false);
//! let summary = raidtorrent_durability::report::summarize(&cfg, &runs);
//! println!("{}", raidtorrent_durability::report::summary_csv(&summary));
//! # Ok::<(), raidtorrent_durability::config::ConfigError>(())
//! ```

pub mod config;
pub mod dist;
pub mod markov;
pub mod metrics;
pub mod model;
mod pass;
pub mod report;
pub mod runner;
pub mod sim;
pub mod stats;
pub mod tally;
mod tasks;
pub mod view;
pub mod world;
