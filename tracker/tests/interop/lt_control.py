"""python3-libtorrent dialling a raidtorrent gateway's control port as a plain BitTorrent peer.

It adds the control info-hash as a magnet (it has no metadata, so it only talks), connects to the
gateway and prints one line per event, flushed, for the Rust test to read:
  LOG <direction> <message>   a peer-wire event from libtorrent's peer log
  CONNECTED                   the TCP connection is up
  DISCONNECTED <reason>       the connection closed
  DONE                        the connection was made and closed (or --timeout passed: TIMEOUT)
Run with /usr/bin/python3 (Debian's libtorrent binding).
"""
import argparse
import sys
import tempfile
import time

import libtorrent as lt

ap = argparse.ArgumentParser()
ap.add_argument("--iface", required=True, help="127.0.0.x to bind to")
ap.add_argument("--port", type=int, required=True, help="our listen port")
ap.add_argument("--gateway", required=True, help="host:port of the control listener")
ap.add_argument("--info-hash", required=True)
ap.add_argument("--timeout", type=float, default=60)
ap.add_argument(
    "--encryption",
    choices=["disabled", "enabled"],
    default="disabled",
    help="enabled: libtorrent opens with its encrypted handshake (MSE), which the gateway closes",
)
args = ap.parse_args()

settings = {
    "listen_interfaces": f"{args.iface}:{args.port}",
    "outgoing_interfaces": args.iface,
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "allow_multiple_connections_per_ip": True,
    # The control port is TCP only.
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
    "out_enc_policy": int(getattr(lt.enc_policy, args.encryption)),
    "alert_mask": lt.alert.category_t.error_notification
    | lt.alert.category_t.peer_notification
    | lt.alert.category_t.connect_notification
    | lt.alert.category_t.peer_log_notification,
}
ses = lt.session(settings)
atp = lt.parse_magnet_uri(f"magnet:?xt=urn:btih:{args.info_hash}")
atp.save_path = tempfile.mkdtemp()
handle = ses.add_torrent(atp)
host, port = args.gateway.rsplit(":", 1)
handle.connect_peer((host, int(port)))


def say(line):
    print(line, flush=True)


deadline = time.time() + args.timeout
connected = False
while time.time() < deadline:
    ses.wait_for_alert(200)
    for a in ses.pop_alerts():
        if isinstance(a, lt.peer_log_alert):
            say(f"LOG {a.log_message()}")
        elif isinstance(a, lt.peer_connect_alert):
            connected = True
            say("CONNECTED")
        elif isinstance(a, lt.peer_disconnected_alert):
            say(f"DISCONNECTED {a.message()}")
            if connected:
                say("DONE")
                sys.exit(0)
        elif isinstance(a, lt.peer_error_alert):
            say(f"ERROR {a.message()}")
say("TIMEOUT")
sys.exit(1)
