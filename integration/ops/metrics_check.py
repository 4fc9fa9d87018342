#!/usr/bin/env python3
"""Checks the gateway's Prometheus endpoint against the operator contract (docs: ops/contract.md).

Usage:
  metrics_check.py --url http://HOST:PORT/metrics --token T snapshot --out FILE
  metrics_check.py moved --before FILE --after FILE --expect 'NAME{label=value,...}>=DELTA' ...
  metrics_check.py dashboard [scripts/grafana-dashboard.json]
  metrics_check.py --self-test

snapshot  scrapes /metrics (with `Authorization: Bearer T`), parses it with the Python
          prometheus_client parsers, checks that every family of the contract is there with its
          type (counter, histogram or gauge) and its label names (and the label values the
          contract enumerates), that every histogram series has _sum, _count and _bucket samples
          with a +Inf bucket, buckets that never decrease and _count equal to the +Inf bucket,
          then saves every sample as JSON to FILE. One `ok:` line per family.
moved     compares two snapshots: each expectation names a counter sample (`raidtorrent_x_total`
          or the family name `raidtorrent_x`; a histogram's `_count`/`_sum` also works) with
          optional labels (omitted labels match anything; values may be "quoted"); the values
          of all samples matching it in the after snapshot, minus those in the before snapshot,
          must add up to at least DELTA. One `ok:` line per expectation that holds.
          Quote expectations for the shell: --expect 'raidtorrent_repairs_total{result=done}>=1'
dashboard checks a Grafana dashboard: a DS_PROMETHEUS input used by every panel, and every
          PromQL query naming only series and labels of the contract (counters and histogram
          parts inside rate()/increase(), gauges never, enumerated label values as listed).

The body is parsed as OpenMetrics (prometheus_client.openmetrics.parser, strict) when the
Content-Type says application/openmetrics-text or the body ends with `# EOF` (what the Rust
prometheus-client crate writes), and as text format 0.0.4 (prometheus_client.parser) otherwise.

Exit status: 0 all checks held; 1 a check failed (the message says which); 2 bad arguments.
The token may also come from the environment variable RAIDTORRENT_ADMIN_TOKEN.
Needs: python3 with prometheus-client (`pip install prometheus-client`).
"""

import argparse
import contextlib
import http.server
import io
import json
import math
import os
import re
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

try:
    from prometheus_client import parser as text_parser
    from prometheus_client.openmetrics import parser as om_parser
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("metrics_check: needs the Python package prometheus-client "
             "(pip install prometheus-client) for " + sys.executable)


class CheckFailed(Exception):
    """A check that did not hold; the message says what was expected and what came."""


class Usage(Exception):
    """A malformed argument (exit status 2)."""


# ---------------------------------------------------------------------------------------------
# The contract (ops/contract.md). Family names as the parsers report them: counters without
# `_total`. Label specs: None = any value, a set = one of these, a regex = must match it.

HTTP_OR_UDP = {"http", "udp"}
TIERS = {"high", "low", "suspended", "disqualified"}

CONTRACT = {
    # counters
    "raidtorrent_announces": ("counter", {"protocol": HTTP_OR_UDP, "result": {"ok", "refused", "error"}}),
    "raidtorrent_scrapes": ("counter", {"protocol": HTTP_OR_UDP, "result": None}),
    "raidtorrent_api_requests": ("counter", {"api": {"native", "s3"}, "route": None, "status": None}),
    "raidtorrent_object_bytes": ("counter", {"direction": {"in", "out"}}),
    "raidtorrent_repairs": ("counter", {"result": {"done", "failed"}}),
    "raidtorrent_repair_bytes": ("counter", {}),
    "raidtorrent_audits": ("counter", {"result": {"pass", "fail", "timeout"}}),
    "raidtorrent_placement_failures": ("counter", {}),
    # histograms
    "raidtorrent_api_request_duration_seconds": ("histogram", {"api": {"native", "s3"}, "route": None}),
    "raidtorrent_db_write_duration_seconds": ("histogram", {}),
    # gauges
    "raidtorrent_nodes": ("gauge", {"tier": TIERS, "zone": None,
                                    "state": {"connected", "offline", "revoked"}}),
    "raidtorrent_shards_by_live_copies": ("gauge", {"copies": re.compile(r"^[0-9]+\+?$")}),
    "raidtorrent_objects": ("gauge", {"state": {"healthy", "degraded", "at_risk", "unreadable"}}),
    "raidtorrent_repair_queue": ("gauge", {}),
    "raidtorrent_up_seconds": ("gauge", {}),
}

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count", "_created")
COUNTER_SUFFIXES = ("_total", "_created")

DEFAULT_DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                 "scripts", "grafana-dashboard.json")

