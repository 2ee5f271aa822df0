//! Chat over the socket and its history over REST (NAKAMA-SPEC §6 -1; Nakama's
//! pipeline_channel and api_channel): `channel_join`, `channel_leave` and
//! `channel_message_send` envelopes, and `GET /v2/channel/{id}`. Parsing and the JSON shapes
//! live here; the rules, the registry and the -1 notification live in `core::channels`.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::ApiError;
use super::socket::envelope;
use super::{auth, json_reply, query_get, query_pairs, with_ctx, Ctx};
use crate::core::channels::{
    Channel, ChannelMessage, ChannelPresence, JoinRequest, PresenceChange,
};
use crate::core::presence::SessionHandle;
use crate::core::sessions::SessionUser;
use crate::core::time::rfc3339_micros;
use crate::core::{Code, CoreError};

/// A chat envelope from a client.
#[derive(Debug)]
pub enum ChatRequest {
    Join(JoinRequest),
    Leave { channel_id: String },
    Send { channel_id: String, content: String },
}

/// Whether `key` is an envelope message this module reads.
pub fn is_message(key: &str) -> bool {
    matches!(
        key,
        "channel_join" | "channel_leave" | "channel_message_send"
    )
}

/// Reads a chat envelope body; `None` when it is malformed (the socket then closes, as
/// Nakama's strict decoder does).
pub fn parse(key: &str, body: &Map<String, Value>) -> Option<ChatRequest> {
    let string = |name: &str| match body.get(name) {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => None,
    };
    let flag = |name: &str, default: bool| match body.get(name) {
        None | Some(Value::Null) => Some(default),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => None,
    };
    let known: &[&str] = match key {
        "channel_join" => &["target", "type", "persistence", "hidden"],
        "channel_leave" => &["channel_id"],
        "channel_message_send" => &["channel_id", "content"],
        _ => return None,
    };
    if body.keys().any(|k| !known.contains(&k.as_str())) {
        return None;
    }
    Some(match key {
        "channel_join" => ChatRequest::Join(JoinRequest {
            target: string("target")?,
            kind: match body.get("type") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_i64().filter(|n| i32::try_from(*n).is_ok())?,
            },
            persistence: flag("persistence", true)?,
            hidden: flag("hidden", false)?,
        }),
        "channel_leave" => ChatRequest::Leave {
            channel_id: string("channel_id")?,
        },
        _ => ChatRequest::Send {
            channel_id: string("channel_id")?,
            content: string("content")?,
        },
    })
}

/// Runs a chat request for `session` and returns the reply frame.
pub async fn run(
    ctx: Arc<Ctx>,
    session: Arc<SessionHandle>,
    cid: Option<String>,
    request: ChatRequest,
) -> String {
    let cid = cid.as_deref();
    let channels = &ctx.core.channels;
    let outcome = match request {
        ChatRequest::Join(req) => channels.join(&session, req).await.map(|joined| {
            let mut body = Map::new();
            body.insert("id".into(), joined.channel.id().into());
            if !joined.presences.is_empty() {
                let list: Vec<Value> = joined.presences.iter().map(presence).collect();
                body.insert("presences".into(), list.into());
            }
            body.insert("self".into(), presence(&joined.me));
            put_channel_names(&mut body, &joined.channel);
            envelope(cid, "channel", Value::Object(body))
        }),
        ChatRequest::Leave { channel_id } => {
            channels.leave(&session, &channel_id).map(|()| match cid {
                Some(cid) => json!({ "cid": cid }).to_string(),
                None => "{}".to_string(),
            })
        }
        ChatRequest::Send {
            channel_id,
            content,
        } => channels
            .send(&session, &channel_id, &content)
            .await
            .map(|m| {
                let mut body = Map::new();
                body.insert("channel_id".into(), m.channel_id.clone().into());
                body.insert("message_id".into(), m.message_id.to_string().into());
                body.insert("code".into(), m.code.into());
                body.insert("username".into(), m.username.clone().into());
                body.insert("create_time".into(), rfc3339_micros(m.create_time).into());
                body.insert("update_time".into(), rfc3339_micros(m.update_time).into());
                body.insert("persistent".into(), m.persistent.into());
                put_channel_names(&mut body, &m.channel);
                envelope(cid, "channel_message_ack", Value::Object(body))
            }),
    };
    outcome.unwrap_or_else(|e| error_frame(cid, &e))
}

/// Bad input is code 3; anything else is Nakama's RUNTIME_EXCEPTION, code 0, which protojson
/// leaves out.
fn error_frame(cid: Option<&str>, e: &CoreError) -> String {
    let body = if e.code == Code::InvalidArgument {
        json!({ "code": 3, "message": e.message })
    } else {
        json!({ "message": e.message })
    };
    envelope(cid, "error", body)
}

