//! Pagination: every page of a listing, in order, each object once.
//!
//! What is subtle here is knowing when to stop, since servers get it wrong
//! in every way. Pages are requested until one is empty or shorter than
//! `_perpage`, repeats the previous page, or brings no object not already
//! seen; and never more than `max_pages` pages. When the server sends
//! `X-Total-Count`, the listing also stops once that many are in, and the
//! pages that count implies are asked a few at a time ([`LIST_WINDOW`]). A
//! server that answers a page past the end with the last page again (the
//! live service does) is stopped by the repeat rule: nothing is shown
//! twice. A count below what was already listed is a lie and ignored. An
//! element of a page that does not decode is skipped (and logged), not
//! fatal to the listing.

use super::client::Client;
use super::error::Error;
use super::models::{Crawlrun, Extractor, Report, ReportRun};
use super::operation::Operation;
use futures_util::stream::{FuturesOrdered, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashSet;

/// Pages of one listing in flight at once, once the server has said how
/// many objects there are (see [`Client::list_all`]).
const LIST_WINDOW: usize = 3;

/// Objects that listings deduplicate by guid.
pub(super) trait Guid {
    fn guid(&self) -> &str;
}

macro_rules! impl_guid {
    ($($t:ty),*) => {$(impl Guid for $t { fn guid(&self) -> &str { &self.guid } })*};
}
impl_guid!(Extractor, Crawlrun, Report, ReportRun);

impl Client {
    /// Every page of a listing (see the module docs for when it stops).
    ///
    /// Pages are asked one at a time until an answer says how many objects
    /// there are (`X-Total-Count`); then up to [`LIST_WINDOW`] of the pages
    /// that count implies are in flight at once, so that the server builds
    /// the next pages while this one is decoded (and, over a real network,
    /// round trips overlap). Pages are still taken in order and every stop
    /// rule applies as before; a server whose count lies costs at most
    /// `LIST_WINDOW - 1` calls whose answers are dropped.
    pub(super) async fn list_all<T: DeserializeOwned + Guid>(
        &self,
        op: Operation,
        segments: &[&str],
        filter: &[(&str, &str)],
    ) -> Result<Vec<T>, Error> {
        let per_page = self.inner.cfg.page_size;
        let max_pages = self.inner.cfg.max_pages;
        let per_page_text = per_page.to_string();
        let fetch = |page: u32| {
            let per_page_text = &per_page_text;
            async move {
                let page_text = page.to_string();
                let mut query: Vec<(&str, &str)> = filter.to_vec();
                query.push(("_page", &page_text));
                query.push(("_perpage", per_page_text));
                (page, self.call(op, segments, &query, None).await)
            }
        };
        let mut in_flight = FuturesOrdered::new();
        // The next page to ask for, and the last page known to be needed.
        let (mut next, mut wanted) = (1u32, 1u32);
        let mut listing = Listing::new(op, per_page, max_pages);
        loop {
            while next <= wanted.min(max_pages) && in_flight.len() < LIST_WINDOW {
                in_flight.push_back(fetch(next));
                next += 1;
            }
            let Some((page, answer)) = in_flight.next().await else {
                break;
            };
            let answer = answer?;
            let items: Vec<T> = self.decode_list(op, &answer.body)?;
            match listing.add_page(page, items, answer.total) {
                Some(more) => wanted = wanted.max(more),
                None => break,
            }
        }
        Ok(listing.all)
    }

    /// The first page of the newest objects (`_sort=meta_created_at`,
    /// `_sortDirection=DESC`): one call, what a poll for new runs asks.
    pub(super) async fn newest<T: DeserializeOwned>(
        &self,
        op: Operation,
        segments: &[&str],
        n: u32,
    ) -> Result<Vec<T>, Error> {
        let n = n.to_string();
        let query = [
            ("_page", "1"),
            ("_perpage", n.as_str()),
            ("_sort", "meta_created_at"),
            ("_sortDirection", "DESC"),
        ];
        let answer = self.call(op, segments, &query, None).await?;
        self.decode_list(op, &answer.body)
    }

    /// A page: a JSON array, or an object wrapping one. An element that is not
    /// an object of the expected shape is skipped, not fatal.
    fn decode_list<T: DeserializeOwned>(
        &self,
        op: Operation,
        body: &[u8],
    ) -> Result<Vec<T>, Error> {
        // The usual shape, a JSON array, is split into its items without
        // building a tree of it first: each item is decoded straight from
        // its own text (a third of a 1000-item page's decoding time went to
        // the intermediate tree).
        if let Ok(raw) = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(body) {
            return Ok(keep_decoded(
                op,
                raw.iter().map(|r| serde_json::from_str(r.get())),
            ));
        }
        let value: Value = self.decode(op, body)?;
        let items = match value {
            Value::Array(items) => items,
            Value::Object(mut map) => ["items", "data", "results", "hits", "content"]
                .iter()
                .find_map(|k| match map.remove(*k) {
                    Some(Value::Array(a)) => Some(a),
                    _ => None,
                })
                .ok_or_else(|| Error::Decode {
                    op,
                    detail: "expected a JSON array".into(),
                })?,
            Value::Null => Vec::new(),
            _ => {
                return Err(Error::Decode {
                    op,
                    detail: "expected a JSON array".into(),
                })
            }
        };
        Ok(keep_decoded(
            op,
            items.into_iter().map(serde_json::from_value),
        ))
    }
}

/// What a listing has gathered so far, and the rules that end it.
struct Listing<T> {
    op: Operation,
    per_page: u32,
    max_pages: u32,
    /// Every object kept, in the order the pages gave them.
    all: Vec<T>,
    /// The guids kept so far (objects without one are kept, not counted).
    seen: HashSet<String>,
    /// The guids of the last page, to notice a page served again.
    previous: Option<Vec<String>>,
}

impl<T: Guid> Listing<T> {
    fn new(op: Operation, per_page: u32, max_pages: u32) -> Listing<T> {
        Listing {
            op,
            per_page,
            max_pages,
            all: Vec::new(),
            seen: HashSet::new(),
            previous: None,
        }
    }

    /// Take page number `page` (with the server's `X-Total-Count`, if it
    /// sent one). `None` when the listing ends here; else the last page now
    /// known to be needed.
    fn add_page(&mut self, page: u32, items: Vec<T>, total: Option<u64>) -> Option<u32> {
        let op = self.op;
        if items.is_empty() {
            return None;
        }
        let guids: Vec<String> = items.iter().map(|i| i.guid().to_owned()).collect();
        if self.previous.as_ref() == Some(&guids) {
            tracing::warn!(%op, page, "the server repeated a page: listing ends here");
            return None;
        }
        let count = items.len();
        let mut fresh = 0usize;
        for item in items {
            let guid = item.guid();
            if guid.is_empty() || self.seen.insert(guid.to_owned()) {
                self.all.push(item);
                fresh += 1;
            }
        }
        if fresh == 0 {
            tracing::warn!(%op, page, "a page with nothing new: listing ends here");
            return None;
        }
        if count < self.per_page as usize {
            return None;
        }
        // A server that says how many there are saves the call that
        // would find the empty page after an exact multiple of _perpage.
        // A count below what it has already listed is wrong, and then
        // only the pages themselves say when the listing ends.
        let listed = self.seen.len() as u64;
        let sent = total;
        let total = sent.filter(|&t| t >= listed);
        if sent.is_some() && total.is_none() {
            tracing::warn!(%op, page, "X-Total-Count is below the objects listed so far: ignored");
        }
        if total == Some(listed) {
            return None;
        }
        if page == self.max_pages {
            tracing::warn!(%op, pages = page, "page limit reached: the listing may be incomplete");
            return None;
        }
        // A full page: the next one is needed, and as many more as the
        // count says remain.
        let by_count = total.map_or(0, |t| {
            u32::try_from(t.div_ceil(u64::from(self.per_page))).unwrap_or(u32::MAX)
        });
        self.previous = Some(guids);
        Some((page + 1).max(by_count))
    }
}

/// The items of a page that decoded; one of an unexpected shape is skipped
/// (and counted in the log), not fatal to the listing.
fn keep_decoded<T>(
    op: Operation,
    items: impl ExactSizeIterator<Item = Result<T, serde_json::Error>>,
) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    let mut skipped = 0usize;
    for item in items {
        match item {
            Ok(v) => out.push(v),
            Err(_) => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(%op, skipped, "listing entries of an unexpected shape skipped");
    }
    out
}
