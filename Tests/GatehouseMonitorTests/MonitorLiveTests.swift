import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseEMM
import GatehouseTS
import GatehouseTestSupport
import Synchronization
import Testing

@testable import GatehouseMonitor

/// Tests over real sockets: loopback multicast, a real Pushgateway, promtool, a webhook listener.
@Suite("Monitor live (loopback multicast, Pushgateway, promtool)", .timeLimit(.minutes(1)))
struct MonitorLiveTests {
    func configuration(group: MulticastGroup, pushgateway: String? = nil) -> MonitorConfiguration {
        var c = MonitorConfiguration(group: group, instance: "test-\(getpid())")
        c.keys = [MonitorDeviceKey(deviceID: "dev1", key: key1, keyVersion: 1)]
        c.pushgatewayURL = pushgateway
        c.pushIntervalSeconds = 0.2
        c.pushJob = "gatehouse_monitor_test"
        return c
    }

    /// Runs `service` until `body` returns, then cancels it and waits for `run()` to end.
    func running(_ service: MonitorService, _ body: () async throws -> Void) async throws {
        let task = Task { try await service.run() }
        let joined = await eventually(5) { service.grantedReceiveBufferBytes > 0 }
        try #require(joined, "the monitor did not join the group")
        try await Task.sleep(nanoseconds: 50_000_000)
        do {
            try await body()
        } catch {
            task.cancel()
            _ = await task.result
            throw error
        }
        task.cancel()
        let started = Date()
        try await task.value
        #expect(Date().timeIntervalSince(started) < 3, "stop took too long")
    }

    @Test("Receives loopback multicast, finds the EMM PID in the CAT, decrypts, observes")
    func multicastDecrypt() async throws {
        let group = testGroup(11)
        let service = MonitorService(configuration: configuration(group: group), logger: Logger.disabled)
        try await running(service) {
            let sender = try LoopbackMulticastSender(group: group)
            var builder = StreamBuilder()
            var ts = builder.catPackets()
            ts += builder.packets((1...20).map { StreamBuilder.seal(device: "dev1", key: key1, sequence: UInt64($0)) })
            ts += builder.packets([StreamBuilder.seal(device: "dev1", key: wrongKey, sequence: 99)])
            let datagrams = StreamBuilder.datagrams(ts)
            for d in datagrams { try sender.send(d) }
            let done = await eventually(5) { service.snapshot().count(.authenticationFailed) == 1 }
            #expect(done)
            let s = service.snapshot()
            #expect(s.datagramsRaw == UInt64(datagrams.count))
            #expect(s.emmPIDs == [emmPID])
            #expect(s.count(.ok) == 20)
            #expect(s.kernelDrops == 0)
            var iterator = service.observations.makeAsyncIterator()
            var seen: [UInt64] = []
            // Read only what the counters say was observed, so a missing one fails instead of hanging.
            for _ in 0..<min(20, Int(s.count(.ok))) {
                if let o = await iterator.next() { seen.append(o.sequenceNumber) }
            }
            #expect(seen == Array(1...20))
            #expect(service.grantedReceiveBufferBytes >= 1 << 20)
        }
    }

    @Test("RTP/TS: test-162.pcap replayed to a loopback group keeps its sequence and PID counts")
    func rtpReplay() async throws {
        let group = testGroup(12)
        let service = MonitorService(configuration: configuration(group: group), logger: Logger.disabled)
        let datagrams = PCAP.udpPayloads(try Fixtures.sample("test-162.pcap"))
        #expect(datagrams.count == 16)
        try await running(service) {
            let sender = try LoopbackMulticastSender(group: group)
            for d in datagrams { try sender.send(d) }
            #expect(await eventually(5) { service.snapshot().datagramsRTP == 16 })
            let s = service.snapshot()
            #expect(s.lastRTPSequenceNumber == 29733)
            #expect(s.rtpLostDatagrams == 0 && s.rtpOutOfOrderDatagrams == 0)
            #expect(s.packetsPerPID == [0x0065: 104, 0x00C8: 2, 0x00C9: 2, 0x00CA: 2, 0x00CB: 2])
            let text = service.metricsText()
            #expect(text.contains("gatehouse_monitor_datagrams_total{encapsulation=\"rtp\"} 16"))
            #expect(text.contains("gatehouse_monitor_rtp_lost_datagrams_total 0"))
        }
    }

