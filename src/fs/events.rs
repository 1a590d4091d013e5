//! The run events a mount has seen (`.importfs/events`): a log file that
//! grows, one line of JSON an event, the way Unix has always offered a
//! stream of happenings. `cat` prints what happened since the mount started
//! and ends; `tail -f` follows it by polling its size (it cannot use
//! inotify on FUSE or NFS); `importfs watch` does the same.
//!
//! Subtle points:
//! - **No read ever waits.** A read past the end is end of file at once,
//!   so `grep -r`, `cp -r`, `tar` and backup tools over the whole mount
//!   finish, and the file works over NFS, which has no open to start a
//!   subscription at and whose READs must answer at once.
//! - **Offsets are stable.** A byte once at offset N stays there for the
//!   life of the mount: the file's size is every byte ever written.
//! - **Memory is bounded** ([`KEEP_LINES`], [`KEEP_BYTES`]): past that the
//!   oldest lines are dropped from memory, and their bytes read as newlines,
//!   that is blank lines. A JSON line is never cut: a line is kept or
//!   dropped whole, and the log itself never writes a blank line, so a
//!   reader knows a blank line for what it is.
//! - **Attributes show the growth**: the size is the end of the log and the
//!   mtime the moment the last line was written (strictly increasing), so a
//!   kernel NFS client's attribute cache sees each event within `actimeo`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Events kept in memory, at most: about a day of a busy account's runs.
pub const KEEP_LINES: usize = 10_000;
/// Bytes of events kept in memory, at most (a line is ~250 bytes, so
/// [`KEEP_LINES`] is what binds in practice).
pub const KEEP_BYTES: usize = 8 << 20;

/// One run event, one line of the log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// When the mount saw it (RFC 3339, UTC).
    pub time: String,
    /// `crawlrun.started`, `crawlrun.finished`, ...
    pub event: &'static str,
    /// The run's id.
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extractor: Option<Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Owner>,
    /// The run's directory, relative to the mount.
    pub path: String,
}

/// The extractor or report a run belongs to: its name in the mount.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Owner {
    pub name: String,
    pub guid: String,
}

struct Log {
    /// The lines still in memory, oldest first; the first starts at `start`.
    lines: VecDeque<Box<[u8]>>,
    start: u64,
    /// Every byte ever written: the file's size.
    end: u64,
    /// Lines ever written.
    count: u64,
    /// When the last line was written (the mount's start before any).
    changed: SystemTime,
}

/// The events log of one mount.
pub struct EventLog {
    log: Mutex<Log>,
    keep_lines: usize,
    keep_bytes: usize,
    closed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::with_bounds(KEEP_LINES, KEEP_BYTES)
    }
}

impl EventLog {
    /// A log that keeps at most `lines` lines and `bytes` bytes in memory.
    pub fn with_bounds(lines: usize, bytes: usize) -> EventLog {
        EventLog {
            log: Mutex::new(Log {
                lines: VecDeque::new(),
                start: 0,
                end: 0,
                count: 0,
                changed: SystemTime::now(),
            }),
            keep_lines: lines.max(1),
            keep_bytes: bytes.max(1),
            closed: AtomicBool::new(false),
        }
    }

