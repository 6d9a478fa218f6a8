/// An MPEG-2 private section (ISO/IEC 13818-1 §2.4.4.10) as EMMs travel in it.
///
/// Short form (`section_syntax_indicator` 0): table_id, 12-bit length, then the data.
/// Long form (`section_syntax_indicator` 1): adds table_id_extension, version,
/// current_next, section numbers, and a trailing CRC-32/MPEG-2.
public struct PrivateSection: Equatable, Sendable {
    public var tableID: UInt8
    /// The private_indicator bit (bit 6 of the second byte).
    public var privateIndicator: Bool
    public var isLongForm: Bool
    public var tableIDExtension: UInt16
    public var versionNumber: UInt8
    public var currentNextIndicator: Bool
    public var sectionNumber: UInt8
    public var lastSectionNumber: UInt8
    /// The private data bytes (without header and CRC).
    public var payload: [UInt8]

    /// The largest section_length a private section may carry (4093 bytes after the length field).
    public static let maximumSectionLength = 4093

    public init(tableID: UInt8, privateIndicator: Bool = true, payload: [UInt8]) {
        self.tableID = tableID
        self.privateIndicator = privateIndicator
        self.isLongForm = false
        self.tableIDExtension = 0
        self.versionNumber = 0
        self.currentNextIndicator = true
        self.sectionNumber = 0
        self.lastSectionNumber = 0
        self.payload = payload
    }

    public init(longFormTableID tableID: UInt8, tableIDExtension: UInt16, versionNumber: UInt8 = 0,
        currentNext: Bool = true, sectionNumber: UInt8 = 0, lastSectionNumber: UInt8 = 0,
        privateIndicator: Bool = true, payload: [UInt8])
    {
        self.tableID = tableID
        self.privateIndicator = privateIndicator
        self.isLongForm = true
        self.tableIDExtension = tableIDExtension
        self.versionNumber = versionNumber & 0x1F
        self.currentNextIndicator = currentNext
        self.sectionNumber = sectionNumber
        self.lastSectionNumber = lastSectionNumber
        self.payload = payload
    }

    /// The most payload bytes a section of this form can carry.
    public var maximumPayload: Int { isLongForm ? Self.maximumSectionLength - 9 : Self.maximumSectionLength }

    /// The whole section on the wire: header, payload and (long form) CRC.
    /// - Throws: `SectionError.payloadTooLarge` when the payload exceeds `maximumPayload`.
    public func encoded() throws(SectionError) -> [UInt8] {
        guard payload.count <= maximumPayload else {
            throw .payloadTooLarge(size: payload.count, limit: maximumPayload)
        }
        let sectionLength = isLongForm ? payload.count + 9 : payload.count
        var out: [UInt8] = []
        out.reserveCapacity(3 + sectionLength)
        out.append(tableID)
        out.append((isLongForm ? 0x80 : 0) | (privateIndicator ? 0x40 : 0) | 0x30 | UInt8(sectionLength >> 8))
        out.append(UInt8(sectionLength & 0xFF))
        if isLongForm {
            out.append(UInt8(tableIDExtension >> 8))
            out.append(UInt8(tableIDExtension & 0xFF))
            out.append(0xC0 | (versionNumber & 0x1F) << 1 | (currentNextIndicator ? 1 : 0))
            out.append(sectionNumber)
            out.append(lastSectionNumber)
        }
        out.append(contentsOf: payload)
        if isLongForm {
            let crc = CRC32MPEG2.checksum(out)
            out.append(UInt8(crc >> 24))
            out.append(UInt8((crc >> 16) & 0xFF))
            out.append(UInt8((crc >> 8) & 0xFF))
            out.append(UInt8(crc & 0xFF))
        }
        return out
    }

    /// Parses one complete section (exactly `3 + section_length` bytes, or more: the rest is ignored).
    /// - Throws: `SectionError` when the bytes are truncated, the length is impossible, or the CRC is wrong.
    public init(parsing bytes: some Collection<UInt8>) throws(SectionError) {
        let b = Array(bytes)
        guard b.count >= 3 else { throw .truncated(needed: 3, available: b.count) }
        let isLong = b[1] & 0x80 != 0
        let sectionLength = Int(b[1] & 0x0F) << 8 | Int(b[2])
        guard sectionLength <= Self.maximumSectionLength else { throw .invalidLength(sectionLength) }
        guard b.count >= 3 + sectionLength else { throw .truncated(needed: 3 + sectionLength, available: b.count) }
        self.tableID = b[0]
        self.privateIndicator = b[1] & 0x40 != 0
        self.isLongForm = isLong
        if isLong {
            guard sectionLength >= 9 else { throw .invalidLength(sectionLength) }
            let whole = b[0..<(3 + sectionLength)]
            guard CRC32MPEG2.checksum(whole) == 0 else { throw .crcMismatch }
            self.tableIDExtension = UInt16(b[3]) << 8 | UInt16(b[4])
            self.versionNumber = (b[5] >> 1) & 0x1F
            self.currentNextIndicator = b[5] & 1 != 0
            self.sectionNumber = b[6]
            self.lastSectionNumber = b[7]
            self.payload = Array(b[8..<(3 + sectionLength - 4)])
        } else {
            self.tableIDExtension = 0
            self.versionNumber = 0
            self.currentNextIndicator = true
            self.sectionNumber = 0
            self.lastSectionNumber = 0
            self.payload = Array(b[3..<(3 + sectionLength)])
        }
    }
}

/// Why a section could not be built or parsed.
public enum SectionError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(needed: Int, available: Int)
    case invalidLength(Int)
    case crcMismatch
    case payloadTooLarge(size: Int, limit: Int)
    /// 0xFF is the stuffing value; no section may carry it as table_id.
    case invalidTableID(UInt8)

    public var description: String {
        switch self {
        case .truncated(let needed, let available): "section truncated: needs \(needed) bytes, has \(available)"
        case .invalidLength(let length): "section_length \(length) is impossible for this section"
        case .crcMismatch: "section CRC-32 does not match its contents"
        case .payloadTooLarge(let size, let limit): "section payload of \(size) bytes exceeds the limit of \(limit)"
        case .invalidTableID(let id): "table_id 0x\(String(id, radix: 16, uppercase: true)) is not allowed (0xFF means stuffing)"
        }
    }
}
