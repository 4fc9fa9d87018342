#!/usr/bin/env python3
"""Acceptance checks of an S3 endpoint, driven by S3 clients written elsewhere.

Sections (run in this order; all of them when none is named on the command line):
  boto3    the S3 API call by call: buckets, objects and their headers, listings and their
           pagination, ranges, conditional gets, copies, deletes, error codes, multipart uploads
  awscli   `aws s3` (v1): mb, multipart cp up and down, cp from stdin, ls, sync, rm, rb
  rclone   a tree of a few hundred files: copy, check, sync up, copy and sync down
  s3cmd    mb, put, get, ls, sync, del, rb
  presign  presigned GET and PUT URLs used by curl; tampered and expired URLs refused
  auth     wrong secret, unknown key, skewed clock, anonymous request, revoked key
  vhost    virtual-host style (bucket.<S3_VHOST_DOMAIN>): boto3 with addressing_style virtual,
           its host names resolved to the endpoint's address inside this process; skipped
           without S3_VHOST_DOMAIN
  tls      a short round over an https endpoint (S3_CA_BUNDLE): buckets, objects with stored
           checksums, a multipart upload, a listing; not in the default run

Environment:
  S3_ENDPOINT      http://HOST:PORT of the endpoint (required)
  S3_ACCESS_KEY    S3_SECRET_KEY: a key allowed to create buckets (required)
  S3_REGION        region to sign for (default us-east-1)
  S3_REVOKED_ACCESS_KEY, S3_REVOKED_SECRET_KEY: a revoked key (optional; its check is skipped
                   without it)
  S3_BIG_MIB       size in MiB of the big multipart uploads (default 200)
  S3_WORKDIR       scratch directory (default: the system's temporary directory)
  S3_CA_BUNDLE     PEM file of the CA to trust for an https endpoint (optional)
  S3_RCLONE_FLAGS  extra rclone flags, space-separated (default none; for trying other servers)
  S3_VHOST_DOMAIN  the endpoint's s3_domain, port included (s3.test:9002), for the vhost section

Usage: python3 s3_clients.py [--keep-going] [SECTION...]

Prints `ok  <what>` per check that held. The first check that does not hold prints what was
expected and what came, the section's buckets are removed as far as possible, and the script
exits with status 1. With --keep-going every failure is printed and the run goes on (a section
still stops at an unexpected error or a failed client command), exiting with status 1 at the end.

Every section makes its own buckets (named rt-<section>-<random>) and removes them at its end.
Client retries are turned off wherever a client lets us, so that an error answered by the
endpoint is not hidden by a retry that went through.

Needs: boto3 (with botocore), and on PATH: aws (v1), rclone, s3cmd, curl.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import datetime as dt
import gzip
import hashlib
import os
import random
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import zlib
import xml.etree.ElementTree as ET
from unittest import mock

import boto3
import botocore.auth
from boto3.s3.transfer import TransferConfig
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

MiB = 1024 * 1024
SECTIONS = ["boto3", "awscli", "rclone", "s3cmd", "presign", "auth", "vhost"]
# Longest any one client command may take before it counts as hung.
COMMAND_TIMEOUT = 1800


# ---------------------------------------------------------------------------------------------
# Checks


class CheckFailed(Exception):
    def __init__(self, what, expected, got):
        super().__init__(what)
        self.what, self.expected, self.got = what, expected, got


class Blob:
    """Stands for a long bytes value in messages."""

    def __init__(self, data):
        self.text = f"<{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}…>"

    def __repr__(self):
        return self.text


def shrink(value):
    if isinstance(value, (bytes, bytearray)) and len(value) > 64:
        return Blob(value)
    if isinstance(value, (tuple, list)):
        return type(value)(shrink(v) for v in value)
    if isinstance(value, dict):
        return {k: shrink(v) for k, v in value.items()}
    return value


def short(value, limit=1500):
    """A printable form of a value, long bytes and texts cut down to something readable."""
    text = value if isinstance(value, str) else repr(shrink(value))
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


# With --keep-going a failed check is reported and counted, and the section goes on.
KEEP_GOING = False
FAILURES = []


def report_failure(what, expected, got):
    print(f"FAIL {what}\n  expected: {short(expected)}\n  got:      {short(got)}", flush=True)
    FAILURES.append(what)


def check(cond, what, expected=None, got=None):
    if cond:
        print(f"ok  {what}", flush=True)
        return True
    if not KEEP_GOING:
        raise CheckFailed(what, expected, got)
    report_failure(what, expected, got)
    return False


def check_eq(got, expected, what):
    return check(got == expected, what, expected, got)


def skip(what, why):
    print(f"skip {what}: {why}", flush=True)


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def error_of(e: ClientError):
    err = e.response.get("Error", {})
    return err.get("Code"), status(e.response), err.get("Message")


def expect_error(what, codes, http_status, call):
    """Check that call() fails with one of the error codes and the HTTP status."""
    codes = (codes,) if isinstance(codes, str) else tuple(codes)
    expected = f"{' or '.join(codes)} (HTTP {http_status})"
    try:
        resp = call()
    except ClientError as e:
        code, st, message = error_of(e)
        check(code in codes and st == http_status, what, expected, f"{code} (HTTP {st}): {message}")
        return e
    body = resp.pop("Body", None)
    if body is not None:
        body.close()
    resp.pop("ResponseMetadata", None)
    check(False, what, expected, f"success: {resp}")


def quoted_md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def multipart_etag(part_md5s) -> str:
    """S3's ETag of a multipart object: MD5 of the concatenated binary part MD5s, '-', count."""
    return f'"{hashlib.md5(b"".join(part_md5s)).hexdigest()}-{len(part_md5s)}"'


def xml_code(body: bytes):
    """The <Code> of an S3 error document (None if the body is no such document)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag == "Code" or el.tag.endswith("}Code"):
            return el.text
    return None


# ---------------------------------------------------------------------------------------------
# Settings, scratch space and clients


class Settings:
    def __init__(self):
        def need(name):
            value = os.environ.get(name)
            if not value:
                sys.exit(f"{name} is not set (see the top of {sys.argv[0]})")
            return value

        self.endpoint = need("S3_ENDPOINT").rstrip("/")
        self.access_key = need("S3_ACCESS_KEY")
        self.secret_key = need("S3_SECRET_KEY")
        self.region = os.environ.get("S3_REGION") or "us-east-1"
        self.revoked = (os.environ.get("S3_REVOKED_ACCESS_KEY"), os.environ.get("S3_REVOKED_SECRET_KEY"))
        self.big_mib = int(os.environ.get("S3_BIG_MIB") or 200)
        self.ca_bundle = os.environ.get("S3_CA_BUNDLE") or None
        self.vhost_domain = os.environ.get("S3_VHOST_DOMAIN") or None
        url = urllib.parse.urlsplit(self.endpoint)
        if url.scheme not in ("http", "https") or not url.netloc:
            sys.exit(f"S3_ENDPOINT should look like http://127.0.0.1:PORT, not {self.endpoint!r}")
        self.scheme, self.hostport = url.scheme, url.netloc
        self.suffix = secrets.token_hex(4)
        base = os.environ.get("S3_WORKDIR") or tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        self.workdir = tempfile.mkdtemp(prefix=f"s3-clients-{self.suffix}-", dir=base)
        self._big = {}


S: Settings = None  # set by main()


def isolate_aws_environment():
    """No AWS config or credentials file or profile of this machine may change what runs here."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ["AWS_CONFIG_FILE"] = os.path.join(S.workdir, "no-aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(S.workdir, "no-aws-credentials")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def client(access_key=None, secret_key=None, endpoint=None, addressing="path", **config):
    cfg = Config(
        signature_version="s3v4",
        s3={"addressing_style": addressing},
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=32,
        connect_timeout=10,
        read_timeout=300,
        **config,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint or S.endpoint,
        region_name=S.region,
        aws_access_key_id=access_key or S.access_key,
        aws_secret_access_key=secret_key or S.secret_key,
        verify=S.ca_bundle,
        config=cfg,
    )


class Section:
    """One section's client, scratch directory and buckets (removed at the end whatever happens)."""

    def __init__(self, name):
        self.name = name
        self.s3 = client()
        self.buckets = []
        self.dir = os.path.join(S.workdir, name)
        os.makedirs(self.dir)

    def bucket_name(self, tag=""):
        name = f"rt-{self.name}-{S.suffix}" + (f"-{tag}" if tag else "")
        self.buckets.append(name)
        return name

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def cleanup(self):
        for bucket in self.buckets:
            try:
                if purge_bucket(self.s3, bucket):
                    print(f"cleanup: removed bucket {bucket}", flush=True)
            except Exception as e:  # best effort: the failure that brought us here matters more
                print(f"cleanup: could not remove bucket {bucket}: {e}", flush=True)


def bucket_exists(s3, bucket):
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except ClientError as e:
        if status(e.response) == 404:
            return False
        raise


def all_keys(s3, bucket, prefix=""):
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["Size"]
    return out


def purge_bucket(s3, bucket):
    """Abort uploads, delete objects and the bucket; False if there was no such bucket."""
    if not bucket_exists(s3, bucket):
        return False
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for u in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
    keys = sorted(all_keys(s3, bucket))
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True})
    s3.delete_bucket(Bucket=bucket)
    return True


def check_bucket_gone(s3, bucket, what):
    try:
        s3.head_bucket(Bucket=bucket)
        check(False, what, "head_bucket: 404", "head_bucket: 200")
    except ClientError as e:
        code, st, _ = error_of(e)
        check(st == 404, what, "head_bucket: 404", f"head_bucket: {code} (HTTP {st})")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    check(bucket not in names, f"list_buckets no longer shows {bucket}", f"not {bucket}", names)


def random_file(path, size, seed=None):
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(rnd.randbytes(n) if seed is not None else os.urandom(n))
            left -= n


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def part_md5s(path, part_size):
    out = []
    with open(path, "rb") as f:
        while chunk := f.read(part_size):
            out.append(hashlib.md5(chunk).digest())
    return out


def big_file():
    """A file of S3_BIG_MIB random MiB (made once per run) and its SHA-256."""
    if "path" not in S._big:
        path = os.path.join(S.workdir, f"big-{S.big_mib}MiB.bin")
        random_file(path, S.big_mib * MiB)
        S._big.update(path=path, sha256=file_sha256(path))
    return S._big["path"], S._big["sha256"]


def expected_upload_etag(path, threshold, chunk):
    """The ETag of a file uploaded whole below threshold, or in chunk-sized parts."""
    if os.path.getsize(path) < threshold:
        with open(path, "rb") as f:
            return quoted_md5(f.read())
    return multipart_etag(part_md5s(path, chunk))


