import Foundation
import GatehouseStore
import GatehouseTestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// How the stack is deployed for a run.
enum DeploymentMode: String, CaseIterable, Sendable {
    /// SQLite file + embedded bus (`gatehouse serve`'s defaults), API and worker as two processes.
    case embedded
    /// MariaDB + a Kafka-protocol broker, API and worker as two processes.
    case distributed
}

/// Nothing accepted is lost, and everything is applied exactly once, although the worker
/// is killed between its database commit and its offset commit and the API is killed in
/// the middle of a burst. Runs the real `gatehouse` executable.
@Suite("Crash tests: exactly once across SIGKILL", .serialized, .timeLimit(.minutes(5)))
struct CrashTests {
    @Test(arguments: DeploymentMode.allCases)
    func everyAcceptedRequestIsAppliedExactlyOnce(mode: DeploymentMode) async throws {
        let store = try await TestDatabases.make(mode == .embedded ? .sqlite : .mariadb)
        defer { Task { await store.close() } }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let port = freeLoopbackPort()
        var env = [
            "GATEHOUSE_DATA_DIR": dir.path, "GATEHOUSE_DATABASE_URL": store.url,
            "GATEHOUSE_HTTP_ADDR": "127.0.0.1:\(port)", "GATEHOUSE_KEK_FILE": dir.path + "/kek.hex",
            "GATEHOUSE_LOG_LEVEL": "notice", "GATEHOUSE_RELAY_REPUBLISH_SECONDS": "5",
        ]
        if mode == .distributed {
            guard let kafka = try kafkaEnvironment(prefix: "crash") else { return }
            env.merge(kafka) { $1 }
            env["GATEHOUSE_BUS_PARTITIONS"] = "3"
        }
        #expect(try GatehouseProcess.run(["keygen", "--kek", dir.path + "/kek.hex"], environment: env).status == 0)
        let created = try GatehouseProcess.run(["token", "create", "sms", "--scopes", "read,write,keys"], environment: env)
        let token = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(created.status == 0 && token.hasPrefix("gh_"))

        var api = try GatehouseProcess(["api"], environment: env, logFile: dir.appendingPathComponent("api.log"))
        var crashEnv = env
        crashEnv["GATEHOUSE_FAULT_WORKER_CRASH_AFTER"] = "7"
        var worker = try GatehouseProcess(["worker"], environment: crashEnv, logFile: dir.appendingPathComponent("worker.log"))
        defer {
            api.stop()
            worker.stop()
        }
        let client = Client(base: "http://127.0.0.1:\(port)", token: token)
        try await client.waitUntilHealthy()
        #expect(try await client.post("/device_keys", #"{"device_id":"crash-1","key":"000102030405060708090a0b0c0d0e0f"}"#) != nil)

        // The burst: 120 entitlements from 6 concurrent senders that retry with an
        // Idempotency-Key, as an SMS should; the API is killed a third of the way in and
        // restarted while they keep sending.
        let accepted = AcceptedIDs()
        let sent = Counter()
        let apis = ProcessBox(api)
        let apiEnv = env
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<6 {
                group.addTask {
                    for i in stride(from: sender + 1, through: 120, by: 6) {
                        _ = sent.increment()
                        let body = #"{"device_id":"crash-1","product_id":\#(i),"end_time":"2099-01-01T00:00:00Z"}"#
                        for _ in 0..<100 {
                            if let id = try? await client.post("/add_entitlement", body, idempotencyKey: "product-\(i)") {
                                accepted.add(id, product: i)
                                break
                            }
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                }
            }
            group.addTask {
                while sent.value < 40 { try await Task.sleep(for: .milliseconds(5)) }
                apis.current.crash()
                apis.current = try GatehouseProcess(["api"], environment: apiEnv, logFile: dir.appendingPathComponent("api.log"))
            }
            try await group.waitForAll()
        }
        api = apis.current
        try await client.waitUntilHealthy()
        #expect(api.log.components(separatedBy: "http.listening").count - 1 == 2, "the API was not restarted")
        #expect(accepted.count == 120, "every product must be accepted in the end (with retries): \(accepted.count)")

        // The worker killed itself after its 7th commit; restart it (without the fault)
        // and wait for every request to be applied.
        let deadline = Date().addingTimeInterval(120)
        var restarts = 0
        while Date() < deadline {
            if !worker.isRunning {
                restarts += 1
                worker = try GatehouseProcess(["worker"], environment: env, logFile: dir.appendingPathComponent("worker.log"))
            }
            let pending = try await store.database.read { connection in
                try connection.queryFirst("SELECT COUNT(*) AS n FROM requests WHERE status = 'accepted'")!.int("n")
            }
            if pending == 0 && restarts > 0 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(restarts >= 1, "the worker never crashed")
        #expect(worker.log.contains("worker.fault_injected_crash"))

        let rows = try await store.database.read { connection in
            (
                try connection.query("SELECT request_id, status FROM requests WHERE kind = 'add_entitlement'")
                    .map { (try $0.text("request_id"), try $0.text("status")) },
                try connection.query(
                    "SELECT request_id, COUNT(*) AS n FROM emms WHERE kind = 'entitlement_add' GROUP BY request_id")
                    .map { (try $0.text("request_id"), try $0.int("n")) },
                try connection.query("SELECT product_id FROM entitlements WHERE device_id = 'crash-1'")
                    .map { try $0.int("product_id") },
                try connection.query(
                    "SELECT request_id, COUNT(*) AS n FROM audit_log WHERE action = 'entitlement_activated' GROUP BY request_id")
                    .map { (try $0.text("request_id"), try $0.int("n")) }
            )
        }
        let status = Dictionary(uniqueKeysWithValues: rows.0)
        let emmsPerRequest = Dictionary(uniqueKeysWithValues: rows.1)
        let auditsPerRequest = Dictionary(uniqueKeysWithValues: rows.3)
        // Nothing accepted is lost...
        for (id, product) in accepted.all {
            #expect(status[id] == "processed", "accepted request \(id) (product \(product)) is \(status[id] ?? "missing")")
        }
        // ...and everything stored is applied exactly once.
        #expect(status.values.allSatisfy { $0 == "processed" })
        #expect(emmsPerRequest.count == status.count)
        #expect(emmsPerRequest.values.allSatisfy { $0 == 1 })
        #expect(auditsPerRequest.values.allSatisfy { $0 == 1 })
        #expect(auditsPerRequest.count == status.count)
        #expect(rows.2.count == status.count)
        #expect(Set(rows.2).count == rows.2.count)
        #expect(Set(accepted.all.map(\.1)).isSubset(of: Set(rows.2)))
    }
}

/// Settings that point a stack at the test broker, on topics and a group of its own;
/// nil (with a recorded issue saying how to start one) when no broker is configured.
func kafkaEnvironment(prefix: String) throws -> [String: String]? {
    guard let brokers = ProcessInfo.processInfo.environment["GATEHOUSE_TEST_KAFKA_BROKERS"] else {
        Issue.record("GATEHOUSE_TEST_KAFKA_BROKERS is not set: run scripts/test.sh, or start a broker with scripts/kafka.sh")
        return nil
    }
    let run = "\(prefix)-\(UUID().uuidString.prefix(8))"
    return [
        "GATEHOUSE_BUS_URL": "kafka://\(brokers)", "GATEHOUSE_BUS_COMMANDS_TOPIC": run,
        "GATEHOUSE_BUS_DLQ_TOPIC": run + ".dlq", "GATEHOUSE_BUS_GROUP": run,
        "GATEHOUSE_MONITOR_EVENTS_TOPIC": run + ".monitor",
        // Fast rebalances when a test kills a consumer (tansu joins take about half of it).
        "GATEHOUSE_KAFKA_OPTIONS": "session.timeout.ms=6000,heartbeat.interval.ms=500",
    ]
}

/// A tiny client over URLSession for the crash tests.
struct Client: Sendable {
    let base: String
    let token: String

    /// POSTs a JSON body; the request id when the answer is 202, nil when the call failed.
    func post(_ path: String, _ body: String, idempotencyKey: String? = nil) async throws -> String? {
        var request = URLRequest(url: URL(string: base + path)!)
        if let idempotencyKey { request.setValue(idempotencyKey, forHTTPHeaderField: "Idempotency-Key") }
        request.httpMethod = "POST"
        request.httpBody = Data(body.utf8)
        request.timeoutInterval = 10
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        guard let (data, response) = try? await URLSession.shared.data(for: request),
            (response as? HTTPURLResponse)?.statusCode == 202,
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object["request_id"] as? String
    }

    func waitUntilHealthy(seconds: Double = 30) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let (_, response) = try? await URLSession.shared.data(from: URL(string: base + "/healthz")!),
                (response as? HTTPURLResponse)?.statusCode == 200
            {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw NSError(domain: "gatehouse.tests", code: 2, userInfo: [NSLocalizedDescriptionKey: "the API never became healthy"])
    }
}

final class AcceptedIDs: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: [(String, Int)] = []
    func add(_ id: String, product: Int) { lock.withLock { ids.append((id, product)) } }
    var all: [(String, Int)] { lock.withLock { ids } }
    var count: Int { lock.withLock { ids.count } }
}

final class ProcessBox: @unchecked Sendable {
    private let lock = NSLock()
    private var process: GatehouseProcess
    init(_ process: GatehouseProcess) { self.process = process }
    var current: GatehouseProcess {
        get { lock.withLock { process } }
        set { lock.withLock { process = newValue } }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() -> Int { lock.withLock { n += 1; return n } }
    var value: Int { lock.withLock { n } }
}