fn presence(p: &ChannelPresence) -> Value {
    let mut map = Map::new();
    map.insert("user_id".into(), p.user_id.to_string().into());
    map.insert("session_id".into(), p.session_id.to_string().into());
    map.insert("username".into(), p.username.clone().into());
    if p.persistence {
        map.insert("persistence".into(), true.into());
    }
    Value::Object(map)
}

/// `room_name` for a room, `user_id_one`/`user_id_two` for a direct channel.
fn put_channel_names(body: &mut Map<String, Value>, channel: &Channel) {
    match channel {
        Channel::Room(name) => {
            body.insert("room_name".into(), name.clone().into());
        }
        Channel::Direct { lo, hi } => {
            body.insert("user_id_one".into(), lo.to_string().into());
            body.insert("user_id_two".into(), hi.to_string().into());
        }
    }
}

/// Nakama's `ChannelMessage` (live and in history): `code` and `persistent` always written.
pub fn message(m: &ChannelMessage) -> Value {
    let mut body = Map::new();
    body.insert("channel_id".into(), m.channel_id.clone().into());
    body.insert("message_id".into(), m.message_id.to_string().into());
    body.insert("code".into(), m.code.into());
    body.insert("sender_id".into(), m.sender_id.to_string().into());
    body.insert("username".into(), m.username.clone().into());
    body.insert("content".into(), m.content.clone().into());
    body.insert("create_time".into(), rfc3339_micros(m.create_time).into());
    body.insert("update_time".into(), rfc3339_micros(m.update_time).into());
    body.insert("persistent".into(), m.persistent.into());
    put_channel_names(&mut body, &m.channel);
    Value::Object(body)
}

/// The pushed `channel_message` frame.
pub fn message_event(m: &ChannelMessage) -> String {
    json!({ "channel_message": message(m) }).to_string()
}

/// The pushed `channel_presence_event` frame.
pub fn presence_event(change: &PresenceChange) -> String {
    let mut body = Map::new();
    body.insert("channel_id".into(), change.channel.id().into());
    if !change.joins.is_empty() {
        body.insert(
            "joins".into(),
            change.joins.iter().map(presence).collect::<Vec<_>>().into(),
        );
    }
    if !change.leaves.is_empty() {
        body.insert(
            "leaves".into(),
            change
                .leaves
                .iter()
                .map(presence)
                .collect::<Vec<_>>()
                .into(),
        );
    }
    put_channel_names(&mut body, &change.channel);
    json!({ "channel_presence_event": body }).to_string()
}

/// GET /v2/channel/{channel_id}?limit=&forward=&cursor=
pub fn history_route(
    ctx: Arc<Ctx>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v2" / "channel" / String)
        .and(warp::get())
        .and(auth::session(ctx.clone()))
        .and(query_pairs())
        .and(with_ctx(ctx))
        .and_then(history_handler)
}

async fn history_handler(
    raw_id: String,
    user: SessionUser,
    query: Vec<(String, String)>,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let channel_id = percent_decode(&raw_id);
    let limit =
        super::notifications::parse_int32_param("limit", query_get(&query, "limit"))?.unwrap_or(1);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("Invalid limit - limit must be between 1 and 100.").into());
    }
    let forward = match query_get(&query, "forward") {
        None => true,
        Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "parsing field \"forward\": strconv.ParseBool: parsing \"{other}\": invalid syntax"
            ))
            .into())
        }
    };
    let cursor = query_get(&query, "cursor").unwrap_or("");
    let page = ctx
        .core
        .channels
        .history(user.user_id, &channel_id, limit as usize, forward, cursor)
        .await?;
    let mut body = Map::new();
    if !page.messages.is_empty() {
        body.insert(
            "messages".into(),
            page.messages.iter().map(message).collect::<Vec<_>>().into(),
        );
    }
    for (key, value) in [
        ("next_cursor", page.next_cursor),
        ("prev_cursor", page.prev_cursor),
        ("cacheable_cursor", page.cacheable_cursor),
    ] {
        if let Some(v) = value {
            body.insert(key.into(), v.into());
        }
    }
    Ok(json_reply(&Value::Object(body)))
}

/// The path segment as the client sent it, percent-decoded (nakama-js encodes the id).
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_decoding() {
        assert_eq!(super::percent_decode("4.a%2Eb."), "4.a.b.");
        assert_eq!(super::percent_decode("2...l%C3%B6bby%"), "2...löbby%");
        assert_eq!(super::percent_decode("%zz%4"), "%zz%4");
    }
}
