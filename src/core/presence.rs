//! Who is online: user -> open sessions -> each session's bounded outbound queue.
//!
//! Delivery never waits on a socket. Each session has a bounded queue; when it is full the
//! session is closed with "session outgoing queue full" (Nakama does the same), so one slow
//! client cannot grow memory without limit or slow anyone else down.
//!
//! An [`Outbound`] is shared by every recipient session and caches its encoded frame, so a
//! broadcast is serialised once however many sockets it reaches. Encoding itself belongs to the
//! door that owns the wire format; core only stores the result.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, Notify};
use uuid::Uuid;

use super::cluster::{Directory, LocalDirectory, PresenceRow, PresenceUpdate};
use super::metrics::{Dropped, Metrics};
use super::notifications::Notification;

/// Something the server sends to a session on its own initiative.
#[derive(Debug)]
pub enum Event {
    /// One send call's notifications for this recipient, in send order.
    Notifications(Vec<Notification>),
    /// A chat message to everyone in a channel.
    ChannelMessage(super::channels::ChannelMessage),
    /// Joins and leaves in a channel.
    ChannelPresence(super::channels::PresenceChange),
    /// A change of the user's inbox, for sockets that asked for inbox events.
    Inbox(super::inbox::InboxEvent),
}

/// An event plus its encoded frame, computed at most once.
#[derive(Debug)]
pub struct Outbound {
    pub event: Event,
    encoded: OnceLock<Arc<str>>,
    /// The binary form, for sockets that asked for another wire format (protobuf).
    binary: OnceLock<Arc<[u8]>>,
    /// For one user's copy of a stored broadcast: its notification id and the frame the
    /// copies share.
    copy: Option<(Uuid, Arc<CopyFrame>)>,
}

/// The text frame shared by the per-user copies of one stored broadcast. Copies differ only
/// in the notification id, so the first copy a socket encodes becomes the template and every
/// other copy's frame is that text with the id swapped: one JSON encode per broadcast rather
/// than one per socket. Sound because the push frame writes `id` before anything a sender controls
/// (`api::wire` tests it), so the template's first occurrence of the id is the id.
#[derive(Debug, Default)]
pub struct CopyFrame {
    template: OnceLock<(Uuid, Arc<str>)>,
}

impl Outbound {
    pub fn new(event: Event) -> Arc<Outbound> {
        Arc::new(Outbound {
            event,
            encoded: OnceLock::new(),
            binary: OnceLock::new(),
            copy: None,
        })
    }

    /// One user's copy of a broadcast: `event` holds the copy (whose id is `id`), `shared`
    /// is the same for every copy of the broadcast.
    pub fn copy(event: Event, id: Uuid, shared: &Arc<CopyFrame>) -> Arc<Outbound> {
        Arc::new(Outbound {
            event,
            encoded: OnceLock::new(),
            binary: OnceLock::new(),
            copy: Some((id, shared.clone())),
        })
    }

    /// The encoded frame, produced by `encode` the first time any session asks.
    pub fn encoded(&self, encode: impl FnOnce(&Event) -> String) -> Arc<str> {
        self.encoded
            .get_or_init(|| match &self.copy {
                None => Arc::from(encode(&self.event)),
                Some((id, shared)) => {
                    if let Some((first, template)) = shared.template.get() {
                        if let Some(text) = swap_id(template, *first, *id) {
                            return text;
                        }
                        return Arc::from(encode(&self.event));
                    }
                    // Two copies encoded at once both encode in full; either makes the template.
                    let text: Arc<str> = Arc::from(encode(&self.event));
                    let _ = shared.template.set((*id, text.clone()));
                    text
                }
            })
            .clone()
    }

    /// The binary frame, produced by `encode` the first time a binary session asks.
    pub fn encoded_binary(&self, encode: impl FnOnce(&Event) -> Vec<u8>) -> Arc<[u8]> {
        self.binary
            .get_or_init(|| Arc::from(encode(&self.event)))
            .clone()
    }
}

