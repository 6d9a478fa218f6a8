import GatehouseCore
import GatehouseCrypto
import GatehouseEMM
import GatehouseTS

/// A point in time for the core: a monotonic clock for rates and durations, and the
/// wall clock for what is reported (observations, events). Tests pass synthetic values.
public struct MonitorInstant: Sendable, Hashable {
    /// Nanoseconds on any monotonic clock.
    public var monotonic: UInt64
    /// Unix time in seconds.
    public var unixTime: Double

    public init(monotonic: UInt64, unixTime: Double) {
        self.monotonic = monotonic
        self.unixTime = unixTime
    }

    /// Synthetic time `seconds` after a fixed epoch (tests, benchmarks).
    public static func seconds(_ seconds: Double, epoch: Double = 1_767_225_600) -> MonitorInstant {
        MonitorInstant(monotonic: UInt64((seconds * 1e9).rounded()), unixTime: epoch + seconds)
    }

    public static func now() -> MonitorInstant {
        MonitorInstant(monotonic: SystemCall.monotonicNanoseconds(), unixTime: SystemCall.unixTime())
    }
}

/// One EMM the monitor authenticated and decrypted for the first time (repeats of the
/// carousel are not reported again): what the lead needs to mark a request "on air".
public struct EMMObservation: Sendable, Hashable {
    public var deviceID: String
    /// `entitlement_add`, `entitlement_cancel`, `osm`, `key_update`.
    public var kind: String
    public var sequenceNumber: UInt64
    public var tableID: UInt8
    public var pid: UInt16
    public var keyVersion: UInt16
    /// The EMM's own timestamp (Unix seconds, when it was built).
    public var emmTimestamp: UInt32
    /// Unix time when the monitor saw it.
    public var seenAt: Double
}

/// What happened to an EMM section on an EMM PID.
public enum DecryptOutcome: String, Sendable, Hashable, CaseIterable {
    /// Authenticated, decrypted, first time seen.
    case ok
    /// Authenticated, a sequence number already accepted: the carousel repeating it.
    case `repeat`
    /// Authenticated, but older than the replay window: a replay or a very stale EMM.
    case replayed
    /// The AES-GCM tag did not verify (altered, or sealed under another key).
    case authenticationFailed = "authentication_failed"
    /// A unique EMM for an address no configured device has.
    case unknownDevice = "unknown_device"
    /// The device's key is pinned to another key version than the EMM's.
    case wrongKeyVersion = "wrong_key_version"
    /// Not a Gatehouse EMM (short form, bad format version or class, bad payload).
    case malformed
    /// A shared or global EMM: the monitor has no group or global keys.
    case noKey = "no_key"

    /// The outcomes that count as decrypt failures for conditions.
    public var isFailure: Bool { self == .authenticationFailed || self == .wrongKeyVersion || self == .malformed }
}

/// The pure analyser: datagrams and timestamps in, counters, rates, observations and
/// condition changes out. No sockets, no clock, no locks, so tests drive it with
/// synthetic time and get the same result every run.
///
/// Not `Sendable` (it owns `EMMOpener`s, which own OpenSSL contexts): one thread at a
/// time; `MonitorService` keeps it behind a `Mutex`.
public final class MonitorCore {
    public struct Settings: Sendable {
        public var extraEMMPIDs: [UInt16] = []
        /// The long window, seconds (the short one is 1 s).
        public var windowSeconds: Int = 10
        public var emmBitRate: Int = 100_000
        public var budgetWarningRatio: Double = 0.9
        public var rules: [MonitorRule] = []
        public var replayWindow: Int = 64
        /// Context added to every event (`group`, `instance`).
        public var eventLabels: [String: String] = [:]

        public init() {}

        public init(_ configuration: MonitorConfiguration) {
            extraEMMPIDs = configuration.extraEMMPIDs
            windowSeconds = configuration.windowSeconds
            emmBitRate = configuration.emmBitRate
            budgetWarningRatio = configuration.budgetWarningRatio
            rules = configuration.rules.rules
            replayWindow = configuration.replayWindow
            eventLabels = ["group": configuration.group.description, "instance": configuration.instance]
        }
    }

    /// Counters for one EMM PID.
    public struct PIDCounters: Sendable, Hashable {
        public var packets: UInt64 = 0
        public var sections: UInt64 = 0
        public var crcErrors: UInt64 = 0
        public var malformedSections: UInt64 = 0
        public var bytes: UInt64 { packets * UInt64(TS.packetSize) }
    }

