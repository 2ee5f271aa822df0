--[[
  inbox_cleanup.lua -- keep only a player's newest notifications.

  What it shows:
    * reading a player's stored notifications page by page with nk.notifications_list
      and its cursor,
    * deleting many notifications in a few calls with nk.notifications_delete.

  How a client calls it:
    nakama-js:  await client.rpc(session, "inbox_cleanup", { keep: 20 })
                -> { payload: { deleted: 7 } }
    curl:       curl -s -H "Authorization: Bearer $TOKEN" \
                     -d '"{\"keep\":20}"' http://127.0.0.1:7350/v2/rpc/inbox_cleanup
    Without "keep" (or with an empty payload) it keeps the newest 50.
    The answer is {"deleted":k}. A player with over 20,000 notifications gets
    {"deleted":k,"more":true}: call again to finish.

  Only stored (persistent) notifications are in the inbox; pushed-only ones never are.
--]]

local nk = require("nakama")

local DEFAULT_KEEP = 50   -- how many to keep when the payload does not say
local PAGE_SIZE = 100     -- notifications read per nk.notifications_list call (1..1000)
local DELETE_BATCH = 100  -- notifications removed per nk.notifications_delete call
local MAX_PAGES = 200     -- safety stop: never read more than 20,000 notifications

local function inbox_cleanup(context, payload)
  if context.user_id == nil then
    error({ "inbox_cleanup must be called by a player", 7 }) -- HTTP 403
  end

  -- The payload is optional: "" (nothing sent) means "use the default".
  local keep = DEFAULT_KEEP
  if payload ~= "" then
    local ok, data = pcall(nk.json_decode, payload)
    if not ok or type(data) ~= "table" then
      error({ "payload must be JSON like {\"keep\":50}", 3 }) -- HTTP 400
    end
    if data.keep ~= nil then
      keep = data.keep
    end
  end
  if type(keep) ~= "number" or keep ~= math.floor(keep) or keep < 0 then
    error({ "keep must be a whole number, 0 or more", 3 })
  end

  -- Step 1: collect the ids of ALL the player's notifications, oldest first.
  --
  -- nk.notifications_list(user_id, limit, cursor) returns two things:
  --   page   : a list of tables. Careful, their keys are camelCase:
  --            id, subject, content (JSON text), code, senderId, persistent, createTime
  --   cursor : where the next page starts, or nil when there are no more pages.
  -- We start with no cursor (nil) and keep asking until the cursor comes back nil.
  local ids = {}
  local cursor = nil
  local pages = 0
  repeat
    local page
    page, cursor = nk.notifications_list(context.user_id, PAGE_SIZE, cursor)
    for _, n in ipairs(page) do
      ids[#ids + 1] = n.id
    end
    pages = pages + 1
  until cursor == nil or pages >= MAX_PAGES

  -- If we hit the safety stop, the cursor is not nil: newer notifications exist that we
  -- did not read. Deleting the oldest ones we did read is still safe (the newest are
  -- among the unread ones), the player just has to call again to finish. We say so in
  -- the answer with more = true. (nil values are left out of JSON, so a complete run
  -- answers only {"deleted":k}.)
  local more = nil
  if cursor ~= nil then
    more = true
  end

  -- Step 2: everything except the newest `keep` goes. The list is oldest first,
  -- so those are the first (#ids - keep) entries.
  local to_delete = #ids - keep
  if to_delete <= 0 then
    return nk.json_encode({ deleted = 0, more = more })
  end

  -- Step 3: delete them, DELETE_BATCH at a time. Each item names the owner and the
  -- notification: { user_id = ..., notification_id = ... }.
  local batch = {}
  for i = 1, to_delete do
    batch[#batch + 1] = { user_id = context.user_id, notification_id = ids[i] }
    if #batch == DELETE_BATCH or i == to_delete then
      nk.notifications_delete(batch)
      batch = {}
    end
  end

  nk.logger_info(string.format("inbox_cleanup: %s deleted %d, kept %d",
    context.user_id, to_delete, #ids - to_delete))
  return nk.json_encode({ deleted = to_delete, more = more })
end

nk.register_rpc(inbox_cleanup, "inbox_cleanup")
