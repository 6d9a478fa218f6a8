/// One complete section as the demux delivers it. The bytes point into the demux's
/// or the caller's buffer and are valid only during the callback: copy what you keep
/// (`copyBytes()`, `parse()`).
public struct DemuxedSection {
    public let pid: UInt16
    /// The index of the packet in which the section ended.
    public let packetIndex: Int
    /// The whole section: header, data and (long form) CRC.
    public let bytes: UnsafeRawBufferPointer

    public var tableID: UInt8 { bytes[0] }
    /// section_syntax_indicator: a long-form section with a CRC-32.
    public var isLongForm: Bool { bytes[1] & 0x80 != 0 }
    public var sectionLength: Int { Int(bytes[1] & 0x0F) << 8 | Int(bytes[2]) }
    public func copyBytes() -> [UInt8] { Array(bytes) }
    /// Parses the section as a `PrivateSection` (copies).
    public func parse() throws(SectionError) -> PrivateSection { try PrivateSection(parsing: bytes) }
}

/// What the demux tells its caller, in stream order.
public enum DemuxEvent {
    /// A complete section whose CRC (long form) is right.
    case section(DemuxedSection)
    /// A long-form section whose CRC-32 is wrong; it is not delivered.
    case crcError(pid: UInt16, tableID: UInt8, packetIndex: Int)
    case continuityError(ContinuityError)
    /// The one legal duplicate of a packet: its payload was ignored.
    case duplicatePacket(pid: UInt16, packetIndex: Int)
    /// transport_error_indicator set: the packet was counted and skipped.
    case transportError(pid: UInt16, packetIndex: Int)
    /// The packet does not start with 0x47: skipped.
    case syncError(packetIndex: Int)
    /// A section could not be assembled; the bytes were dropped.
    case malformedSection(pid: UInt16, packetIndex: Int, reason: MalformedSectionReason)
}

/// Why the demux dropped section bytes.
public enum MalformedSectionReason: Sendable, Hashable, CustomStringConvertible {
    /// pointer_field points past the end of the payload.
    case pointerFieldOutOfRange(Int)
    /// section_length above 4093 (or the demux's limit).
    case sectionLengthTooLarge(Int)
    /// A new section started (payload_unit_start_indicator) before the previous one was complete.
    case truncatedByNextSection(missing: Int)
    /// The adaptation field overruns the packet.
    case adaptationFieldTooLong(Int)

    public var description: String {
        switch self {
        case .pointerFieldOutOfRange(let p): "pointer_field \(p) points past the packet"
        case .sectionLengthTooLarge(let n): "section_length \(n) is too large"
        case .truncatedByNextSection(let missing): "section cut short, \(missing) byte(s) missing"
        case .adaptationFieldTooLong(let n): "adaptation_field_length \(n) overruns the packet"
        }
    }
}

/// Counters a demux keeps for the whole stream.
public struct DemuxStatistics: Sendable, Hashable {
    /// Every packet fed, including bad ones.
    public var packets = 0
    public var syncErrors = 0
    public var transportErrors = 0
    public var duplicatePackets = 0
    public var continuityErrors = 0
    /// Sections delivered (CRC right or short form).
    public var sections = 0
    public var crcErrors = 0
    public var malformedSections = 0
    public init() {}
}

/// Reassembles sections on selected PIDs from transport packets, and checks the
/// continuity counters of every PID (`ContinuityChecker` rules) on the way.
///
/// Handles pointer_field, several sections in one packet, sections spanning packets,
/// 0xFF stuffing, TEI packets (counted, skipped), duplicates (payload ignored), and gaps
/// (the section being assembled is dropped). Long-form sections are CRC-checked.
/// A section contained in one packet is handed out straight from the caller's buffer;
/// one that spans packets is gathered in a per-PID buffer that is reused: no heap
/// allocation per packet once the buffers have grown.
public struct SectionDemux: Sendable {
    /// Whether long-form sections are CRC-checked (default true).
    public var checksCRC: Bool = true
    public private(set) var statistics = DemuxStatistics()
    /// The index the next packet fed will get.
    public private(set) var nextPacketIndex = 0

    private var continuity = ContinuityChecker()
    /// PID → index in `assemblers`, or -1 when the PID is not demultiplexed.
    private var slots: [Int16]
    private var assemblers: [Assembler] = []

    private struct Assembler: Sendable {
        var pid: UInt16
        /// Bytes of the section being gathered; empty when idle.
        var buffer: [UInt8]
        /// True while a section is being gathered.
        var isAssembling = false
        /// 3 + section_length once the header is known, else 0.
        var total = 0

        init(pid: UInt16) {
            self.pid = pid
            buffer = []
            buffer.reserveCapacity(TS.sectionHeaderSize + TS.maximumSectionLength)
        }

        mutating func drop() {
            isAssembling = false
            total = 0
            buffer.removeAll(keepingCapacity: true)
        }
    }

    /// - Parameter pids: the PIDs whose sections are reassembled (more can be added later).
    public init(pids: some Sequence<UInt16> = [UInt16]()) {
        slots = [Int16](repeating: -1, count: TS.pidCount)
        for pid in pids { addPID(pid) }
    }

