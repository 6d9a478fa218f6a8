import GatehouseTS

/// Settings for one analysis run.
public struct AnalysisOptions: Sendable {
    /// The TS bit rate (bit/s) to use when the capture has no PCR. Default nil: unknown.
    public var bitRate: Double?
    /// PIDs to treat as EMM PIDs even when no CAT announces them (e.g. a capture of the EMM PID alone).
    /// Default empty.
    public var extraEMMPIDs: [UInt16]

    public init(bitRate: Double? = nil, extraEMMPIDs: [UInt16] = []) {
        self.bitRate = bitRate
        self.extraEMMPIDs = extraEMMPIDs
    }
}

/// Why a capture cannot be analysed.
public enum AnalysisError: Error, Sendable, Hashable, CustomStringConvertible {
    case empty
    case notTransportStream(String)
    case invalidOption(String)

    public var description: String {
        switch self {
        case .empty: "the capture is empty"
        case .notTransportStream(let why): "not an MPEG transport stream: \(why)"
        case .invalidOption(let why): why
        }
    }
}

/// Offline analysis of a whole capture held in memory: what `gatehouse analyze` prints.
///
/// Bit rates follow TSDuck: the TS bit rate is the mean of the instantaneous rates between
/// consecutive PCRs of each PCR PID (packets × 188 × 8 × 27 MHz / PCR ticks); a PID's rate is
/// its share of the packets times the TS rate. Without PCRs the caller's `bitRate` is used,
/// else rates are unknown. Sections are gathered on the CAT PID and on every EMM PID the CAT
/// announces (plus `extraEMMPIDs`).
public enum CaptureAnalyzer {
    /// Analyses `bytes`, a capture of 188-byte packets (leading garbage before the first sync is skipped).
    /// - Throws: `AnalysisError` when the bytes are empty or no run of sync bytes is found.
    public static func analyze(_ bytes: [UInt8], options: AnalysisOptions = AnalysisOptions()) throws(AnalysisError)
        -> CaptureReport
    {
        guard !bytes.isEmpty else { throw .empty }
        if let rate = options.bitRate, !(rate > 0 && rate.isFinite) {
            throw .invalidOption("bit rate must be a positive number of bits per second")
        }
        guard bytes.count >= TS.packetSize else {
            throw .notTransportStream("\(bytes.count) bytes is shorter than one 188-byte packet")
        }
        guard let start = synchronisationOffset(bytes) else {
            throw .notTransportStream("no 0x47 sync byte repeating every 188 bytes in the first packet's worth")
        }
        var state = AnalysisState(options: options)
        bytes.withUnsafeBytes { raw in
            var offset = start
            while offset + TS.packetSize <= raw.count {
                state.process(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + TS.packetSize)]))
                offset += TS.packetSize
            }
        }
        let whole = (bytes.count - start) / TS.packetSize * TS.packetSize
        return state.report(leadingBytes: start, trailingBytes: bytes.count - start - whole)
    }

    /// The first offset (< 188) where sync bytes repeat every 188 bytes (up to 3 packets checked).
    static func synchronisationOffset(_ b: [UInt8]) -> Int? {
        for offset in 0..<min(TS.packetSize, b.count - TS.packetSize + 1) where b[offset] == TS.syncByte {
            var isAligned = true
            var k = 1
            while k < 3 && offset + k * TS.packetSize < b.count {
                if b[offset + k * TS.packetSize] != TS.syncByte {
                    isAligned = false
                    break
                }
                k += 1
            }
            if isAligned { return offset }
        }
        return nil
    }
}

/// The running state of one analysis.
struct AnalysisState {
    var options: AnalysisOptions
    var demux = SectionDemux(pids: [TS.PID.cat])
    var packetCount = 0
    var pidPackets = [Int](repeating: 0, count: TS.pidCount)
    var pidScrambled = [Int](repeating: 0, count: TS.pidCount)
    var pidHasPCR = [Bool](repeating: false, count: TS.pidCount)
    var pidContinuityErrors = [Int](repeating: 0, count: TS.pidCount)
    var pidDuplicates = [Int](repeating: 0, count: TS.pidCount)
    /// Per PCR PID: last PCR and the packet index where it was.
    var lastPCR: [UInt16: (pcr: PCR, index: Int)] = [:]
    var rateSum = 0.0
    var rateCount = 0
    var cat: CATReport?
    var catSections = 0
    var emmPIDs: [UInt16] = []
    var pendingPIDs: [UInt16] = []
    var emmTables: [TableKey: (sections: Int, bytes: Int)] = [:]
    var crcErrors: [CRCErrorReport] = []
    var continuityErrors: [ContinuityErrorReport] = []
    var malformed: [MalformedSectionReport] = []
    var transportErrors = 0
    var syncErrors = 0

    struct TableKey: Hashable {
        var pid: UInt16
        var tableID: UInt8
    }

    init(options: AnalysisOptions) {
        self.options = options
        for pid in options.extraEMMPIDs { addEMMPID(pid & TS.PID.maximum) }
        for pid in pendingPIDs { demux.addPID(pid) }
        pendingPIDs.removeAll()
    }

    mutating func addEMMPID(_ pid: UInt16) {
        guard !emmPIDs.contains(pid) else { return }
        emmPIDs.append(pid)
        pendingPIDs.append(pid)
    }

