-- Object metadata, format version 11: several gateways on one database.
--
-- `gateways`: every gateway that uses the database, by the id kept in its data directory, and
-- when it last said it was alive (Unix seconds, its own clock). `work_leases`: the cloud-wide
-- work (health, audits, collection, packing) and which gateway may do it until when. A
-- pending shard names the gateway whose upload began it, so a gateway starting (or taking
-- over the work) abandons only the uploads of gateways that are gone; NULL is a shard begun
-- before this version, which belongs to no living gateway. Nodes are looked up by when they
-- were revoked, so a revocation made through one gateway (or the CLI) reaches the others.

UPDATE format SET version = 11 WHERE name = 'objects';

CREATE TABLE gateways (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TABLE work_leases (
    name TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    holder TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL
);

ALTER TABLE shards ADD COLUMN gateway TEXT COLLATE "C";

CREATE INDEX nodes_by_revoked_at ON nodes (revoked_at);