    /// Starts reassembling sections on `pid` (no effect if already on).
    public mutating func addPID(_ pid: UInt16) {
        let index = Int(pid & TS.PID.maximum)
        guard slots[index] < 0 else { return }
        slots[index] = Int16(assemblers.count)
        assemblers.append(Assembler(pid: pid & TS.PID.maximum))
    }

    /// Whether `pid`'s sections are being reassembled.
    public func isDemultiplexing(_ pid: UInt16) -> Bool { slots[Int(pid & TS.PID.maximum)] >= 0 }

    /// The PIDs being reassembled.
    public var pids: [UInt16] { assemblers.map(\.pid) }

    /// Feeds whole packets (a multiple of 188 bytes; a trailing partial packet is ignored).
    /// - Returns: the number of bytes consumed (whole packets).
    @discardableResult
    public mutating func feed(_ data: UnsafeRawBufferPointer, _ body: (DemuxEvent) -> Void) -> Int {
        var offset = 0
        while offset + TS.packetSize <= data.count {
            feed(packet: UnsafeRawBufferPointer(rebasing: data[offset..<(offset + TS.packetSize)]), body)
            offset += TS.packetSize
        }
        return offset
    }

    /// Feeds whole packets from an array.
    @discardableResult
    public mutating func feed(_ data: [UInt8], _ body: (DemuxEvent) -> Void) -> Int {
        data.withUnsafeBytes { feed($0, body) }
    }

    /// Collects the good sections of `data` as owned values (tests, tools).
    public mutating func sections(in data: [UInt8]) -> [ReceivedSection] {
        var out: [ReceivedSection] = []
        feed(data) { event in
            if case .section(let s) = event {
                out.append(ReceivedSection(pid: s.pid, packetIndex: s.packetIndex, bytes: s.copyBytes()))
            }
        }
        return out
    }

    /// Feeds one 188-byte packet.
    /// - Precondition: `packet.count == 188` is checked: a shorter buffer counts as a sync error.
    public mutating func feed(packet p: UnsafeRawBufferPointer, _ body: (DemuxEvent) -> Void) {
        let index = nextPacketIndex
        nextPacketIndex += 1
        statistics.packets += 1
        guard p.count >= TS.packetSize, p[0] == TS.syncByte else {
            statistics.syncErrors += 1
            body(.syncError(packetIndex: index))
            return
        }
        let b1 = p[1], b3 = p[3]
        let pid = UInt16(b1 & 0x1F) << 8 | UInt16(p[2])
        if b1 & 0x80 != 0 {
            statistics.transportErrors += 1
            body(.transportError(pid: pid, packetIndex: index))
            return
        }
        let afc = (b3 >> 4) & 0x03
        let hasPayload = afc & 0x01 != 0
        let hasAdaptation = afc & 0x02 != 0
        let discontinuity = hasAdaptation && p[4] > 0 && p[5] & 0x80 != 0
        let verdict = continuity.check(
            pid: pid, continuityCounter: b3 & 0x0F, hasPayload: hasPayload, discontinuityIndicator: discontinuity)
        let slot = Int(slots[Int(pid)])
        var lostSync = false
        switch verdict {
        case .inSequence: break
        case .duplicate:
            statistics.duplicatePackets += 1
            body(.duplicatePacket(pid: pid, packetIndex: index))
            return
        case .discontinuity:
            lostSync = true
        case .error(let kind):
            statistics.continuityErrors += 1
            body(.continuityError(ContinuityError(pid: pid, packetIndex: index, kind: kind)))
            if case .repeatedPacket = kind { return }
            lostSync = true
        }
        guard slot >= 0 else { return }
        if lostSync && assemblers[slot].isAssembling {
            assemblers[slot].drop()
        }
        guard hasPayload else { return }
        var start = TS.headerSize
        if hasAdaptation {
            start += 1 + Int(p[4])
            guard start <= TS.packetSize else {
                statistics.malformedSections += 1
                body(.malformedSection(pid: pid, packetIndex: index, reason: .adaptationFieldTooLong(Int(p[4]))))
                assemblers[slot].drop()
                return
            }
        }
        guard start < TS.packetSize else { return }
        let payload = UnsafeRawBufferPointer(rebasing: p[start..<TS.packetSize])
        if b1 & 0x40 != 0 {
            startUnit(payload, slot: slot, pid: pid, index: index, body)
        } else if assemblers[slot].isAssembling {
            _ = append(payload, slot: slot, pid: pid, index: index, body)
        }
    }

