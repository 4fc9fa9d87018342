//! Integration tests over real sockets on port 0: one binary, shared helpers in `common`.

mod binary;
mod common;
mod control;
mod http;
mod interop;
mod librqbit;
mod records;
mod udp;
