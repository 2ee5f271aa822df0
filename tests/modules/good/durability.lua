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

-- test.slow_store: like test.store_seq, then keeps the VM busy for `ms` milliseconds before
-- answering (payload "seq ms"), so a shutdown test can stop the server mid-call.
nk.register_rpc(function(ctx, payload)
  local seq, ms = string.match(payload or "", "^(%d+) (%d+)$")
  if ctx.user_id == nil or seq == nil then
    error({ "needs a session and a payload \"seq ms\"", 3 })
  end
  nk.notification_send(ctx.user_id, "seq", { seq = tonumber(seq) }, 1, nil, true)
  local start = os.clock()
  while os.clock() - start < tonumber(ms) / 1000 do end
  return seq
end, "test.slow_store")
