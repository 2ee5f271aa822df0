-- test.store_seq: stores one persistent notification for the caller carrying the sequence
-- number given as payload, and returns it. The crash test counts what was acknowledged.
local nk = require("nakama")

nk.register_rpc(function(ctx, payload)
  local seq = tonumber(payload)
  if ctx.user_id == nil or seq == nil then
    error({ "needs a session and a numeric payload", 3 })
  end
  nk.notification_send(ctx.user_id, "seq", { seq = seq }, 1, nil, true)
  return payload
end, "test.store_seq")
