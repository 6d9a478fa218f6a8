-- wrk script: POST /add_entitlement with valid, varied bodies and the bearer token.
--   GATEHOUSE_TOKEN=... wrk -t2 -c32 -d15s --latency -s bench/http/add_entitlement.lua http://127.0.0.1:PORT
-- Every request names another device (b<run>-<thread>-<n>) and one of 1000 products, so
-- no two bodies are alike; the end time is far in the future so every body is valid.
-- At the end it prints the statuses seen; anything but 202 is a failed write.
local token = os.getenv("GATEHOUSE_TOKEN") or error("set GATEHOUSE_TOKEN")
local threads = {}
local counter = 0
thread_id = 0
local run = os.getenv("GATEHOUSE_RUN") or tostring(os.time())
statuses = {}

function setup(thread)
    thread:set("thread_id", #threads)
    table.insert(threads, thread)
end

function init(args)
    statuses = {}
    wrk.headers["Authorization"] = "Bearer " .. token
    wrk.headers["Content-Type"] = "application/json"
end

function request()
    counter = counter + 1
    local body = string.format(
        '{"device_id":"b%s-%d-%d","product_id":%d,"start_time":"2026-01-01T00:00:00Z","end_time":"2036-01-01T00:00:00Z"}',
        run, thread_id, counter, counter % 1000 + 1)
    return wrk.format("POST", "/add_entitlement", nil, body)
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
    local total = {}
    for _, thread in ipairs(threads) do
        for status, n in pairs(thread:get("statuses")) do total[status] = (total[status] or 0) + n end
    end
    local accepted = total[202] or 0
    local seconds = summary.duration / 1e6
    io.write(string.format("statuses:"))
    for status, n in pairs(total) do io.write(string.format(" %d=%d", status, n)) end
    io.write(string.format("\naccepted writes: %d in %.1f s = %.0f/s\n", accepted, seconds, accepted / seconds))
    io.write(string.format("latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
        latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