/// `frame` with the first occurrence of `from`'s text replaced by `to`'s (same length); None
/// when `from` does not occur.
fn swap_id(frame: &str, from: Uuid, to: Uuid) -> Option<Arc<str>> {
    let mut from_buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let mut to_buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let from = from.hyphenated().encode_lower(&mut from_buf);
    let to = to.hyphenated().encode_lower(&mut to_buf);
    let at = frame.find(&*from)?;
    let mut out = String::with_capacity(frame.len());
    out.push_str(&frame[..at]);
    out.push_str(to);
    out.push_str(&frame[at + from.len()..]);
    Some(Arc::from(out))
}

/// Reserved notification codes of server-side disconnects (NAKAMA-SPEC §6).
pub const CODE_SINGLE_SOCKET: i32 = -7;
pub const CODE_BANNED: i32 = -8;

/// The close reason of a server-side disconnect (NAKAMA-SPEC §4.7).
pub const DISCONNECT_REASON: &str = "server-side session disconnect";

/// A request to close a session, with the reason sent in the close frame.
#[derive(Debug, Default)]
pub struct CloseSignal {
    reason: Mutex<Option<String>>,
    notify: Notify,
}

impl CloseSignal {
    /// Asks the session to close with `reason`; true for the first request (later reasons
    /// are ignored).
    pub fn close(&self, reason: &str) -> bool {
        // Short critical section, never held across an await.
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        let first = slot.is_none();
        if first {
            *slot = Some(reason.to_string());
        }
        drop(slot);
        self.notify.notify_one();
        first
    }

    /// Resolves with the reason once [`CloseSignal::close`] was called.
    pub async fn closed(&self) -> String {
        loop {
            if let Some(reason) = self
                .reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                return reason;
            }
            self.notify.notified().await;
        }
    }
}

/// One open socket.
#[derive(Debug)]
pub struct SessionHandle {
    pub session_id: Uuid,
    /// Unix microseconds the session opened, so a kick from another node spares sessions
    /// opened after it was decided.
    pub opened_at: i64,
    pub user_id: Uuid,
    pub username: String,
    /// The socket asked for inbox events (`tidings_inbox=true`); others never get them.
    pub inbox: bool,
    tx: mpsc::Sender<Arc<Outbound>>,
    pub close: CloseSignal,
}

impl SessionHandle {
    /// Queues `msg` on this session; closes the session if its queue is full. Returns false
    /// when `msg` was dropped because the queue was full.
    pub fn offer(&self, msg: &Arc<Outbound>) -> bool {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(msg.clone()) {
            // Until its task ends (a blocked write waits up to write_wait_ms) the session
            // stays registered and keeps refusing: say so once, not once per notification.
            if self.close.close("session outgoing queue full") {
                tracing::warn!(session = %self.session_id, "session outgoing queue full, closing");
            }
            return false;
        }
        true
    }
}

/// The registry of this node's online sessions; the [`Directory`] knows the other nodes'.
pub struct Presence {
    /// std Mutex: every critical section is a map lookup or a non-blocking send.
    users: Mutex<HashMap<Uuid, Vec<Arc<SessionHandle>>>>,
    directory: Arc<dyn Directory>,
    /// Deliveries and drops are counted where they happen.
    pub metrics: Arc<Metrics>,
}

impl Default for Presence {
    fn default() -> Self {
        Presence::new(Arc::new(LocalDirectory), Arc::default())
    }
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("sessions", &self.session_count())
            .finish()
    }
}

impl Presence {
    pub fn new(directory: Arc<dyn Directory>, metrics: Arc<Metrics>) -> Self {
        Presence {
            users: Mutex::default(),
            directory,
            metrics,
        }
    }