def tree(root):
    """{relative path: SHA-256} of every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for name in files:
            p = os.path.join(d, name)
            out[os.path.relpath(p, root).replace(os.sep, "/")] = file_sha256(p)
    return out


def check_same_tree(got_root, want_root, what):
    got, want = tree(got_root), tree(want_root)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    differ = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    check(
        not (missing or extra or differ),
        what,
        f"{len(want)} files, byte for byte the same",
        f"missing {missing[:5]} ({len(missing)}), extra {extra[:5]} ({len(extra)}), "
        f"different {differ[:5]} ({len(differ)})",
    )


def write(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def run(cmd, what, env=None, input=None, ok_codes=(0,)):
    """Run a client command; a failure to exit with one of ok_codes is a failed check."""
    shown = " ".join(cmd)
    try:
        p = subprocess.run(cmd, env=env, input=input, capture_output=True, timeout=COMMAND_TIMEOUT)
    except FileNotFoundError:
        raise CheckFailed(what, f"{cmd[0]} on PATH", "no such program")
    except subprocess.TimeoutExpired:
        raise CheckFailed(what, f"{shown} done within {COMMAND_TIMEOUT} s", "still running; killed")
    if p.returncode not in ok_codes:
        out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        want = "exit status 0" if tuple(ok_codes) == (0,) else "a failing exit status"
        raise CheckFailed(
            what,
            f"{shown}: {want}",
            f"exit status {p.returncode}\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}",
        )
    return p


def http(method, url, headers=None, body=None):
    """(status, body) of a plain HTTP request (error statuses returned, not raised)."""
    req = urllib.request.Request(url, data=body or None, headers=headers or {}, method=method)
    context = ssl.create_default_context(cafile=S.ca_bundle) if S.ca_bundle else None
    try:
        with urllib.request.urlopen(req, timeout=60, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@contextlib.contextmanager
def signing_clock(offset: dt.timedelta):
    """Make botocore sign as if the clock were off by offset."""
    real = botocore.auth.get_current_datetime
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: real(*a, **k) + offset):
        yield


# ---------------------------------------------------------------------------------------------
# boto3


def section_boto3(sec: Section):
    s3 = sec.s3
    b = sec.bucket_name()
    lb = sec.bucket_name("list")
    b3_bucket_basics(s3, b)
    b3_headers_and_metadata(s3, b)
    b3_overwrite(s3, b)
    b3_content_md5(s3, b)
    b3_checksums(s3, b)
    b3_stored_checksums(s3, b)
    b3_odd_keys(s3, b)
    b3_listing_small(s3, b)
    b3_listing_delimiter_pages(s3, b)
    b3_listing_many(s3, lb)
    small = b3_ranges(s3, b)
    b3_conditionals(s3, b)
    b3_conditional_writes(s3, b)
    b3_copy(s3, b)
    b3_deletes(s3, b)
    b3_missing(s3, b)
    b3_bucket_errors(s3, b)
    b3_transfer(s3, b, sec)
    low_key, low_data = b3_multipart(s3, b)
    b3_multipart_checksums(s3, b)
    b3_full_object_checksums(s3, b)
    b3_uploads_delimiter(s3, b)
    b3_upload_part_copy(s3, b, low_key, low_data, small)
    for bucket in (b, lb):
        b3_remove_bucket(s3, bucket)


def b3_conditional_writes(s3, b):
    key = "cond/write.txt"
    r = s3.put_object(Bucket=b, Key=key, Body=b"first", IfNoneMatch="*")
    check_eq(r["ETag"], quoted_md5(b"first"), "put_object IfNoneMatch=* of a new key -> stored")
    expect_error(
        "put_object IfNoneMatch=* over an existing key",
        "PreconditionFailed",
        412,
        lambda: s3.put_object(Bucket=b, Key=key, Body=b"second", IfNoneMatch="*"),
    )
    expect_error(
        "put_object IfMatch with another ETag",
        "PreconditionFailed",
        412,
        lambda: s3.put_object(Bucket=b, Key=key, Body=b"second", IfMatch='"0123456789abcdef0123456789abcdef"'),
    )
    check_eq(s3.get_object(Bucket=b, Key=key)["Body"].read(), b"first", "a refused conditional write changed nothing")
    r = s3.put_object(Bucket=b, Key=key, Body=b"second", IfMatch=quoted_md5(b"first"))
    check_eq(r["ETag"], quoted_md5(b"second"), "put_object IfMatch with the current ETag -> replaced")
    s3.delete_object(Bucket=b, Key=key)


def b3_bucket_basics(s3, b):
    kw = {} if S.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": S.region}}
    check_eq(status(s3.create_bucket(Bucket=b, **kw)), 200, f"create_bucket {b}")
    check_eq(status(s3.head_bucket(Bucket=b)), 200, "head_bucket of the new bucket")
    names = [x["Name"] for x in s3.list_buckets()["Buckets"]]
    check(b in names, "list_buckets shows the new bucket", b, names)
    loc = s3.get_bucket_location(Bucket=b).get("LocationConstraint")
    if S.region == "us-east-1":
        check(loc in (None, "", "us-east-1"), "get_bucket_location", "empty (us-east-1)", loc)
    else:
        check_eq(loc, S.region, "get_bucket_location")


HEADER_NAMES = {
    "ContentType": "Content-Type",
    "ContentEncoding": "Content-Encoding",
    "CacheControl": "Cache-Control",
    "ContentDisposition": "Content-Disposition",
    "ContentLanguage": "Content-Language",
}


def b3_headers_and_metadata(s3, b):
    key = "meta/hello.txt.gz"
    body = gzip.compress(b"hello, metadata\n" * 200, mtime=0)
    attrs = {
        "ContentType": "text/plain; charset=utf-8",
        "ContentEncoding": "gzip",
        "CacheControl": "max-age=3600, must-revalidate",
        "ContentDisposition": 'attachment; filename="hello.txt"',
        "ContentLanguage": "en-GB",
    }
    meta = {"color": "blue", "owner-name": "Ada Lovelace", "n": "42"}
    r = s3.put_object(Bucket=b, Key=key, Body=body, Metadata=meta, **attrs)
    check_eq(r["ETag"], quoted_md5(body), "put_object: ETag is the quoted hex MD5 of the content")
    g = s3.get_object(Bucket=b, Key=key)
    check_eq(g["Body"].read(), body, "get_object returns the bytes put (gzip Content-Encoding left alone)")
    h = s3.head_object(Bucket=b, Key=key)
    for verb, resp in (("get_object", g), ("head_object", h)):
        for field, value in attrs.items():
            check_eq(resp.get(field), value, f"{verb}: {HEADER_NAMES[field]} as put")
        check_eq(resp.get("Metadata"), meta, f"{verb}: x-amz-meta-* as put")
        check_eq(resp.get("ContentLength"), len(body), f"{verb}: Content-Length")
        check_eq(resp.get("ETag"), quoted_md5(body), f"{verb}: ETag")
        check(resp.get("LastModified") is not None, f"{verb}: Last-Modified present", "a date", None)


def b3_overwrite(s3, b):
    key = "over/write.txt"
    s3.put_object(Bucket=b, Key=key, Body=b"first version\n" * 100, ContentType="text/x-first", Metadata={"v": "1"})
    new = b"second\n" * 7
    s3.put_object(Bucket=b, Key=key, Body=new)
    g = s3.get_object(Bucket=b, Key=key)
    check_eq(
        (g["Body"].read(), g["ETag"], g.get("Metadata")),
        (new, quoted_md5(new), {}),
        "put_object over an existing key: the new bytes and ETag, the old metadata gone",
    )
    check_eq(all_keys(s3, b, "over/"), {key: len(new)}, "put_object over an existing key: listed once, new size")


def b3_content_md5(s3, b):
    data = b"content-md5 check\n" * 10
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    r = s3.put_object(Bucket=b, Key="md5/good", Body=data, ContentMD5=good)
    check_eq(r["ETag"], quoted_md5(data), "put_object with the right Content-MD5 is stored")
    bad = base64.b64encode(hashlib.md5(b"other bytes").digest()).decode()
    expect_error(
        "put_object with a wrong Content-MD5",
        ("BadDigest", "InvalidDigest"),
        400,
        lambda: s3.put_object(Bucket=b, Key="md5/bad", Body=data, ContentMD5=bad),
    )
    expect_error(
        "the object of a wrong Content-MD5 was not stored",
        ("404", "NoSuchKey"),
        404,
        lambda: s3.head_object(Bucket=b, Key="md5/bad"),
    )



def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def trailer_put(b, key, data: bytes, trailer: str):
    """(status, body) of a PUT whose aws-chunked body carries `trailer` (name:value) after its
    last chunk, unsigned as boto3 sends it over TLS by default."""
    body = (b"%x\r\n" % len(data) + data + b"\r\n" if data else b"") + b"0\r\n"
    body += trailer.encode() + b"\r\n\r\n"
    req = AWSRequest(method="PUT", url=f"{S.endpoint}/{b}/{urllib.parse.quote(key)}", data=body)
    req.headers["x-amz-content-sha256"] = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    req.headers["Content-Encoding"] = "aws-chunked"
    req.headers["x-amz-decoded-content-length"] = str(len(data))
    req.headers["x-amz-trailer"] = trailer.split(":")[0]
    SigV4Auth(Credentials(S.access_key, S.secret_key), "s3", S.region).add_auth(req)
    p = req.prepare()
    return http(p.method, p.url, dict(p.headers.items()), p.body)


def b3_checksums(s3, b):
    """x-amz-checksum-* in a header or in an aws-chunked trailer: checked against the body; a
    mismatch is BadDigest and stores nothing."""
    data = b"checksummed body\n" * 100
    r = s3.put_object(Bucket=b, Key="sum/default", Body=data)
    check_eq(r.get("ChecksumCRC32"), crc32_b64(data), "boto3's default CRC32 comes back with the put")
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    r = s3.put_object(Bucket=b, Key="sum/sha256", Body=data, ChecksumSHA256=sha)
    check_eq(r.get("ChecksumSHA256"), sha, "a SHA-256 sent by the client is checked and returned")
    wrong = crc32_b64(b"other bytes")
    expect_error(
        "put_object with a wrong x-amz-checksum-crc32 header",
        "BadDigest",
        400,
        lambda: s3.put_object(Bucket=b, Key="sum/bad-header", Body=data, ChecksumCRC32=wrong),
    )
    st, _ = trailer_put(b, "sum/trailer", data, f"x-amz-checksum-crc32:{crc32_b64(data)}")
    check_eq(st, 200, "an aws-chunked PUT whose CRC32 trailer matches is stored")
    got = s3.get_object(Bucket=b, Key="sum/trailer")["Body"].read()
    check(got == data, "the trailer PUT's body reads back", Blob(data), Blob(got))
    st, body = trailer_put(b, "sum/bad-trailer", data, f"x-amz-checksum-crc32:{wrong}")
    check_eq((st, xml_code(body)), (400, "BadDigest"), "an aws-chunked PUT whose CRC32 trailer differs")
    for key in ("sum/bad-header", "sum/bad-trailer"):
        expect_error(
            f"{key}: an upload refused for its checksum was not stored",
            ("404", "NoSuchKey"),
            404,
            lambda: s3.head_object(Bucket=b, Key=key),
        )
    uid = s3.create_multipart_upload(Bucket=b, Key="sum/mp")["UploadId"]
    expect_error(
        "upload_part with a wrong x-amz-checksum-crc32",
        "BadDigest",
        400,
        lambda: s3.upload_part(Bucket=b, Key="sum/mp", UploadId=uid, PartNumber=1, Body=data, ChecksumCRC32=wrong),
    )
    parts = s3.list_parts(Bucket=b, Key="sum/mp", UploadId=uid).get("Parts", [])
    check_eq(parts, [], "a part refused for its checksum is not listed")
    s3.abort_multipart_upload(Bucket=b, Key="sum/mp", UploadId=uid)
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in ("sum/default", "sum/sha256", "sum/trailer")]})


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def sha256_b64(data: bytes) -> str:
    return b64(hashlib.sha256(data).digest())


def b3_stored_checksums(s3, b):
    """The verified sum is stored: get and head with ChecksumMode ENABLED give it back."""
    data = b"stored checksum\n" * 1000
    for algorithm, field, want in (
        ("CRC32", "ChecksumCRC32", crc32_b64(data)),
        ("SHA256", "ChecksumSHA256", sha256_b64(data)),
    ):
        key = f"stored/{algorithm.lower()}"
        r = s3.put_object(Bucket=b, Key=key, Body=data, ChecksumAlgorithm=algorithm)
        check_eq(r.get(field), want, f"put_object ChecksumAlgorithm={algorithm} returns the sum")
        h = s3.head_object(Bucket=b, Key=key, ChecksumMode="ENABLED")
        check_eq(
            (h.get(field), h.get("ChecksumType")),
            (want, "FULL_OBJECT"),
            f"head_object ChecksumMode=ENABLED gives the stored {algorithm}",
        )
        g = s3.get_object(Bucket=b, Key=key, ChecksumMode="ENABLED")
        got = g["Body"].read()
        check_eq((got == data, g.get(field)), (True, want), f"get_object ChecksumMode=ENABLED gives the stored {algorithm}")
    h = s3.head_object(Bucket=b, Key="stored/crc32")
    check_eq(h.get("ChecksumCRC32"), None, "head_object without ChecksumMode gives no sum")
    c = s3.copy_object(Bucket=b, Key="stored/copy", CopySource={"Bucket": b, "Key": "stored/sha256"})
    check_eq(
        c["CopyObjectResult"].get("ChecksumSHA256"),
        sha256_b64(data),
        "copy_object recomputes the source's SHA-256 over the copy",
    )
    h = s3.head_object(Bucket=b, Key="stored/copy", ChecksumMode="ENABLED")
    check_eq(h.get("ChecksumSHA256"), sha256_b64(data), "the copy's stored SHA-256")
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in ("stored/crc32", "stored/sha256", "stored/copy")]})


def composite_crc32(parts) -> str:
    raw = b"".join(zlib.crc32(p).to_bytes(4, "big") for p in parts)
    return f"{crc32_b64(raw)}-{len(parts)}"


def b3_multipart_checksums(s3, b):
    """A multipart upload with ChecksumAlgorithm CRC32: each part's sum is listed, the object's
    is the composite `<crc32 of the part crc32s>-N`; a completion listing a wrong part sum is
    InvalidPart, a wrong whole-object sum BadDigest, and neither makes an object."""
    key = "mpsum/crc32.bin"
    data = [os.urandom(5 * MiB), os.urandom(4321)]
    c = s3.create_multipart_upload(Bucket=b, Key=key, ChecksumAlgorithm="CRC32")
    check_eq(
        (c.get("ChecksumAlgorithm"), c.get("ChecksumType")),
        ("CRC32", "COMPOSITE"),
        "create_multipart_upload ChecksumAlgorithm=CRC32 -> a COMPOSITE CRC32 upload",
    )
    uid = c["UploadId"]
    parts = []
    for n, d in enumerate(data, 1):
        r = s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=n, Body=d, ChecksumAlgorithm="CRC32")
        check_eq(r.get("ChecksumCRC32"), crc32_b64(d), f"upload_part {n}: its CRC32 comes back")
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    listed = s3.list_parts(Bucket=b, Key=key, UploadId=uid).get("Parts", [])
    check_eq(
        [(p["PartNumber"], p.get("ChecksumCRC32")) for p in listed],
        [(n, crc32_b64(d)) for n, d in enumerate(data, 1)],
        "list_parts gives each part's CRC32",
    )
    wrong = [dict(parts[0], ChecksumCRC32=crc32_b64(b"not this part")), parts[1]]
    expect_error(
        "complete_multipart_upload listing a wrong part CRC32",
        "InvalidPart",
        400,
        lambda: s3.complete_multipart_upload(Bucket=b, Key=key, UploadId=uid, MultipartUpload={"Parts": wrong}),
    )
    expect_error(
        "complete_multipart_upload with a wrong whole-object CRC32",
        "BadDigest",
        400,
        lambda: s3.complete_multipart_upload(
            Bucket=b, Key=key, UploadId=uid, MultipartUpload={"Parts": parts}, ChecksumCRC32=f"{crc32_b64(b'x')}-2"
        ),
    )
    expect_error(
        "a refused completion made no object", ("404", "NoSuchKey"), 404, lambda: s3.head_object(Bucket=b, Key=key)
    )
    want = composite_crc32(data)
    r = s3.complete_multipart_upload(
        Bucket=b, Key=key, UploadId=uid, MultipartUpload={"Parts": parts}, ChecksumCRC32=want
    )
    check_eq(
        (r.get("ChecksumCRC32"), r.get("ChecksumType")),
        (want, "COMPOSITE"),
        "complete_multipart_upload with the right composite CRC32 gives it back",
    )
    h = s3.head_object(Bucket=b, Key=key, ChecksumMode="ENABLED")
    check_eq(
        (h.get("ChecksumCRC32"), h.get("ChecksumType")),
        (want, "COMPOSITE"),
        "head_object ChecksumMode=ENABLED of the multipart object: the composite ...-2",
    )
    g = s3.get_object(Bucket=b, Key=key, ChecksumMode="ENABLED")
    body = g["Body"].read()
    check_eq((body == b"".join(data), g.get("ChecksumCRC32")), (True, want), "get_object gives the composite too")
    s3.delete_object(Bucket=b, Key=key)


def b3_full_object_checksums(s3, b):
    """A multipart upload with ChecksumType FULL_OBJECT: the object's sum is the CRC32 of all its
    bytes (joined from the parts' CRC32s), with no `-N`; a wrong one is BadDigest and makes no
    object. A SHA-256 cannot be a full-object sum of parts."""
    key = "mpsum/full.bin"
    data = [os.urandom(5 * MiB), os.urandom(5 * MiB + 17), os.urandom(999)]
    c = s3.create_multipart_upload(Bucket=b, Key=key, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    check_eq(
        (c.get("ChecksumAlgorithm"), c.get("ChecksumType")),
        ("CRC32", "FULL_OBJECT"),
        "create_multipart_upload ChecksumType=FULL_OBJECT -> a FULL_OBJECT CRC32 upload",
    )
    uid = c["UploadId"]
    parts = []
    for n, d in enumerate(data, 1):
        r = s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=n, Body=d, ChecksumAlgorithm="CRC32")
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    listed = s3.list_parts(Bucket=b, Key=key, UploadId=uid)
    check_eq(listed.get("ChecksumType"), "FULL_OBJECT", "list_parts names the upload's FULL_OBJECT type")
    expect_error(
        "complete_multipart_upload with a wrong full-object CRC32",
        "BadDigest",
        400,
        lambda: s3.complete_multipart_upload(
            Bucket=b,
            Key=key,
            UploadId=uid,
            MultipartUpload={"Parts": parts},
            ChecksumCRC32=crc32_b64(b"x"),
            ChecksumType="FULL_OBJECT",
        ),
    )
    expect_error(
        "a refused full-object completion made no object",
        ("404", "NoSuchKey"),
        404,
        lambda: s3.head_object(Bucket=b, Key=key),
    )
    want = crc32_b64(b"".join(data))
    r = s3.complete_multipart_upload(
        Bucket=b,
        Key=key,
        UploadId=uid,
        MultipartUpload={"Parts": parts},
        ChecksumCRC32=want,
        ChecksumType="FULL_OBJECT",
    )
    check_eq(
        (r.get("ChecksumCRC32"), r.get("ChecksumType")),
        (want, "FULL_OBJECT"),
        "complete_multipart_upload FULL_OBJECT gives the CRC32 of every byte",
    )
    g = s3.get_object(Bucket=b, Key=key, ChecksumMode="ENABLED")
    body = g["Body"].read()
    check_eq(
        (body == b"".join(data), g.get("ChecksumCRC32"), g.get("ChecksumType")),
        (True, want, "FULL_OBJECT"),
        "get_object ChecksumMode=ENABLED of the full-object upload",
    )
    s3.delete_object(Bucket=b, Key=key)
    expect_error(
        "create_multipart_upload SHA256 with ChecksumType=FULL_OBJECT",
        "InvalidRequest",
        400,
        lambda: s3.create_multipart_upload(
            Bucket=b, Key="mpsum/sha-full", ChecksumAlgorithm="SHA256", ChecksumType="FULL_OBJECT"
        ),
    )


def b3_uploads_delimiter(s3, b):
    """list_multipart_uploads with a delimiter rolls keys up into CommonPrefixes."""
    keys = ["dl/a/1", "dl/a/2", "dl/b/x/1", "dl/top", "dl/ü b/1"]
    ids = {k: s3.create_multipart_upload(Bucket=b, Key=k)["UploadId"] for k in keys}
    try:
        r = s3.list_multipart_uploads(Bucket=b, Prefix="dl/", Delimiter="/")
        check_eq(
            (
                [u["Key"] for u in r.get("Uploads", [])],
                [p["Prefix"] for p in r.get("CommonPrefixes", [])],
                r.get("Delimiter"),
            ),
            (["dl/top"], ["dl/a/", "dl/b/", "dl/ü b/"], "/"),
            "list_multipart_uploads Delimiter=/ gives CommonPrefixes and the uploads beside them",
        )
        r = s3.list_multipart_uploads(Bucket=b, Prefix="dl/", Delimiter="/", EncodingType="url")
        check_eq(
            [p["Prefix"] for p in r.get("CommonPrefixes", [])],
            ["dl/a/", "dl/b/", urllib.parse.quote("dl/ü b/", safe="-._~/")],
            "list_multipart_uploads Delimiter with encoding-type=url percent-encodes the prefixes",
        )
        seen, marker = [], {}
        for _ in range(10):
            r = s3.list_multipart_uploads(Bucket=b, Prefix="dl/", Delimiter="/", MaxUploads=1, **marker)
            seen += [u["Key"] for u in r.get("Uploads", [])] + [p["Prefix"] for p in r.get("CommonPrefixes", [])]
            if not r.get("IsTruncated"):
                break
            marker = {"KeyMarker": r["NextKeyMarker"]}
            if r.get("NextUploadIdMarker"):
                marker["UploadIdMarker"] = r["NextUploadIdMarker"]
        check_eq(seen, ["dl/a/", "dl/b/", "dl/top", "dl/ü b/"], "list_multipart_uploads with a delimiter, one per page")
    finally:
        for k, uid in ids.items():
            s3.abort_multipart_upload(Bucket=b, Key=k, UploadId=uid)


ODD_KEYS = [
    "odd/with space.txt",
    "odd/plus+sign.txt",
    "odd/percent%41literal.txt",
    "odd/amp&eq=semi;colon.txt",
    "odd/ünïcödé/日本語.txt",
    "odd/emoji 🎉.txt",
    "odd/tilde~paren(1)'quote'!.txt",
]


def b3_odd_keys(s3, b):
    for key in ODD_KEYS:
        s3.put_object(Bucket=b, Key=key, Body=key.encode())
    got = {k: s3.get_object(Bucket=b, Key=k)["Body"].read() for k in ODD_KEYS}
    check_eq(got, {k: k.encode() for k in ODD_KEYS}, "keys with spaces, + % & = ; ~ ( ) ' ! and unicode: put and get")
    listed = sorted(all_keys(s3, b, "odd/"))
    check_eq(listed, sorted(ODD_KEYS), "keys with spaces, + % & = ; ~ ( ) ' ! and unicode: listed as put")


def b3_listing_small(s3, b):
    keys = [
        "tree/top.txt",
        "tree/dir/a.txt",
        "tree/dir/b.txt",
        "tree/dir/sub/c.txt",
        "tree/dir/sub/d.txt",
        "tree/other/e.txt",
    ]
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=k.encode() * 3)

    r = s3.list_objects_v2(Bucket=b, Prefix="tree/dir/")
    got = [(o["Key"], o["Size"], o["ETag"]) for o in r.get("Contents", [])]
    want = [(k, len(k) * 3, quoted_md5(k.encode() * 3)) for k in sorted(keys) if k.startswith("tree/dir/")]
    check_eq(got, want, "list_objects_v2 Prefix=tree/dir/: keys, sizes and ETags")
    check_eq(r.get("KeyCount"), 4, "list_objects_v2 Prefix=tree/dir/: KeyCount")
    check_eq(r.get("CommonPrefixes", []), [], "list_objects_v2 without delimiter: no CommonPrefixes")

    r = s3.list_objects_v2(Bucket=b, Prefix="tree/dir/", Delimiter="/")
    check_eq(
        [o["Key"] for o in r.get("Contents", [])],
        ["tree/dir/a.txt", "tree/dir/b.txt"],
        "list_objects_v2 Prefix=tree/dir/ Delimiter=/: Contents",
    )
    check_eq(
        [p["Prefix"] for p in r.get("CommonPrefixes", [])],
        ["tree/dir/sub/"],
        "list_objects_v2 Prefix=tree/dir/ Delimiter=/: CommonPrefixes",
    )

    r = s3.list_objects_v2(Bucket=b, Prefix="tree/", Delimiter="/")
    check_eq(
        [o["Key"] for o in r.get("Contents", [])],
        ["tree/top.txt"],
        "list_objects_v2 Prefix=tree/ Delimiter=/: Contents",
    )
    check_eq(
        [p["Prefix"] for p in r.get("CommonPrefixes", [])],
        ["tree/dir/", "tree/other/"],
        "list_objects_v2 Prefix=tree/ Delimiter=/: CommonPrefixes",
    )

    r = s3.list_objects(Bucket=b, Prefix="tree/", Delimiter="/")
    check_eq(
        ([o["Key"] for o in r.get("Contents", [])], [p["Prefix"] for p in r.get("CommonPrefixes", [])]),
        (["tree/top.txt"], ["tree/dir/", "tree/other/"]),
        "list_objects (v1) Prefix=tree/ Delimiter=/",
    )

    r = s3.list_objects_v2(Bucket=b, Prefix="tree/nothing/")
    check(
        not r.get("Contents") and r.get("KeyCount") == 0,
        "list_objects_v2 of a prefix with no keys is empty",
        "KeyCount 0, no Contents",
        {"KeyCount": r.get("KeyCount"), "Contents": r.get("Contents")},
    )


def list_pages(s3, v2, max_pages, **kw):
    """Every page of a listing, following ContinuationToken (v2) or Marker/NextMarker (v1)."""
    pages, token = [], None
    while len(pages) < max_pages:
        args = dict(kw)
        if token is not None:
            args["ContinuationToken" if v2 else "Marker"] = token
        r = s3.list_objects_v2(**args) if v2 else s3.list_objects(**args)
        pages.append(r)
        if not r.get("IsTruncated"):
            return pages
        # (Checks that print only when they fail: they hold for every page.)
        if v2:
            token = r.get("NextContinuationToken")
            if not token:
                check(False, "a truncated list_objects_v2 page has NextContinuationToken", "a token", token)
        else:
            token = r.get("NextMarker")
            if token is None and "Delimiter" in kw:
                check(False, "a truncated list_objects page with a delimiter has NextMarker", "a marker", None)
            if token is None:
                token = r["Contents"][-1]["Key"]
    check(False, "listing ends", f"at most {max_pages} pages", "more")


def page_entries(page):
    """The keys and common prefixes of a page, in order."""
    return sorted([o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])])


def b3_listing_delimiter_pages(s3, b):
    want = []
    for i in range(20):
        if i % 2:
            for leaf in ("x", "y"):
                s3.put_object(Bucket=b, Key=f"dl/n{i:02d}/{leaf}", Body=b"d")
            want.append(f"dl/n{i:02d}/")
        else:
            s3.put_object(Bucket=b, Key=f"dl/n{i:02d}", Body=b"f")
            want.append(f"dl/n{i:02d}")
    for v2, name in ((False, "list_objects (v1) Marker/NextMarker"), (True, "list_objects_v2 ContinuationToken")):
        pages = list_pages(s3, v2, 30, Bucket=b, Prefix="dl/", Delimiter="/", MaxKeys=3)
        sizes = [len(page_entries(p)) for p in pages]
        check(all(n <= 3 for n in sizes), f"{name} with Delimiter, MaxKeys=3: no page over 3 entries", "≤ 3", sizes)
        got = [e for p in pages for e in page_entries(p)]
        check_eq(got, want, f"{name} with Delimiter, MaxKeys=3: every key and common prefix once, in order")


def b3_listing_many(s3, lb):
    s3.create_bucket(
        Bucket=lb,
        **({} if S.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": S.region}}),
    )
    keys = [f"k/{i:04d}" for i in range(1050)]
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=lb, Key=k, Body=k.encode()), keys))
    check_eq(len(all_keys(s3, lb)), 1050, f"put 1,050 small objects with 16 threads ({time.monotonic() - t0:.1f} s)")

    def v2_pages(**kw):
        return list_pages(s3, True, 50, Bucket=lb, **kw)

    for max_keys, sizes in ((1000, [1000, 50]), (100, [100] * 10 + [50])):
        pages = v2_pages(MaxKeys=max_keys)
        check_eq([len(p.get("Contents", [])) for p in pages], sizes, f"list_objects_v2 MaxKeys={max_keys}: page sizes")
        check_eq([p.get("KeyCount") for p in pages], sizes, f"list_objects_v2 MaxKeys={max_keys}: KeyCount per page")
        got = [o["Key"] for p in pages for o in p.get("Contents", [])]
        check_eq(got, keys, f"list_objects_v2 MaxKeys={max_keys}: every key exactly once, in order")

    r = s3.list_objects_v2(Bucket=lb)
    check(
        len(r.get("Contents", [])) <= 1000 and r.get("IsTruncated"),
        "list_objects_v2 without MaxKeys: at most 1,000 and truncated",
        "≤ 1000 keys, IsTruncated",
        (len(r.get("Contents", [])), r.get("IsTruncated")),
    )
    got = [o["Key"] for p in v2_pages() for o in p.get("Contents", [])]
    check_eq(got, keys, "list_objects_v2 without MaxKeys: every key exactly once over the pages")

    r = s3.list_objects_v2(Bucket=lb, StartAfter=keys[1024])
    check_eq([o["Key"] for o in r.get("Contents", [])], keys[1025:], "list_objects_v2 StartAfter")
    pages = v2_pages(StartAfter="k/0999", MaxKeys=20)
    check_eq(
        [o["Key"] for p in pages for o in p.get("Contents", [])],
        keys[1000:],
        "list_objects_v2 StartAfter with MaxKeys=20, paginated",
    )
    r = s3.list_objects_v2(Bucket=lb, Prefix="k/10")
    check_eq([o["Key"] for o in r.get("Contents", [])], keys[1000:], "list_objects_v2 Prefix=k/10")

    pages = list_pages(s3, False, 50, Bucket=lb, MaxKeys=1000)
    check_eq([len(p.get("Contents", [])) for p in pages], [1000, 50], "list_objects (v1) MaxKeys=1000: page sizes")
    check_eq(
        [o["Key"] for p in pages for o in p.get("Contents", [])],
        keys,
        "list_objects (v1) with Marker: every key exactly once, in order",
    )
    r = s3.list_objects(Bucket=lb, Marker=keys[1039])
    check_eq([o["Key"] for o in r.get("Contents", [])], keys[1040:], "list_objects (v1) Marker")


def b3_ranges(s3, b):
    data = os.urandom(1024)
    key = "range/obj"
    s3.put_object(Bucket=b, Key=key, Body=data)
    for rng, first, last in (
        ("bytes=10-19", 10, 19),
        ("bytes=1000-", 1000, 1023),
        ("bytes=-100", 924, 1023),
        ("bytes=0-0", 0, 0),
        ("bytes=1000-5000", 1000, 1023),
    ):
        g = s3.get_object(Bucket=b, Key=key, Range=rng)
        got = (status(g), g.get("ContentRange"), g.get("ContentLength"), g["Body"].read())
        want = (206, f"bytes {first}-{last}/1024", last - first + 1, data[first : last + 1])
        check_eq(got, want, f"ranged get {rng}: 206, Content-Range, bytes")
    for rng in ("bytes=2000-3000", "bytes=1024-"):
        expect_error(
            f"ranged get {rng} of 1,024 bytes", "InvalidRange", 416, lambda: s3.get_object(Bucket=b, Key=key, Range=rng)
        )
    return key, data


def b3_conditionals(s3, b):
    key, data = "cond/obj", b"conditional\n" * 50
    etag = s3.put_object(Bucket=b, Key=key, Body=data)["ETag"]
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    past = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)

    def ok(what, **cond):
        g = s3.get_object(Bucket=b, Key=key, **cond)
        check_eq((status(g), g["Body"].read()), (200, data), what)

    ok("get If-Match: the ETag -> 200", IfMatch=etag)
    expect_error(
        "get If-Match: another ETag",
        "PreconditionFailed",
        412,
        lambda: s3.get_object(Bucket=b, Key=key, IfMatch='"0123456789abcdef0123456789abcdef"'),
    )
    expect_error(
        "get If-None-Match: the ETag",
        ("304", "NotModified"),
        304,
        lambda: s3.get_object(Bucket=b, Key=key, IfNoneMatch=etag),
    )
    ok("get If-None-Match: another ETag -> 200", IfNoneMatch='"0123456789abcdef0123456789abcdef"')
    expect_error(
        "get If-Modified-Since: tomorrow",
        ("304", "NotModified"),
        304,
        lambda: s3.get_object(Bucket=b, Key=key, IfModifiedSince=future),
    )
    ok("get If-Modified-Since: 2000 -> 200", IfModifiedSince=past)
    expect_error(
        "get If-Unmodified-Since: 2000",
        "PreconditionFailed",
        412,
        lambda: s3.get_object(Bucket=b, Key=key, IfUnmodifiedSince=past),
    )
    ok("get If-Unmodified-Since: tomorrow -> 200", IfUnmodifiedSince=future)


def b3_copy(s3, b):
    src, data = "copy/src file+1.txt", b"copy me\n" * 100
    s3.put_object(
        Bucket=b,
        Key=src,
        Body=data,
        ContentType="application/x-src",
        CacheControl="no-cache",
        Metadata={"origin": "src", "keep": "yes"},
    )
    r = s3.copy_object(Bucket=b, Key="copy/dst", CopySource={"Bucket": b, "Key": src})
    check_eq(r["CopyObjectResult"]["ETag"], quoted_md5(data), "copy_object: ETag of the copy")
    g = s3.get_object(Bucket=b, Key="copy/dst")
    check_eq(
        (g["Body"].read(), g.get("ContentType"), g.get("CacheControl"), g.get("Metadata")),
        (data, "application/x-src", "no-cache", {"origin": "src", "keep": "yes"}),
        "copy_object: bytes, Content-Type, Cache-Control and metadata copied",
    )

    s3.copy_object(
        Bucket=b,
        Key="copy/replaced",
        CopySource={"Bucket": b, "Key": src},
        MetadataDirective="REPLACE",
        ContentType="text/x-new",
        Metadata={"fresh": "1"},
    )
    g = s3.get_object(Bucket=b, Key="copy/replaced")
    check_eq(
        (g["Body"].read(), g.get("ContentType"), g.get("CacheControl"), g.get("Metadata")),
        (data, "text/x-new", None, {"fresh": "1"}),
        "copy_object MetadataDirective=REPLACE: bytes copied, headers and metadata replaced",
    )
    expect_error(
        "copy_object of a missing source",
        "NoSuchKey",
        404,
        lambda: s3.copy_object(Bucket=b, Key="copy/never", CopySource={"Bucket": b, "Key": "copy/missing"}),
    )


def b3_deletes(s3, b):
    s3.put_object(Bucket=b, Key="del/one", Body=b"1")
    check_eq(status(s3.delete_object(Bucket=b, Key="del/one")), 204, "delete_object -> 204")
    expect_error(
        "head_object after delete_object", ("404", "NoSuchKey"), 404, lambda: s3.head_object(Bucket=b, Key="del/one")
    )
    check_eq(status(s3.delete_object(Bucket=b, Key="del/never-was")), 204, "delete_object of a missing key -> 204")

    keys = ["del/a", "del/b", "del/c d", "del/e+f"]
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=k.encode())
    batch = keys + ["del/never-existed"]
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in batch]})
    check_eq(
        (sorted(d["Key"] for d in r.get("Deleted", [])), r.get("Errors", [])),
        (sorted(batch), []),
        "delete_objects: all reported deleted (a missing key too), no errors",
    )
    check_eq(all_keys(s3, b, "del/"), {}, "delete_objects: the keys are gone")


def b3_missing(s3, b):
    expect_error("get_object of a missing key", "NoSuchKey", 404, lambda: s3.get_object(Bucket=b, Key="no/such/key"))
    nb = f"rt-missing-{S.suffix}"
    expect_error("get_object in a missing bucket", "NoSuchBucket", 404, lambda: s3.get_object(Bucket=nb, Key="k"))
    expect_error("list_objects_v2 of a missing bucket", "NoSuchBucket", 404, lambda: s3.list_objects_v2(Bucket=nb))
    expect_error(
        "put_object into a missing bucket", "NoSuchBucket", 404, lambda: s3.put_object(Bucket=nb, Key="k", Body=b"x")
    )


def b3_bucket_errors(s3, b):
    expect_error("delete_bucket of a non-empty bucket", "BucketNotEmpty", 409, lambda: s3.delete_bucket(Bucket=b))
    kw = {} if S.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": S.region}}
    expect_error(
        "create_bucket of an existing own bucket",
        ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"),
        409,
        lambda: s3.create_bucket(Bucket=b, **kw),
    )


def b3_transfer(s3, b, sec):
    path, sha = big_file()
    key = "big/transfer.bin"
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    t0 = time.monotonic()
    s3.upload_file(path, b, key, Config=cfg)
    up = time.monotonic() - t0
    h = s3.head_object(Bucket=b, Key=key)
    check_eq(h["ContentLength"], S.big_mib * MiB, f"upload_file of {S.big_mib} MiB in 5 MiB parts ({up:.1f} s): size")
    check_eq(
        h["ETag"],
        expected_upload_etag(path, 5 * MiB, 5 * MiB),
        "upload_file in 5 MiB parts: ETag is MD5 of the part MD5s, '-', part count",
    )
    down = sec.path("transfer.down")
    t0 = time.monotonic()
    s3.download_file(b, key, down)
    check_eq(file_sha256(down), sha, f"download_file ({time.monotonic() - t0:.1f} s): SHA-256 as uploaded")
    os.remove(down)


def b3_multipart(s3, b):
    # Two full 5 MiB parts and a small last one: only the order is wrong in the wrong-order try.
    key = "mp/low.bin"
    data = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1234)]
    c = s3.create_multipart_upload(
        Bucket=b, Key=key, ContentType="application/x-parts", Metadata={"stage": "multipart"}
    )
    uid = c.get("UploadId")
    check(uid, "create_multipart_upload gives an UploadId", "an id", uid)
    # Part 3 goes up twice: the second upload replaces the first.
    s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=3, Body=os.urandom(777))
    etags = [
        s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=n, Body=d)["ETag"] for n, d in enumerate(data, 1)
    ]
    check_eq(etags, [quoted_md5(d) for d in data], "upload_part: ETags are the quoted MD5s of the parts")
    parts = s3.list_parts(Bucket=b, Key=key, UploadId=uid).get("Parts", [])
    check_eq(
        [(p["PartNumber"], p["Size"], p["ETag"]) for p in parts],
        [(n, len(d), e) for n, (d, e) in enumerate(zip(data, etags), 1)],
        "list_parts: every part with its size and ETag (part 3 as uploaded the second time)",
    )
    uploads = s3.list_multipart_uploads(Bucket=b).get("Uploads", [])
    check(
        (key, uid) in [(u["Key"], u["UploadId"]) for u in uploads],
        "list_multipart_uploads shows the upload",
        (key, uid),
        uploads,
    )

    def complete(upload_id, the_key, parts_list):
        return s3.complete_multipart_upload(
            Bucket=b,
            Key=the_key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts_list]},
        )

    e1, e2, e3 = etags
    expect_error(
        "complete_multipart_upload with parts out of order (2, 1, 3)",
        "InvalidPartOrder",
        400,
        lambda: complete(uid, key, [(2, e2), (1, e1), (3, e3)]),
    )
    expect_error(
        "complete_multipart_upload with an unknown ETag",
        "InvalidPart",
        400,
        lambda: complete(uid, key, [(1, e1), (2, e2), (3, '"00000000000000000000000000000000"')]),
    )

    small_key = "mp/small.bin"
    u2 = s3.create_multipart_upload(Bucket=b, Key=small_key)["UploadId"]
    s1 = s3.upload_part(Bucket=b, Key=small_key, UploadId=u2, PartNumber=1, Body=b"a" * 1024)["ETag"]
    s2 = s3.upload_part(Bucket=b, Key=small_key, UploadId=u2, PartNumber=2, Body=b"b" * 1024)["ETag"]
    expect_error(
        "complete_multipart_upload with a first part under 5 MiB",
        "EntityTooSmall",
        400,
        lambda: complete(u2, small_key, [(1, s1), (2, s2)]),
    )
    check_eq(
        status(s3.abort_multipart_upload(Bucket=b, Key=small_key, UploadId=u2)),
        204,
        "abort_multipart_upload of the too-small upload -> 204",
    )

    r = complete(uid, key, [(1, e1), (2, e2), (3, e3)])
    etag = multipart_etag([hashlib.md5(d).digest() for d in data])
    check_eq(r.get("ETag"), etag, "complete_multipart_upload: ETag is MD5 of the part MD5s, then -3")
    g = s3.get_object(Bucket=b, Key=key)
    check_eq(
        (g["Body"].read(), g.get("ETag"), g.get("ContentType"), g.get("Metadata")),
        (b"".join(data), etag, "application/x-parts", {"stage": "multipart"}),
        "get of the completed upload: bytes, ETag, and Content-Type and metadata given at create",
    )
    uploads = s3.list_multipart_uploads(Bucket=b).get("Uploads", [])
    check(
        uid not in [u["UploadId"] for u in uploads],
        "list_multipart_uploads no longer shows the completed upload",
        f"not {uid}",
        uploads,
    )

    akey = "mp/aborted.bin"
    u3 = s3.create_multipart_upload(Bucket=b, Key=akey)["UploadId"]
    s3.upload_part(Bucket=b, Key=akey, UploadId=u3, PartNumber=1, Body=b"c" * 2048)
    check_eq(status(s3.abort_multipart_upload(Bucket=b, Key=akey, UploadId=u3)), 204, "abort_multipart_upload -> 204")
    expect_error(
        "list_parts of the aborted upload", "NoSuchUpload", 404, lambda: s3.list_parts(Bucket=b, Key=akey, UploadId=u3)
    )
    expect_error(
        "upload_part to the aborted upload",
        "NoSuchUpload",
        404,
        lambda: s3.upload_part(Bucket=b, Key=akey, UploadId=u3, PartNumber=2, Body=b"d"),
    )
    uploads = s3.list_multipart_uploads(Bucket=b).get("Uploads", [])
    check(
        u3 not in [u["UploadId"] for u in uploads],
        "list_multipart_uploads no longer shows the aborted upload",
        f"not {u3}",
        uploads,
    )
    odd = "mp/odd key ü+&.bin"
    u4 = s3.create_multipart_upload(Bucket=b, Key=odd)["UploadId"]
    listed = s3.list_multipart_uploads(Bucket=b, Prefix="mp/odd", EncodingType="url")
    check_eq(
        (listed.get("EncodingType"), [u["Key"] for u in listed.get("Uploads", [])]),
        ("url", [urllib.parse.quote(odd, safe="-._~/")]),
        "list_multipart_uploads with encoding-type=url percent-encodes the keys",
    )
    s3.abort_multipart_upload(Bucket=b, Key=odd, UploadId=u4)
    expect_error(
        "the aborted upload made no object", ("404", "NoSuchKey"), 404, lambda: s3.head_object(Bucket=b, Key=akey)
    )
    return key, b"".join(data)


def b3_upload_part_copy(s3, b, src_key, src_data, small):
    small_key, small_data = small
    key = "mp/copied.bin"
    uid = s3.create_multipart_upload(Bucket=b, Key=key)["UploadId"]
    try:
        r1 = s3.upload_part_copy(
            Bucket=b,
            Key=key,
            UploadId=uid,
            PartNumber=1,
            CopySource={"Bucket": b, "Key": src_key},
            CopySourceRange=f"bytes=0-{5 * MiB - 1}",
        )
    except ClientError as e:
        if error_of(e)[0] == "NotImplemented":
            s3.abort_multipart_upload(Bucket=b, Key=key, UploadId=uid)
            skip("upload_part_copy", "NotImplemented")
            return
        raise
    part1 = src_data[: 5 * MiB]
    check_eq(r1["CopyPartResult"]["ETag"], quoted_md5(part1), "upload_part_copy of a 5 MiB range: ETag")
    r2 = s3.upload_part_copy(Bucket=b, Key=key, UploadId=uid, PartNumber=2, CopySource={"Bucket": b, "Key": small_key})
    check_eq(r2["CopyPartResult"]["ETag"], quoted_md5(small_data), "upload_part_copy of a whole object: ETag")
    s3.complete_multipart_upload(
        Bucket=b,
        Key=key,
        UploadId=uid,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
                {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]},
            ]
        },
    )
    got = s3.get_object(Bucket=b, Key=key)["Body"].read()
    check_eq(got, part1 + small_data, "upload_part_copy: the completed object holds the copied bytes")


def b3_remove_bucket(s3, bucket):
    keys = sorted(all_keys(s3, bucket))
    deleted = 0
    for i in range(0, len(keys), 1000):
        batch = keys[i : i + 1000]
        r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch]})
        check(
            not r.get("Errors") and len(r.get("Deleted", [])) == len(batch),
            f"delete_objects of {len(batch)} keys",
            f"{len(batch)} deleted, no errors",
            {"deleted": len(r.get("Deleted", [])), "errors": r.get("Errors", [])[:5]},
        )
        deleted += len(batch)
    check_eq(all_keys(s3, bucket), {}, f"bucket {bucket} emptied ({deleted} objects)")
    check_eq(status(s3.delete_bucket(Bucket=bucket)), 204, f"delete_bucket {bucket} -> 204")
    check_bucket_gone(s3, bucket, f"head_bucket of the deleted {bucket} -> 404")


# ---------------------------------------------------------------------------------------------
# aws-cli


def aws_env():
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=S.access_key,
        AWS_SECRET_ACCESS_KEY=S.secret_key,
        AWS_DEFAULT_REGION=S.region,
        AWS_MAX_ATTEMPTS="1",
        AWS_PAGER="",
    )
    if S.ca_bundle:
        env["AWS_CA_BUNDLE"] = S.ca_bundle
    return env


def aws(*args, what, input=None):
    return run(
        ["aws", "--endpoint-url", S.endpoint, "--cli-read-timeout", "300", *args], what, env=aws_env(), input=input
    )


def aws_ls(*args):
    """Lines of `aws s3 ls s3://...` as (kind, size, name): kind is 'PRE' or 'OBJ'."""
    out = aws("s3", "ls", *args, what=f"aws s3 ls {' '.join(args)}").stdout.decode()
    rows = []
    for line in out.splitlines():
        if line.strip().startswith("PRE "):
            rows.append(("PRE", None, line.strip()[4:]))
        elif line.strip():
            date, clock, size, name = line.split(None, 3)
            rows.append(("OBJ", int(size), name))
    return rows


def section_awscli(sec: Section):
    s3 = sec.s3
    b = sec.bucket_name()
    out = aws("s3", "mb", f"s3://{b}", what="aws s3 mb").stdout.decode()
    check(f"make_bucket: {b}" in out and bucket_exists(s3, b), "aws s3 mb", f"make_bucket: {b}", out)

    path, sha = big_file()
    t0 = time.monotonic()
    aws("s3", "cp", "--no-progress", path, f"s3://{b}/big.bin", what="aws s3 cp of the big file up")
    up = time.monotonic() - t0
    h = s3.head_object(Bucket=b, Key="big.bin")
    check_eq(h["ContentLength"], S.big_mib * MiB, f"aws s3 cp of {S.big_mib} MiB up ({up:.1f} s): size")
    check_eq(
        h["ETag"],
        expected_upload_etag(path, 8 * MiB, 8 * MiB),
        "aws s3 cp up: multipart in 8 MiB parts (the default), ETag as S3 makes it",
    )
    down = sec.path("big.down")
    t0 = time.monotonic()
    aws("s3", "cp", "--no-progress", f"s3://{b}/big.bin", down, what="aws s3 cp of the big file down")
    check_eq(file_sha256(down), sha, f"aws s3 cp down ({time.monotonic() - t0:.1f} s): SHA-256 as uploaded")
    os.remove(down)

    stream = random.Random(7).randbytes(10 * MiB + 12345)
    aws("s3", "cp", "-", f"s3://{b}/stream.bin", what="aws s3 cp - (stdin, no --expected-size)", input=stream)
    h = s3.head_object(Bucket=b, Key="stream.bin")
    check_eq(h["ContentLength"], len(stream), "aws s3 cp - from stdin: size")
    md5s = [hashlib.md5(stream[i : i + 8 * MiB]).digest() for i in range(0, len(stream), 8 * MiB)]
    check_eq(h["ETag"], multipart_etag(md5s), "aws s3 cp - from stdin: multipart in 8 MiB parts, ETag as S3 makes it")
    got = aws("s3", "cp", f"s3://{b}/stream.bin", "-", what="aws s3 cp to stdout").stdout
    check_eq(got, stream, "aws s3 cp from stdin, back to stdout: same bytes")

    src = sec.path("sync-src")
    rnd = random.Random(11)
    an_hour_ago = time.time() - 3600
    for rel in [
        "a.txt",
        "b.bin",
        "with space.txt",
        "nested/c.txt",
        "nested/deeper/d.bin",
        "nested/deeper/e.txt",
        "ünï/f.txt",
        "empty.txt",
    ]:
        write(os.path.join(src, rel), b"" if rel == "empty.txt" else rnd.randbytes(rnd.randint(1, 50000)))
        # aws s3 sync uploads a file again if it is newer than the object's Last-Modified, which
        # S3 gives in whole seconds: files written a moment ago could be, files an hour old not.
        os.utime(os.path.join(src, rel), (an_hour_ago, an_hour_ago))
    files = tree(src)
    out = aws("s3", "sync", "--no-progress", src, f"s3://{b}/sync/", what="aws s3 sync up").stdout.decode()
    check_eq(out.count("upload: "), len(files), "aws s3 sync up: one upload per file")
    check_eq(
        all_keys(s3, b, "sync/"),
        {f"sync/{k}": os.path.getsize(os.path.join(src, k)) for k in files},
        "aws s3 sync up: keys and sizes",
    )
    out = aws("s3", "sync", "--no-progress", src, f"s3://{b}/sync/", what="aws s3 sync up again").stdout.decode()
    check_eq(out.strip(), "", "aws s3 sync up again: nothing to do")
    with open(os.path.join(src, "a.txt"), "ab") as f:
        f.write(b"more\n")
    os.remove(os.path.join(src, "nested/deeper/e.txt"))
    out = aws(
        "s3", "sync", "--no-progress", "--delete", src, f"s3://{b}/sync/", what="aws s3 sync --delete"
    ).stdout.decode()
    check(
        out.count("upload: ") == 1 and out.count("delete: ") == 1 and f"s3://{b}/sync/nested/deeper/e.txt" in out,
        "aws s3 sync --delete: the changed file uploaded, the removed one deleted",
        "1 upload, 1 delete",
        out,
    )
    down = sec.path("sync-down")
    aws("s3", "sync", "--no-progress", f"s3://{b}/sync/", down, what="aws s3 sync down")
    check_same_tree(down, src, "aws s3 sync down: the same tree")

    out = aws("s3", "ls", what="aws s3 ls").stdout.decode()
    buckets = [line.split(None, 2)[2] for line in out.splitlines() if line.strip()]
    check(b in buckets, "aws s3 ls: lists the bucket", b, buckets)
    rows = aws_ls(f"s3://{b}/")
    check_eq(
        sorted(rows, key=lambda r: r[2]),
        [("OBJ", S.big_mib * MiB, "big.bin"), ("OBJ", len(stream), "stream.bin"), ("PRE", None, "sync/")],
        "aws s3 ls s3://bucket/: top-level objects and PRE sync/",
    )
    rows = aws_ls(f"s3://{b}/", "--recursive")
    want = all_keys(s3, b)
    check_eq({name: size for _, size, name in rows}, want, "aws s3 ls --recursive: every key with its size")
    check_eq(len(want), len(files) - 1 + 2, "aws s3 ls --recursive: as many keys as were put")

    out = aws("s3", "rm", f"s3://{b}", "--recursive", what="aws s3 rm --recursive").stdout.decode()
    check_eq((out.count("delete: "), all_keys(s3, b)), (len(want), {}), "aws s3 rm --recursive: every key deleted")
    out = aws("s3", "rb", f"s3://{b}", what="aws s3 rb").stdout.decode()
    check(f"remove_bucket: {b}" in out, "aws s3 rb", f"remove_bucket: {b}", out)
    check_bucket_gone(s3, b, "aws s3 rb: the bucket is gone")


# ---------------------------------------------------------------------------------------------
# rclone


def make_rclone_tree(root, rnd):
    """A few hundred files of mixed sizes in nested directories, names with spaces and unicode."""
    files = {
        "zero.bin": b"",
        "one.bin": b"1",
        "spaced dir/file with spaces.txt": b"spaces\n" * 10,
        "spaced dir/inner dir/deeper still/leaf.txt": b"leaf\n",
        "ünïcødé/日本語/ファイル.txt": "日本語\n".encode() * 30,
        "ünïcødé/naïve café.txt": "café\n".encode() * 20,
        "emoji 🎉/party time.txt": b"party\n",
        "mixed/a b/c+d/plus+and&amp=.txt": b"odd\n",
        "mixed/percent%20name.txt": b"percent\n",
    }
    for i in range(300):
        files[f"many/{i // 60:02d}/f{i:03d}.dat"] = rnd.randbytes(rnd.choice([1, 100, 1000, 2048, 4096, 8000, 12345]))
    for i in range(4):
        files[f"docs/deep/mb-{i}.bin"] = rnd.randbytes(MiB + rnd.randint(0, 4096))
    files["big/twenty-a.bin"] = rnd.randbytes(20 * MiB + 123)
    files["big/twenty b.bin"] = rnd.randbytes(20 * MiB - 77)
    for rel, data in files.items():
        write(os.path.join(root, rel), data)
    return sorted(files)


def rclone(sec, *args, what):
    extra = os.environ.get("S3_RCLONE_FLAGS", "").split()
    if S.ca_bundle:
        extra += ["--ca-cert", S.ca_bundle]
    return run(
        ["rclone", "--config", sec.path("rclone.conf"), "--retries", "1", "--low-level-retries", "1", *extra, *args],
        what,
    )


def rclone_check(sec, local, remote, what):
    """`rclone check` (which compares sizes and MD5s): no differences, every file matched."""
    p = rclone(sec, "check", local, remote, what=what)
    err = p.stderr.decode("utf-8", "replace")
    n = len(tree(local))
    diffs = re.search(r"(\d+) differences found", err)
    matching = re.search(r"(\d+) matching files", err)
    unchecked = re.search(r"(\d+) hashes could not be checked", err)
    check(
        diffs and diffs.group(1) == "0" and matching and int(matching.group(1)) == n and not unchecked,
        what,
        f"0 differences, {n} matching files, every MD5 checked",
        err[-2000:],
    )


def rclone_mtimes_match(got_root, want_root, what):
    bad = []
    for rel in tree(want_root):
        a = os.stat(os.path.join(got_root, rel)).st_mtime_ns
        w = os.stat(os.path.join(want_root, rel)).st_mtime_ns
        if abs(a - w) > 1_000_000:
            bad.append((rel, a, w))
    check(not bad, what, "modification times within 1 ms", bad[:5])


def section_rclone(sec: Section):
    s3 = sec.s3
    b = sec.bucket_name()
    with open(sec.path("rclone.conf"), "w") as f:
        f.write(
            "[rt]\ntype = s3\nprovider = Other\nenv_auth = false\n"
            f"endpoint = {S.endpoint}\naccess_key_id = {S.access_key}\nsecret_access_key = {S.secret_key}\n"
            f"region = {S.region}\n"
            # Files from 8 MiB on go up in 5 MiB parts, so the ~20 MiB ones are multipart uploads.
            "upload_cutoff = 8M\nchunk_size = 5M\n"
        )
    local = sec.path("local")
    rnd = random.Random(42)
    names = make_rclone_tree(local, rnd)
    old = sec.path("local-before")
    shutil.copytree(local, old)
    remote = f"rt:{b}"

    rclone(sec, "mkdir", remote, what="rclone mkdir")
    check(bucket_exists(s3, b), "rclone mkdir makes the bucket", b, "no bucket")
    t0 = time.monotonic()
    rclone(sec, "copy", local, remote, what="rclone copy up")
    check_eq(
        sorted(all_keys(s3, b)),
        names,
        f"rclone copy up of {len(names)} files ({time.monotonic() - t0:.1f} s): every key",
    )
    rclone_check(sec, local, remote, "rclone check after copy: 0 differences")

    # Change the local tree: same-size rewrites, size changes, a new big file, new and removed files.
    for rel in names[::37]:
        if rel.startswith("many/"):
            size = os.path.getsize(os.path.join(local, rel))
            write(os.path.join(local, rel), rnd.randbytes(size))
    for rel in ("one.bin", "docs/deep/mb-1.bin", "spaced dir/file with spaces.txt"):
        with open(os.path.join(local, rel), "ab") as f:
            f.write(b"appended\n")
    write(os.path.join(local, "big/twenty-a.bin"), rnd.randbytes(21 * MiB))
    for i in range(10):
        write(os.path.join(local, f"new dir/ñ/added {i}.txt"), rnd.randbytes(rnd.randint(0, 3000)))
    removed = [rel for rel in names if rel.startswith("many/03/")][:10] + ["docs/deep/mb-2.bin"]
    for rel in removed:
        os.remove(os.path.join(local, rel))
    now_names = sorted(tree(local))

    t0 = time.monotonic()
    rclone(sec, "sync", local, remote, what="rclone sync up")
    check_eq(
        sorted(all_keys(s3, b)), now_names, f"rclone sync up ({time.monotonic() - t0:.1f} s): keys as the local tree"
    )
    rclone_check(sec, local, remote, "rclone check after sync: 0 differences")

    down = sec.path("down")
    t0 = time.monotonic()
    rclone(sec, "copy", remote, down, what="rclone copy down")
    check_same_tree(down, local, f"rclone copy down ({time.monotonic() - t0:.1f} s): byte for byte the local tree")
    rclone_mtimes_match(down, local, "rclone copy down: modification times kept (x-amz-meta-mtime)")

    # Sync down into a directory holding the old tree and a stray file.
    write(os.path.join(old, "stray/only here.txt"), b"stray\n")
    rclone(sec, "sync", remote, old, what="rclone sync down")
    check_same_tree(old, local, "rclone sync down onto the old tree: byte for byte the local tree")

    rclone(sec, "purge", remote, what="rclone purge")
    check_bucket_gone(s3, b, "rclone purge: the bucket is gone")


# ---------------------------------------------------------------------------------------------
# s3cmd


def s3cmd(sec, *args, what, ok_codes=(0,)):
    return run(["s3cmd", "-c", sec.path("s3cfg"), "--no-progress", *args], what, ok_codes=ok_codes)


def section_s3cmd(sec: Section):
    s3 = sec.s3
    b = sec.bucket_name()
    with open(sec.path("s3cfg"), "w") as f:
        f.write(
            "[default]\n"
            f"access_key = {S.access_key}\nsecret_key = {S.secret_key}\n"
            f"host_base = {S.hostport}\nhost_bucket = {S.hostport}\n"
            f"use_https = {S.scheme == 'https'}\nsignature_v2 = False\n"
            f"bucket_location = {S.region}\n"
            "socket_timeout = 300\nprogress_meter = False\n"
            + (f"ca_certs_file = {S.ca_bundle}\n" if S.ca_bundle else "")
        )
    out = s3cmd(sec, "mb", f"s3://{b}", what="s3cmd mb").stdout.decode()
    check(bucket_exists(s3, b), "s3cmd mb", f"bucket {b}", out)

    small = sec.path("small.txt")
    write(small, b"s3cmd small file\n" * 40)
    big = sec.path("big.bin")
    random_file(big, 20 * MiB + 321, seed=5)
    for path, key in ((small, "small.txt"), (big, "dir/big.bin")):
        s3cmd(sec, "put", path, f"s3://{b}/{key}", what=f"s3cmd put {key}")
        check_eq(s3.head_object(Bucket=b, Key=key)["ContentLength"], os.path.getsize(path), f"s3cmd put {key}: size")
    check_eq(
        s3.head_object(Bucket=b, Key="dir/big.bin")["ETag"],
        expected_upload_etag(big, 15 * MiB, 15 * MiB),
        "s3cmd put of 20 MiB: multipart in 15 MiB parts (its default), ETag as S3 makes it",
    )
    for path, key in ((small, "small.txt"), (big, "dir/big.bin")):
        got = sec.path("got-" + os.path.basename(path))
        s3cmd(sec, "get", f"s3://{b}/{key}", got, what=f"s3cmd get {key}")
        check_eq(file_sha256(got), file_sha256(path), f"s3cmd get {key}: same bytes")

    out = s3cmd(sec, "ls", what="s3cmd ls").stdout.decode()
    buckets = [line.split("s3://", 1)[1] for line in out.splitlines() if "s3://" in line]
    check(b in buckets, "s3cmd ls: lists the bucket", b, out)
    out = s3cmd(sec, "ls", f"s3://{b}/", what="s3cmd ls s3://bucket/").stdout.decode()
    names = sorted(line.split("s3://", 1)[1] for line in out.splitlines() if "s3://" in line)
    check_eq(names, [f"{b}/dir/", f"{b}/small.txt"], "s3cmd ls s3://bucket/: the object and DIR dir/")

    src = sec.path("sync-src")
    rnd = random.Random(13)
    for rel in ["one.txt", "two.bin", "with space.txt", "sub/three.txt", "sub/deeper/four.bin", "ünï/five.txt"]:
        write(os.path.join(src, rel), rnd.randbytes(rnd.randint(1, 40000)))
    files = tree(src)
    out = s3cmd(sec, "sync", src + "/", f"s3://{b}/sync/", what="s3cmd sync up").stdout.decode()
    check_eq(
        all_keys(s3, b, "sync/"),
        {f"sync/{k}": os.path.getsize(os.path.join(src, k)) for k in files},
        "s3cmd sync up: keys and sizes",
    )
    out = s3cmd(sec, "sync", src + "/", f"s3://{b}/sync/", what="s3cmd sync up again").stdout.decode()
    check("upload:" not in out, "s3cmd sync up again: nothing uploaded (sizes and MD5s match)", "no upload lines", out)
    down = sec.path("sync-down")
    s3cmd(sec, "sync", f"s3://{b}/sync/", down + "/", what="s3cmd sync down")
    check_same_tree(down, src, "s3cmd sync down: the same tree")

    s3cmd(sec, "del", f"s3://{b}/small.txt", what="s3cmd del")
    expect_error(
        "s3cmd del: the object is gone", ("404", "NoSuchKey"), 404, lambda: s3.head_object(Bucket=b, Key="small.txt")
    )
    p = s3cmd(sec, "rb", f"s3://{b}", what="s3cmd rb of a non-empty bucket", ok_codes=range(1, 256))
    err = p.stderr.decode("utf-8", "replace")
    check(
        "BucketNotEmpty" in err and bucket_exists(s3, b),
        "s3cmd rb of a non-empty bucket fails: BucketNotEmpty",
        "an error naming BucketNotEmpty",
        err,
    )
    s3cmd(sec, "del", "--recursive", "--force", f"s3://{b}", what="s3cmd del --recursive")
    check_eq(all_keys(s3, b), {}, "s3cmd del --recursive: the bucket is empty")
    s3cmd(sec, "rb", f"s3://{b}", what="s3cmd rb")
    check_bucket_gone(s3, b, "s3cmd rb: the bucket is gone")


# ---------------------------------------------------------------------------------------------
# presigned URLs


def curl(*args, what):
    """(HTTP status, body) of a curl request."""
    body = os.path.join(S.workdir, f"curl-{secrets.token_hex(4)}")
    ca = ["--cacert", S.ca_bundle] if S.ca_bundle else []
    p = run(["curl", "-sS", "--globoff", "--max-time", "300", *ca, "-o", body, "-w", "%{http_code}", *args], what)
    with open(body, "rb") as f:
        data = f.read()
    os.remove(body)
    return int(p.stdout.decode().strip()), data


def tamper_signature(url):
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    out = []
    for name, value in query:
        if name == "X-Amz-Signature":
            value = value[:-1] + ("0" if value[-1] != "0" else "1")
        out.append((name, value))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(out, quote_via=urllib.parse.quote)))


def section_presign(sec: Section):
    s3 = sec.s3
    b = sec.bucket_name()
    s3.create_bucket(
        Bucket=b, **({} if S.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": S.region}})
    )
    key = "presigned/signed object+1.bin"
    data_path = sec.path("payload.bin")
    random_file(data_path, 2 * MiB + 99, seed=3)
    with open(data_path, "rb") as f:
        data = f.read()

    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": key}, ExpiresIn=600)
    st, body = curl("-T", data_path, put_url, what="curl -T to a presigned PUT URL")
    check_eq(st, 200, "presigned PUT with curl -T -> 200")
    h = s3.head_object(Bucket=b, Key=key)
    check_eq(
        (h["ContentLength"], h["ETag"]), (len(data), quoted_md5(data)), "presigned PUT: the object stored, ETag its MD5"
    )

    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": key}, ExpiresIn=600)
    st, body = curl(get_url, what="curl of a presigned GET URL")
    check_eq((st, body), (200, data), "presigned GET with curl -> 200, the same bytes")

    st, body = curl(tamper_signature(get_url), what="curl of a tampered presigned GET URL")
    check(
        st == 403 and xml_code(body) in ("SignatureDoesNotMatch", "AccessDenied"),
        "presigned GET with a tampered signature -> 403",
        "403, SignatureDoesNotMatch or AccessDenied",
        f"{st}, {xml_code(body)}: {body[:300]!r}",
    )
    st, body = curl("-T", data_path, tamper_signature(put_url), what="curl -T to a tampered presigned PUT URL")
    check(
        st == 403 and xml_code(body) in ("SignatureDoesNotMatch", "AccessDenied"),
        "presigned PUT with a tampered signature -> 403",
        "403, SignatureDoesNotMatch or AccessDenied",
        f"{st}, {xml_code(body)}: {body[:300]!r}",
    )

    # Signed an hour ago for a minute: expired, with a signature that is right.
    with signing_clock(-dt.timedelta(hours=1)):
        old_url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": key}, ExpiresIn=60)
    st, body = curl(old_url, what="curl of an expired presigned GET URL")
    check(
        st == 403 and xml_code(body) in ("AccessDenied", "SignatureDoesNotMatch"),
        "presigned GET that expired 59 minutes ago -> 403",
        "403, AccessDenied",
        f"{st}, {xml_code(body)}: {body[:300]!r}",
    )

    purge_bucket(s3, b)
    check_bucket_gone(s3, b, "presign: bucket removed")


# ---------------------------------------------------------------------------------------------
# auth


def signed_get(path, access_key, secret_key, clock_offset=dt.timedelta(0)):
    """(status, body) of a GET signed with SigV4 by botocore, with the signing clock moved."""
    req = AWSRequest(method="GET", url=S.endpoint + path)
    req.headers["x-amz-content-sha256"] = hashlib.sha256(b"").hexdigest()
    with signing_clock(clock_offset):
        SigV4Auth(Credentials(access_key, secret_key), "s3", S.region).add_auth(req)
    p = req.prepare()
    return http(p.method, p.url, dict(p.headers.items()))


def sigv2_get(path, access_key, secret_key):
    """(status, body) of a GET signed with Signature Version 2, which the gateway refuses."""
    import hmac

    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    to_sign = f"GET\n\n\n{date}\n{path}"
    sig = base64.b64encode(hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    return http("GET", S.endpoint + path, {"Date": date, "Authorization": f"AWS {access_key}:{sig}"})


def section_auth(sec: Section):
    s3 = sec.s3
    b = sec.bucket_name()
    s3.create_bucket(
        Bucket=b, **({} if S.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": S.region}})
    )
    s3.put_object(Bucket=b, Key="secret.txt", Body=b"secret\n")

    st, body = signed_get(f"/{b}?list-type=2", S.access_key, S.secret_key)
    check(
        st == 200 and b"secret.txt" in body,
        "a request signed by hand with the right clock -> 200",
        200,
        f"{st}: {body[:300]!r}",
    )
    for minutes in (20, -20):
        st, body = signed_get(f"/{b}?list-type=2", S.access_key, S.secret_key, dt.timedelta(minutes=minutes))
        check(
            (st, xml_code(body)) == (403, "RequestTimeTooSkewed"),
            f"a request signed with the clock {minutes:+d} minutes off -> RequestTimeTooSkewed",
            "403 RequestTimeTooSkewed",
            f"{st} {xml_code(body)}: {body[:300]!r}",
        )

    st, body = sigv2_get(f"/{b}/secret.txt", S.access_key, S.secret_key)
    check(
        st == 403 and xml_code(body) == "AccessDenied",
        "a request signed with Signature Version 2 (right secret) -> 403 AccessDenied",
        "403 AccessDenied",
        f"{st} {xml_code(body)}: {body[:300]!r}",
    )

    form = b'--x\r\nContent-Disposition: form-data; name="key"\r\n\r\nk\r\n--x--\r\n'
    st, body = http("POST", f"{S.endpoint}/{b}", {"Content-Type": "multipart/form-data; boundary=x"}, form)
    check(
        (st, xml_code(body)) == (501, "NotImplemented"),
        "a browser form upload (POST Object, unsigned) -> 501 NotImplemented",
        "501 NotImplemented",
        f"{st} {xml_code(body)}: {body[:300]!r}",
    )

    wrong = client(S.access_key, S.secret_key + "x")
    expect_error("list_buckets with a wrong secret", "SignatureDoesNotMatch", 403, lambda: wrong.list_buckets())
    expect_error(
        "get_object with a wrong secret",
        "SignatureDoesNotMatch",
        403,
        lambda: wrong.get_object(Bucket=b, Key="secret.txt"),
    )
    expect_error(
        "put_object with a wrong secret",
        "SignatureDoesNotMatch",
        403,
        lambda: wrong.put_object(Bucket=b, Key="intruder.txt", Body=b"x"),
    )
    expect_error(
        "put_object with a wrong secret stored nothing",
        ("404", "NoSuchKey"),
        404,
        lambda: s3.head_object(Bucket=b, Key="intruder.txt"),
    )

    unknown = client("AKIA" + secrets.token_hex(8).upper(), S.secret_key)
    expect_error("list_buckets with an unknown access key", "InvalidAccessKeyId", 403, lambda: unknown.list_buckets())

    for what, url in (("list", f"{S.endpoint}/{b}"), ("get", f"{S.endpoint}/{b}/secret.txt")):
        st, body = http("GET", url)
        check(
            (st, xml_code(body)) == (403, "AccessDenied"),
            f"anonymous {what} -> 403 AccessDenied",
            "403 AccessDenied",
            f"{st} {xml_code(body)}: {body[:300]!r}",
        )

    key, secret = S.revoked
    if key and secret:
        revoked = client(key, secret)
        expect_error(
            "list_buckets with the revoked key",
            ("InvalidAccessKeyId", "AccessDenied"),
            403,
            lambda: revoked.list_buckets(),
        )
        expect_error(
            "get_object with the revoked key",
            ("InvalidAccessKeyId", "AccessDenied"),
            403,
            lambda: revoked.get_object(Bucket=b, Key="secret.txt"),
        )
    else:
        skip("revoked key", "S3_REVOKED_ACCESS_KEY / S3_REVOKED_SECRET_KEY not set")

    purge_bucket(s3, b)
    check_bucket_gone(s3, b, "auth: bucket removed")


# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# virtual-host style and TLS


@contextlib.contextmanager
def resolve_to_endpoint(domain_host: str):
    """Names under domain_host resolve to the endpoint's address, for this process only: the
    client still signs and sends Host: <bucket>.<domain>, as it would against a real domain."""
    import socket

    target = urllib.parse.urlsplit(S.endpoint).hostname
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kw):
        if isinstance(host, bytes):
            host = host.decode()
        if host == domain_host or host.endswith("." + domain_host):
            host = target
        return real(host, *args, **kw)

    with mock.patch.object(socket, "getaddrinfo", getaddrinfo):
        yield


def section_vhost(sec: Section):
    if not S.vhost_domain:
        skip("vhost", "S3_VHOST_DOMAIN is not set")
        return
    domain_host = S.vhost_domain.split(":")[0]
    endpoint = f"{S.scheme}://{S.vhost_domain}"
    b = sec.bucket_name()
    with resolve_to_endpoint(domain_host):
        v = client(endpoint=endpoint, addressing="virtual")
        seen = []
        v.meta.events.register("before-send.s3", lambda request, **kw: seen.append(request.url))
        v.create_bucket(Bucket=b)
        check(
            seen and urllib.parse.urlsplit(seen[-1]).netloc == f"{b}.{S.vhost_domain}",
            "boto3 addressing_style=virtual sends to <bucket>.<domain>",
            f"{b}.{S.vhost_domain}",
            seen[-1:],
        )
        data = b"virtual host\n" * 100
        r = v.put_object(Bucket=b, Key="dir/v.txt", Body=data, ContentType="text/plain")
        check_eq(r["ETag"], quoted_md5(data), "put_object virtual-host style")
        g = v.get_object(Bucket=b, Key="dir/v.txt")
        check_eq((g["Body"].read(), g["ContentType"]), (data, "text/plain"), "get_object virtual-host style")
        r = v.list_objects_v2(Bucket=b, Delimiter="/")
        check_eq([p["Prefix"] for p in r.get("CommonPrefixes", [])], ["dir/"], "list_objects_v2 virtual-host style")
        expect_error(
            "a virtual-host request for a missing bucket",
            "NoSuchBucket",
            404,
            lambda: v.list_objects_v2(Bucket=f"{b}-none"),
        )
        # Host equal to the domain itself is path style.
        p = client(endpoint=endpoint, addressing="path")
        got = p.get_object(Bucket=b, Key="dir/v.txt")["Body"].read()
        check_eq(got, data, "path style with Host = the domain")
        url = v.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "dir/v.txt"}, ExpiresIn=300)
        check(urllib.parse.urlsplit(url).netloc.startswith(f"{b}."), "presigned URL is virtual-host style", b, url)
        st, body = http("GET", url)
        check_eq((st, body), (200, data), "a virtual-host presigned GET")
        v.delete_object(Bucket=b, Key="dir/v.txt")
        v.delete_bucket(Bucket=b)
    check(not bucket_exists(sec.s3, b), "the bucket made virtual-host style is gone (seen path style)", False, True)


def section_tls(sec: Section):
    if S.scheme != "https":
        skip("tls", "S3_ENDPOINT is not https")
        return
    s3 = sec.s3
    b = sec.bucket_name()
    s3.create_bucket(Bucket=b)
    check(bucket_exists(s3, b), "create_bucket over TLS (the CA bundle verified)", True, False)
    data = os.urandom(300 * 1024)
    r = s3.put_object(Bucket=b, Key="t/one", Body=data, ChecksumAlgorithm="SHA256")
    check_eq(r.get("ChecksumSHA256"), sha256_b64(data), "put_object over TLS with ChecksumAlgorithm=SHA256")
    h = s3.head_object(Bucket=b, Key="t/one", ChecksumMode="ENABLED")
    check_eq(h.get("ChecksumSHA256"), sha256_b64(data), "head_object over TLS gives the stored SHA-256")
    check_eq(s3.get_object(Bucket=b, Key="t/one")["Body"].read(), data, "get_object over TLS")
    path = sec.path("eleven-mib.bin")
    random_file(path, 11 * MiB, seed=7)
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_file(path, b, "t/multi", Config=cfg)
    h = s3.head_object(Bucket=b, Key="t/multi", ChecksumMode="ENABLED")
    check(h["ETag"].endswith('-3"'), "upload_file over TLS in 5 MiB parts", '"…-3"', h["ETag"])
    down = sec.path("down.bin")
    s3.download_file(b, "t/multi", down)
    check_eq(file_sha256(down), file_sha256(path), "download_file over TLS")
    keys = sorted(all_keys(s3, b))
    check_eq(keys, ["t/multi", "t/one"], "list_objects_v2 over TLS")
    st, _ = http("GET", s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "t/one"}, ExpiresIn=60))
    check_eq(st, 200, "a presigned GET over TLS (urllib trusting the CA bundle)")
    b3_remove_bucket(s3, b)


RUNNERS = {
    "boto3": section_boto3,
    "awscli": section_awscli,
    "rclone": section_rclone,
    "s3cmd": section_s3cmd,
    "presign": section_presign,
    "auth": section_auth,
    "vhost": section_vhost,
    "tls": section_tls,
}


def main(argv):
    global S, KEEP_GOING
    args = argv[1:]
    if "--keep-going" in args:
        KEEP_GOING = True
        args.remove("--keep-going")
    wanted = args or SECTIONS
    unknown = [w for w in wanted if w not in RUNNERS]
    if unknown:
        sys.exit(f"unknown section(s) {' '.join(unknown)}; sections: {' '.join(RUNNERS)}; option: --keep-going")
    S = Settings()
    isolate_aws_environment()
    print(f"endpoint {S.endpoint}, region {S.region}, run {S.suffix}, scratch {S.workdir}", flush=True)
    times = []
    for name in wanted:
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        sec = Section(name)
        failed_before = len(FAILURES)
        try:
            RUNNERS[name](sec)
        except CheckFailed as e:
            report_failure(e.what, e.expected, e.got)
        except Exception:
            report_failure(f"{name}: unexpected error", "no exception", traceback.format_exc())
        sec.cleanup()
        took = time.monotonic() - t0
        times.append(f"{name} {took:.1f} s")
        if len(FAILURES) > failed_before:
            print(f"== {name} FAILED after {took:.1f} s", flush=True)
            if not KEEP_GOING:
                break
        else:
            print(f"== {name} passed in {took:.1f} s", flush=True)
            shutil.rmtree(sec.dir, ignore_errors=True)
    if FAILURES:
        print(f"scratch files kept in {S.workdir}", flush=True)
        print(f"{len(FAILURES)} failed: " + "; ".join(FAILURES), flush=True)
        return 1
    shutil.rmtree(S.workdir, ignore_errors=True)
    print(f"all passed: {', '.join(times)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
