-- Object metadata, format version 3: the UTC hours of the day at which each object has been read
-- (bit h for hour h), so repair keeps some copy of every shard on a node that is online then.

UPDATE format SET version = 3 WHERE name = 'objects';

ALTER TABLE objects ADD COLUMN read_hours INTEGER NOT NULL DEFAULT 0;
