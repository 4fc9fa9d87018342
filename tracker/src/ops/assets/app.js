/* raidtorrent operator dashboard.
 * Hash-routed views over the gateway's /admin JSON API (routes: tracker/src/ops/mod.rs). No dependencies,
 * no build step: plain DOM, inline SVG charts. Each view re-fetches every REFRESH_MS.
 * Sections: constants · DOM helpers · formatting · API · widgets · charts · views (overview,
 * nodes, node, objects, object) · router and refresh loop. */
"use strict";
(() => {

// ---------------------------------------------------------------- constants

const REFRESH_MS = 5000;
const BASE = location.pathname.replace(/[^/]*$/, ""); // "/admin/" when served at /admin/dashboard
const SVGNS = "http://www.w3.org/2000/svg";
const OBJECT_STATES = [["healthy", "healthy", "ok"], ["degraded", "degraded", "warn"],
  ["at_risk", "at risk", "risk"], ["unreadable", "unreadable", "bad"]];
const STATE_CLASS = { healthy: "ok", degraded: "warn", at_risk: "risk", unreadable: "bad", not_in_swarm: "muted",
  live: "ok", away: "warn", lost: "bad", bad: "bad", pass: "ok", fail: "bad", timeout: "warn",
  high: "info", low: "neutral", suspended: "warn", disqualified: "bad",
  idle: "muted", running: "info", busy: "info", error: "bad", failed: "bad", backing_off: "warn",
  throttled: "warn", standby: "muted" };
const TIER_RANK = { high: 3, low: 2, suspended: 1, disqualified: 0 };
const COLORS = { a: "#0969da", b: "#bc4c00", ok: "#1a7f37", warn: "#bf8700", bad: "#cf222e" };

// ---------------------------------------------------------------- DOM helpers

const $ = (sel) => document.querySelector(sel);

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
}
function append(e, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k == null || k === false) continue;
    e.append(k instanceof Node ? k : String(k));
  }
}
/** h("a", {href: "#/"}, "text", child, [more]) -> HTMLElement */
function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  append(e, kids);
  return e;
}
/** Same as h() for SVG elements. */
function s(tag, attrs, ...kids) {
  const e = document.createElementNS(SVGNS, tag);
  setAttrs(e, attrs);
  append(e, kids);
  return e;
}
const td = (content, cls) => h("td", { class: cls }, content ?? "—");
const code = (text, cls) => h("code", { class: cls }, text);
const badge = (text, cls) => h("span", { class: `badge ${cls || STATE_CLASS[text] || "neutral"}` }, String(text).replace(/_/g, " "));
const panel = (title, ...body) => h("section", { class: "panel" }, h("h3", {}, title), body);
const muted = (text) => h("p", { class: "muted" }, text);
const enc = encodeURIComponent;

function dec(text) {
  try { return decodeURIComponent(text); } catch { return text; }
}

/** A table inside a horizontally scrolling wrapper. headers: "label" or ["label", "num"]. */
function table(headers, rows, attrs) {
  const th = (x) => Array.isArray(x) ? h("th", { scope: "col", class: x[1] }, x[0]) : h("th", { scope: "col" }, x);
  return h("div", { class: "table-wrap" },
    h("table", attrs, h("thead", {}, h("tr", {}, headers.map(th))), h("tbody", {}, rows)));
}

/** A definition list from [label, value, class?] triples (value may be a node). */
function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v, cls]) => h("div", { class: cls }, h("dt", {}, k), h("dd", {}, v ?? "—"))));
}

// ---------------------------------------------------------------- formatting

