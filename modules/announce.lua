--[[
  announce.lua -- a server-wide announcement ("Maintenance at 10:00", "Double XP weekend!").

  What it shows:
    * an RPC meant for YOUR servers and tools, not for players: it is called with the
      runtime http_key (server setting runtime.http_key, default "defaulthttpkey")
      instead of a player session. Such calls have no context.user_id, and the function
      refuses every call that has one.
    * nk.notification_send_all, which reaches every player:
        persistent = false -> pushed once to every socket connected right now; nothing
                              is stored, so players who are offline never see it.
        persistent = true  -> also stored in EVERY player's inbox (one row per player,
                              so use it sparingly on a big game); connected players get
                              it pushed as well.

  How to call it (from a terminal, a cron job, a back-office tool):
    curl -s -d '"{\"subject\":\"Maintenance\",\"message\":\"Back at 10:00 UTC\",\"persistent\":true}"' \
         'http://127.0.0.1:7350/v2/rpc/announce?http_key=defaulthttpkey'
    -> {"payload":"{\"ok\":true}"}
  The body is a JSON *string* holding the JSON payload. Instead of ?http_key= you may use
  HTTP Basic auth with the key as the user name: curl -u defaulthttpkey: ...
  (nakama-js's client.rpcHttpKey sends a GET, whose payload the server ignores, so use a
  plain HTTP POST for this one.)

  A player calling it gets HTTP 403 {"code":7,"error":{},"message":"server only"}.

  What players receive: code 103, subject = the subject you sent,
  content {"message":"<your message>"}, sender_id = the nil UUID (a system message).
--]]

local nk = require("nakama")

local ANNOUNCE_CODE = 103

local function announce(context, payload)
  -- A player session always carries a user id; the http_key never does.
  -- So "has a user id" means "a player called this", which we do not allow.
  if context.user_id ~= nil then
    error({ "server only", 7 }) -- 7 = permission denied -> HTTP 403
  end

  -- Read the payload; reject anything that is not a JSON object (HTTP 400).
  local ok, data = pcall(nk.json_decode, payload)
  if not ok or type(data) ~= "table" then
    error({ "payload must be JSON like {\"subject\":\"...\",\"message\":\"...\"}", 3 })
  end

  -- The subject is the notification's title: required, at most 255 characters
  -- (the inbox stores subjects up to that length).
  local subject = data.subject
  if type(subject) ~= "string" or subject == "" or #subject > 255 then
    error({ "subject must be a non-empty string of at most 255 characters", 3 })
  end

  -- The message is optional body text.
  local message = data.message
  if message ~= nil and type(message) ~= "string" then
    error({ "message must be a string", 3 })
  end

  -- persistent is optional and false unless the caller sends true.
  local persistent = data.persistent == true

  -- Send to everybody. There is no sender argument: announcements always come from
  -- the system (sender_id is the nil UUID on the client).
  nk.notification_send_all(subject, { message = message or "" }, ANNOUNCE_CODE, persistent)

  nk.logger_info("announce: " .. subject)
  return nk.json_encode({ ok = true })
end

nk.register_rpc(announce, "announce")
