--[[
  reward.lua -- give the calling player some coins and tell them about it.

  What it shows:
    * registering an RPC that a game client calls,
    * reading and checking a JSON payload,
    * rejecting bad input with a clean error and an HTTP status the client understands,
    * sending a PERSISTENT notification: it is stored in the player's inbox AND pushed
      to every socket the player has open right now.

  How a client calls it:
    nakama-js:  await client.rpc(session, "reward_claim", { coins: 10 })
                -> { payload: { ok: true } }
    curl:       curl -s -H "Authorization: Bearer $TOKEN" \
                     -d '"{\"coins\":10}"' http://127.0.0.1:7350/v2/rpc/reward_claim
                -> {"payload":"{\"ok\":true}"}
                (the HTTP body is a JSON *string* that contains the JSON payload)

  What the player then receives (socket push, and later in GET /v2/notification):
    code 101, subject "You earned 10 coins", content {"coins":10}, persistent true.

  NOTE: this is an example. A real game must decide who is allowed to claim what (for
  instance remember claimed rewards in storage); as written, any player can call it
  as often as they like.
--]]

-- Load the server API. Every nk.* function used below lives in this table.
local nk = require("nakama")

-- Numbers a designer may want to tune, kept in one place.
local MIN_COINS = 1          -- smallest reward a client may ask for
local MAX_COINS = 10000      -- largest reward a client may ask for
local REWARD_CODE = 101      -- notification code the game client switches on (must be > 0)

-- The RPC function. The server calls it with two arguments:
--   context: a table describing the caller (context.user_id, context.username, ...)
--   payload: the text the client sent (a string, "" when nothing was sent)
-- It must return a string (sent back to the client) or nothing.
local function reward_claim(context, payload)
  -- Only logged-in players have a user id. A server-to-server call made with the
  -- http_key has none, and there would be nobody to give the coins to.
  if context.user_id == nil then
    -- error({message, code}): the client gets `message`; `code` is a gRPC status code.
    -- 7 means "permission denied" and becomes HTTP 403.
    error({ "reward_claim must be called by a player", 7 })
  end

  -- Turn the payload text into a Lua table. nk.json_decode raises an error on text
  -- that is not JSON (or is empty), so we call it through pcall, which catches the
  -- error and lets us answer with a friendlier message instead.
  local ok, data = pcall(nk.json_decode, payload)
  if not ok or type(data) ~= "table" then
    -- Code 3 means "invalid argument" and becomes HTTP 400.
    error({ "payload must be JSON like {\"coins\":10}", 3 })
  end

  -- Check the amount: it must be a whole number between MIN_COINS and MAX_COINS.
  -- (math.floor(x) == x is true only for whole numbers.)
  local coins = data.coins
  if type(coins) ~= "number" or coins ~= math.floor(coins)
      or coins < MIN_COINS or coins > MAX_COINS then
    error({ "coins must be 1..10000", 3 })
  end

  -- A real game would add the coins to the player's wallet here.

  -- Tell the player. Arguments of nk.notification_send, in order:
  --   1. who receives it          -> the caller
  --   2. subject (short text)     -> shown as the title in the game's inbox
  --   3. content (a Lua table)    -> sent to the client as JSON: {"coins":10}
  --   4. code (a number above 0)  -> lets the client tell notification kinds apart
  --   5. sender                   -> nil: a "system" notification, not from a player
  --   6. persistent               -> true: store it so the player also sees it later
  nk.notification_send(
    context.user_id,
    string.format("You earned %d coins", coins),
    { coins = coins },
    REWARD_CODE,
    nil,
    true
  )

  -- Write a line to the server log (handy while developing).
  nk.logger_info(string.format("reward_claim: %s earned %d coins", context.user_id, coins))

  -- The return value goes back to the client; nakama-js parses it as JSON.
  return nk.json_encode({ ok = true })
end

-- Make the function callable as "reward_claim". Ids are not case-sensitive.
nk.register_rpc(reward_claim, "reward_claim")
