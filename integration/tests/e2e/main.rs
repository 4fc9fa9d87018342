//! A real gateway (tracker, control listener, its own librqbit session, SQLite on disk) and real
//! `raidtorrent-peer` processes on loopback: objects go in, nodes die, objects come back.

mod chaos;
mod client;
mod crash;
mod gateways;
mod groups;
mod healing;
mod nodes;
mod objects;
mod ops;
mod packing;
mod reads;
mod s3;
mod stock;
mod tls;
mod tracking;
