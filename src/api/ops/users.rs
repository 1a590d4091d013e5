//! The User operations: who the key belongs to, and their plan.
//!
//! Both are plain GETs of one object. Nothing subtle, but `getCurrentUser`
//! is the cheapest call there is, so a caller that only wants to know
//! whether the key works asks this one.

use crate::api::client::Client;
use crate::api::error::Error;
use crate::api::models::{Subscription, User};
use crate::api::operation::Operation;

impl Client {
    /// `getCurrentUser`.
    pub async fn current_user(&self) -> Result<User, Error> {
        self.get_object(Operation::GetCurrentUser, &["users", "current"])
            .await
    }

    /// `getCurrentUserSubscription`.
    pub async fn subscription(&self) -> Result<Subscription, Error> {
        self.get_object(
            Operation::GetCurrentUserSubscription,
            &["users", "current", "subscription"],
        )
        .await
    }
}
