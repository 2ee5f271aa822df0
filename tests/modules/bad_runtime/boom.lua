local nk = require("nakama")

error("module failed at load")
