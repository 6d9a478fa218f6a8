import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseEMM
import GatehouseStore
import GatehouseTS
import GatehouseTestSupport
import Synchronization
import Testing

@testable import GatehousePlayout

/// A migrated SQLite store in a temp directory with devices and their keys (kept here: the
/// store holds keys wrapped, the playout never sees them; the test seals with them).
struct TestStore {
    let directory: URL
    let database: SQLiteDatabase
    var keys: [String: SymmetricKey] = [:]

    static func make(devices: [String]) async throws -> TestStore {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gh-playout-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let database = try await SQLiteDatabase.open(
            SQLiteDatabase.Configuration(path: directory.appendingPathComponent("test.db").path), logger: .disabled)
        try await Migrator(logger: .disabled).migrate(database)
        var store = TestStore(directory: directory, database: database)
        let now = MulticastReceiver.wallMilliseconds()
        for device in devices {
            try await database.withConnection { conn in
                try conn.execute(
                    "INSERT INTO devices (device_id, created_at, updated_at) VALUES (?, ?, ?)", .text(device),
                    .int64(now), .int64(now))
            }
            store.keys[device] = try SymmetricKey.random(size: .bits128)
        }
        return store
    }

    /// Seals an entitlement for `device` and inserts it; returns the row id and the section.
    @discardableResult
    func insertEMM(
        device: String, sequence: UInt64, firstSendAt: Int64, intervalMs: Int64, expiresAt: Int64,
        urgent: Bool = false, id explicitID: Int64? = nil
    ) async throws -> (id: Int64, section: [UInt8]) {
        let key = try #require(keys[device])
        let sealer = try EMMSealer(key: key, keyVersion: 1)
        let emm = EMM(
            addressing: DeviceAddress.addressing(deviceID: device), keyVersion: 1, sequenceNumber: sequence,
            timestamp: UInt32(firstSendAt / 1000),
            payload: .entitlementAdd(EntitlementGrant(productID: UInt16(sequence), start: 1, end: 2)))
        let section = try sealer.seal(emm)
        let now = MulticastReceiver.wallMilliseconds()
        let id = try await database.withConnection { conn in
            try conn.execute(
                """
                INSERT INTO emms (id, device_id, request_id, kind, table_id, sequence, section, first_send_at,
                    repeat_interval_ms, expires_at, urgent, send_count, created_at)
                VALUES (?, ?, ?, 'entitlement_add', ?, ?, ?, ?, ?, ?, ?, 0, ?)
                """, SQLValue(explicitID), .text(device), .text("req-\(device)-\(sequence)"), .int64(Int64(section[0])),
                .int64(Int64(sequence)), .blob(section), .int64(firstSendAt), .int64(intervalMs), .int64(expiresAt),
                .int64(urgent ? 1 : 0), .int64(now)
            ).lastInsertID
        }
        return (id, section)
    }

