-- Fixture for flow.test.mjs: the RPC ids that nakama-js's own test suite calls
-- (packages/nakama-js-test/socket-notification.test.ts and client-rpc.test.ts), written
-- for Tidings from the behaviour those tests expect.
--
--   clientrpc.send_notification  payload {"user_id":"<uuid>"}: one persistent notification
--                                to that user via nk.notifications_send, from the caller:
--                                code 1, subject "You've unlocked level 100!",
--                                content {"reward_coins":1000}. Returns nothing.
--   clientrpc.rpc                returns its payload unchanged.
--   clientrpc.rpc_get            returns {"message":"PONG"} (ignores the payload).
--   clientrpc.rpc_error          always fails with a plain error (HTTP 500, code 13).

local nk = require("nakama")

nk.register_rpc(function(context, payload)
  local args = nk.json_decode(payload)
  nk.notifications_send({
    {
      user_id = args.user_id,
      sender_id = context.user_id,
      subject = "You've unlocked level 100!",
      content = { reward_coins = 1000 },
      code = 1,
      persistent = true,
    },
  })
  return nil
end, "clientrpc.send_notification")

nk.register_rpc(function(_, payload)
  return payload
end, "clientrpc.rpc")

nk.register_rpc(function(_, _)
  return nk.json_encode({ message = "PONG" })
end, "clientrpc.rpc_get")

nk.register_rpc(function(_, _)
  error("Some error occured.")
end, "clientrpc.rpc_error")
