//! Admission of connections: a cap on how many a listener holds at once and on how many one
//! client address holds. Over either cap a connection is closed as soon as it is accepted, so
//! one client (or one network: IPv6 clients count per /64) cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Caps on the connections one listener holds open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnCaps {
    /// Connections open at once from everyone.
    pub max: usize,
    /// Connections open at once from one IPv4 address or one IPv6 /64.
    pub per_ip: usize,
}

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the listener holds its maximum of {0} connections")]
    Full(usize),
    #[error("this address holds its maximum of {0} connections")]
    PerIp(usize),
}

/// Counts a listener's open connections; clones share the counts.
#[derive(Clone, Debug)]
pub struct Gate {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    caps: ConnCaps,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_source: HashMap<Source, usize>,
}

/// Whom a connection is counted against: an IPv4 address or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Source(u128);

impl Source {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Source(u32::from(v4).into()),
            IpAddr::V6(v6) => Source((u128::from(v6) >> 64) | (1 << 64)),
        }
    }
}

/// One admitted connection; dropping it frees its slot.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<Inner>,
    source: Source,
}

impl Gate {
    pub fn new(caps: ConnCaps) -> Self {
        Gate {
            inner: Arc::new(Inner {
                caps,
                open: Mutex::new(Open::default()),
            }),
        }
    }

    /// Admits a connection from `ip` unless a cap is reached.
    pub fn admit(&self, ip: IpAddr) -> Result<Permit, Refused> {
        let caps = self.inner.caps;
        let source = Source::of(ip);
        let mut open = self.inner.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= caps.max {
            return Err(Refused::Full(caps.max));
        }
        let mine = open.by_source.entry(source).or_default();
        if *mine >= caps.per_ip {
            return Err(Refused::PerIp(caps.per_ip));
        }
        *mine += 1;
        open.total += 1;
        Ok(Permit {
            gate: self.inner.clone(),
            source,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(n) = open.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                open.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_address_cap_leaves_room_for_others() {
        let gate = Gate::new(ConnCaps { max: 10, per_ip: 2 });
        let a1 = gate.admit(ip("10.0.0.1")).unwrap();
        let _a2 = gate.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(gate.admit(ip("10.0.0.1")).unwrap_err(), Refused::PerIp(2));
        let _b = gate.admit(ip("10.0.0.2")).unwrap();
        drop(a1);
        let _a3 = gate.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(gate.open(), 3);
    }

    #[test]
    fn total_cap_holds_across_addresses() {
        let gate = Gate::new(ConnCaps { max: 3, per_ip: 3 });
        let held: Vec<_> = (1..=3)
            .map(|i| gate.admit(ip(&format!("10.0.0.{i}"))).unwrap())
            .collect();
        assert_eq!(gate.admit(ip("10.0.0.9")).unwrap_err(), Refused::Full(3));
        drop(held);
        assert_eq!(gate.open(), 0);
        assert!(gate.admit(ip("10.0.0.9")).is_ok());
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_mapped_v4_as_v4() {
        let gate = Gate::new(ConnCaps { max: 10, per_ip: 1 });
        let _a = gate.admit(ip("2001:db8::1")).unwrap();
        assert!(gate.admit(ip("2001:db8::2")).is_err());
        let _b = gate.admit(ip("2001:db8:0:1::1")).unwrap();
        let _c = gate.admit(ip("192.0.2.1")).unwrap();
        assert!(gate.admit(ip("::ffff:192.0.2.1")).is_err());
    }
}
