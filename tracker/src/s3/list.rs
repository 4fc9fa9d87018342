//! Listings as S3 gives them: keys under a prefix, those with the delimiter after the prefix
//! rolled up into common prefixes, a page at a time. [`Lister`] is the pure part: it takes keys
//! in order and decides what the page holds and where the next one starts.

use crate::gateway::{Gateway, GatewayError, ObjectInfo};

/// Largest page S3 gives.
pub const MAX_KEYS: usize = 1000;

/// One page of a listing.
#[derive(Debug, Default)]
pub struct Page {
    pub objects: Vec<ObjectInfo>,
    pub prefixes: Vec<String>,
    /// Where the next page starts (the last key or common prefix of this one), when there is
    /// more.
    pub next: Option<String>,
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
pub struct Lister<'a> {
    prefix: &'a str,
    delimiter: &'a str,
    max: usize,
    /// The common prefix given last (or the one the page starts after), whose other keys are
    /// skipped.
    last_prefix: Option<String>,
    last: Option<String>,
    page: Page,
}

impl<'a> Lister<'a> {
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
    pub fn push(&mut self, object: ObjectInfo) -> bool {
        let entry = match common_prefix(self.prefix, self.delimiter, &object.key) {
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
                self.last = Some(o.key.clone());
                self.page.objects.push(*o);
            }
        }
        true
    }

    pub fn finish(self) -> Page {
        self.page
    }
}

enum Entry {
    Prefix(String),
    Object(Box<ObjectInfo>),
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
    let mut lister = Lister::new(prefix, delimiter, after, max.min(MAX_KEYS));
    let mut from = after.to_owned();
    if max == 0 {
        gateway.list(bucket, prefix, None, 1).await?;
        return Ok(lister.finish());
    }
    loop {
        let listing = gateway
            .list(bucket, prefix, Some(&from), MAX_KEYS as u32)
            .await?;
        let mut jumped = false;
        for object in listing.objects {
            let past = past_prefix(prefix, delimiter, &object.key);
            from.clone_from(&object.key);
            if !lister.push(object) {
                return Ok(lister.finish());
            }
            // Every other key under this common prefix rolls into it too: go past them all in
            // one step rather than reading them.
            if let Some(past) = past {
                from = past;
                jumped = true;
                break;
            }
        }
        if !jumped && listing.next_after.is_none() {
            return Ok(lister.finish());
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
