// The playout benchmark needs GatehousePlayout, which the bench target does not depend on
// yet: add "GatehousePlayout" to GatehouseBench's dependencies and
// `.define("GATEHOUSE_PLAYOUT_BENCH")` to its swiftSettings (a `canImport` guard would not
// do: SwiftPM lets a target see every built module, so it could compile and fail to link).
#if GATEHOUSE_PLAYOUT_BENCH
    #if canImport(Glibc)
        import Glibc
    #endif
    import Foundation
    import GatehouseCore
    import GatehousePlayout
    import GatehouseTS
    import Synchronization

    /// Playout figures for docs/benchmarks-playout.md: carousel cost and memory with 1,000,000
    /// live EMMs, datagram assembly, packets per second the sender sustains to a loopback
    /// multicast group, and rate error over 10-second windows at 100 kbit/s, 1 and 10 Mbit/s.
    /// Bounded: about 50 s in all. `gatehouse-bench playout [quick]` (quick: 3 s windows).
    func runPlayoutBenchmark() {
        let quick = CommandLine.arguments.contains("quick")
        print("playout: load average at start: \(loadAverage())")
        carouselBenchmark()
        let semaphore = DispatchSemaphore(value: 0)
        Task {
            do {
                try await senderBenchmark()
                for rate in [100_000, 1_000_000, 10_000_000] {
                    try await rateBenchmark(bitRate: rate, window: quick ? 3 : 10)
                }
            } catch {
                FileHandle.standardError.write(Data("playout benchmark failed: \(error)\n".utf8))
                exit(1)
            }
            semaphore.signal()
        }
        semaphore.wait()
        print("playout: load average at end: \(loadAverage())")
    }

    /// The first three fields of /proc/loadavg (other work on the host skews the timings).
    private func loadAverage() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    private func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    private func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// A long-form section like an entitlement EMM (67 bytes: 56 overhead + 11 payload).
    private func benchSection(_ id: Int, payload: Int = 11) -> [UInt8] {
        let length = 5 + 28 + payload + 16 + 4
        var s: [UInt8] = [
            0x82, 0xF0 | UInt8(length >> 8), UInt8(length & 0xFF), UInt8(id >> 8 & 0xFF),
            UInt8(id & 0xFF), 0xC1, 0, 0,
        ]
        for k in 0..<(length - 5 - 4) { s.append(UInt8(truncatingIfNeeded: id &* 31 &+ k)) }
        let crc = CRC32MPEG2.checksum(s)
        s += [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)]
        return s
    }

    private func carouselBenchmark() {
        let count = 1_000_000
        print("playout: carousel with \(count) live EMMs of 67 bytes (entitlement size), one core")
        let before = residentBytes()
        var carousel = EMMCarousel()
        let t0 = now()
        for id in 1...count {
            // Already sent once, due over the next 10 minutes: the steady state of a full carousel.
            _ = carousel.insert(
                CarouselEMM(
                    id: Int64(id), section: benchSection(id), firstSendAt: 0,
                    repeatIntervalMilliseconds: 600_000, expiresAt: Int64.max / 2, isUrgent: id % 100 == 0,
                    sendCount: 1, lastSentAt: Int64(id % 600_000) - 600_000),
                now: 0)
        }
        let insertSeconds = Double(now() - t0) / 1e9
        let after = residentBytes()
        print(
            "playout:   insert: \(String(format: "%.0f", Double(count) / insertSeconds)) EMMs/s; "
                + "resident +\((after - before) / 1_048_576) MiB = \((after - before) / count) bytes per EMM "
                + "(carousel's own estimate \(carousel.approximateMemoryBytes / count) B/EMM, sections 67 B)")
        // Picks: peek + markSent, everything due (clock at the end of the window), 2,000,000 picks.
        let picks = 2_000_000
        var clock: Int64 = 600_000
        let t1 = now()
        var sink = 0
        for k in 0..<picks {
            if k % 10_000 == 0 { clock += 1 }
            guard let next = carousel.peek(now: clock) else { break }
            sink &+= carousel.sectionLength(of: next)
            carousel.markSent(next, now: clock)
        }
        let pickNanoseconds = Double(now() - t1) / Double(picks)
        print(
            "playout:   pick (peek + reschedule, heap of 1M): \(String(format: "%.0f", pickNanoseconds)) ns per pick "
                + "(\(sink % 10) ignore)")
        // Datagram assembly with every EMM due (clock past everyone's next repetition):
        // picks, back-to-back packetizing, CAT when due, 7 packets.
        clock += 1_200_000
        var stream = PlayoutStream(configuration: PlayoutConfiguration(fill: .nullPackets))
        var buffer: [UInt8] = []
        let datagrams = 40_000  // × ~19 EMMs: stays below the 1M due, so every datagram is full of EMMs
        let t2 = now()
        var emms = 0
        for k in 0..<datagrams {
            if let summary = stream.nextDatagram(carousel: &carousel, now: clock + Int64(k / 100), into: &buffer) {
                emms += summary.emmsStarted
            }
        }
        let perDatagram = Double(now() - t2) / Double(datagrams)
        print(
            "playout:   datagram assembly: \(String(format: "%.0f", perDatagram)) ns per 7-packet datagram "
                + "(\(String(format: "%.1f", Double(emms) / Double(datagrams))) EMMs each) = "
                + "\(String(format: "%.1f", 7 * 188 * 8 / perDatagram)) Gbit/s of TS per core")
    }

    /// An in-memory source of `count` EMMs, due now, repeated every second.
    private struct BenchSource: PlayoutEMMSource {
        let emms: [CarouselEMM]
        init(count: Int) {
            let t = Int64(Date().timeIntervalSince1970 * 1000)
            emms = (1...count).map {
                CarouselEMM(
                    id: Int64($0), section: benchSection($0), firstSendAt: t, repeatIntervalMilliseconds: 1000,
                    expiresAt: t + 3_600_000)
            }
        }
        func emms(after afterID: Int64, now: Int64, limit: Int) async throws -> [CarouselEMM] {
            let start = Int(afterID)
            guard start < emms.count else { return [] }
            return Array(emms[start..<min(emms.count, start + limit)])
        }
        func emms(ids: [Int64], now: Int64) async throws -> [CarouselEMM] {
            ids.compactMap { $0 >= 1 && $0 <= emms.count ? emms[Int($0) - 1] : nil }
        }
        func recordSends(_ records: [EMMSendRecord]) async throws {}
    }

    /// Counts datagrams on a loopback group from its own thread.
    private final class BenchReceiver: @unchecked Sendable {
        let fd: Int32
        let times = Mutex<[UInt64]>([])
        let bytes = Atomic<Int>(0)
        let stopped = Atomic<Bool>(false)
        let done = Atomic<Bool>(false)

        init(group: String, port: UInt16) {
            fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(4))
            var size: Int32 = 8 << 20
            // SO_RCVBUF is capped by net.core.rmem_max (~200 KB: 0.2 s at 10 Mbit/s); as root,
            // force 8 MB so a receiver thread delayed by a busy host does not drop datagrams.
            if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(4)) != 0 {
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(4))
            }
            var timeout = timeval(tv_sec: 0, tv_usec: 50_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = port.bigEndian
            inet_pton(AF_INET, group, &addr.sin_addr)
            _ = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            var mreq = ip_mreq()
            inet_pton(AF_INET, group, &mreq.imr_multiaddr)
            inet_pton(AF_INET, "127.0.0.1", &mreq.imr_interface)
            setsockopt(fd, Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, &mreq, socklen_t(MemoryLayout<ip_mreq>.size))
            Thread { [self] in
                var buffer = [UInt8](repeating: 0, count: 2048)
                var local: [UInt64] = []
                local.reserveCapacity(1 << 20)
                while !stopped.load(ordering: .acquiring) {
                    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n > 0 {
                        local.append(DispatchTime.now().uptimeNanoseconds)
                        bytes.add(n, ordering: .relaxed)
                    }
                }
                times.withLock { $0 = local }
                done.store(true, ordering: .releasing)
            }.start()
        }

        func stop() -> [UInt64] {
            stopped.store(true, ordering: .releasing)
            while !done.load(ordering: .acquiring) { usleep(5000) }
            close(fd)
            return times.withLock { $0 }
        }
    }

    private func configuration(bitRate: Int, port: UInt16) -> PlayoutConfiguration {
        var c = PlayoutConfiguration()
        c.group = SocketAddress(host: "239.255.99.\(port % 200 + 1)", port: port, family: .ipv4)
        c.bitRate = bitRate
        c.writeBackIntervalMilliseconds = 0
        return c
    }

    private func senderBenchmark() async throws {
        let port = UInt16.random(in: 30000...60000)
        // 1 Gbit/s asks for more than one core can send: the loop runs flat out.
        let config = configuration(bitRate: 1_000_000_000, port: port)
        let receiver = BenchReceiver(group: config.group.host, port: port)
        let registry = MetricsRegistry()
        let service = PlayoutService(
            configuration: config, source: BenchSource(count: 100_000), metrics: registry,
            logger: .disabled)
        try await service.run(for: .seconds(3))
        let times = receiver.stop()
        let sent = registry.counter("gatehouse_playout_datagrams_sent_total", help: "").current
        let emms = registry.counter("gatehouse_playout_emms_sent_total", help: "").current
        print("playout: sender flat out to a loopback multicast group (one receiver joined), 3 s, 100,000 live EMMs")
        print(
            "playout:   sent \(Int(sent)) datagrams = \(String(format: "%.0f", sent * 7 / 3)) TS packets/s "
                + "(\(String(format: "%.0f", sent * 7 * 188 * 8 / 3 / 1e6)) Mbit/s, \(String(format: "%.0f", emms / 3)) EMMs/s); "
                + "received \(times.count)")
    }

    private func rateBenchmark(bitRate: Int, window: Int) async throws {
        let port = UInt16.random(in: 30000...60000)
        let config = configuration(bitRate: bitRate, port: port)
        let receiver = BenchReceiver(group: config.group.host, port: port)
        let registry = MetricsRegistry()
        let service = PlayoutService(
            configuration: config, source: BenchSource(count: 20_000), metrics: registry, logger: .disabled)
        let run = Double(window) + 1.5
        let started = now()
        try await service.run(for: .milliseconds(Int(run * 1000)))
        let ran = Double(now() - started) / 1e9
        let times = receiver.stop()
        let sent = Int(registry.counter("gatehouse_playout_datagrams_sent_total", help: "").current)
        guard times.count > 2 else {
            print("playout: rate \(bitRate) bit/s: only \(times.count) datagrams received")
            return
        }
        // Windows of `window` s starting at each datagram of the first second (after a 0.2 s settle):
        // bits of the datagrams inside [start, start + window), UDP payload 1316 B each = TS bytes.
        let windowNs = UInt64(window) * 1_000_000_000
        let settle = times[0] + 200_000_000
        var errors: [Double] = []
        var endIndex = 0
        for (i, start) in times.enumerated() where start >= settle && start < settle + 1_000_000_000 {
            if endIndex < i { endIndex = i }
            while endIndex < times.count && times[endIndex] < start + windowNs { endIndex += 1 }
            guard endIndex < times.count else { break }
            let bits = Double((endIndex - i) * 1316 * 8)
            errors.append((bits / Double(window) - Double(bitRate)) / Double(bitRate) * 100)
        }
        let span = Double(times.last! - times.first!) / 1e9
        let longRun = (Double((times.count - 1) * 1316 * 8) / span - Double(bitRate)) / Double(bitRate) * 100
        let worst = errors.max { abs($0) < abs($1) } ?? .nan
        let mean = errors.isEmpty ? Double.nan : errors.reduce(0, +) / Double(errors.count)
        print(
            "playout: rate \(bitRate) bit/s over \(window) s windows (\(errors.count) windows, datagram-aligned starts): "
                + "mean error \(String(format: "%+.3f", mean)) %, worst \(String(format: "%+.3f", worst)) %; "
                + "first-to-last datagram \(String(format: "%+.3f", longRun)) % over \(String(format: "%.1f", span)) s, "
                + "\(times.count) datagrams received of \(sent) sent in \(String(format: "%.1f", ran)) s")
    }
#else
    /// Built without GatehousePlayout (see the note at the top of this file).
    func runPlayoutBenchmark() {
        print(
            "playout: benchmark not built: GatehouseBench needs the GatehousePlayout dependency and GATEHOUSE_PLAYOUT_BENCH"
        )
    }
#endif
