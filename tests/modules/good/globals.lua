-- test.globals: the global names a module sees while it loads and a call sees later
-- (NAKAMA-SPEC §9.2 [obs]); test.set_global assigns globals inside a call, which Nakama
-- allows (§9.3 [obs]: the write stays in that VM).
local nk = require("nakama")

local function names()
  local n = {}
  for k in pairs(_G) do n[#n + 1] = tostring(k) end
  table.sort(n)
  return table.concat(n, " ")
end
local at_load = names()

nk.register_rpc(function()
  return at_load .. "\n" .. names()
end, "test.globals")

counter = 0
nk.register_rpc(function()
  counter = counter + 1
  newglobal = 1
  return tostring(counter >= 1 and newglobal == 1)
end, "test.set_global")
