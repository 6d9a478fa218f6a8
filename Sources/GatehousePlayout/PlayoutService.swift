import Foundation
import GatehouseCore
import GatehouseStore
import GatehouseTS
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The playout: loads live EMMs from the store, keeps them in an `EMMCarousel`, and sends
/// them as MPEG-TS over UDP multicast at the configured bit rate, with the CAT.
///
/// `run()` starts a dedicated thread for the paced send loop (the cooperative pool never
/// sleeps or blocks on a socket) and polls the store from the calling task. Continuity
/// counters and the RTP sequence survive from one `run()` to the next on the same service;
/// across process restarts they start at 0 (docs/playout.md).
public final class PlayoutService: Sendable {
    public let configuration: PlayoutConfiguration
    private let source: any PlayoutEMMSource
    private let logger: Logger
    private let metrics: PlayoutMetrics
    private let streamState: Mutex<PlayoutStreamState>
    /// One run at a time: two would share the counters and send the stream twice.
    private let isRunning = Atomic<Bool>(false)

    /// - Parameters:
    ///   - database: the Gatehouse database whose `emms` table the worker fills.
    ///   - metrics: where the `gatehouse_playout_*` metrics are registered.
    public convenience init(
        configuration: PlayoutConfiguration, database: any SQLDatabase, metrics: MetricsRegistry,
        logger: Logger
    ) {
        self.init(
            configuration: configuration, source: StoreEMMSource(database: database), metrics: metrics,
            logger: logger)
    }

    /// With any EMM source (tests and the benchmark use an in-memory one).
    public init(
        configuration: PlayoutConfiguration, source: any PlayoutEMMSource, metrics: MetricsRegistry,
        logger: Logger, initialState: PlayoutStreamState? = nil
    ) {
        self.configuration = configuration
        self.source = source
        self.logger = logger
        self.metrics = PlayoutMetrics(registry: metrics, emmPID: configuration.emmPID)
        var state = initialState ?? PlayoutStreamState()
        if initialState == nil { state.rtpSSRC = UInt32.random(in: 1...UInt32.max) }
        self.streamState = Mutex(state)
    }

    /// Counters and RTP sequence as the last run left them (persist them to carry on across
    /// a process restart).
    public var currentStreamState: PlayoutStreamState { streamState.withLock { $0 } }

