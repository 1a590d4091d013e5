//! What every operation shares, in one place: the request as the operations
//! see it ([`Ctx`]), ids, and lists — `_page`, `_perpage`, `_sort`,
//! `_sortDirection` and `X-Total-Count`.
//!
//! Subtle points:
//! - An id must be the hyphenated 36-character form (`format: uuid` of
//!   `tests/importio-openapi.yaml`); anything else is a 400, not a 404.
//! - Integers in the query are `-?[0-9]+` and nothing else (no spaces, no
//!   `+`), saturating when too large: schemathesis sends such values to
//!   check that a string is refused.
//! - Sorting breaks ties by guid, so pages are stable when many objects share
//!   a time. `X-Total-Count` is the number of all items, not of the page.
//! - Two ways pages past the end can be answered otherwise than `[]`: the
//!   hostile `repeat_pages` (every page is page 1, filled up) and
//!   `repeat_last_page` (the last page again), see [`Paging`].

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;
use uuid::Uuid;

use crate::emulator::app::App;
use crate::emulator::config::Dialect;
use crate::emulator::query::param;
use crate::emulator::reply::Reply;
use crate::emulator::state::{now_ms, Timeline};

/// The request after auth: what the operations need.
pub(crate) struct Ctx<'a> {
    pub app: &'a App,
    pub pairs: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Body,
    /// Hostile `ignore_range`, for a GET (HEAD is never affected).
    pub ignore_range: bool,
    /// How long a run made by a start stays unknown, for this request (the
    /// fault's `new_run_404_ms`, else the configuration's).
    pub new_run_404_ms: u64,
    /// The time of the request, in epoch milliseconds: one clock reading for
    /// every run state the answer shows.
    pub now: i64,
    pub dialect: Dialect,
    pub paging: Paging,
}

impl<'a> Ctx<'a> {
    pub fn new(
        app: &'a App,
        pairs: Vec<(String, String)>,
        headers: HeaderMap,
        body: Body,
        ignore_range: bool,
        new_run_404_ms: u64,
    ) -> Ctx<'a> {
        Ctx {
            app,
            pairs,
            headers,
            body,
            ignore_range,
            new_run_404_ms,
            now: now_ms(),
            dialect: app.dialect(),
            paging: Paging {
                repeat: app.hostile().repeat_pages,
                repeat_last: app.config.effective_repeat_last_page(),
            },
        }
    }

    /// The list parameters of the query (400 when malformed).
    pub fn list_params(&self) -> Result<ListParams, Reply> {
        list_params(&self.pairs, self.paging)
    }
}

/// An id as `format: uuid` means it: the hyphenated 36-character form only
/// (the uuid crate would also take the braced, `urn:uuid:` and bare-hex forms).
pub(crate) fn parse_id(raw: &str, what: &str) -> Result<Uuid, Reply> {
    let malformed = || Reply::bad_request(&format!("malformed {what} id"));
    if raw.len() != 36 {
        return Err(malformed());
    }
    Uuid::parse_str(raw).map_err(|_| malformed())
}

pub(crate) struct ListParams {
    page: u64,
    per_page: u64,
    sort: SortKey,
    desc: bool,
    paging: Paging,
}

/// How pages past the end are answered.
#[derive(Clone, Copy, Default)]
pub(crate) struct Paging {
    /// Hostile mode `repeat_pages`: every page is page 1, never short.
    pub repeat: bool,
    /// `Config::repeat_last_page`: a page past the end is the last page
    /// again (the legacy dialect's default), not an empty one.
    pub repeat_last: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum SortKey {
    Created,
    Modified,
    Name,
    Guid,
    State,
}

/// Integers as the spec allows them: `-?[0-9]+`, any size (saturating).
/// Nothing around the digits: `2\x0B` or ` 2` is a string, not an integer,
/// and gets a 400 (schemathesis sends such values to check that).
fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = digits.parse::<i64>().unwrap_or(i64::MAX);
    Some(if neg { -v } else { v })
}

