#!/usr/bin/python3
"""Fetches an object's shards from the swarm with BitTorrent clients written elsewhere and checks
every byte against the shard torrents the gateway exported.

    raidtorrent-tracker shards BUCKET/KEY --out DIR     # one DIR/<part>-<index>-<infohash>.torrent per shard
    /usr/bin/python3 inspect_shards.py --dir DIR --work SCRATCH --timeout 120 --client all

Run it with Debian's /usr/bin/python3 (apt-get install python3-libtorrent), not a pyenv/venv
python3 that has no `import libtorrent`. Only the libtorrent client needs the module.

Every .torrent in --dir is first read here (a small bencode reader, independent of the clients):
its file name must carry the info-hash of its info dict, it must describe a single file, be
private (info.private = 1) and announce to http(s)://HOST:PORT/announce/<token>.
Then, per --client:
  transmission-show  `transmission-show FILE` exits 0, prints `Hash: <the info-hash>`,
                     `Privacy: Private torrent` and the right piece count.
  libtorrent         one session (listening on 127.0.0.1:0 only; no DHT, LSD, UPnP, NAT-PMP or
                     uTP; several connections per IP allowed; SSRF mitigation off) downloads
                     every shard into --work/libtorrent, then force_recheck()s each one and
                     waits until libtorrent has verified every piece again; the SHA-1 of every
                     piece of the file is then compared with the torrent's piece hashes here
                     too. --timeout bounds the whole session.
  aria2c             one `aria2c --seed-time=0 --check-integrity=true ...` per shard into
                     --work/aria2 (no DHT, LPD or PEX), exit status 0 required, then every
                     piece's SHA-1 compared here. --timeout bounds each aria2c run.
  all                the three in that order.
Earlier downloads under --work are removed first, so every run downloads afresh.

Prints `ok: <client> <infohash> <bytes>` per shard and client; any failure prints
`FAIL: <client> <torrent file>: <what>` and the exit status is 1 (2 for bad arguments).

--peer HOST:PORT (repeatable) also hands that peer to libtorrent (torrent_handle.connect_peer),
for fetching from one node directly when the tracker is unreachable or to single out a node;
aria2c cannot be given peers and always relies on the tracker.

--self-test builds its own private torrents over random data, seeds them from a second
libtorrent session found through a tiny tracker run here, and checks that this script accepts
them with every client and refuses broken ones (wrong info-hash in the name, a public torrent,
a corrupted piece, data nobody seeds, a refused tracker credential rescued by --peer).
"""

import argparse
import hashlib
import http.server
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

TORRENT_NAME_RE = re.compile(r"^(\d+)-(\d+)-([0-9a-f]{40})\.torrent$")


class Failed(Exception):
    """A check that did not hold; the message names what and why."""


# ---------------------------------------------------------------------------------------------
# Metainfo, read here without any client

def bdecode(data):
    """Decodes bencoded bytes. Returns (value, raw bytes of the top-level 'info' value or None)."""
    info_span = []

    def dec(i, depth):
        c = data[i:i + 1]
        if c == b"i":
            end = data.index(b"e", i)
            text = data[i + 1:end]
            if not re.fullmatch(rb"-?(0|[1-9][0-9]*)", text) or text == b"-0":
                raise ValueError(f"bad integer at offset {i}")
            return int(text), end + 1
        if c == b"l":
            i += 1
            out = []
            while data[i:i + 1] != b"e":
                if i >= len(data):
                    raise ValueError("unterminated list")
                v, i = dec(i, depth + 1)
                out.append(v)
            return out, i + 1
        if c == b"d":
            i += 1
            out = {}
            last = None
            while data[i:i + 1] != b"e":
                if i >= len(data):
                    raise ValueError("unterminated dict")
                k, i = dec(i, depth + 1)
                if not isinstance(k, bytes):
                    raise ValueError(f"non-string dict key at offset {i}")
                if last is not None and k <= last:
                    raise ValueError(f"dict keys not sorted/unique at {k!r}")
                last = k
                start = i
                v, i = dec(i, depth + 1)
                if depth == 0 and k == b"info":
                    info_span.append((start, i))
                out[k] = v
            return out, i + 1
        if c.isdigit():
            colon = data.index(b":", i)
            n = int(data[i:colon])
            if colon + 1 + n > len(data):
                raise ValueError("string runs past the end")
            return data[colon + 1:colon + 1 + n], colon + 1 + n
        raise ValueError(f"unexpected byte {c!r} at offset {i}")

    try:
        value, end = dec(0, 0)
    except (ValueError, IndexError, RecursionError) as e:
        raise ValueError(f"not valid bencode: {e}")
    if end != len(data):
        raise ValueError(f"{len(data) - end} bytes of trailing garbage")
    raw_info = data[info_span[0][0]:info_span[0][1]] if info_span else None
    return value, raw_info


