import Foundation
import GatehouseCrypto
import GatehouseEMM
import GatehouseMonitor
import GatehouseStore
import GatehouseTS
import GatehouseTestSupport
import Testing

/// The whole product, as an operator runs it, in both deployments: curl against a live
/// stack, three virtual set-top boxes and the monitor on the same multicast group, the
/// Pushgateway showing the EMM bandwidth, a forged EMM, a cancel, and on-air times.
@Suite("End to end", .serialized, .timeLimit(.minutes(6)))
struct EndToEndTests {
    static let keys = [
        "box-A": "000102030405060708090a0b0c0d0e0f",
        "box-B": "101112131415161718191a1b1c1d1e1f",
        "box-C": "202122232425262728292a2b2c2d2e2f202122232425262728292a2b2c2d2e2f",
    ]
    static let bitRate = 100_000
    static let emmPID: UInt16 = 0x0100

    @Test(arguments: DeploymentMode.allCases)
    func theWholeStory(mode: DeploymentMode) async throws {
        guard let pushgateway = ProcessInfo.processInfo.environment["GATEHOUSE_TEST_PUSHGATEWAY_URL"] else {
            Issue.record("GATEHOUSE_TEST_PUSHGATEWAY_URL is not set: run scripts/test.sh, or scripts/pushgateway.sh start DIR PORT")
            return
        }
        let store = try await TestDatabases.make(mode == .embedded ? .sqlite : .mariadb)
        defer { Task { await store.close() } }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let apiPort = freeLoopbackPort()
        let monitorPort = freeLoopbackPort()
        let group = "239.255.\(Int.random(in: 100...199)).\(Int.random(in: 1...254))"
        let groupPort = Int.random(in: 20_000...40_000)
        let instance = "e2e-\(mode.rawValue)-\(UUID().uuidString.prefix(8))"
        var env = [
            "GATEHOUSE_DATA_DIR": dir.path, "GATEHOUSE_DATABASE_URL": store.url, "GATEHOUSE_KEK_FILE": dir.path + "/kek.hex",
            "GATEHOUSE_HTTP_ADDR": "127.0.0.1:\(apiPort)", "GATEHOUSE_LOG_LEVEL": "notice",
            "GATEHOUSE_EMM_GROUP": "\(group):\(groupPort)", "GATEHOUSE_MULTICAST_INTERFACE": "127.0.0.1",
            "GATEHOUSE_EMM_BITRATE": String(Self.bitRate), "GATEHOUSE_PUSHGATEWAY_URL": pushgateway,
            "GATEHOUSE_PUSH_INTERVAL_SECONDS": "1", "GATEHOUSE_INSTANCE": instance,
            "GATEHOUSE_MONITOR_KEYS": Self.keys.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ","),
            "GATEHOUSE_MONITOR_HTTP_ADDR": "127.0.0.1:\(monitorPort)",
        ]
        if mode == .distributed {
            guard let kafka = try kafkaEnvironment(prefix: "e2e") else { return }
            env.merge(kafka) { $1 }
        }
        #expect(try GatehouseProcess.run(["keygen", "--kek", dir.path + "/kek.hex"], environment: env).status == 0)
        let token = try GatehouseProcess.run(["token", "create", "sms", "--scopes", "read,write,keys"], environment: env)
            .output.trimmingCharacters(in: .whitespacesAndNewlines)

        // The stack.
        var processes: [GatehouseProcess] = []
        defer { for process in processes { process.stop() } }
        let commands = mode == .embedded ? [["serve"]] : [["api"], ["worker"], ["playout"], ["monitor"]]
        for command in commands {
            processes.append(try GatehouseProcess(command, environment: env, logFile: dir.appendingPathComponent("\(command[0]).log")))
        }
        let curl = Curl(base: "http://127.0.0.1:\(apiPort)", token: token)
        try await Client(base: curl.base, token: token).waitUntilHealthy()

        // Three boxes watching the group.
        var boxes: [String: GatehouseProcess] = [:]
        for (device, key) in Self.keys {
            boxes[device] = try GatehouseProcess(
                ["stb", "--device", device, "--key", key, "--json"], environment: env,
                logFile: dir.appendingPathComponent("stb-\(device).log"))
        }
        defer { for box in boxes.values { box.stop() } }

