//! Realtime chat channels (Nakama's pipeline_channel/core_channel): direct messages between
//! two users and named rooms. A socket joins a channel, sends messages to everyone in it, and
//! leaves (or disconnects); persistent messages are stored and listed by
//! `GET /v2/channel/{id}`. Joining a direct channel while the other user is not in it sends
//! them the -1 notification through the same `Notifications::send` as everything else.
//!
//! Channel ids are Nakama's: `4.<lower uuid>.<higher uuid>.` for direct messages and
//! `2...<name>` for rooms. Group channels (`3.<group>..`) come with groups.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use uuid::Uuid;

use super::cluster::{tell, Bus, ClusterEvent, Directory, PresenceRow, PresenceUpdate};
use super::error::{Code, CoreError, CoreResult};
use super::notifications::{NewNotification, Notifications};
use super::presence::{Event, Outbound, SessionHandle};
use super::store::{ChannelStream, Store, StoredMessage};
use super::time::now_micros;

/// The reserved code of "someone wants to chat" (NAKAMA-SPEC §6).
pub const CODE_DM_REQUEST: i32 = -1;
/// Longest room name, in bytes.
pub const MAX_ROOM_NAME: usize = 64;
/// Largest history page.
pub const MAX_HISTORY: usize = 100;
/// Most channels one session may be in; bounds the registry per socket.
pub const MAX_JOINED: usize = 1000;

/// Which channel: parsed from a join target or a channel id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Channel {
    Room(String),
    /// The two users in id-text order (`lo <= hi`).
    Direct {
        lo: Uuid,
        hi: Uuid,
    },
}

impl Channel {
    pub fn direct(a: Uuid, b: Uuid) -> Channel {
        if a.to_string() <= b.to_string() {
            Channel::Direct { lo: a, hi: b }
        } else {
            Channel::Direct { lo: b, hi: a }
        }
    }

    /// Nakama's channel id text.
    pub fn id(&self) -> String {
        match self {
            Channel::Room(name) => format!("2...{name}"),
            Channel::Direct { lo, hi } => format!("4.{lo}.{hi}."),
        }
    }

    /// Parses a channel id; `None` for anything Nakama would not accept here.
    pub fn parse(id: &str) -> Option<Channel> {
        let mut parts = id.splitn(4, '.');
        let (mode, a, b, label) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        match mode {
            "2" if a.is_empty() && b.is_empty() && valid_room(label).is_ok() => {
                Some(Channel::Room(label.to_string()))
            }
            "4" if label.is_empty() => {
                let lo = Uuid::parse_str(a).ok()?;
                let hi = Uuid::parse_str(b).ok()?;
                Some(Channel::direct(lo, hi))
            }
            _ => None,
        }
    }

    fn stream(&self) -> ChannelStream {
        match self {
            Channel::Room(name) => ChannelStream {
                mode: 2,
                subject: Uuid::nil(),
                descriptor: Uuid::nil(),
                label: name.clone(),
            },
            Channel::Direct { lo, hi } => ChannelStream {
                mode: 4,
                subject: *lo,
                descriptor: *hi,
                label: String::new(),
            },
        }
    }
}

fn valid_room(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_ROOM_NAME {
        return Err("Channel name is required and must be 1-64 chars");
    }
    if name.chars().any(char::is_control) {
        return Err("Channel name must not contain control chars");
    }
    Ok(())
}

fn bad_target(why: &str) -> CoreError {
    CoreError::invalid(format!("{why}: Invalid channel target"))
}

/// One session in a channel, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelPresence {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub username: String,
    pub persistence: bool,
}

/// A chat message as delivered and listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelMessage {
    pub channel: Channel,
    /// The channel id as the reader named it (history) or as built (live).
    pub channel_id: String,
    pub message_id: Uuid,
    pub code: i32,
    pub sender_id: Uuid,
    pub username: String,
    pub content: String,
    /// Unix microseconds.
    pub create_time: i64,
    pub update_time: i64,
    pub persistent: bool,
}

/// Joins and leaves of visible presences, sent to everyone in the channel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresenceChange {
    pub channel: Channel,
    pub joins: Vec<ChannelPresence>,
    pub leaves: Vec<ChannelPresence>,
}

