-- Object metadata, format version 5: small objects packed together.
--
-- An object between a bucket's inline_max and objects.packing.max_object_size waits in
-- inline_data (sealed, pack_pending = 1) until the packer writes it with other small objects of
-- its bucket into one pack: an ordinary swarm object of the bucket's pack bucket
-- ("_pack.<bucket>", a name clients cannot use). The object's bytes are then bytes
-- [pack_offset, pack_offset + size) of the pack object pack_id. A pack is deleted only once no
-- object refers to it (the foreign key guards it).

UPDATE format SET version = 5 WHERE name = 'objects';

ALTER TABLE objects ADD COLUMN pack_offset INTEGER;
ALTER TABLE objects ADD COLUMN pack_pending INTEGER NOT NULL DEFAULT 0;

-- Exactly one of: the content itself (small objects, and objects waiting for their pack), the
-- codec manifest, or the pack holding the content. SQLite cannot change a CHECK constraint with
-- ALTER TABLE, and rebuilding the table would drop the parent of every shard while foreign keys
-- are enforced (migrations run in a transaction, where they cannot be switched off). So the
-- constraint's text is rewritten in place, as SQLite's documentation describes for constraint
-- changes that no stored row violates (every row has pack_id NULL and pack_pending 0 here); the
-- ALTER TABLE after it makes every connection read the new schema.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(
    sql,
    'CHECK ((inline_data IS NULL) <> (manifest IS NULL))',
    'CHECK ((inline_data IS NOT NULL) + (manifest IS NOT NULL) + (pack_id IS NOT NULL) = 1),
    CHECK ((pack_id IS NULL) = (pack_offset IS NULL)),
    CHECK (pack_pending = 0 OR inline_data IS NOT NULL)'
)
WHERE type = 'table' AND name = 'objects';
PRAGMA writable_schema = OFF;

ALTER TABLE objects ADD COLUMN pack_id INTEGER REFERENCES objects (id);

CREATE INDEX objects_by_pack ON objects (pack_id) WHERE pack_id IS NOT NULL;
CREATE INDEX objects_waiting_for_pack ON objects (bucket, id) WHERE pack_pending = 1;