ACCEPT = ("application/openmetrics-text;version=1.0.0;q=0.9,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


# ---------------------------------------------------------------------------------------------
# Scraping and parsing

def scrape(url, token, timeout):
    """GET the metrics page; returns (content type, body text)."""
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token,
                                               "Accept": ACCEPT})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            ctype = resp.headers.get("Content-Type", "")
            raw = resp.read()
    except urllib.error.HTTPError as e:
        body = e.read(500).decode("utf-8", "replace")
        hint = " (is --token the gateway's admin token?)" if e.code == 401 else ""
        raise CheckFailed(f"GET {url}: HTTP {e.code} {e.reason}{hint}: {body.strip()}")
    except (urllib.error.URLError, OSError) as e:
        raise CheckFailed(f"GET {url}: cannot fetch: {getattr(e, 'reason', e)}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckFailed(f"GET {url}: body is not UTF-8: {e}")
    base = ctype.split(";")[0].strip().lower()
    if base not in ("text/plain", "application/openmetrics-text"):
        raise CheckFailed(f"GET {url}: Content-Type {ctype!r}, expected text/plain; version=0.0.4 "
                          f"or application/openmetrics-text; body starts {text[:200]!r}")
    return ctype, text


def body_format(text, ctype=""):
    """'openmetrics' or 'text' (0.0.4), from the Content-Type or the body's `# EOF`."""
    if ctype.split(";")[0].strip().lower() == "application/openmetrics-text":
        return "openmetrics"
    if text.rstrip("\n").endswith("# EOF"):
        return "openmetrics"
    return "text"


class _LineTracker:
    """A file-like iterator over the lines of a text that remembers which line was read last,
    so that a parser error can name the line it choked on."""

    def __init__(self, text):
        self.lines = text.splitlines(keepends=True)
        self.lineno = 0

    def __iter__(self):
        for i, line in enumerate(self.lines):
            self.lineno = i + 1
            yield line

    def current(self):
        if 1 <= self.lineno <= len(self.lines):
            return self.lines[self.lineno - 1].rstrip("\n")
        return "<end of input>"


def parse(text, fmt):
    """Parses the body into {family: {"type", "samples": [(name, labels, value)]}}.
    A parse failure is a CheckFailed naming the offending line."""
    tracker = _LineTracker(text)
    fn = om_parser.text_fd_to_metric_families if fmt == "openmetrics" \
        else text_parser.text_fd_to_metric_families
    families = {}
    try:
        for fam in fn(tracker):
            samples = [(s.name, dict(s.labels), s.value) for s in fam.samples]
            if fam.name in families:
                # The 0.0.4 parser yields every sample it cannot place as an untyped family of
                # its own; gather those. Anything else twice is an error.
                if fam.type in ("untyped", "unknown") and families[fam.name]["type"] == fam.type:
                    families[fam.name]["samples"].extend(samples)
                    continue
                raise ValueError(f"family {fam.name} appears twice")
            families[fam.name] = {"type": fam.type, "samples": samples}
    except Exception as e:  # the parsers raise bare ValueErrors, sometimes others
        detail = str(e) or type(e).__name__
        where = f"line {tracker.lineno}: {tracker.current()!r}"
        if tracker.current().startswith("#") or tracker.current() == "<end of input>":
            # family-level checks run when the next family starts (or at the end)
            where += " (or the family that ends just before it)"
        raise CheckFailed(f"cannot parse the metrics page as {fmt}: {detail}; at {where}")
    if fmt == "text":
        _fold_openmetrics_counters(families)
    return families


def _fold_openmetrics_counters(families):
    """The 0.0.4 parser, given an OpenMetrics-style counter (`# TYPE x counter` then `x_total`
    samples), yields an empty counter family `x` and an untyped family `x_total`. Put the samples
    back where they belong, and say so: Prometheus itself would keep them but lose the type."""
    for name in list(families):
        fam = families.get(name)
        if fam is not None and fam["type"] == "counter" and not fam["samples"]:
            stray = families.get(name + "_total")
            if stray is not None and stray["type"] in ("untyped", "unknown"):
                fam["samples"] = stray["samples"]
                del families[name + "_total"]
                fam.setdefault("notes", []).append(
                    "served as text/plain 0.0.4 but written as OpenMetrics (TYPE names "
                    f"{name}, samples {name}_total); serve it as application/openmetrics-text")


# ---------------------------------------------------------------------------------------------
# Contract checks

def _series_key(labels, drop=()):
    return tuple(sorted((k, v) for k, v in labels.items() if k not in drop))


def _fmt_labels(labels):
    if isinstance(labels, tuple):
        labels = dict(labels)
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def check_labels(family, spec, name, labels, extra=()):
    want = set(spec) | set(extra)
    got = set(labels)
    if got != want:
        raise CheckFailed(f"{name}{_fmt_labels(labels)}: label names {sorted(got)}, "
                          f"the contract gives {family} the labels {sorted(want)}")
    for key, allowed in spec.items():
        value = labels[key]
        if allowed is None:
            continue
        if isinstance(allowed, set):
            if value not in allowed:
                raise CheckFailed(f"{name}{_fmt_labels(labels)}: {key}={value!r} is not one of "
                                  f"{sorted(allowed)} (contract)")
        elif not allowed.match(value):
            raise CheckFailed(f"{name}{_fmt_labels(labels)}: {key}={value!r} does not match "
                              f"{allowed.pattern} (contract)")


def check_histogram(family, spec, samples):
    """Every series (label set without `le`): _sum, _count, buckets with +Inf, never decreasing,
    +Inf bucket == _count. Returns the number of series."""
    series = {}
    for name, labels, value in samples:
        suffix = name[len(family):]
        if suffix not in HISTOGRAM_SUFFIXES or not name.startswith(family):
            raise CheckFailed(f"histogram {family}: unexpected sample {name}")
        if suffix == "_bucket":
            if "le" not in labels:
                raise CheckFailed(f"histogram {family}: bucket without le: {name}{_fmt_labels(labels)}")
            check_labels(family, spec, name, labels, extra=("le",))
        else:
            check_labels(family, spec, name, labels)
        s = series.setdefault(_series_key(labels, drop=("le",)), {"buckets": []})
        if suffix == "_bucket":
            try:
                le = float(labels["le"])
            except ValueError:
                raise CheckFailed(f"histogram {family}{_fmt_labels(labels)}: le={labels['le']!r} "
                                  "is not a number")
            s["buckets"].append((le, value))
        else:
            s[suffix] = value
    for key, s in series.items():
        where = f"histogram {family}{_fmt_labels(key)}"
        for part in ("_sum", "_count"):
            if part not in s:
                raise CheckFailed(f"{where}: no {family}{part} sample")
        if not s["buckets"]:
            raise CheckFailed(f"{where}: no {family}_bucket samples")
        buckets = sorted(s["buckets"])
        if buckets[-1][0] != math.inf:
            raise CheckFailed(f'{where}: no le="+Inf" bucket')
        for (le_a, a), (le_b, b) in zip(buckets, buckets[1:]):
            if b < a:
                raise CheckFailed(f"{where}: bucket le={le_b} holds {b}, less than le={le_a} ({a}); "
                                  "buckets must be cumulative")
        if buckets[-1][1] != s["_count"]:
            raise CheckFailed(f'{where}: le="+Inf" bucket holds {buckets[-1][1]} but _count is '
                              f'{s["_count"]}')
    return len(series)


def check_contract(families):
    """Raises CheckFailed at the first family that breaks the contract; returns `ok:` lines."""
    lines = []
    for family, (typ, spec) in CONTRACT.items():
        fam = families.get(family)
        if fam is None:
            hint = ""
            if family + "_total" in families:
                hint = (f" (there is a family {family}_total: registered with a _total suffix, "
                        "which prometheus-client appends itself?)")
            elif typ == "counter" and family + "_total" not in families:
                close = [n for n in families if n.startswith(family)]
                if close:
                    hint = f" (families with that prefix: {', '.join(sorted(close))})"
            raise CheckFailed(f"metric family {family} ({typ}) is missing{hint}")
        if fam["type"] != typ:
            raise CheckFailed(f"metric family {family} has type {fam['type']}, the contract says {typ}")
        samples = fam["samples"]
        if typ == "histogram":
            n = check_histogram(family, spec, samples)
        else:
            for name, labels, value in samples:
                if typ == "counter" and name not in (family + "_total", family + "_created"):
                    raise CheckFailed(f"counter {family}: sample {name}, expected {family}_total")
                if typ == "gauge" and name != family:
                    raise CheckFailed(f"gauge {family}: sample {name}, expected {family}")
                check_labels(family, spec, name, labels)
                if typ == "gauge" and not value >= 0:
                    raise CheckFailed(f"gauge {name}{_fmt_labels(labels)} = {value}, a count or "
                                      "duration that cannot be negative")
            keys = [_series_key(l) for n, l, _ in samples if not n.endswith("_created")]
            if len(keys) != len(set(keys)):
                raise CheckFailed(f"{family}: the same label set appears twice")
            n = len(keys)
        if not spec and n != 1:
            raise CheckFailed(f"{family} has no labels in the contract, so exactly one series is "
                              f"expected; found {n}")
        line = f"ok: {family} {typ}, {n} series"
        for note in fam.get("notes", []):
            line += f" (warning: {note})"
        lines.append(line)
    extra = sorted(n for n in families if n.startswith("raidtorrent_") and n not in CONTRACT)
    for name in extra:
        lines.append(f"note: {name} ({families[name]['type']}) is not in the contract")
    return lines


def snapshot_doc(url, ctype, fmt, families):
    return {
        "url": url,
        "scraped_at": time.time(),
        "content_type": ctype,
        "format": fmt,
        "families": {
            name: {"type": fam["type"],
                   "samples": [{"name": n, "labels": l, "value": v} for n, l, v in fam["samples"]]}
            for name, fam in sorted(families.items())
        },
    }


# ---------------------------------------------------------------------------------------------
# Expectations between two snapshots

_EXPECT_RE = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(.*)\})?\s*>=\s*(\S+)\s*$", re.S)