    public let settings: Settings
    let windowNanos: UInt64
    private var demux: SectionDemux
    private var isEMMPID = [Bool](repeating: false, count: TS.pidCount)
    public private(set) var emmPIDs: [UInt16] = []
    /// Packets per PID, every PID (8192 slots).
    private var packetsByPID = [UInt64](repeating: 0, count: TS.pidCount)
    public private(set) var continuityErrorsByPID: [UInt16: UInt64] = [:]
    public private(set) var emmCounters: [UInt16: PIDCounters] = [:]
    public private(set) var sectionsByTable: [UInt8: UInt64] = [:]
    public private(set) var sectionBytesByTable: [UInt8: UInt64] = [:]
    public private(set) var outcomes: [DecryptOutcome: UInt64] = [:]
    public private(set) var datagramsRaw: UInt64 = 0
    public private(set) var datagramsRTP: UInt64 = 0
    public private(set) var datagramsRejected: UInt64 = 0
    public private(set) var datagramBytes: UInt64 = 0
    public private(set) var catSections: UInt64 = 0
    public private(set) var rtp = RTPSequenceTracker()
    private var lastSSRC: UInt32?
    /// The kernel's drop counter (SO_RXQ_OVFL), set by the receiver.
    public var kernelDrops: UInt64 = 0
    /// Datagrams the receiver saw truncated (larger than its buffers).
    public var truncatedDatagrams: UInt64 = 0

    private(set) var pidMeter: BitRateMeter<UInt16>
    private(set) var tableMeter: BitRateMeter<UInt8>
    private(set) var classMeter: BitRateMeter<String>
    private(set) var kindMeter: BitRateMeter<String>

    public private(set) var keyring: DeviceKeyring
    private struct OpenerKey: Hashable {
        var address: UInt64
        var version: UInt16
    }
    private var openers: [OpenerKey: EMMOpener] = [:]
    private var replay: ReplayGuard

    private var crcWindow: EventWindow
    private var continuityWindow: EventWindow
    private var failureWindow: EventWindow
    private var startTime: UInt64?
    private var lastEMM: UInt64?
    private var lastEMMByPID: [UInt16: UInt64] = [:]
    /// device id → kind → last time an authenticated EMM of that kind was seen (watched devices only).
    private var deviceSeen: [String: [String: UInt64]] = [:]
    private let watchedDevices: Set<String>

    private struct RuleState {
        var rule: MonitorRule
        var isActive = false
        var pendingSince: UInt64?
        var transitions: [MonitorEvent.State: UInt64] = [:]
        var lastValue: Double = 0
    }
    private var ruleStates: [RuleState]

    /// Observations since the last `drainObservations()`.
    private var pendingObservations: [EMMObservation] = []
    /// Condition changes since the last `drainEvents()`.
    private var pendingEvents: [MonitorEvent] = []
    /// Whether observations are collected (off when nobody listens, to save the copies).
    public var collectsObservations = true

    public init(settings: Settings, keyring: DeviceKeyring = DeviceKeyring()) {
        self.settings = settings
        windowNanos = UInt64(max(1, settings.windowSeconds)) * 1_000_000_000
        let longest = max(
            Double(settings.windowSeconds), settings.rules.map(\.windowSeconds).max() ?? 0, 1)
        let meterWindow = UInt64(min(longest, 3600) * 1e9)
        pidMeter = BitRateMeter(maximumWindow: meterWindow)
        tableMeter = BitRateMeter(maximumWindow: meterWindow)
        classMeter = BitRateMeter(maximumWindow: meterWindow)
        kindMeter = BitRateMeter(maximumWindow: meterWindow)
        let errorSeconds = Int(longest.rounded(.up))
        crcWindow = EventWindow(seconds: errorSeconds)
        continuityWindow = EventWindow(seconds: errorSeconds)
        failureWindow = EventWindow(seconds: errorSeconds)
        demux = SectionDemux(pids: [TS.PID.cat])
        replay = ReplayGuard(window: min(64, max(0, settings.replayWindow)))
        self.keyring = keyring
        var rules = settings.rules
        rules.append(
            MonitorRule(
                name: "emm_budget", condition: .budget(bitsPerSecond: Double(settings.emmBitRate)),
                forSeconds: 0, windowSeconds: Double(settings.windowSeconds), hysteresis: 0.05, actions: [.log, .bus]))
        ruleStates = rules.map { RuleState(rule: $0) }
        var watched = Set<String>()
        for rule in rules { if case .deviceEMMSeen(let id, _) = rule.condition { watched.insert(id) } }
        watchedDevices = watched
        for pid in settings.extraEMMPIDs { addEMMPID(pid) }
    }

