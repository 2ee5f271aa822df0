//! `nk.session_disconnect` and `nk.session_logout`: a script ends a socket or a login, with
//! Nakama's arguments and messages (`server/runtime_lua_nakama.go`).

use mlua::{Lua, MultiValue};
use uuid::Uuid;

use super::{ret, shared, Args, NkError, NkResult, Raw};
use crate::core::presence::DISCONNECT_REASON;

pub const FUNCTIONS: &[(&str, Raw)] = &[
    ("session_disconnect", session_disconnect),
    ("session_logout", session_logout),
];

/// A non-empty UUID argument, with Nakama's two messages.
fn uuid_arg(args: &Args, n: usize, what: &str) -> NkResult<Uuid> {
    let s = args.check_string(n)?;
    if s.is_empty() {
        return Err(args.error(n, &format!("expects {what}")));
    }
    Uuid::try_parse(&s).map_err(|_| args.error(n, &format!("expects valid {what}")))
}

/// `nk.session_disconnect(session_id, reason = 0)`: closes that socket on this node with
/// close 1000 "server-side session disconnect" (Nakama's reason, 0-4, only names the
/// presence change). An unknown session is not an error.
fn session_disconnect(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let session_id = uuid_arg(args, 1, "session id")?;
    let reason = args.opt_int(2, 0)?;
    if !(0..=4).contains(&reason) {
        return Err(args.error(2, "invalid disconnect reason, must be a value 0-4"));
    }
    if let Some(session) = shared(lua)?.core.presence.session(session_id) {
        session.close.close(DISCONNECT_REASON);
    }
    ret(lua, ())
}

/// `nk.session_logout(user_id, token?, refresh_token?)`: revokes the given tokens (which
/// must be the user's), or every token of the user when neither is given. Open sockets stay.
fn session_logout(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let user_id = uuid_arg(args, 1, "user id")?;
    let token = args.opt_string(2)?;
    let refresh = args.opt_string(3)?;
    let rt = shared(lua)?;
    rt.wait(
        rt.core
            .sessions
            .logout_user(user_id, token.as_deref(), refresh.as_deref()),
    )
    .map_err(|e| {
        // Core words it for REST ("Session token invalid."); Nakama's core error reads
        // "session token invalid".
        let mut message = e.message.trim_end_matches('.').to_string();
        if let Some(first) = message.get(..1) {
            message.replace_range(..1, &first.to_lowercase());
        }
        NkError(format!("failed to logout: {message}"))
    })?;
    ret(lua, ())
}
