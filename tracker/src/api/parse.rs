//! What the object API reads from a request line and its headers: pure functions, so every
//! malformed input has a unit test and a clear message, and none can panic.

use std::ops::Range;

/// Longest `Range` header value considered; real clients send a few dozen bytes.
const MAX_RANGE_LEN: usize = 256;

/// Most objects a listing page may ask for.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// What a request path names, with bucket and key percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/`: the bucket list.
    Root,
    /// `/<bucket>` (or `/<bucket>/`).
    Bucket(String),
    /// `/<bucket>/<key...>`: the key may itself contain `/`.
    Object(String, String),
}

impl Target {
    /// The bucket the target is in, if any.
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Target::Root => None,
            Target::Bucket(b) | Target::Object(b, _) => Some(b),
        }
    }
}

/// Splits a request path into bucket and key. The split happens before decoding, so an encoded
/// `%2F` inside a bucket segment cannot move the boundary.
pub fn target(path: &str) -> Result<Target, String> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        return Ok(Target::Root);
    }
    let (bucket, key) = match rest.split_once('/') {
        Some((b, k)) => (b, k),
        None => (rest, ""),
    };
    let bucket = percent_decode(bucket, false).map_err(|e| format!("bucket name: {e}"))?;
    if key.is_empty() {
        return Ok(Target::Bucket(bucket));
    }
    let key = percent_decode(key, false).map_err(|e| format!("object key: {e}"))?;
    Ok(Target::Object(bucket, key))
}

/// `s` with every byte but ASCII letters, digits and the bytes of `keep` percent-encoded
/// (`%XX`, upper-case hex): `b"-._~"` makes one path segment, `b"-._~/"` a path.
pub fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in query strings); the
/// result must be UTF-8.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let pair = bytes
                    .get(i + 1)
                    .copied()
                    .and_then(hex)
                    .zip(bytes.get(i + 2).copied().and_then(hex));
                let Some((hi, lo)) = pair else {
                    return Err(format!(
                        "bad percent-encoding at byte {i}: '%' must be followed by two hex digits"
                    ));
                };
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoding does not decode to UTF-8".to_owned())
}

/// How a GET answers a `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable single range: send the whole object with 200. This is also the answer to a
    /// request for several ranges (`bytes=0-9,20-29`), as RFC 9110 allows a server to ignore
    /// `Range` and as S3 does; multipart/byteranges responses are not produced.
    Whole,
    /// Send bytes `start..end` with 206.
    Part(Range<u64>),
    /// No byte of the range lies within the object: 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Interprets a `Range` header value against an object of `size` bytes. Forms: `bytes=a-b`,
/// `bytes=a-`, `bytes=-n` (the last `n` bytes). A value that is not one of these is an error
/// (the API answers 400 rather than silently sending the whole object).
pub fn range(value: &str, size: u64) -> Result<RangeAnswer, String> {
    const FORMS: &str = "expected bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX";
    if value.len() > MAX_RANGE_LEN {
        return Err(format!("Range header longer than {MAX_RANGE_LEN} bytes"));
    }
    let value = value.trim();
    let spec = match value.split_once('=') {
        Some((unit, spec)) if unit.trim().eq_ignore_ascii_case("bytes") => spec,
        Some((unit, _)) => return Err(format!("unsupported range unit {:?}", unit.trim())),
        None => return Err(format!("malformed Range {value:?}: {FORMS}")),
    };
    let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
    let mut answers = Vec::with_capacity(parts.len());
    for part in &parts {
        answers.push(one_range(part, size).map_err(|e| format!("Range {value:?}: {e}; {FORMS}"))?);
    }
    match answers.as_slice() {
        [one] => Ok(one.clone()),
        many if many.iter().all(|a| *a == RangeAnswer::Unsatisfiable) => {
            Ok(RangeAnswer::Unsatisfiable)
        }
        _ => Ok(RangeAnswer::Whole),
    }
}

fn one_range(spec: &str, size: u64) -> Result<RangeAnswer, String> {
    let Some((first, last)) = spec.split_once('-') else {
        return Err(format!("{spec:?} has no '-'"));
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        (true, true) => Err("a range needs at least one number".to_owned()),
        (true, false) => {
            let n = number(last)?;
            if n == 0 || size == 0 {
                return Ok(RangeAnswer::Unsatisfiable);
            }
            Ok(RangeAnswer::Part(size - n.min(size)..size))
        }
        (false, true) => {
            let a = number(first)?;
            if a >= size {
                return Ok(RangeAnswer::Unsatisfiable);
            }
            Ok(RangeAnswer::Part(a..size))
        }
        (false, false) => {
            let (a, b) = (number(first)?, number(last)?);
            if b < a {
                return Err(format!("last byte {b} is before first byte {a}"));
            }
            if a >= size {
                return Ok(RangeAnswer::Unsatisfiable);
            }
            Ok(RangeAnswer::Part(a..b.saturating_add(1).min(size)))
        }
    }
}

