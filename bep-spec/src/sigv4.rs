//! AWS Signature Version 4 in the `Authorization` header, as RT-0004 section 5 uses it: a client
//! holding an S3 access key signs its object API requests with it, exactly as it would sign S3
//! requests, so no secret ever crosses the wire and stock signers (botocore, curl's
//! `--aws-sigv4`) work unchanged.
//!
//! Pure: a request's parts in, a canonical request, a string to sign and a signature out. The
//! gateway verifies with [`verify`] (constant time) and the client signs with [`sign`]; both run
//! the same [`canonical_request`], which the AWS published examples pin down (see the tests).
//!
//! ```
//! use raidtorrent_proto::sigv4::{sign, verify, Authorization, Request, EMPTY_SHA256};
//!
//! let headers = [("Host", "127.0.0.1:8080"), ("x-amz-date", "20261204T120000Z"),
//!                ("x-amz-content-sha256", EMPTY_SHA256)];
//! let req = Request { method: "GET", path: "/photos/a b.jpg", query: "", headers: &headers,
//!                     payload_hash: EMPTY_SHA256 };
//! let auth = sign(&req, "RTKEY", "secret", "20261204T120000Z", "us-east-1").unwrap();
//! let parsed = Authorization::parse(&auth.header_value()).unwrap();
//! assert!(verify(&req, &parsed, "secret").is_ok());
//! assert!(verify(&req, &parsed, "another secret").is_err());
//! ```

use ring::{digest, hmac};

/// The only algorithm SigV4 names.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The payload hash of a request whose body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SHA-256 of the empty body, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The service an object API signature is scoped to: S3's, so S3 keys sign as they do for S3.
pub const SERVICE: &str = "s3";
/// Most headers a signature may cover.
const MAX_SIGNED_HEADERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("the signed header `{0}` is not in the request")]
    MissingHeader(String),
    #[error("the signature must cover the `{0}` header")]
    Unsigned(&'static str),
    #[error("the request path or query is not valid percent-encoding")]
    BadEncoding,
    #[error("x-amz-date must be YYYYMMDDTHHMMSSZ and match the credential's date")]
    BadDate,
    #[error("the signature does not match the request and the access key's secret")]
    Mismatch,
}

/// A request as signed: the method, the path and query as sent (percent-encoded), its headers
/// (any case, in any order, repeated names allowed) and the payload hash it declares.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    /// `x-amz-content-sha256`: a hex SHA-256 of the body or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// `<date>/<region>/<service>/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub date: String,
    pub region: String,
    pub service: String,
}

impl Scope {
    fn text(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    pub scope: Scope,
    /// Lowercase, sorted, as the header lists them.
    pub signed_headers: Vec<String>,
    pub signature: [u8; 32],
}

impl Authorization {
    /// Parses `AWS4-HMAC-SHA256 Credential=AK/date/region/service/aws4_request,
    /// SignedHeaders=a;b, Signature=hex`.
    pub fn parse(value: &str) -> Result<Self, SigV4Error> {
        let rest = value
            .strip_prefix(ALGORITHM)
            .filter(|r| r.starts_with(' '))
            .ok_or(SigV4Error::Malformed("it must start with AWS4-HMAC-SHA256"))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',').map(str::trim) {
            match part.split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => return Err(SigV4Error::Malformed("unknown or empty component")),
            }
        }
        let missing = SigV4Error::Malformed("Credential, SignedHeaders and Signature are required");
        let (credential, signed, signature) = (
            credential.ok_or(missing.clone())?,
            signed.ok_or(missing.clone())?,
            signature.ok_or(missing)?,
        );
        let (access_key, scope) = parse_credential(credential)?;
        Ok(Authorization {
            access_key,
            scope,
            signed_headers: parse_signed_headers(signed)?,
            signature: parse_signature(signature)?,
        })
    }

    /// The header value this authorization is sent as.
    pub fn header_value(&self) -> String {
        format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={}",
            self.access_key,
            self.scope.text(),
            self.signed_headers.join(";"),
            to_hex(&self.signature)
        )
    }
}

