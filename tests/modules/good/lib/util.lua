-- A helper module required by rpc.lua; counts how often its body runs in this VM.
util_loads = (util_loads or 0) + 1

local M = {}

function M.double(n)
  return n * 2
end

function M.fail()
  error("failed in util")
end

return M
