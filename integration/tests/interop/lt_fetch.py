"""python3-libtorrent at its default settings fetching one torrent from one given peer.

Only what keeps the run on loopback is set (the interface, no DHT, local discovery, UPnP or
NAT-PMP); uTP, encryption and everything else stay at libtorrent's defaults. Prints one line per
event, flushed, for the Rust test to read:
  CONNECTED <kind>   a connection to the peer is up (kind: tcp or utp)
  FINISHED           every piece is in and verified
  TIMEOUT            --timeout passed first (exit status 1)
Run with /usr/bin/python3 (Debian's libtorrent binding).
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
ap.add_argument("--peer", required=True, help="host:port of the node")
ap.add_argument("--timeout", type=float, default=60)
args = ap.parse_args()

settings = lt.default_settings()
settings.update(
    {
        "listen_interfaces": f"{args.iface}:{args.port}",
        "outgoing_interfaces": args.iface,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.connect_notification,
    }
)
ses = lt.session(settings)
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(args.torrent)
atp.save_path = args.save
handle = ses.add_torrent(atp)
host, port = args.peer.rsplit(":", 1)
handle.connect_peer((host, int(port)))


def say(line):
    print(line, flush=True)


deadline = time.time() + args.timeout
while time.time() < deadline:
    ses.wait_for_alert(200)
    for a in ses.pop_alerts():
        if isinstance(a, lt.peer_connect_alert):
            say(f"CONNECTED {a.message()}")
        elif isinstance(a, lt.torrent_finished_alert):
            say("FINISHED")
            sys.exit(0)
say("TIMEOUT")
sys.exit(1)
