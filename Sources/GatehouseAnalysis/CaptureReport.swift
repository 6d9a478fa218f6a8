import GatehouseTS

/// A PID as JSON gives it: the number and its usual hex spelling.
public struct PIDValue: Sendable, Hashable, Codable {
    public var value: UInt16
    public var hex: String
    public init(_ value: UInt16) {
        self.value = value
        self.hex = "0x" + hexDigits(UInt64(value), width: 4)
    }
}

/// What `analyze` found in a capture. Codable with stable keys for `--json`.
public struct CaptureReport: Sendable, Hashable, Codable {
    /// Whole packets analysed (bad ones included).
    public var packets: Int
    /// Bytes skipped before the first sync byte.
    public var leadingBytes: Int
    /// Bytes after the last whole packet.
    public var trailingBytes: Int
    public var syncErrors: Int
    /// Packets with transport_error_indicator set (counted, not analysed).
    public var transportErrors: Int
    public var bitRate: BitRateReport
    /// Capture duration from the bit rate, when it is known.
    public var durationSeconds: Double?
    public var pids: [PIDReport]
    /// The last valid CAT seen.
    public var cat: CATReport?
    /// Valid CAT sections seen.
    public var catSections: Int
    public var emmPIDs: [PIDValue]
    public var emmTables: [EMMTableReport]
    public var crcErrors: [CRCErrorReport]
    public var continuityErrors: [ContinuityErrorReport]
    public var malformedSections: [MalformedSectionReport]

    enum CodingKeys: String, CodingKey {
        case packets, leadingBytes, trailingBytes, syncErrors, transportErrors, bitRate, durationSeconds, pids, cat
        case catSections, emmTables, crcErrors, continuityErrors, malformedSections
        case emmPIDs = "emmPids"
    }

    public func pid(_ pid: UInt16) -> PIDReport? { pids.first { $0.pid.value == pid } }
}

/// The TS bit rate and where it came from.
public struct BitRateReport: Sendable, Hashable, Codable {
    public enum Source: String, Sendable, Hashable, Codable {
        /// From the PCRs in the stream.
        case pcr
        /// Given with `--bitrate`.
        case user
        case unknown
    }
    public var bitsPerSecond: Double?
    public var source: Source
}

/// One PID's figures.
public struct PIDReport: Sendable, Hashable, Codable {
    public var pid: PIDValue
    public var packets: Int
    /// bit/s: the PID's share of the packets times the TS bit rate; nil when the rate is unknown.
    public var bitRate: Double?
    public var hasPCR: Bool
    /// Packets with transport_scrambling_control not 0.
    public var scrambledPackets: Int
    public var continuityErrors: Int
    public var duplicatePackets: Int
    /// "PAT", "CAT", "EMM", "null" or nil.
    public var role: String?

    init(pid: UInt16, packets: Int, bitRate: Double?, hasPCR: Bool, scrambledPackets: Int, continuityErrors: Int,
        duplicatePackets: Int, role: String?)
    {
        self.pid = PIDValue(pid)
        self.packets = packets
        self.bitRate = bitRate
        self.hasPCR = hasPCR
        self.scrambledPackets = scrambledPackets
        self.continuityErrors = continuityErrors
        self.duplicatePackets = duplicatePackets
        self.role = role
    }
}

/// The CAT as decoded.
public struct CATReport: Sendable, Hashable, Codable {
    public var versionNumber: UInt8
    public var currentNextIndicator: Bool
    public var caDescriptors: [CADescriptorReport]
    /// Tags of the other descriptors.
    public var otherDescriptorTags: [UInt8]

    init(_ table: ConditionalAccessTable) {
        versionNumber = table.versionNumber
        currentNextIndicator = table.currentNextIndicator
        caDescriptors = table.caDescriptors.map(CADescriptorReport.init)
        otherDescriptorTags = table.descriptors.filter { $0.tag != TS.DescriptorTag.ca }.map(\.tag)
    }
}

/// One CA_descriptor of the CAT.
public struct CADescriptorReport: Sendable, Hashable, Codable {
    public var caSystemID: UInt16
    public var caSystemIDHex: String
    public var emmPID: PIDValue
    /// private_data_byte in hex.
    public var privateData: String

    init(_ d: CADescriptor) {
        caSystemID = d.caSystemID
        caSystemIDHex = "0x" + hexDigits(UInt64(d.caSystemID), width: 4)
        emmPID = PIDValue(d.caPID)
        privateData = d.privateData.map { hexDigits(UInt64($0), width: 2) }.joined()
    }
}

/// EMM sections of one table_id on one PID.
public struct EMMTableReport: Sendable, Hashable, Codable {
    public var pid: PIDValue
    public var tableID: UInt8
    public var tableIDHex: String
    public var sections: Int
    /// Section bytes (headers and CRCs included).
    public var bytes: Int
    /// Section bytes × 8 / capture duration; nil when the duration is unknown.
    public var bitRate: Double?

    init(pid: UInt16, tableID: UInt8, sections: Int, bytes: Int, bitRate: Double?) {
        self.pid = PIDValue(pid)
        self.tableID = tableID
        self.tableIDHex = "0x" + hexDigits(UInt64(tableID), width: 2)
        self.sections = sections
        self.bytes = bytes
        self.bitRate = bitRate
    }
}

/// A long-form section whose CRC-32 did not match.
public struct CRCErrorReport: Sendable, Hashable, Codable {
    public var pid: PIDValue
    public var tableID: UInt8
    public var packetIndex: Int
    init(pid: UInt16, tableID: UInt8, packetIndex: Int) {
        self.pid = PIDValue(pid)
        self.tableID = tableID
        self.packetIndex = packetIndex
    }
}

/// A continuity_counter error.
public struct ContinuityErrorReport: Sendable, Hashable, Codable {
    public var pid: PIDValue
    public var packetIndex: Int
    /// "missing_packets", "repeated_packet" or "advanced_without_payload".
    public var kind: String
    /// For "missing_packets": how many.
    public var missingPackets: Int?

    init(_ error: ContinuityError) {
        pid = PIDValue(error.pid)
        packetIndex = error.packetIndex
        switch error.kind {
        case .missingPackets(let count):
            kind = "missing_packets"
            missingPackets = count
        case .repeatedPacket: kind = "repeated_packet"
        case .advancedWithoutPayload: kind = "advanced_without_payload"
        }
    }
}

/// Section bytes the demux had to drop.
public struct MalformedSectionReport: Sendable, Hashable, Codable {
    public var pid: PIDValue
    public var packetIndex: Int
    public var reason: String
    init(pid: UInt16, packetIndex: Int, reason: String) {
        self.pid = PIDValue(pid)
        self.packetIndex = packetIndex
        self.reason = reason
    }
}

func hexDigits(_ value: UInt64, width: Int) -> String {
    let s = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, width - s.count)) + s
}
