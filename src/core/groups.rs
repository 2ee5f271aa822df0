//! Groups (Nakama's groups and group_edge): create, update, delete, join, leave, the member
//! operations (add, kick, promote, demote, ban) and the three lists. Who may do what to whom
//! is decided here, by [`transition`], a pure function the store calls inside its
//! transaction so a decision and its write cannot be separated by another request. The -4
//! (added) and -5 (join request) notifications go through `Notifications::send`.

use std::sync::Arc;

use base64::Engine;
use uuid::Uuid;

use super::error::{Code, CoreError, CoreResult};
use super::notifications::{NewNotification, Notifications};
use super::presence::Presence;
use super::store::{
    GroupFilter, GroupJoin, GroupLeave, GroupMembers, GroupRecord, GroupUpdate, Store, UserRecord,
};
use super::time::now_micros;

pub const SUPERADMIN: i32 = 0;
pub const ADMIN: i32 = 1;
pub const MEMBER: i32 = 2;
pub const JOIN_REQUEST: i32 = 3;
pub const BANNED: i32 = 4;

/// Reserved notification codes (NAKAMA-SPEC §6).
pub const CODE_GROUP_ADD: i32 = -4;
pub const CODE_GROUP_JOIN_REQUEST: i32 = -5;

/// A group's size when none is given.
pub const DEFAULT_MAX_COUNT: i64 = 100;
/// Most users one member operation may name.
pub const MAX_TARGETS: usize = 1000;
/// Largest page of a group list.
pub const MAX_LIST: usize = 100;

/// A member operation by an admin (or the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberOp {
    Add,
    Kick,
    Promote,
    Demote,
    Ban,
}

/// What one member operation does to one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Skip,
    /// The target's membership becomes this state (created when it had none).
    Set(i32),
    Remove,
}

/// Nakama's rules for `op` by a caller in state `caller` (`None`: the server itself, which
/// acts as a superadmin) on a target in state `target` (`None`: no membership).
/// `other_superadmins` counts superadmins besides the target. Callers below admin are
/// refused before this is asked.
pub fn transition(
    op: MemberOp,
    caller: Option<i32>,
    target: Option<i32>,
    other_superadmins: usize,
) -> Transition {
    let caller = caller.unwrap_or(SUPERADMIN);
    let last_superadmin = target == Some(SUPERADMIN) && other_superadmins == 0;
    match (op, target) {
        (MemberOp::Add, None) => Transition::Set(MEMBER),
        (MemberOp::Add, Some(JOIN_REQUEST)) => Transition::Set(MEMBER),
        (MemberOp::Add, Some(_)) => Transition::Skip,
        (MemberOp::Kick | MemberOp::Ban, None) => Transition::Skip,
        (MemberOp::Kick | MemberOp::Ban, Some(t)) => {
            let allowed = if caller == SUPERADMIN {
                !last_superadmin
            } else {
                t > ADMIN
            };
            match (allowed, op) {
                (false, _) => Transition::Skip,
                (true, MemberOp::Ban) => Transition::Set(BANNED),
                (true, _) => Transition::Remove,
            }
        }
        (MemberOp::Promote, Some(t)) if t > SUPERADMIN && t > caller && t <= MEMBER => {
            Transition::Set(t - 1)
        }
        (MemberOp::Demote, Some(t)) if t >= caller && t < MEMBER && !last_superadmin => {
            Transition::Set(t + 1)
        }
        _ => Transition::Skip,
    }
}

/// Counts toward `edge_count` (superadmins, admins, members).
pub fn is_member(state: Option<i32>) -> bool {
    state.is_some_and(|s| (SUPERADMIN..=MEMBER).contains(&s))
}

/// A new group as asked for.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub name: String,
    pub description: String,
    pub lang_tag: String,
    pub avatar_url: String,
    pub metadata: String,
    pub open: bool,
    pub max_count: i64,
}

/// A page of groups, members or a user's groups, with the next page's cursor.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub cursor: Option<String>,
}

pub struct Groups {
    store: Arc<dyn Store>,
    notifications: Arc<Notifications>,
    presence: Arc<Presence>,
}

fn internal(public: &str) -> impl FnOnce(super::store::StoreError) -> CoreError + '_ {
    move |e| CoreError::internal(public, e)
}

fn not_found(message: &str) -> CoreError {
    CoreError::new(Code::NotFound, message)
}

impl Groups {
    pub fn new(
        store: Arc<dyn Store>,
        notifications: Arc<Notifications>,
        presence: Arc<Presence>,
    ) -> Self {
        Groups {
            store,
            notifications,
            presence,
        }
    }

