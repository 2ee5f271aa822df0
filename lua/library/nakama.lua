---@meta nakama

-- LuaLS (lua-language-server) annotations for the table returned by
-- `require("nakama")` in Tidings modules. This file is never run by the server: it only gives
-- editors completion and type hints. Reference: docs/lua-api.md.

------------------------------------------------------------------------------------------------
-- Types
------------------------------------------------------------------------------------------------

---@alias nk.ExecutionMode
---| "rpc"      # an RPC call
---| "before"   # a before-request hook
---| "after"    # an after-request hook
---| "run_once" # nk.run_once, or module load

---The context table: the first argument of every RPC and hook function (docs/lua-api.md §4).
---`user_id == nil` means the caller used the http key (a server, not a player).
---@class nk.Context
---@field env table<string, string> String settings; `{}` in Tidings.
---@field execution_mode nk.ExecutionMode
---@field node string The server's node name (setting `name`, default "tidings").
---@field version string The server version.
---@field headers table<string, string[]> HTTP request headers, name -> list of values (`{}` on the socket).
---@field query_params table<string, string[]> URL query parameters without `http_key` (`{}` on the socket).
---@field user_id? string The calling player's user id; nil for http-key (server) calls.
---@field username? string The calling player's username.
---@field vars? table<string, string> Vars carried by the session token.
---@field user_session_exp? integer When the player's session token expires (unix seconds).
---@field session_id? string The socket session's id (realtime socket calls only).
---@field lang? string The language the socket client connected with ("en" by default).
---@field client_ip? string The caller's address, when known.
---@field client_port? string The caller's port, when known.
---@field trace_id string An id for this call, for logs.

---An RPC function: return a string (sent to the client) or nil.
---@alias nk.RpcFunction fun(context: nk.Context, payload: string): string?

---A before-request hook: return the (possibly changed) request, or nil to refuse the call.
---@alias nk.BeforeHookFunction fun(context: nk.Context, request: table): table?

---An after-request hook: its return value is ignored and its errors are only logged.
---@alias nk.AfterHookFunction fun(context: nk.Context, response: table, request: table)

---A realtime before hook (accepted for Nakama compatibility; never called by Tidings).
---@alias nk.RtBeforeHookFunction fun(context: nk.Context, envelope: table): table?

---A realtime after hook (accepted for Nakama compatibility; never called by Tidings).
---@alias nk.RtAfterHookFunction fun(context: nk.Context, out: table, envelope: table)

---@alias nk.RequestMethod
---| "ListNotifications"    # GET /v2/notification; request {limit?, cacheable_cursor?}
---| "DeleteNotifications"  # DELETE /v2/notification; request {ids}
---| "AuthenticateDevice"   # POST /v2/account/authenticate/device
---| "AuthenticateCustom"   # POST /v2/account/authenticate/custom
---| "AuthenticateEmail"    # POST /v2/account/authenticate/email
---| "SessionRefresh"       # POST /v2/account/session/refresh; request {token}
---| string

---An item of `nk.notifications_list` (camelCase keys, unlike every other function).
---@class nk.NotificationListItem
---@field id string
---@field subject string
---@field content string The JSON text; decode it with `nk.json_decode`.
---@field code integer
---@field senderId string `""` for a system notification.
---@field persistent boolean Always true.
---@field createTime integer Unix seconds.

---An item of `nk.notifications_get_id` (snake_case keys; there is no `id` key).
---@class nk.NotificationGetItem
---@field code integer
---@field content table Already decoded; `{}` when the stored content is not an object.
---@field sender_id? string Only present when there is a sender.
---@field subject string
---@field user_id string
---@field create_time integer Unix seconds.
---@field persistent boolean Always true.

---An element of the list given to `nk.notifications_send`.
---@class nk.NotificationSend
---@field user_id string Required; a UUID.
---@field subject string Required, non-empty.
---@field content table Required; a key/value table.
---@field code integer Required, > 0.
---@field sender_id? string A UUID; nil for a system notification (`""` is refused here).
---@field persistent? boolean Default false.
---@field ttl? integer Tidings: seconds until it expires.
---@field expires_at? integer Tidings: Unix seconds when it expires (instead of ttl).
---@field dedupe_key? string Tidings: store and push once per player and key within the dedupe window.
---@field collapse_key? string Tidings: replace the player's earlier notification with this key.

