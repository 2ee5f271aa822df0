--[[
  loadgen.lua -- RPCs for the load generator (examples/loadgen.rs). Load testing only:
  never deploy this module, it lets any caller send notifications to any player.

  Start the server with only this module:
    cargo run --release -- --runtime.path examples/loadgen/modules --data_dir /tmp/tidings-loadgen

  Payloads are JSON objects (the REST body is a JSON string holding them). Every RPC checks
  its payload minimally and answers HTTP 400 (code 3) on bad input.

    loadgen.send          {"user_id":"<uuid>","seq":N,"persistent":bool,"t":N?}
                          -> one notification_send, subject "lg", content {seq=N, t=...}
    loadgen.send_all      {"tag":N,"persistent":bool}        (http key only)
                          -> one notification_send_all, subject "lg_all", content {tag=N, t=...}
    loadgen.fill          {"user_id":"<uuid>","n":N,"start":S?}
                          -> N persistent notifications, content {i=S+1 .. S+N}, stored with
                             nk.notifications_send in batches of 1000; returns {"n":N}
    loadgen.store_single  {"user_id":"<uuid>","n":N}  -> N calls of notification_send (persistent)
    loadgen.store_batch   {"user_id":"<uuid>","n":N}  -> one notifications_send of N items
--]]

local nk = require("nakama")

local CODE = 1            -- notification code used for everything sent here
local BATCH = 1000        -- items per nk.notifications_send call in loadgen.fill
local MAX_FILL = 100000   -- most notifications one fill call may store
local MAX_STORE = 10000   -- most notifications one store_* call may store

-- Decodes the payload; anything but a JSON object is a bad request.
local function decode(payload)
  local ok, data = pcall(nk.json_decode, payload)
  if not ok or type(data) ~= "table" then
    error({ "payload must be a JSON object", 3 })
  end
  return data
end

-- A user id: a 36-character string (the server checks the UUID itself).
local function check_user_id(v)
  if type(v) ~= "string" or #v ~= 36 then
    error({ "user_id must be a user id (UUID string)", 3 })
  end
  return v
end

-- A whole number in 1..max.
local function check_count(v, name, max)
  if type(v) ~= "number" or v ~= math.floor(v) or v < 1 or v > max then
    error({ string.format("%s must be a whole number in 1..%d", name, max), 3 })
  end
  return v
end

-- The player a fill/store call writes to: the payload's user_id. A player session may
-- only name itself; the http key (no context.user_id) may name anyone.
local function target_user(context, data)
  local uid = check_user_id(data.user_id or context.user_id)
  if context.user_id ~= nil and context.user_id ~= uid then
    error({ "players may only write their own inbox", 7 })
  end
  return uid
end

-- One notification to one player; the client measures when it reaches the socket.
nk.register_rpc(function(context, payload)
  local data = decode(payload)
  local uid = check_user_id(data.user_id)
  if type(data.seq) ~= "number" then
    error({ "seq must be a number", 3 })
  end
  local t = data.t
  if type(t) ~= "number" then t = nk.time() end
  nk.notification_send(uid, "lg", { seq = data.seq, t = t }, CODE, nil, data.persistent == true)
  return nil
end, "loadgen.send")

-- One notification to everybody (server to server: refused with a player session).
nk.register_rpc(function(context, payload)
  if context.user_id ~= nil then
    error({ "server only", 7 })
  end
  local data = decode(payload)
  if type(data.tag) ~= "number" then
    error({ "tag must be a number", 3 })
  end
  nk.notification_send_all("lg_all", { tag = data.tag, t = nk.time() }, CODE, data.persistent == true)
  return nil
end, "loadgen.send_all")

-- Stores n persistent notifications for one player, numbered start+1 .. start+n, in batches.
nk.register_rpc(function(context, payload)
  local data = decode(payload)
  local uid = target_user(context, data)
  local n = check_count(data.n, "n", MAX_FILL)
  local start = data.start or 0
  if type(start) ~= "number" or start ~= math.floor(start) or start < 0 then
    error({ "start must be a whole number >= 0", 3 })
  end
  local done = 0
  while done < n do
    local m = math.min(BATCH, n - done)
    local batch = {}
    for j = 1, m do
      batch[j] = {
        user_id = uid,
        subject = "lg_fill",
        content = { i = start + done + j },
        code = CODE,
        persistent = true,
      }
    end
    nk.notifications_send(batch)
    done = done + m
  end
  return nk.json_encode({ n = n })
end, "loadgen.fill")

-- n persistent notifications, one nk.notification_send (one transaction) each.
nk.register_rpc(function(context, payload)
  local data = decode(payload)
  local uid = target_user(context, data)
  local n = check_count(data.n, "n", MAX_STORE)
  for i = 1, n do
    nk.notification_send(uid, "lg_store", { i = i }, CODE, nil, true)
  end
  return nk.json_encode({ n = n })
end, "loadgen.store_single")

-- n persistent notifications in one nk.notifications_send (one transaction).
nk.register_rpc(function(context, payload)
  local data = decode(payload)
  local uid = target_user(context, data)
  local n = check_count(data.n, "n", MAX_STORE)
  local batch = {}
  for i = 1, n do
    batch[i] = { user_id = uid, subject = "lg_store", content = { i = i }, code = CODE, persistent = true }
  end
  nk.notifications_send(batch)
  return nk.json_encode({ n = n })
end, "loadgen.store_batch")

-- loadgen.echo: the payload back (the churn soak's RPC over each fresh socket).
nk.register_rpc(function(_, payload)
  return payload
end, "loadgen.echo")