    /// Creates a group with `owner` as its superadmin (`creator` is recorded as creator).
    pub async fn create(&self, owner: Uuid, creator: Uuid, g: NewGroup) -> CoreResult<GroupRecord> {
        if g.name.is_empty() {
            return Err(CoreError::invalid("Group name must be set."));
        }
        if g.max_count < 1 || g.max_count > i32::MAX as i64 {
            return Err(CoreError::invalid("Group max count must be >= 1 when set."));
        }
        if g.name.chars().count() > 255
            || g.description.chars().count() > 255
            || g.avatar_url.chars().count() > 512
            || g.lang_tag.chars().count() > 18
        {
            return Err(CoreError::invalid(
                "Group name and description are at most 255 characters, avatar_url 512, lang_tag 18.",
            ));
        }
        let now = now_micros();
        let record = GroupRecord {
            id: Uuid::new_v4(),
            creator_id: creator,
            name: g.name,
            description: g.description,
            avatar_url: g.avatar_url,
            lang_tag: if g.lang_tag.is_empty() {
                "en".into()
            } else {
                g.lang_tag
            },
            metadata: g.metadata,
            open: g.open,
            edge_count: 1,
            max_count: g.max_count,
            create_time: now / 1_000_000,
            update_time: now / 1_000_000,
        };
        match self.store.create_group(record.clone(), owner, now).await {
            Ok(()) => Ok(record),
            Err(super::store::StoreError::Conflict(_)) => {
                Err(CoreError::new(Code::AlreadyExists, "Group name is in use."))
            }
            Err(super::store::StoreError::MissingReference(_)) => {
                Err(CoreError::invalid("group creator user ID not valid"))
            }
            Err(e) => Err(CoreError::internal(
                "Error while trying to create group.",
                e,
            )),
        }
    }

    /// Changes a group; the caller must be an admin or superadmin.
    pub async fn update(&self, caller: Uuid, group: Uuid, u: GroupUpdate) -> CoreResult<()> {
        if u.name.as_deref() == Some("") {
            return Err(CoreError::invalid("Group name cannot be empty."));
        }
        if u.lang_tag.as_deref() == Some("") {
            return Err(CoreError::invalid("Group language cannot be empty."));
        }
        let state = self
            .store
            .group_edge_state(group, caller)
            .await
            .map_err(internal("Error while trying to update group."))?;
        if !matches!(state, Some(s) if s <= ADMIN) {
            return Err(not_found(
                "Group not found or you're not allowed to update.",
            ));
        }
        if u.is_empty() {
            return Err(CoreError::invalid("Specify at least one field to update."));
        }
        match self.store.update_group(group, u, now_micros()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(CoreError::invalid("No new fields in group update.")),
            Err(super::store::StoreError::Conflict(_)) => {
                Err(CoreError::invalid("Group name is in use."))
            }
            Err(e) => Err(CoreError::internal(
                "Error while trying to update group.",
                e,
            )),
        }
    }

    /// Deletes a group; the caller must be a superadmin.
    pub async fn delete(&self, caller: Uuid, group: Uuid) -> CoreResult<()> {
        let state = self
            .store
            .group_edge_state(group, caller)
            .await
            .map_err(internal("Error while trying to delete group."))?;
        if state != Some(SUPERADMIN) {
            return Err(CoreError::invalid(
                "Group not found or you're not allowed to delete.",
            ));
        }
        self.store
            .delete_group(group)
            .await
            .map_err(internal("Error while trying to delete group."))
    }

    /// Joins an open group, or asks to join a closed one (every admin gets -5).
    pub async fn join(&self, user: Uuid, username: &str, group: Uuid) -> CoreResult<()> {
        let outcome = self
            .store
            .join_group(group, user, now_micros())
            .await
            .map_err(internal("Error while trying to join group."))?;
        match outcome {
            GroupJoin::NotFound => Err(not_found("Group not found.")),
            GroupJoin::Full => Err(CoreError::invalid("Group is full.")),
            GroupJoin::Nothing | GroupJoin::Joined => Ok(()),
            GroupJoin::Requested { admins } => {
                let content = super::gojson::string_object(&[
                    ("group_id", &group.to_string()),
                    ("username", username),
                ]);
                let batch = admins
                    .into_iter()
                    .map(|admin| NewNotification {
                        user_id: admin,
                        subject: format!("User {username} wants to join your group"),
                        content: content.clone(),
                        code: CODE_GROUP_JOIN_REQUEST,
                        sender_id: Some(user),
                        persistent: true,
                        expire_time: None,
                        keys: Default::default(),
                    })
                    .collect::<Vec<_>>();
                if let Err(e) = self.notifications.send(batch).await {
                    tracing::warn!(error = %e.message, "could not send join request notifications");
                }
                Ok(())
            }
        }
    }

