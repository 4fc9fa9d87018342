//! Listings as S3 gives them: keys under a prefix, those with the delimiter after the prefix
//! rolled up into common prefixes, a page at a time. [`Lister`] is the pure part: it takes keys
//! in order and decides what the page holds and where the next one starts; [`page_with`] drives
//! it over any ordered source. Objects and multipart uploads are both listed this way.

use std::future::Future;

use crate::gateway::{Gateway, GatewayError, ObjectInfo, Upload};

/// Largest page S3 gives.
pub const MAX_KEYS: usize = 1000;

/// Something listed under a key, in key order: an object, or a multipart upload (several may
/// share a key, ordered by id).
pub trait Listed {
    /// Where a listing resumes after an entry, as its source takes it.
    type Cursor;
    fn key(&self) -> &str;
    /// The cursor just after this entry.
    fn cursor(&self) -> Self::Cursor;
    /// The cursor after every entry whose key is at most `key`.
    fn after_key(key: String) -> Self::Cursor;
}

impl Listed for ObjectInfo {
    type Cursor = String;
    fn key(&self) -> &str {
        &self.key
    }
    fn cursor(&self) -> String {
        self.key.clone()
    }
    fn after_key(key: String) -> String {
        key
    }
}

/// Uploads resume after a key and an upload id (empty: after every upload of the key).
impl Listed for Upload {
    type Cursor = (String, String);
    fn key(&self) -> &str {
        &self.key
    }
    fn cursor(&self) -> (String, String) {
        (self.key.clone(), self.upload_id.clone())
    }
    fn after_key(key: String) -> (String, String) {
        (key, String::new())
    }
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page<T = ObjectInfo> {
    pub objects: Vec<T>,
    pub prefixes: Vec<String>,
    /// Where the next page starts (the last key or common prefix of this one), when there is
    /// more.
    pub next: Option<String>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Page {
            objects: Vec::new(),
            prefixes: Vec::new(),
            next: None,
        }
    }
}

/// How a listing's answer carries keys and prefixes: as they are, or URL-encoded
/// (`encoding-type=url`, which boto3 and aws-cli ask for on every listing and then decode, so a
/// key with `+`, `%` or characters XML cannot carry comes back as it was stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEncoding {
    Plain,
    Url,
}

impl KeyEncoding {
    /// The encoding a request asks for; `None` for one S3 does not define.
    pub fn of(requested: Option<&str>) -> Option<Self> {
        match requested {
            None => Some(KeyEncoding::Plain),
            Some(e) if e.eq_ignore_ascii_case("url") => Some(KeyEncoding::Url),
            Some(_) => None,
        }
    }

    /// `s` as the answer carries it: URL-encoded, every byte but RFC 3986's unreserved
    /// characters and `/` percent-encoded.
    pub fn apply(self, s: &str) -> String {
        match self {
            KeyEncoding::Plain => s.to_owned(),
            KeyEncoding::Url => crate::api::parse::percent_encode(s, b"-._~/"),
        }
    }

    /// The `EncodingType` the answer names.
    pub fn name(self) -> Option<&'static str> {
        match self {
            KeyEncoding::Plain => None,
            KeyEncoding::Url => Some("url"),
        }
    }
}

/// Builds a page from keys given in ascending order.
#[derive(Debug)]
pub struct Lister<'a, T = ObjectInfo> {
    prefix: &'a str,
    delimiter: &'a str,
    max: usize,
    /// The common prefix given last (or the one the page starts after), whose other keys are
    /// skipped.
    last_prefix: Option<String>,
    last: Option<String>,
    page: Page<T>,
}

impl<'a, T: Listed> Lister<'a, T> {
    /// A page of at most `max` entries after `after` (a key or a common prefix).
    pub fn new(prefix: &'a str, delimiter: &'a str, after: &str, max: usize) -> Self {
        let resumes_prefix = common_prefix(prefix, delimiter, after) == Some(after);
        Lister {
            prefix,
            delimiter,
            max,
            last_prefix: resumes_prefix.then(|| after.to_owned()),
            last: None,
            page: Page::default(),
        }
    }

