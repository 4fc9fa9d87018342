-- Node registry and reliability records, format version 1.
-- Times are Unix seconds (UTC). Counters only grow; the tracker adds batches to them.

CREATE TABLE format (
    name TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL
);
INSERT INTO format (name, version) VALUES ('records', 1);

CREATE TABLE nodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    passkey TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE node_stats (
    node_id INTEGER PRIMARY KEY NOT NULL REFERENCES nodes (id),
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    announces INTEGER NOT NULL DEFAULT 0,
    -- Seconds the node counted as online: gaps between its announces up to its allowance.
    online_secs INTEGER NOT NULL DEFAULT 0,
    -- Per-torrent re-announce gaps observed, and what the tracker had asked for.
    interval_samples INTEGER NOT NULL DEFAULT 0,
    interval_observed_secs INTEGER NOT NULL DEFAULT 0,
    interval_expected_secs INTEGER NOT NULL DEFAULT 0,
    late_announces INTEGER NOT NULL DEFAULT 0,
    bytes_up INTEGER NOT NULL DEFAULT 0,
    bytes_down INTEGER NOT NULL DEFAULT 0,
    completions INTEGER NOT NULL DEFAULT 0,
    address_changes INTEGER NOT NULL DEFAULT 0,
    last_addr TEXT
);

-- Online seconds by UTC hour of day (0-23).
CREATE TABLE node_hours (
    node_id INTEGER NOT NULL REFERENCES nodes (id),
    hour INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 23),
    online_secs INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, hour)
);

CREATE TABLE node_torrents (
    node_id INTEGER NOT NULL REFERENCES nodes (id),
    info_hash TEXT NOT NULL,
    seeding INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (node_id, info_hash)
);

CREATE TABLE node_addresses (
    node_id INTEGER NOT NULL REFERENCES nodes (id),
    addr TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (node_id, addr)
);
