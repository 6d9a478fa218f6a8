-- wrk script for the pipeline benchmark (bench/pipeline/run.sh): a bounded number of writes,
-- optionally paced, over a fixed set of devices.
--
--   BENCH_KIND=keys            POST /device_keys  {"device_id":"<prefix><i>","key":<hex>}
--   BENCH_KIND=entitlements    POST /add_entitlement for device <prefix><i mod devices>
--
-- Environment:
--   GATEHOUSE_TOKEN        bearer token (scopes write, keys)
--   BENCH_DEVICES          number of devices (default 300)
--   BENCH_PREFIX           device id prefix (default "pd-")
--   BENCH_PER_THREAD       writes each wrk thread sends before it stops (answers counted)
--   BENCH_PRODUCT_BASE     first product id of this phase (default 1); request n of the phase
--                          goes to device n mod devices and product base + n div devices, so no
--                          two requests of a run share (device, product) and nothing merges
--   BENCH_DELAY_MS         pause before each request on a connection (0: as fast as possible);
--                          the offered rate is about connections * 1000 / (delay + latency)
-- At the end it prints the statuses seen. The database is the reference for what was accepted:
-- when a thread stops, requests still in flight on its other connections may be stored too.
local token = os.getenv("GATEHOUSE_TOKEN") or error("set GATEHOUSE_TOKEN")
local kind = os.getenv("BENCH_KIND") or "entitlements"
local devices = tonumber(os.getenv("BENCH_DEVICES") or "300")
local prefix = os.getenv("BENCH_PREFIX") or "pd-"
local perThread = tonumber(os.getenv("BENCH_PER_THREAD") or "1000")
local productBase = tonumber(os.getenv("BENCH_PRODUCT_BASE") or "1")
local delayMs = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
-- wrk itself runs until -d: each thread drops BENCH_DONE_DIR/thread-<id> when it has its
-- answers, and run.sh then ends wrk with SIGINT (wrk still prints its summary)
local doneDir = os.getenv("BENCH_DONE_DIR")
local threads = {}
local sent = 0
local answered = 0
thread_id = 0
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
    local n = thread_id * perThread + sent
    sent = sent + 1
    local body
    if kind == "keys" then
        local i = n % devices
        body = string.format('{"device_id":"%s%d","key":"00112233445566778899aabb%08x"}', prefix, i, i)
        return wrk.format("POST", "/device_keys", nil, body)
    end
    body = string.format(
        '{"device_id":"%s%d","product_id":%d,"start_time":"2026-01-01T00:00:00Z","end_time":"2036-01-01T00:00:00Z"}',
        prefix, n % devices, productBase + math.floor(n / devices) % 60000)
    return wrk.format("POST", "/add_entitlement", nil, body)
end

if delayMs > 0 then
    function delay() return delayMs end
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    answered = answered + 1
    if answered == perThread then
        if doneDir then
            local f = io.open(string.format("%s/thread-%d", doneDir, thread_id), "w")
            if f then f:close() end
        end
        wrk.thread:stop()
    end
end

function done(summary, latency, requests)
    local total = {}
    for _, thread in ipairs(threads) do
        for status, n in pairs(thread:get("statuses")) do total[status] = (total[status] or 0) + n end
    end
    local seconds = summary.duration / 1e6
    io.write("statuses:")
    for status, n in pairs(total) do io.write(string.format(" %d=%d", status, n)) end
    io.write(string.format("\nwrk: %d answers in %.2f s = %.0f/s; HTTP latency p50 %.2f ms, p99 %.2f ms\n",
        summary.requests, seconds, summary.requests / seconds, latency:percentile(50) / 1000,
        latency:percentile(99) / 1000))
end
