//! The metadata cache: an LRU whose entries carry their own expiry.
//!
//! Expiry is data (as in mountpoint-s3's `expiry.rs`): each entry knows when it
//! stops being fresh, and the kernel TTL handed back for it is the time it has
//! left, so the kernel never trusts a node longer than we do. Immutable things
//! (finished runs and their file sizes) are stored with no expiry and leave
//! only by eviction.
//!
//! The lock is a plain `std::sync::Mutex` held only for map operations, never
//! across an await or a network call. Concurrent misses on one key are merged
//! by [`KeyLocks`]: the first caller fetches, the others wait on the key's
//! async mutex and then find the fresh entry.
//!
//! [`Caches`] is the set of them one mount keeps, one per kind of object,
//! plus what is known to be missing and what just failed; `objects.rs`
//! fills and reads them.

use crate::api::models::{Crawlrun, Extractor, Inputs, Report, ReportRun, Subscription, User};
use crate::api::FileRef;
use lru::LruCache;
use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    At(Instant),
}

impl Expiry {
    pub fn after(ttl: Duration) -> Expiry {
        Instant::now()
            .checked_add(ttl)
            .map(Expiry::At)
            .unwrap_or(Expiry::Never)
    }

    pub fn is_fresh(self) -> bool {
        match self {
            Expiry::Never => true,
            Expiry::At(t) => Instant::now() < t,
        }
    }

    /// The time left, capped at `cap` (what the kernel is told to trust).
    pub fn remaining(self, cap: Duration) -> Duration {
        match self {
            Expiry::Never => cap,
            Expiry::At(t) => t.saturating_duration_since(Instant::now()).min(cap),
        }
    }
}