    /// Runs until the task is cancelled.
    /// - Throws: `GatehouseError(.conflict)` when this service is already running;
    ///   `.configuration` or `.io` when the socket cannot be set up (bad interface, source
    ///   address). Store errors are logged and retried, never thrown.
    public func run() async throws {
        guard isRunning.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else {
            throw GatehouseError(.conflict, "the playout service is already running: one run() at a time")
        }
        defer { isRunning.store(false, ordering: .releasing) }
        let sender = try MulticastSender(
            group: configuration.group, interface: configuration.interface, ttl: configuration.ttl,
            sourceAddress: configuration.sourceAddress)
        let shared = SendLoopShared()
        let loop = SendLoop(
            configuration: configuration, sender: sender, shared: shared, metrics: metrics, logger: logger,
            state: streamState.withLock { $0 })
        logger.info(
            "playout started",
            [
                "playout.group": configuration.group.description, "playout.interface": configuration.interface,
                "playout.bitrate": String(configuration.bitRate), "ts.emm_pid": hex(configuration.emmPID),
                "playout.rtp": String(configuration.isRTPEnabled), "playout.fill": configuration.fill.rawValue,
            ])
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await loop.runOnThread() }
                group.addTask { await self.feed(shared) }
                _ = await group.next()
                shared.stop()
                group.cancelAll()
                await group.waitForAll()
            }
        } onCancel: {
            shared.stop()
        }
        if let final = shared.finalState { streamState.withLock { $0 = final } }
        await writeBack(shared)
        logger.info("playout stopped", ["playout.group": configuration.group.description])
    }

    /// Runs for `duration`, then stops as if cancelled (for tests, benchmarks, and tools).
    public func run(for duration: Duration) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run() }
            group.addTask { try? await Task.sleep(for: duration) }
            _ = try await group.next()
            group.cancelAll()
            try await group.waitForAll()
        }
    }

    /// Loads every live EMM page by page, then polls for new rows until cancelled, and
    /// writes send counts back on their interval.
    private func feed(_ shared: SendLoopShared) async {
        var lastID: Int64 = 0
        var isInitialLoad = true
        var loaded = 0
        var lastWriteBack = ContinuousClock.now
        var gaps = IDGaps()
        var withdrawalsCheckedUntil = Self.wallMilliseconds()
        let pageSize = max(1, configuration.loadPageSize)
        while !Task.isCancelled && !shared.isStopped {
            do {
                let page = try await source.emms(after: lastID, now: Self.wallMilliseconds(), limit: pageSize)
                if !isInitialLoad { gaps.record(page.map(\.id), after: lastID, at: ContinuousClock.now) }
                if let last = page.last { lastID = last.id }
                loaded += page.count
                if !page.isEmpty { shared.push(page) }
                if page.count == pageSize {
                    // More to load: wait only while the send thread has a backlog of pages.
                    while shared.pendingPages > 4 && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(5)) }
                    continue
                }
                if isInitialLoad {
                    isInitialLoad = false
                    logger.info(
                        "playout initial load done", ["playout.emms": String(loaded), "emm.last_id": String(lastID)])
                }
                // Early withdrawals; the window reaches 5 s back so a worker transaction that
                // commits late is still seen (withdrawing twice is harmless).
                let wallNow = Self.wallMilliseconds()
                let withdrawn = try await source.withdrawn(since: withdrawalsCheckedUntil - 5000, until: wallNow)
                withdrawalsCheckedUntil = wallNow
                if !withdrawn.isEmpty { shared.withdraw(withdrawn) }
                let recheck = gaps.due(now: ContinuousClock.now)
                if !recheck.isEmpty {
                    let found = try await source.emms(ids: recheck, now: Self.wallMilliseconds())
                    gaps.remove(found.map(\.id))
                    if !found.isEmpty {
                        logger.info(
                            "playout found emms committed out of id order", ["playout.emms": String(found.count)])
                        shared.push(found)
                    }
                }
            } catch {
                logger.error("playout store poll failed", ["error": String(describing: error)])
            }
            if configuration.writeBackIntervalMilliseconds > 0,
                ContinuousClock.now - lastWriteBack >= .milliseconds(configuration.writeBackIntervalMilliseconds)
            {
                lastWriteBack = ContinuousClock.now
                await writeBack(shared)
            }
            try? await Task.sleep(for: .milliseconds(configuration.pollIntervalMilliseconds))
        }
    }

    private func writeBack(_ shared: SendLoopShared) async {
        guard configuration.writeBackIntervalMilliseconds > 0 else { return }
        let records = shared.takeSendRecords()
        guard !records.isEmpty else { return }
        do {
            try await source.recordSends(records)
        } catch {
            logger.warning(
                "playout send count write-back failed",
                [
                    "error": String(describing: error),
                    "playout.records": String(records.count),
                ])
        }
    }

    static func wallMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