---An element of the list given to `nk.notifications_delete`.
---@class nk.NotificationDelete
---@field user_id string The owner's user id (UUID).
---@field notification_id string The notification's id (UUID).

---An element of the list given to `nk.notifications_update`. Fields left out keep their value.
---@class nk.NotificationUpdate
---@field id string The notification's id; an element without it changes nothing.
---@field subject? string Non-empty.
---@field content? table Replaces the whole content.
---@field sender? string A user id. The key is `sender`, not `sender_id`.

---A UTC date for `nk.time`. Missing fields default to 1970, 1, 1, 12, 0, 0.
---@class nk.TimeTable
---@field year? integer
---@field month? integer
---@field day? integer
---@field hour? integer
---@field min? integer
---@field sec? integer

---A public user profile (`nk.users_get_id`, `nk.users_get_username`).
---@class nk.User
---@field user_id string
---@field username string
---@field display_name string
---@field avatar_url string
---@field lang_tag string
---@field location string
---@field timezone string
---@field metadata table
---@field online boolean Whether the user has a socket open now.
---@field edge_count integer
---@field create_time integer Unix seconds.
---@field update_time integer Unix seconds.

---A device linked to an account.
---@class nk.Device
---@field id string The device id.

---A full account (`nk.account_get_id`): the profile fields at the top level and under `user`.
---@class nk.Account: nk.User
---@field user nk.User
---@field wallet table
---@field email? string Present when set.
---@field custom_id? string Present when set.
---@field devices nk.Device[]
---@field verify_time? integer Present when set (unix seconds).
---@field disable_time? integer Present when set (unix seconds).

------------------------------------------------------------------------------------------------
-- The nk table
------------------------------------------------------------------------------------------------

---The Tidings server API, `local nk = require("nakama")`. Functions raise Lua errors; they
---never return an error value (catch them with `pcall`).
---@class nk
local nk = {}

-- Notifications -------------------------------------------------------------------------------