const fmt = {
  bytes(n) {
    if (n == null) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let v = Number(n), i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${i === 0 ? Math.round(v) : v.toFixed(Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0)} ${units[i]}`;
  },
  rate: (n) => `${fmt.bytes(n)}/s`,
  num: (n) => n == null ? "—" : Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 }),
  pct: (f, digits = 0) => f == null ? "—" : `${(f * 100).toFixed(digits)}%`,
  score: (f) => f == null ? "—" : Number(f).toFixed(2),
  ago(t, now) {
    if (t == null) return "never";
    const d = Math.max(0, Math.round(now - t));
    if (d < 60) return `${d} s ago`;
    if (d < 3600) return `${Math.floor(d / 60)} min ago`;
    if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
    return `${Math.floor(d / 86400)} d ago`;
  },
  time(t) {
    if (t == null) return "—";
    const d = new Date(t * 1000), p = (x) => String(x).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  },
  clock(t) {
    const d = new Date(t * 1000);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  },
  yesNo: (b) => b ? "yes" : "no",
};

/** A relative time with the absolute one as a tooltip. */
const when = (t, now) => h("span", { title: fmt.time(t) }, fmt.ago(t, now));

// ---------------------------------------------------------------- API

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  let res;
  try {
    // X-Requested-With: the gateway takes a POST on the browser's Basic credential only from a
    // script, so another site's form cannot act with it.
    const headers = { Accept: "application/json", "X-Requested-With": "raidtorrent-dashboard" };
    res = await fetch(BASE + path, { credentials: "same-origin", headers, ...options });
  } catch (e) {
    throw new HttpError(0, `gateway unreachable: ${e.message}`);
  }
  if (res.status === 401) {
    throw new HttpError(401, "admin credential needed");
  }
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) throw new HttpError(res.status, `${path}: ${res.status} ${(body && body.error) || res.statusText}`);
  if (body == null) throw new HttpError(res.status, `${path}: the answer is not JSON`);
  return body;
}

/** The key is one path segment: percent-encoded whole, its slashes as %2F (see ops/mod.rs). */
const objectPath = (bucket, key) => `objects/${enc(bucket)}/${enc(key)}`;
const objectHash = (bucket, key) => `#/object/${enc(bucket)}/${enc(key)}`;

// ---------------------------------------------------------------- widgets

/** A horizontal bar split in coloured segments: parts = [[value, class], ...]. */
function stackBar(parts, total) {
  return h("div", { class: "stack", role: "presentation" }, parts.filter(([v]) => v > 0).map(([v, cls]) =>
    h("span", { class: `seg ${cls}`, style: `width:${(100 * v / Math.max(1, total)).toFixed(2)}%` })));
}

/** A 0..1 meter, optionally with a marker (e.g. a target share). */
function meter(value, marker, cls = "info") {
  const clamp = (x) => Math.max(0, Math.min(1, x || 0));
  return h("div", { class: "meter" }, h("span", { class: `fill ${cls}`, style: `width:${(clamp(value) * 100).toFixed(1)}%` }),
    marker == null ? null : h("span", { class: "marker", style: `left:${(clamp(marker) * 100).toFixed(1)}%`, title: `wanted ${fmt.pct(marker)}` }));
}

const availClass = (v) => v >= 0.9 ? "ok" : v >= 0.5 ? "warn" : "bad";

function connectedBadge(n) {
  if (n.revoked) return h("span", { class: "badge bad", "data-test": "node-status" }, "revoked");
  return h("span", { class: `badge ${n.connected ? "ok" : "bad"}`, "data-test": "node-status" }, n.connected ? "online" : "offline");
}

function reasonsText(reasons) {
  return h("div", { class: "reasons", "data-test": "node-reasons" }, (reasons || []).join("; "));
}

function card(title, big, attrs, ...rest) {
  return h("section", { class: "card", ...attrs }, h("h3", {}, title), h("div", { class: "big" }, big), rest);
}

function legend(items) {
  return h("ul", { class: "legend" }, items.map(([cls, text, attrs]) => h("li", attrs, h("i", { class: `dot ${cls}` }), text)));
}

// ---------------------------------------------------------------- charts (inline SVG)

let charts = []; // [container, draw(width)] of the current render; redrawn on resize

/** A container drawn once it is in the document, at its real width. */
function chart(draw) {
  const box = h("div", { class: "chart" });
  charts.push([box, draw]);
  return box;
}
function drawCharts() {
  charts = charts.filter(([box]) => box.isConnected);
  for (const [box, draw] of charts) box.replaceChildren(draw(Math.max(220, box.clientWidth || 600)));
}

function niceCeil(v, binary) {
  if (!(v > 0)) return 1;
  const base = binary ? 1024 : 10;
  const p = binary ? base ** Math.floor(Math.log(v) / Math.log(base)) : 10 ** Math.floor(Math.log10(v));
  const steps = binary ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1024] : [1, 2, 5, 10];
  return steps.find((m) => m * p >= v) * p;
}

/** Horizontal grid lines with y labels at 0, ½ and the top. */
function yGrid(svg, box, ymax, yFmt) {
  for (const f of [0, 0.5, 1]) {
    const y = box.t + box.ih * (1 - f);
    svg.append(s("line", { class: "grid", x1: box.l, x2: box.l + box.iw, y1: y, y2: y }),
      s("text", { x: box.l - 6, y: y + 4, "text-anchor": "end" }, yFmt(ymax * f)));
  }
}

/** Line chart of series [{name, color, points: [[unix, value]...]}]. */
function lineChart(width, series, opt) {
  const all = series.flatMap((x) => x.points);
  if (!all.length) return muted("not enough samples yet");
  const H = 170, box = { l: 70, r: 10, t: 8, b: 22 };
  box.iw = width - box.l - box.r; box.ih = H - box.t - box.b;
  const ts = all.map((p) => p[0]), x0 = Math.min(...ts), x1 = Math.max(x0 + 1, ...ts);
  const ymax = niceCeil(Math.max(...all.map((p) => p[1])), opt.binary);
  const X = (t) => (box.l + (t - x0) / (x1 - x0) * box.iw).toFixed(1);
  const Y = (v) => (box.t + box.ih * (1 - v / ymax)).toFixed(1);
  const svg = s("svg", { class: "plot", width, height: H, viewBox: `0 0 ${width} ${H}`, role: "img", "aria-label": opt.label });
  yGrid(svg, box, ymax, opt.yFmt);
  svg.append(s("text", { x: box.l, y: H - 5 }, fmt.clock(x0)),
    s("text", { x: box.l + box.iw, y: H - 5, "text-anchor": "end" }, fmt.clock(x1)));
  for (const x of series) {
    if (x.points.length) svg.append(s("polyline", { class: "line", stroke: x.color, points: x.points.map((p) => `${X(p[0])},${Y(p[1])}`).join(" ") }));
  }
  const last = (x) => x.points.length ? opt.yFmt(x.points[x.points.length - 1][1]) : "—";
  return h("div", {}, svg, h("ul", { class: "legend" }, series.map((x) =>
    h("li", {}, h("i", { class: "dot", style: `background:${x.color}` }), `${x.name}: ${last(x)}`))));
}

/** Bar chart of [{label, value, cls, title}]. */
function barChart(width, bars, opt) {
  const H = opt.height || 150, box = { l: 46, r: 6, t: 16, b: 20 };
  box.iw = width - box.l - box.r; box.ih = H - box.t - box.b;
  const ymax = opt.ymax || niceCeil(Math.max(1, ...bars.map((b) => b.value)));
  const bw = box.iw / Math.max(1, bars.length), every = bw < 16 ? 3 : 1;
  const svg = s("svg", { class: "plot", width, height: H, viewBox: `0 0 ${width} ${H}`, role: "img", "aria-label": opt.label });
  yGrid(svg, box, ymax, opt.yFmt || fmt.num);
  bars.forEach((b, i) => {
    const bh = Math.max(b.value > 0 ? 1 : 0, b.value / ymax * box.ih), x = box.l + i * bw;
    svg.append(s("g", { class: `bar ${b.cls || "info"}` }, s("title", {}, b.title || `${b.label}: ${b.value}`),
      s("rect", { x: (x + bw * 0.15).toFixed(1), y: (box.t + box.ih - bh).toFixed(1), width: (bw * 0.7).toFixed(1), height: bh.toFixed(1) }),
      opt.values ? s("text", { x: x + bw / 2, y: box.t + box.ih - bh - 4, "text-anchor": "middle" }, fmt.num(b.value)) : null,
      i % every ? null : s("text", { x: x + bw / 2, y: H - 5, "text-anchor": "middle" }, b.label)));
  });
  return svg;
}

/** 24 tiny bars: availability per UTC hour of day. */
function sparkline(values) {
  const W = 3, H = 16, vals = values || [];
  const svg = s("svg", { class: "spark", width: 24 * W, height: H, viewBox: `0 0 ${24 * W} ${H}`, role: "img", "aria-label": "availability by UTC hour" });
  vals.slice(0, 24).forEach((v, i) => {
    const bh = Math.max(1, v * H);
    svg.append(s("rect", { class: availClass(v), x: i * W, y: H - bh, width: W - 1, height: bh },
      s("title", {}, `${String(i).padStart(2, "0")}:00 UTC: ${fmt.pct(v)}`)));
  });
  return svg;
}

// ---------------------------------------------------------------- view: overview (#/)

const Overview = {
  nav: "overview",
  title: "Overview",
  async load() {
    const [cloud, history] = await Promise.all([api("cloud"), api("history").catch((e) => ({ error: e }))]);
    return { cloud, history };
  },
  render({ cloud, history }, _p, ctx) {
    ctx.root.replaceChildren(
      healthCards(cloud),
      h("div", { class: "grid2" },
        panel("Shards by live copies", liveCopies(cloud.shards)),
        panel("Repair", repairFacts(cloud.repair || {}, cloud.totals || {}, cloud.now)),
        panel("Data per zone", zoneTable(cloud.zones || [])),
        panel("Data per tier", tierTable(cloud.tiers || []))),
      panel("Workers", workersTable(cloud.workers, cloud.now)),
      h("h2", {}, "Recent history"),
      historyCharts(history));
  },
};

function healthCards(c) {
  const o = c.objects, n = c.nodes, r = c.repair, sh = c.shards;
  const wanted = c.high_tier_wanted;
  return h("div", { class: "cards" },
    card("Objects", h("span", { "data-test": "cloud-objects-total" }, fmt.num(o.total)), { "data-test": "cloud-objects" },
      stackBar(OBJECT_STATES.map(([k, , cls]) => [o[k], cls]), o.total),
      legend(OBJECT_STATES.map(([k, label, cls]) => [cls, `${fmt.num(o[k])} ${label}`, { "data-state": k }]))),
    card("Nodes connected", `${fmt.num(n.connected)} / ${fmt.num(n.total)}`, { "data-test": "cloud-nodes" },
      stackBar([[n.connected, "ok"], [n.total - n.connected, "bad"]], n.total),
      legend(Object.entries(n.by_tier || {}).map(([t, v]) => [STATE_CLASS[t] || "neutral", `${v} ${t}`]))),
    card("Repair queue", fmt.num(r.queue), { "data-test": "cloud-repair" },
      h("p", {}, badge(r.state), " ", h("span", { class: "muted" }, `last pass ${fmt.ago(r.last_pass_at, c.now)}`)),
      legend(Object.entries(r.planned || {}).map(([k, v]) => [v ? "warn" : "muted", `${v} ${k.replace(/_/g, " ")}`]))),
    card("Shards", fmt.num(sh.total), { "data-test": "cloud-shards" },
      legend([[sh.under ? "warn" : "ok", `${fmt.num(sh.under)} under-replicated`],
        [sh.without_copy ? "bad" : "ok", `${fmt.num(sh.without_copy)} without a copy`],
        [sh.bad_copies ? "bad" : "ok", `${fmt.num(sh.bad_copies)} bad copies`],
        ["muted", `${fmt.num(sh.surplus_copies)} surplus copies`]])),
    card("High-tier share", fmt.pct(c.high_tier_share, 1), { "data-test": "cloud-high-tier" },
      meter(c.high_tier_share, wanted, wanted != null && c.high_tier_share < wanted ? "warn" : "info"),
      h("p", { class: "muted" }, wanted == null ? "no bucket policy asks for high-tier copies"
        : `policies ask for up to ${fmt.pct(wanted, 1)} of copies on high-tier nodes`)));
}

function liveCopies(shards) {
  const counts = shards.by_live_copies || [];
  const last = counts.length - 1;
  const bars = counts.map((v, i) => ({
    label: i === last && i > 0 ? `${i}+` : String(i), value: v,
    cls: i === 0 ? "bad" : i === last ? "ok" : "warn",
    title: `${fmt.num(v)} shards with ${i === last && i > 0 ? `${i} or more` : i} live copies`,
  }));
  return h("div", {}, chart((w) => barChart(w, bars, { values: true, label: "shards by live copies" })),
    muted(`${fmt.num(shards.under)} of ${fmt.num(shards.total)} shards have fewer live copies than their policy wants`));
}

function shareCell(bytes, total) {
  return h("td", { class: "bar-cell" }, meter(total ? bytes / total : 0), h("span", {}, fmt.bytes(bytes)));
}

function zoneTable(zones = []) {
  const total = zones.reduce((a, z) => a + z.bytes, 0);
  return table(["Zone", ["Nodes", "num"], ["Shards", "num"], "Bytes"], zones.map((z) => h("tr", {},
    td(z.zone), td(`${z.connected} / ${z.nodes}`, "num"), td(fmt.num(z.shards), "num"), shareCell(z.bytes, total))));
}

function tierTable(tiers = []) {
  const total = tiers.reduce((a, t) => a + t.bytes, 0);
  return table(["Tier", ["Nodes", "num"], ["Copies", "num"], "Bytes"], tiers.map((t) => h("tr", {},
    td(badge(t.tier)), td(fmt.num(t.nodes), "num"), td(fmt.num(t.copies), "num"), shareCell(t.bytes, total))));
}

function repairFacts(r, totals, now) {
  const backing = (r.backing_off || []).map((id, i) => [i ? ", " : "", h("a", { href: `#/node/${id}` }, `node ${id}`)]);
  return facts([
    ["State", badge(r.state)], ["Last pass", when(r.last_pass_at, now)], ["Queue", fmt.num(r.queue)],
    ["Repairs done", fmt.num(r.done)], ["Repairs failed", fmt.num(r.failed)], ["Bytes repaired", fmt.bytes(r.bytes_repaired)],
    ["Backing off", backing.length ? backing : "none"],
    ["Last error", r.last_error ? h("span", { class: "err-text" }, r.last_error) : "none"],
    ["Bytes in (total)", fmt.bytes(totals.bytes_in)], ["Bytes out (total)", fmt.bytes(totals.bytes_out)],
    ["Repairs (total)", fmt.num(totals.repairs)], ["Audits (total)", fmt.num(totals.audits)],
  ]);
}

function workersTable(workers, now) {
  return table(["Worker", "State", "Last step", "Next step", ["Steps", "num"], ["Failed", "num"], "Error"],
    (workers || []).map((w) => h("tr", {},
      td(w.name), td(badge(w.state)), td(when(w.last_step_at, now)), td(until(w.next_step_at, now)),
      td(fmt.num(w.steps), "num"), td(fmt.num(w.failed_steps), "num"),
      td(w.last_error ? h("span", { class: "err-text" }, w.last_error) : "—"))));
}

/** "in 12 s" for a time ahead of `now`, "due" once it is past. */
function until(t, now) {
  if (t == null) return "—";
  const d = t - now;
  if (d <= 0) return "due";
  return d < 60 ? `in ${Math.round(d)} s` : `in ${Math.floor(d / 60)} min`;
}

/** Differences between cumulative samples: per second (rate) or per interval. */
function deltas(samples, key, perSecs) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = samples[i].at - samples[i - 1].at, d = samples[i][key] - samples[i - 1][key];
    if (dt > 0 && d >= 0) out.push([samples[i].at, d / dt * perSecs]); // d < 0: the gateway restarted
  }
  return out;
}