    /// Replaces the keys (after a reload from the store). Openers of changed keys are dropped.
    public func updateKeyring(_ newKeyring: DeviceKeyring) {
        guard newKeyring != keyring else { return }
        keyring = newKeyring
        openers.removeAll()
    }

    /// Starts counting and reassembling `pid` as an EMM PID.
    public func addEMMPID(_ pid: UInt16) {
        let p = pid & TS.PID.maximum
        guard !isEMMPID[Int(p)], p != TS.PID.cat, p != TS.PID.null else { return }
        isEMMPID[Int(p)] = true
        emmPIDs.append(p)
        emmPIDs.sort()
        demux.addPID(p)
    }

    /// Packets seen on `pid` (any PID).
    public func packets(onPID pid: UInt16) -> UInt64 { packetsByPID[Int(pid & TS.PID.maximum)] }

    /// Every PID seen with its packet count.
    public var packetsPerPID: [UInt16: UInt64] {
        var out: [UInt16: UInt64] = [:]
        for (pid, count) in packetsByPID.enumerated() where count > 0 { out[UInt16(pid)] = count }
        return out
    }

    public var demuxStatistics: DemuxStatistics { demux.statistics }

    // MARK: Ingest

    /// Analyses one UDP datagram (raw TS or RTP/TS) received at `time`. Never traps on
    /// bad input: what cannot be used is counted.
    public func ingest(_ datagram: UnsafeRawBufferPointer, at time: MonitorInstant) {
        let now = time.monotonic
        if startTime == nil { startTime = now }
        datagramBytes += UInt64(datagram.count)
        let decoded: DecodedDatagram
        do { decoded = try TSDatagram.decode(datagram) } catch {
            datagramsRejected += 1
            return
        }
        if let header = decoded.rtp {
            datagramsRTP += 1
            if let last = lastSSRC, last != header.ssrc {
                rtp = RTPSequenceTracker()  // a new sender: its numbering starts afresh
            }
            lastSSRC = header.ssrc
            rtp.record(header.sequenceNumber)
        } else {
            datagramsRaw += 1
        }
        let ts = UnsafeRawBufferPointer(rebasing: datagram[decoded.transportStreamRange])
        var offset = 0
        var newPIDs: [UInt16] = []
        // Packet by packet, so EMM PIDs a CAT announces count from the very next packet,
        // even when the CAT and the first EMMs share a datagram.
        while offset + TS.packetSize <= ts.count {
            let packet = UnsafeRawBufferPointer(rebasing: ts[offset..<(offset + TS.packetSize)])
            offset += TS.packetSize
            let pid = Int(packet[1] & 0x1F) << 8 | Int(packet[2])
            packetsByPID[pid] &+= 1
            if isEMMPID[pid] {
                emmCounters[UInt16(pid), default: PIDCounters()].packets += 1
                pidMeter.record(UInt16(pid), bytes: TS.packetSize, at: now)
            }
            demux.feed(packet: packet) { event in handle(event, time: time, newPIDs: &newPIDs) }
            if !newPIDs.isEmpty {
                for pid in newPIDs { addEMMPID(pid) }
                newPIDs.removeAll()
            }
        }
    }

    private func handle(_ event: DemuxEvent, time: MonitorInstant, newPIDs: inout [UInt16]) {
        let now = time.monotonic
        switch event {
        case .section(let section):
            if section.pid == TS.PID.cat {
                catSections += 1
                if let cat = try? ConditionalAccessTable(parsing: section.bytes) {
                    for pid in cat.emmPIDs where !isEMMPID[Int(pid & TS.PID.maximum)] { newPIDs.append(pid) }
                }
            } else {
                handleEMMSection(section, time: time)
            }
        case .crcError(let pid, _, _):
            if pid != TS.PID.cat { emmCounters[pid, default: PIDCounters()].crcErrors += 1 }
            crcWindow.add(1, at: now)
        case .continuityError(let error):
            continuityErrorsByPID[error.pid, default: 0] += 1
            continuityWindow.add(1, at: now)
        case .malformedSection(let pid, _, _):
            if pid != TS.PID.cat { emmCounters[pid, default: PIDCounters()].malformedSections += 1 }
        case .duplicatePacket, .transportError, .syncError:
            break  // counted in demux.statistics
        }
    }