/// The answer to a join.
#[derive(Debug, Clone)]
pub struct Joined {
    pub channel: Channel,
    pub presences: Vec<ChannelPresence>,
    pub me: ChannelPresence,
}

/// A page of history.
#[derive(Debug, Clone)]
pub struct History {
    pub messages: Vec<ChannelMessage>,
    pub next_cursor: Option<String>,
    pub prev_cursor: Option<String>,
    pub cacheable_cursor: Option<String>,
}

struct Member {
    handle: Arc<SessionHandle>,
    presence: ChannelPresence,
    hidden: bool,
}

#[derive(Default)]
struct Registry {
    channels: HashMap<Channel, Vec<Member>>,
    by_session: HashMap<Uuid, Vec<Channel>>,
}

pub struct Channels {
    store: Arc<dyn Store>,
    notifications: Arc<Notifications>,
    registry: Mutex<Registry>,
    /// Messages and presence changes also reach members on other nodes.
    bus: Arc<dyn Bus>,
    /// Where members on other nodes are listed (for join replies and the -1 decision).
    directory: Arc<dyn Directory>,
}

/// What crosses the bus for a channel: delivered to this node's members of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChatEvent {
    Message(ChannelMessage),
    Presence(PresenceChange),
}

/// What the joining door asks for.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub target: String,
    /// 0 or 1 room, 2 direct, 3 group.
    pub kind: i64,
    pub persistence: bool,
    pub hidden: bool,
}

impl Channels {
    pub fn new(
        store: Arc<dyn Store>,
        notifications: Arc<Notifications>,
        bus: Arc<dyn Bus>,
        directory: Arc<dyn Directory>,
    ) -> Self {
        Channels {
            store,
            notifications,
            registry: Mutex::default(),
            bus,
            directory,
        }
    }

