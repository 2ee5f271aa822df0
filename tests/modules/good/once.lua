-- run_once runs its function once per process, with execution_mode "run_once".
local nk = require("nakama")

nk.run_once(function(ctx)
  run_once_mode = ctx.execution_mode
  run_once_calls = (run_once_calls or 0) + 1
end)
