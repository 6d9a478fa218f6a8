/// Cuts sections into transport packets on one PID, the way a multiplexer expects
/// them (ISO/IEC 13818-1 §2.4.4.2): a pointer_field in every packet where a section
/// starts, sections spanning packets, 0xFF stuffing after the last section of a burst,
/// and a continuity counter that carries on from burst to burst.
///
/// The counter lives in the value: keep one packetizer per PID, and set
/// `continuityCounter` when restarting so the counter survives a restart.
public struct SectionPacketizer: Sendable {
    /// How sections share packets.
    public enum Packing: Sendable, Equatable {
        /// A section may begin in the same packet as the previous one ended, as real EMM
        /// generators do (test-105.1.ts): the least bandwidth. A section starts in a
        /// packet only if its 3-byte header fits there; otherwise the packet ends with stuffing.
        case backToBack
        /// Every section starts at the beginning of a packet's payload (pointer_field 0) and
        /// its last packet is filled with 0xFF: simplest for decoders, costs bandwidth.
        case packetPerSection
    }

    /// The PID every packet carries.
    public var pid: UInt16
    /// The continuity_counter of the next packet (0–15).
    public var continuityCounter: UInt8 {
        get { nextCounter }
        set { nextCounter = newValue & 0x0F }
    }
    public var packing: Packing
    /// transport_priority of every packet. Default false.
    public var transportPriority: Bool

    private var nextCounter: UInt8

    /// - Parameters:
    ///   - continuityCounter: the counter of the first packet (default 0).
    ///   - packing: default `.backToBack`.
    public init(pid: UInt16, continuityCounter: UInt8 = 0, packing: Packing = .backToBack,
        transportPriority: Bool = false)
    {
        self.pid = pid & TS.PID.maximum
        self.nextCounter = continuityCounter & 0x0F
        self.packing = packing
        self.transportPriority = transportPriority
    }

    /// Packetizes one burst of encoded sections and returns n × 188 bytes.
    /// - Throws: `SectionError` when an element is not one whole section (its section_length must
    ///   match its size).
    public mutating func packetize(_ sections: [[UInt8]]) throws(SectionError) -> [UInt8] {
        var out: [UInt8] = []
        try packetize(sections, into: &out)
        return out
    }

    /// Packetizes sections built as `PrivateSection` values.
    public mutating func packetize(_ sections: [PrivateSection]) throws(SectionError) -> [UInt8] {
        var encoded: [[UInt8]] = []
        encoded.reserveCapacity(sections.count)
        for section in sections { encoded.append(try section.encoded()) }
        return try packetize(encoded)
    }

    /// Packetizes one burst and returns the packets as values.
    public mutating func packets(_ sections: [[UInt8]]) throws(SectionError) -> [TSPacket] {
        let bytes = try packetize(sections)
        var out: [TSPacket] = []
        var offset = 0
        while offset < bytes.count {
            // Built here with a sync byte and 188 bytes: cannot fail.
            if let packet = try? TSPacket(bytes: bytes[offset..<(offset + TS.packetSize)]) { out.append(packet) }
            offset += TS.packetSize
        }
        return out
    }

    /// Appends the packets of one burst to `out` (useful to fill a datagram buffer without copies).
    public mutating func packetize(_ sections: [[UInt8]], into out: inout [UInt8]) throws(SectionError) {
        for section in sections { try Self.validate(section) }
        guard !sections.isEmpty else { return }
        var sectionIndex = 0
        var offsetInSection = 0  // bytes of sections[sectionIndex] already written
        out.reserveCapacity(out.count + Self.packetCount(sectionSizes: sections.map(\.count), packing: packing) * TS.packetSize)
        while sectionIndex < sections.count {
            let remaining = sections[sectionIndex].count - offsetInSection
            // A section starts in this packet when the packet begins with one, or (packing
            // back to back) when the tail leaves room for the next section's header.
            let startsSection =
                offsetInSection == 0
                || (remaining <= Self.largestTailBeforeNewSection && packing == .backToBack
                    && sectionIndex + 1 < sections.count)
            let pointer = offsetInSection == 0 ? 0 : remaining
            let packetEnd = out.count + TS.packetSize
            out.append(TS.syncByte)
            out.append((startsSection ? 0x40 : 0) | (transportPriority ? 0x20 : 0) | UInt8(pid >> 8))
            out.append(UInt8(pid & 0xFF))
            out.append(0x10 | nextCounter)
            nextCounter = (nextCounter + 1) & 0x0F
            if startsSection { out.append(UInt8(pointer)) }
            var isFirst = true
            while sectionIndex < sections.count && out.count < packetEnd {
                let room = packetEnd - out.count
                if offsetInSection == 0 && !isFirst {
                    // Another section in this packet: only back to back, with its header in here.
                    guard packing == .backToBack, startsSection, room >= TS.sectionHeaderSize else { break }
                }
                let section = sections[sectionIndex]
                let take = min(room, section.count - offsetInSection)
                out.append(contentsOf: section[offsetInSection..<(offsetInSection + take)])
                offsetInSection += take
                isFirst = false
                guard offsetInSection == section.count else { break }
                sectionIndex += 1
                offsetInSection = 0
                if packing == .packetPerSection { break }
            }
            while out.count < packetEnd { out.append(TS.stuffingByte) }
        }
    }

    /// How many packets sections of these sizes take in one burst: for bandwidth budgets.
    public static func packetCount(sectionSizes sizes: [Int], packing: Packing) -> Int {
        var count = 0
        var index = 0
        var offset = 0
        while index < sizes.count {
            count += 1
            let remaining = sizes[index] - offset
            let startsSection =
                offset == 0 || (remaining <= Self.largestTailBeforeNewSection && packing == .backToBack
                    && index + 1 < sizes.count)
            var room = startsSection ? TS.maximumPayloadSize - 1 : TS.maximumPayloadSize
            var isFirst = true
            while index < sizes.count && room > 0 {
                if offset == 0 && !isFirst {
                    guard packing == .backToBack, startsSection, room >= TS.sectionHeaderSize else { break }
                }
                let take = min(room, sizes[index] - offset)
                room -= take
                offset += take
                isFirst = false
                guard offset == sizes[index] else { break }
                index += 1
                offset = 0
                if packing == .packetPerSection { break }
            }
        }
        return count
    }

    /// A section tail this short leaves room for the pointer_field and a next section's 3-byte header.
    static let largestTailBeforeNewSection = TS.maximumPayloadSize - 1 - TS.sectionHeaderSize

    /// A section must be at least its 3-byte header and exactly 3 + section_length bytes.
    static func validate(_ section: [UInt8]) throws(SectionError) {
        guard section.count >= TS.sectionHeaderSize else {
            throw .truncated(needed: TS.sectionHeaderSize, available: section.count)
        }
        let length = Int(section[1] & 0x0F) << 8 | Int(section[2])
        guard length <= TS.maximumSectionLength else { throw .invalidLength(length) }
        guard section.count == TS.sectionHeaderSize + length else {
            throw .truncated(needed: TS.sectionHeaderSize + length, available: section.count)
        }
        guard section[0] != TS.stuffingByte else { throw .invalidTableID(section[0]) }
    }
}