    func close() async {
        await database.close()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// What a capture holds once demultiplexed.
struct Capture {
    var ts: [UInt8] = []
    /// Arrival (ms) of each TS packet's datagram.
    var packetArrival: [Int64] = []
    var sections: [ReceivedSection] = []
    var statistics = DemuxStatistics()

    init(_ datagrams: [MulticastReceiver.Datagram], emmPID: UInt16) throws {
        for d in datagrams {
            let range = try TSDatagram.decode(d.bytes).transportStreamRange
            ts += d.bytes[range]
            packetArrival += [Int64](repeating: d.arrivedAt, count: range.count / 188)
        }
        var demux = SectionDemux(pids: [TS.PID.cat, emmPID])
        sections = demux.sections(in: ts)
        statistics = demux.statistics
    }

    func arrival(of section: ReceivedSection) -> Int64 { packetArrival[section.packetIndex] }
}

@Suite("Playout on loopback multicast", .serialized)
struct LivePlayoutTests {
    @Test(.timeLimit(.minutes(1)))
    func streamIsCorrectByteByByte() async throws {
        let store = try await TestStore.make(devices: ["stb-1", "stb-2", "stb-3"])
        defer { Task { [store] in await store.close() } }
        let (group, port) = MulticastReceiver.randomIPv4Group()
        let t0 = MulticastReceiver.wallMilliseconds()
        let a = try await store.insertEMM(
            device: "stb-1", sequence: 1, firstSendAt: t0, intervalMs: 500, expiresAt: t0 + 60_000)
        let b = try await store.insertEMM(
            device: "stb-2", sequence: 1, firstSendAt: t0, intervalMs: 500, expiresAt: t0 + 60_000)
        let c = try await store.insertEMM(
            device: "stb-3", sequence: 1, firstSendAt: t0, intervalMs: 500, expiresAt: t0 + 60_000,
            urgent: true)
        // Times leave a second of slack for a loaded machine (CI) to start the service.
        let expiring = try await store.insertEMM(
            device: "stb-1", sequence: 2, firstSendAt: t0, intervalMs: 300,
            expiresAt: t0 + 2000)
        let future = try await store.insertEMM(
            device: "stb-2", sequence: 2, firstSendAt: t0 + 2500, intervalMs: 500,
            expiresAt: t0 + 60_000)
        // An already expired row is never sent.
        let dead = try await store.insertEMM(
            device: "stb-3", sequence: 9, firstSendAt: t0 - 5000, intervalMs: 500,
            expiresAt: t0 - 1)

        var config = PlayoutConfiguration()
        config.group = SocketAddress(host: group, port: port, family: .ipv4)
        config.bitRate = 200_000
        config.emmPID = 0x0ABC
        config.caSystemID = 0x4AE1
        config.pollIntervalMilliseconds = 100
        config.writeBackIntervalMilliseconds = 500
        let registry = MetricsRegistry()
        let sink = MemorySink()
        let service = PlayoutService(
            configuration: config, database: store.database, metrics: registry,
            logger: Logger(label: "playout", minimumLevel: .debug, sink: sink))
        let receiver = try MulticastReceiver(group: group, port: port)
        // A row the worker adds while the playout runs: picked up by the poll.
        let lateInsert = Box<(Int64, (id: Int64, section: [UInt8]))?>(nil)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await service.run(for: .milliseconds(4200)) }
            tasks.addTask {
                try await Task.sleep(for: .milliseconds(900))
                let at = MulticastReceiver.wallMilliseconds()
                let row = try await store.insertEMM(
                    device: "stb-3", sequence: 2, firstSendAt: at, intervalMs: 500,
                    expiresAt: at + 60_000)
                lateInsert.withLock { $0 = (at, row) }
            }
            try await tasks.waitForAll()
        }
        let datagrams = receiver.stop()
        let (lateAt, late) = try #require(lateInsert.withLock { $0 })

        // Datagrams: 7 packets, 1316 bytes, on the EMM PID, the CAT PID or null packets.
        #expect(datagrams.count > 40)
        #expect(datagrams.allSatisfy { $0.bytes.count == 1316 })
        let capture = try Capture(datagrams, emmPID: 0x0ABC)
        for offset in stride(from: 0, to: capture.ts.count, by: 188) {
            let pid = UInt16(capture.ts[offset + 1] & 0x1F) << 8 | UInt16(capture.ts[offset + 2])
            #expect([TS.PID.cat, 0x0ABC, TS.PID.null].contains(pid))
        }
        #expect(capture.statistics.continuityErrors == 0)
        #expect(capture.statistics.crcErrors == 0)
        #expect(capture.statistics.malformedSections == 0)

        // CAT: right content, first, and repeated at most ~600 ms apart.
        let cats = capture.sections.filter { $0.pid == TS.PID.cat }
        #expect(cats.count >= 6)
        let cat = try ConditionalAccessTable(parsing: try #require(cats.first).bytes)
        #expect(cat.caDescriptors == [CADescriptor(caSystemID: 0x4AE1, caPID: 0x0ABC)])
        #expect(cats.first?.packetIndex == 0)
        let catTimes = cats.map(capture.arrival(of:))
        #expect(zip(catTimes, catTimes.dropFirst()).allSatisfy { $1 - $0 <= 650 })

        // EMM sections: each equal to a stored one, opening under its device's key.
        let emms = capture.sections.filter { $0.pid == 0x0ABC }
        let stored: [[UInt8]: (device: String, sequence: UInt64)] = [
            a.section: ("stb-1", 1), b.section: ("stb-2", 1), c.section: ("stb-3", 1), expiring.section: ("stb-1", 2),
            future.section: ("stb-2", 2), late.section: ("stb-3", 2),
        ]
        for section in emms {
            let known = try #require(stored[section.bytes], "a section on air that is not in the store")
            let opener = try EMMOpener(key: try #require(store.keys[known.device]), keyVersion: 1)
            let opened = try opener.open(section.bytes)
            #expect(opened.sequenceNumber == known.sequence)
            #expect(opened.addressing == DeviceAddress.addressing(deviceID: known.device))
        }
        #expect(!emms.contains { $0.bytes == dead.section })

        // Order: the urgent new EMM first, then the routine new ones by id.
        var firstSeen: [[UInt8]] = []
        for s in emms where !firstSeen.contains(s.bytes) { firstSeen.append(s.bytes) }
        #expect(Array(firstSeen.prefix(4)) == [c.section, a.section, b.section, expiring.section])

        // Expired stops; the future one waits; the late one goes out within a second.
        let expiringTimes = emms.filter { $0.bytes == expiring.section }.map(capture.arrival(of:))
        // On air while live (how often depends on when the service got going), never after.
        #expect(expiringTimes.count >= 1)
        #expect((expiringTimes.max() ?? .max) <= t0 + 2000 + 100)
        let futureTimes = emms.filter { $0.bytes == future.section }.map(capture.arrival(of:))
        #expect((futureTimes.min() ?? 0) >= t0 + 2500 - 5)
        let lateFirst = try #require(emms.first { $0.bytes == late.section }.map(capture.arrival(of:)))
        #expect(lateFirst - lateAt < 1000)

        // Live ones repeated (interval 500 ms, plus early fill at most once a second).
        #expect(emms.filter { $0.bytes == a.section }.count >= 5)

        // Rate: within 3 % of 200 kbit/s between the first and last datagram.
        let span = Double(datagrams.last!.monotonic - datagrams.first!.monotonic) / 1e9
        let rate = Double((datagrams.count - 1) * 1316 * 8) / span
        #expect(abs(rate - 200_000) / 200_000 < 0.03, "measured \(rate) bit/s")

        // Metrics and write-back.
        let text = registry.render()
        #expect(text.contains("gatehouse_playout_packets_sent_total{pid=\"0x0001\"}"))
        #expect(text.contains("gatehouse_playout_packets_sent_total{pid=\"0x0ABC\"}"))
        #expect(text.contains("gatehouse_playout_live_emms 5"))  // 6 rows: one expired, one dead
        #expect(text.contains("gatehouse_playout_backlog_emms 0"))
        let sentBytes = registry.counter("gatehouse_playout_bytes_sent_total", help: "").current
        #expect(Int(sentBytes) == datagrams.count * 1316)
        let counts = try await store.database.read { conn in
            try conn.query("SELECT id, send_count, last_sent_at FROM emms ORDER BY id").map {
                (try $0.int64("id"), try $0.int64("send_count"), try $0.int64OrNil("last_sent_at"))
            }
        }
        let aCount = try #require(counts.first { $0.0 == a.id })
        #expect(aCount.1 == Int64(emms.filter { $0.bytes == a.section }.count))
        #expect(aCount.2 != nil)
        #expect(counts.first { $0.0 == dead.id }?.1 == 0)
        #expect(sink.lines.contains { $0.contains("playout started") })

        // Independent decoders read the capture.
        let file = store.directory.appendingPathComponent("playout.ts")
        try Data(capture.ts).write(to: file)
        try checkWithLibdvbpsi(
            file: file, emmPID: 0x0ABC, expectedEMMs: emms.count, expectedCATs: cats.count,
            directory: store.directory)
        try checkWithTSTools(file: file, packets: capture.ts.count / 188)
    }

    @Test(.timeLimit(.minutes(1)))
    func rtpCountersAndSequenceCarryOnAcrossRestarts() async throws {
        let (group, port) = MulticastReceiver.randomIPv4Group()
        let now = MulticastReceiver.wallMilliseconds()
        let source = MemorySource(
            (1...30).map {
                CarouselEMM(
                    id: Int64($0), section: testSection(id: Int64($0), payload: 100), firstSendAt: now,
                    repeatIntervalMilliseconds: 200, expiresAt: now + 60_000)
            })
        var config = PlayoutConfiguration()
        config.group = SocketAddress(host: group, port: port, family: .ipv4)
        config.bitRate = 400_000
        config.isRTPEnabled = true
        config.sourceAddress = "127.0.0.1"  // bind before sending (GATEHOUSE_EMM_SOURCE)
        let service = PlayoutService(
            configuration: config, source: source, metrics: MetricsRegistry(), logger: .disabled)
        let receiver = try MulticastReceiver(group: group, port: port)
        try await service.run(for: .milliseconds(600))
        let stateAfterFirst = service.currentStreamState
        try await service.run(for: .milliseconds(600))
        let datagrams = receiver.stop()
        #expect(datagrams.count > 20)
        var tracker = RTPSequenceTracker()
        var ssrcs = Set<UInt32>()
        for d in datagrams {
            let rtp = try #require(try TSDatagram.decode(d.bytes).rtp)
            #expect(rtp.payloadType == 33 && rtp.version == 2)
            ssrcs.insert(rtp.ssrc)
            tracker.record(rtp.sequenceNumber)
        }
        #expect(tracker.lostDatagrams == 0 && tracker.outOfOrderDatagrams == 0)
        #expect(ssrcs.count == 1)
        #expect(ssrcs.first == stateAfterFirst.rtpSSRC)
        let capture = try Capture(datagrams, emmPID: config.emmPID)
        #expect(capture.statistics.continuityErrors == 0)
        #expect(capture.sections.filter { $0.pid == config.emmPID }.count >= 30)
    }

    /// IPv6: the socket is set up with IPV6_MULTICAST_IF = lo's index and IPV6_MULTICAST_HOPS.
    /// On this machine the kernel has no IPv6 multicast route on lo (ff00::/8 only via eth0),
    /// so sendto fails with ENETUNREACH and nothing leaves; the test then checks that the
    /// send loop survives, counts and logs the error. Where a route exists (e.g. inside a
    /// network namespace), the datagrams are received and checked instead.
    @Test(.timeLimit(.minutes(1)))
    func ipv6MulticastOnLoopback() async throws {
        let port = UInt16.random(in: 20000...60000)
        let group = "ff12::4242:\(String(Int.random(in: 1...0xFFFF), radix: 16))"
        let now = MulticastReceiver.wallMilliseconds()
        let source = MemorySource([
            CarouselEMM(
                id: 1, section: testSection(id: 1), firstSendAt: now, repeatIntervalMilliseconds: 100,
                expiresAt: now + 60_000)
        ])
        var config = try PlayoutConfiguration.load(
            from: ConfigSource(environment: [
                "GATEHOUSE_EMM_GROUP": "[\(group)]:\(port)", "GATEHOUSE_EMM_BITRATE": "300000",
            ]))
        config.fill = .nullPackets
        #expect(config.interface == "lo")
        let registry = MetricsRegistry()
        let sink = MemorySink()
        let service = PlayoutService(
            configuration: config, source: source, metrics: registry,
            logger: Logger(label: "playout", sink: sink))
        let receiver = try MulticastReceiver(group: group, port: port, ipv6: true)
        try await service.run(for: .milliseconds(500))
        let datagrams = receiver.stop()
        let sent = registry.counter("gatehouse_playout_datagrams_sent_total", help: "").current
        #expect(sent >= 10)
        if datagrams.isEmpty {
            let errors = registry.counter("gatehouse_playout_send_errors_total", help: "").current
            #expect(errors == sent)
            #expect(sink.lines.contains { $0.contains("playout send failed") && $0.contains("sendto") })
        } else {
            let capture = try Capture(datagrams, emmPID: config.emmPID)
            #expect(capture.sections.filter { $0.pid == config.emmPID }.allSatisfy { $0.bytes == testSection(id: 1) })
            #expect(capture.sections.contains { $0.pid == TS.PID.cat })
        }
    }

    @Test func socketErrorsNameTheCall() async throws {
        var config = PlayoutConfiguration()
        config.interface = "192.0.2.1"  // TEST-NET-1: on no interface here
        let service = PlayoutService(
            configuration: config, source: MemorySource([]), metrics: MetricsRegistry(),
            logger: .disabled)
        do {
            try await service.run(for: .milliseconds(100))
            Issue.record("sending on an address this host does not have must fail")
        } catch let error as GatehouseError {
            #expect(error.code == .io)
            #expect(error.message.contains("setsockopt(IP_MULTICAST_IF)"))
            #expect(error.nativeCode != nil)
        }
        config.interface = "no-such-if0"
        let named = PlayoutService(
            configuration: config, source: MemorySource([]), metrics: MetricsRegistry(),
            logger: .disabled)
        await #expect(throws: GatehouseError.self) { try await named.run(for: .milliseconds(100)) }
    }

    // MARK: independent decoders

    func checkWithLibdvbpsi(file: URL, emmPID: UInt16, expectedEMMs: Int, expectedCATs: Int, directory: URL) throws {
        let harness = directory.appendingPathComponent("dvbpsi_cat")
        let source = Fixtures.repositoryRoot.appendingPathComponent("Tests/tools/dvbpsi_cat.c").path
        let flags = try shell("pkg-config --cflags --libs libdvbpsi")
        try #require(flags.status == 0, "pkg-config cannot find libdvbpsi (apt install libdvbpsi-dev): \(flags.output)")
        let build = try shell("cc -O1 -o '\(harness.path)' '\(source)' \(flags.output)")
        try #require(build.status == 0, "cannot build the libdvbpsi harness: \(build.output)")
        let result = try shell("'\(harness.path)' '\(file.path)' \(emmPID)")
        #expect(result.status == 0)
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(!lines.contains { $0.hasPrefix("libdvbpsi:") }, "libdvbpsi reported: \(result.output)")
        // libdvbpsi reports a CAT only when its version changes: once.
        #expect(lines.first == "cat version=0 current_next=1")
        #expect(lines.contains("ca system_id=0x4ae1 pid=0x\(String(format: "%04x", emmPID)) private_length=0"))
        let emmLines = lines.filter { $0.hasPrefix("emm") }
        #expect(emmLines.count == expectedEMMs)
        #expect(emmLines.allSatisfy { $0.hasPrefix("emm table_id=0x82 ") && $0.hasSuffix("syntax=1") })
    }

    func checkWithTSTools(file: URL, packets: Int) throws {
        // tstools' tsreport walks every packet and reports per-PID counts; any TS framing
        // error makes it fail or print "error".
        let report = try shell("tsreport '\(file.path)'")
        #expect(report.status == 0, "tsreport: \(report.output)")
        #expect(!report.output.lowercased().contains("error"), "tsreport: \(report.output)")
        #expect(report.output.contains("Read \(packets) TS packets"), "tsreport: \(report.output)")
    }

    func shell(_ command: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// A value shared between test tasks.
final class Box<T: Sendable>: Sendable {
    private let value: Mutex<T>
    init(_ value: T) { self.value = Mutex(value) }
    func withLock<R>(_ body: (inout T) -> R) -> R { value.withLock { body(&$0) } }
}

@Suite("Rows committed out of id order")
struct OutOfOrderTests {
    @Test func gapsAreRecordedAndAgeOut() {
        var gaps = IDGaps()
        let t = ContinuousClock.now
        gaps.record([3, 4, 7], after: 1, at: t)
        #expect(gaps.due(now: t) == [2, 5, 6])
        gaps.remove([5])
        #expect(gaps.due(now: t + .seconds(29)) == [2, 6])
        #expect(gaps.due(now: t + .seconds(31)).isEmpty)
        gaps.record([5000], after: 7, at: t)  // a jump over 1000 ids is not tracked
        #expect(gaps.open.isEmpty)
    }

    /// A row whose id is below one already loaded (MariaDB: two worker transactions
    /// committing out of order; simulated here with an explicit id) still goes on air.
    @Test(.timeLimit(.minutes(1)))
    func lowerIDCommittedLaterIsSent() async throws {
        let store = try await TestStore.make(devices: ["stb-1"])
        defer { Task { await store.close() } }
        let (group, port) = MulticastReceiver.randomIPv4Group()
        let t0 = MulticastReceiver.wallMilliseconds()
        try await store.insertEMM(
            device: "stb-1", sequence: 1, firstSendAt: t0, intervalMs: 500, expiresAt: t0 + 60_000, id: 1)
        var config = PlayoutConfiguration()
        config.group = SocketAddress(host: group, port: port, family: .ipv4)
        config.bitRate = 200_000
        config.pollIntervalMilliseconds = 50
        let service = PlayoutService(
            configuration: config, database: store.database, metrics: MetricsRegistry(), logger: .disabled)
        let receiver = try MulticastReceiver(group: group, port: port)
        let late = Box<[UInt8]>([])
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await service.run(for: .milliseconds(3000)) }
            tasks.addTask {
                try await Task.sleep(for: .milliseconds(300))
                try await store.insertEMM(
                    device: "stb-1", sequence: 3, firstSendAt: t0, intervalMs: 500, expiresAt: t0 + 60_000, id: 3)
                try await Task.sleep(for: .milliseconds(300))
                let row = try await store.insertEMM(
                    device: "stb-1", sequence: 2, firstSendAt: t0, intervalMs: 500, expiresAt: t0 + 60_000, id: 2)
                late.withLock { $0 = row.section }
            }
            try await tasks.waitForAll()
        }
        let capture = try Capture(receiver.stop(), emmPID: config.emmPID)
        let lateSection = late.withLock { $0 }
        #expect(!lateSection.isEmpty)
        #expect(capture.sections.contains { $0.pid == config.emmPID && $0.bytes == lateSection })
    }
}

/// An in-memory EMM source (rows can be added while it runs) that records write-backs.
final class MemorySource: PlayoutEMMSource {
    let rows: Mutex<[CarouselEMM]>
    let recorded = Mutex<[EMMSendRecord]>([])
    init(_ emms: [CarouselEMM]) { rows = Mutex(emms.sorted { $0.id < $1.id }) }

    func add(_ emm: CarouselEMM) { rows.withLock { $0 = ($0 + [emm]).sorted { $0.id < $1.id } } }

    func emms(after afterID: Int64, now: Int64, limit: Int) async throws -> [CarouselEMM] {
        rows.withLock { Array($0.filter { $0.id > afterID && $0.expiresAt > now }.prefix(limit)) }
    }

    func emms(ids: [Int64], now: Int64) async throws -> [CarouselEMM] {
        rows.withLock { $0.filter { ids.contains($0.id) && $0.expiresAt > now } }
    }

    func recordSends(_ records: [EMMSendRecord]) async throws { recorded.withLock { $0 += records } }
}
