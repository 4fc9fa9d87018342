-- Object metadata, format version 10: the x-amz-checksum-* sums S3 clients send, stored.
--
-- An object's verified sum lives in its attrs JSON ("checksum": {"algorithm", "value", and
-- "parts" for the composite sum of a multipart object}); objects written before have none.
-- A multipart upload keeps the algorithm named at its creation (x-amz-checksum-algorithm), and
-- each part the sum it was verified against (NULL: none was sent or computed).

UPDATE format SET version = 10 WHERE name = 'objects';

ALTER TABLE multipart_uploads ADD COLUMN checksum_algorithm TEXT;

ALTER TABLE multipart_parts ADD COLUMN checksum_algorithm TEXT;
ALTER TABLE multipart_parts ADD COLUMN checksum TEXT;
