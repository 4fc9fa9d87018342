-- Object metadata, format version 7: what S3 clients store beside an object, multipart
-- uploads, and S3 access keys.
--
-- attrs is a JSON object (or NULL for an object written before this version): the object's
-- ETag as S3 gives it ("etag": the hex MD5 of the content, or "<hex>-<n>" for a multipart
-- upload of n parts) and the headers stored and returned with it (content_type,
-- content_encoding, cache_control, content_disposition, content_language, expires, and the
-- x-amz-meta-* pairs under "meta").

UPDATE format SET version = 7 WHERE name = 'objects';

ALTER TABLE objects ADD COLUMN attrs TEXT;

-- A multipart upload in progress: its parts are stored (encoded and placed) as they arrive, as
-- part objects of the bucket's part bucket under keys starting with the part's prefix. An
-- upload is completed into a grouped object, aborted, or expired by the collector.
CREATE TABLE multipart_uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL REFERENCES buckets (name),
    key TEXT NOT NULL,
    attrs TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX multipart_uploads_by_key ON multipart_uploads (bucket, key, upload_id);

CREATE TABLE multipart_parts (
    upload_id TEXT NOT NULL REFERENCES multipart_uploads (upload_id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    -- Keys of this part's part objects are '<prefix>/<index>' in the part bucket.
    prefix TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    md5 BLOB NOT NULL,
    sha256 BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

-- S3 access keys: the secret sealed under the master key, the buckets the key may use (JSON
-- list; ["*"] for every bucket). A revoked key stays listed with its revocation time.
CREATE TABLE s3_keys (
    access_key TEXT PRIMARY KEY,
    secret_sealed BLOB NOT NULL,
    owner TEXT NOT NULL,
    buckets TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
