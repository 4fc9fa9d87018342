//! Connections from strangers: admission caps per listener and per client address
//! ([`gate`]), TLS with the gateway's certificate ([`tls`]), and the HTTP server every HTTP
//! listener runs on ([`http`]): header, idle, send and request timeouts, so idle or trickling
//! sockets cost a bounded amount and go away.

mod fds;
pub mod gate;
pub mod http;
mod stall;
pub mod tls;

pub use fds::raise_open_file_limit;
pub use gate::{ConnCaps, Gate, Permit};
pub use http::{serve, HttpLimits, PeerAddr};
pub use tls::{secure, Io, Tls, TlsError, TlsIdentity};