    /// Queues `msg` on `session`, counting a notification the full queue dropped.
    fn offer(&self, session: &SessionHandle, msg: &Arc<Outbound>) {
        if !session.offer(msg) {
            if let Event::Notifications(list) = &msg.event {
                self.metrics.dropped(list, Dropped::QueueFull);
            }
        }
    }

    /// Where other nodes' presences are known (channels record their members there too).
    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.directory
    }

    /// Registers a new session and returns it with the receiving end of its queue.
    pub fn register(
        &self,
        user_id: Uuid,
        username: &str,
        queue_size: usize,
        inbox: bool,
    ) -> (Arc<SessionHandle>, mpsc::Receiver<Arc<Outbound>>) {
        let (tx, rx) = mpsc::channel(queue_size.max(1));
        let handle = Arc::new(SessionHandle {
            session_id: Uuid::new_v4(),
            opened_at: super::time::now_micros(),
            user_id,
            username: username.to_string(),
            inbox,
            tx,
            close: CloseSignal::default(),
        });
        self.lock().entry(user_id).or_default().push(handle.clone());
        self.directory.record(PresenceUpdate::Up(PresenceRow {
            stream: String::new(),
            session_id: handle.session_id,
            user_id,
            username: username.to_string(),
            persistence: false,
            hidden: false,
        }));
        (handle, rx)
    }

    pub fn unregister(&self, handle: &SessionHandle) {
        let mut users = self.lock();
        if let Some(list) = users.get_mut(&handle.user_id) {
            list.retain(|h| h.session_id != handle.session_id);
            if list.is_empty() {
                users.remove(&handle.user_id);
            }
        }
        drop(users);
        self.directory.record(PresenceUpdate::Down {
            stream: String::new(),
            session_id: handle.session_id,
        });
    }

    /// The user's open sessions, oldest first.
    pub fn sessions_of(&self, user_id: Uuid) -> Vec<Arc<SessionHandle>> {
        self.lock().get(&user_id).cloned().unwrap_or_default()
    }

    /// The session `session_id` on this node, if it is open. Walks every session: for the
    /// rare script call that names one (`nk.session_disconnect`), not for delivery.
    pub fn session(&self, session_id: Uuid) -> Option<Arc<SessionHandle>> {
        self.lock()
            .values()
            .flatten()
            .find(|s| s.session_id == session_id)
            .cloned()
    }

    /// True when the user has a socket on this node (where to deliver).
    pub fn is_online(&self, user_id: Uuid) -> bool {
        self.lock().contains_key(&user_id)
    }

    /// Those of `users` with a socket on any node: the `online` flag clients see. When the
    /// directory cannot be asked, the answer is this node's alone (logged), not an error.
    pub async fn online_among(&self, users: &[Uuid]) -> HashSet<Uuid> {
        let mut online: HashSet<Uuid> = {
            let local = self.lock();
            users
                .iter()
                .filter(|u| local.contains_key(u))
                .copied()
                .collect()
        };
        let rest: Vec<Uuid> = users
            .iter()
            .filter(|u| !online.contains(u))
            .copied()
            .collect();
        if !rest.is_empty() {
            match self.directory.online_elsewhere(&rest).await {
                Ok(elsewhere) => online.extend(elsewhere),
                Err(e) => tracing::warn!(error = %e, "cannot ask other nodes who is online"),
            }
        }
        online
    }

    /// Up to `limit` of this node's sessions, in no particular order (the admin console's
    /// live view; the lock is held for `limit` clones, never for every session).
    pub fn some_sessions(&self, limit: usize) -> Vec<Arc<SessionHandle>> {
        self.lock()
            .values()
            .flatten()
            .take(limit)
            .cloned()
            .collect()
    }

    /// Number of open sessions on this node.
    pub fn session_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// True when the user has a socket here that asked for inbox events.
    pub fn wants_inbox(&self, user_id: Uuid) -> bool {
        self.lock()
            .get(&user_id)
            .is_some_and(|list| list.iter().any(|s| s.inbox))
    }

    /// Asks every session here to close with `reason` (shutdown).
    pub fn close_all(&self, reason: &str) {
        for list in self.lock().values() {
            for session in list {
                session.close.close(reason);
            }
        }
    }

    /// Queues on every session here the event `make` builds for its user (once per user:
    /// a broadcast's copy has each user's own id). Returns the users with a socket that
    /// asked for inbox events.
    pub fn deliver_each(&self, make: impl Fn(Uuid) -> Arc<Outbound>) -> Vec<Uuid> {
        let mut following = Vec::new();
        for (user, list) in self.lock().iter() {
            let msg = make(*user);
            for session in list {
                self.offer(session, &msg);
            }
            if list.iter().any(|s| s.inbox) {
                following.push(*user);
            }
        }
        following
    }

    /// Queues `msg` on the user's sockets here that asked for inbox events.
    pub fn deliver_inbox(&self, user_id: Uuid, msg: &Arc<Outbound>) {
        if let Some(list) = self.lock().get(&user_id) {
            for session in list.iter().filter(|s| s.inbox) {
                self.offer(session, msg);
            }
        }
    }

    /// Queues `msg` on every session of `user_id`. Offline users are skipped silently.
    pub fn deliver(&self, user_id: Uuid, msg: &Arc<Outbound>) {
        if let Some(list) = self.lock().get(&user_id) {
            for session in list {
                self.offer(session, msg);
            }
        }
    }

    /// Ends every session of `user_id` but `keep` the way Nakama does when the server
    /// disconnects one (single_socket -7, ban -8): `notice` as the final frame, then close
    /// 1000 "server-side session disconnect". Built by `Notifications::disconnect`.
    /// With `before`, only sessions opened before that time (Unix microseconds) go.
    pub fn disconnect(
        &self,
        user_id: Uuid,
        notice: Notification,
        keep: Option<Uuid>,
        before: Option<i64>,
    ) {
        let notice = Outbound::new(Event::Notifications(vec![notice]));
        for session in self.sessions_of(user_id) {
            if Some(session.session_id) == keep || before.is_some_and(|t| session.opened_at >= t) {
                continue;
            }
            self.offer(&session, &notice);
            session.close.close(DISCONNECT_REASON);
        }
    }

    /// Queues `msg` on every session of this node.
    pub fn deliver_all(&self, msg: &Arc<Outbound>) {
        for list in self.lock().values() {
            for session in list {
                self.offer(session, msg);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<Arc<SessionHandle>>>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Arc<Outbound> {
        Outbound::new(Event::Notifications(Vec::new()))
    }

    #[tokio::test]
    async fn a_full_queue_closes_the_session_instead_of_growing() {
        let presence = Presence::default();
        let user = Uuid::new_v4();
        let (handle, mut rx) = presence.register(user, "slow", 2, false);
        for _ in 0..3 {
            presence.deliver(user, &event());
        }
        assert_eq!(handle.close.closed().await, "session outgoing queue full");
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, 2, "never more than the queue size");
    }

    #[test]
    fn encodes_once_for_every_session() {
        let msg = event();
        let mut calls = 0;
        for _ in 0..3 {
            let text = msg.encoded(|_| {
                calls += 1;
                "frame".to_string()
            });
            assert_eq!(&*text, "frame");
        }
        assert_eq!(calls, 1);
    }

    #[test]
    fn unregister_forgets_the_session() {
        let presence = Presence::default();
        let user = Uuid::new_v4();
        let (a, _ra) = presence.register(user, "u", 4, false);
        let (b, _rb) = presence.register(user, "u", 4, false);
        assert_eq!(presence.sessions_of(user).len(), 2);
        presence.unregister(&a);
        assert_eq!(presence.sessions_of(user)[0].session_id, b.session_id);
        presence.unregister(&b);
        assert!(!presence.is_online(user));
        assert_eq!(presence.session_count(), 0);
    }
}
