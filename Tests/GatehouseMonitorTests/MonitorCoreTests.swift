import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseEMM
import GatehouseTS
import Testing

@testable import GatehouseMonitor

@Suite("Monitor core (synthetic time)")
struct MonitorCoreTests {
    func makeCore(rules: [MonitorRule] = [], bitRate: Int = 1_000_000) -> MonitorCore {
        var settings = MonitorCore.Settings()
        settings.rules = rules
        settings.emmBitRate = bitRate
        return MonitorCore(
            settings: settings,
            keyring: DeviceKeyring([
                MonitorDeviceKey(deviceID: "dev1", key: key1, keyVersion: 1),
                MonitorDeviceKey(deviceID: "dev2", key: key2),
            ]))
    }

    @Test("EMM PIDs come from the CAT; EMMs are decrypted and observed once")
    func catAndDecrypt() {
        let core = makeCore()
        var builder = StreamBuilder()
        core.ingest(builder.catPackets(), at: .seconds(0))
        #expect(core.emmPIDs == [emmPID])
        let s1 = StreamBuilder.seal(device: "dev1", key: key1, sequence: 5)
        let s2 = StreamBuilder.seal(device: "dev2", key: key2, sequence: 9, keyVersion: 3, payload: StreamBuilder.osm)
        for d in StreamBuilder.datagrams(builder.packets([s1, s2, s1])) { core.ingest(d, at: .seconds(0.5)) }
        #expect(core.count(.ok) == 2)
        #expect(core.count(.repeat) == 1)
        let observations = core.drainObservations()
        #expect(observations.map(\.deviceID) == ["dev1", "dev2"])
        #expect(observations.map(\.kind) == ["entitlement_add", "osm"])
        #expect(observations.map(\.sequenceNumber) == [5, 9])
        #expect(observations[1].keyVersion == 3 && observations[1].tableID == 0x82 && observations[1].pid == emmPID)
        #expect(observations[0].seenAt == MonitorInstant.seconds(0.5).unixTime)
        #expect(core.drainObservations().isEmpty)
        #expect(core.emmCounters[emmPID]?.sections == 3)
        #expect(core.emmCounters[emmPID]?.packets == 3)
    }

    @Test("Every decryption outcome is counted by reason")
    func outcomes() {
        var settings = MonitorCore.Settings()
        settings.extraEMMPIDs = [emmPID]
        let core = MonitorCore(
            settings: settings,
            keyring: DeviceKeyring([
                MonitorDeviceKey(deviceID: "dev1", key: key1, keyVersion: 1),
                MonitorDeviceKey(deviceID: "dev2", key: key2),
            ]))
        var builder = StreamBuilder()
        var sections: [[UInt8]] = []
        sections.append(StreamBuilder.seal(device: "dev1", key: key1, sequence: 100))  // ok
        sections.append(StreamBuilder.seal(device: "dev1", key: key1, sequence: 100))  // repeat (new salt, same seq)
        // Replayed: older than the 64-wide window.
        sections.append(StreamBuilder.seal(device: "dev1", key: key1, sequence: 10))
        // Wrong key version: dev1's key is pinned to version 1.
        sections.append(StreamBuilder.seal(device: "dev1", key: key1, sequence: 101, keyVersion: 2))
        sections.append(StreamBuilder.seal(device: "dev2", key: wrongKey, sequence: 1))  // authentication failed
        sections.append(StreamBuilder.seal(device: "nobody", key: key1, sequence: 1))  // unknown device
        let global = try! EMMSealer(key: key1, keyVersion: 1).seal(
            EMM(
                addressing: .global, keyVersion: 1,
                sequenceNumber: 1, timestamp: 0, payload: .entitlementCancel(productID: 1)))
        sections.append(global)  // no key
        // A long-form section with a right CRC that is not a Gatehouse EMM (format version 9).
        var notEMM = StreamBuilder.seal(device: "dev1", key: key1, sequence: 102)
        notEMM[8] = 9
        recomputeCRC(&notEMM)
        sections.append(notEMM)  // malformed
        core.ingest(builder.packets(sections), at: .seconds(1))
        #expect(core.count(.ok) == 1)
        #expect(core.count(.repeat) == 1)
        #expect(core.count(.replayed) == 1)
        #expect(core.count(.wrongKeyVersion) == 1)
        #expect(core.count(.authenticationFailed) == 1)
        #expect(core.count(.unknownDevice) == 1)
        #expect(core.count(.noKey) == 1)
        #expect(core.count(.malformed) == 1)
        let text = core.metricsText(at: MonitorInstant.seconds(1).monotonic)
        #expect(text.contains("gatehouse_monitor_emm_decrypt_total{result=\"authentication_failed\"} 1"))
        #expect(!text.contains(key1.unsafeHexString()) && !text.contains(wrongKey.unsafeHexString()))
    }

