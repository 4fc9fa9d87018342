-- A multipart upload's checksum type (x-amz-checksum-type at its creation): 'COMPOSITE' (the
-- object's sum is made from its parts' sums, `<sum>-<parts>`) or 'FULL_OBJECT' (a CRC of every
-- byte of the object, joined from its parts' CRCs). NULL for uploads made before, which are
-- composite when they name an algorithm.

ALTER TABLE multipart_uploads ADD COLUMN checksum_type TEXT;
