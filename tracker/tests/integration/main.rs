//! Integration tests over real sockets on port 0: one binary, shared helpers in `common`.

mod api;
mod architecture;
mod audit;
mod binary;
mod common;
mod control;
mod devnet;
mod http;
mod interop;
mod keys;
mod librqbit;
mod records;
mod udp;