    @Test("Pushes to a real Pushgateway with job, instance, group, pid labels; deletes the group on shutdown")
    func pushgateway() async throws {
        guard let base = ProcessInfo.processInfo.environment["GATEHOUSE_TEST_PUSHGATEWAY_URL"] else {
            Issue.record(
                """
                GATEHOUSE_TEST_PUSHGATEWAY_URL is not set. Start a Pushgateway first:
                  export GATEHOUSE_TEST_PUSHGATEWAY_URL=$(scripts/pushgateway.sh start /tmp/gh-pgw 9191)
                (Debian package prometheus-pushgateway; CI always starts it.)
                """)
            return
        }
        let group = testGroup(13)
        let config = configuration(group: group, pushgateway: base)
        let service = MonitorService(configuration: config, logger: Logger.disabled)
        let url = try HTTPURL(parsing: base)
        func gatewayLines() async throws -> [String] {
            let response = try await HTTPClient.send("GET", url.with(path: "/metrics"), timeout: 5)
            #expect(response.status == 200)
            return response.text.split(separator: "\n").map(String.init).filter { $0.contains(config.instance) }
        }
        func bandwidthLine(_ lines: [String]) -> String? {
            lines.first {
                $0.hasPrefix("gatehouse_monitor_emm_bytes_per_second{") && $0.contains("job=\"gatehouse_monitor_test\"")
                    && $0.contains("group=\"\(group.description)\"") && $0.contains("pid=\"0x0100\"")
                    && $0.contains("window=\"1s\"") && $0.contains("instance=\"\(config.instance)\"")
            }
        }
        try await running(service) {
            let sender = try LoopbackMulticastSender(group: group)
            var builder = StreamBuilder()
            var ts = builder.catPackets()
            ts += builder.packets((1...70).map { StreamBuilder.seal(device: "dev1", key: key1, sequence: UInt64($0)) })
            for d in StreamBuilder.datagrams(ts) { try sender.send(d) }
            // Keep EMMs flowing while waiting: a push made before the first datagrams were
            // read, or more than a second after the last, rightly shows 0 for the 1 s window
            // (that is how this test once failed on a loaded machine).
            var sequence: UInt64 = 70
            var found: String?
            var lastSeen: String?
            let deadline = Date().addingTimeInterval(15)
            while found == nil && Date() < deadline {
                let more = builder.packets(
                    (1...10).map { _ in
                        sequence += 1
                        return StreamBuilder.seal(device: "dev1", key: key1, sequence: sequence)
                    })
                for d in StreamBuilder.datagrams(more) { try sender.send(d) }
                if let line = bandwidthLine(try await gatewayLines()) {
                    lastSeen = line
                    if (Double(line.split(separator: " ").last ?? "") ?? -1) > 0 { found = line }
                }
                if found == nil { try await Task.sleep(nanoseconds: 100_000_000) }
            }
            #expect(lastSeen != nil, "no EMM bandwidth series for the group on the Pushgateway")
            #expect(found != nil, "the pushed EMM bandwidth stayed 0: \(lastSeen ?? "-")")
        }
        // run() has returned: the group must be gone.
        let after = try await gatewayLines()
        #expect(bandwidthLine(after) == nil)
        #expect(after.filter { $0.hasPrefix("gatehouse_monitor_") }.isEmpty, "\(after.prefix(3))")
    }

    @Test("promtool check metrics accepts the exposition")
    func promtool() throws {
        let tool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        guard let tool else {
            Issue.record("promtool not found: install the Debian package prometheus (CI installs it)")
            return
        }
        // A core with traffic of every kind, so every family appears.
        let core = MonitorCore(
            settings: MonitorCore.Settings(),
            keyring: DeviceKeyring([
                MonitorDeviceKey(deviceID: "dev1", key: key1)
            ]))
        var builder = StreamBuilder()
        core.ingest(builder.catPackets(), at: .seconds(0))
        core.ingest(
            builder.packets([
                StreamBuilder.seal(device: "dev1", key: key1, sequence: 1),
                StreamBuilder.seal(device: "dev1", key: wrongKey, sequence: 2),
            ]), at: .seconds(1))
        core.ingest([1, 2, 3], at: .seconds(1))
        core.tick(at: .seconds(2))
        let text = core.metricsText(at: MonitorInstant.seconds(2).monotonic)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "promtool: \(report)")
        #expect(text.contains("# TYPE gatehouse_monitor_emm_bytes_per_second gauge"))
    }

    @Test("Webhook: delivered after a first 500, with back-off; bus and log actions too")
    func webhook() async throws {
        let listener = try TinyHTTPListener(statuses: [500, 200])
        defer { listener.close() }
        var config = configuration(group: testGroup(14))
        config.rules = MonitorRules(
            rules: [
                MonitorRule(
                    name: "silent", condition: .noEMM(pid: nil), forSeconds: 1, actions: [.log, .webhook, .bus])
            ],
            webhook: WebhookSettings(
                url: "http://127.0.0.1:\(listener.port)/hook", timeoutSeconds: 2, attempts: 3,
                backoffSeconds: 0.05))
        let sink = CollectingSink()
        let (logger, lines) = memoryLogger()
        let service = MonitorService(configuration: config, logger: logger, eventSink: sink)
        let event = MonitorEvent(
            rule: "silent", condition: "no_emm", state: .fired, value: 1.5, time: 1_767_225_600,
            labels: ["group": config.group.description])
        await service.perform(event)
        let requests = listener.requests.withLock { $0 }
        #expect(requests.count == 2)
        #expect(requests.allSatisfy { $0.hasPrefix("POST /hook HTTP/1.1") })
        let body = try #require(requests.last?.components(separatedBy: "\r\n\r\n").last)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: String])
        #expect(json["rule"] == "silent" && json["state"] == "fired" && json["condition"] == "no_emm")
        #expect(json["group"] == config.group.description)
        #expect(sink.events.withLock { $0 } == [event])
        #expect(lines.lines.contains { $0.contains("monitor.condition.fired") && $0.contains("\"rule\":\"silent\"") })
        #expect(lines.lines.contains { $0.contains("monitor.webhook.retry") })
        #expect(service.metricsText().contains("gatehouse_monitor_webhooks_total{result=\"ok\"} 1"))
    }

    @Test("A running monitor fires and clears a condition end to end (no EMM, then EMMs)")
    func liveCondition() async throws {
        let group = testGroup(15)
        var config = configuration(group: group)
        config.rules = MonitorRules(rules: [
            MonitorRule(name: "silent", condition: .noEMM(pid: nil), forSeconds: 0.3, actions: [.log, .bus])
        ])
        let sink = CollectingSink()
        let (logger, lines) = memoryLogger()
        let service = MonitorService(configuration: config, logger: logger, eventSink: sink)
        try await running(service) {
            #expect(await eventually(5) { sink.events.withLock { $0.count } == 1 })
            let sender = try LoopbackMulticastSender(group: group)
            var builder = StreamBuilder()
            for d in StreamBuilder.datagrams(
                builder.catPackets()
                    + builder.packets([
                        StreamBuilder.seal(device: "dev1", key: key1, sequence: 1)
                    ]))
            { try sender.send(d) }
            #expect(await eventually(5) { sink.events.withLock { $0.count } >= 2 })
        }
        let states = sink.events.withLock { $0.map(\.state) }
        #expect(Array(states.prefix(2)) == [.fired, .cleared])
        #expect(!lines.lines.contains { $0.contains(key1.unsafeHexString()) })
        #expect(lines.lines.contains { $0.contains("monitor.joined") && $0.contains("socket.rcvbuf.granted") })
    }
}