    /// Analyses a datagram held in an array.
    public func ingest(_ datagram: [UInt8], at time: MonitorInstant) {
        datagram.withUnsafeBytes { ingest($0, at: time) }
    }

    private func handleEMMSection(_ section: DemuxedSection, time: MonitorInstant) {
        let now = time.monotonic
        let size = section.bytes.count
        emmCounters[section.pid, default: PIDCounters()].sections += 1
        sectionsByTable[section.tableID, default: 0] += 1
        sectionBytesByTable[section.tableID, default: 0] += UInt64(size)
        tableMeter.record(section.tableID, bytes: size, at: now)
        lastEMM = now
        lastEMMByPID[section.pid] = now
        let envelope: EMMEnvelope
        do { envelope = try EMMEnvelope(parsing: section.bytes) } catch {
            record(.malformed, at: now)
            classMeter.record("unknown", bytes: size, at: now)
            kindMeter.record("unknown", bytes: size, at: now)
            return
        }
        let className: String
        switch envelope.addressing {
        case .unique: className = "unique"
        case .shared: className = "shared"
        case .global: className = "global"
        }
        classMeter.record(className, bytes: size, at: now)
        guard case .unique(let address) = envelope.addressing else {
            record(.noKey, at: now)
            kindMeter.record("unknown", bytes: size, at: now)
            return
        }
        guard let deviceKey = keyring.key(forAddress: address) else {
            record(.unknownDevice, at: now)
            kindMeter.record("unknown", bytes: size, at: now)
            return
        }
        if let pinned = deviceKey.keyVersion, pinned != envelope.keyVersion {
            record(.wrongKeyVersion, at: now)
            kindMeter.record("unknown", bytes: size, at: now)
            return
        }
        let emm: EMM
        do {
            let opener = try opener(address: address, key: deviceKey.key, version: envelope.keyVersion)
            emm = try opener.open(section.bytes, envelope: envelope)
        } catch {
            switch error {
            case .authenticationFailed: record(.authenticationFailed, at: now)
            case .keyVersionMismatch: record(.wrongKeyVersion, at: now)
            default: record(.malformed, at: now)
            }
            kindMeter.record("unknown", bytes: size, at: now)
            return
        }
        let kind = emm.payload.kindName
        kindMeter.record(kind, bytes: size, at: now)
        if watchedDevices.contains(deviceKey.deviceID) {
            deviceSeen[deviceKey.deviceID, default: [:]][kind] = now
        }
        do {
            try replay.accept(emm.addressing, sequenceNumber: emm.sequenceNumber)
        } catch {
            if case .duplicate = error { record(.repeat, at: now) } else { record(.replayed, at: now) }
            return
        }
        record(.ok, at: now)
        if collectsObservations {
            pendingObservations.append(
                EMMObservation(
                    deviceID: deviceKey.deviceID, kind: kind, sequenceNumber: emm.sequenceNumber,
                    tableID: section.tableID,
                    pid: section.pid, keyVersion: emm.keyVersion, emmTimestamp: emm.timestamp, seenAt: time.unixTime))
        }
    }

    private func opener(address: UInt64, key: SymmetricKey, version: UInt16) throws(EMMError) -> EMMOpener {
        let k = OpenerKey(address: address, version: version)
        if let existing = openers[k] { return existing }
        let made = try EMMOpener(key: key, keyVersion: version)
        if openers.count > 100_000 { openers.removeAll() }  // bound memory on a huge keyring
        openers[k] = made
        return made
    }

    private func record(_ outcome: DecryptOutcome, at now: UInt64) {
        outcomes[outcome, default: 0] += 1
        if outcome.isFailure { failureWindow.add(1, at: now) }
    }

    // MARK: Rates

    /// EMM bit rate (TS bytes on EMM PIDs) of `pid`, or of all EMM PIDs, over `seconds`.
    public func emmBitRate(pid: UInt16? = nil, seconds: Double, at now: UInt64) -> Double {
        let window = UInt64(seconds * 1e9)
        if let pid { return pidMeter.bitRate(pid, window: window, at: now) }
        return pidMeter.totalBitRate(window: window, at: now)
    }

    public func tableBitRate(_ tableID: UInt8, seconds: Double, at now: UInt64) -> Double {
        tableMeter.bitRate(tableID, window: UInt64(seconds * 1e9), at: now)
    }

