-- Fixture RPCs for flow.test.mjs. Each one is a thin wrapper that lets a test drive one
-- nk function from a client and see its result (or its exact error) over HTTP or the socket.
--
-- Payloads are JSON objects (nakama-js client.rpc sends JSON.stringify(obj) as the payload).
-- Wrappers call the nk function directly as nk.<name>(...) so that argument errors name it
-- ("bad argument #2 to notification_send (...)").
--
--   e2e.echo         returns the payload unchanged
--   e2e.send         {user_id, subject, content, code, sender_id?, persistent?} -> nk.notification_send; returns nothing
--   e2e.send_many    {notifications=[...]} -> nk.notifications_send; returns nothing
--   e2e.send_all     {subject, content, code, persistent?} -> nk.notification_send_all; returns nothing
--   e2e.list         {user_id?, limit?, cursor?} -> nk.notifications_list; {count, items, cursor}
--   e2e.get          {ids, user_id?} -> nk.notifications_get_id; {count, items}
--   e2e.delete       {items=[{user_id, notification_id}]} -> nk.notifications_delete
--   e2e.delete_id    {ids, user_id?} -> nk.notifications_delete_id
--   e2e.update       {updates=[...]} -> nk.notifications_update
--   e2e.fail         {message, code} -> error({message, code}); {plain=msg} -> error(msg)
--   e2e.ctx          a summary of the context table (and the payload received)
--   e2e.helpers      results of the generic helpers (uuid, time, base64, sha256, json, users, account)
--   e2e.sandbox      what the sandbox exposes
--   e2e.require      uses lib/e2e_util.lua through require("lib.e2e_util")
--   e2e.bad_return   returns a table (not allowed)
--   e2e.spin         never returns (stopped by runtime.lua_call_timeout_ms)
--   e2e.hog          allocates until the VM's memory limit stops it

local nk = require("nakama")
local util = require("lib.e2e_util")

local function reply(value)
  return nk.json_encode(value)
end

nk.run_once(function(context)
  nk.logger_info("e2e fixture: run_once in mode " .. tostring(context.execution_mode))
end)

nk.register_rpc(function(_, payload)
  return payload
end, "e2e.echo")

nk.register_rpc(function(_, payload)
  local a = util.args(nk, payload)
  nk.notification_send(a.user_id, a.subject, a.content, a.code, a.sender_id, a.persistent)
  return nil
end, "e2e.send")

nk.register_rpc(function(_, payload)
  local a = util.args(nk, payload)
  nk.notifications_send(a.notifications)
  return nil
end, "e2e.send_many")

nk.register_rpc(function(_, payload)
  local a = util.args(nk, payload)
  nk.notification_send_all(a.subject, a.content, a.code, a.persistent)
  return nil
end, "e2e.send_all")