    /// The default bounds, or `IMPORTFS_EVENTS_KEEP` lines when that is set
    /// to a number: a knob for tests, which cannot wait for 10,000 runs.
    pub fn from_env() -> EventLog {
        match std::env::var("IMPORTFS_EVENTS_KEEP")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            Some(lines) => EventLog::with_bounds(lines, KEEP_BYTES),
            None => EventLog::default(),
        }
    }

    /// Write `event` at the end of the log.
    pub fn publish(&self, event: &Event) {
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        tracing::info!(event = event.event, id = %event.id, "run event");
        self.append(line.into_boxed_slice());
    }

    fn append(&self, line: Box<[u8]>) {
        let mut log = lock(&self.log);
        let kept = (log.end - log.start) as usize;
        let mut over = kept + line.len();
        while !log.lines.is_empty()
            && (log.lines.len() >= self.keep_lines || over > self.keep_bytes)
        {
            let gone = log.lines.pop_front().map_or(0, |l| l.len());
            log.start += gone as u64;
            over -= gone;
        }
        log.end += line.len() as u64;
        log.count += 1;
        log.lines.push_back(line);
        // Strictly later than the last change, so that two events in one
        // tick of the clock still change the mtime a client compares.
        let now = SystemTime::now();
        log.changed = if now > log.changed {
            now
        } else {
            log.changed + Duration::from_micros(1)
        };
    }

    /// Up to `max` bytes at `offset`: empty at or past the end. Bytes of
    /// lines no longer in memory read as newlines.
    pub fn read(&self, offset: u64, max: usize) -> Vec<u8> {
        let log = lock(&self.log);
        let stop = log.end.min(offset.saturating_add(max as u64));
        if offset >= stop {
            return Vec::new();
        }
        let mut out = Vec::with_capacity((stop - offset) as usize);
        if offset < log.start {
            out.resize((log.start.min(stop) - offset) as usize, b'\n');
        }
        let mut at = log.start;
        for line in &log.lines {
            let next = at + line.len() as u64;
            let (from, to) = (offset.max(at), stop.min(next));
            if from < to {
                out.extend_from_slice(&line[(from - at) as usize..(to - at) as usize]);
            }
            if next >= stop {
                break;
            }
            at = next;
        }
        out
    }

    /// The file's size and mtime: every byte written, and when the last
    /// line was.
    pub fn size_and_mtime(&self) -> (u64, SystemTime) {
        let log = lock(&self.log);
        (log.end, log.changed)
    }

    /// Lines ever written, and the bytes of those still in memory.
    pub fn counts(&self) -> (u64, u64) {
        let log = lock(&self.log);
        (log.count, log.end - log.start)
    }

    /// The mount is going away: change detection stops.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Whether [`EventLog::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str) -> Event {
        Event {
            time: "2026-12-05T00:00:00Z".into(),
            event: "crawlrun.finished",
            id: id.into(),
            extractor: Some(Owner {
                name: "x".into(),
                guid: "g".into(),
            }),
            report: None,
            path: format!("crawlruns/{id}"),
        }
    }

    fn all(log: &EventLog) -> String {
        String::from_utf8(log.read(0, usize::MAX)).unwrap()
    }

    #[test]
    fn the_log_grows_and_a_read_past_its_end_is_empty() {
        let log = EventLog::default();
        assert_eq!(log.size_and_mtime().0, 0);
        assert!(log.read(0, 100).is_empty());
        log.publish(&ev("1"));
        let (size, t1) = log.size_and_mtime();
        let text = all(&log);
        assert_eq!(text.len() as u64, size);
        assert!(text.ends_with('\n') && text.contains("\"id\":\"1\""));
        assert!(log.read(size, 100).is_empty());
        assert!(log.read(size + 5, 100).is_empty());
        log.publish(&ev("2"));
        let (size2, t2) = log.size_and_mtime();
        assert!(
            size2 > size && t2 > t1,
            "size and mtime move with each event"
        );
        // What was at an offset stays there.
        assert_eq!(&all(&log)[..size as usize], text);
        let tail = String::from_utf8(log.read(size, 1 << 20)).unwrap();
        assert!(tail.contains("\"id\":\"2\"") && tail.lines().count() == 1);
    }

    #[test]
    fn reads_of_any_size_and_offset_join_up_exactly() {
        let log = EventLog::default();
        for i in 0..20 {
            log.publish(&ev(&i.to_string()));
        }
        let whole = log.read(0, usize::MAX);
        for step in [1, 7, 100, 4096] {
            let mut got = Vec::new();
            loop {
                let b = log.read(got.len() as u64, step);
                if b.is_empty() {
                    break;
                }
                assert!(b.len() <= step);
                got.extend(b);
            }
            assert_eq!(got, whole, "step {step}");
        }
    }

    #[test]
    fn old_lines_leave_memory_whole_and_read_as_blank_lines() {
        let log = EventLog::with_bounds(5, 1 << 20);
        for i in 0..50 {
            log.publish(&ev(&i.to_string()));
        }
        let (count, kept) = log.counts();
        assert_eq!(count, 50);
        let text = all(&log);
        assert_eq!(text.len() as u64, log.size_and_mtime().0);
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines.iter().map(|l| l.len() as u64 + 1).sum::<u64>(),
            kept,
            "only the kept lines hold bytes"
        );
        for l in &lines {
            serde_json::from_str::<serde_json::Value>(l).expect("whole JSON lines");
        }
        assert!(lines[0].contains("\"id\":\"45\"") && lines[4].contains("\"id\":\"49\""));
        assert!(text[..text.len() - kept as usize]
            .bytes()
            .all(|b| b == b'\n'));
        // By bytes too: the byte bound keeps whole lines only.
        let log = EventLog::with_bounds(1000, 400);
        for i in 0..30 {
            log.publish(&ev(&i.to_string()));
        }
        assert!(log.counts().1 <= 400);
        let text = all(&log);
        assert!(text
            .lines()
            .filter(|l| !l.is_empty())
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    }
}
