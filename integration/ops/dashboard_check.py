#!/usr/bin/env python3
"""Browser check of the gateway's operator dashboard (/admin/dashboard), driven by Playwright
against Debian's Chromium.

Steps, each printing one `ok: ...` line (or a `FAIL: ...` line and exit status 1):
  a. the overview loads and its objects card shows a number          -> overview.png
  b. #/nodes lists at least --nodes rows, each with reasons or a tier  -> nodes.png
  c. #/object/BUCKET/KEY shows a shard with a copy and a magnet link   -> object.png
  d. prints `READY-TO-KILL <node id>` (the first online node of the table), waits for a line
     `killed` on stdin, then waits until that node's row shows offline -> killed.png
     (skipped with --no-kill)
  and at the end: the page raised no JavaScript error and asked no host but the gateway.

Usage:
  python3 dashboard_check.py --url http://127.0.0.1:PORT --token ADMIN_TOKEN \
      --object BUCKET/KEY --nodes N --screenshots DIR [--no-kill] [--viewport 1280x800]
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.parse
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REFRESH_SECS = 5  # the dashboard's refresh period (REFRESH_MS in app.js)
LOAD_TIMEOUT_MS = 20_000


class CheckFailed(Exception):
    pass


def ok(what: str) -> None:
    print(f"ok: {what}", flush=True)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="http://host:port of the gateway's tracker HTTP listener")
    ap.add_argument("--token", required=True, help="the admin token (sent as the Basic password)")
    ap.add_argument("--object", required=True, metavar="BUCKET/KEY", help="an object stored in the swarm")
    ap.add_argument("--nodes", type=int, required=True, metavar="N", help="least number of node rows expected")
    ap.add_argument("--screenshots", required=True, metavar="DIR", help="where to write the PNG files")
    ap.add_argument("--no-kill", action="store_true", help="skip step d (a node going offline)")
    ap.add_argument("--viewport", default="1280x800", metavar="WxH", help="browser window size (default 1280x800)")
    ap.add_argument("--offline-timeout", type=float, default=3 * REFRESH_SECS + 10, metavar="SECS",
                    help="how long step d waits for the row to turn offline (default 3 refresh periods + 10 s)")
    args = ap.parse_args()
    if "/" not in args.object.strip("/"):
        ap.error("--object must be BUCKET/KEY")
    if not re.fullmatch(r"\d+x\d+", args.viewport):
        ap.error("--viewport must be WIDTHxHEIGHT")
    args.url = args.url.rstrip("/")
    return args


def error_banner(page: Page) -> str:
    """The dashboard's error banner text, if it is shown."""
    try:
        banner = page.locator('[data-test="error"]')
        if banner.count() and banner.is_visible():
            return banner.inner_text().strip()
    except PlaywrightError:
        pass
    return ""


def wait_js(page: Page, what: str, expression: str, arg=None, timeout_ms: float = LOAD_TIMEOUT_MS):
    """Wait until a JS expression is truthy; fail naming what was awaited (and the banner)."""
    try:
        return page.wait_for_function(expression, arg=arg, timeout=timeout_ms).json_value()
    except PlaywrightError as e:
        banner = error_banner(page)
        detail = f"; the page's error banner says: {banner}" if banner else ""
        raise CheckFailed(f"{what}: not seen within {timeout_ms / 1000:.0f} s{detail} ({str(e).splitlines()[0]})") from None


def goto_view(page: Page, base: str, fragment: str) -> None:
    page.goto(f"{base}/admin/dashboard#{fragment}", wait_until="domcontentloaded")


def step_overview(page: Page, args, shots: Path) -> None:
    response = page.goto(f"{args.url}/admin/dashboard", wait_until="domcontentloaded")
    if response is None or response.status != 200:
        status = response.status if response else "nothing"
        hint = " (the admin credential was refused: is --token the gateway's admin token?)" if status == 401 else ""
        raise CheckFailed(f"GET /admin/dashboard answered {status}{hint}")
    total = wait_js(page, "the overview's objects card with a number", """() => {
        const el = document.querySelector('[data-test="cloud-objects"] [data-test="cloud-objects-total"]');
        const text = el && el.textContent.trim();
        return text && /^[0-9][0-9,]*$/.test(text) ? text : null;
    }""")
    page.wait_for_timeout(300)  # let the charts draw before the picture
    page.screenshot(path=str(shots / "overview.png"), full_page=True)
    ok(f"overview shows {total} objects (overview.png)")


NODE_ROWS_JS = """() => [...document.querySelectorAll('[data-test="node-row"]')].map(r => ({
    id: r.dataset.nodeId,
    connected: r.dataset.connected,
    reasons: (r.querySelector('[data-test="node-reasons"]') || {}).textContent || "",
    tier: (r.querySelector('[data-test="node-tier"]') || {}).textContent || "",
}))"""