    /// Leaves a group; the last superadmin may not, unless they are its only member (then the
    /// group goes).
    pub async fn leave(&self, user: Uuid, group: Uuid) -> CoreResult<()> {
        match self
            .store
            .leave_group(group, user)
            .await
            .map_err(internal("Error while trying to leave group."))?
        {
            GroupLeave::LastSuperadmin => Err(CoreError::invalid(
                "Cannot leave group when you are the last superadmin.",
            )),
            GroupLeave::Done => Ok(()),
        }
    }

    /// A member operation on `targets` by `caller` (`None`: the server, as a superadmin).
    /// Adds send -4 to each user added or whose join request was accepted.
    pub async fn members(
        &self,
        caller: Option<Uuid>,
        group: Uuid,
        op: MemberOp,
        targets: Vec<Uuid>,
    ) -> CoreResult<()> {
        if targets.len() > MAX_TARGETS {
            return Err(CoreError::invalid(format!(
                "at most {MAX_TARGETS} user ids per call"
            )));
        }
        let public = match op {
            MemberOp::Add => "Error while trying to add users to a group.",
            MemberOp::Kick => "Error while trying to kick users from a group.",
            MemberOp::Promote => "Error while trying to promote users in a group.",
            MemberOp::Demote => "Error while trying to demote users in a group.",
            MemberOp::Ban => "Error while trying to ban users from a group.",
        };
        let targets: Vec<Uuid> = targets.into_iter().filter(|t| Some(*t) != caller).collect();
        let outcome = self
            .store
            .group_members(group, caller, op, targets, now_micros())
            .await
            .map_err(internal(public))?;
        match outcome {
            GroupMembers::Denied => Err(not_found("Group not found or permission denied.")),
            GroupMembers::NotFound => Err(not_found("Group not found.")),
            GroupMembers::Full => Err(CoreError::invalid("Group is full.")),
            GroupMembers::UnknownUser => Err(CoreError::invalid("One or more users not found.")),
            GroupMembers::Done { group, added } => {
                if op == MemberOp::Add && !added.is_empty() {
                    let content = super::gojson::string_object(&[
                        ("group_id", &group.id.to_string()),
                        ("name", &group.name),
                    ]);
                    let batch = added
                        .into_iter()
                        .map(|user| NewNotification {
                            user_id: user,
                            subject: format!("You've been added to group {}", group.name),
                            content: content.clone(),
                            code: CODE_GROUP_ADD,
                            sender_id: Some(caller.unwrap_or_default()),
                            persistent: true,
                            expire_time: None,
                            keys: Default::default(),
                        })
                        .collect::<Vec<_>>();
                    if let Err(e) = self.notifications.send(batch).await {
                        tracing::warn!(error = %e.message, "could not send group add notifications");
                    }
                }
                Ok(())
            }
        }
    }

    /// Groups by name (case-insensitive, `%` as a trailing wildcard) or by filters.
    pub async fn list(
        &self,
        filter: GroupFilter,
        limit: usize,
        cursor: &str,
    ) -> CoreResult<Page<GroupRecord>> {
        let after = decode_cursor(cursor)?;
        let mut rows = self
            .store
            .list_groups(filter, after, limit + 1)
            .await
            .map_err(internal("Error while trying to list groups."))?;
        let cursor = next_cursor(&mut rows, limit, |g| (0, g.1));
        Ok(Page {
            items: rows.into_iter().map(|(g, _)| g).collect(),
            cursor,
        })
    }

    /// A group's members by state then age (bans only when `state` asks for them), each
    /// with its state and whether it is online on any node.
    pub async fn users(
        &self,
        group: Uuid,
        limit: usize,
        state: Option<i32>,
        cursor: &str,
    ) -> CoreResult<Page<(UserRecord, i32, bool)>> {
        let after = decode_state_cursor(cursor, state)?;
        let mut rows = self
            .store
            .list_group_users(group, state, after, limit + 1)
            .await
            .map_err(internal("Error while trying to list users in a group."))?;
        let cursor = next_cursor(&mut rows, limit, |r| (r.1 as i64, r.2));
        let ids: Vec<Uuid> = rows.iter().map(|r| r.0.id).collect();
        let online = self.presence.online_among(&ids).await;
        Ok(Page {
            items: rows
                .into_iter()
                .map(|(u, s, _)| {
                    let on = online.contains(&u.id);
                    (u, s, on)
                })
                .collect(),
            cursor,
        })
    }

