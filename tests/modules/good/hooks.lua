-- Request hooks on the notification list and device authentication.
local nk = require("nakama")

nk.register_req_before(function(ctx, req)
  if req.limit == 42 then
    return nil -- refuse the call
  end
  if req.limit == 7 then
    req.limit = 2 -- rewrite the request
  end
  return req
end, "ListNotifications")

nk.register_req_after(function(ctx, res, req)
  -- Observable side effect: tell the caller how many items the list returned.
  local n = 0
  for _ in ipairs(res.notifications or {}) do n = n + 1 end
  nk.notification_send(ctx.user_id, "after list", { count = n, limit = req.limit }, 900, nil, false)
end, "ListNotifications")

nk.register_req_before(function(ctx, req)
  if req.account.id == "blocked-device-0001" then
    error({ "this device is blocked", 7 })
  end
  return req
end, "AuthenticateDevice")
