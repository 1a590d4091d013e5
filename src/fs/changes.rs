//! When a directory's listing or a link's target was last seen to change,
//! so that its attributes say so.
//!
//! A kernel NFS client revalidates a directory or a symlink only when its
//! mtime, ctime (NFSv3's change attribute, on Linux) or size change; it
//! has no notifier as FUSE has. The API gives no time that moves when a
//! run is added to an extractor's runs or when `latest` points elsewhere,
//! so the poll (`poll.rs`) notes each node whose content it saw change,
//! and [`Changes::mtime`] makes the node's mtime (and so its ctime, over
//! NFS) at least that late. Both adapters see it; FUSE also gets the
//! notifier's invalidations.
//!
//! Subtle: stamps only ever grow, one microsecond apart at least, so two
//! changes in the same clock tick (or a clock stepped back) still give a
//! new time; a node never noted keeps the time it had.

use crate::fs::inodes::Ino;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The time each changed node's content was last seen to change.
#[derive(Default)]
pub struct Changes {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    at: HashMap<Ino, SystemTime>,
    /// The latest stamp handed out.
    last: Option<SystemTime>,
}

impl Changes {
    /// The content of `inos` changed now (inode 0, never handed out, is
    /// skipped: nobody holds its attributes).
    pub fn note(&self, inos: &[Ino]) {
        let mut g = crate::fs::cache::lock(&self.inner);
        let now = SystemTime::now();
        let t = match g.last {
            Some(last) if last >= now => last + Duration::from_micros(1),
            _ => now,
        };
        g.last = Some(t);
        for &ino in inos.iter().filter(|&&i| i != 0) {
            g.at.insert(ino, t);
        }
    }

    /// The mtime to show for `ino`: `base`, or the time its content was
    /// last seen to change if that is later.
    pub fn mtime(&self, ino: Ino, base: SystemTime) -> SystemTime {
        match crate::fs::cache::lock(&self.inner).at.get(&ino) {
            Some(&t) if t > base => t,
            _ => base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noted_node_moves_later_each_time_and_others_keep_their_time() {
        let c = Changes::default();
        let base = SystemTime::now() - Duration::from_secs(60);
        assert_eq!(c.mtime(7, base), base, "never noted");
        c.note(&[7, 0]);
        let first = c.mtime(7, base);
        assert!(first > base);
        c.note(&[7]);
        let second = c.mtime(7, base);
        assert!(second > first, "{second:?} after {first:?}");
        assert_eq!(c.mtime(8, base), base, "another node");
        assert_eq!(c.mtime(0, base), base, "inode 0 is never noted");
        let later = SystemTime::now() + Duration::from_secs(3600);
        assert_eq!(c.mtime(7, later), later, "a later own time wins");
    }
}
