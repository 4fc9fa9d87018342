-- Object metadata, format version 1: buckets, objects, their shards and which nodes hold them.
-- Times are Unix seconds (UTC). Info-hashes are lowercase hex, as in node_torrents.

INSERT INTO format (name, version) VALUES ('objects', 1);

CREATE TABLE buckets (
    name TEXT PRIMARY KEY NOT NULL,
    -- BucketPolicy as JSON.
    policy TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Only durable objects have a row: an object becomes visible in the transaction that inserts it.
CREATE TABLE objects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket TEXT NOT NULL REFERENCES buckets (name),
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    -- Exactly one of: the content itself (small objects), or the codec manifest.
    inline_data BLOB,
    manifest BLOB,
    UNIQUE (bucket, key),
    CHECK ((inline_data IS NULL) <> (manifest IS NULL))
);

-- state: 'pending' (an upload in flight), 'live' (object_id set), 'orphan' (to be dropped from
-- nodes, then forgotten). Pending shards found at start-up belong to uploads a restart cut short.
CREATE TABLE shards (
    info_hash TEXT PRIMARY KEY NOT NULL,
    object_id INTEGER REFERENCES objects (id),
    idx INTEGER NOT NULL,
    length INTEGER NOT NULL,
    -- The bencoded info dict; a node's .torrent is this plus its own announce URL.
    info BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'live', 'orphan')),
    created_at INTEGER NOT NULL
);
CREATE INDEX shards_by_object ON shards (object_id);
CREATE INDEX shards_by_state ON shards (state);

-- Confirmed copies: the node acked a hold (downloaded, verified, seeding).
CREATE TABLE holdings (
    info_hash TEXT NOT NULL REFERENCES shards (info_hash),
    node_id INTEGER NOT NULL REFERENCES nodes (id),
    confirmed_at INTEGER NOT NULL,
    PRIMARY KEY (info_hash, node_id)
);
CREATE INDEX holdings_by_node ON holdings (node_id);
