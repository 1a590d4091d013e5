//! The user operations: `GET /users/current` and
//! `GET /users/current/subscription`.
//!
//! Subtle: the user is fixed by the dataset, but the subscription's
//! `currentUsage` is the number of crawl runs in the account, so it grows
//! with every start. Only the `_meta` times follow the dialect; the user's
//! other times are ISO 8601 in both.

use super::common::Ctx;
use crate::emulator::reply::Reply;

/// `GET /users/current`.
pub(super) fn current(ctx: &Ctx<'_>) -> Reply {
    Reply::ok(&ctx.app.db().user(ctx.dialect))
}

/// `GET /users/current/subscription`.
pub(super) fn subscription(ctx: &Ctx<'_>) -> Reply {
    Reply::ok(&ctx.app.db().subscription())
}
