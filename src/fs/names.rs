//! Turning names from the API into safe, unique, stable path components.
//!
//! A name from the API is never trusted as a path component: it may be empty,
//! `.` or `..`, contain `/` or NUL, or be longer than NAME_MAX. [`safe_name`]
//! fixes each of those. Two objects whose safe names collide are both shown as
//! `<name>~<first 8 of guid>`, but a name once handed out stays with its object
//! while that object exists: an object that arrives later with a colliding name
//! takes the suffix instead. [`NameTable`] keeps those promises across
//! listings; it is pure data, so it is tested without a mount.

use crate::api::models::{CrawlrunFile, ReportRunFile};
use crate::api::FileRef;
use std::collections::{HashMap, HashSet};

/// The name a result file has in the mount (`data.csv`, `files.zip`, ...).
/// The API names files by kind (`csv`, `files`); these names are the
/// mount's, chosen so that tools recognise the format by its extension.
pub trait FileName {
    fn file_name(&self) -> &'static str;
}

impl FileName for CrawlrunFile {
    fn file_name(&self) -> &'static str {
        match self {
            CrawlrunFile::Csv => "data.csv",
            CrawlrunFile::Xlsx => "data.xlsx",
            CrawlrunFile::Log => "log.txt",
            CrawlrunFile::Sample => "sample.json",
            CrawlrunFile::Json => "data.json",
            CrawlrunFile::Files => "files.zip",
        }
    }
}

impl FileName for ReportRunFile {
    fn file_name(&self) -> &'static str {
        match self {
            ReportRunFile::Csv => "data.csv",
            ReportRunFile::Xlsx => "data.xlsx",
            ReportRunFile::Json => "data.json",
        }
    }
}

impl FileName for FileRef {
    fn file_name(&self) -> &'static str {
        match self {
            FileRef::Crawlrun(_, f) => f.file_name(),
            FileRef::ReportRun(_, f) => f.file_name(),
        }
    }
}

/// Longest path component Linux accepts (NAME_MAX), in bytes.
pub const NAME_MAX: usize = 255;

/// What an unusable name (empty, `.`, `..`) is shown as, before any suffix.
const EMPTY_NAME: &str = "_";

/// Make an API name usable as one path component.
///
/// `/` becomes `∕` (U+2215), NUL is dropped, names that are empty, `.` or `..`
/// get a `_` in front, and the result is cut at a character boundary to fit in
/// [`NAME_MAX`] bytes. Other characters, newlines included, are legal in Linux
/// file names and are kept as the API wrote them.
pub fn safe_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .filter(|&c| c != '\0')
        .map(|c| match c {
            '/' => '\u{2215}',
            c => c,
        })
        .collect();
    if s.is_empty() {
        s = EMPTY_NAME.to_owned();
    } else if s == "." || s == ".." {
        s.insert(0, '_');
    }
    truncate_at_char(&s, NAME_MAX).to_owned()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `<base>~<first 8 of guid>`, cut so that the whole stays within NAME_MAX.
fn suffixed(base: &str, guid: &str) -> String {
    let tag: String = guid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(8)
        .collect();
    let tag = if tag.is_empty() { "x".to_owned() } else { tag };
    let room = NAME_MAX - 1 - tag.len();
    format!("{}~{}", truncate_at_char(base, room), tag)
}

/// `<base>~<whole guid>`, the last resort when even the short suffix collides.
fn long_suffixed(base: &str, guid: &str) -> String {
    let tag: String = guid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let room = NAME_MAX.saturating_sub(1 + tag.len()).max(1);
    truncate_at_char(
        &format!("{}~{}", truncate_at_char(base, room), tag),
        NAME_MAX,
    )
    .to_owned()
}

#[derive(Debug, Clone)]
struct Held {
    name: String,
    /// The safe form of the API name this path name was made from, so a remote
    /// rename is noticed.
    base: String,
}

/// The names given out in one directory (`extractors/` or `reports/`).
#[derive(Debug, Default)]
pub struct NameTable {
    by_guid: HashMap<String, Held>,
    by_name: HashMap<String, String>,
}

