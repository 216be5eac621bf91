-- Each request carries the next of many session cookies (one per line in $BENCH_COOKIES), so a
-- run touches every session in turn.
dofile("bench/wrk.lua")
local cookies = {}
for line in io.lines(os.getenv("BENCH_COOKIES")) do
  cookies[#cookies + 1] = line
end
local i = 0
request = function()
  i = i % #cookies + 1
  wrk.headers["Cookie"] = cookies[i]
  return wrk.format()
end
