//! Friend imports from social networks, and the -6 notification (NAKAMA-SPEC §6: "a friend
//! joined the game"). Nakama imports Facebook or Steam friends at a social login: every
//! friend who already plays becomes a mutual friend and is told the new player arrived.
//!
//! The network side sits behind [`SocialProvider`]: it turns a player's access token into
//! their social id and their friends' social ids. Tidings cannot reach Facebook or Steam
//! from here, so no network provider ships yet; [`GivenFriends`] takes the ids from the
//! caller (the admin import route uses it), and everything after the provider (linking,
//! mutual edges, -6 through `Notifications::send`) is the real path a network provider
//! would feed.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::error::{CoreError, CoreResult};
use super::notifications::{NewNotification, Notifications};
use super::store::Store;
use super::time::now_micros;

/// The reserved code of "your friend has just joined the game".
pub const CODE_FRIEND_JOINED: i32 = -6;
/// Most friends one import may name.
pub const MAX_IMPORT: usize = 5000;

/// A player's identity and friends on one social network.
#[derive(Debug, Clone)]
pub struct SocialFriends {
    pub social_id: String,
    pub friend_ids: Vec<String>,
}

/// Where friend lists come from (Facebook's Graph API, Steam's Web API, ...).
#[async_trait]
pub trait SocialProvider: Send + Sync {
    /// The provider's name as stored with linked ids, e.g. "facebook".
    fn name(&self) -> &str;
    /// The player behind `token` and their friends' ids on this network.
    async fn friends(&self, token: &str) -> CoreResult<SocialFriends>;
}

/// A provider whose answer is given up front: for the admin import route and for tests.
pub struct GivenFriends {
    pub provider: String,
    pub friends: SocialFriends,
}

#[async_trait]
impl SocialProvider for GivenFriends {
    fn name(&self) -> &str {
        &self.provider
    }

    async fn friends(&self, _token: &str) -> CoreResult<SocialFriends> {
        Ok(self.friends.clone())
    }
}

pub struct Social {
    store: Arc<dyn Store>,
    notifications: Arc<Notifications>,
}

impl Social {
    pub fn new(store: Arc<dyn Store>, notifications: Arc<Notifications>) -> Self {
        Social {
            store,
            notifications,
        }
    }

    /// Links `user` to their social id on `provider` and makes every friend who already
    /// plays a mutual friend (unless an edge or a block already exists either way); each
    /// new friend gets -6 from `user`. Returns the new friends.
    pub async fn import(
        &self,
        user: Uuid,
        username: &str,
        provider: &dyn SocialProvider,
        token: &str,
    ) -> CoreResult<Vec<Uuid>> {
        let found = provider.friends(token).await?;
        if found.social_id.is_empty() || found.social_id.len() > 128 {
            return Err(CoreError::invalid("social id must be 1..128 characters"));
        }
        if found.friend_ids.len() > MAX_IMPORT {
            return Err(CoreError::invalid(format!(
                "at most {MAX_IMPORT} friends per import"
            )));
        }
        let linked = self
            .store
            .import_social_friends(
                user,
                provider.name().to_string(),
                found.social_id,
                found.friend_ids,
                now_micros(),
            )
            .await
            .map_err(|e| match e {
                super::store::StoreError::Conflict(_) => CoreError::new(
                    super::error::Code::AlreadyExists,
                    "Social account is already in use.",
                ),
                e => CoreError::internal("Error importing friends.", e),
            })?;
        let content = super::gojson::string_object(&[("username", username)]);
        let batch: Vec<NewNotification> = linked
            .iter()
            .map(|friend| NewNotification {
                user_id: *friend,
                subject: "Your friend has just joined the game".into(),
                content: content.clone(),
                code: CODE_FRIEND_JOINED,
                sender_id: Some(user),
                persistent: true,
                expire_time: None,
                keys: Default::default(),
            })
            .collect();
        if !batch.is_empty() {
            if let Err(e) = self.notifications.send(batch).await {
                tracing::warn!(error = %e.message, "could not send friend-joined notifications");
            }
        }
        Ok(linked)
    }
}