impl NameTable {
    /// Bring the table up to date with a complete listing of `(guid, api name)`.
    ///
    /// Objects no longer listed release their names; objects whose safe name is
    /// unchanged keep the name they hold; new or renamed objects get their plain
    /// safe name when no other listed object shares it and nobody holds it, or
    /// the suffixed form otherwise.
    pub fn update<'a>(&mut self, listing: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let listing: Vec<(&str, String)> = listing
            .into_iter()
            .map(|(guid, name)| (guid, safe_name(name)))
            .collect();
        let present: HashSet<&str> = listing.iter().map(|(g, _)| *g).collect();

        // Release names of objects that are gone, and of renamed objects.
        let stale: Vec<String> = self
            .by_guid
            .iter()
            .filter(|(guid, held)| {
                !present.contains(guid.as_str())
                    || listing
                        .iter()
                        .any(|(g, base)| *g == guid.as_str() && *base != held.base)
            })
            .map(|(g, _)| g.clone())
            .collect();
        for guid in stale {
            if let Some(held) = self.by_guid.remove(&guid) {
                self.by_name.remove(&held.name);
            }
        }

        let mut base_count: HashMap<&str, usize> = HashMap::new();
        for (_, base) in &listing {
            *base_count.entry(base.as_str()).or_default() += 1;
        }
        // Deterministic order, so two mounts of one account agree on names.
        let mut newcomers: Vec<&(&str, String)> = listing
            .iter()
            .filter(|(g, _)| !self.by_guid.contains_key(*g))
            .collect();
        newcomers.sort();
        newcomers.dedup_by(|a, b| a.0 == b.0);
        for (guid, base) in newcomers {
            let name = self.free_name(base, guid, base_count[base.as_str()] == 1);
            self.by_name.insert(name.clone(), (*guid).to_owned());
            self.by_guid.insert(
                (*guid).to_owned(),
                Held {
                    name,
                    base: base.clone(),
                },
            );
        }
    }

    /// Give a name to one object found outside a listing (a lookup by guid),
    /// without releasing anybody else's.
    pub fn add_one(&mut self, guid: &str, api_name: &str) -> String {
        if let Some(held) = self.by_guid.get(guid) {
            return held.name.clone();
        }
        let base = safe_name(api_name);
        let name = self.free_name(&base, guid, true);
        self.by_name.insert(name.clone(), guid.to_owned());
        self.by_guid.insert(
            guid.to_owned(),
            Held {
                name: name.clone(),
                base,
            },
        );
        name
    }

    /// The first name nobody holds among: `base` itself (when `plain_ok`),
    /// `<base>~<first 8 of guid>`, `<base>~<guid>`, and then that last form
    /// numbered `~2`, `~3`, ... A hostile account can hold any of the
    /// earlier forms as plain names (an extractor named `Shop~1a2b3c4d`), so
    /// no form is assumed free: two objects must never share a name.
    fn free_name(&self, base: &str, guid: &str, plain_ok: bool) -> String {
        if plain_ok && !self.by_name.contains_key(base) {
            return base.to_owned();
        }
        let short = suffixed(base, guid);
        if !self.by_name.contains_key(&short) {
            return short;
        }
        let long = long_suffixed(base, guid);
        if !self.by_name.contains_key(&long) {
            return long;
        }
        let mut n: u64 = 2;
        loop {
            let tag = format!("~{n}");
            let numbered = format!(
                "{}{tag}",
                truncate_at_char(&long, NAME_MAX.saturating_sub(tag.len()))
            );
            if !self.by_name.contains_key(&numbered) {
                return numbered;
            }
            n += 1;
        }
    }

    pub fn guid_of(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).map(String::as_str)
    }

    pub fn name_of(&self, guid: &str) -> Option<&str> {
        self.by_guid.get(guid).map(|h| h.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_safe_components() {
        assert_eq!(safe_name(""), "_");
        assert_eq!(safe_name("."), "_.");
        assert_eq!(safe_name(".."), "_..");
        assert_eq!(safe_name("a/b"), "a\u{2215}b");
        assert_eq!(safe_name("a\0b"), "ab");
        assert_eq!(safe_name("line\nbreak"), "line\nbreak");
        assert_eq!(safe_name(".hidden"), ".hidden");
        let long = "é".repeat(200);
        let s = safe_name(&long);
        assert!(s.len() <= NAME_MAX && s.len() >= NAME_MAX - 1);
        assert!(long.starts_with(&s));
        for raw in ["", ".", "..", "a/b", "\0", "x".repeat(300).as_str()] {
            let s = safe_name(raw);
            assert!(
                !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0')
            );
            assert!(s.len() <= NAME_MAX);
        }
    }

    #[test]
    fn collisions_get_suffixes_and_names_stay_put() {
        let mut t = NameTable::default();
        t.update([
            ("aaaaaaaa-1", "Shop"),
            ("bbbbbbbb-2", "Shop"),
            ("cccccccc-3", "News"),
        ]);
        assert_eq!(t.name_of("aaaaaaaa-1"), Some("Shop~aaaaaaaa"));
        assert_eq!(t.name_of("bbbbbbbb-2"), Some("Shop~bbbbbbbb"));
        assert_eq!(t.name_of("cccccccc-3"), Some("News"));

        // A later arrival with a held name takes the suffix; the holder keeps it.
        t.update([("cccccccc-3", "News"), ("dddddddd-4", "News")]);
        assert_eq!(t.name_of("cccccccc-3"), Some("News"));
        assert_eq!(t.name_of("dddddddd-4"), Some("News~dddddddd"));
        assert_eq!(
            t.guid_of("Shop~aaaaaaaa"),
            None,
            "gone objects release names"
        );

        // A rename shows the new name.
        t.update([("cccccccc-3", "Daily News"), ("dddddddd-4", "News")]);
        assert_eq!(t.name_of("cccccccc-3"), Some("Daily News"));
        assert_eq!(t.name_of("dddddddd-4"), Some("News~dddddddd"));
    }

    #[test]
    fn suffixes_never_reuse_a_held_name() {
        // Guids that share their first 8 characters, and objects whose plain
        // names are exactly the suffixed forms the others would take.
        let a = "abcdef01-0000-4000-8000-000000000001";
        let b = "abcdef01-0000-4000-8000-000000000002";
        let long_a = format!("T~{a}");
        let listing = [
            (a, "T"),
            (b, "T"),
            ("00000000-0000-4000-8000-00000000000c", "T~abcdef01"),
            ("00000000-0000-4000-8000-00000000000d", long_a.as_str()),
        ];
        let mut t = NameTable::default();
        t.update(listing);
        let names: HashSet<&str> = listing
            .iter()
            .map(|(g, _)| t.name_of(g).expect("named"))
            .collect();
        assert_eq!(names.len(), listing.len(), "{names:?}");
        for (g, _) in listing {
            assert_eq!(t.guid_of(t.name_of(g).unwrap()), Some(g));
            assert!(t.name_of(g).unwrap().len() <= NAME_MAX);
        }

        // The same by lookups one at a time, and with 300-byte names.
        let mut t = NameTable::default();
        let long = "n".repeat(300);
        let holders = [
            ("c1", long.clone()),
            ("c2", suffixed(&safe_name(&long), a)),
            ("c3", long_suffixed(&safe_name(&long), a)),
            (
                "c4",
                format!("{}~2", &long_suffixed(&safe_name(&long), a)[..253]),
            ),
        ];
        let mut seen = HashSet::new();
        for (g, n) in &holders {
            assert!(seen.insert(t.add_one(g, n)));
        }
        let got = t.add_one(a, &long);
        assert!(seen.insert(got.clone()), "{got} was already held");
        assert!(got.len() <= NAME_MAX);
    }

    #[test]
    fn suffixed_long_names_fit() {
        let mut t = NameTable::default();
        let long = "n".repeat(300);
        t.update([("aaaaaaaa-1", long.as_str()), ("bbbbbbbb-2", long.as_str())]);
        let a = t.name_of("aaaaaaaa-1").unwrap();
        assert!(a.len() <= NAME_MAX && a.ends_with("~aaaaaaaa"));
        assert_ne!(a, t.name_of("bbbbbbbb-2").unwrap());
    }
}