function historyCharts(history) {
  if (history.error) return muted(`history unavailable: ${history.error.message}`);
  const S = history.samples || [], every = history.interval_secs || 5;
  if (S.length < 2) return muted("collecting samples: the charts appear after two samples");
  const series = (name, color, points) => ({ name, color, points });
  return h("div", { class: "grid3" },
    panel("Object bytes per second", chart((w) => lineChart(w, [series("in", COLORS.a, deltas(S, "bytes_in", 1)),
      series("out", COLORS.b, deltas(S, "bytes_out", 1))], { yFmt: fmt.rate, binary: true, label: "bytes per second" }))),
    panel(`Repairs and audits per ${every} s`, chart((w) => lineChart(w, [series("repairs", COLORS.b, deltas(S, "repairs", every)),
      series("audits", COLORS.a, deltas(S, "audits", every))], { yFmt: fmt.num, label: "repairs and audits" }))),
    panel("Nodes", chart((w) => lineChart(w, [series("known", COLORS.a, S.map((x) => [x.at, x.nodes])),
      series("connected", COLORS.ok, S.map((x) => [x.at, x.connected]))], { yFmt: fmt.num, label: "node count" }))));
}

// ---------------------------------------------------------------- view: nodes (#/nodes)

const nodesUi = { sort: "name", dir: 1, q: "", show: "all" }; // kept while navigating