---Sends one notification to one player. Returns nothing.
---@param user_id string The receiver's user id (a UUID).
---@param subject string Non-empty; at most 255 characters if persistent.
---@param content table A key/value table (sent as JSON).
---@param code integer > 0, or -2000..-1000; at most 32767 if persistent.
---@param sender_id? string A user id; nil or "" means a system notification.
---@param persistent? boolean Store it in the inbox too (default false).
---@param options? nk.SendOptions Tidings extension: expiry, dedupe and collapse keys.
---@return string? id With a dedupe or collapse key: the stored id (the original's for a duplicate).
---@return boolean? duplicate With a dedupe or collapse key: true when nothing new was stored.
function nk.notification_send(user_id, subject, content, code, sender_id, persistent, options) end

---@class nk.SendOptions
---@field ttl? integer Seconds until it expires (never listed, counted or pushed after).
---@field expires_at? integer Unix seconds when it expires (instead of ttl).
---@field dedupe_key? string Store and push once per player and key within the dedupe window; the call then returns `id, duplicate`.
---@field collapse_key? string Replace the player's earlier notification with this key; the call then returns `id, duplicate`.

---Sends many notifications, to one or many players, in one go (stored all or nothing). Returns nothing,
---unless an item has a `dedupe_key` or `collapse_key` (Tidings): then the items go at once, in order,
---and the call returns one `{id, duplicate}` per item.
---@param notifications nk.NotificationSend[]
---@return { id: string, duplicate: boolean }[]?
function nk.notifications_send(notifications) end

---Sends one system notification to every player. Returns nothing.
---@param subject string Non-empty.
---@param content table A key/value table.
---@param code integer > 0.
---@param persistent? boolean Store a copy for every player account (default false; costly on large games).
function nk.notification_send_all(subject, content, code, persistent) end

---One page of a player's stored notifications, oldest first; the cursor is nil on the last page.
---@param user_id string A UUID.
---@param limit? integer 1..1000, default 100.
---@param cursor? string The cursor from the previous page; nil starts at the beginning.
---@return nk.NotificationListItem[] notifications
---@return string? cursor
function nk.notifications_list(user_id, limit, cursor) end

---Stored notifications by id (no particular order; ids not found are skipped).
---@param ids string[] Notification ids; `{}` returns `{}`.
---@param user_id? string Only that player's notifications; without it, anyone's.
---@return nk.NotificationGetItem[] notifications
function nk.notifications_get_id(ids, user_id) end

---Deletes stored notifications, each only if it belongs to the player named with it. Returns nothing.
---@param notifications nk.NotificationDelete[]
function nk.notifications_delete(notifications) end

---Deletes stored notifications by id. Returns nothing.
---@param ids string[] Notification ids; `{}` does nothing.
---@param user_id? string Only delete that player's; without it, deletes whoever's they are.
function nk.notifications_delete_id(ids, user_id) end

---Changes stored notifications in place, in one transaction (no owner check). Returns nothing.
---@param updates nk.NotificationUpdate[]
function nk.notifications_update(updates) end

-- Inbox state (a Tidings extension, not in Nakama) -------------------------------------------

---@class nk.InboxCounts
---@field unread integer Stored notifications not yet read.
---@field unseen integer Stored notifications not yet seen.
---@field by_code table<integer, integer> Unread notifications per code (codes with none left out).

---Marks a player's notifications read (and seen). Sockets that follow the inbox hear of it.
---@param user_id string
---@param ids? string[] Notification ids (at most 1000); nil marks every one of the player's.
---@return integer changed How many were unread before.
function nk.notifications_mark_read(user_id, ids) end

---Marks a player's notifications unread again.
---@param user_id string
---@param ids string[] Notification ids (at most 1000).
---@return integer changed How many were read before.
function nk.notifications_mark_unread(user_id, ids) end

---Marks a player's notifications seen (the badge was shown) without reading them.
---@param user_id string
---@param ids? string[] Notification ids (at most 1000); nil marks every one of the player's.
---@return integer changed How many were unseen before.
function nk.notifications_mark_seen(user_id, ids) end

---A player's unread and unseen counts.
---@param user_id string
---@return nk.InboxCounts counts
function nk.notifications_unread_count(user_id) end

-- Registering code ----------------------------------------------------------------------------

---Makes `fn(context, payload)` callable as RPC `id` (case-insensitive). Call it at module top level.
---@param fn nk.RpcFunction
---@param id string A non-empty RPC id.
function nk.register_rpc(fn, id) end

---Runs `fn(context, request)` before a server REST call: return the request to go ahead, nil to refuse.
---@param fn nk.BeforeHookFunction
---@param method nk.RequestMethod The API method's name (case-insensitive).
function nk.register_req_before(fn, method) end

---Runs `fn(context, response, request)` after a successful server REST call; its result is ignored.
---@param fn nk.AfterHookFunction
---@param method nk.RequestMethod The API method's name (case-insensitive).
function nk.register_req_after(fn, method) end

---Accepted so Nakama modules load; Tidings has no realtime messages, so `fn` is never called.
---@param fn nk.RtBeforeHookFunction
---@param message_name string
function nk.register_rt_before(fn, message_name) end

---Accepted so Nakama modules load; Tidings has no realtime messages, so `fn` is never called.
---@param fn nk.RtAfterHookFunction
---@param message_name string
function nk.register_rt_after(fn, message_name) end

---Runs `fn(context)` once per server process, at load time, with execution_mode "run_once" and no user.
---@param fn fun(context: nk.Context)
function nk.run_once(fn) end

-- Logging -------------------------------------------------------------------------------------

---Writes `message` to the server log at debug level and returns it.
---@param message string Non-empty; written as is (use string.format).
---@return string message
function nk.logger_debug(message) end

---Writes `message` to the server log at info level and returns it.
---@param message string Non-empty; written as is (use string.format).
---@return string message
function nk.logger_info(message) end

---Writes `message` to the server log at warn level and returns it.
---@param message string Non-empty; written as is (use string.format).
---@return string message
function nk.logger_warn(message) end

---Writes `message` to the server log at error level and returns it.
---@param message string Non-empty; written as is (use string.format).
---@return string message
function nk.logger_error(message) end

-- JSON, ids, time, encoding -------------------------------------------------------------------

---JSON text for any Lua value (compact, keys sorted); raises on NaN/±Inf.
---@param value any
---@return string json
function nk.json_encode(value) end

---A Lua value from JSON text (`null` removes the key); raises on "" or invalid JSON.
---@param text string
---@return any value
function nk.json_decode(text) end

---A new random id, 36 characters.
---@return string uuid
function nk.uuid_v4() end

---The current UTC time in milliseconds since 1970, or that of the given UTC date table.
---@param date? nk.TimeTable
---@return integer milliseconds
function nk.time(date) end

---Standard base64 (`+/`) of `input`; `padding` (default true) adds `=` padding.
---@param input string Non-empty.
---@param padding? boolean Default true.
---@return string encoded
function nk.base64_encode(input, padding) end

---Decodes standard base64, with or without padding; raises on invalid input.
---@param input string Non-empty.
---@param padding? boolean Default true.
---@return string decoded
function nk.base64_decode(input, padding) end

---The SHA-256 of `input` as 64 lowercase hex digits.
---@param input string Non-empty.
---@return string hex
function nk.sha256_hash(input) end

---The MD5 of `input` as 32 lowercase hex digits.
---@param input string Non-empty.
---@return string hex
function nk.md5_hash(input) end

---The HMAC-SHA256 of `input` under `key`: the raw 32 bytes (hex them with `nk.base16_encode`).
---@param input string Non-empty.
---@param key string Non-empty.
---@return string mac
function nk.hmac_sha256_hash(input, key) end

---Lowercase hex of `input`.
---@param input string Non-empty.
---@return string hex
function nk.base16_encode(input) end

---The bytes of hex text (either case); raises on an odd length or a non-hex digit.
---@param input string Non-empty.
---@return string bytes
function nk.base16_decode(input) end

---URL-safe base64 (`-_`); `padding` (default true) adds `=` padding.
---@param input string Non-empty.
---@param padding? boolean Default true.
---@return string encoded
function nk.base64url_encode(input, padding) end

---Decodes URL-safe base64. `padding` false (the default): padding optional; true: required.
---@param input string Non-empty.
---@param padding? boolean Default false.
---@return string decoded
function nk.base64url_decode(input, padding) end

---A bcrypt hash of `input` (cost 13); at most 72 bytes.
---@param input string Non-empty.
---@return string hash
function nk.bcrypt_hash(input) end

---Whether `input` matches a bcrypt `hash`.
---@param hash string Non-empty.
---@param input string Non-empty.
---@return boolean matched
function nk.bcrypt_compare(hash, input) end

---A UUID's 16 raw bytes as its canonical string.
---@param bytes string 16 bytes.
---@return string id
function nk.uuid_bytes_to_string(bytes) end

---A UUID string's 16 raw bytes.
---@param id string
---@return string bytes
function nk.uuid_string_to_bytes(id) end

---`count` (1-1000) cryptographically secure random bytes.
---@param count integer
---@return string bytes
function nk.secure_random_bytes(count) end

---Stores a copy of `value` (nil, boolean, number, string or a table of those) under `key`,
---shared by every VM of this server; `ttl` in seconds, 0 for none.
---@param key string Non-empty.
---@param value any
---@param ttl? integer Default 0.
function nk.localcache_put(key, value, ttl) end

---A copy of the value under `key`, or `default` when it is missing or expired.
---@param key string Non-empty.
---@param default? any
---@return any value
function nk.localcache_get(key, default) end

---Removes `key` from the local cache.
---@param key string Non-empty.
function nk.localcache_delete(key) end

---Empties the local cache.
function nk.localcache_clear() end

---Closes the socket `session_id` on this server (close 1000 "server-side session disconnect").
---@param session_id string
---@param reason? integer 0-4.
function nk.session_disconnect(session_id, reason) end

---Revokes the user's given tokens, or all of them when neither is given.
---@param user_id string
---@param token? string
---@param refresh_token? string
function nk.session_logout(user_id, token, refresh_token) end

---The current call's context table; at module load, only the server-level keys.
---@return nk.Context context
function nk.get_context() end

-- Users and accounts --------------------------------------------------------------------------

---Public profiles by user id; ids that do not exist are skipped.
---@param user_ids string[] User ids (UUID strings); `{}` returns `{}`.
---@return nk.User[] users
function nk.users_get_id(user_ids) end

---Public profiles by username; unknown names are skipped.
---@param usernames string[]
---@return nk.User[] users
function nk.users_get_username(usernames) end

---A player's full account; raises for an unknown player.
---@param user_id string A UUID.
---@return nk.Account account
function nk.account_get_id(user_id) end

---Several full accounts: by user id and by device id, each once; unknown ids are skipped.
---@param user_ids? string[] UUIDs.
---@param device_ids? string[]
---@return nk.Account[] accounts
function nk.accounts_get_id(user_ids, device_ids) end

---Bans users: they cannot authenticate again, their tokens stop working, and each open
---socket receives notification -8 ("banned") and closes. Unknown ids are ignored.
---@param user_ids string[] User ids (UUID strings); `{}` does nothing.
function nk.users_ban_id(user_ids) end

---Lifts bans; the users may authenticate again (tokens from before the ban stay invalid).
---@param user_ids string[]
function nk.users_unban_id(user_ids) end

-- Friends -------------------------------------------------------------------------------------

---One edge of a friend list.
---@class nk.Friend
---@field state integer 0 friend, 1 invite sent, 2 invite received, 3 blocked.
---@field update_time integer Unix seconds.
---@field user nk.User The other user.
---@field metadata table The edge's metadata.

---A user's friends, invites and blocks, by state then age.
---@param user_id string A UUID.
---@param limit? integer 1..1000, default 100.
---@param state? integer 0..3; nil for every state.
---@param cursor? string From a previous call.
---@return nk.Friend[] friends
---@return string|nil cursor nil on the last page.
function nk.friends_list(user_id, limit, state, cursor) end

---Acting as `user_id` (named `username` in the notifications): invites each target (they get
----2), or accepts their invite (they get -3). Blocked pairs and existing edges are left alone.
---@param user_id string
---@param username string
---@param ids? string[]
---@param usernames? string[]
---@param metadata? table Stored on the caller's edge.
function nk.friends_add(user_id, username, ids, usernames, metadata) end

---Acting as `user_id`: removes friends, cancels or rejects invites (the other user gets -9),
---or lifts the caller's own block.
---@param user_id string
---@param username string
---@param ids? string[]
---@param usernames? string[]
function nk.friends_delete(user_id, username, ids, usernames) end

---Acting as `user_id`: blocks each target (ends any friendship or invite; no notification).
---@param user_id string
---@param username string
---@param ids? string[]
---@param usernames? string[]
function nk.friends_block(user_id, username, ids, usernames) end

-- Groups --------------------------------------------------------------------------------------

---A group.
---@class nk.Group
---@field id string
---@field creator_id string
---@field name string
---@field description string
---@field avatar_url string
---@field lang_tag string
---@field metadata table
---@field open boolean Anyone may join; otherwise joining asks the admins.
---@field edge_count integer Superadmins, admins and members.
---@field max_count integer
---@field create_time integer Unix seconds.
---@field update_time integer Unix seconds.

---Creates a group with `user_id` as its superadmin.
---@param user_id string The first superadmin.
---@param name string Unique.
---@param creator_id? string Recorded as creator; nil means the server.
---@param lang_tag? string Default "en".
---@param description? string
---@param avatar_url? string
---@param open? boolean Default false.
---@param metadata? table
---@param max_count? integer Default 100.
---@return nk.Group group
function nk.group_create(user_id, name, creator_id, lang_tag, description, avatar_url, open, metadata, max_count) end

---Adds users to a group (or accepts their join requests); each gets notification -4.
---@param group_id string
---@param user_ids string[]
---@param caller_id? string Acts as this admin; nil acts as the server.
function nk.group_users_add(group_id, user_ids, caller_id) end

---A group's members by role (superadmins first), then age.
---@param group_id string
---@param limit? integer 1..10000, default 100.
---@param state? integer 0 superadmin, 1 admin, 2 member, 3 join request, 4 banned; nil: 0..3.
---@param cursor? string
---@return {user: nk.User, state: integer}[] users
---@return string|nil cursor
function nk.group_users_list(group_id, limit, state, cursor) end

---The groups a user belongs to (or asked to join).
---@param user_id string
---@param limit? integer 1..100, default 100.
---@param state? integer
---@param cursor? string
---@return {group: nk.Group, state: integer}[] groups
---@return string|nil cursor
function nk.user_groups_list(user_id, limit, state, cursor) end

return nk
