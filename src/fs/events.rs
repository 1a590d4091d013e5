//! The run events a mount has seen (`.importfs/events`): each open of the
//! file is a subscription, fed from the moment of the open, read as lines
//! of JSON, one event a line.
//!
//! Subtle points:
//! - **A slow reader never stalls anything.** Each subscription queues at
//!   most [`MAX_QUEUED`] lines; past that the oldest are dropped and
//!   counted, and the reader gets one `{"event":"lost","count":N}` line in
//!   their place, before the lines that follow.
//! - **Reads return whole lines**, so `while read` loops and Python's
//!   `for line in f` never see half an event; a read too small for the next
//!   line gets as much of it as fits, and the rest next time.
//! - **Closing ends every read with EOF** (an unmount): a blocked reader is
//!   woken, gets what is queued, then end of file.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// Lines a subscription holds before it drops the oldest.
pub const MAX_QUEUED: usize = 4096;

/// One run event, as a subscriber reads it.
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

#[derive(Default)]
struct Queue {
    lines: VecDeque<Vec<u8>>,
    /// What is left of a line a read could not take whole.
    partial: Vec<u8>,
    lost: u64,
    closed: bool,
}

/// One open of `.importfs/events`.
#[derive(Default)]
pub struct Subscription {
    queue: Mutex<Queue>,
    ready: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Subscription {
    fn push(&self, line: &[u8]) {
        let mut q = lock(&self.queue);
        if q.closed {
            return;
        }
        if q.lines.len() >= MAX_QUEUED {
            q.lines.pop_front();
            q.lost += 1;
        }
        q.lines.push_back(line.to_vec());
        drop(q);
        self.ready.notify_one();
    }

    fn close(&self) {
        lock(&self.queue).closed = true;
        self.ready.notify_one();
    }

    /// Up to `max` bytes of whole lines if any are queued (a lost-count line
    /// first), an empty answer at end of file, or None: nothing yet.
    pub fn read_now(&self, max: usize) -> Option<Vec<u8>> {
        let mut q = lock(&self.queue);
        if q.lost > 0 {
            let lost = format!("{{\"event\":\"lost\",\"count\":{}}}\n", q.lost);
            q.lost = 0;
            q.lines.push_front(lost.into_bytes());
        }
        let mut out = std::mem::take(&mut q.partial);
        while let Some(line) = q.lines.front() {
            if !out.is_empty() && out.len() + line.len() > max {
                break;
            }
            out.extend(q.lines.pop_front().unwrap_or_default());
        }
        if out.len() > max {
            q.partial = out.split_off(max);
        }
        match (out.is_empty(), q.closed) {
            (false, _) => Some(out),
            (true, true) => Some(Vec::new()),
            (true, false) => None,
        }
    }

    /// Wait until [`Subscription::read_now`] has an answer.
    pub async fn wait(&self) {
        loop {
            let ready = self.ready.notified();
            {
                let q = lock(&self.queue);
                if q.closed || q.lost > 0 || !q.lines.is_empty() || !q.partial.is_empty() {
                    return;
                }
            }
            ready.await;
        }
    }
}

/// Every subscription of a mount, and whether the mount is going away.
#[derive(Default)]
pub struct EventBus {
    subs: Mutex<Vec<Weak<Subscription>>>,
    closed: std::sync::atomic::AtomicBool,
}

impl EventBus {
    /// A new subscription, fed from now on (empty at once if closed).
    pub fn subscribe(&self) -> Arc<Subscription> {
        let sub = Arc::new(Subscription::default());
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            sub.close();
        } else {
            let mut subs = lock(&self.subs);
            subs.retain(|w| w.strong_count() > 0);
            subs.push(Arc::downgrade(&sub));
        }
        sub
    }

    /// Give every subscriber `event`.
    pub fn publish(&self, event: &Event) {
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        tracing::info!(event = event.event, id = %event.id, "run event");
        for sub in lock(&self.subs).iter().filter_map(Weak::upgrade) {
            sub.push(&line);
        }
    }

    /// End every read with EOF, now and for later opens (the mount is
    /// going away).
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        for sub in lock(&self.subs).drain(..).filter_map(|w| w.upgrade()) {
            sub.close();
        }
    }

    /// End the reads of every subscription open now with EOF, and stay
    /// open for later ones: what `importfs unmount` asks for (SIGUSR1), so
    /// that readers let go of a mount that is about to go.
    pub fn end_readers(&self) {
        for sub in lock(&self.subs).drain(..).filter_map(|w| w.upgrade()) {
            sub.close();
        }
    }

    /// Whether [`EventBus::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
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

    #[test]
    fn each_subscriber_gets_every_event_from_its_open_on() {
        let bus = EventBus::default();
        let a = bus.subscribe();
        bus.publish(&ev("1"));
        let b = bus.subscribe();
        bus.publish(&ev("2"));
        let a_text = String::from_utf8(a.read_now(1 << 20).unwrap()).unwrap();
        let b_text = String::from_utf8(b.read_now(1 << 20).unwrap()).unwrap();
        assert_eq!(a_text.lines().count(), 2);
        assert_eq!(b_text.lines().count(), 1, "{b_text}");
        assert!(b_text.contains("\"id\":\"2\""));
        assert!(a.read_now(1 << 20).is_none(), "nothing more yet");
    }

    #[test]
    fn a_slow_reader_loses_the_oldest_and_is_told_how_many() {
        let bus = EventBus::default();
        let s = bus.subscribe();
        for i in 0..MAX_QUEUED + 5 {
            bus.publish(&ev(&i.to_string()));
        }
        let text = String::from_utf8(s.read_now(usize::MAX).unwrap()).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(first, "{\"event\":\"lost\",\"count\":5}");
        assert!(text.lines().nth(1).unwrap().contains("\"id\":\"5\""));
    }

    #[test]
    fn small_reads_take_whole_lines_then_the_rest_and_close_is_eof() {
        let bus = EventBus::default();
        let s = bus.subscribe();
        bus.publish(&ev("1"));
        bus.publish(&ev("2"));
        let one = s.read_now(150).unwrap();
        assert!(one.ends_with(b"\n") && one.iter().filter(|&&b| b == b'\n').count() == 1);
        let tiny = s.read_now(10).unwrap();
        assert_eq!(tiny.len(), 10);
        let rest = s.read_now(1 << 20).unwrap();
        assert!(rest.ends_with(b"\n"));
        bus.close();
        assert_eq!(s.read_now(100), Some(Vec::new()), "EOF");
        assert_eq!(bus.subscribe().read_now(100), Some(Vec::new()));
    }
}