    /// A payload with payload_unit_start_indicator: pointer_field, the tail of the section
    /// being gathered, then new sections.
    private mutating func startUnit(
        _ payload: UnsafeRawBufferPointer, slot: Int, pid: UInt16, index: Int, _ body: (DemuxEvent) -> Void
    ) {
        let pointer = Int(payload[0])
        guard 1 + pointer < payload.count else {
            if assemblers[slot].isAssembling { assemblers[slot].drop() }
            statistics.malformedSections += 1
            body(.malformedSection(pid: pid, packetIndex: index, reason: .pointerFieldOutOfRange(pointer)))
            return
        }
        if assemblers[slot].isAssembling {
            let tail = UnsafeRawBufferPointer(rebasing: payload[1..<(1 + pointer)])
            let stillMissing = append(tail, slot: slot, pid: pid, index: index, body)
            if stillMissing > 0 {
                assemblers[slot].drop()
                statistics.malformedSections += 1
                body(.malformedSection(pid: pid, packetIndex: index, reason: .truncatedByNextSection(missing: stillMissing)))
            }
        }
        var offset = 1 + pointer
        let end = payload.count
        while offset < end {
            let tableID = payload[offset]
            if tableID == TS.stuffingByte { return }
            guard offset + TS.sectionHeaderSize <= end else {
                begin(UnsafeRawBufferPointer(rebasing: payload[offset..<end]), slot: slot)
                return
            }
            let length = Int(payload[offset + 1] & 0x0F) << 8 | Int(payload[offset + 2])
            guard length <= TS.maximumSectionLength else {
                statistics.malformedSections += 1
                body(.malformedSection(pid: pid, packetIndex: index, reason: .sectionLengthTooLarge(length)))
                return
            }
            let total = TS.sectionHeaderSize + length
            if offset + total <= end {
                deliver(UnsafeRawBufferPointer(rebasing: payload[offset..<(offset + total)]), pid: pid, index: index, body)
                offset += total
            } else {
                begin(UnsafeRawBufferPointer(rebasing: payload[offset..<end]), slot: slot)
                assemblers[slot].total = total
                return
            }
        }
    }

    /// Starts gathering a section with its first bytes (`total` is set by the caller when known).
    private mutating func begin(_ bytes: UnsafeRawBufferPointer, slot: Int) {
        assemblers[slot].buffer.removeAll(keepingCapacity: true)
        assemblers[slot].buffer.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
        assemblers[slot].isAssembling = true
        assemblers[slot].total = 0
    }

    /// Adds bytes to the section being gathered; delivers it when complete.
    /// - Returns: the bytes still missing (0 once delivered).
    private mutating func append(
        _ bytes: UnsafeRawBufferPointer, slot: Int, pid: UInt16, index: Int, _ body: (DemuxEvent) -> Void
    ) -> Int {
        var available = bytes
        if assemblers[slot].total == 0 {
            // The header was split: complete it first.
            let have = assemblers[slot].buffer.count
            let take = min(TS.sectionHeaderSize - have, available.count)
            assemblers[slot].buffer.append(
                contentsOf: UnsafeRawBufferPointer(rebasing: available[0..<take]).assumingMemoryBound(to: UInt8.self))
            available = UnsafeRawBufferPointer(rebasing: available[take...])
            guard assemblers[slot].buffer.count == TS.sectionHeaderSize else {
                return TS.sectionHeaderSize - assemblers[slot].buffer.count
            }
            let tableID = assemblers[slot].buffer[0]
            let length = Int(assemblers[slot].buffer[1] & 0x0F) << 8 | Int(assemblers[slot].buffer[2])
            if tableID == TS.stuffingByte {
                assemblers[slot].drop()
                return 0
            }
            guard length <= TS.maximumSectionLength else {
                assemblers[slot].drop()
                statistics.malformedSections += 1
                body(.malformedSection(pid: pid, packetIndex: index, reason: .sectionLengthTooLarge(length)))
                return 0
            }
            assemblers[slot].total = TS.sectionHeaderSize + length
        }
        let missing = assemblers[slot].total - assemblers[slot].buffer.count
        let take = min(missing, available.count)
        if take > 0 {
            assemblers[slot].buffer.append(
                contentsOf: UnsafeRawBufferPointer(rebasing: available[0..<take]).assumingMemoryBound(to: UInt8.self))
        }
        guard take == missing else { return missing - take }
        // Move the buffer out while the section is handed over (no copy, no exclusivity overlap).
        var gathered: [UInt8] = []
        swap(&gathered, &assemblers[slot].buffer)
        gathered.withUnsafeBytes { deliver($0, pid: pid, index: index, body) }
        gathered.removeAll(keepingCapacity: true)
        swap(&gathered, &assemblers[slot].buffer)
        assemblers[slot].isAssembling = false
        assemblers[slot].total = 0
        return 0
    }

    /// Checks the CRC of a complete section and hands it out.
    private mutating func deliver(
        _ section: UnsafeRawBufferPointer, pid: UInt16, index: Int, _ body: (DemuxEvent) -> Void
    ) {
        if checksCRC && section[1] & 0x80 != 0 {
            guard section.count >= TS.sectionHeaderSize + 4, CRC32MPEG2.checksum(section) == 0 else {
                statistics.crcErrors += 1
                body(.crcError(pid: pid, tableID: section[0], packetIndex: index))
                return
            }
        }
        statistics.sections += 1
        body(.section(DemuxedSection(pid: pid, packetIndex: index, bytes: section)))
    }
}

/// A section copied out of the demux.
public struct ReceivedSection: Sendable, Hashable {
    public var pid: UInt16
    public var packetIndex: Int
    public var bytes: [UInt8]
    public var tableID: UInt8 { bytes[0] }
}
