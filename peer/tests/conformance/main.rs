//! Conformance of `raidtorrent-peer` to BEP RT-0002, driven by a raw peer-wire gateway written in the
//! test (`common/`), with real librqbit transfers over loopback. Peers reach the node through the
//! hold's `peers` list; no tracker runs here.

mod cli;
mod common;
mod connection;
mod directives;
mod interop;
mod open_files;
mod restart;
