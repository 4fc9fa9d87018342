-- Object metadata, format version 2: each confirmed copy carries its audit record, so the health
-- worker can tell a copy that served bad pieces from a good one, and audit the oldest first.

UPDATE format SET version = 2 WHERE name = 'objects';

-- Unix seconds of the copy's latest audit (any outcome), and of its latest failed one (a piece
-- that did not match its hash). A failed copy never counts and never serves; it is dropped once
-- the shard has its copies elsewhere.
ALTER TABLE holdings ADD COLUMN audited_at INTEGER;
ALTER TABLE holdings ADD COLUMN failed_at INTEGER;