    /// Takes the next object; false once the page is full and the listing goes on past it.
    pub fn push(&mut self, object: T) -> bool {
        let entry = match common_prefix(self.prefix, self.delimiter, object.key()) {
            Some(cp) if self.last_prefix.as_deref() == Some(cp) => return true,
            Some(cp) => Entry::Prefix(cp.to_owned()),
            None => Entry::Object(Box::new(object)),
        };
        if self.page.objects.len() + self.page.prefixes.len() >= self.max {
            self.page.next = self.last.clone();
            return false;
        }
        match entry {
            Entry::Prefix(cp) => {
                self.last = Some(cp.clone());
                self.last_prefix = Some(cp.clone());
                self.page.prefixes.push(cp);
            }
            Entry::Object(o) => {
                self.last = Some(o.key().to_owned());
                self.page.objects.push(*o);
            }
        }
        true
    }

    pub fn finish(self) -> Page<T> {
        self.page
    }
}

enum Entry<T> {
    Prefix(String),
    Object(Box<T>),
}

/// The common prefix `key` rolls up into: the prefix and the rest of the key up to and with the
/// first delimiter after it.
pub fn common_prefix<'k>(prefix: &str, delimiter: &str, key: &'k str) -> Option<&'k str> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(&key[..prefix.len() + at + delimiter.len()])
}

/// Where a listing goes on after `key` once its common prefix is given: past every key that
/// starts with it (U+10FFFF sorts after any other character), if that is beyond `key`.
fn past_prefix(prefix: &str, delimiter: &str, key: &str) -> Option<String> {
    let past = format!("{}\u{10FFFF}", common_prefix(prefix, delimiter, key)?);
    (past.as_str() > key).then_some(past)
}

/// Lists a page of `bucket`: keys starting with `prefix`, after `after`, rolled up at
/// `delimiter` (empty: none).
pub async fn page(
    gateway: &Gateway,
    bucket: &str,
    prefix: &str,
    delimiter: &str,
    after: &str,
    max: usize,
) -> Result<Page, GatewayError> {
    if max == 0 {
        gateway.list(bucket, prefix, None, 1).await?;
        return Ok(Page::default());
    }
    let keys = Keys { prefix, delimiter };
    keys.page(after.to_owned(), after, max, |from: String| async move {
        let listing = gateway
            .list(bucket, prefix, Some(&from), MAX_KEYS as u32)
            .await?;
        Ok((listing.objects, listing.next_after.is_some()))
    })
    .await
}

/// Lists a page of the multipart uploads in progress in `bucket`, as [`page`] lists objects:
/// after `after` (a key, or a key and an upload id).
pub async fn uploads_page(
    gateway: &Gateway,
    bucket: &str,
    keys: Keys<'_>,
    after: (String, String),
    max: usize,
) -> Result<Page<Upload>, GatewayError> {
    let after_key = after.0.clone();
    keys.page(
        after,
        &after_key,
        max,
        |(key, id): (String, String)| async move {
            let limit = MAX_KEYS as u32;
            let uploads = gateway
                .uploads(bucket, keys.prefix, (&key, &id), limit)
                .await?;
            let more = uploads.len() == MAX_KEYS;
            Ok((uploads, more))
        },
    )
    .await
}

/// Which keys a listing gives: those starting with `prefix`, rolled up at `delimiter` (empty:
/// none).
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    pub prefix: &'a str,
    pub delimiter: &'a str,
}

