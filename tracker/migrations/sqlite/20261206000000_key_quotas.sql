-- Object metadata, format version 9: storage quotas per S3 access key.
--
-- s3_keys.quota_bytes: the most bytes of live objects the key may have stored (NULL: no limit).
-- objects.placed_by: the access key that stored the object (NULL: stored by the operator, or
-- through the object API with an API key). A key's usage is the sum of the sizes of the client
-- objects it placed that still exist; an overwrite or a delete removes the row, and so the bytes.

UPDATE format SET version = 9 WHERE name = 'objects';

ALTER TABLE s3_keys ADD COLUMN quota_bytes INTEGER;

ALTER TABLE objects ADD COLUMN placed_by TEXT;

CREATE INDEX objects_by_placed_by ON objects (placed_by);
