-- Object metadata, format version 8: a log of changes to what stored objects' copies are, so the health worker
-- re-reads only the objects that changed (plus a slow sweep) instead of every object each pass.
-- Triggers write it in the same transaction as the change, so no writer can forget to; the
-- health worker takes and deletes rows at the start of each pass. A row names an object whose
-- recorded copies, shards or audit outcomes changed.
UPDATE format SET version = 8 WHERE name = 'objects';

CREATE TABLE health_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    object_id INTEGER NOT NULL
);

CREATE TRIGGER health_change_holding_added AFTER INSERT ON holdings
BEGIN
    INSERT INTO health_changes (object_id)
    SELECT object_id FROM shards WHERE info_hash = NEW.info_hash AND object_id IS NOT NULL;
END;

CREATE TRIGGER health_change_holding_removed AFTER DELETE ON holdings
BEGIN
    INSERT INTO health_changes (object_id)
    SELECT object_id FROM shards WHERE info_hash = OLD.info_hash AND object_id IS NOT NULL;
END;

CREATE TRIGGER health_change_audit AFTER UPDATE OF failed_at ON holdings
WHEN NEW.failed_at IS NOT OLD.failed_at
BEGIN
    INSERT INTO health_changes (object_id)
    SELECT object_id FROM shards WHERE info_hash = NEW.info_hash AND object_id IS NOT NULL;
END;

-- A shard committed to an object (its copies start to count) or released from one.
CREATE TRIGGER health_change_shard AFTER UPDATE OF state, object_id ON shards
WHEN NEW.state IS NOT OLD.state OR NEW.object_id IS NOT OLD.object_id
BEGIN
    INSERT INTO health_changes (object_id)
    SELECT NEW.object_id WHERE NEW.object_id IS NOT NULL
    UNION ALL
    SELECT OLD.object_id WHERE OLD.object_id IS NOT NULL AND OLD.object_id IS NOT NEW.object_id;
END;