    /// The groups a user is in (or asked to join), by state then age.
    pub async fn of_user(
        &self,
        user: Uuid,
        limit: usize,
        state: Option<i32>,
        cursor: &str,
    ) -> CoreResult<Page<(GroupRecord, i32)>> {
        let after = decode_state_cursor(cursor, state)?;
        let mut rows = self
            .store
            .list_user_groups(user, state, after, limit + 1)
            .await
            .map_err(internal("Error while trying to list groups for a user."))?;
        let cursor = next_cursor(&mut rows, limit, |r| (r.1 as i64, r.2));
        Ok(Page {
            items: rows.into_iter().map(|(g, s, _)| (g, s)).collect(),
            cursor,
        })
    }
}

/// Drops the look-ahead row and returns the cursor of the next page (which starts at it).
fn next_cursor<T>(
    rows: &mut Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> (i64, i64),
) -> Option<String> {
    if rows.len() <= limit {
        return None;
    }
    let next = rows.pop()?;
    rows.truncate(limit);
    let (a, b) = key(&next);
    Some(base64::engine::general_purpose::URL_SAFE.encode(format!("{a}:{b}")))
}

/// A member-list cursor, which must come from a list of the same `state` filter.
fn decode_state_cursor(text: &str, state: Option<i32>) -> CoreResult<Option<(i64, i64)>> {
    let after = decode_cursor(text)?;
    match (state, after) {
        (Some(s), Some((cursor_state, _))) if i64::from(s) != cursor_state => {
            Err(CoreError::invalid("Cursor is invalid."))
        }
        _ => Ok(after),
    }
}

/// A list cursor: `(state or 0, position)` of the first row of the page, inclusive.
fn decode_cursor(text: &str) -> CoreResult<Option<(i64, i64)>> {
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = || CoreError::invalid("Cursor is invalid.");
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(text)
        .map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (a, b) = raw.split_once(':').ok_or_else(invalid)?;
    Ok(Some((
        a.parse().map_err(|_| invalid())?,
        b.parse().map_err(|_| invalid())?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nakamas_role_rules() {
        use MemberOp::*;
        use Transition::*;
        let sa = Some(SUPERADMIN);
        let admin = Some(ADMIN);
        // Add: new users and join requests become members; everyone else is left alone.
        assert_eq!(transition(Add, admin, None, 1), Set(MEMBER));
        assert_eq!(transition(Add, admin, Some(JOIN_REQUEST), 1), Set(MEMBER));
        assert_eq!(transition(Add, admin, Some(BANNED), 1), Skip);
        // Kick/ban: admins reach members, requests and bans only; superadmins anyone but the
        // last superadmin; nobody without a membership.
        assert_eq!(transition(Kick, admin, Some(MEMBER), 1), Remove);
        assert_eq!(transition(Kick, admin, Some(ADMIN), 1), Skip);
        assert_eq!(transition(Kick, sa, Some(ADMIN), 1), Remove);
        assert_eq!(transition(Kick, sa, Some(SUPERADMIN), 0), Skip);
        assert_eq!(transition(Kick, sa, Some(SUPERADMIN), 1), Remove);
        assert_eq!(transition(Ban, admin, Some(MEMBER), 1), Set(BANNED));
        assert_eq!(transition(Ban, sa, None, 1), Skip);
        // Promote: one step up, never above the caller, never a request or a ban.
        assert_eq!(transition(Promote, sa, Some(ADMIN), 1), Set(SUPERADMIN));
        assert_eq!(transition(Promote, admin, Some(MEMBER), 1), Set(ADMIN));
        assert_eq!(transition(Promote, admin, Some(ADMIN), 1), Skip);
        assert_eq!(transition(Promote, sa, Some(JOIN_REQUEST), 1), Skip);
        // Demote: one step down, members stay, the last superadmin stays.
        assert_eq!(transition(Demote, sa, Some(SUPERADMIN), 1), Set(ADMIN));
        assert_eq!(transition(Demote, sa, Some(SUPERADMIN), 0), Skip);
        assert_eq!(transition(Demote, admin, Some(ADMIN), 1), Set(MEMBER));
        assert_eq!(transition(Demote, admin, Some(MEMBER), 1), Skip);
        // The server acts as a superadmin.
        assert_eq!(transition(Promote, None, Some(ADMIN), 1), Set(SUPERADMIN));
    }

    #[test]
    fn cursors() {
        let mut rows = vec![(1, 10), (1, 11), (2, 12)];
        let c = next_cursor(&mut rows, 2, |r| (r.0, r.1)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(decode_cursor(&c).unwrap(), Some((2, 12)));
        assert!(decode_cursor("%%").is_err());
        assert_eq!(decode_cursor("").unwrap(), None);
    }
}