    @Test("Bandwidth of a stream of known rate is within 1% over 10 s (synthetic time)")
    func bandwidthAccuracy() {
        let core = makeCore()
        var builder = StreamBuilder()
        core.ingest(builder.catPackets(), at: .seconds(0))
        let perSecond = 70  // one EMM per packet: 70 × 188 × 8 = 105 280 bit/s
        var last = MonitorInstant.seconds(0)
        for i in 0..<(perSecond * 10) {
            let section = StreamBuilder.seal(device: "dev1", key: key1, sequence: UInt64(i + 1))
            last = .seconds(Double(i) / Double(perSecond))
            core.ingest(builder.packets([section]), at: last)
        }
        let expected = Double(perSecond * TS.packetSize * 8)
        let tenSeconds = core.emmBitRate(pid: emmPID, seconds: 10, at: last.monotonic)
        let oneSecond = core.emmBitRate(pid: emmPID, seconds: 1, at: last.monotonic)
        #expect(abs(tenSeconds - expected) / expected < 0.01, "10 s: \(tenSeconds) vs \(expected)")
        #expect(abs(oneSecond - expected) / expected < 0.01, "1 s: \(oneSecond) vs \(expected)")
        #expect(abs(core.emmBitRate(seconds: 10, at: last.monotonic) - expected) / expected < 0.01)
        // Per table_id and kind count section bytes (67 per entitlement add).
        let sectionRate = Double(perSecond * 67 * 8)
        #expect(abs(core.tableBitRate(0x82, seconds: 10, at: last.monotonic) - sectionRate) / sectionRate < 0.01)
        #expect(
            abs(core.kindBitRate("entitlement_add", seconds: 10, at: last.monotonic) - sectionRate) / sectionRate < 0.01
        )
        #expect(abs(core.classBitRate("unique", seconds: 10, at: last.monotonic) - sectionRate) / sectionRate < 0.01)
        #expect(core.emmCounters[emmPID]?.packets == UInt64(perSecond * 10))
    }

    @Test("Malformed input is counted and never crashes")
    func malformed() {
        let core = makeCore()
        var builder = StreamBuilder()
        core.ingest(builder.catPackets(), at: .seconds(0))
        var generator = SystemRandomNumberGenerator()
        // Random bytes of every length, including empty and exact multiples of 188.
        for length in [0, 1, 11, 12, 100, 187, 188, 376, 1316, 1328, 2000] {
            for _ in 0..<20 {
                core.ingest((0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }, at: .seconds(1))
            }
        }
        // Random payloads behind valid TS headers on the EMM PID: garbage sections.
        for i in 0..<500 {
            var packet = [UInt8](repeating: 0, count: 188)
            for k in 4..<188 { packet[k] = UInt8.random(in: 0...255, using: &generator) }
            packet[0] = 0x47
            packet[1] = (i % 3 == 0 ? 0x40 : 0) | UInt8(emmPID >> 8)
            packet[2] = UInt8(emmPID & 0xFF)
            packet[3] = 0x10 | UInt8(i % 16)
            if i % 7 == 0 { packet[3] = 0x30 | UInt8(i % 16) }  // adaptation field of random length
            core.ingest(packet, at: .seconds(1))
        }
        let good = StreamBuilder.seal(device: "dev1", key: key1, sequence: 1)
        // Wrong sync in the middle of a datagram: rejected as a whole.
        var ts = builder.packets([good, good])
        ts[188] = 0x48
        core.ingest(ts, at: .seconds(2))
        // Truncated datagram.
        core.ingest(Array(builder.packets([good]).prefix(150)), at: .seconds(2))
        // Bad CRC.
        var bad = StreamBuilder.seal(device: "dev1", key: key1, sequence: 2)
        bad[40] ^= 0xFF
        core.ingest(builder.packets([bad]), at: .seconds(2))
        // Counter jump: skip two packets' worth of counter.
        var jumped = builder.packets([StreamBuilder.seal(device: "dev1", key: key1, sequence: 3)])
        jumped[3] = (jumped[3] & 0xF0) | ((jumped[3] &+ 3) & 0x0F)
        core.ingest(jumped, at: .seconds(2))
        // Transport error indicator.
        var tei = builder.packets([good])
        tei[1] |= 0x80
        core.ingest(tei, at: .seconds(2))
        // EMM under the wrong key for a known device.
        core.ingest(builder.packets([StreamBuilder.seal(device: "dev1", key: wrongKey, sequence: 4)]), at: .seconds(2))
        let snapshot = core.snapshot()
        #expect(snapshot.datagramsRejected >= 200)
        #expect((snapshot.emmCounters[emmPID]?.crcErrors ?? 0) >= 1)
        #expect((snapshot.continuityErrorsByPID[emmPID] ?? 0) >= 1)
        // ≥ 1: a random 188-byte datagram that happens to start with 0x47 may carry TEI too.
        #expect(snapshot.demux.transportErrors >= 1)
        #expect(snapshot.count(.authenticationFailed) >= 1)
        let text = core.metricsText(at: MonitorInstant.seconds(2).monotonic)
        #expect(text.contains("gatehouse_monitor_transport_errors_total \(snapshot.demux.transportErrors)"))
        // Still working after all that: a good EMM is decrypted.
        let before = core.count(.ok)
        core.ingest(builder.catPackets(), at: .seconds(3))
        core.ingest(builder.packets([StreamBuilder.seal(device: "dev1", key: key1, sequence: 50)]), at: .seconds(3))
        core.ingest(builder.packets([StreamBuilder.seal(device: "dev1", key: key1, sequence: 51)]), at: .seconds(3))
        #expect(core.count(.ok) >= before + 1)
    }

    @Test("Conditions fire once when they start and once when they clear")
    func conditions() throws {
        let rules = try MonitorRules(
            json: Data(
                """
                {"rules": [
                  {"name": "low", "when": "emm_bitrate_below", "threshold": 50000, "for_seconds": 2, "window_seconds": 1},
                  {"name": "silent", "when": "no_emm", "for_seconds": 3},
                  {"name": "crc", "when": "crc_errors", "threshold": 0, "window_seconds": 2},
                  {"name": "auth", "when": "decrypt_failures", "window_seconds": 2},
                  {"name": "osm2", "when": "device_emm_seen", "device": "dev2", "kind": "osm", "for_seconds": 2}
                ]}
                """.utf8))
        let core = makeCore(rules: rules.rules)
        var builder = StreamBuilder()
        core.ingest(builder.catPackets(), at: .seconds(0))
        var events: [MonitorEvent] = []
        var sequence: UInt64 = 0
        var t = 0.0
        func step(send: Bool) {
            if send {
                // 70 packets a second, one every 1/70 s within this 0.1 s step (7 per step).
                for k in 0..<7 {
                    sequence += 1
                    core.ingest(
                        builder.packets([StreamBuilder.seal(device: "dev1", key: key1, sequence: sequence)]),
                        at: .seconds(t + Double(k) / 70))
                }
            }
            t += 0.1
            core.tick(at: .seconds(t))
            events += core.drainEvents()
        }
        for _ in 0..<50 { step(send: true) }  // 0–5 s: 105 kbit/s
        #expect(events.isEmpty)
        for _ in 0..<50 { step(send: false) }  // 5–10 s: silence
        #expect(events.map { "\($0.rule):\($0.state)" } == ["low:fired", "silent:fired"])
        for _ in 0..<20 { step(send: true) }  // 10–12 s: back
        #expect(
            events.map { "\($0.rule):\($0.state)" } == ["low:fired", "silent:fired", "silent:cleared", "low:cleared"])
        events.removeAll()
        // One bad CRC, one forged EMM and an OSM for the watched device at 12 s.
        var bad = StreamBuilder.seal(device: "dev1", key: key1, sequence: 9999)
        bad[40] ^= 1
        core.ingest(
            builder.packets([bad, StreamBuilder.seal(device: "dev1", key: wrongKey, sequence: 10_000)]),
            at: .seconds(t))
        core.ingest(
            builder.packets([StreamBuilder.seal(device: "dev2", key: key2, sequence: 1, payload: StreamBuilder.osm)]),
            at: .seconds(t))
        for _ in 0..<50 { step(send: true) }  // 12–17 s
        let names = events.map { "\($0.rule):\($0.state)" }
        #expect(names.filter { $0.hasPrefix("crc:") } == ["crc:fired", "crc:cleared"])
        #expect(names.filter { $0.hasPrefix("auth:") } == ["auth:fired", "auth:cleared"])
        #expect(names.filter { $0.hasPrefix("osm2:") } == ["osm2:fired", "osm2:cleared"])
        #expect(names.count == 6)
        let osm = try #require(events.first { $0.rule == "osm2" })
        #expect(osm.labels["device.id"] == "dev2" && osm.labels["emm.kind"] == "osm")
        #expect(core.activeConditions.isEmpty)
    }

    @Test("The budget guard fires near the allocated EMM bandwidth and clears with hysteresis")
    func budget() {
        let core = makeCore(bitRate: 110_000)  // 90% = 99 000 bit/s; we send 105 280
        var builder = StreamBuilder()
        core.ingest(builder.catPackets(), at: .seconds(0))
        var events: [MonitorEvent] = []
        var sequence: UInt64 = 0
        var t = 0.0
        for step in 0..<300 {
            let sending = step < 150
            if sending {
                for k in 0..<7 {
                    sequence += 1
                    core.ingest(
                        builder.packets([StreamBuilder.seal(device: "dev1", key: key1, sequence: sequence)]),
                        at: .seconds(t + Double(k) / 70))
                }
            }
            t += 0.1
            core.tick(at: .seconds(t))
            events += core.drainEvents()
        }
        #expect(events.map { "\($0.rule):\($0.state)" } == ["emm_budget:fired", "emm_budget:cleared"])
        #expect(events[0].value >= 99_000 && events[0].labels["budget.bits_per_second"] == "110000")
    }

    @Test("Configuration: defaults, parsing, and errors that name the setting")
    func configuration() throws {
        let defaults = try MonitorConfiguration.load(from: ConfigSource(environment: [:]))
        #expect(defaults.group.description == "239.255.42.42:5000")
        #expect(defaults.interface == "127.0.0.1" && defaults.windowSeconds == 10 && defaults.emmBitRate == 100_000)
        #expect(
            defaults.pushgatewayURL == nil && defaults.pushIntervalSeconds == 5
                && defaults.pushJob == "gatehouse_monitor")
        let c = try MonitorConfiguration.load(
            from: ConfigSource(environment: [
                "GATEHOUSE_EMM_GROUP": "[ff15::42]:6000", "GATEHOUSE_EMM_PIDS": "0x0100, 257",
                "GATEHOUSE_MONITOR_KEYS": "dev1=000102030405060708090a0b0c0d0e0f,dev2@3=\(key2.unsafeHexString())",
                "GATEHOUSE_PUSHGATEWAY_URL": "http://127.0.0.1:9091", "GATEHOUSE_INSTANCE": "mon-a",
                "GATEHOUSE_MONITOR_SOURCE": "10.0.0.1",
            ]))
        #expect(c.group.isIPv6 && c.group.port == 6000 && c.extraEMMPIDs == [0x100, 257])
        #expect(c.keys.map(\.deviceID) == ["dev1", "dev2"] && c.keys[1].keyVersion == 3 && c.keys[0].keyVersion == nil)
        #expect(c.instance == "mon-a" && c.source == "10.0.0.1")
        let cases: [(String, String, String)] = [
            ("GATEHOUSE_EMM_GROUP", "10.0.0.1:5000", "GATEHOUSE_EMM_GROUP"),
            ("GATEHOUSE_EMM_GROUP", "239.1.1.1", "GATEHOUSE_EMM_GROUP"),
            ("GATEHOUSE_EMM_PIDS", "0x2000", "GATEHOUSE_EMM_PIDS"),
            ("GATEHOUSE_MONITOR_WINDOW_SECONDS", "0", "GATEHOUSE_MONITOR_WINDOW_SECONDS"),
            ("GATEHOUSE_PUSHGATEWAY_URL", "https://x", "GATEHOUSE_PUSHGATEWAY_URL"),
            ("GATEHOUSE_MONITOR_SOURCE", "nope", "GATEHOUSE_MONITOR_SOURCE"),
            ("GATEHOUSE_MONITOR_KEYS", "dev1=abcd1234deadbeef", "GATEHOUSE_MONITOR_KEYS"),
        ]
        for (key, value, named) in cases {
            do {
                _ = try MonitorConfiguration.load(from: ConfigSource(environment: [key: value]))
                Issue.record("\(key)=\(value) was accepted")
            } catch let error as GatehouseError {
                #expect(error.code == .configuration && error.message.contains(named), "\(error)")
                #expect(!error.message.contains("abcd1234deadbeef"), "a key leaked into \(error)")
            }
        }
        let file = try MonitorConfiguration.parseKeyFile("# keys\ndev9 \(key1.unsafeHexString()) 4\n\n", origin: "k")
        #expect(file.count == 1 && file[0].keyVersion == 4)
        #expect(throws: GatehouseError.self) { try MonitorRules(json: Data(#"{"rules":[{"when":"nope"}]}"#.utf8)) }
        #expect(throws: GatehouseError.self) {
            try MonitorRules(json: Data(#"{"rules":[{"when":"no_emm","actions":["webhook"]}]}"#.utf8))
        }
    }

    @Test("Pushgateway grouping key: base64 for values with '/' or ':'")
    func groupingPath() throws {
        let pusher = PushgatewayPusher(
            baseURL: try HTTPURL(parsing: "http://127.0.0.1:9091"), job: "gatehouse_monitor",
            instance: "host-1", group: "239.255.42.42:5000")
        #expect(
            pusher.groupingPath
                == "/metrics/job/gatehouse_monitor/instance/host-1/group@base64/MjM5LjI1NS40Mi40Mjo1MDAw")
        #expect(PushgatewayPusher.segment("group", "a/b") == "/group@base64/YS9i")
        #expect(PushgatewayPusher.segment("instance", "a b") == "/instance/a%20b")
    }
}

func recomputeCRC(_ section: inout [UInt8]) {
    let crc = CRC32MPEG2.checksum(section[0..<(section.count - 4)])
    section[section.count - 4] = UInt8(crc >> 24)
    section[section.count - 3] = UInt8((crc >> 16) & 0xFF)
    section[section.count - 2] = UInt8((crc >> 8) & 0xFF)
    section[section.count - 1] = UInt8(crc & 0xFF)
}
