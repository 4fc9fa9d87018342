-- Records format 4: read-only inspector credentials, for stock BitTorrent clients that fetch an
-- exported shard to check it. An inspector token may announce and scrape (and is handed the
-- swarm's peers) but belongs to no node: it is never recorded, never given a directive and never
-- counted as holding a copy. It covers only the shards it was issued for (shards: their
-- info-hashes in lowercase hex, concatenated). Only the SHA-256 of the token is kept.

UPDATE format SET version = 4 WHERE name = 'records';

CREATE TABLE inspector_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_sha256 BLOB NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    shards TEXT NOT NULL
);
CREATE INDEX inspector_tokens_by_expiry ON inspector_tokens (expires_at);
