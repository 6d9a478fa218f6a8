/// A descriptor as it appears in a descriptor loop: tag, then up to 255 bytes.
public struct Descriptor: Sendable, Hashable {
    public var tag: UInt8
    public var data: [UInt8]
    public init(tag: UInt8, data: [UInt8]) {
        self.tag = tag
        self.data = data
    }
}

/// The CA_descriptor (ISO/IEC 13818-1 §2.6.16): in the CAT it tells receivers on which
/// PID the EMMs of one CA system travel.
public struct CADescriptor: Sendable, Hashable {
    public var caSystemID: UInt16
    /// CA_PID: in the CAT, the EMM PID (13 bits).
    public var caPID: UInt16
    /// private_data_byte: vendor-specific (some CAS list further PIDs here).
    public var privateData: [UInt8]

    public init(caSystemID: UInt16, caPID: UInt16, privateData: [UInt8] = []) {
        self.caSystemID = caSystemID
        self.caPID = caPID & TS.PID.maximum
        self.privateData = privateData
    }

    /// Reads a descriptor with tag 0x09. - Throws: `CATError` when the tag or length is wrong.
    public init(_ descriptor: Descriptor) throws(CATError) {
        guard descriptor.tag == TS.DescriptorTag.ca else { throw .notACADescriptor(tag: descriptor.tag) }
        let d = descriptor.data
        guard d.count >= 4 else { throw .truncated("CA_descriptor of \(d.count) bytes, needs at least 4") }
        caSystemID = UInt16(d[0]) << 8 | UInt16(d[1])
        caPID = UInt16(d[2] & 0x1F) << 8 | UInt16(d[3])
        privateData = Array(d[4...])
    }

    /// As a generic descriptor (tag 0x09).
    public var descriptor: Descriptor {
        Descriptor(tag: TS.DescriptorTag.ca,
            data: [UInt8(caSystemID >> 8), UInt8(caSystemID & 0xFF), 0xE0 | UInt8(caPID >> 8), UInt8(caPID & 0xFF)]
                + privateData)
    }
}

/// The Conditional Access Table (ISO/IEC 13818-1 §2.4.4.6): table_id 0x01 on PID 0x0001,
/// long form with CRC-32; its CA_descriptors announce the EMM PIDs. Gatehouse builds it
/// for the playout and parses it in the monitor and `analyze`.
public struct ConditionalAccessTable: Sendable, Hashable {
    public var versionNumber: UInt8
    public var currentNextIndicator: Bool
    public var sectionNumber: UInt8
    public var lastSectionNumber: UInt8
    /// Every descriptor in order, CA_descriptors included.
    public var descriptors: [Descriptor]

    public init(versionNumber: UInt8 = 0, currentNextIndicator: Bool = true, descriptors: [Descriptor]) {
        self.versionNumber = versionNumber & 0x1F
        self.currentNextIndicator = currentNextIndicator
        self.sectionNumber = 0
        self.lastSectionNumber = 0
        self.descriptors = descriptors
    }

    /// A CAT announcing these CA systems and EMM PIDs.
    public init(versionNumber: UInt8 = 0, caDescriptors: [CADescriptor]) {
        self.init(versionNumber: versionNumber, descriptors: caDescriptors.map(\.descriptor))
    }

    /// The CA_descriptors among `descriptors` (malformed ones are left out).
    public var caDescriptors: [CADescriptor] {
        descriptors.compactMap { $0.tag == TS.DescriptorTag.ca ? try? CADescriptor($0) : nil }
    }

    /// The EMM PIDs the CAT announces, in order, without repeats.
    public var emmPIDs: [UInt16] {
        var seen = Set<UInt16>()
        return caDescriptors.map(\.caPID).filter { seen.insert($0).inserted }
    }