def parse_expectation(text):
    """'name{k=v,k2="v 2"}>=3' -> (name, {k: v, ...}, 3.0)."""
    m = _EXPECT_RE.match(text)
    if not m:
        raise Usage(f"bad expectation {text!r}: expected NAME{{label=value,...}}>=DELTA")
    name, body, delta = m.group(1), m.group(2), m.group(3)
    try:
        delta = float(delta)
    except ValueError:
        raise Usage(f"bad expectation {text!r}: DELTA {delta!r} is not a number")
    labels = {}
    rest = (body or "").strip()
    while rest:
        lm = re.match(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,"]*))\s*(,|$)', rest)
        if not lm or lm.end() == 0:
            raise Usage(f"bad expectation {text!r}: cannot read labels at {rest!r}")
        key = lm.group(1)
        value = lm.group(2)
        value = re.sub(r"\\(.)", r"\1", value) if value is not None else lm.group(3).strip()
        if key in labels:
            raise Usage(f"bad expectation {text!r}: label {key} given twice")
        labels[key] = value
        rest = rest[lm.end():]
    return name, labels, delta


def _resolve(doc, name):
    """The samples an expectation's name means, from one snapshot: [(labels, value)] plus the
    sample name actually matched. Accepts a counter's family name for its `_total` samples."""
    fams = doc["families"]
    for fam_name, fam in fams.items():
        names = {s["name"] for s in fam["samples"]}
        if name in names or (fam_name == name and fam["type"] == "counter"):
            sample_name = name if name in names else name + "_total"
            if fam_name == name and fam["type"] == "counter":
                sample_name = name + "_total"
            return fam_name, fam["type"], sample_name, [
                (s["labels"], s["value"]) for s in fam["samples"] if s["name"] == sample_name]
    # A counter family that exists but has no samples yet (a labelled family never touched).
    for fam_name, fam in fams.items():
        if fam["type"] == "counter" and name in (fam_name, fam_name + "_total"):
            return fam_name, "counter", fam_name + "_total", []
        if fam["type"] == "histogram" and name in (fam_name, fam_name + "_count", fam_name + "_sum"):
            return fam_name, "histogram", name, []
    return None


def evaluate(before, after, expectation):
    """Returns an `ok:` line or raises CheckFailed."""
    name, want, delta = parse_expectation(expectation) if isinstance(expectation, str) else expectation
    shown = name + (_fmt_labels(want) if want else "")
    got = _resolve(after, name)
    if got is None:
        raise CheckFailed(f"{shown}: no sample {name} in the after snapshot")
    fam_name, typ, sample_name, after_samples = got
    if typ == "histogram" and not sample_name.endswith(("_count", "_sum", "_bucket")):
        raise CheckFailed(f"{shown}: {fam_name} is a histogram; name {fam_name}_count or {fam_name}_sum")
    if typ not in ("counter", "histogram"):
        raise CheckFailed(f"{shown}: {fam_name} is a {typ}, not a counter; "
                          "only counters can be said to have moved")
    if fam_name in CONTRACT:
        allowed = set(CONTRACT[fam_name][1]) | ({"le"} if sample_name.endswith("_bucket") else set())
        unknown = sorted(set(want) - allowed)
        if unknown:
            raise CheckFailed(f"{shown}: {fam_name} has no label {', '.join(unknown)} "
                              f"(its labels: {sorted(allowed) or 'none'})")
    b = _resolve(before, name)
    before_samples = b[3] if b is not None else []

    def matches(labels):
        return all(labels.get(k) == v for k, v in want.items())

    after_m = {_series_key(l): v for l, v in after_samples if matches(l)}
    before_m = {_series_key(l): v for l, v in before_samples if matches(l)}
    if not after_m:
        seen = {}
        for labels, _ in after_samples:
            for k, v in labels.items():
                seen.setdefault(k, set()).add(v)
        seen_txt = "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in sorted(seen.items())) or "none"
        raise CheckFailed(f"{shown}: no {sample_name} sample has these labels in the after "
                          f"snapshot (label values there: {seen_txt})")
    for key, v in before_m.items():
        if key not in after_m:
            raise CheckFailed(f"{shown}: series {sample_name}{_fmt_labels(key)} is in the before "
                              "snapshot but not in the after one (gateway restarted?)")
        if after_m[key] < v:
            raise CheckFailed(f"{shown}: {sample_name}{_fmt_labels(key)} went down from {v} to "
                              f"{after_m[key]} (gateway restarted between the snapshots?)")
    moved = sum(after_m.values()) - sum(before_m.values())
    if moved < delta:
        raise CheckFailed(f"{shown}: grew by {_num(moved)} ({_num(sum(before_m.values()))} -> "
                          f"{_num(sum(after_m.values()))} over {len(after_m)} series), "
                          f"expected at least {_num(delta)}")
    return (f"ok: {shown} grew by {_num(moved)} (>= {_num(delta)}; "
            f"{_num(sum(before_m.values()))} -> {_num(sum(after_m.values()))})")


def _num(x):
    return str(int(x)) if float(x).is_integer() else repr(x)


# ---------------------------------------------------------------------------------------------
# The Grafana dashboard (scripts/grafana-dashboard.json) against the contract

_METRIC_RE = re.compile(r"\b(raidtorrent_[A-Za-z0-9_]+)\b")
_RATE_FUNCS = ("rate", "irate", "increase")


def _metric_kind(name):
    """(family, type, suffix) of a series name in the contract, or None."""
    if name in CONTRACT and CONTRACT[name][0] == "gauge":
        return name, "gauge", ""
    for suffix in ("_total",):
        fam = name[:-len(suffix)]
        if name.endswith(suffix) and CONTRACT.get(fam, ("",))[0] == "counter":
            return fam, "counter", suffix
    for suffix in ("_bucket", "_sum", "_count"):
        fam = name[:-len(suffix)]
        if name.endswith(suffix) and CONTRACT.get(fam, ("",))[0] == "histogram":
            return fam, "histogram", suffix
    return None


def _dashboard_queries(doc):
    """(where, expr) of every Prometheus query: panel targets (rows' nested panels too) and
    templating variables."""
    out = []

    def walk(panels):
        for p in panels or []:
            for t in p.get("targets", []) or []:
                if t.get("expr"):
                    out.append((f"panel {p.get('id')} {p.get('title')!r} target {t.get('refId')}", t["expr"]))
            walk(p.get("panels"))
    walk(doc.get("panels"))
    for v in doc.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if isinstance(q, str) and q:
            out.append((f"variable {v.get('name')}", q))
    return out


def check_expr(where, expr):
    """Every metric name in one PromQL expression is in the contract, counters and histogram
    parts only inside rate()/increase(), gauges never; selector labels, `by (...)` labels and
    enumerated label values match the contract."""
    problems = []
    families = []
    for m in _METRIC_RE.finditer(expr):
        name = m.group(1)
        kind = _metric_kind(name)
        if kind is None:
            problems.append(f"{name} is not a series of the contract")
            continue
        fam, typ, suffix = kind
        families.append((fam, suffix))
        in_rate = re.search(r"\b(" + "|".join(_RATE_FUNCS) + r")\s*\(\s*$", expr[:m.start()]) is not None
        if typ == "gauge" and in_rate:
            problems.append(f"{name} is a gauge, rate()/increase() of it means nothing")
        if typ in ("counter", "histogram") and not in_rate and not where.startswith("variable"):
            problems.append(f"{name} is cumulative; plot it through rate() or increase()")
        spec = CONTRACT[fam][1]
        allowed = set(spec) | {"instance", "job"} | ({"le"} if suffix == "_bucket" else set())
        rest = expr[m.end():]
        sel = re.match(r"\s*\{([^}]*)\}", rest)
        if sel:
            for lm in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', sel.group(1)):
                key, op, value = lm.groups()
                if key not in allowed:
                    problems.append(f"{name}{{{key}=...}}: {fam} has no label {key}")
                elif op in ("=", "!=") and isinstance(spec.get(key), set) and value not in spec[key]:
                    problems.append(f"{name}{{{key}{op}\"{value}\"}}: {key} is one of {sorted(spec[key])}")
    if families:
        allowed = {"instance", "job"}
        for fam, suffix in families:
            allowed |= set(CONTRACT[fam][1])
            if suffix == "_bucket":
                allowed.add("le")
        for grp in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            for key in filter(None, (k.strip() for k in grp.group(1).split(","))):
                if key not in allowed:
                    problems.append(f"grouping by {key}, which none of "
                                    f"{', '.join(sorted({f for f, _ in families}))} has")
    return [f"{where}: {p} (in {expr})" for p in problems], {f for f, _ in families}


def check_dashboard(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckFailed(f"cannot read dashboard {path}: {e}")
    problems = []
    inputs = [i.get("name") for i in doc.get("__inputs", [])]
    if "DS_PROMETHEUS" not in inputs:
        problems.append("no DS_PROMETHEUS entry in __inputs")
    ids = []

    def walk(panels):
        for p in panels or []:
            ids.append(p.get("id"))
            if p.get("type") != "row":
                for holder in [p] + list(p.get("targets", []) or []):
                    ds = holder.get("datasource")
                    if ds is not None and ds.get("uid") != "${DS_PROMETHEUS}":
                        problems.append(f"panel {p.get('id')} {p.get('title')!r}: datasource {ds}, "
                                        "expected uid ${DS_PROMETHEUS}")
            walk(p.get("panels"))
    walk(doc.get("panels"))
    if len(ids) != len(set(ids)) or None in ids:
        problems.append(f"panel ids are not unique: {ids}")
    queries = _dashboard_queries(doc)
    used = set()
    for where, expr in queries:
        p, fams = check_expr(where, expr)
        problems += p
        used |= fams
    if not queries:
        problems.append("no Prometheus queries")
    if problems:
        raise CheckFailed(f"dashboard {path}: " + "; ".join(problems))
    lines = [f"ok: dashboard {doc.get('title')!r}: {len(ids)} panels, {len(queries)} queries, "
             f"every metric and label in the contract"]
    unused = sorted(set(CONTRACT) - used)
    if unused:
        lines.append(f"note: contract families not on the dashboard: {', '.join(unused)}")
    return lines


# ---------------------------------------------------------------------------------------------
# Command line

def load_snapshot(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckFailed(f"cannot read snapshot {path}: {e}")
    if not isinstance(doc, dict) or "families" not in doc:
        raise CheckFailed(f"{path} is not a snapshot written by `metrics_check.py snapshot`")
    return doc


def cmd_snapshot(args):
    if not args.url:
        raise Usage("snapshot needs --url http://HOST:PORT/metrics")
    token = args.token or os.environ.get("RAIDTORRENT_ADMIN_TOKEN")
    if not token:
        raise Usage("snapshot needs --token (or RAIDTORRENT_ADMIN_TOKEN)")
    ctype, text = scrape(args.url, token, args.timeout)
    fmt = body_format(text, ctype)
    families = parse(text, fmt)
    print(f"ok: scraped {args.url}: {len(text)} bytes, Content-Type {ctype!r}, parsed as {fmt}, "
          f"{len(families)} families")
    if fmt == "openmetrics" and ctype.split(";")[0].strip().lower() == "text/plain":
        print("warning: the body is OpenMetrics (ends with # EOF) but Content-Type is text/plain; "
              "Prometheus would parse it as 0.0.4 and lose the counter types")
    for line in check_contract(families):
        print(line)
    doc = snapshot_doc(args.url, ctype, fmt, families)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    os.replace(tmp, args.out)
    print(f"ok: snapshot written to {args.out}")


def cmd_moved(args):
    if not args.expect:
        raise Usage("moved needs at least one --expect 'NAME{label=value}>=DELTA'")
    parsed = [(e, parse_expectation(e)) for e in args.expect]
    before, after = load_snapshot(args.before), load_snapshot(args.after)
    failures = []
    for text, exp in parsed:
        try:
            print(evaluate(before, after, exp))
        except CheckFailed as e:
            print(f"FAIL: {e}")
            failures.append(str(e))
    if failures:
        raise CheckFailed(f"{len(failures)} of {len(parsed)} expectations did not hold: "
                          + "; ".join(failures))


def cmd_dashboard(args):
    for line in check_dashboard(args.file):
        print(line)


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help="the metrics page, http://HOST:PORT/metrics")
    common.add_argument("--token", default=argparse.SUPPRESS,
                        help="admin token, sent as Authorization: Bearer (or RAIDTORRENT_ADMIN_TOKEN)")
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS,
                        help="HTTP timeout in seconds (default 15)")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], parents=[common],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--self-test", action="store_true", help="run the embedded self-test and exit")
    sub = p.add_subparsers(dest="mode")
    s = sub.add_parser("snapshot", parents=[common], help="scrape, check against the contract, save")
    s.add_argument("--out", required=True, help="JSON file to write")
    m = sub.add_parser("moved", help="check that counters grew between two snapshots")
    m.add_argument("--before", required=True)
    m.add_argument("--after", required=True)
    m.add_argument("--expect", action="extend", nargs="+", default=[],
                   help="NAME{label=value,...}>=DELTA (repeatable)")
    d = sub.add_parser("dashboard", help="check a Grafana dashboard's queries against the contract")
    d.add_argument("file", nargs="?", default=DEFAULT_DASHBOARD,
                   help="dashboard JSON (default: scripts/grafana-dashboard.json of this repository)")
    return p


