local nk = require("nakama")

nk.register_rpc(function() return "ok" end, "fine")

local x = = 1