fn parse_credential(v: &str) -> Result<(String, Scope), SigV4Error> {
    let parts: Vec<&str> = v.split('/').collect();
    let [key, date, region, service, "aws4_request"] = parts[..] else {
        return Err(SigV4Error::Malformed(
            "Credential must be <key>/<date>/<region>/<service>/aws4_request",
        ));
    };
    if key.is_empty() || date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SigV4Error::Malformed(
            "Credential has an empty key or a bad date",
        ));
    }
    let scope = Scope {
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
    };
    Ok((key.to_owned(), scope))
}

fn parse_signed_headers(v: &str) -> Result<Vec<String>, SigV4Error> {
    let names: Vec<String> = v.split(';').map(str::to_owned).collect();
    let well_formed = names.len() <= MAX_SIGNED_HEADERS
        && names.iter().all(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        && names.windows(2).all(|w| w[0] < w[1]);
    if !well_formed {
        return Err(SigV4Error::Malformed(
            "SignedHeaders must be sorted, distinct, lowercase header names",
        ));
    }
    Ok(names)
}

fn parse_signature(v: &str) -> Result<[u8; 32], SigV4Error> {
    let bad = SigV4Error::Malformed("Signature must be 64 lowercase hex digits");
    if v.len() != 64
        || !v
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad);
    }
    let mut out = [0; 32];
    for (i, pair) in v.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).map_err(|_| bad.clone())?;
        out[i] = u8::from_str_radix(text, 16).map_err(|_| bad.clone())?;
    }
    Ok(out)
}

/// The canonical request over `signed` (lowercase, sorted header names).
pub fn canonical_request(req: &Request<'_>, signed: &[String]) -> Result<String, SigV4Error> {
    let mut out = format!(
        "{}\n{}\n{}\n",
        req.method,
        canonical_path(req.path)?,
        canonical_query(req.query)?
    );
    for name in signed {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(SigV4Error::MissingHeader(name.clone()));
        }
        out.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    out.push_str(&format!("\n{}\n{}", signed.join(";"), req.payload_hash));
    Ok(out)
}

/// Each segment decoded once and encoded again with SigV4's rules (S3 does not encode twice).
fn canonical_path(path: &str) -> Result<String, SigV4Error> {
    if path.is_empty() {
        return Ok("/".to_owned());
    }
    let segments: Result<Vec<String>, SigV4Error> =
        path.split('/').map(|s| Ok(encode(&decode(s)?))).collect();
    Ok(segments?.join("/"))
}

fn canonical_query(query: &str) -> Result<String, SigV4Error> {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((encode(&decode(k)?), encode(&decode(v)?)))
        })
        .collect::<Result<_, SigV4Error>>()?;
    pairs.sort();
    let pairs: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(pairs.join("&"))
}

