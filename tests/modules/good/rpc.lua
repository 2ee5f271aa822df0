-- RPC shapes: echo, nil, invalid return, errors with and without a code, context.
local nk = require("nakama")
local util = require("lib.util")

nk.register_rpc(function(_, payload) return payload end, "test.echo")
nk.register_rpc(function() return nil end, "test.nil")
nk.register_rpc(function() return 42 end, "test.number")
nk.register_rpc(function() error("boom plain") end, "test.error")
nk.register_rpc(function() error({"custom message", 3}) end, "test.error_code")
nk.register_rpc(function() error({"odd code", 99}) end, "test.error_bad_code")
nk.register_rpc(function() local t = nil; return t.x end, "test.runtime_error")
nk.register_rpc(function() return util.fail() end, "test.error_elsewhere")
nk.register_rpc(function(ctx) return nk.json_encode(ctx) end, "test.context")
nk.register_rpc(function() return tostring(util.double(21)) .. " " .. tostring(util_loads) end, "Test.Require")
