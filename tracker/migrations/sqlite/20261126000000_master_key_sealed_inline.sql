-- Object metadata, format version 4: the master key's check value, and small objects sealed.

UPDATE format SET version = 4 WHERE name = 'objects';

-- The master keys this database's objects are sealed under. check_value is HMAC-SHA256 of a fixed
-- text under the key (hex): at start the key file must match it, so a missing or wrong key is
-- refused at once instead of every read failing later. It reveals nothing of the key.
CREATE TABLE master_keys (
    id TEXT PRIMARY KEY NOT NULL,
    check_value TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- 1 when inline_data is sealed under the master key (codec `sealed` format), 0 for plaintext
-- written before this version; the gateway seals those at its next start.
ALTER TABLE objects ADD COLUMN inline_sealed INTEGER NOT NULL DEFAULT 0;
