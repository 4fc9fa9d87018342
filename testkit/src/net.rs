//! Ports for processes that must be told their port before they bind.

/// A free TCP port on `ip` (bound, then released). Prefer binding port 0 and reading the address
/// back; this is for a process that must announce or be given its port up front (a librqbit
/// session announcing to a tracker, a stock client on the command line). Another process may take
/// the port in between, so use a loopback address of the test's own where that matters.
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap_or_else(|e| panic!("binding {ip}:0: {e}"))
        .local_addr()
        .unwrap()
        .port()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_free_port_can_be_bound() {
        let port = super::free_port("127.0.0.1");
        assert_ne!(port, 0);
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    }
}