const NODE_COLS = [
  { key: "name", label: "Node", val: (n) => n.name, cell: (n) => h("a", { href: `#/node/${n.id}` }, n.name) },
  { key: "connected", label: "Status", val: (n) => (n.connected ? 1 : 0), cell: connectedBadge },
  { key: "zone", label: "Zone", val: (n) => n.zone, cell: (n) => n.zone },
  { key: "address", label: "Address", val: (n) => n.address, cell: (n) => n.address ? code(n.address) : "—" },
  { key: "free", label: "Free / capacity", num: true, val: (n) => n.free,
    cell: (n) => n.capacity == null ? "—" : [fmt.bytes(n.free), h("span", { class: "muted" }, ` / ${fmt.bytes(n.capacity)}`)] },
  { key: "held_shards", label: "Shards", num: true, val: (n) => n.held_shards, cell: (n) => fmt.num(n.held_shards) },
  { key: "held_bytes", label: "Held", num: true, val: (n) => n.held_bytes, cell: (n) => fmt.bytes(n.held_bytes) },
  { key: "uptime", label: "Uptime", num: true, val: (n) => n.uptime, cell: (n) => fmt.pct(n.uptime, 1) },
  { key: "hours", label: "By hour (UTC)", cell: (n) => sparkline(n.hourly_availability) },
  { key: "score", label: "Score", num: true, val: (n) => n.score, cell: (n) => fmt.score(n.score) },
  { key: "tier", label: "Tier", val: (n) => TIER_RANK[n.tier] ?? -1, cell: (n) => h("span", { "data-test": "node-tier" }, badge(n.tier)) },
  { key: "vetted", label: "Vetted", val: (n) => (n.vetted ? 1 : 0), cell: (n) => fmt.yesNo(n.vetted) },
  { key: "reasons", label: "Reasons", cell: (n) => reasonsText(n.reasons) },
  { key: "last_seen", label: "Last seen", val: (n) => n.last_seen, cell: (n, now) => when(n.last_seen, now) },
];