/// A bounded LRU of values that expire.
pub struct TtlCache<K: Hash + Eq, V: Clone> {
    inner: Mutex<LruCache<K, (V, Expiry)>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        TtlCache {
            inner: Mutex::new(LruCache::new(cap)),
        }
    }

    /// The value if present and fresh, with its expiry.
    pub fn get(&self, key: &K) -> Option<(V, Expiry)> {
        // An expired entry stays (until evicted) for `get_stale`.
        match lock(&self.inner).get(key) {
            Some((v, exp)) if exp.is_fresh() => Some((v.clone(), *exp)),
            _ => None,
        }
    }

    /// The value even if expired: a stale answer is better than none when the
    /// API is down.
    pub fn get_stale(&self, key: &K) -> Option<V> {
        lock(&self.inner).peek(key).map(|(v, _)| v.clone())
    }

    pub fn insert(&self, key: K, value: V, expiry: Expiry) {
        lock(&self.inner).put(key, (value, expiry));
    }

    pub fn remove(&self, key: &K) {
        lock(&self.inner).pop(key);
    }

    pub fn clear(&self) {
        lock(&self.inner).clear();
    }

    /// Forget every entry that is not immutable (`.importfs/refresh`).
    pub fn expire_all(&self) {
        let mut map = lock(&self.inner);
        for (_, (_, exp)) in map.iter_mut() {
            if *exp != Expiry::Never {
                *exp = Expiry::At(Instant::now());
            }
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-key async locks that merge concurrent fetches of one key.
pub struct KeyLocks<K: Hash + Eq + Clone> {
    locks: Mutex<HashMap<K, Weak<tokio::sync::Mutex<()>>>>,
}

impl<K: Hash + Eq + Clone> Default for KeyLocks<K> {
    fn default() -> Self {
        KeyLocks {
            locks: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> KeyLocks<K> {
    /// The lock for `key`; hold its guard while fetching and filling the cache.
    pub fn get(&self, key: &K) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = lock(&self.locks);
        if let Some(l) = map.get(key).and_then(Weak::upgrade) {
            return l;
        }
        // Drop entries nobody holds any more so the map stays small.
        if map.len() > 1024 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let l = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.clone(), Arc::downgrade(&l));
        l
    }
}

/// Lock a mutex, recovering the data if a panicking thread poisoned it: the
/// caches hold plain data that is valid after any partial update.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- the metadata caches of one mount ---------------------------------

/// What a metadata fetch is keyed on, for merging concurrent fetches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FetchKey {
    User,
    Subscription,
    Extractors,
    Extractor(Arc<str>),
    Inputs(Arc<str>),
    Crawlruns,
    RunsOf(Arc<str>),
    Crawlrun(Arc<str>),
    Reports,
    Report(Arc<str>),
    ReportRuns,
    RunsOfReport(Arc<str>),
    ReportRun(Arc<str>),
    Size(FileRef),
}

pub type List = Arc<Vec<Arc<str>>>;

pub struct Caches {
    pub user: TtlCache<(), Arc<User>>,
    pub subscription: TtlCache<(), Arc<Subscription>>,
    pub extractor_list: TtlCache<(), List>,
    pub extractors: TtlCache<Arc<str>, Arc<Extractor>>,
    pub inputs: TtlCache<Arc<str>, Arc<Inputs>>,
    pub crawlrun_list: TtlCache<(), List>,
    pub runs_of: TtlCache<Arc<str>, List>,
    pub crawlruns: TtlCache<Arc<str>, Arc<Crawlrun>>,
    pub report_list: TtlCache<(), List>,
    pub reports: TtlCache<Arc<str>, Arc<Report>>,
    pub reportrun_list: TtlCache<(), List>,
    pub runs_of_report: TtlCache<Arc<str>, List>,
    pub reportruns: TtlCache<Arc<str>, Arc<ReportRun>>,
    pub sizes: TtlCache<FileRef, Option<u64>>,
    /// Ids known not to exist, so repeated probes of a missing name cost nothing.
    pub missing: TtlCache<FetchKey, ()>,
    /// When a fetch of a key last failed for a transient reason (EIO), so
    /// that callers who queued behind that fetch share its outcome instead of
    /// each waiting out another deadline.
    pub failed: TtlCache<FetchKey, std::time::Instant>,
}

impl Default for Caches {
    fn default() -> Caches {
        // Sized for accounts of tens of thousands of runs; entries are small.
        const OBJECTS: usize = 50_000;
        Caches {
            user: TtlCache::new(1),
            subscription: TtlCache::new(1),
            extractor_list: TtlCache::new(1),
            extractors: TtlCache::new(OBJECTS),
            inputs: TtlCache::new(4096),
            crawlrun_list: TtlCache::new(1),
            runs_of: TtlCache::new(4096),
            crawlruns: TtlCache::new(OBJECTS),
            report_list: TtlCache::new(1),
            reports: TtlCache::new(4096),
            reportrun_list: TtlCache::new(1),
            runs_of_report: TtlCache::new(4096),
            reportruns: TtlCache::new(OBJECTS),
            sizes: TtlCache::new(OBJECTS),
            missing: TtlCache::new(4096),
            failed: TtlCache::new(4096),
        }
    }
}

impl Caches {
    pub fn expire_all(&self) {
        self.user.expire_all();
        self.subscription.expire_all();
        self.extractor_list.expire_all();
        self.extractors.expire_all();
        self.inputs.expire_all();
        self.crawlrun_list.expire_all();
        self.runs_of.expire_all();
        self.crawlruns.expire_all();
        self.report_list.expire_all();
        self.reports.expire_all();
        self.reportrun_list.expire_all();
        self.runs_of_report.expire_all();
        self.reportruns.expire_all();
        self.sizes.expire_all();
        self.missing.clear();
    }
}

#[derive(Default)]
pub struct Counters {
    pub meta_hits: AtomicU64,
    pub meta_misses: AtomicU64,
    pub stale_answers: AtomicU64,
    /// Rounds of change detection (`poll.rs`); their API calls are counted
    /// with every other call, by operation.
    pub polls: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_remaining_is_capped() {
        let c: TtlCache<&str, u32> = TtlCache::new(2);
        c.insert("a", 1, Expiry::after(Duration::from_secs(60)));
        c.insert("b", 2, Expiry::At(Instant::now()));
        c.insert("n", 3, Expiry::Never);
        // capacity 2: "a" was evicted as least recently used
        assert!(c.get(&"a").is_none());
        assert!(c.get(&"b").is_none(), "expired");
        let (v, exp) = c.get(&"n").unwrap();
        assert_eq!(v, 3);
        assert_eq!(
            exp.remaining(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        let e = Expiry::after(Duration::from_secs(2));
        assert!(e.remaining(Duration::from_secs(10)) <= Duration::from_secs(2));
    }

    #[test]
    fn expire_all_keeps_immutable_entries() {
        let c: TtlCache<u8, u8> = TtlCache::new(8);
        c.insert(1, 1, Expiry::after(Duration::from_secs(60)));
        c.insert(2, 2, Expiry::Never);
        c.expire_all();
        assert!(c.get(&1).is_none());
        assert!(c.get(&2).is_some());
        assert_eq!(c.get_stale(&1), Some(1));
    }
}
