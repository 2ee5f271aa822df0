-- test.eval: runs the payload as a Lua chunk named "eval" with `nk` and `ctx` in scope and
-- returns what it returns. Lets the integration tests check many small behaviours (argument
-- rules, error text, sandbox) through one RPC, one case per line of the test table.
local nk = require("nakama")

nk.register_rpc(function(ctx, payload)
  local chunk = assert(loadstring(payload, "=eval"))
  setfenv(chunk, setmetatable({ nk = nk, ctx = ctx }, { __index = _G }))
  return chunk()
end, "test.eval")

-- Modules may extend the standard libraries while they load (a common idiom); calls may not.
function string.tidings_trim(s) return (s:gsub("^%s+", "")) end