const Nodes = {
  nav: "nodes",
  title: "Nodes",
  init(root) {
    const ctx = { root, data: null, head: h("tr"), body: h("tbody"), count: h("span", { class: "muted" }) };
    const redraw = () => drawNodes(ctx);
    const filter = h("input", { type: "search", value: nodesUi.q, placeholder: "filter: name, zone, tier, reason",
      "aria-label": "filter nodes", "data-test": "node-filter", oninput: (e) => { nodesUi.q = e.target.value; redraw(); } });
    const show = h("select", { "aria-label": "which nodes", "data-test": "node-show", onchange: (e) => { nodesUi.show = e.target.value; redraw(); } },
      [["all", "all nodes"], ["online", "online only"], ["offline", "offline only"]].map(([v, l]) =>
        h("option", { value: v, selected: nodesUi.show === v }, l)));
    root.append(h("h2", {}, "Nodes"), h("div", { class: "toolbar" }, filter, show, ctx.count),
      h("div", { class: "table-wrap" }, h("table", { class: "nodes" }, h("thead", {}, ctx.head), ctx.body)));
    drawNodes(ctx);
    return ctx;
  },
  load: () => api("fleet"),
  render(data, _p, ctx) {
    ctx.data = data;
    drawNodes(ctx);
  },
};

function nodeMatches(n) {
  if (nodesUi.show === "online" && !n.connected) return false;
  if (nodesUi.show === "offline" && n.connected) return false;
  const q = nodesUi.q.trim().toLowerCase();
  if (!q) return true;
  return [n.name, n.zone, n.tier, ...(n.reasons || [])].some((x) => String(x ?? "").toLowerCase().includes(q));
}

function compareBy(col, dir) {
  return (a, b) => {
    const x = col.val(a), y = col.val(b);
    if (x == null || y == null) return (x == null) - (y == null) || a.id - b.id; // nulls last
    const c = typeof x === "string" ? x.localeCompare(y, undefined, { numeric: true }) : x - y;
    return c * dir || a.id - b.id;
  };
}

function sortHeader(ctx) {
  ctx.head.replaceChildren(...NODE_COLS.map((c) => {
    const active = nodesUi.sort === c.key;
    if (!c.val) return h("th", { scope: "col" }, c.label);
    return h("th", { scope: "col", class: c.num ? "num" : null, "aria-sort": active ? (nodesUi.dir > 0 ? "ascending" : "descending") : "none" },
      h("button", { type: "button", class: "sort", onclick: () => {
        nodesUi.dir = active ? -nodesUi.dir : 1;
        nodesUi.sort = c.key;
        drawNodes(ctx);
      } }, c.label, h("span", { class: "arrow" }, active ? (nodesUi.dir > 0 ? " ▲" : " ▼") : "")));
  }));
}

function drawNodes(ctx) {
  sortHeader(ctx);
  const note = (text) => h("tr", {}, h("td", { colspan: NODE_COLS.length, class: "muted" }, text));
  if (!ctx.data) return ctx.body.replaceChildren(note("waiting for the gateway…"));
  const { nodes, now } = ctx.data;
  const col = NODE_COLS.find((c) => c.key === nodesUi.sort) || NODE_COLS[0];
  const rows = nodes.filter(nodeMatches).sort(compareBy(col, nodesUi.dir));
  ctx.count.textContent = `${rows.length} of ${nodes.length} nodes · ${nodes.filter((n) => n.connected).length} online`;
  ctx.body.replaceChildren(...rows.map((n) => h("tr", { "data-test": "node-row", "data-node-id": n.id,
    "data-connected": String(!!n.connected), class: n.connected ? null : "offline" },
  NODE_COLS.map((c) => td(c.cell(n, now), c.num ? "num" : c.key === "reasons" ? "wide" : null)))));
  if (!rows.length) ctx.body.append(note(nodes.length ? "no node matches" : "no nodes yet"));
}

// ---------------------------------------------------------------- view: one node (#/node/<id>)

const NodeView = {
  nav: "nodes",
  title: "Node",
  async load(p) {
    try {
      return await api(`fleet/${enc(p.id)}`);
    } catch (e) {
      if (e.status === 404) throw new HttpError(404, `no node with id ${p.id}`);
      throw e;
    }
  },
  render(n, _p, ctx) {
    const now = Date.now() / 1000; // NodeRow carries no server clock
    ctx.root.replaceChildren(
      h("p", { class: "crumbs" }, h("a", { href: "#/nodes" }, "Nodes"), " / ", n.name),
      h("h2", { class: "title" }, n.name, " ", connectedBadge(n), " ", badge(n.tier), n.vetted ? badge("vetted", "ok") : badge("not vetted", "muted")),
      panel("Node", nodeFacts(n, now)),
      h("div", { class: "grid2" },
        panel("Score parts", scoreParts(n)),
        panel("Availability by hour of day (UTC)", chart((w) => barChart(w, (n.hourly_availability || []).map((v, i) => ({
          label: String(i), value: v, cls: availClass(v), title: `${String(i).padStart(2, "0")}:00 UTC: ${fmt.pct(v, 1)}`,
        })), { ymax: 1, yFmt: (f) => fmt.pct(f), label: "availability by hour" })))),
      panel("Why it scores as it does", (n.reasons || []).length
        ? h("ul", { class: "reason-list", "data-test": "node-reasons" }, n.reasons.map((r) => h("li", {}, r)))
        : muted("no reasons given")),
      panel("Recent audits", auditsTable(n.recent_audits || [], now)));
  },
};