    mutating func process(_ packet: UnsafeRawBufferPointer) {
        let index = packetCount
        packetCount += 1
        if packet[0] == TS.syncByte && packet[1] & 0x80 == 0 {
            let pid = Int(packet[1] & 0x1F) << 8 | Int(packet[2])
            pidPackets[pid] += 1
            if packet[3] & 0xC0 != 0 { pidScrambled[pid] += 1 }
            if let pcr = AdaptationField.pcr(packet: packet) {
                pidHasPCR[pid] = true
                let key = UInt16(pid)
                if let last = lastPCR[key], !AdaptationField.discontinuityIndicator(packet: packet) {
                    let ticks = pcr.ticks(since: last.pcr)
                    if ticks > 0 && ticks < PCR.modulus / 2 {
                        rateSum += Double((index - last.index) * TS.packetSize * 8) * Double(TS.systemClockFrequency)
                            / Double(ticks)
                        rateCount += 1
                    }
                }
                lastPCR[key] = (pcr, index)
            }
        } else if packet[0] == TS.syncByte {
            pidPackets[Int(packet[1] & 0x1F) << 8 | Int(packet[2])] += 1
        }
        var newCAT: ConditionalAccessTable?
        demux.feed(packet: packet) { event in
            switch event {
            case .section(let section):
                if section.pid == TS.PID.cat {
                    if section.tableID == TS.TableID.cat, let table = try? ConditionalAccessTable(parsing: section.bytes) {
                        newCAT = table
                    }
                } else {
                    let key = TableKey(pid: section.pid, tableID: section.tableID)
                    emmTables[key, default: (0, 0)].sections += 1
                    emmTables[key, default: (0, 0)].bytes += section.bytes.count
                }
            case .crcError(let pid, let tableID, let packetIndex):
                crcErrors.append(CRCErrorReport(pid: pid, tableID: tableID, packetIndex: packetIndex))
            case .continuityError(let error):
                pidContinuityErrors[Int(error.pid)] += 1
                continuityErrors.append(ContinuityErrorReport(error))
            case .duplicatePacket(let pid, _):
                pidDuplicates[Int(pid)] += 1
            case .transportError:
                transportErrors += 1
            case .syncError:
                syncErrors += 1
            case .malformedSection(let pid, let packetIndex, let reason):
                malformed.append(MalformedSectionReport(pid: pid, packetIndex: packetIndex, reason: reason.description))
            }
        }
        if let table = newCAT {
            catSections += 1
            cat = CATReport(table)
            for pid in table.emmPIDs { addEMMPID(pid) }
        }
        if !pendingPIDs.isEmpty {
            for pid in pendingPIDs { demux.addPID(pid) }
            pendingPIDs.removeAll()
        }
    }

    func report(leadingBytes: Int, trailingBytes: Int) -> CaptureReport {
        let rate: BitRateReport
        if rateCount > 0 {
            rate = BitRateReport(bitsPerSecond: rateSum / Double(rateCount), source: .pcr)
        } else if let given = options.bitRate {
            rate = BitRateReport(bitsPerSecond: given, source: .user)
        } else {
            rate = BitRateReport(bitsPerSecond: nil, source: .unknown)
        }
        let duration = rate.bitsPerSecond.map { Double(packetCount * TS.packetSize * 8) / $0 }
        var pids: [PIDReport] = []
        for pid in 0..<TS.pidCount where pidPackets[pid] > 0 || pidContinuityErrors[pid] > 0 {
            let p = UInt16(pid)
            let share = rate.bitsPerSecond.map { Double(pidPackets[pid]) / Double(max(1, packetCount)) * $0 }
            pids.append(
                PIDReport(
                    pid: p, packets: pidPackets[pid], bitRate: share, hasPCR: pidHasPCR[pid],
                    scrambledPackets: pidScrambled[pid], continuityErrors: pidContinuityErrors[pid],
                    duplicatePackets: pidDuplicates[pid], role: role(of: p)))
        }
        let keys = emmTables.keys.sorted { ($0.pid, $0.tableID) < ($1.pid, $1.tableID) }
        let tables = keys.map { key in
            let value = emmTables[key] ?? (0, 0)
            return EMMTableReport(
                pid: key.pid, tableID: key.tableID, sections: value.sections, bytes: value.bytes,
                bitRate: duration.map { $0 > 0 ? Double(value.bytes * 8) / $0 : 0 })
        }
        return CaptureReport(
            packets: packetCount, leadingBytes: leadingBytes, trailingBytes: trailingBytes, syncErrors: syncErrors,
            transportErrors: transportErrors, bitRate: rate, durationSeconds: duration, pids: pids, cat: cat,
            catSections: catSections, emmPIDs: emmPIDs.map(PIDValue.init), emmTables: tables, crcErrors: crcErrors,
            continuityErrors: continuityErrors, malformedSections: malformed)
    }

    func role(of pid: UInt16) -> String? {
        switch pid {
        case TS.PID.pat: return "PAT"
        case TS.PID.cat: return "CAT"
        case TS.PID.null: return "null"
        default: return emmPIDs.contains(pid) ? "EMM" : nil
        }
    }
}
