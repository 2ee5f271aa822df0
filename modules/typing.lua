--[[
  typing.lua -- "your friend is typing..." pings between players.

  What it shows:
    * a NON-persistent notification: it is pushed to the receiver's open sockets and
      then forgotten. Nothing is stored, so a player who is offline never sees it, and
      it never shows up in GET /v2/notification. That is exactly right for short-lived
      signals such as typing indicators.
    * using the caller's identity (context.user_id, context.username) in the content.

  How a client calls it:
    nakama-js:  await client.rpc(session, "typing_ping", { to: friendUserId })
                -> { payload: { ok: true } }
    curl:       curl -s -H "Authorization: Bearer $TOKEN" \
                     -d '"{\"to\":\"<user id>\"}"' http://127.0.0.1:7350/v2/rpc/typing_ping

  What the friend's socket receives (only if they are connected right now):
    code 102, subject "<username> is typing",
    content {"from":"<caller user id>","username":"<caller username>"},
    sender_id = the caller, no "persistent" flag.
  In nakama-js: socket.onnotification = (n) => { if (n.code === 102) showTyping(n.content.username) }
--]]

local nk = require("nakama")

local TYPING_CODE = 102

-- A user id looks like 8-4-4-4-12 hexadecimal digits, e.g.
-- "0f71dbc3-951a-47e7-96dd-dd45eee88713". This Lua pattern checks that shape so that
-- a typo gets a clear "bad input" answer instead of a server error.
local UUID_PATTERN = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local function typing_ping(context, payload)
  -- Only a logged-in player can be "typing".
  if context.user_id == nil then
    error({ "typing_ping must be called by a player", 7 }) -- 7 -> HTTP 403
  end

  -- Read {"to":"<user id>"} from the payload; anything else is bad input (HTTP 400).
  local ok, data = pcall(nk.json_decode, payload)
  if not ok or type(data) ~= "table" then
    error({ "payload must be JSON like {\"to\":\"<user id>\"}", 3 })
  end
  local to = data.to
  if type(to) ~= "string" or not string.find(to, UUID_PATTERN) then
    error({ "to must be a user id", 3 })
  end

  -- Send the ping. The last argument, false, makes it non-persistent (push only).
  -- The sender (5th argument) is the caller, so the client can also read n.sender_id.
  nk.notification_send(
    to,
    (context.username or "someone") .. " is typing",
    { from = context.user_id, username = context.username },
    TYPING_CODE,
    context.user_id,
    false
  )

  return nk.json_encode({ ok = true })
end

nk.register_rpc(typing_ping, "typing_ping")
