-- Hostile scripts: the server must stop them and keep serving.
local nk = require("nakama")

nk.register_rpc(function()
  while true do end
end, "test.runaway")

nk.register_rpc(function()
  -- Catching the timeout does not help: the hook keeps raising.
  while true do pcall(function() while true do end end) end
end, "test.runaway_pcall")

nk.register_rpc(function()
  local t, i = {}, 0
  while true do
    i = i + 1
    t[i] = string.rep("x", 4096) .. i
  end
end, "test.memory")

nk.register_rpc(function()
  return string.rep("x", 2 ^ 30)
end, "test.big_string")