    /// The section on the wire: header, descriptors, CRC-32.
    /// - Throws: `CATError.tooLarge` beyond 1021 bytes of section_length; `.invalidDescriptor` for a
    ///   descriptor over 255 bytes.
    public func encoded() throws(CATError) -> [UInt8] {
        var body: [UInt8] = []
        for d in descriptors {
            guard d.data.count <= 255 else { throw .invalidDescriptor("descriptor 0x\(hex2(d.tag)) has \(d.data.count) bytes, at most 255") }
            body.append(d.tag)
            body.append(UInt8(d.data.count))
            body.append(contentsOf: d.data)
        }
        let sectionLength = 5 + body.count + 4
        guard sectionLength <= TS.maximumPSISectionLength else { throw .tooLarge(sectionLength) }
        var out: [UInt8] = [
            TS.TableID.cat, 0xB0 | UInt8(sectionLength >> 8), UInt8(sectionLength & 0xFF),
            0xFF, 0xFF,  // reserved 18 bits
            0xC0 | versionNumber << 1 | (currentNextIndicator ? 1 : 0), sectionNumber, lastSectionNumber,
        ]
        out.append(contentsOf: body)
        let crc = CRC32MPEG2.checksum(out)
        out.append(contentsOf: [UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)])
        return out
    }

    /// Parses one CAT section.
    /// - Throws: `CATError` for a wrong table_id, a short-form section, a bad length, a CRC mismatch or a
    ///   descriptor that overruns the loop.
    public init(parsing bytes: some Collection<UInt8>) throws(CATError) {
        let b = Array(bytes)
        guard b.count >= 3 else { throw .truncated("CAT of \(b.count) bytes") }
        guard b[0] == TS.TableID.cat else { throw .wrongTableID(b[0]) }
        guard b[1] & 0x80 != 0 else { throw .notLongForm }
        let sectionLength = Int(b[1] & 0x0F) << 8 | Int(b[2])
        guard sectionLength >= 9, sectionLength <= TS.maximumPSISectionLength else { throw .invalidLength(sectionLength) }
        guard b.count >= 3 + sectionLength else {
            throw .truncated("section_length \(sectionLength) needs \(3 + sectionLength) bytes, have \(b.count)")
        }
        let section = b[0..<(3 + sectionLength)]
        guard CRC32MPEG2.checksum(section) == 0 else { throw .crcMismatch }
        versionNumber = (b[5] >> 1) & 0x1F
        currentNextIndicator = b[5] & 1 != 0
        sectionNumber = b[6]
        lastSectionNumber = b[7]
        var descriptors: [Descriptor] = []
        var i = 8
        let end = 3 + sectionLength - 4
        while i < end {
            guard i + 2 <= end else { throw .invalidDescriptor("descriptor header at byte \(i) overruns the loop") }
            let length = Int(b[i + 1])
            guard i + 2 + length <= end else {
                throw .invalidDescriptor("descriptor 0x\(hex2(b[i])) of \(length) bytes overruns the loop")
            }
            descriptors.append(Descriptor(tag: b[i], data: Array(b[(i + 2)..<(i + 2 + length)])))
            i += 2 + length
        }
        self.descriptors = descriptors
    }
}

/// Why a CAT could not be built or parsed.
public enum CATError: Error, Sendable, Hashable, CustomStringConvertible {
    case wrongTableID(UInt8)
    case notLongForm
    case invalidLength(Int)
    case truncated(String)
    case crcMismatch
    case invalidDescriptor(String)
    case notACADescriptor(tag: UInt8)
    case tooLarge(Int)

    public var description: String {
        switch self {
        case .wrongTableID(let id): "not a CAT: table_id 0x\(hex2(id)), expected 0x01"
        case .notLongForm: "CAT must have section_syntax_indicator 1"
        case .invalidLength(let n): "CAT section_length \(n) is impossible (9–1021)"
        case .truncated(let what): "CAT truncated: \(what)"
        case .crcMismatch: "CAT CRC-32 does not match its contents"
        case .invalidDescriptor(let what): "CAT descriptor invalid: \(what)"
        case .notACADescriptor(let tag): "descriptor tag 0x\(hex2(tag)) is not a CA_descriptor (0x09)"
        case .tooLarge(let n): "CAT section_length \(n) exceeds 1021: split the descriptors over several CATs"
        }
    }
}