class Torrent:
    def __init__(self, path):
        self.path = path
        self.file = os.path.basename(path)
        m = TORRENT_NAME_RE.match(self.file)
        if not m:
            raise Failed("file name is not <part>-<index>-<40 hex info-hash>.torrent")
        self.part, self.index, self.name_hash = int(m.group(1)), int(m.group(2)), m.group(3)
        with open(path, "rb") as f:
            raw = f.read()
        try:
            meta, raw_info = bdecode(raw)
        except ValueError as e:
            raise Failed(str(e))
        if not isinstance(meta, dict) or not isinstance(meta.get(b"info"), dict):
            raise Failed("no info dict")
        info = meta[b"info"]
        self.info_hash = hashlib.sha1(raw_info).hexdigest()
        if self.info_hash != self.name_hash:
            raise Failed(f"the info dict hashes to {self.info_hash}, the file name says {self.name_hash}")
        if b"files" in info or not isinstance(info.get(b"length"), int):
            raise Failed("not a single-file torrent (info.files present or info.length missing)")
        if b"meta version" in info:
            raise Failed("a BitTorrent v2/hybrid torrent; shard torrents are v1")
        try:
            self.name = info[b"name"].decode("utf-8")
        except (KeyError, AttributeError, UnicodeDecodeError):
            raise Failed("info.name missing or not UTF-8")
        if not self.name or "/" in self.name or "\\" in self.name or self.name in (".", ".."):
            raise Failed(f"unsafe file name {self.name!r}")
        self.length = info[b"length"]
        self.piece_length = info.get(b"piece length")
        pieces = info.get(b"pieces")
        if not isinstance(self.piece_length, int) or self.piece_length <= 0:
            raise Failed("info['piece length'] missing or not positive")
        if not isinstance(pieces, bytes) or len(pieces) % 20:
            raise Failed("info.pieces missing or not a multiple of 20 bytes")
        self.pieces = [pieces[i:i + 20] for i in range(0, len(pieces), 20)]
        want = -(-self.length // self.piece_length)
        if len(self.pieces) != want:
            raise Failed(f"{len(self.pieces)} piece hashes for {self.length} bytes in pieces of "
                         f"{self.piece_length} (expected {want})")
        if info.get(b"private") != 1:
            raise Failed(f"not private (info.private = {info.get(b'private')!r}, expected 1)")
        try:
            self.announce = meta[b"announce"].decode("utf-8")
        except (KeyError, AttributeError, UnicodeDecodeError):
            raise Failed("no announce URL")
        u = urllib.parse.urlsplit(self.announce)
        if u.scheme not in ("http", "https") or not u.port or \
                not re.fullmatch(r"/announce/[^/?#]+", u.path):
            raise Failed(f"announce URL {self.announce!r} is not http://HOST:PORT/announce/<token>")

    def label(self):
        return f"{self.file} ({self.name}, {self.length} bytes)"


def load_torrents(directory):
    if not os.path.isdir(directory):
        raise Failed(f"--dir {directory} is not a directory")
    files = sorted(f for f in os.listdir(directory) if f.endswith(".torrent"))
    if not files:
        raise Failed(f"no .torrent files in {directory}")
    torrents, failures = [], []
    for f in files:
        try:
            torrents.append(Torrent(os.path.join(directory, f)))
        except Failed as e:
            failures.append(("metainfo", f, str(e)))
        except OSError as e:
            failures.append(("metainfo", f, f"cannot read: {e}"))
    seen = {}
    for t in torrents:
        if t.info_hash in seen:
            failures.append(("metainfo", t.file, f"same info-hash as {seen[t.info_hash]}"))
        seen[t.info_hash] = t.file
    return torrents, failures


def verify_pieces(t, data_path):
    """SHA-1 of every piece of data_path against the torrent; returns the byte count."""
    try:
        size = os.path.getsize(data_path)
    except OSError as e:
        raise Failed(f"no downloaded file {data_path}: {e.strerror}")
    if size != t.length:
        raise Failed(f"{data_path} has {size} bytes, the torrent says {t.length}")
    bad = []
    with open(data_path, "rb") as f:
        for i, want in enumerate(t.pieces):
            got = hashlib.sha1(f.read(t.piece_length)).digest()
            if got != want:
                bad.append(i)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        raise Failed(f"{len(bad)} of {len(t.pieces)} pieces of {data_path} do not match the "
                     f"torrent's SHA-1 piece hashes (pieces {shown})")
    return size


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_peer(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--peer {text!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


# ---------------------------------------------------------------------------------------------
# transmission-show

def check_transmission_show(torrents, timeout, out):
    failures = []
    if not shutil.which("transmission-show"):
        return [("transmission-show", "-", "transmission-show is not on PATH "
                 "(apt-get install transmission-cli)")]
    for t in torrents:
        try:
            r = subprocess.run(["transmission-show", t.path], capture_output=True, text=True,
                               timeout=max(10, min(timeout, 60)))
        except subprocess.TimeoutExpired:
            failures.append(("transmission-show", t.file, "did not finish"))
            continue
        text = r.stdout
        problems = []
        if r.returncode != 0:
            problems.append(f"exit status {r.returncode}: {(r.stderr or r.stdout).strip()[:300]}")
        hashes = re.findall(r"^\s*Hash(?: v1)?:\s*([0-9a-fA-F]{40})\s*$", text, re.M)
        if [h.lower() for h in hashes] != [t.name_hash]:
            problems.append(f"printed hash {hashes or 'none'}, the file name says {t.name_hash}")
        if not re.search(r"^\s*(Privacy:\s*Private torrent|Private:\s*yes)\s*$", text, re.M | re.I):
            privacy = re.findall(r"^\s*Priva\w*:.*$", text, re.M)
            problems.append(f"not shown as private ({privacy[0].strip() if privacy else 'no Privacy line'})")
        count = re.search(r"^\s*Piece Count:\s*(\d+)\s*$", text, re.M)
        if count and int(count.group(1)) != len(t.pieces):
            problems.append(f"Piece Count {count.group(1)}, expected {len(t.pieces)}")
        if problems:
            failures.append(("transmission-show", t.file, "; ".join(problems)))
        else:
            print(f"ok: transmission-show {t.info_hash} private, {len(t.pieces)} pieces", file=out)
    return failures


# ---------------------------------------------------------------------------------------------
# libtorrent

def _lt():
    try:
        import libtorrent
        return libtorrent
    except ImportError:
        raise Failed(f"{sys.executable} has no libtorrent module; run this with /usr/bin/python3 "
                     "after apt-get install python3-libtorrent")


def lt_session(lt, listen="127.0.0.1:0"):
    wanted = {
        "listen_interfaces": listen,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        # SSRF mitigation refuses loopback trackers whose path does not start with /announce
        # or that carry a query string. libtorrent 2.0.8 lets /announce/<token> through (tried),
        # but this is an inspection tool pointed at a known gateway: take no chances.
        "ssrf_mitigation": False,
        "stop_tracker_timeout": 1,
        "user_agent": "raidtorrent-inspect-shards/libtorrent-" + lt.__version__,
        "alert_mask": (lt.alert.category_t.error_notification
                       | lt.alert.category_t.status_notification
                       | lt.alert.category_t.tracker_notification
                       | lt.alert.category_t.storage_notification
                       | lt.alert.category_t.peer_notification),
    }
    known = lt.default_settings()
    return lt.session({k: v for k, v in wanted.items() if k in known})


def _lt_add(lt, ses, ti, save_path):
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = save_path
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    return ses.add_torrent(atp)


def _state_name(st):
    return str(st.state).split(".")[-1]


DOWNLOADED = "downloaded (seeding)"
RECHECKED = "verified again by force_recheck"


def check_libtorrent(torrents, work, timeout, peers, out):
    lt = _lt()
    base = fresh_dir(os.path.join(work, "libtorrent"))
    ses = lt_session(lt)
    failures = {}
    entries = {}  # info-hash hex -> dict(t, h, ti, save, notes...)
    try:
        for t in torrents:
            try:
                ti = lt.torrent_info(t.path)
            except RuntimeError as e:
                failures[t.info_hash] = f"libtorrent cannot read it: {e}"
                continue
            if str(ti.info_hashes().v1) != t.info_hash:
                failures[t.info_hash] = f"libtorrent computes info-hash {ti.info_hashes().v1}"
                continue
            if not ti.priv():
                failures[t.info_hash] = "libtorrent does not see it as private"
                continue
            save = os.path.join(base, t.info_hash)
            os.makedirs(save)
            h = _lt_add(lt, ses, ti, save)
            entries[t.info_hash] = {"t": t, "h": h, "ti": ti, "save": save, "tracker_error": None,
                                    "tracker_peers": None, "hash_failed": 0, "checked": False,
                                    "rechecking": False, "recheck_started": False,
                                    "peer_error": None}
        deadline = time.monotonic() + timeout
        listen = ses.listen_port()
        print(f"libtorrent {lt.__version__}: session listening on 127.0.0.1:{listen}, "
              f"{len(entries)} torrents", file=out)

        def handle_alerts():
            for a in ses.pop_alerts():
                h = getattr(a, "handle", None)
                try:
                    key = str(h.info_hashes().v1) if h is not None and h.is_valid() else None
                except Exception:
                    key = None
                e = entries.get(key)
                if e is None:
                    continue
                if isinstance(a, lt.tracker_error_alert):
                    e["tracker_error"] = a.message()
                elif isinstance(a, lt.tracker_reply_alert):
                    e["tracker_peers"] = a.num_peers
                elif isinstance(a, lt.hash_failed_alert):
                    e["hash_failed"] += 1
                elif isinstance(a, lt.state_changed_alert):
                    if e["rechecking"] and a.state in (lt.torrent_status.checking_files,
                                                       lt.torrent_status.checking_resume_data):
                        e["recheck_started"] = True
                elif isinstance(a, lt.torrent_checked_alert):
                    # only the check that follows our force_recheck counts
                    e["checked"] = e["recheck_started"]
                elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                    failures.setdefault(key, f"libtorrent error: {a.message()}")
                elif isinstance(a, lt.peer_error_alert):
                    e["peer_error"] = a.message()

        def describe(e):
            st = e["h"].status()
            bits = [f"state {_state_name(st)}", f"{st.num_pieces}/{e['ti'].num_pieces()} pieces",
                    f"{st.num_peers} peers connected"]
            if e["tracker_peers"] is not None:
                bits.append(f"tracker's last reply listed {e['tracker_peers']} peers")
            if e["tracker_error"]:
                bits.append(f"last tracker error: {e['tracker_error']}")
            if e["peer_error"]:
                bits.append(f"last peer error: {e['peer_error']}")
            if st.errc.value():
                bits.append(f"error: {st.errc.message()}")
            return ", ".join(bits)

        def wait(phase, done):
            next_connect = 0.0
            while True:
                handle_alerts()
                pending = [k for k, e in entries.items() if k not in failures and not done(e)]
                if not pending:
                    return
                now = time.monotonic()
                if peers and now >= next_connect and phase == DOWNLOADED:
                    for k in pending:
                        for p in peers:
                            entries[k]["h"].connect_peer(p)
                    next_connect = now + 5
                if now >= deadline:
                    for k in pending:
                        failures[k] = (f"not {phase} within --timeout {timeout:g} s: "
                                       f"{describe(entries[k])}")
                    return
                ses.wait_for_alert(250)

        def seeding(e):
            st = e["h"].status()
            if st.errc.value():
                failures.setdefault(str(e["t"].info_hash), f"libtorrent error: {st.errc.message()}")
            return st.is_seeding

        wait(DOWNLOADED, seeding)
        handle_alerts()  # the first check's alerts are behind us
        for k, e in entries.items():
            if k not in failures:
                e["rechecking"] = True
                e["h"].force_recheck()

        def rechecked(e):
            if not e["checked"]:
                return False
            st = e["h"].status()
            if st.state in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data):
                return False
            n = e["ti"].num_pieces()
            if st.num_pieces != n or not st.is_seeding:
                failures.setdefault(str(e["t"].info_hash), (
                    f"after force_recheck libtorrent verifies {st.num_pieces} of {n} pieces "
                    f"(state {_state_name(st)})"))
            return True

        wait(RECHECKED, rechecked)
        for k, e in entries.items():
            if k in failures:
                continue
            try:
                n = verify_pieces(e["t"], os.path.join(e["save"], e["t"].name))
            except Failed as err:
                failures[k] = str(err)
                continue
            note = f" ({e['hash_failed']} pieces failed their hash check on the way and were " \
                   "fetched again)" if e["hash_failed"] else ""
            print(f"ok: libtorrent {k} {n}{note}", file=out)
    finally:
        ses.pause()
        ses = None  # the session ends (and sends its "stopped" announces) here
    by_hash = {t.info_hash: t.file for t in torrents}
    return [("libtorrent", by_hash.get(k, k), msg) for k, msg in failures.items()]


# ---------------------------------------------------------------------------------------------
# aria2c

ARIA2_EXIT = {
    1: " (unknown error)", 2: " (timeout)", 3: " (resource not found)",
    7: " (download unfinished: no peer served all the data before --bt-stop-timeout)",
    9: " (not enough disk space)", 19: " (name resolution failed)", 24: " (HTTP authorization failed)",
    32: " (checksum validation failed)",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _aria2_said(output, log):
    """The error lines of aria2c's console output (or, failing that, its log), without the
    progress read-outs and the legend."""
    lines = [_ANSI.sub("", l).strip() for l in output.splitlines()]
    picked = [l for l in lines if re.search(r"ERROR|errorCode|Exception|\|(ERR|INPR)\|", l)
              and "Checksum error detected" not in l]  # that one is the check of an empty file
    if not picked:
        try:
            with open(log, errors="replace") as f:
                picked = [l.strip() for l in f if "[ERROR]" in l or "errorCode=" in l]
        except OSError:
            pass
    return " | ".join(picked[-4:]) or "no error printed"


def check_aria2c(torrents, work, timeout, peers, out):
    if not shutil.which("aria2c"):
        return [("aria2c", "-", "aria2c is not on PATH (apt-get install aria2)")]
    if peers:
        print("note: aria2c cannot be handed peers; it finds them through the tracker only", file=out)
    base = fresh_dir(os.path.join(work, "aria2"))
    failures = []
    net_timeout = int(max(5, min(60, timeout)))
    for t in torrents:
        target = os.path.join(base, t.info_hash)
        os.makedirs(target)
        log = os.path.join(base, t.info_hash + ".log")
        cmd = ["aria2c", "--seed-time=0", "--check-integrity=true", "--bt-enable-lpd=false",
               "--enable-dht=false", "--enable-dht6=false", "--enable-peer-exchange=false",
               "--bt-tracker-connect-timeout=10", f"--listen-port={free_port()}",
               f"--dir={target}", "--console-log-level=warn", "--summary-interval=0",
               f"--timeout={net_timeout}", f"--bt-stop-timeout={int(max(5, timeout))}",
               "--file-allocation=none", "--allow-overwrite=true", "--auto-file-renaming=false",
               "--bt-save-metadata=false", "--no-conf=true", f"--log={log}", "--log-level=info",
               t.path]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 15)
        except subprocess.TimeoutExpired:
            failures.append(("aria2c", t.file, f"did not finish within --timeout {timeout:g} s "
                             f"(+15 s grace); log: {log}"))
            continue
        if r.returncode != 0:
            failures.append(("aria2c", t.file, f"exit status {r.returncode}"
                             f"{ARIA2_EXIT.get(r.returncode, '')}: {_aria2_said(r.stdout + r.stderr, log)}; "
                             f"log: {log}"))
            continue
        try:
            n = verify_pieces(t, os.path.join(target, t.name))
        except Failed as e:
            failures.append(("aria2c", t.file, str(e)))
            continue
        print(f"ok: aria2c {t.info_hash} {n}", file=out)
    return failures


# ---------------------------------------------------------------------------------------------

CLIENTS = ("transmission-show", "libtorrent", "aria2c")


def inspect(directory, work, timeout, client, peers=(), out=sys.stdout):
    """Runs the checks; returns a list of (client, torrent file, message) failures."""
    torrents, failures = load_torrents(directory)
    for t in torrents:
        print(f"ok: metainfo {t.info_hash} {t.label()}, {len(t.pieces)} pieces of "
              f"{t.piece_length}, private, announce {urllib.parse.urlsplit(t.announce).netloc}", file=out)
    os.makedirs(work, exist_ok=True)
    for c in CLIENTS if client == "all" else (client,):
        try:
            if c == "transmission-show":
                failures += check_transmission_show(torrents, timeout, out)
            elif c == "libtorrent":
                failures += check_libtorrent(torrents, work, timeout, list(peers), out)
            elif c == "aria2c":
                failures += check_aria2c(torrents, work, timeout, list(peers), out)
        except Failed as e:
            failures.append((c, "-", str(e)))
    return failures


def redact(text):
    """Hides the inspector credential of announce URLs in what is printed (CI logs are kept)."""
    return re.sub(r"/announce/[^/?#\s\"')]+", "/announce/<token>", text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--dir", help="directory of exported shard .torrent files")
    p.add_argument("--work", help="scratch directory for downloads (created; old downloads removed)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds: bounds the libtorrent session, and each aria2c run (default 120)")
    p.add_argument("--client", choices=CLIENTS + ("all",), default="all")
    p.add_argument("--peer", type=parse_peer, action="append", default=[], metavar="HOST:PORT",
                   help="also connect libtorrent to this peer (repeatable; debugging aid)")
    p.add_argument("--self-test", action="store_true",
                   help="check this script against torrents and a swarm it makes itself")
    args = p.parse_args(argv)
    if args.self_test:
        return self_test(args.work, args.client)
    if not args.dir or not args.work:
        p.error("--dir and --work are required")
    if args.timeout <= 0:
        p.error("--timeout must be positive")
    try:
        failures = inspect(args.dir, args.work, args.timeout, args.client, args.peer)
    except Failed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    for client, name, msg in failures:
        print(f"FAIL: {client} {name}: {redact(msg)}", file=sys.stderr)
    if failures:
        print(f"inspect_shards: {len(failures)} failures", file=sys.stderr)
        return 1
    print("ok: every shard checked")
    return 0


# ---------------------------------------------------------------------------------------------
# Self-test: a tiny private tracker, torrents over random data, a seeding libtorrent session.

class MiniTracker:
    """Answers GET /announce/<token> with the seeder's address (compact), others with a failure."""

    def __init__(self, token):
        self.token = token
        self.peers = []
        self.announces = 0
        tracker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path, _, _ = self.path.partition("?")
                tracker.announces += 1
                if path == f"/announce/{tracker.token}":
                    compact = b"".join(socket.inet_aton(h) + p.to_bytes(2, "big") for h, p in tracker.peers)
                    body = b"d8:completei1e10:incompletei0e8:intervali30e12:min intervali5e5:peers" + \
                        str(len(compact)).encode() + b":" + compact + b"e"
                else:
                    reason = b"unknown passkey"
                    body = b"d14:failure reason" + str(len(reason)).encode() + b":" + reason + b"e"
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a client that gave up on its "stopped" announce

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _make_torrent(lt, data_path, announce, piece_length, private=True):
    fs = lt.file_storage()
    lt.add_files(fs, data_path)
    ct = lt.create_torrent(fs, piece_length, flags=lt.create_torrent.v1_only)
    ct.set_priv(private)
    ct.add_tracker(announce)
    lt.set_piece_hashes(ct, os.path.dirname(data_path))
    raw = lt.bencode(ct.generate())
    return raw, str(lt.torrent_info(lt.bdecode(raw)).info_hashes().v1)


def self_test(work=None, client="all"):
    lt = _lt()
    cleanup = None
    if not work:
        cleanup = work = tempfile.mkdtemp(prefix="inspect-shards-selftest-")
    work = fresh_dir(os.path.join(os.path.abspath(work), "self-test"))
    results = []

    def case(name, ok, detail=""):
        results.append((name, ok))
        print(f"{'ok' if ok else 'FAIL'}: self-test {name}{': ' + detail if detail and not ok else ''}")

    token = secrets.token_hex(8)
    tracker = MiniTracker(token)
    seed_dir = fresh_dir(os.path.join(work, "seed"))
    good = fresh_dir(os.path.join(work, "torrents"))
    announce = f"http://127.0.0.1:{tracker.port}/announce/{token}"
    sizes = [(1, 16384), (300_000, 16384), (1_048_576, 262144), (1_048_577 + 12345, 262144)]
    seeder = lt_session(lt)
    made = []
    try:
        for i, (size, plen) in enumerate(sizes):
            name = secrets.token_hex(16)
            path = os.path.join(seed_dir, name)
            with open(path, "wb") as f:
                f.write(os.urandom(size))
            raw, ih = _make_torrent(lt, path, announce, plen)
            tpath = os.path.join(good, f"0-{i}-{ih}.torrent")
            with open(tpath, "wb") as f:
                f.write(raw)
            made.append((tpath, ih, path))
            _lt_add(lt, seeder, lt.torrent_info(tpath), seed_dir)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(h.status().is_seeding for h in seeder.get_torrents()):
            seeder.wait_for_alert(200)
            seeder.pop_alerts()
        seeding = all(h.status().is_seeding for h in seeder.get_torrents())
        case("seeder session seeds the self-made torrents", seeding)
        seeder_addr = ("127.0.0.1", seeder.listen_port())
        tracker.peers = [seeder_addr]
        print(f"self-test: tracker on 127.0.0.1:{tracker.port}, seeder on {seeder_addr[0]}:{seeder_addr[1]}, "
              f"work {work}")

        # Our own metainfo reader agrees with libtorrent; piece verification spots damage.
        t = Torrent(made[2][0])
        case("bencode reader: info-hash, pieces, private, announce agree with libtorrent",
             t.info_hash == made[2][1] and len(t.pieces) == 4 and t.announce == announce)
        case("piece verification accepts the original data", verify_pieces(t, made[2][2]) == 1_048_576)
        damaged = os.path.join(work, "damaged")
        shutil.copy(made[2][2], damaged)
        with open(damaged, "r+b") as f:
            f.seek(262144 * 2 + 7)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0xFF]))
        try:
            verify_pieces(t, damaged)
            case("piece verification names a corrupted piece", False, "no failure")
        except Failed as e:
            case("piece verification names a corrupted piece", "pieces 2)" in str(e), str(e))
        with open(damaged, "ab") as f:
            f.write(b"x")
        try:
            verify_pieces(t, damaged)
            case("piece verification refuses a file of the wrong size", False, "no failure")
        except Failed as e:
            case("piece verification refuses a file of the wrong size", "bytes" in str(e), str(e))

        # The real thing: every client against the tracker and the seeder.
        failures = inspect(good, os.path.join(work, "run"), 60, client, out=sys.stdout)
        case(f"--client {client} fetches and verifies every self-made shard", not failures,
             "; ".join(f"{c} {n}: {m}" for c, n, m in failures))

        # A refused tracker credential: libtorrent fails in time, --peer rescues it.
        refused = fresh_dir(os.path.join(work, "refused"))
        raw, ih = _make_torrent(lt, made[1][2], f"http://127.0.0.1:{tracker.port}/announce/wrong", 16384)
        with open(os.path.join(refused, f"0-0-{ih}.torrent"), "wb") as f:
            f.write(raw)
        _lt_add(lt, seeder, lt.torrent_info(os.path.join(refused, f"0-0-{ih}.torrent")), seed_dir)
        time.sleep(1)
        failures = inspect(refused, os.path.join(work, "run-refused"), 6, "libtorrent", out=sys.stdout)
        msg = "; ".join(m for _, _, m in failures)
        case("libtorrent with a refused tracker credential fails within --timeout, saying why",
             len(failures) == 1 and "not downloaded (seeding) within --timeout" in msg and "unknown passkey" in msg, msg)
        failures = inspect(refused, os.path.join(work, "run-peer"), 30, "libtorrent", peers=[seeder_addr],
                           out=sys.stdout)
        case("--peer hands the seeder to libtorrent directly", not failures,
             "; ".join(m for _, _, m in failures))

        # Nobody seeds: aria2c must fail too (exit status or timeout), naming the torrent.
        if shutil.which("aria2c") and client in ("all", "aria2c"):
            orphan = fresh_dir(os.path.join(work, "orphan"))
            lone = os.path.join(work, "lone")
            with open(lone, "wb") as f:
                f.write(os.urandom(40000))
            raw, ih = _make_torrent(lt, lone, announce, 16384)
            with open(os.path.join(orphan, f"3-1-{ih}.torrent"), "wb") as f:
                f.write(raw)
            failures = inspect(orphan, os.path.join(work, "run-orphan"), 6, "aria2c", out=sys.stdout)
            case("aria2c with nobody seeding fails, naming the torrent",
                 len(failures) == 1 and failures[0][1] == f"3-1-{ih}.torrent",
                 repr(failures))

        # Broken metainfo: wrong hash in the name, a public torrent, a bad announce path.
        broken = fresh_dir(os.path.join(work, "broken"))
        shutil.copy(made[0][0], os.path.join(broken, f"0-0-{'0' * 40}.torrent"))
        raw, ih = _make_torrent(lt, made[0][2], announce, 16384, private=False)
        pub = f"0-1-{ih}.torrent"
        with open(os.path.join(broken, pub), "wb") as f:
            f.write(raw)
        raw, ih = _make_torrent(lt, made[0][2], f"http://127.0.0.1:{tracker.port}/announce", 16384)
        with open(os.path.join(broken, f"0-2-{ih}.torrent"), "wb") as f:
            f.write(raw)
        with open(os.path.join(broken, "notes.torrent"), "wb") as f:
            f.write(b"d4:infod4:name1:xee")
        torrents, failures = load_torrents(broken)
        msgs = {n: m for _, n, m in failures}
        case("metainfo: wrong info-hash in the file name refused",
             "the file name says 0000" in msgs.get(f"0-0-{'0' * 40}.torrent", ""), repr(msgs))
        case("metainfo: a public torrent refused", "not private" in msgs.get(pub, ""), repr(msgs))
        case("metainfo: an announce URL without a token refused",
             "/announce/<token>" in msgs.get(f"0-2-{ih}.torrent", ""), repr(msgs))
        case("metainfo: a badly named file refused", "file name is not" in msgs.get("notes.torrent", ""),
             repr(msgs))
        # transmission-show's own view of the mismatched name and the public torrent
        if shutil.which("transmission-show"):
            t_pub = object.__new__(Torrent)
            t_pub.path, t_pub.file = os.path.join(broken, pub), pub
            t_pub.name_hash, t_pub.info_hash, t_pub.pieces = pub[4:44], pub[4:44], [b""] * 19
            t_bad = object.__new__(Torrent)
            bad = f"0-0-{'0' * 40}.torrent"
            t_bad.path, t_bad.file = os.path.join(broken, bad), bad
            t_bad.name_hash, t_bad.info_hash, t_bad.pieces = "0" * 40, "0" * 40, [b""]
            sink = open(os.devnull, "w")
            f = check_transmission_show([t_pub, t_bad], 30, sink)
            sink.close()
            m = {n: msg for _, n, msg in f}
            case("transmission-show check: a public torrent is refused", "not shown as private" in m.get(pub, ""),
                 repr(m))
            case("transmission-show check: a hash other than the file name's is refused",
                 "the file name says" in m.get(bad, ""), repr(m))
    finally:
        seeder.pause()
        del seeder
        tracker.close()
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)
    bad = [n for n, ok in results if not ok]
    if bad:
        print(f"self-test FAILED: {len(bad)} of {len(results)} cases: {'; '.join(bad)}", file=sys.stderr)
        return 1
    print(f"ok: self-test passed ({len(results)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