nk.register_rpc(function(context, payload)
  local a = util.args(nk, payload)
  local items, cursor = nk.notifications_list(a.user_id or context.user_id, a.limit, a.cursor)
  return reply({ count = #items, items = items, cursor = cursor })
end, "e2e.list")

nk.register_rpc(function(_, payload)
  local a = util.args(nk, payload)
  local items = nk.notifications_get_id(a.ids, a.user_id)
  return reply({ count = #items, items = items })
end, "e2e.get")

nk.register_rpc(function(_, payload)
  local a = util.args(nk, payload)
  nk.notifications_delete(a.items)
  return nil
end, "e2e.delete")

nk.register_rpc(function(_, payload)
  local a = util.args(nk, payload)
  nk.notifications_delete_id(a.ids, a.user_id)
  return nil
end, "e2e.delete_id")

nk.register_rpc(function(_, payload)
  local a = util.args(nk, payload)
  nk.notifications_update(a.updates)
  return nil
end, "e2e.update")

nk.register_rpc(function(_, payload)
  local a = util.args(nk, payload)
  if a.plain ~= nil then
    error(a.plain)
  end
  error({ a.message, a.code })
end, "e2e.fail")

nk.register_rpc(function(context, payload)
  local authorization = nil
  local header_count = 0
  for name, values in pairs(context.headers or {}) do
    header_count = header_count + 1
    if string.lower(name) == "authorization" then
      authorization = values[1]
    end
  end
  return reply({
    user_id = context.user_id,
    username = context.username,
    execution_mode = context.execution_mode,
    node = context.node,
    session_id = context.session_id,
    lang = context.lang,
    env = context.env,
    query_params = context.query_params,
    header_count = header_count,
    authorization = authorization,
    -- Nakama passes Go's canonical header names ("Authorization", "Content-Type").
    authorization_canonical = context.headers and context.headers["Authorization"]
      and context.headers["Authorization"][1],
    user_session_exp = context.user_session_exp,
    keys = util.sorted_keys(context),
    payload = payload,
    get_context_node = nk.get_context().node,
  })
end, "e2e.ctx")

-- Each helper runs under pcall, so one failing helper shows up as {"error":"..."} in its own
-- field instead of hiding the others.
local function try(f, ...)
  local ok, value = pcall(f, ...)
  if ok then
    return value
  end
  return { error = tostring(value) }
end

local function field(t, ...)
  for _, key in ipairs({ ... }) do
    if type(t) ~= "table" then
      return nil
    end
    t = t[key]
  end
  return t
end

nk.register_rpc(function(context, _)
  local users = try(nk.users_get_id, { context.user_id })
  local by_name = try(nk.users_get_username, { context.username })
  local account = try(nk.account_get_id, context.user_id)
  local decoded = try(nk.json_decode, '{"gone":null,"list":[10,20,30],"obj":{"k":"v"},"n":1.5}')
  return reply({
    uuid = try(nk.uuid_v4),
    time = try(nk.time),
    b64 = try(nk.base64_encode, "hello world"),
    b64_back = try(nk.base64_decode, "aGVsbG8gd29ybGQ="),
    b64_unpadded = try(nk.base64_decode, "aGk"),
    sha = try(nk.sha256_hash, "abc"),
    encoded = try(nk.json_encode, { b = 1, a = { 1, 2, 3 }, h = "<&>", f = 1.5, t = true }),
    encoded_empty = try(nk.json_encode, {}),
    decoded_gone = field(decoded, "gone") == nil and field(decoded, "n") ~= nil,
    decoded_list = (field(decoded, "list", 1) or 0) + (field(decoded, "list", 2) or 0)
      + (field(decoded, "list", 3) or 0),
    decoded_obj = field(decoded, "obj", "k"),
    decoded_n = field(decoded, "n"),
    logged = try(nk.logger_info, "e2e.helpers ran"),
    users_count = field(users, "error") or #users,
    user_id = field(users, 1, "user_id"),
    user_username = field(users, 1, "username"),
    by_name_id = field(by_name, 1, "user_id") or field(by_name, "error"),
    account_error = field(account, "error"),
    account_user_id = field(account, "user_id"),
    account_username = field(account, "username"),
    account_nested_user_id = field(account, "user", "user_id"),
    account_device = field(account, "devices", 1, "id"),
  })
end, "e2e.helpers")

nk.register_rpc(function(_, _)
  local loaded = pcall(require, "e2e_no_such_module")
  return reply({
    io = type(io),
    debug = type(debug),
    os_keys = util.sorted_keys(os),
    loadlib = type(package and package.loadlib),
    require_missing = loaded,
    bit32_band = bit32.band(12, 10),
    string_rep = string.rep("ab", 3),
    math_floor = math.floor(2.5),
    table_concat = table.concat({ "x", "y" }, ","),
  })
end, "e2e.sandbox")

nk.register_rpc(function(_, _)
  return reply({ name = util.name, keys = util.sorted_keys({ b = 1, a = 2 }) })
end, "e2e.require")

nk.register_rpc(function(_, _)
  return { 1, 2 }
end, "e2e.bad_return")

nk.register_rpc(function(_, _)
  local n = 0
  while true do
    n = n + 1
  end
end, "e2e.spin")

nk.register_rpc(function(_, _)
  local block = string.rep("x", 1024 * 1024)
  local keep = {}
  for i = 1, 100000 do
    keep[i] = block .. i
  end
  return tostring(#keep)
end, "e2e.hog")