fn list_params(pairs: &[(String, String)], paging: Paging) -> Result<ListParams, Reply> {
    let page = match param(pairs, "_page") {
        None => 1,
        Some(v) => parse_int(v)
            .ok_or_else(|| Reply::bad_request("_page must be an integer"))?
            .max(1) as u64,
    };
    let per_page = match param(pairs, "_perpage") {
        None => 30,
        Some(v) => parse_int(v)
            .ok_or_else(|| Reply::bad_request("_perpage must be an integer"))?
            .clamp(1, 1000) as u64,
    };
    let desc = match param(pairs, "_sortDirection") {
        None | Some("DESC") => true,
        Some("ASC") => false,
        Some(_) => return Err(Reply::bad_request("_sortDirection must be ASC or DESC")),
    };
    let sort = match param(pairs, "_sort").unwrap_or("meta_created_at") {
        "name" => SortKey::Name,
        "meta_modified_at" | "_meta.modifiedAt" | "modifiedAt" => SortKey::Modified,
        "guid" => SortKey::Guid,
        "state" | "status" => SortKey::State,
        _ => SortKey::Created,
    };
    Ok(ListParams {
        page,
        per_page,
        sort,
        desc,
        paging,
    })
}

/// What lists sort on.
pub(crate) struct Key<'a> {
    created: i64,
    modified: i64,
    name: &'a str,
    guid: Uuid,
    state: &'static str,
}

impl<'a> Key<'a> {
    /// The key of an extractor or a report: it has no state.
    pub fn of_object(created: i64, modified: i64, name: &'a str, guid: Uuid) -> Key<'a> {
        Key {
            created,
            modified,
            name,
            guid,
            state: "",
        }
    }

    /// The key of a run, from its state at `now`: created when it started,
    /// modified when its state last changed.
    pub fn of_run(timeline: &Timeline, name: &'a str, guid: Uuid, now: i64) -> Key<'a> {
        let p = timeline.phase(now);
        Key {
            created: timeline.started_ms,
            modified: p.changed_ms,
            name,
            guid,
            state: p.state.as_str(),
        }
    }
}

/// One page of a list, converted for the answer, with `X-Total-Count`
/// saying how many items there are in all (as many REST APIs do), so a client
/// can stop after the last full page.
pub(crate) fn list_reply<'a, T: Clone, U: Serialize>(
    items: impl IntoIterator<Item = (Key<'a>, T)>,
    p: &ListParams,
    to_json: impl FnMut(T) -> U,
) -> Reply {
    let items: Vec<_> = items.into_iter().collect();
    // Hostile mode (repeat_pages): claim a thousand full pages, whatever there is.
    let total = if p.paging.repeat {
        1000 * 1000
    } else {
        items.len() as u64
    };
    let page: Vec<U> = page_of(items, p).into_iter().map(to_json).collect();
    let mut r = Reply::json(StatusCode::OK, &page);
    r.headers.insert("x-total-count", HeaderValue::from(total));
    r
}

/// Sort (ties broken by guid, so pages are stable) and cut one page. With
/// `repeat_pages` (hostile mode) every page is page 1 filled to `_perpage`;
/// with `repeat_last_page` a page past the end is the last page again.
fn page_of<'a, T: Clone>(mut items: Vec<(Key<'a>, T)>, p: &ListParams) -> Vec<T> {
    items.sort_by(|(a, _), (b, _)| {
        let primary = match p.sort {
            SortKey::Created => a.created.cmp(&b.created),
            SortKey::Modified => a.modified.cmp(&b.modified),
            SortKey::Name => a.name.cmp(b.name),
            SortKey::Guid => std::cmp::Ordering::Equal,
            SortKey::State => a.state.cmp(b.state),
        };
        let o = primary.then(a.guid.cmp(&b.guid));
        if p.desc {
            o.reverse()
        } else {
            o
        }
    });
    if p.paging.repeat {
        let first: Vec<T> = items
            .into_iter()
            .take(p.per_page as usize)
            .map(|(_, t)| t)
            .collect();
        return first
            .iter()
            .cycle()
            .take(p.per_page as usize)
            .cloned()
            .collect();
    }
    let len = items.len() as u64;
    let mut skip = (p.page - 1).saturating_mul(p.per_page);
    if skip >= len && p.paging.repeat_last && len > 0 {
        skip = (len - 1) / p.per_page * p.per_page;
    }
    if skip >= len {
        return Vec::new();
    }
    items
        .into_iter()
        .skip(skip as usize)
        .take(p.per_page as usize)
        .map(|(_, t)| t)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_saturate() {
        assert_eq!(parse_int("99999999999999999999999"), Some(i64::MAX));
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("1.5"), None);
        assert_eq!(parse_int("2\u{b}"), None);
        assert_eq!(parse_int(" 2"), None);
        assert_eq!(parse_int("+2"), None);
        assert_eq!(parse_int(""), None);
    }
}