    /// Delivers another node's channel event to this node's members of the channel.
    pub fn apply_remote(&self, event: ChatEvent) {
        let (channel, outbound) = match event {
            ChatEvent::Message(m) => (m.channel.clone(), Event::ChannelMessage(m)),
            ChatEvent::Presence(p) => (p.channel.clone(), Event::ChannelPresence(p)),
        };
        self.deliver_local(&channel, &Outbound::new(outbound));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins `session` to the channel the request names (Nakama's checks and messages). A
    /// session already in the channel keeps its first settings and gets the same answer.
    pub async fn join(&self, session: &Arc<SessionHandle>, req: JoinRequest) -> CoreResult<Joined> {
        let channel = match req.kind {
            0 | 1 => {
                valid_room(&req.target).map_err(bad_target)?;
                Channel::Room(req.target.clone())
            }
            2 => {
                if req.target.is_empty() {
                    return Err(CoreError::invalid("Invalid channel target"));
                }
                let other = Uuid::parse_str(&req.target)
                    .ok()
                    .filter(|u| !u.is_nil())
                    .ok_or_else(|| bad_target("Invalid user ID in direct message join"))?;
                let reachable = self
                    .store
                    .user_exists_unblocked(other, session.user_id)
                    .await
                    .map_err(|e| {
                        CoreError::new(Code::Internal, format!("Failed to look up user ID: {e}"))
                    })?;
                if !reachable {
                    return Err(bad_target("User ID not found"));
                }
                Channel::direct(session.user_id, other)
            }
            3 => return Err(bad_target("Group channels are not supported yet")),
            _ => return Err(CoreError::invalid("Invalid channel type")),
        };
        let me = ChannelPresence {
            user_id: session.user_id,
            session_id: session.session_id,
            username: session.username.clone(),
            persistence: req.persistence,
        };
        let (mut joined, is_new, mut others_visible) = {
            let mut reg = self.lock();
            let joined_count = reg.by_session.get(&session.session_id).map_or(0, Vec::len);
            let members = reg.channels.entry(channel.clone()).or_default();
            let existing = members
                .iter()
                .find(|m| m.presence.session_id == session.session_id)
                .map(|m| m.presence.clone());
            let is_new = existing.is_none();
            if is_new && joined_count >= MAX_JOINED {
                return Err(CoreError::invalid(format!(
                    "a socket may be in at most {MAX_JOINED} channels"
                )));
            }
            let me = existing.unwrap_or(me);
            if is_new {
                members.push(Member {
                    handle: session.clone(),
                    presence: me.clone(),
                    hidden: req.hidden,
                });
            }
            let presences: Vec<ChannelPresence> = members
                .iter()
                .filter(|m| !m.hidden)
                .filter(|m| !(is_new && m.presence.session_id == session.session_id))
                .map(|m| m.presence.clone())
                .collect();
            let other = match &channel {
                Channel::Direct { lo, hi } if *lo == session.user_id => Some(*hi),
                Channel::Direct { lo, .. } => Some(*lo),
                Channel::Room(_) => None,
            };
            let other_visible =
                other.is_none_or(|o| members.iter().any(|m| !m.hidden && m.presence.user_id == o));
            if is_new {
                reg.by_session
                    .entry(session.session_id)
                    .or_default()
                    .push(channel.clone());
            }
            (
                Joined {
                    channel: channel.clone(),
                    presences,
                    me: me.clone(),
                },
                is_new,
                other_visible,
            )
        };
        if is_new {
            self.directory.record(PresenceUpdate::Up(PresenceRow {
                stream: channel.id(),
                session_id: session.session_id,
                user_id: session.user_id,
                username: session.username.clone(),
                persistence: joined.me.persistence,
                hidden: req.hidden,
            }));
        }
        match self.directory.members_elsewhere(&channel.id()).await {
            Ok(remote) => {
                for m in remote.into_iter().filter(|m| !m.hidden) {
                    if let Channel::Direct { lo, hi } = &channel {
                        others_visible |=
                            m.user_id != session.user_id && (m.user_id == *lo || m.user_id == *hi);
                    }
                    joined.presences.push(ChannelPresence {
                        user_id: m.user_id,
                        session_id: m.session_id,
                        username: m.username,
                        persistence: m.persistence,
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list channel members on other nodes"),
        }
        if is_new && !req.hidden {
            self.broadcast_presence(&channel, vec![joined.me.clone()], Vec::new());
        }
        if is_new && !others_visible {
            if let Channel::Direct { lo, hi } = &channel {
                let other = if *lo == session.user_id { *hi } else { *lo };
                self.dm_request(session, other).await;
            }
        }
        Ok(joined)
    }

    /// -1 to the other user of a direct channel. Failures are logged; the join stands.
    async fn dm_request(&self, session: &SessionHandle, other: Uuid) {
        let name = &session.username;
        let sent = self
            .notifications
            .send(vec![NewNotification {
                user_id: other,
                subject: format!("{name} wants to chat"),
                content: super::gojson::string_object(&[("username", name)]),
                code: CODE_DM_REQUEST,
                sender_id: Some(session.user_id),
                persistent: true,
                expire_time: None,
                keys: Default::default(),
            }])
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e.message, "could not send the direct message request");
        }
    }

    /// Leaves a channel; leaving one the session is not in is not an error.
    pub fn leave(&self, session: &SessionHandle, channel_id: &str) -> CoreResult<()> {
        let channel = Channel::parse(channel_id)
            .ok_or_else(|| CoreError::invalid("Invalid channel identifier"))?;
        let left = self.remove(session.session_id, &channel);
        if let Some(presence) = left {
            self.broadcast_presence(&channel, Vec::new(), vec![presence]);
        }
        if let Some(list) = self.lock().by_session.get_mut(&session.session_id) {
            list.retain(|c| *c != channel);
        }
        Ok(())
    }

    /// Leaves every channel of a session that has closed.
    pub fn leave_all(&self, session_id: Uuid) {
        let channels = self
            .lock()
            .by_session
            .remove(&session_id)
            .unwrap_or_default();
        for channel in channels {
            if let Some(presence) = self.remove(session_id, &channel) {
                self.broadcast_presence(&channel, Vec::new(), vec![presence]);
            }
        }
    }

    /// Takes the session out of the channel; its presence when it was visible.
    fn remove(&self, session_id: Uuid, channel: &Channel) -> Option<ChannelPresence> {
        let mut reg = self.lock();
        let members = reg.channels.get_mut(channel)?;
        let at = members
            .iter()
            .position(|m| m.presence.session_id == session_id)?;
        let member = members.remove(at);
        if members.is_empty() {
            reg.channels.remove(channel);
        }
        drop(reg);
        self.directory.record(PresenceUpdate::Down {
            stream: channel.id(),
            session_id,
        });
        (!member.hidden).then_some(member.presence)
    }

    fn broadcast_presence(
        &self,
        channel: &Channel,
        joins: Vec<ChannelPresence>,
        leaves: Vec<ChannelPresence>,
    ) {
        let change = PresenceChange {
            channel: channel.clone(),
            joins,
            leaves,
        };
        tell(
            &self.bus,
            ClusterEvent::Chat(ChatEvent::Presence(change.clone())),
        );
        self.deliver_local(channel, &Outbound::new(Event::ChannelPresence(change)));
    }

    fn deliver_local(&self, channel: &Channel, event: &Arc<Outbound>) {
        let handles: Vec<Arc<SessionHandle>> = self
            .lock()
            .channels
            .get(channel)
            .map(|members| members.iter().map(|m| m.handle.clone()).collect())
            .unwrap_or_default();
        for handle in handles {
            handle.offer(event);
        }
    }

    /// Sends a message from `session` to everyone in the channel (the sender too), storing
    /// it first when the sender joined with persistence. Returns the message for the ack.
    pub async fn send(
        &self,
        session: &SessionHandle,
        channel_id: &str,
        content: &str,
    ) -> CoreResult<ChannelMessage> {
        let channel = Channel::parse(channel_id)
            .ok_or_else(|| CoreError::invalid("Invalid channel identifier"))?;
        let is_object = content.trim_start().starts_with('{')
            && serde_json::from_str::<serde::de::IgnoredAny>(content).is_ok();
        if !is_object {
            return Err(CoreError::invalid(
                "Message content must be a valid JSON object",
            ));
        }
        let me = self
            .lock()
            .channels
            .get(&channel)
            .and_then(|members| {
                members
                    .iter()
                    .find(|m| m.presence.session_id == session.session_id)
                    .map(|m| m.presence.clone())
            })
            .ok_or_else(|| CoreError::invalid("Must join channel before sending messages"))?;
        let now = now_micros();
        let message = ChannelMessage {
            channel_id: channel.id(),
            channel: channel.clone(),
            message_id: Uuid::new_v4(),
            code: 0,
            sender_id: session.user_id,
            username: me.username.clone(),
            content: content.to_string(),
            create_time: now,
            update_time: now,
            persistent: me.persistence,
        };
        if message.persistent {
            self.store
                .insert_message(channel.stream(), stored(&message))
                .await
                .map_err(|e| {
                    CoreError::new(
                        Code::Internal,
                        format!("Could not persist message to channel history: {e}"),
                    )
                })?;
        }
        tell(
            &self.bus,
            ClusterEvent::Chat(ChatEvent::Message(message.clone())),
        );
        self.deliver_local(
            &channel,
            &Outbound::new(Event::ChannelMessage(message.clone())),
        );
        Ok(message)
    }

    /// A page of a channel's stored messages for `reader` (Nakama's ListChannelMessages):
    /// a direct channel only for its two users. `forward` is oldest first.
    pub async fn history(
        &self,
        reader: Uuid,
        channel_id: &str,
        limit: usize,
        forward: bool,
        cursor: &str,
    ) -> CoreResult<History> {
        let invalid_id = || CoreError::invalid("Invalid channel ID.");
        if channel_id.is_empty() {
            return Err(invalid_id());
        }
        if !(1..=MAX_HISTORY).contains(&limit) {
            return Err(CoreError::invalid(
                "Invalid limit - limit must be between 1 and 100.",
            ));
        }
        let channel = Channel::parse(channel_id).ok_or_else(invalid_id)?;
        if let Channel::Direct { lo, hi } = &channel {
            if reader != *lo && reader != *hi {
                return Err(CoreError::invalid("Channel not found."));
            }
        }
        let stream = channel.stream();
        let position = if cursor.is_empty() {
            None
        } else {
            let c = HistoryCursor::decode(cursor)
                .filter(|c| c.forward == forward && c.stream_key == stream.key())
                .ok_or_else(|| CoreError::invalid("Cursor is invalid or expired."))?;
            Some(c)
        };
        // A "previous" cursor walks the other way from its position; rows come back in the
        // page's own order either way.
        let (after, ascending) = match &position {
            None => (None, forward),
            Some(c) => (Some((c.create_time, c.id)), forward == c.is_next),
        };
        let mut rows = self
            .store
            .list_messages(stream.clone(), after, ascending, limit + 1)
            .await
            .map_err(|e| CoreError::internal("Error listing messages from channel.", e))?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        if ascending != forward {
            rows.reverse();
        }
        let cursor_at = |m: &StoredMessage, is_next: bool| {
            HistoryCursor {
                stream_key: stream.key(),
                create_time: m.create_time,
                id: m.id,
                forward,
                is_next,
            }
            .encode()
        };
        let is_next_page = position.as_ref().is_none_or(|c| c.is_next);
        let next_cursor = match (is_next_page, rows.last()) {
            (true, Some(last)) if more => Some(cursor_at(last, true)),
            (false, Some(last)) => Some(cursor_at(last, true)),
            _ => None,
        };
        let prev_cursor = match (&position, rows.first()) {
            (Some(c), Some(first)) if c.is_next || more => Some(cursor_at(first, false)),
            _ => None,
        };
        let cacheable_cursor = rows.last().map(|last| cursor_at(last, true));
        let messages = rows
            .into_iter()
            .map(|m| ChannelMessage {
                channel: channel.clone(),
                channel_id: channel_id.to_string(),
                message_id: m.id,
                code: m.code,
                sender_id: m.sender_id,
                username: m.username,
                content: m.content,
                create_time: m.create_time,
                update_time: m.update_time,
                persistent: true,
            })
            .collect();
        Ok(History {
            messages,
            next_cursor,
            prev_cursor,
            cacheable_cursor,
        })
    }
}

fn stored(m: &ChannelMessage) -> StoredMessage {
    StoredMessage {
        id: m.message_id,
        code: m.code,
        sender_id: m.sender_id,
        username: m.username.clone(),
        content: m.content.clone(),
        create_time: m.create_time,
        update_time: m.update_time,
    }
}

/// The history cursor: opaque to clients, URL-safe base64 of its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HistoryCursor {
    stream_key: String,
    create_time: i64,
    id: Uuid,
    forward: bool,
    is_next: bool,
}

impl HistoryCursor {
    fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}|{}|{}|{}|{}",
            self.create_time,
            self.id.simple(),
            u8::from(self.forward),
            u8::from(self.is_next),
            self.stream_key
        ))
    }

    fn decode(text: &str) -> Option<HistoryCursor> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.splitn(5, '|');
        Some(HistoryCursor {
            create_time: parts.next()?.parse().ok()?,
            id: Uuid::parse_str(parts.next()?).ok()?,
            forward: parts.next()? == "1",
            is_next: parts.next()? == "1",
            stream_key: parts.next()?.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_are_nakamas() {
        let a = Uuid::parse_str("9c0a0000-0000-0000-0000-000000000011").unwrap();
        let b = Uuid::parse_str("1b2e0000-0000-0000-0000-00000000008f").unwrap();
        let dm = Channel::direct(a, b);
        assert_eq!(dm, Channel::direct(b, a));
        assert_eq!(dm.id(), format!("4.{b}.{a}."));
        assert_eq!(Channel::parse(&dm.id()), Some(dm));
        assert_eq!(
            Channel::parse("2...lobby"),
            Some(Channel::Room("lobby".into()))
        );
        for bad in [
            "",
            "4..",
            "4.x.y.",
            "2...",
            "5.a.b.c",
            "2.x..lobby",
            "4.{a}.{b}.z",
        ] {
            assert_eq!(Channel::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn history_cursors_round_trip() {
        let c = HistoryCursor {
            stream_key: "4|a|b|".into(),
            create_time: 42,
            id: Uuid::new_v4(),
            forward: true,
            is_next: false,
        };
        assert_eq!(HistoryCursor::decode(&c.encode()), Some(c));
        assert_eq!(HistoryCursor::decode("!!"), None);
    }
}
