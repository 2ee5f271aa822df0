//! JSON wire forms shared by REST and the socket, written as protojson writes them:
//! proto field names, zero values omitted, `content` as a JSON string, `create_time` as RFC3339
//! seconds (NAKAMA-SPEC §1.1, §2.1, §4.2).

use serde::Serialize;

use crate::core::notifications::Notification;
use crate::core::presence::Event;
use crate::core::time::rfc3339_secs;

/// Where a notification is shown: the two differ only in how a system sender is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Pushed on the socket: a system sender is the nil UUID.
    Push,
    /// Listed over REST: a system sender is omitted.
    List,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize)]
pub struct WireNotification<'a> {
    id: String,
    subject: &'a str,
    content: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    code: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    sender_id: String,
    create_time: String,
    #[serde(skip_serializing_if = "is_false")]
    persistent: bool,
}

impl<'a> WireNotification<'a> {
    pub fn new(n: &'a Notification, view: View) -> Self {
        let sender_id = match (n.sender_id, view) {
            (None, _) => String::new(),
            (Some(s), View::List) if s.is_nil() => String::new(),
            (Some(s), _) => s.to_string(),
        };
        WireNotification {
            id: n.id.to_string(),
            subject: &n.subject,
            content: &n.content,
            code: n.code,
            sender_id,
            create_time: rfc3339_secs(n.create_time.div_euclid(1_000_000)),
            persistent: n.persistent,
        }
    }
}

#[derive(Serialize)]
struct NotificationList<'a> {
    notifications: Vec<WireNotification<'a>>,
}

#[derive(Serialize)]
struct PushEnvelope<'a> {
    notifications: NotificationList<'a>,
}

/// The socket frame for a server-initiated event (no `cid`).
pub fn encode_event(event: &Event) -> String {
    match event {
        Event::Notifications(list) => {
            let frame = PushEnvelope {
                notifications: NotificationList {
                    notifications: list
                        .iter()
                        .map(|n| WireNotification::new(n, View::Push))
                        .collect(),
                },
            };
            serde_json::to_string(&frame).unwrap_or_else(|_| "{}".into())
        }
        Event::ChannelMessage(m) => super::chat::message_event(m),
        Event::ChannelPresence(change) => super::chat::presence_event(change),
        Event::Inbox(event) => super::inbox::event_frame(event),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use uuid::Uuid;

    use super::encode_event;
    use crate::core::notifications::Notification;
    use crate::core::presence::{CopyFrame, Event, Outbound};

    fn copy(id: Uuid, user: Uuid, content: &str) -> Event {
        Event::Notifications(vec![Notification {
            id,
            user_id: user,
            subject: "season \"one\" ends".into(),
            content: content.into(),
            code: 7,
            sender_id: Some(Uuid::nil()),
            create_time: 1_764_000_000_123_456,
            persistent: true,
            expire_time: None,
        }])
    }

    /// A broadcast's copies share one encoded template with the id swapped: every copy's frame
    /// must equal its own full encoding, even when the content carries the template's id.
    #[test]
    fn broadcast_copies_encode_as_their_own_frames() {
        let first = Uuid::now_v7();
        let content = format!("{{\"ref\":\"{first}\",\"n\":[1,2]}}");
        let shared = Arc::new(CopyFrame::default());
        for k in 0..4u128 {
            let id = if k == 0 { first } else { Uuid::from_u128(k) };
            let user = Uuid::from_u128(1000 + k);
            let msg = Outbound::copy(copy(id, user, &content), id, &shared);
            let frame = msg.encoded(encode_event);
            assert_eq!(&*frame, encode_event(&copy(id, user, &content)));
            assert!(frame.contains(&format!("\"id\":\"{id}\"")), "{frame}");
        }
    }
}
