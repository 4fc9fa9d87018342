-- Object metadata, format version 6: large objects cut into groups.
--
-- An object bigger than objects.group_size is written as a run of parts: each an ordinary swarm
-- object (its own data key, manifest and k + m shard torrents) of the bucket's part bucket
-- ("_part.<bucket>", a name clients cannot use), placed while the next part is encoded, so the
-- gateway stages a few groups at a time whatever the object's size. The object itself is a row
-- with grouped = 1 and no bytes of its own; object_groups lists its parts in order, each starting
-- at byte `offset` of the object. The parts go with the object, in the same transaction.

UPDATE format SET version = 6 WHERE name = 'objects';

-- Exactly one of: the content itself, the codec manifest, the pack holding the content, or the
-- parts (grouped). The constraint's text is rewritten in place as in format version 5 (no stored
-- row has grouped = 1 yet); the ALTER TABLE after it makes every connection read the new schema.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(
    sql,
    'CHECK ((inline_data IS NOT NULL) + (manifest IS NOT NULL) + (pack_id IS NOT NULL) = 1)',
    'CHECK ((inline_data IS NOT NULL) + (manifest IS NOT NULL) + (pack_id IS NOT NULL)
        + (grouped = 1) = 1)'
)
WHERE type = 'table' AND name = 'objects';
PRAGMA writable_schema = OFF;

ALTER TABLE objects ADD COLUMN grouped INTEGER NOT NULL DEFAULT 0;

CREATE TABLE object_groups (
    object_id INTEGER NOT NULL REFERENCES objects (id),
    idx INTEGER NOT NULL,
    part_id INTEGER NOT NULL UNIQUE REFERENCES objects (id),
    -- Where the part's bytes start in the object.
    offset INTEGER NOT NULL,
    PRIMARY KEY (object_id, idx)
);
