-- Helper module for the e2e fixtures. Loaded by e2e.lua as require("lib.e2e_util"), which
-- checks that modules in sub-directories are named by their dotted relative path.

local M = {}

M.name = "lib.e2e_util"

-- Decode a JSON object payload; "" gives an empty table.
function M.args(nk, payload)
  if payload == nil or payload == "" then
    return {}
  end
  return nk.json_decode(payload)
end

-- The keys of a table, sorted (so JSON output is stable).
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = tostring(k)
  end
  table.sort(keys)
  return keys
end

return M