function nodeFacts(n, now) {
  const used = n.capacity && n.free != null ? 1 - n.free / n.capacity : null;
  return facts([
    ["Id", String(n.id)], ["Zone", n.zone], ["Address", n.address ? code(n.address) : "—"],
    ["Capacity", fmt.bytes(n.capacity)], ["Free", n.free == null ? "—" : `${fmt.bytes(n.free)} (${fmt.pct(used)} used)`],
    ["Held shards", fmt.num(n.held_shards)], ["Held bytes", fmt.bytes(n.held_bytes)],
    ["Uptime", fmt.pct(n.uptime, 1)], ["Score", fmt.score(n.score)], ["Tier", badge(n.tier)],
    ["Vetted", fmt.yesNo(n.vetted)], ["Revoked", fmt.yesNo(n.revoked)],
    ["Audits passed", fmt.num(n.audits_passed)], ["Recent failed audits", fmt.num(n.recent_failed_audits)],
    ["Recent timed-out audits", fmt.num(n.recent_timed_out_audits)],
    ["First seen", n.first_seen == null ? "never" : fmt.time(n.first_seen)], ["Last seen", when(n.last_seen, now)],
  ]);
}

function scoreParts(n) {
  const p = n.score_parts || {};
  const row = (label, v) => h("tr", {}, td(label), h("td", { class: "bar-cell" }, meter(v, null, availClass(v ?? 0)), h("span", {}, fmt.score(v))));
  return table(["Part", "Value"], [
    row("Uptime", p.uptime), row("Audit reputation", p.audit_reputation), row("Audit integrity", p.audit_integrity),
    row("Transfer success", p.transfer_success),
    h("tr", {}, td("Speed"), td(p.speed_bps == null ? "not measured" : fmt.rate(p.speed_bps))),
    h("tr", { class: "total" }, td("Score"), td(fmt.score(n.score))),
  ]);
}

function auditsTable(audits, now) {
  if (!audits.length) return muted("no audits yet");
  return table(["When", "Outcome", "Info-hash", "Detail"], audits.map((a) => h("tr", { "data-test": "audit" },
    td(when(a.at, now)), td(badge(a.outcome)), td(code(a.info_hash, "hash")), td(a.detail || "—"))));
}

// ---------------------------------------------------------------- view: objects (#/objects[/<bucket>])

const objectsUi = { bucket: null, prefix: "", items: [], next: null }; // kept while navigating
const PAGE = 100;

const Objects = {
  nav: "objects",
  title: "Objects",
  init(root, p) {
    if (objectsUi.bucket !== p.bucket) Object.assign(objectsUi, { bucket: p.bucket, prefix: "", items: [], next: null });
    const ctx = { root, buckets: h("div", { class: "buckets" }), list: h("div"), busy: false };
    ctx.more = h("button", { type: "button", hidden: true, "data-test": "more", onclick: () => moreKeys(ctx, p.bucket) }, "more");
    const prefix = h("input", { type: "search", value: objectsUi.prefix, placeholder: "key prefix", "aria-label": "key prefix", "data-test": "prefix" });
    const form = h("form", { class: "toolbar", onsubmit: (e) => {
      e.preventDefault();
      Object.assign(objectsUi, { prefix: prefix.value, items: [], next: null });
      refresh();
    } }, prefix, h("button", { type: "submit" }, "List"));
    append(root, [h("h2", {}, "Buckets"), ctx.buckets,
      p.bucket ? [h("h2", {}, "Keys in ", code(p.bucket)), form, ctx.list, h("p", {}, ctx.more)] : muted("Choose a bucket to list its keys.")]);
    return ctx;
  },
  async load(p) {
    const buckets = await api("buckets");
    if (!p.bucket) return { buckets };
    // Re-read as many keys as are shown, so a refresh does not undo "more".
    const limit = Math.min(1000, Math.max(PAGE, objectsUi.items.length));
    return { buckets, page: await api(listPath(p.bucket, objectsUi.prefix, null, limit)) };
  },
  render(d, p, ctx) {
    ctx.buckets.replaceChildren(bucketList(d.buckets.buckets || [], p.bucket));
    if (!d.page) return;
    Object.assign(objectsUi, { items: d.page.objects || [], next: d.page.next_after });
    drawKeys(ctx, p.bucket);
  },
};

function listPath(bucket, prefix, after, limit) {
  const q = new URLSearchParams({ prefix: prefix || "", limit: String(limit) });
  if (after != null) q.set("after", after);
  return `objects/${enc(bucket)}?${q}`;
}

function bucketList(buckets, selected) {
  if (!buckets.length) return muted("no buckets yet");
  return h("ul", { class: "pills" }, buckets.map((b) => h("li", {}, h("a", { href: `#/objects/${enc(b.name)}`,
    class: b.name === selected ? "pill active" : "pill", "data-test": "bucket" }, b.name))));
}