def step_nodes(page: Page, args, shots: Path) -> None:
    goto_view(page, args.url, "/nodes")
    try:
        wait_js(page, f"at least {args.nodes} node rows on #/nodes",
                "n => document.querySelectorAll('[data-test=\"node-row\"]').length >= n", arg=args.nodes,
                timeout_ms=max(LOAD_TIMEOUT_MS, (3 * REFRESH_SECS + 10) * 1000))
    except CheckFailed as e:
        seen = page.locator('[data-test="node-row"]').count()
        raise CheckFailed(f"{e} [{seen} rows shown]") from None
    rows = page.evaluate(NODE_ROWS_JS)
    bare = [r["id"] for r in rows if not r["reasons"].strip() and not r["tier"].strip()]
    if bare:
        raise CheckFailed(f"node rows without reasons or tier: ids {', '.join(bare)}")
    page.screenshot(path=str(shots / "nodes.png"), full_page=True)
    online = sum(r["connected"] == "true" for r in rows)
    ok(f"#/nodes lists {len(rows)} nodes ({online} online), each with reasons or a tier (nodes.png)")


def step_object(page: Page, args, shots: Path) -> None:
    bucket, key = args.object.strip("/").split("/", 1)
    goto_view(page, args.url, f"/object/{urllib.parse.quote(bucket, safe='')}/{urllib.parse.quote(key, safe='')}")
    wait_js(page, f"a shard row with a copy on the page of {bucket}/{key}",
            """() => [...document.querySelectorAll('[data-test="object-shard"]')]
                     .some(r => r.querySelector('[data-test="shard-copy"]'))""")
    found = page.evaluate("""() => {
        const rows = [...document.querySelectorAll('[data-test="object-shard"]')];
        const copies = document.querySelectorAll('[data-test="object-shard"] [data-test="shard-copy"]');
        const magnets = [...document.querySelectorAll('[data-test="object-shard"] a[href^="magnet:"]')].map(a => a.getAttribute('href'));
        return {shards: rows.length, copies: copies.length, magnets};
    }""")
    good = [m for m in found["magnets"] if m.startswith("magnet:?xt=urn:btih:")]
    if not good:
        raise CheckFailed(f"no magnet link starting with magnet:?xt=urn:btih: among the shards (saw {found['magnets'][:3]})")
    page.screenshot(path=str(shots / "object.png"), full_page=True)
    ok(f"{bucket}/{key}: {found['shards']} shards, {found['copies']} copies, magnet links like {good[0][:60]}… (object.png)")


def step_kill(page: Page, args, shots: Path) -> None:
    goto_view(page, args.url, "/nodes")
    node_id = wait_js(page, "an online node on #/nodes",
                      "() => { const r = document.querySelector('[data-test=\"node-row\"][data-connected=\"true\"]');"
                      " return r ? r.dataset.nodeId : null; }")
    print(f"READY-TO-KILL {node_id}", flush=True)
    while True:
        line = sys.stdin.readline()
        if not line:
            raise CheckFailed(f"stdin closed before the line `killed` (node {node_id})")
        if line.strip() == "killed":
            break
    try:
        page.wait_for_selector(f'[data-test="node-row"][data-node-id="{node_id}"][data-connected="false"]',
                               state="attached", timeout=args.offline_timeout * 1000)
    except PlaywrightError:
        page.screenshot(path=str(shots / "killed.png"), full_page=True)
        banner = error_banner(page)
        raise CheckFailed(f"node {node_id} still not shown offline {args.offline_timeout:.0f} s after `killed`"
                          + (f"; error banner: {banner}" if banner else "")) from None
    page.screenshot(path=str(shots / "killed.png"), full_page=True)
    ok(f"node {node_id} shown offline after it was killed (killed.png)")


def main() -> int:
    args = parse_args()
    shots = Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    gateway = urllib.parse.urlsplit(args.url)
    gateway_origin = (gateway.scheme, gateway.hostname, gateway.port or (443 if gateway.scheme == "https" else 80))
    js_errors: list[str] = []
    foreign: list[str] = []

    def on_request(req) -> None:
        u = urllib.parse.urlsplit(req.url)
        if u.scheme in ("data", "blob", "about"):
            return
        if (u.scheme, u.hostname, u.port or (443 if u.scheme == "https" else 80)) != gateway_origin:
            foreign.append(req.url)

    width, height = (int(x) for x in args.viewport.split("x"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(http_credentials={"username": "admin", "password": args.token},
                                      viewport={"width": width, "height": height})
        page = context.new_page()
        page.on("pageerror", lambda exc: js_errors.append(str(exc)))
        page.on("request", on_request)
        try:
            step_overview(page, args, shots)
            step_nodes(page, args, shots)
            step_object(page, args, shots)
            if args.no_kill:
                ok("node kill step skipped (--no-kill)")
            else:
                step_kill(page, args, shots)
            if js_errors:
                raise CheckFailed(f"the page raised JavaScript errors: {js_errors[:5]}")
            ok("the page raised no JavaScript error")
            if foreign:
                raise CheckFailed(f"the page asked hosts other than the gateway: {sorted(set(foreign))[:5]}")
            ok(f"every request went to the gateway {args.url}")
        except (CheckFailed, PlaywrightError) as e:
            if isinstance(e, PlaywrightError):
                e = CheckFailed(f"browser error: {str(e).splitlines()[0]}")
            try:
                page.screenshot(path=str(shots / "failure.png"), full_page=True)
            except PlaywrightError:
                pass
            print(f"FAIL: {e}", flush=True)
            if js_errors:
                print(f"  (JavaScript errors seen: {js_errors[:5]})", flush=True)
            return 1
        finally:
            context.close()
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
