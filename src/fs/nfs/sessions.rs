//! What stands in for open and close, which NFSv3 does not have.
//!
//! The core is built around open handles: a result file's download is
//! shared by its open handles, a directory listing is read through one, and
//! a write of `inputs` is buffered in one and sent once, when it is
//! flushed. NFS clients send only READ, WRITE, COMMIT and SETATTR on a file
//! handle. So this adapter keeps, per inode:
//!
//! - **read handles** of result files and directory listings
//!   ([`HandleCache`]), opened by the first READ or READDIR and released
//!   once idle ([`READ_IDLE`]). A handle in use (a READ waiting for its
//!   bytes) is never released under it: each use is a [`Lease`];
//! - **write sessions** ([`WriteSessions`]), opened by the first WRITE (or a
//!   SETATTR that truncates or touches) and ended by the COMMIT a client
//!   sends at close and fsync, by a FILE_SYNC write, or, when neither ever
//!   comes (`truncate` alone), after [`WRITE_IDLE`] (a control file's after
//!   [`TRIGGER_IDLE`]), when what is pending is sent as a close would send
//!   it. One session's operations run one at a time (its slot's lock), so a
//!   COMMIT waits for the WRITEs before it.
//!
//! Subtle: `(sleep 6; echo URL) > inputs` truncates at once (a SETATTR of
//! size 0) and writes seconds later. Ending that session early would send
//! an empty list, and a writer killed afterwards would have lost every URL;
//! so a session of a whole-file write waits a minute for its COMMIT.
//!
//! Subtle: a session's lock is held across the PUT that a COMMIT sends;
//! that is the point (the COMMIT answers with the PUT's result), and it
//! blocks only that file's writers, never a reader or another file.

use crate::fs::inodes::Ino;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A read handle unused this long is released: a result file's handle
/// holds its cache file back from eviction, so it must not live forever,
/// and a reader that comes back later just opens it again (cheap: the
/// bytes stay in the cache).
pub(super) const READ_IDLE: Duration = Duration::from_secs(30);

/// A write session of `inputs` (or a scratch file) with no WRITE, SETATTR
/// or COMMIT for this long is ended as a close would end it. Clients commit
/// at close, so this only ends sessions that never get a commit (a
/// `truncate` alone, a client that died). It is long because ending a
/// session early sends what it holds: a truncation whose writer is still
/// at work (a slow pipeline into `> inputs`) would empty the list on the
/// service (issue 28).
pub(super) const WRITE_IDLE: Duration = Duration::from_secs(60);

/// The same for a control file (`start`, `stop`): its POST was sent at
/// the SETATTR or WRITE already, and the session only joins the writes
/// that follow it (`echo > start`) into that one POST. Kept short so that
/// a second start a few seconds later is a POST of its own.
pub(super) const TRIGGER_IDLE: Duration = Duration::from_secs(3);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An open core handle, shared by the requests that use it.
#[derive(Debug)]
pub(super) struct Open {
    pub fh: u64,
    /// The file's size when it was opened (reads use it to say EOF).
    pub size: u64,
    last: Mutex<Instant>,
    busy: AtomicUsize,
}

/// One request's use of an [`Open`]: it is not released while leased.
pub(super) struct Lease(Arc<Open>);

impl std::ops::Deref for Lease {
    type Target = Open;
    fn deref(&self) -> &Open {
        &self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        *lock(&self.0.last) = Instant::now();
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Open {
    fn lease(self: &Arc<Open>) -> Lease {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Lease(self.clone())
    }

    fn idle_for(&self, idle: Duration) -> bool {
        self.busy.load(Ordering::SeqCst) == 0 && lock(&self.last).elapsed() >= idle
    }
}

/// Open read handles by inode (result files, or directory listings).
#[derive(Default)]
pub(super) struct HandleCache {
    map: Mutex<HashMap<Ino, Arc<Open>>>,
    /// Handles replaced by a newer one, released once no request uses them.
    retired: Mutex<Vec<Arc<Open>>>,
}

impl HandleCache {
    /// The handle open for `ino`, if any, leased.
    pub fn get(&self, ino: Ino) -> Option<Lease> {
        lock(&self.map).get(&ino).map(Open::lease)
    }

    /// Keep `fh` as the handle of `ino`, unless another request opened one
    /// meanwhile: then that one is used, and `fh` retired.
    pub fn insert(&self, ino: Ino, fh: u64, size: u64) -> Lease {
        let new = Arc::new(Open {
            fh,
            size,
            last: Mutex::new(Instant::now()),
            busy: AtomicUsize::new(0),
        });
        let mut map = lock(&self.map);
        if let Some(old) = map.get(&ino) {
            let lease = old.lease();
            lock(&self.retired).push(new);
            return lease;
        }
        map.insert(ino, new.clone());
        new.lease()
    }

    /// Make `fh` the handle of `ino` (a fresh directory listing), retiring
    /// the one before it.
    pub fn replace(&self, ino: Ino, fh: u64, size: u64) -> Lease {
        let new = Arc::new(Open {
            fh,
            size,
            last: Mutex::new(Instant::now()),
            busy: AtomicUsize::new(0),
        });
        let lease = new.lease();
        if let Some(old) = lock(&self.map).insert(ino, new) {
            lock(&self.retired).push(old);
        }
        lease
    }

    /// Take out the handles idle for `idle` (retired ones as soon as they
    /// are unused), for the caller to release.
    pub fn take_idle(&self, idle: Duration) -> Vec<u64> {
        let mut out = Vec::new();
        lock(&self.map).retain(|_, o| {
            let keep = !o.idle_for(idle);
            if !keep {
                out.push(o.fh);
            }
            keep
        });
        lock(&self.retired).retain(|o| {
            let keep = !o.idle_for(Duration::ZERO);
            if !keep {
                out.push(o.fh);
            }
            keep
        });
        out
    }

    /// Every handle, for releasing them all when the server stops.
    pub fn take_all(&self) -> Vec<u64> {
        let mut out: Vec<u64> = lock(&self.map).drain().map(|(_, o)| o.fh).collect();
        out.extend(lock(&self.retired).drain(..).map(|o| o.fh));
        out
    }
}

/// A write session: the core's write handle, when it was last used, and
/// how long it may then stay unused ([`WRITE_IDLE`] or [`TRIGGER_IDLE`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Session {
    pub fh: u64,
    pub last: Instant,
    pub idle: Duration,
}

/// The slot of one inode's write session; its lock orders the session's
/// operations.
pub(super) type Slot = Arc<tokio::sync::Mutex<Option<Session>>>;

/// Write sessions by inode.
#[derive(Default)]
pub(super) struct WriteSessions {
    slots: Mutex<HashMap<Ino, Slot>>,
}

impl WriteSessions {
    /// The slot of `ino`'s session (made if need be); lock it to use it.
    pub fn slot(&self, ino: Ino) -> Slot {
        lock(&self.slots).entry(ino).or_default().clone()
    }