fn number(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a byte position"));
    }
    s.parse()
        .map_err(|_| format!("byte position {s} is too large"))
}

/// The query of a bucket listing: `prefix`, `after` (the `next_after` of the previous page) and
/// `limit` (1 to 1000, default 1000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: String,
    pub after: Option<String>,
    pub limit: u32,
}

pub fn list_query(raw: &str) -> Result<ListQuery, String> {
    let mut q = ListQuery {
        prefix: String::new(),
        after: None,
        limit: MAX_LIST_LIMIT,
    };
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name, true).map_err(|e| format!("query: {e}"))?;
        let value = percent_decode(value, true).map_err(|e| format!("query {name}: {e}"))?;
        match name.as_str() {
            "prefix" => q.prefix = value,
            "after" => q.after = Some(value).filter(|v| !v.is_empty()),
            "limit" => {
                q.limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_LIST_LIMIT).contains(l))
                    .ok_or_else(|| {
                        format!(
                            "limit must be an integer from 1 to {MAX_LIST_LIMIT}, not {value:?}"
                        )
                    })?
            }
            other => {
                return Err(format!(
                    "unknown query parameter {other:?}; a listing takes prefix, after and limit"
                ))
            }
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAnswer::*;

    #[test]
    fn paths_split_before_decoding() {
        assert_eq!(target("/"), Ok(Target::Root));
        assert_eq!(target("/b1"), Ok(Target::Bucket("b1".into())));
        assert_eq!(target("/b1/"), Ok(Target::Bucket("b1".into())));
        assert_eq!(
            target("/b1/a/b%20c%2Fd+e"),
            Ok(Target::Object("b1".into(), "a/b c/d+e".into()))
        );
        assert_eq!(target("/b%2F1"), Ok(Target::Bucket("b/1".into())));
        assert_eq!(
            target("/b1/caf%C3%A9"),
            Ok(Target::Object("b1".into(), "café".into()))
        );
        for bad in ["/b1/%", "/b1/%4", "/b1/%zz", "/b1/%ff", "/%g0/k"] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges() {
        let r = |v: &str| range(v, 1000);
        assert_eq!(r("bytes=0-0"), Ok(Part(0..1)));
        assert_eq!(r("bytes=7-332"), Ok(Part(7..333)));
        assert_eq!(r("bytes=999-999"), Ok(Part(999..1000)));
        assert_eq!(r("bytes=990-5000"), Ok(Part(990..1000)));
        assert_eq!(r("bytes=13-"), Ok(Part(13..1000)));
        assert_eq!(r("bytes=-1"), Ok(Part(999..1000)));
        assert_eq!(r("bytes=-5000"), Ok(Part(0..1000)));
        assert_eq!(r("Bytes = 1 - 2"), Ok(Part(1..3)));
        assert_eq!(r("bytes=0-18446744073709551615"), Ok(Part(0..1000)));
        assert_eq!(r("bytes=1000-"), Ok(Unsatisfiable));
        assert_eq!(r("bytes=1000-1001"), Ok(Unsatisfiable));
        assert_eq!(r("bytes=-0"), Ok(Unsatisfiable));
        assert_eq!(range("bytes=0-0", 0), Ok(Unsatisfiable));
        assert_eq!(range("bytes=-3", 0), Ok(Unsatisfiable));
        assert_eq!(r("bytes=0-1,5-6"), Ok(Whole));
        assert_eq!(r("bytes=2000-,3000-"), Ok(Unsatisfiable));
        for bad in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=5-4",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0-1,x",
            "items=0-1",
            "bytes=99999999999999999999-",
        ] {
            assert!(r(bad).is_err(), "{bad:?}");
        }
        assert!(r(&format!("bytes=0-{}", "9".repeat(300))).is_err());
    }

    #[test]
    fn list_queries() {
        let q = list_query("").unwrap();
        assert_eq!((q.prefix.as_str(), q.after, q.limit), ("", None, 1000));
        let q = list_query("prefix=photos%2F2026+x&after=&limit=2").unwrap();
        assert_eq!(
            (q.prefix.as_str(), q.after, q.limit),
            ("photos/2026 x", None, 2)
        );
        assert_eq!(
            list_query("after=k%C3%A9").unwrap().after.as_deref(),
            Some("ké")
        );
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=x",
            "limit=",
            "perfix=a",
            "prefix=%",
        ] {
            assert!(list_query(bad).is_err(), "{bad}");
        }
    }
}
