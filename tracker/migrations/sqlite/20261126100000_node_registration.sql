-- Registry, format version 3: what the operator assigns a node at registration. The node's own
-- claims (its control handshake) are checked against these: a registered zone is the node's zone,
-- and a registered capacity limit caps the capacity it may offer. NULL: not assigned.

UPDATE format SET version = 3 WHERE name = 'records';

ALTER TABLE nodes ADD COLUMN zone TEXT;
ALTER TABLE nodes ADD COLUMN capacity_limit INTEGER CHECK (capacity_limit IS NULL OR capacity_limit > 0);