    public func classBitRate(_ name: String, seconds: Double, at now: UInt64) -> Double {
        classMeter.bitRate(name, window: UInt64(seconds * 1e9), at: now)
    }

    public func kindBitRate(_ name: String, seconds: Double, at now: UInt64) -> Double {
        kindMeter.bitRate(name, window: UInt64(seconds * 1e9), at: now)
    }

    var tableIDs: [UInt8] { tableMeter.keys.sorted() }
    var classNames: [String] { classMeter.keys.sorted() }
    var kindNames: [String] { kindMeter.keys.sorted() }

    // MARK: Conditions

    /// Evaluates every condition at `time`; changes go to `drainEvents()`. Call it often
    /// (the service does every 100 ms) so durations are measured to that precision.
    public func tick(at time: MonitorInstant) {
        let now = time.monotonic
        if startTime == nil { startTime = now }
        let elapsed = Double(now - (startTime ?? now)) / 1e9
        for index in ruleStates.indices {
            let rule = ruleStates[index].rule
            var fire = false
            var clear = false
            var value = 0.0
            var delay = 0.0
            var labels = settings.eventLabels
            switch rule.condition {
            case .bitRateBelow(let threshold, let pid), .bitRateAbove(let threshold, let pid):
                // A rate over a window that has not elapsed yet would read low: wait for it.
                guard elapsed >= rule.windowSeconds else { continue }
                value = emmBitRate(pid: pid, seconds: rule.windowSeconds, at: now)
                if let pid { labels["pid"] = PIDLabel.text(pid) }
                if case .bitRateBelow = rule.condition {
                    fire = value < threshold
                    clear = value >= threshold * (1 + rule.hysteresis)
                } else {
                    fire = value > threshold
                    clear = value <= threshold * (1 - rule.hysteresis)
                }
                delay = rule.forSeconds
            case .budget(let allocated):
                value = emmBitRate(seconds: rule.windowSeconds, at: now)
                let limit = allocated * settings.budgetWarningRatio
                fire = value >= limit
                clear = value < limit * (1 - rule.hysteresis)
                labels["budget.bits_per_second"] = MetricsText.format(allocated)
            case .noEMM(let pid):
                let last = (pid.flatMap { lastEMMByPID[$0] } ?? (pid == nil ? lastEMM : nil)) ?? startTime ?? now
                value = Double(now - min(last, now)) / 1e9
                if let pid { labels["pid"] = PIDLabel.text(pid) }
                fire = value >= rule.forSeconds
                clear = !fire
            case .decryptFailures(let threshold), .crcErrors(let threshold), .continuityErrors(let threshold):
                let window: EventWindow
                switch rule.condition {
                case .decryptFailures: window = failureWindow
                case .crcErrors: window = crcWindow
                default: window = continuityWindow
                }
                value = Double(window.count(seconds: Int(rule.windowSeconds), at: now))
                fire = value > Double(threshold)
                clear = !fire
            case .deviceEMMSeen(let deviceID, let kind):
                labels["device.id"] = deviceID
                if let kind { labels["emm.kind"] = kind }
                let seen = deviceSeen[deviceID].flatMap { kinds in kind.map { kinds[$0] } ?? kinds.values.max() }
                if let seen {
                    value = Double(now - min(seen, now)) / 1e9
                    fire = value < rule.forSeconds
                } else {
                    fire = false
                }
                clear = !fire
            }
            ruleStates[index].lastValue = value
            if !ruleStates[index].isActive {
                guard fire else {
                    ruleStates[index].pendingSince = nil
                    continue
                }
                let since = ruleStates[index].pendingSince ?? now
                ruleStates[index].pendingSince = since
                guard Double(now - since) / 1e9 >= delay else { continue }
                ruleStates[index].isActive = true
                ruleStates[index].pendingSince = nil
                ruleStates[index].transitions[.fired, default: 0] += 1
                pendingEvents.append(
                    MonitorEvent(
                        rule: rule.name, condition: rule.condition.typeName, state: .fired,
                        value: value, time: time.unixTime, labels: labels))
            } else if clear {
                ruleStates[index].isActive = false
                ruleStates[index].transitions[.cleared, default: 0] += 1
                pendingEvents.append(
                    MonitorEvent(
                        rule: rule.name, condition: rule.condition.typeName, state: .cleared,
                        value: value, time: time.unixTime, labels: labels))
            }
        }
    }