function drawKeys(ctx, bucket) {
  const items = objectsUi.items, now = Date.now() / 1000;
  ctx.list.replaceChildren(items.length ? table(["Key", ["Size", "num"], "Modified"], items.map((o) => h("tr", { "data-test": "object-key" },
    td(h("a", { href: objectHash(bucket, o.key) }, o.key)), td(fmt.bytes(o.size), "num"),
    td(h("span", { title: fmt.ago(o.modified, now) }, fmt.time(o.modified)))))) : muted("no keys with this prefix"));
  ctx.more.hidden = objectsUi.next == null;
}

async function moreKeys(ctx, bucket) {
  if (ctx.busy || objectsUi.next == null) return;
  ctx.busy = ctx.more.disabled = true;
  try {
    const page = await api(listPath(bucket, objectsUi.prefix, objectsUi.next, PAGE));
    objectsUi.items = objectsUi.items.concat(page.objects || []);
    objectsUi.next = page.next_after;
    drawKeys(ctx, bucket);
  } catch (e) {
    showError(e);
  } finally {
    ctx.busy = ctx.more.disabled = false;
  }
}

// ---------------------------------------------------------------- view: one object (#/object/<bucket>/<key>)

const ObjectView = {
  nav: "objects",
  title: "Object",
  init(root, p) {
    const ctx = { root, head: h("div"), parts: h("div"), out: h("div", { class: "export-out", "data-test": "export-result" }) };
    ctx.ttl = h("select", { "aria-label": "credential lifetime" }, [["3600", "valid 1 hour"], ["86400", "valid 24 hours"], ["604800", "valid 7 days"]]
      .map(([v, l]) => h("option", { value: v, selected: v === "86400" }, l)));
    ctx.button = h("button", { type: "button", class: "primary", "data-test": "export", onclick: () => exportObject(p, ctx) }, "Export for BitTorrent clients");
    ctx.exportPanel = panel("Export for BitTorrent clients",
      muted("Makes a read-only tracker credential and magnet links (with .torrent files) any BitTorrent client can use to fetch the shards."),
      h("div", { class: "toolbar" }, ctx.button, ctx.ttl), ctx.out);
    root.append(h("p", { class: "crumbs" }, h("a", { href: "#/objects" }, "Objects"), " / ",
      h("a", { href: `#/objects/${enc(p.bucket)}` }, p.bucket), " / ", p.key), ctx.head, ctx.exportPanel, ctx.parts);
    return ctx;
  },
  load: (p) => api(objectPath(p.bucket, p.key)),
  render(o, p, ctx) {
    ctx.head.replaceChildren(h("h2", { class: "title" }, code(o.key), " ", badge(o.state)), panel("Object", objectFacts(o)));
    ctx.exportPanel.hidden = !(o.parts || []).length;
    ctx.parts.replaceChildren(...partsView(o, objectPath(p.bucket, p.key)));
  },
};

function objectFacts(o) {
  const pol = o.policy;
  return facts([
    ["Bucket", o.bucket], ["Size", `${fmt.bytes(o.size)} (${fmt.num(o.size)} bytes)`], ["Modified", fmt.time(o.modified)],
    ["State", badge(o.state)], ["Stored", o.stored],
    ["Policy", pol ? `${pol.k} data + ${pol.m} parity shards, ${pol.copies} copies each` : "—"],
    ["SHA-256", code(o.sha256, "hash"), "full"],
  ]);
}

/** path: the object's encoded API path, to which the .torrent links are relative. */
function partsView(o, path) {
  const parts = o.parts || [];
  if (!parts.length) {
    return [muted(o.stored === "inline" ? "Stored inline in the gateway's database: no shards in the swarm."
      : o.stored === "waiting" ? "Waiting to be packed: no shards in the swarm yet." : "No shards.")];
  }
  return parts.map((part, i) => panel(parts.length > 1 ? `Part ${i}: ${part.object}` : `Shards of ${part.object}`, shardTable(part.shards || [], path)));
}

function shardTable(shards, path) {
  return table(["#", "Role", "Copies", "Links", "Info-hash", ["Length", "num"]], shards.map((sh) => {
    const copies = sh.copies || [], live = copies.filter((c) => c.state === "live").length;
    return h("tr", { "data-test": "object-shard", "data-info-hash": sh.info_hash },
      td(String(sh.index), "num"), td(badge(sh.role, sh.role === "data" ? "info" : "neutral")),
      h("td", { class: "copies" }, h("span", { class: `count ${live ? "" : "bad"}` }, `${live}/${copies.length} live`),
        copies.length ? copies.map(copyChip) : h("span", { class: "badge bad" }, "no copies")),
      h("td", { class: "links" }, h("a", { href: sh.magnet, title: sh.magnet, "data-test": "magnet" }, "magnet"), " ",
        // Each download issues an inspector credential, so it is a POST made by this script.
        h("a", { href: "#", "data-test": "torrent",
          onclick: (e) => { e.preventDefault(); downloadTorrent(`${path}/torrents/${sh.info_hash}.torrent`, `${sh.info_hash}.torrent`); } },
        ".torrent")),
      td(code(sh.info_hash, "hash")), td(fmt.bytes(sh.length), "num"));
  }));
}

/** POSTs for a shard's torrent and saves it under `name`. */
async function downloadTorrent(path, name) {
  try {
    const res = await fetch(BASE + path, { method: "POST", credentials: "same-origin",
      headers: { "X-Requested-With": "raidtorrent-dashboard" } });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    showError(new HttpError(-1, `torrent download failed: ${e.message}`));
  }
}

function copyChip(c) {
  return h("span", { class: `copy ${STATE_CLASS[c.state] || "neutral"}`, "data-test": "shard-copy", "data-state": c.state, "data-node-id": c.node },
    h("a", { href: `#/node/${c.node}` }, c.name), ` ${c.zone} · ${c.tier} · `, h("b", {}, c.state));
}

