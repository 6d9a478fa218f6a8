-- wrk script: authenticated GETs. GATEHOUSE_TOKEN is the bearer token; GATEHOUSE_PATHS a
-- space-separated list of paths requested round-robin (default "/healthz"); with
-- GATEHOUSE_DEVICES=N, "/devices/bench-dev-<i>" for i in 0..N-1 are requested instead.
--   GATEHOUSE_TOKEN=... GATEHOUSE_DEVICES=1000 wrk -t2 -c32 -d15s --latency -s bench/http/get.lua http://127.0.0.1:PORT
local token = os.getenv("GATEHOUSE_TOKEN")
local paths = {}
local devices = tonumber(os.getenv("GATEHOUSE_DEVICES") or "0")
if devices > 0 then
    for i = 0, devices - 1 do table.insert(paths, "/devices/bench-dev-" .. i) end
else
    for path in string.gmatch(os.getenv("GATEHOUSE_PATHS") or "/healthz", "%S+") do table.insert(paths, path) end
end
local threads = {}
local index = 0
statuses = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    statuses = {}
    if token then wrk.headers["Authorization"] = "Bearer " .. token end
    index = math.random(#paths) - 1
end

function request()
    index = index % #paths + 1
    return wrk.format("GET", paths[index])
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
    local total = {}
    for _, thread in ipairs(threads) do
        for status, n in pairs(thread:get("statuses")) do total[status] = (total[status] or 0) + n end
    end
    local ok = total[200] or 0
    local seconds = summary.duration / 1e6
    io.write("statuses:")
    for status, n in pairs(total) do io.write(string.format(" %d=%d", status, n)) end
    io.write(string.format("\n200 responses: %d in %.1f s = %.0f/s\n", ok, seconds, ok / seconds))
    io.write(string.format("latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
        latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