impl Keys<'_> {
    /// A page of at most `max` entries starting at `from` (which is after the key or common
    /// prefix `after`), taken from `fetch`: entries in order from a cursor on, and whether
    /// there are more after them.
    pub async fn page<T, F, Fut>(
        self,
        mut from: T::Cursor,
        after: &str,
        max: usize,
        mut fetch: F,
    ) -> Result<Page<T>, GatewayError>
    where
        T: Listed,
        F: FnMut(T::Cursor) -> Fut,
        Fut: Future<Output = Result<(Vec<T>, bool), GatewayError>>,
    {
        let (prefix, delimiter) = (self.prefix, self.delimiter);
        let mut lister = Lister::new(prefix, delimiter, after, max.min(MAX_KEYS));
        loop {
            let (entries, more) = fetch(from).await?;
            // Where to go on from if this batch does not fill the page.
            let mut next = None;
            let mut jumped = false;
            for entry in entries {
                let past = past_prefix(prefix, delimiter, entry.key());
                next = Some(entry.cursor());
                if !lister.push(entry) {
                    return Ok(lister.finish());
                }
                // Every other key under this common prefix rolls into it too: go past them
                // all in one step rather than reading them.
                if let Some(past) = past {
                    next = Some(T::after_key(past));
                    jumped = true;
                    break;
                }
            }
            match next {
                Some(n) if jumped || more => from = n,
                _ => return Ok(lister.finish()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::model::Storage;
    use proptest::prelude::*;

    fn info(key: &str) -> ObjectInfo {
        ObjectInfo {
            bucket: "b".into(),
            key: key.into(),
            size: 0,
            sha256: String::new(),
            created_at: 0,
            inline: true,
            storage: Storage::Inline,
            attrs: Default::default(),
        }
    }

    /// Lists `keys` (sorted) page by page as a client would; every entry of every page.
    fn all_pages(keys: &[String], prefix: &str, delimiter: &str, max: usize) -> Vec<String> {
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let mut lister = Lister::new(prefix, delimiter, &after, max);
            for k in keys.iter().filter(|k| k.starts_with(prefix) && **k > after) {
                if !lister.push(info(k)) {
                    break;
                }
            }
            let page = lister.finish();
            let mut entries: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
            entries.extend(page.prefixes.iter().cloned());
            entries.sort();
            assert!(entries.len() <= max);
            seen.extend(entries);
            match page.next {
                Some(next) => after = next,
                None => return seen,
            }
        }
    }

    #[test]
    fn a_listing_goes_past_a_rolled_up_prefix_in_one_step() {
        assert_eq!(past_prefix("", "/", "a/b").as_deref(), Some("a/\u{10FFFF}"));
        assert_eq!(past_prefix("", "/", "ab"), None);
        // A key already past that point is never jumped back to.
        assert_eq!(past_prefix("", "/", "a/\u{10FFFF}x"), None);
    }

    #[test]
    fn keys_with_the_delimiter_roll_up_into_common_prefixes() {
        assert_eq!(common_prefix("", "/", "a/b/c"), Some("a/"));
        assert_eq!(common_prefix("a/", "/", "a/b/c"), Some("a/b/"));
        assert_eq!(common_prefix("a/", "/", "a/c"), None);
        assert_eq!(common_prefix("", "", "a/c"), None);
        let keys: Vec<String> = ["a/1", "a/2", "b", "c/x/y", "d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(all_pages(&keys, "", "/", 1000), ["a/", "b", "c/", "d"]);
        assert_eq!(all_pages(&keys, "", "/", 1), ["a/", "b", "c/", "d"]);
        assert_eq!(all_pages(&keys, "c/", "/", 2), ["c/x/"]);
    }

    fn upload(key: &str, id: &str) -> Upload {
        Upload {
            upload_id: id.into(),
            bucket: "b".into(),
            key: key.into(),
            attrs: Default::default(),
            checksum_algorithm: None,
            checksum_type: None,
            created_at: 0,
        }
    }

    /// One page of `uploads` (sorted by key and id) as [`uploads_page`] lists them, from a
    /// source giving two at a time; the page's entries (uploads as `key#id`) and the cursors
    /// it was asked for.
    fn uploads_of(
        uploads: &[Upload],
        keys: Keys<'_>,
        after: (&str, &str),
        max: usize,
    ) -> (Vec<String>, Option<String>, Vec<(String, String)>) {
        let asked = std::cell::RefCell::new(Vec::new());
        let fetch = |(key, id): (String, String)| {
            asked.borrow_mut().push((key.clone(), id.clone()));
            let batch: Vec<Upload> = uploads
                .iter()
                .filter(|u| u.key.starts_with(keys.prefix))
                .filter(|u| u.key > key || (u.key == key && !id.is_empty() && u.upload_id > id))
                .take(2)
                .cloned()
                .collect();
            let more = batch.len() == 2;
            async move { Ok((batch, more)) }
        };
        let start = (after.0.to_owned(), after.1.to_owned());
        let page = futures_util::FutureExt::now_or_never(keys.page(start, after.0, max, fetch))
            .expect("a source without I/O is ready at once")
            .unwrap();
        let mut entries: Vec<String> = page
            .objects
            .iter()
            .map(|u| format!("{}#{}", u.key, u.upload_id))
            .collect();
        entries.extend(page.prefixes.iter().cloned());
        entries.sort();
        (entries, page.next, asked.into_inner())
    }

    #[test]
    fn uploads_roll_up_into_common_prefixes_as_objects_do() {
        let uploads = [
            upload("a/1", "x"),
            upload("a/1", "y"),
            upload("a/2", "z"),
            upload("b", "p"),
            upload("b", "q"),
            upload("c/d/e", "r"),
        ];
        let slash = Keys {
            prefix: "",
            delimiter: "/",
        };
        let (all, next, asked) = uploads_of(&uploads, slash, ("", ""), 1000);
        assert_eq!(all, ["a/", "b#p", "b#q", "c/"]);
        assert_eq!(next, None);
        // Past "a/" in one step: the uploads under it are never read one by one.
        assert_eq!(asked[1], ("a/\u{10FFFF}".to_owned(), String::new()));
        // Two at a time: a page ends after an upload (resume after its id) or a prefix.
        let (first, next, _) = uploads_of(&uploads, slash, ("", ""), 2);
        assert_eq!(
            (first, next.as_deref()),
            (vec!["a/".into(), "b#p".into()], Some("b"))
        );
        let (second, next, _) = uploads_of(&uploads, slash, ("b", "p"), 2);
        assert_eq!((second, next), (vec!["b#q".into(), "c/".into()], None));
        let (after_prefix, _, _) = uploads_of(&uploads, slash, ("a/", ""), 1000);
        assert_eq!(after_prefix, ["b#p", "b#q", "c/"]);
        // Under a prefix, and without a delimiter every upload is listed.
        let under = Keys {
            prefix: "c/",
            delimiter: "/",
        };
        assert_eq!(uploads_of(&uploads, under, ("", ""), 1000).0, ["c/d/"]);
        let flat = Keys {
            prefix: "",
            delimiter: "",
        };
        assert_eq!(uploads_of(&uploads, flat, ("", ""), 1000).0.len(), 6);
    }

    proptest! {
        #[test]
        fn paging_gives_every_entry_once_whatever_the_page_size(
            mut keys in proptest::collection::vec("[ab/]{1,5}", 0..40),
            max in 1usize..6,
            delimited in any::<bool>(),
        ) {
            keys.sort();
            keys.dedup();
            let delimiter = if delimited { "/" } else { "" };
            let whole = all_pages(&keys, "", delimiter, 10_000);
            prop_assert_eq!(all_pages(&keys, "", delimiter, max), whole.clone());
            let mut want: Vec<String> = keys
                .iter()
                .map(|k| common_prefix("", delimiter, k).unwrap_or(k).to_owned())
                .collect();
            want.dedup();
            prop_assert_eq!(whole, want);
        }
    }
}
