"""A python3-libtorrent client for the tracker interop tests.

Prints one line per event, flushed, for the Rust test to read:
  TRACKER_REPLY <peers>      a tracker answered an announce
  TRACKER_ERROR <message>    a tracker refused or failed
  FINISHED                   all pieces are present (seeding)
Exits when --until is reached (finished / reply / error) or after --timeout seconds.
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
ap.add_argument("--until", choices=["finished", "reply", "error", "forever"], default="forever")
ap.add_argument("--timeout", type=float, default=120)
args = ap.parse_args()

settings = {
    "listen_interfaces": f"{args.iface}:{args.port}",
    "outgoing_interfaces": args.iface,
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "allow_multiple_connections_per_ip": True,
    "min_announce_interval": 1,
    "announce_to_all_trackers": True,
    "alert_mask": lt.alert.category_t.error_notification
    | lt.alert.category_t.tracker_notification
    | lt.alert.category_t.status_notification,
}
# Session flags 0: no default plugins, so no PEX (the swarm must come from the tracker).
ses = lt.session(settings, 0)
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(args.torrent)
atp.save_path = args.save
handle = ses.add_torrent(atp)


def say(line):
    print(line, flush=True)


deadline = time.time() + args.timeout
done = False
while time.time() < deadline and not done:
    ses.wait_for_alert(200)
    for a in ses.pop_alerts():
        if isinstance(a, lt.tracker_reply_alert):
            say(f"TRACKER_REPLY {a.num_peers}")
            done |= args.until == "reply"
        elif isinstance(a, lt.tracker_error_alert):
            say(f"TRACKER_ERROR {a.failure_reason() or a.message()}")
            done |= args.until == "error"
        elif isinstance(a, lt.torrent_finished_alert):
            say("FINISHED")
            done |= args.until == "finished"
if not done and args.until != "forever":
    say("TIMEOUT")
    sys.exit(1)