fn decode(s: &str) -> Result<Vec<u8>, SigV4Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(SigV4Error::BadEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| SigV4Error::BadEncoding)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| SigV4Error::BadEncoding)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Every byte but `A-Z a-z 0-9 - . _ ~` as `%XX` (uppercase hex).
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex SHA-256 of the canonical request>`.
pub fn string_to_sign(amz_date: &str, scope: &Scope, canonical: &str) -> String {
    let hash = digest::digest(&digest::SHA256, canonical.as_bytes());
    format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        scope.text(),
        to_hex(hash.as_ref())
    )
}

fn signing_key(secret: &str, scope: &Scope) -> hmac::Key {
    let mut key = hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{secret}").as_bytes());
    for part in [&scope.date, &scope.region, &scope.service, "aws4_request"] {
        let tag = hmac::sign(&key, part.as_bytes());
        key = hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref());
    }
    key
}

/// The signature of a canonical request.
pub fn signature(secret: &str, amz_date: &str, scope: &Scope, canonical: &str) -> [u8; 32] {
    let to_sign = string_to_sign(amz_date, scope, canonical);
    let tag = hmac::sign(&signing_key(secret, scope), to_sign.as_bytes());
    tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes")
}

/// Signs every header of `req` (the client lists only what it sends and means to sign).
pub fn sign(
    req: &Request<'_>,
    access_key: &str,
    secret: &str,
    amz_date: &str,
    region: &str,
) -> Result<Authorization, SigV4Error> {
    let mut signed: Vec<String> = req
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    signed.sort();
    signed.dedup();
    let scope = Scope {
        date: amz_date.get(..8).ok_or(SigV4Error::BadDate)?.to_owned(),
        region: region.to_owned(),
        service: SERVICE.to_owned(),
    };
    let canonical = canonical_request(req, &signed)?;
    Ok(Authorization {
        access_key: access_key.to_owned(),
        signature: signature(secret, amz_date, &scope, &canonical),
        scope,
        signed_headers: signed,
    })
}

/// An access key and the region it signs for: what a client needs to sign its requests.
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    pub access_key: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
}

impl Signer<'_> {
    /// The headers a request must add beside its body, in the order `authorization`,
    /// `x-amz-content-sha256`, `x-amz-date`: signing `host` (as the request will send it, with
    /// any port), the date `at` (Unix seconds) and the body's SHA-256.
    pub fn headers(
        &self,
        method: &str,
        host: &str,
        path: &str,
        query: &str,
        body: &[u8],
        at: i64,
    ) -> Result<[(&'static str, String); 3], SigV4Error> {
        let (date, payload) = (amz_date(at), payload_sha256(body));
        let headers = [
            ("host", host),
            ("x-amz-content-sha256", payload.as_str()),
            ("x-amz-date", date.as_str()),
        ];
        let req = Request {
            method,
            path,
            query,
            headers: &headers,
            payload_hash: &payload,
        };
        let auth = sign(&req, self.access_key, self.secret, &date, self.region)?;
        Ok([
            ("authorization", auth.header_value()),
            ("x-amz-content-sha256", payload),
            ("x-amz-date", date),
        ])
    }
}

/// Checks `auth` against `req` and the key's `secret`: `host`, `x-amz-date` and
/// `x-amz-content-sha256` must be signed and the date must be the scope's. The freshness of the
/// date is the caller's to judge ([`amz_date_seconds`]).
pub fn verify(req: &Request<'_>, auth: &Authorization, secret: &str) -> Result<(), SigV4Error> {
    for needed in ["host", "x-amz-date", "x-amz-content-sha256"] {
        if !auth.signed_headers.iter().any(|h| h == needed) {
            return Err(SigV4Error::Unsigned(needed));
        }
    }
    let amz_date = header(req, "x-amz-date").ok_or(SigV4Error::BadDate)?;
    if amz_date_seconds(amz_date).is_none() || !amz_date.starts_with(&auth.scope.date) {
        return Err(SigV4Error::BadDate);
    }
    let canonical = canonical_request(req, &auth.signed_headers)?;
    let to_sign = string_to_sign(amz_date, &auth.scope, &canonical);
    hmac::verify(
        &signing_key(secret, &auth.scope),
        to_sign.as_bytes(),
        &auth.signature,
    )
    .map_err(|_| SigV4Error::Mismatch)
}

/// The first value of a header, by case-insensitive name.
pub fn header<'a>(req: &Request<'a>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Seconds since the Unix epoch of an `x-amz-date` (`YYYYMMDDTHHMMSSZ`), or None if malformed.
pub fn amz_date_seconds(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// The `x-amz-date` of a Unix time.
pub fn amz_date(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

// Howard Hinnant's days-from-civil algorithms (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a body, as `x-amz-content-sha256` carries it.
pub fn payload_sha256(body: &[u8]) -> String {
    to_hex(digest::digest(&digest::SHA256, body).as_ref())
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