func hex(_ pid: UInt16) -> String {
    let digits = String(pid, radix: 16, uppercase: true)
    return "0x" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

/// Ids skipped while polling (`id > last loaded`): on MariaDB, a transaction can commit a
/// lower id after a higher one was read. Each missing id is looked up again on every poll
/// for `window` (default 30 s), at most `batch` a poll; jumps above `maximumJump` ids and
/// more than `capacity` open gaps are not tracked (a gap also comes from a rolled-back
/// insert or a row filtered out as expired: those just age out).
struct IDGaps {
    var window: Duration = .seconds(30)
    var maximumJump: Int64 = 1000
    var capacity = 10_000
    var batch = 512
    private(set) var open: [Int64: ContinuousClock.Instant] = [:]

    /// Records the ids missing between `after` and each id of a page (in order).
    mutating func record(_ ids: [Int64], after: Int64, at now: ContinuousClock.Instant) {
        var expected = after + 1
        for id in ids {
            if id > expected && id - expected <= maximumJump {
                for missing in expected..<id where open.count < capacity { open[missing] = now }
            }
            expected = max(expected, id + 1)
        }
    }

    /// The ids to look up now (oldest first, at most `batch`); forgets those past the window.
    mutating func due(now: ContinuousClock.Instant) -> [Int64] {
        guard !open.isEmpty else { return [] }
        open = open.filter { now - $0.value < window }
        return Array(open.keys.sorted().prefix(batch))
    }

    mutating func remove(_ ids: [Int64]) { for id in ids { open[id] = nil } }
}

/// The playout's metrics, looked up once.
struct PlayoutMetrics: Sendable {
    let emmsSent: MetricSeries
    let bytesSent: MetricSeries
    let catPackets: MetricSeries
    let emmPackets: MetricSeries
    let nullPackets: MetricSeries
    let datagrams: MetricSeries
    let sendErrors: MetricSeries
    let rejected: MetricSeries
    let cycleSeconds: MetricSeries
    let backlog: MetricSeries
    let live: MetricSeries

    init(registry: MetricsRegistry, emmPID: UInt16) {
        let packetsHelp = "TS packets sent, by PID (CAT 0x0001, EMM PID, null 0x1FFF)"
        emmsSent = registry.counter("gatehouse_playout_emms_sent_total", help: "EMM sections sent (repeats included)")
        bytesSent = registry.counter(
            "gatehouse_playout_bytes_sent_total", help: "TS bytes sent (188 per packet; UDP/IP/RTP headers excluded)")
        catPackets = registry.counter(
            "gatehouse_playout_packets_sent_total", help: packetsHelp, labels: [("pid", hex(TS.PID.cat))])
        emmPackets = registry.counter(
            "gatehouse_playout_packets_sent_total", help: packetsHelp, labels: [("pid", hex(emmPID))])
        nullPackets = registry.counter(
            "gatehouse_playout_packets_sent_total", help: packetsHelp, labels: [("pid", hex(TS.PID.null))])
        datagrams = registry.counter("gatehouse_playout_datagrams_sent_total", help: "UDP datagrams sent")
        sendErrors = registry.counter(
            "gatehouse_playout_send_errors_total", help: "Datagrams the socket refused (sendto errors)")
        rejected = registry.counter(
            "gatehouse_playout_emms_rejected_total", help: "Stored EMMs not put on air (malformed section)")
        cycleSeconds = registry.gauge(
            "gatehouse_playout_carousel_cycle_seconds",
            help: "Time one pass over every live EMM takes at the configured bit rate")
        backlog = registry.gauge("gatehouse_playout_backlog_emms", help: "New EMMs not yet sent once")
        live = registry.gauge("gatehouse_playout_live_emms", help: "EMMs in the carousel (not expired)")
    }
}

/// What the async side and the send thread share: pages of loaded EMMs going in, send
/// records and the final stream state coming out, and the stop flag.
final class SendLoopShared: Sendable {
    private let inbox = Mutex<[[CarouselEMM]]>([])
    private let sends = Mutex<[Int64: EMMSendRecord]>([:])
    private let stopped = Atomic<Bool>(false)
    private let final = Mutex<PlayoutStreamState?>(nil)

    var isStopped: Bool { stopped.load(ordering: .acquiring) }
    func stop() { stopped.store(true, ordering: .releasing) }

    private let withdrawals = Mutex<[Int64]>([])
    func push(_ page: [CarouselEMM]) { inbox.withLock { $0.append(page) } }
    func withdraw(_ ids: [Int64]) { withdrawals.withLock { $0.append(contentsOf: ids) } }
    func takeWithdrawals() -> Set<Int64> {
        withdrawals.withLock { ids in
            defer { ids = [] }
            return Set(ids)
        }
    }
    var pendingPages: Int { inbox.withLock { $0.count } }
    func takePage() -> [CarouselEMM]? {
        inbox.withLock { pages in pages.isEmpty ? nil : pages.removeFirst() }
    }

    func merge(_ records: [Int64: EMMSendRecord]) {
        guard !records.isEmpty else { return }
        sends.withLock { all in
            for (id, record) in records {
                if var existing = all[id] {
                    existing.count += record.count
                    existing.lastSentAt = max(existing.lastSentAt, record.lastSentAt)
                    all[id] = existing
                } else {
                    all[id] = record
                }
            }
        }
    }

    func takeSendRecords() -> [EMMSendRecord] {
        let taken = sends.withLock { all in
            let copy = all
            all = [:]
            return copy
        }
        return taken.values.sorted { $0.id < $1.id }
    }

    var finalState: PlayoutStreamState? {
        get { final.withLock { $0 } }
        set { final.withLock { $0 = newValue } }
    }
}

/// The paced send loop. Its mutable state (carousel, stream, socket) is touched only by
/// the one thread `runOnThread` starts, hence `@unchecked Sendable`: the value is handed
/// to that thread once and never used concurrently.
final class SendLoop: @unchecked Sendable {
    private let configuration: PlayoutConfiguration
    private let sender: MulticastSender
    private let shared: SendLoopShared
    private let metrics: PlayoutMetrics
    private let logger: Logger
    private let initialState: PlayoutStreamState

    init(
        configuration: PlayoutConfiguration, sender: MulticastSender, shared: SendLoopShared, metrics: PlayoutMetrics,
        logger: Logger, state: PlayoutStreamState
    ) {
        self.configuration = configuration
        self.sender = sender
        self.shared = shared
        self.metrics = metrics
        self.logger = logger
        self.initialState = state
    }

    /// Starts the thread and returns when it has finished (after `shared.stop()`).
    func runOnThread() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let thread = Thread { [self] in
                self.loop()
                continuation.resume()
            }
            thread.name = "gatehouse-playout"
            thread.qualityOfService = .userInteractive
            thread.start()
        }
    }

    private func loop() {
        var carousel = EMMCarousel()
        var stream = PlayoutStream(configuration: configuration, state: initialState)
        let packetsPerDatagram = configuration.packetsPerDatagram
        let start = PlayoutService.monotonicNanoseconds()
        var pacing = PacingClock(bitRate: configuration.bitRate, packetsPerDatagram: packetsPerDatagram, start: start)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(TS.rtpFixedHeaderSize + packetsPerDatagram * TS.packetSize)
        var records: [Int64: EMMSendRecord] = [:]
        var nextHousekeeping = start
        var lastErrorLog: UInt64 = 0
        var suppressedErrors = 0
        while !shared.isStopped {
            // Take in new EMMs, but never for more than 2 ms at a time.
            let drainStart = PlayoutService.monotonicNanoseconds()
            var drained = false
            while let page = shared.takePage() {
                drained = true
                let now = PlayoutService.wallMilliseconds()
                for emm in page {
                    if case .invalid(let reason) = carousel.insert(emm, now: now) {
                        metrics.rejected.increment()
                        logger.warning("playout rejected stored emm", ["emm.id": String(emm.id), "reason": reason])
                    }
                }
                if PlayoutService.monotonicNanoseconds() - drainStart > 2_000_000 { break }
            }
            let withdrawn = shared.takeWithdrawals()
            if !withdrawn.isEmpty { carousel.withdraw(ids: withdrawn, now: PlayoutService.wallMilliseconds()) }
            let now = PlayoutService.monotonicNanoseconds()
            if now >= nextHousekeeping {
                nextHousekeeping = now + 1_000_000_000
                metrics.live.set(Double(carousel.liveCount))
                metrics.backlog.set(Double(carousel.backlogCount))
                metrics.cycleSeconds.set(
                    Double(carousel.livePackets * TS.packetSize * 8) / Double(configuration.bitRate))
                shared.merge(records)
                records.removeAll(keepingCapacity: true)
            }
            let due = pacing.nextSendTime
            if now < due {
                // Wake at the send time, or sooner to take in a page still waiting.
                let wake = drained && shared.pendingPages > 0 ? min(due, now + 1_000_000) : min(due, now + 50_000_000)
                Self.sleep(until: wake)
                continue
            }
            let wall = PlayoutService.wallMilliseconds()
            let rtpTimestamp = UInt32(truncatingIfNeeded: now / 100_000 * 9)  // 90 kHz
            guard
                let summary = stream.nextDatagram(
                    carousel: &carousel, now: wall, rtpTimestamp: rtpTimestamp, into: &buffer)
            else {
                pacing.wasIdle(now: now)
                Self.sleep(until: now + 5_000_000)
                continue
            }
            do {
                try buffer.withUnsafeBytes { try sender.send($0) }
            } catch {
                metrics.sendErrors.increment()
                if now - lastErrorLog > 1_000_000_000 {
                    logger.error(
                        "playout send failed",
                        [
                            "error": String(describing: error),
                            "playout.suppressed": String(suppressedErrors),
                        ])
                    lastErrorLog = now
                    suppressedErrors = 0
                } else {
                    suppressedErrors += 1
                }
            }
            pacing.didSend(now: now)
            metrics.datagrams.increment()
            metrics.bytesSent.increment(by: Double(summary.tsPackets * TS.packetSize))
            if summary.catPackets > 0 { metrics.catPackets.increment(by: Double(summary.catPackets)) }
            if summary.emmPackets > 0 { metrics.emmPackets.increment(by: Double(summary.emmPackets)) }
            if summary.nullPackets > 0 { metrics.nullPackets.increment(by: Double(summary.nullPackets)) }
            if !stream.lastSentIDs.isEmpty {
                metrics.emmsSent.increment(by: Double(stream.lastSentIDs.count))
                if configuration.writeBackIntervalMilliseconds > 0 {
                    for id in stream.lastSentIDs {
                        records[id, default: EMMSendRecord(id: id, count: 0, lastSentAt: wall)].count += 1
                        records[id]?.lastSentAt = wall
                    }
                }
            }
        }
        shared.merge(records)
        shared.finalState = stream.state
    }

    private static func sleep(until deadline: UInt64) {
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
    }
}