    /// The rules (configured and built-in) with whether each is active and how often it changed.
    public var conditionStates: [(rule: MonitorRule, isActive: Bool, fired: UInt64, cleared: UInt64)] {
        ruleStates.map { ($0.rule, $0.isActive, $0.transitions[.fired] ?? 0, $0.transitions[.cleared] ?? 0) }
    }

    /// The rules that are active now, by name.
    public var activeConditions: [String] { ruleStates.filter(\.isActive).map(\.rule.name) }

    public func drainObservations() -> [EMMObservation] {
        defer { pendingObservations.removeAll(keepingCapacity: true) }
        return pendingObservations
    }

    public func drainEvents() -> [MonitorEvent] {
        defer { pendingEvents.removeAll(keepingCapacity: true) }
        return pendingEvents
    }

    public func count(_ outcome: DecryptOutcome) -> UInt64 { outcomes[outcome] ?? 0 }
}

/// Event counts in one-second buckets over the last `seconds` (errors per window).
struct EventWindow: Sendable {
    private var counts: [UInt64]
    private var stamps: [UInt64]

    init(seconds: Int) {
        let n = max(2, seconds + 1)
        counts = [UInt64](repeating: 0, count: n)
        stamps = [UInt64](repeating: .max, count: n)
    }

    mutating func add(_ n: UInt64, at now: UInt64) {
        let second = now / 1_000_000_000
        let slot = Int(second % UInt64(counts.count))
        if stamps[slot] != second {
            stamps[slot] = second
            counts[slot] = 0
        }
        counts[slot] += n
    }

    /// Events in the `seconds` whole seconds up to and including the current one.
    func count(seconds: Int, at now: UInt64) -> UInt64 {
        let current = now / 1_000_000_000
        let span = UInt64(max(1, min(seconds, counts.count - 1)))
        let oldest = current >= span - 1 ? current - (span - 1) : 0
        var total: UInt64 = 0
        for i in counts.indices where stamps[i] != .max && stamps[i] >= oldest && stamps[i] <= current {
            total += counts[i]
        }
        return total
    }
}

/// How PIDs and table ids appear in labels: `0x0100`, `0x82` (what broadcast tools print).
enum PIDLabel {
    static func text(_ pid: UInt16) -> String {
        let hex = String(pid, radix: 16, uppercase: true)
        return "0x" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    static func table(_ id: UInt8) -> String {
        let hex = String(id, radix: 16, uppercase: true)
        return "0x" + (hex.count == 1 ? "0" : "") + hex
    }
}

/// The core's counters at one moment, as a value (for tests and status pages).
public struct MonitorSnapshot: Sendable, Hashable {
    public var datagramsRaw: UInt64
    public var datagramsRTP: UInt64
    public var datagramsRejected: UInt64
    public var rtpLostDatagrams: Int
    public var rtpOutOfOrderDatagrams: Int
    public var lastRTPSequenceNumber: UInt16?
    public var packetsPerPID: [UInt16: UInt64]
    public var emmPIDs: [UInt16]
    public var emmCounters: [UInt16: MonitorCore.PIDCounters]
    public var sectionsByTable: [UInt8: UInt64]
    public var outcomes: [DecryptOutcome: UInt64]
    public var continuityErrorsByPID: [UInt16: UInt64]
    public var demux: DemuxStatistics
    public var kernelDrops: UInt64
    public var truncatedDatagrams: UInt64
    public var activeConditions: [String]
    public var keyCount: Int

    public func count(_ outcome: DecryptOutcome) -> UInt64 { outcomes[outcome] ?? 0 }
}

extension MonitorCore {
    public func snapshot() -> MonitorSnapshot {
        MonitorSnapshot(
            datagramsRaw: datagramsRaw, datagramsRTP: datagramsRTP, datagramsRejected: datagramsRejected,
            rtpLostDatagrams: rtp.lostDatagrams, rtpOutOfOrderDatagrams: rtp.outOfOrderDatagrams,
            lastRTPSequenceNumber: rtp.lastSequenceNumber, packetsPerPID: packetsPerPID, emmPIDs: emmPIDs,
            emmCounters: emmCounters, sectionsByTable: sectionsByTable, outcomes: outcomes,
            continuityErrorsByPID: continuityErrorsByPID, demux: demuxStatistics, kernelDrops: kernelDrops,
            truncatedDatagrams: truncatedDatagrams, activeConditions: activeConditions, keyCount: keyring.count)
    }
}