@Suite("Monitor joins", .timeLimit(.minutes(1)))
struct MonitorJoinTests {
    /// Receives for `seconds` on `receiver`'s own thread and returns the datagram count.
    func count(_ receiver: MulticastReceiver, while send: () throws -> Void) async throws -> Int {
        let counter = Mutex<Int>(0)
        let thread = Thread {
            try? receiver.receiveLoop({ batch in counter.withLock { $0 += batch.datagrams.count } }, idle: {})
        }
        thread.start()
        try await Task.sleep(nanoseconds: 100_000_000)
        try send()
        try await Task.sleep(nanoseconds: 300_000_000)
        receiver.stop()
        try await Task.sleep(nanoseconds: 250_000_000)
        return counter.withLock { $0 }
    }

    @Test("Source-specific join: datagrams from the named source only")
    func sourceSpecific() async throws {
        let group = testGroup(16)
        let fromLoopback = try MulticastReceiver(settings: MulticastReceiverSettings(group: group, source: "127.0.0.1"))
        let fromElsewhere = try MulticastReceiver(
            settings: MulticastReceiverSettings(group: group, source: "127.0.0.2"))
        let sender = try LoopbackMulticastSender(group: group)
        var builder = StreamBuilder()
        let datagram = builder.catPackets()
        async let a = count(fromLoopback) { for _ in 0..<5 { try sender.send(datagram) } }
        async let b = count(fromElsewhere) {}
        #expect(try await a == 5)
        #expect(try await b == 0)
    }

    @Test("Two monitors on one host both receive (SO_REUSEPORT); interface by name")
    func reusePort() async throws {
        let group = testGroup(17)
        let first = try MulticastReceiver(settings: MulticastReceiverSettings(group: group, interface: "lo"))
        let second = try MulticastReceiver(settings: MulticastReceiverSettings(group: group))
        #expect(first.grantedReceiveBufferBytes >= 1 << 20)
        let sender = try LoopbackMulticastSender(group: group)
        var builder = StreamBuilder()
        let datagram = builder.catPackets()
        async let a = count(first) { for _ in 0..<3 { try sender.send(datagram) } }
        async let b = count(second) {}
        #expect(try await a == 3)
        #expect(try await b == 3)
    }

    @Test("IPv6 join on loopback by interface name; errors name the setting")
    func ipv6AndErrors() throws {
        let group = try MulticastGroup(parsing: "[ff12::4242]:\(testGroup(18).port)")
        _ = try MulticastReceiver(settings: MulticastReceiverSettings(group: group, interface: "lo"))
        #expect {
            _ = try MulticastReceiver(settings: MulticastReceiverSettings(group: testGroup(19), interface: "nosuch0"))
        } throws: { error in
            (error as? GatehouseError)?.message.contains("GATEHOUSE_MULTICAST_INTERFACE") == true
        }
    }
}