def main(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    for attr, default in (("url", None), ("token", None), ("timeout", 15.0)):
        if not hasattr(args, attr):
            setattr(args, attr, default)
    try:
        if args.self_test:
            return self_test()
        if args.mode == "snapshot":
            cmd_snapshot(args)
        elif args.mode == "moved":
            cmd_moved(args)
        elif args.mode == "dashboard":
            cmd_dashboard(args)
        else:
            p.print_usage(sys.stderr)
            print("metrics_check: name a mode (snapshot, moved, dashboard) or --self-test", file=sys.stderr)
            return 2
    except Usage as e:
        print(f"metrics_check: {e}", file=sys.stderr)
        return 2
    except CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# Self-test: fixtures written as the gateway would (the Rust prometheus-client crate writes
# OpenMetrics), the same data in text format 0.0.4, and broken variants of both.

OM_FIXTURE = """\
# HELP raidtorrent_announces Tracker announces.
# TYPE raidtorrent_announces counter
raidtorrent_announces_total{protocol="http",result="ok"} 10
raidtorrent_announces_total{protocol="udp",result="ok"} 4
raidtorrent_announces_total{protocol="http",result="refused"} 1
# HELP raidtorrent_scrapes Tracker scrapes.
# TYPE raidtorrent_scrapes counter
# HELP raidtorrent_api_requests Object API requests.
# TYPE raidtorrent_api_requests counter
raidtorrent_api_requests_total{api="s3",route="get_object",status="200"} 5
raidtorrent_api_requests_total{api="s3",route="get_object",status="404"} 1
raidtorrent_api_requests_total{api="native",route="put_object",status="200"} 2
raidtorrent_api_requests_total{api="s3",route="health",status="200"} 9
# HELP raidtorrent_object_bytes Object bytes in and out.
# TYPE raidtorrent_object_bytes counter
raidtorrent_object_bytes_total{direction="in"} 123456
raidtorrent_object_bytes_total{direction="out"} 65536
# HELP raidtorrent_repairs Repairs.
# TYPE raidtorrent_repairs counter
raidtorrent_repairs_total{result="done"} 3
# HELP raidtorrent_repair_bytes Bytes repaired.
# TYPE raidtorrent_repair_bytes counter
raidtorrent_repair_bytes_total 4096
# HELP raidtorrent_audits Audits.
# TYPE raidtorrent_audits counter
raidtorrent_audits_total{result="pass"} 40
raidtorrent_audits_total{result="timeout"} 1
# HELP raidtorrent_placement_failures Placement failures.
# TYPE raidtorrent_placement_failures counter
raidtorrent_placement_failures_total 0
# HELP raidtorrent_api_request_duration_seconds Object API request durations.
# TYPE raidtorrent_api_request_duration_seconds histogram
# UNIT raidtorrent_api_request_duration_seconds seconds
raidtorrent_api_request_duration_seconds_sum{api="s3",route="get_object"} 0.75
raidtorrent_api_request_duration_seconds_count{api="s3",route="get_object"} 6
raidtorrent_api_request_duration_seconds_bucket{le="0.005",api="s3",route="get_object"} 1
raidtorrent_api_request_duration_seconds_bucket{le="0.05",api="s3",route="get_object"} 3
raidtorrent_api_request_duration_seconds_bucket{le="0.5",api="s3",route="get_object"} 5
raidtorrent_api_request_duration_seconds_bucket{le="+Inf",api="s3",route="get_object"} 6
raidtorrent_api_request_duration_seconds_sum{api="native",route="put_object"} 0.5
raidtorrent_api_request_duration_seconds_count{api="native",route="put_object"} 2
raidtorrent_api_request_duration_seconds_bucket{le="0.005",api="native",route="put_object"} 0
raidtorrent_api_request_duration_seconds_bucket{le="0.05",api="native",route="put_object"} 0
raidtorrent_api_request_duration_seconds_bucket{le="0.5",api="native",route="put_object"} 2
raidtorrent_api_request_duration_seconds_bucket{le="+Inf",api="native",route="put_object"} 2
# HELP raidtorrent_db_write_duration_seconds SQLite write durations.
# TYPE raidtorrent_db_write_duration_seconds histogram
# UNIT raidtorrent_db_write_duration_seconds seconds
raidtorrent_db_write_duration_seconds_sum 0.02
raidtorrent_db_write_duration_seconds_count 7
raidtorrent_db_write_duration_seconds_bucket{le="0.001"} 3
raidtorrent_db_write_duration_seconds_bucket{le="0.01"} 7
raidtorrent_db_write_duration_seconds_bucket{le="+Inf"} 7
# HELP raidtorrent_nodes Nodes.
# TYPE raidtorrent_nodes gauge
raidtorrent_nodes{tier="high",zone="eu",state="connected"} 2
raidtorrent_nodes{tier="low",zone="us",state="offline"} 1
raidtorrent_nodes{tier="disqualified",zone="us",state="revoked"} 1
# HELP raidtorrent_shards_by_live_copies Shards by live copies.
# TYPE raidtorrent_shards_by_live_copies gauge
raidtorrent_shards_by_live_copies{copies="0"} 0
raidtorrent_shards_by_live_copies{copies="1"} 3
raidtorrent_shards_by_live_copies{copies="2"} 69
raidtorrent_shards_by_live_copies{copies="3"} 0
raidtorrent_shards_by_live_copies{copies="4+"} 0
# HELP raidtorrent_objects Objects by state.
# TYPE raidtorrent_objects gauge
raidtorrent_objects{state="healthy"} 10
raidtorrent_objects{state="degraded"} 1
raidtorrent_objects{state="at_risk"} 1
raidtorrent_objects{state="unreadable"} 0
# HELP raidtorrent_repair_queue Repair queue.
# TYPE raidtorrent_repair_queue gauge
raidtorrent_repair_queue 4
# HELP raidtorrent_up_seconds Seconds since the gateway started.
# TYPE raidtorrent_up_seconds gauge
# UNIT raidtorrent_up_seconds seconds
raidtorrent_up_seconds 1234
# EOF
"""


def _to_text_004(om):
    """The OpenMetrics fixture in text format 0.0.4: counter TYPE lines name `_total`, no UNIT,
    no # EOF."""
    out = []
    counters = [f for f, (t, _) in CONTRACT.items() if t == "counter"]
    for line in om.splitlines():
        if line == "# EOF" or line.startswith("# UNIT "):
            continue
        parts = line.split(" ")
        if line.startswith(("# HELP ", "# TYPE ")) and parts[2] in counters:
            parts[2] += "_total"
            line = " ".join(parts)
        out.append(line)
    return "\n".join(out) + "\n"


TEXT_FIXTURE = _to_text_004(OM_FIXTURE)


def _bump(text, sample_line_prefix, new_value):
    lines = []
    hit = False
    for line in text.splitlines():
        if line.startswith(sample_line_prefix + " "):
            line = f"{sample_line_prefix} {new_value}"
            hit = True
        lines.append(line)
    assert hit, sample_line_prefix
    return "\n".join(lines) + "\n"


def self_test():
    failures = []

    def case(name, fn):
        try:
            fn()
            print(f"ok: self-test {name}")
        except AssertionError as e:
            failures.append(name)
            print(f"FAIL: self-test {name}: {e}")
        except Exception as e:  # an unexpected exception is a failed case too
            failures.append(name)
            print(f"FAIL: self-test {name}: {type(e).__name__}: {e}")

    def expect_fail(fn, *needles):
        try:
            fn()
        except CheckFailed as e:
            msg = str(e)
            for n in needles:
                assert n in msg, f"message {msg!r} lacks {n!r}"
            return msg
        raise AssertionError(f"no failure (wanted one mentioning {needles})")

    def full_check(text, fmt=None):
        fams = parse(text, fmt or body_format(text))
        check_contract(fams)
        return fams

    def flatten(fams):
        return sorted((n, _series_key(l), v) for f in fams.values() for n, l, v in f["samples"])

    # --- parsing and the contract ------------------------------------------------------------
    def om_ok():
        assert body_format(OM_FIXTURE) == "openmetrics"
        fams = full_check(OM_FIXTURE)
        assert fams["raidtorrent_announces"]["type"] == "counter"
        assert ("raidtorrent_announces_total", {"protocol": "udp", "result": "ok"}, 4) in \
            fams["raidtorrent_announces"]["samples"]
        assert fams["raidtorrent_scrapes"]["samples"] == []
        lines = check_contract(fams)
        assert "ok: raidtorrent_api_request_duration_seconds histogram, 2 series" in lines, lines
    case("OpenMetrics fixture (as the Rust crate writes it) passes", om_ok)

    def text_ok():
        assert body_format(TEXT_FIXTURE) == "text"
        assert body_format(TEXT_FIXTURE, "application/openmetrics-text; version=1.0.0") == "openmetrics"
        a, b = full_check(TEXT_FIXTURE), full_check(OM_FIXTURE)
        assert flatten(a) == flatten(b), "0.0.4 and OpenMetrics parse to different samples"
    case("text 0.0.4 fixture passes with the same samples", text_ok)

    def om_as_text():
        fams = parse(OM_FIXTURE.replace("# EOF\n", ""), "text")
        assert "raidtorrent_announces_total" not in fams
        assert fams["raidtorrent_announces"].get("notes"), "no warning note"
        lines = check_contract(fams)
        assert any("warning: served as text/plain" in l for l in lines)
        assert flatten(fams) == flatten(parse(OM_FIXTURE, "openmetrics"))
    case("OpenMetrics body read by the 0.0.4 parser is folded back, with a warning", om_as_text)

    def bad_line():
        for fmt in ("openmetrics", "text"):
            src = OM_FIXTURE if fmt == "openmetrics" else TEXT_FIXTURE
            broken = src.replace("raidtorrent_repair_queue 4", "raidtorrent_repair_queue{ 4")
            lineno = broken.splitlines().index("raidtorrent_repair_queue{ 4") + 1
            expect_fail(lambda: parse(broken, fmt), f"line {lineno}", "raidtorrent_repair_queue{ 4")
    case("an unparsable line is named with its number", bad_line)

    def missing():
        cut = OM_FIXTURE.replace('raidtorrent_audits_total{result="pass"} 40\n', "") \
            .replace('raidtorrent_audits_total{result="timeout"} 1\n', "") \
            .replace("# HELP raidtorrent_audits Audits.\n# TYPE raidtorrent_audits counter\n", "")
        expect_fail(lambda: full_check(cut), "raidtorrent_audits", "missing")
        doubled = OM_FIXTURE.replace("raidtorrent_repair_bytes counter", "raidtorrent_repair_bytes_total counter") \
            .replace("HELP raidtorrent_repair_bytes ", "HELP raidtorrent_repair_bytes_total ") \
            .replace("raidtorrent_repair_bytes_total 4096", "raidtorrent_repair_bytes_total_total 4096")
        expect_fail(lambda: full_check(doubled), "raidtorrent_repair_bytes", "_total suffix")
    case("a missing family fails (with a hint for a doubled _total)", missing)

    def wrong_type():
        t = TEXT_FIXTURE.replace("# TYPE raidtorrent_repair_queue gauge", "# TYPE raidtorrent_repair_queue counter") \
            .replace("raidtorrent_repair_queue 4", "raidtorrent_repair_queue_total 4")
        expect_fail(lambda: full_check(t), "raidtorrent_repair_queue has type counter", "gauge")
        t = TEXT_FIXTURE.replace("# TYPE raidtorrent_objects gauge\n", "")
        expect_fail(lambda: full_check(t), "raidtorrent_objects has type unknown")
    case("a wrong or missing type fails", wrong_type)

    def histograms():
        h = 'raidtorrent_db_write_duration_seconds_bucket{le="+Inf"} 7\n'
        expect_fail(lambda: full_check(TEXT_FIXTURE.replace(h, "")), "+Inf")
        expect_fail(lambda: full_check(TEXT_FIXTURE.replace(
            'raidtorrent_db_write_duration_seconds_bucket{le="0.01"} 7',
            'raidtorrent_db_write_duration_seconds_bucket{le="0.01"} 2')), "cumulative")
        expect_fail(lambda: full_check(TEXT_FIXTURE.replace(h, h.replace("7", "8"))), "_count is 7")
        expect_fail(lambda: full_check(TEXT_FIXTURE.replace(
            "raidtorrent_db_write_duration_seconds_sum 0.02\n", "")), "no raidtorrent_db_write_duration_seconds_sum")
        # the strict OpenMetrics parser refuses these itself; the failure still names a line
        expect_fail(lambda: full_check(OM_FIXTURE.replace(h, "")), "+Inf", "line ")
    case("histogram checks: +Inf, cumulative buckets, _count, _sum", histograms)

    def labels():
        t = OM_FIXTURE.replace('raidtorrent_object_bytes_total{direction="in"}', 'raidtorrent_object_bytes_total{dir="in"}')
        expect_fail(lambda: full_check(t), "label names ['dir']", "direction")
        t = OM_FIXTURE.replace('{direction="out"}', '{direction="sideways"}')
        expect_fail(lambda: full_check(t), "direction='sideways'")
        t = OM_FIXTURE.replace('copies="4+"', 'copies="many"')
        expect_fail(lambda: full_check(t), "copies='many'")
        t = OM_FIXTURE.replace("raidtorrent_repair_queue 4", 'raidtorrent_repair_queue{x="1"} 4\nraidtorrent_repair_queue{x="2"} 4')
        expect_fail(lambda: full_check(t), "raidtorrent_repair_queue")
        t = OM_FIXTURE.replace("raidtorrent_up_seconds 1234", "raidtorrent_up_seconds -1")
        expect_fail(lambda: full_check(t), "cannot be negative")
    case("label names and enumerated values follow the contract", labels)

    # --- expectations ------------------------------------------------------------------------
    def snap(text):
        return json.loads(json.dumps(snapshot_doc("fixture", "", body_format(text), parse(text, body_format(text)))))

    before = snap(OM_FIXTURE)
    after_text = _bump(OM_FIXTURE, 'raidtorrent_api_requests_total{api="s3",route="get_object",status="200"}', 8)
    after_text = _bump(after_text, 'raidtorrent_repairs_total{result="done"}', 4)
    after_text = after_text.replace(  # a series that appears only later counts from 0
        "# TYPE raidtorrent_repairs counter\n",
        '# TYPE raidtorrent_repairs counter\nraidtorrent_repairs_total{result="failed"} 2\n')
    after_text = _bump(after_text, "raidtorrent_repair_bytes_total", 5000)
    after = snap(after_text)

    def moved_ok():
        for e, want in [
            ("raidtorrent_api_requests_total{route=get_object}>=3", "grew by 3"),
            ('raidtorrent_api_requests_total{api="s3",route="get_object",status="200"}>=3', "grew by 3"),
            ("raidtorrent_api_requests{api=s3} >= 1", "grew by 3"),
            ("raidtorrent_repairs_total>=3", "grew by 3"),
            ("raidtorrent_repairs_total{result=failed}>=2", "0 -> 2"),
            ("raidtorrent_repair_bytes_total>=904", "grew by 904"),
            ("raidtorrent_announces_total{protocol=udp}>=0", "grew by 0"),
            ("raidtorrent_scrapes_total>=0", None),
        ]:
            if want is None:
                expect_fail(lambda: evaluate(before, after, e), "no raidtorrent_scrapes_total sample")
                continue
            line = evaluate(before, after, e)
            assert line.startswith("ok: ") and want in line, (e, line)
    case("moved: expectations that hold print ok lines", moved_ok)

    def moved_bad():
        expect_fail(lambda: evaluate(before, after, "raidtorrent_api_requests_total{route=get_object}>=4"),
                    "grew by 3", "at least 4")
        expect_fail(lambda: evaluate(before, after, "raidtorrent_api_requests_total{route=nope}>=1"),
                    "no raidtorrent_api_requests_total sample", "get_object")
        expect_fail(lambda: evaluate(before, after, "raidtorrent_api_requests_total{verb=GET}>=1"),
                    "no label verb")
        expect_fail(lambda: evaluate(before, after, "raidtorrent_nodes>=1"), "gauge")
        expect_fail(lambda: evaluate(before, after, "raidtorrent_nothing_total>=1"), "no sample")
        expect_fail(lambda: evaluate(after, before, "raidtorrent_repair_bytes_total>=0"), "went down")
        expect_fail(lambda: evaluate(after, before, "raidtorrent_repairs_total>=0"), "restarted")
        for bad in ("raidtorrent_x{a=1>=1", "raidtorrent_x>=lots", "raidtorrent_x", "{a=1}>=1"):
            try:
                parse_expectation(bad)
            except Usage:
                continue
            raise AssertionError(f"{bad!r} was accepted")
        assert parse_expectation('x{a="b,c",d = e}>=2.5') == ("x", {"a": "b,c", "d": "e"}, 2.5)
    case("moved: shortfalls, unknown labels, gauges, resets, bad syntax fail", moved_bad)

    def histo_moved():
        a = snap(_bump(_bump(_bump(OM_FIXTURE,
                 "raidtorrent_db_write_duration_seconds_count", 9),
                 'raidtorrent_db_write_duration_seconds_bucket{le="+Inf"}', 9),
                 'raidtorrent_db_write_duration_seconds_bucket{le="0.01"}', 9))
        assert "grew by 2" in evaluate(before, a, "raidtorrent_db_write_duration_seconds_count>=2")
        expect_fail(lambda: evaluate(before, a, "raidtorrent_db_write_duration_seconds>=1"), "_count")
    case("moved: a histogram's _count can be named", histo_moved)

    # --- the dashboard ------------------------------------------------------------------------
    def dashboard_exprs():
        good = [
            'sum by (protocol, result) (rate(raidtorrent_announces_total{instance=~"$instance"}[5m]))',
            'histogram_quantile(0.95, sum by (le) (rate(raidtorrent_db_write_duration_seconds_bucket[5m])))',
            'sum by (state) (raidtorrent_nodes{state="connected"})',
        ]
        for e in good:
            assert check_expr("t", e)[0] == [], (e, check_expr("t", e))
        for e, needle in [
            ("sum(rate(raidtorrent_announce_total[5m]))", "not a series of the contract"),
            ("rate(raidtorrent_repair_queue[5m])", "gauge"),
            ("sum(raidtorrent_repairs_total)", "cumulative"),
            ('sum(rate(raidtorrent_audits_total{outcome="pass"}[5m]))', "no label outcome"),
            ('sum(raidtorrent_objects{state="sick"})', "one of"),
            ("sum by (zone) (rate(raidtorrent_audits_total[5m]))", "grouping by zone"),
        ]:
            got = check_expr("t", e)[0]
            assert got and needle in got[0], (e, got)
    case("dashboard: PromQL expressions checked against the contract", dashboard_exprs)

    def dashboard_file():
        if not os.path.exists(DEFAULT_DASHBOARD):
            print(f"note: {DEFAULT_DASHBOARD} not found, its check skipped")
            return
        lines = check_dashboard(DEFAULT_DASHBOARD)
        assert lines[0].startswith("ok: dashboard"), lines
    case("dashboard: scripts/grafana-dashboard.json uses only contract metrics", dashboard_file)

    # --- the command line end to end, against a local HTTP server ----------------------------
    def end_to_end():
        state = {"body": OM_FIXTURE, "ctype": "application/openmetrics-text; version=1.0.0; charset=utf-8"}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.headers.get("Authorization") != "Bearer s3cret":
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="raidtorrent gateway"')
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": "admin credential required"}')
                    return
                body = state["body"].encode()
                self.send_response(200)
                self.send_header("Content-Type", state["ctype"])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{srv.server_address[1]}/metrics"
        try:
            with tempfile.TemporaryDirectory() as d:
                def run(*argv):
                    out, err = io.StringIO(), io.StringIO()
                    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                        code = main(list(argv))
                    return code, out.getvalue() + err.getvalue()

                b, a = os.path.join(d, "before.json"), os.path.join(d, "after.json")
                code, out = run("--url", url, "--token", "s3cret", "snapshot", "--out", b)
                assert code == 0 and "ok: raidtorrent_nodes gauge, 3 series" in out, out
                state["body"], state["ctype"] = TEXT_FIXTURE.replace(
                    'raidtorrent_audits_total{result="pass"} 40', 'raidtorrent_audits_total{result="pass"} 45'), \
                    "text/plain; version=0.0.4; charset=utf-8"
                code, out = run("snapshot", "--url", url, "--token", "s3cret", "--out", a)
                assert code == 0 and "parsed as text" in out, out
                code, out = run("moved", "--before", b, "--after", a, "--expect",
                                "raidtorrent_audits_total{result=pass}>=5", "raidtorrent_audits_total>=5")
                assert code == 0 and out.count("ok: ") == 2, out
                code, out = run("moved", "--before", b, "--after", a,
                                "--expect", "raidtorrent_audits_total{result=timeout}>=1")
                assert code == 1 and "FAIL" in out and "result=\"timeout\"" in out, out
                code, out = run("--url", url, "--token", "wrong", "snapshot", "--out", a)
                assert code == 1 and "HTTP 401" in out, out
                state["ctype"] = "text/html"
                code, out = run("--url", url, "--token", "s3cret", "snapshot", "--out", a)
                assert code == 1 and "Content-Type" in out, out
                code, out = run("moved", "--before", b, "--after", a, "--expect", "oops")
                assert code == 2 and "bad expectation" in out, out
        finally:
            srv.shutdown()
            srv.server_close()
    case("command line end to end against a local HTTP server", end_to_end)

    if failures:
        print(f"self-test FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    print("ok: self-test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
