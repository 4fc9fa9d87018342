"""A python3-libtorrent peer for the node's interop test: seeds or downloads one torrent, dialling
the given peers directly (no tracker runs in the test). Prints READY when it listens, SEEDING once
every piece is present, flushed; runs until killed or --timeout. Run with /usr/bin/python3.
"""
import argparse
import sys
import time

import libtorrent as lt

ap = argparse.ArgumentParser()
ap.add_argument("--torrent", required=True)
ap.add_argument("--save", required=True)
ap.add_argument("--iface", required=True, help="127.0.0.x to bind to")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--peer", action="append", default=[], help="ip:port to connect to")
ap.add_argument("--timeout", type=float, default=120)
args = ap.parse_args()

ses = lt.session(
    {
        "listen_interfaces": f"{args.iface}:{args.port}",
        "outgoing_interfaces": args.iface,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        # TCP only, so the test pins down the node's TCP path (nodes speak uTP too; a test in
        # integration/tests/e2e/stock.rs covers libtorrent at its defaults).
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
    },
    0,
)
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(args.torrent)
atp.save_path = args.save
handle = ses.add_torrent(atp)
print("READY", flush=True)

deadline = time.time() + args.timeout
said_seeding = False
next_dial = 0.0
while time.time() < deadline:
    ses.wait_for_alert(200)
    ses.pop_alerts()
    st = handle.status()
    if st.is_seeding and not said_seeding:
        print("SEEDING", flush=True)
        said_seeding = True
    if not st.is_seeding and time.time() >= next_dial:
        # Re-dial until the download completes: a peer may not be up yet.
        for p in args.peer:
            ip, port = p.rsplit(":", 1)
            handle.connect_peer((ip, int(port)))
        next_dial = time.time() + 1
sys.exit(0 if said_seeding else 1)