async function exportObject(p, ctx) {
  ctx.button.disabled = true;
  ctx.out.replaceChildren(muted("exporting…"));
  try {
    const r = await api(`${objectPath(p.bucket, p.key)}/export?ttl=${enc(ctx.ttl.value)}`, { method: "POST" });
    ctx.out.replaceChildren(exportResult(r));
  } catch (e) {
    ctx.out.replaceChildren(h("p", { class: "err-text" }, `export failed: ${e.message}`));
  } finally {
    ctx.button.disabled = false;
  }
}

function exportResult(r) {
  const shards = r.shards || [];
  const text = h("textarea", { readonly: true, rows: Math.min(8, shards.length + 1), "aria-label": "magnet links", "data-test": "export-magnets" },
    shards.map((x) => x.magnet).join("\n"));
  const copy = h("button", { type: "button", onclick: () => {
    const done = () => { copy.textContent = "copied"; };
    (navigator.clipboard ? navigator.clipboard.writeText(text.value) : Promise.reject()).then(done, () => {
      text.select();
      if (document.execCommand("copy")) done();
    });
  } }, "copy all");
  const torrentHref = (x) => `data:application/x-bittorrent;base64,${x.torrent_base64}`;
  return h("div", {},
    facts([["Announce", code(r.announce, "hash"), "full"], ["Credential expires", r.inspector ? fmt.time(r.inspector.expires_at) : "—"]]),
    h("div", { class: "magnets" }, text, copy),
    table(["Part", ["#", "num"], "Name", "Magnet", ".torrent"], shards.map((x) => h("tr", { "data-test": "export-shard" },
      td(String(x.part), "num"), td(String(x.index), "num"), td(code(x.name)),
      td(h("a", { href: x.magnet, "data-test": "export-magnet" }, "magnet")),
      td(x.torrent_base64 ? h("a", { href: torrentHref(x), download: `${x.part}-${x.index}-${x.info_hash}.torrent` }, "download") : "—")))));
}

// ---------------------------------------------------------------- router and refresh loop

const NotFound = {
  title: "Not found",
  load: async () => null,
  render: (_d, _p, ctx) => ctx.root.replaceChildren(h("p", {}, "No such page. ", h("a", { href: "#/" }, "Back to the overview."))),
};

function route() {
  const [path] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/");
  switch (parts[0]) {
    case "": return [Overview, {}];
    case "nodes": return [Nodes, {}];
    case "node": return parts[1] ? [NodeView, { id: dec(parts[1]) }] : [Nodes, {}];
    case "objects": return [Objects, { bucket: parts[1] ? dec(parts[1]) : null }];
    case "object": return parts.length >= 3 ? [ObjectView, { bucket: dec(parts[1]), key: dec(parts.slice(2).join("/")) }] : [NotFound, {}];
    default: return [NotFound, {}];
  }
}

const app = { view: null, params: null, ctx: null, seq: 0, timer: null, paused: false, lastOk: 0 };

function showError(e) {
  const banner = $("#error");
  if (!e) { banner.hidden = true; banner.replaceChildren(); return; }
  banner.dataset.status = String(e.status ?? "");
  banner.replaceChildren(...(e.status === 401
    ? [h("strong", {}, "admin credential needed"), ": reload the page and give the admin token as the password (any user name)."]
    : [h("strong", {}, "Could not refresh: "), e.message]));
  banner.hidden = false;
}

function mount() {
  const [view, params] = route();
  clearTimeout(app.timer);
  charts = [];
  const main = $("#main");
  main.replaceChildren();
  Object.assign(app, { view, params, ctx: view.init ? view.init(main, params) : { root: main } });
  app.ctx.rendered = false;
  document.title = `${view.title} · raidtorrent`;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === view.nav) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  refresh();
}

/** Fetch the current view's data and render it; the newest request wins. */
async function refresh() {
  clearTimeout(app.timer);
  const seq = ++app.seq, { view, params, ctx } = app;
  try {
    const data = await view.load(params, ctx);
    if (seq !== app.seq) return;
    view.render(data, params, ctx);
    drawCharts();
    ctx.rendered = true;
    app.lastOk = Date.now();
    $("#updated").dataset.updatedAt = String(app.lastOk);
    showError(null);
  } catch (e) {
    if (seq !== app.seq) return;
    if (!(e instanceof HttpError)) console.error(e);
    showError(e instanceof HttpError ? e : new HttpError(-1, `display error: ${e.message}`));
    if (!ctx.rendered && !ctx.root.childElementCount) ctx.root.append(muted("Nothing to show yet; retrying every few seconds."));
  } finally {
    if (seq === app.seq) schedule();
  }
  tick();
}

function schedule() {
  clearTimeout(app.timer);
  if (!app.paused) app.timer = setTimeout(refresh, REFRESH_MS);
}

function tick() {
  const el = $("#updated");
  const ago = app.lastOk ? Math.round((Date.now() - app.lastOk) / 1000) : null;
  el.textContent = `${app.paused ? "paused · " : ""}${ago == null ? "loading…" : `updated ${ago} s ago`}`;
  el.classList.toggle("stale", ago != null && ago * 1000 > 3 * REFRESH_MS);
}

function togglePause() {
  app.paused = !app.paused;
  const b = $("#pause");
  b.textContent = app.paused ? "Resume" : "Pause";
  b.setAttribute("aria-pressed", String(app.paused));
  if (app.paused) clearTimeout(app.timer); else refresh();
  tick();
}

function start() {
  $("#pause").addEventListener("click", togglePause);
  window.addEventListener("hashchange", mount);
  let resizing = null;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(drawCharts, 150); });
  setInterval(tick, 1000);
  mount();
}

start();
})();