    /// The core handle of `ino`'s session, if one is open and not busy.
    pub fn peek(&self, ino: Ino) -> Option<u64> {
        let slot = lock(&self.slots).get(&ino)?.clone();
        let s = slot.try_lock().ok()?;
        s.map(|s| s.fh)
    }

    /// Take out the sessions unused for their idle time (every one, when
    /// `all`), for the caller to end as a close would; empty slots nobody
    /// holds are dropped.
    pub fn take_idle(&self, all: bool) -> Vec<u64> {
        let mut out = Vec::new();
        lock(&self.slots).retain(|_, slot| {
            let Ok(mut s) = slot.try_lock() else {
                return true;
            };
            if s.is_some_and(|s| all || s.last.elapsed() >= s.idle) {
                out.extend(s.take().map(|s| s.fh));
            }
            s.is_some() || Arc::strong_count(slot) > 1
        });
        out
    }

    /// Every open session, for ending them all when the server stops.
    pub fn take_all(&self) -> Vec<u64> {
        self.take_idle(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leased_handle_is_not_released_and_an_idle_one_is() {
        let c = HandleCache::default();
        let lease = c.insert(5, 100, 10);
        assert_eq!(c.get(5).map(|l| l.fh), Some(100));
        assert!(c.take_idle(Duration::ZERO).is_empty(), "leased");
        drop(lease);
        assert_eq!(c.take_idle(Duration::ZERO), vec![100]);
        assert!(c.get(5).is_none());
    }

    #[test]
    fn a_second_open_of_the_same_inode_uses_the_first() {
        let c = HandleCache::default();
        let a = c.insert(5, 100, 10);
        let b = c.insert(5, 101, 10);
        assert_eq!((a.fh, b.fh), (100, 100));
        drop((a, b));
        let mut released = c.take_idle(Duration::ZERO);
        released.sort();
        assert_eq!(released, vec![100, 101], "the extra one is released too");
    }

    #[test]
    fn a_replaced_listing_is_released_once_unused() {
        let c = HandleCache::default();
        let old = c.insert(7, 1, 0);
        let new = c.replace(7, 2, 0);
        assert_eq!(new.fh, 2);
        assert!(
            c.take_idle(Duration::from_secs(60)).is_empty(),
            "old in use"
        );
        drop(old);
        assert_eq!(c.take_idle(Duration::from_secs(60)), vec![1]);
        drop(new);
    }

    #[tokio::test]
    async fn idle_sessions_are_taken_and_busy_ones_kept() {
        let w = WriteSessions::default();
        let slot = w.slot(3);
        *slot.lock().await = Some(Session {
            fh: 9,
            last: Instant::now(),
            idle: Duration::from_secs(60),
        });
        let guard = slot.lock().await;
        assert!(w.take_idle(true).is_empty(), "in use");
        drop(guard);
        assert!(w.take_idle(false).is_empty(), "not idle");
        let other = w.slot(4);
        *other.lock().await = Some(Session {
            fh: 10,
            last: Instant::now(),
            idle: Duration::ZERO,
        });
        assert_eq!(w.take_idle(false), vec![10], "its own idle time is over");
        assert_eq!(w.take_idle(true), vec![9]);
        drop((slot, other));
        assert!(w.take_all().is_empty());
    }
}