        // Register three devices (and 97 more, so a message to all fills the carousel).
        var requestIDs: [String: String] = [:]
        for (device, key) in Self.keys.sorted(by: { $0.key < $1.key }) {
            requestIDs["register \(device)"] = try curl.post("/device_keys", #"{"device_id":"\#(device)","key":"\#(key)"}"#)
        }
        for i in 1...97 {
            let key = Hex.encode(try SecureRandom.bytes(count: 16))
            _ = try curl.post("/device_keys", #"{"device_id":"filler-\#(i)","key":"\#(key)"}"#)
        }
        try await waitUntilApplied(store)
        requestIDs["grant A"] = try curl.post(
            "/add_entitlement", #"{"device_id":"box-A","product_id":1,"end_time":"2099-01-01T00:00:00Z"}"#)
        requestIDs["grant B"] = try curl.post(
            "/add_entitlement", #"{"device_id":"box-B","product_id":2,"end_time":"2099-01-01T00:00:00Z"}"#)
        requestIDs["osm A"] = try curl.post(
            "/generate_osm", #"{"device_id":"box-A","kind":"mailbox","text":"Only for A"}"#)
        let longText = "Maintenance tonight from 02:00 to 04:00 UTC. " + String(repeating: "Service may be interrupted. ", count: 8)
        requestIDs["osm all"] = try curl.post("/generate_osm", #"{"all":true,"kind":"scroll_bottom","text":"\#(longText)"}"#)
        try await waitUntilApplied(store)

        // The carousel is full now; after 12 s the 10 s window holds only full-carousel time.
        try await Task.sleep(for: .seconds(12))
        let metricsURL = mode == .embedded ? curl.base + "/metrics" : "http://127.0.0.1:\(monitorPort)/metrics"
        let metrics = try curl.get(metricsURL)
        let measured = try #require(Self.value(in: metrics, "gatehouse_monitor_emm_total_bytes_per_second", #"window="10s""#))
        let measuredBits = measured * 8
        // The EMM PID carries the configured rate less the CAT (2 packets a second, 3%).
        let expected = Double(Self.bitRate) - 2 * 188 * 8
        #expect(abs(measuredBits - expected) / expected < 0.05, "monitor measured \(measuredBits) bit/s, playout runs \(Self.bitRate)")
        let pushed = try curl.get(pushgateway + "/metrics")
        #expect(pushed.split(separator: "\n").contains {
            $0.hasPrefix("gatehouse_monitor_emm_bytes_per_second{") && $0.contains(#"instance="\#(instance)""#)
                && $0.contains(#"pid="0x0100""#)
        }, "the Pushgateway does not show the EMM bandwidth for \(instance)")

        // A forged EMM for box A, sealed under a key that is not A's, sent into the group.
        let failuresBefore = Self.value(in: metrics, "gatehouse_monitor_emm_decrypt_total", #"result="authentication_failed""#) ?? 0
        let forged = try EMMSealer(key: try SymmetricKey.random(), keyVersion: 1).seal(EMM(
            addressing: DeviceAddress.addressing(deviceID: "box-A"), keyVersion: 1, sequenceNumber: 1_000_000,
            timestamp: UInt32(Date().timeIntervalSince1970),
            payload: .entitlementAdd(EntitlementGrant(productID: 666, start: 0, end: 4_000_000_000))))
        var packetizer = SectionPacketizer(pid: Self.emmPID)
        var datagram = try packetizer.packetize([forged])
        let nullPacket: [UInt8] = [0x47, 0x1F, 0xFF, 0x10] + [UInt8](repeating: 0xFF, count: 184)
        while datagram.count < 7 * 188 { datagram += nullPacket }
        let sender = try LoopbackMulticastSender(group: try MulticastGroup(parsing: "\(group):\(groupPort)"))
        for _ in 0..<3 {
            try sender.send(datagram)
            try await Task.sleep(for: .milliseconds(200))
        }
        try await Task.sleep(for: .seconds(2))
        let afterForgery = try curl.get(metricsURL)
        let failuresAfter = Self.value(in: afterForgery, "gatehouse_monitor_emm_decrypt_total", #"result="authentication_failed""#) ?? 0
        #expect(failuresAfter >= failuresBefore + 1, "the monitor did not count the forged EMM")

        // Cancel A's entitlement; the box drops it.
        requestIDs["cancel A"] = try curl.post("/cancel_entitlement", #"{"device_id":"box-A","product_id":1}"#)
        try await waitUntilApplied(store)
        try await Task.sleep(for: .seconds(3))

        // Every request that put something on air shows when it got there.
        let deadline = Date().addingTimeInterval(20)
        var missing: [String] = []
        repeat {
            missing = []
            for (name, id) in requestIDs where !name.hasPrefix("register") {
                let status = try curl.get(curl.base + "/requests/\(id)")
                if !status.contains(#""status":"processed""#) || status.contains(#""on_air_at":null"#) { missing.append(name) }
            }
            if missing.isEmpty { break }
            try await Task.sleep(for: .milliseconds(500))
        } while Date() < deadline
        #expect(missing.isEmpty, "requests without an on-air time: \(missing)")
        for (name, id) in requestIDs where name.hasPrefix("register") {
            #expect(try curl.get(curl.base + "/requests/\(id)").contains(#""status":"processed""#))
        }

        // Each box shows exactly its own entitlements and messages.
        for box in boxes.values { box.stop() }
        let states = try Dictionary(uniqueKeysWithValues: boxes.map { ($0.key, try Self.finalState($0.value.log)) })
        let a = try #require(states["box-A"]), b = try #require(states["box-B"]), c = try #require(states["box-C"])
        #expect(a.products == [])
        #expect(b.products == [2])
        #expect(c.products == [])
        #expect(a.texts == Set(["Only for A", longText]))
        #expect(b.texts == Set([longText]))
        #expect(c.texts == Set([longText]))
        let aLog = try #require(boxes["box-A"]).log
        #expect(aLog.contains(#""event":"entitlement_added""#) && aLog.contains(#""event":"entitlement_cancelled""#))
        #expect(aLog.contains(#""event":"refused""#), "box A did not see (and refuse) the forged EMM")
        #expect(!aLog.contains(#""product_id":"666""#))
        for process in processes { #expect(process.isRunning, "a service died: \(process.process.arguments ?? [])") }
    }

    /// Waits until no request is still `accepted`.
    func waitUntilApplied(_ store: TestDatabases.Handle, seconds: Double = 60) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let pending = try await store.database.read { connection in
                try connection.queryFirst("SELECT COUNT(*) AS n FROM requests WHERE status = 'accepted'")!.int("n")
            }
            if pending == 0 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("requests were not applied within \(seconds) s")
    }

    struct BoxState {
        var products: [Int]
        var texts: Set<String>
    }

    /// The last line of `stb --json` output: its whole state.
    static func finalState(_ log: String) throws -> BoxState {
        let line = try #require(log.split(separator: "\n").last { $0.contains(#""event":"state""#) })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let products = (object["entitlements"] as? [[String: Any]] ?? []).compactMap { $0["product_id"] as? Int }
        let messages = (object["messages"] as? [[String: Any]] ?? []) + (object["mailbox"] as? [[String: Any]] ?? [])
        return BoxState(products: products.sorted(), texts: Set(messages.compactMap { $0["text"] as? String }))
    }

    /// The value of the first sample of `name` whose labels contain `labels`.
    static func value(in exposition: String, _ name: String, _ labels: String) -> Double? {
        for line in exposition.split(separator: "\n") where line.hasPrefix(name + "{") && line.contains(labels) {
            if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { return value }
        }
        return nil
    }
}

/// The API driven with the real `curl`, as an operator would.
struct Curl {
    let base: String
    let token: String

    /// POSTs JSON; returns the request id of the 202.
    func post(_ path: String, _ body: String) throws -> String {
        let output = try run(["-sS", "-X", "POST", base + path, "-H", "Authorization: Bearer \(token)",
            "-H", "Content-Type: application/json", "--data-binary", body, "-w", "\n%{http_code}"])
        let lines = output.split(separator: "\n")
        guard lines.last == "202", let json = lines.dropLast().last,
            let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            let id = object["request_id"] as? String
        else { throw NSError(domain: "curl", code: 1, userInfo: [NSLocalizedDescriptionKey: "POST \(path) answered: \(output)"]) }
        return id
    }

    func get(_ url: String) throws -> String {
        try run(["-sS", url, "-H", "Authorization: Bearer \(token)"])
    }

    private func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
