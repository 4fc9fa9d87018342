-- Reliability records, format version 2: online time per UTC day (uptime over a window), audits
-- and transfers (pruned past the scoring history), and each node's standing (audit counts since
-- it was last qualified, and a sticky disqualification). Times are Unix seconds (UTC).

UPDATE format SET version = 2 WHERE name = 'records';

-- When per-day records began, if nodes were seen before (an upgrade): uptime windows never reach
-- back before it, so those nodes are not taken for offline on days nothing was recorded.
CREATE TABLE record_starts (
    name TEXT PRIMARY KEY NOT NULL,
    at INTEGER NOT NULL
);
INSERT INTO record_starts (name, at)
    SELECT 'node_days', CAST(strftime('%s', 'now') AS INTEGER) WHERE EXISTS (SELECT 1 FROM node_stats);

-- Online seconds by UTC day (unix / 86400), added by the recorder like node_hours.
CREATE TABLE node_days (
    node_id INTEGER NOT NULL REFERENCES nodes (id),
    day INTEGER NOT NULL,
    online_secs INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, day)
);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id INTEGER NOT NULL REFERENCES nodes (id),
    info_hash TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('pass', 'fail', 'timeout')),
    detail TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX audit_events_by_node ON audit_events (node_id, at);
CREATE INDEX audit_events_by_time ON audit_events (at);

CREATE TABLE transfer_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id INTEGER NOT NULL REFERENCES nodes (id),
    kind TEXT NOT NULL CHECK (kind IN ('hold', 'fetch', 'repair')),
    info_hash TEXT NOT NULL,
    ok INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    millis INTEGER NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX transfer_events_by_node ON transfer_events (node_id, at);
CREATE INDEX transfer_events_by_time ON transfer_events (at);

CREATE TABLE node_standing (
    node_id INTEGER PRIMARY KEY NOT NULL REFERENCES nodes (id),
    -- Audits since the node was last qualified (never pruned: vetting counts them).
    audits_passed INTEGER NOT NULL DEFAULT 0,
    audits_failed INTEGER NOT NULL DEFAULT 0,
    audits_timed_out INTEGER NOT NULL DEFAULT 0,
    -- Audits with an id up to this one predate the latest requalification and are ignored.
    requalified_after_audit INTEGER NOT NULL DEFAULT 0,
    requalified_at INTEGER,
    -- Sticky: set when scoring first finds the node disqualified; cleared only by an operator.
    disqualified_at INTEGER,
    disqualified_reason TEXT
);
