/// A Program Clock Reference: 33-bit base (90 kHz) and 9-bit extension (27 MHz remainder).
public struct PCR: Sendable, Hashable, Comparable {
    /// program_clock_reference_base, 33 bits.
    public var base: UInt64
    /// program_clock_reference_extension, 9 bits (0–299 in a conforming stream).
    public var `extension`: UInt16

    public init(base: UInt64, extension: UInt16) {
        self.base = base & 0x1_FFFF_FFFF
        self.extension = `extension` & 0x1FF
    }

    /// From a 27 MHz tick count (wraps at 2^33 × 300).
    public init(value: UInt64) {
        self.init(base: (value / TS.pcrBaseMultiplier) & 0x1_FFFF_FFFF, extension: UInt16(value % TS.pcrBaseMultiplier))
    }

    /// The clock in 27 MHz ticks: base × 300 + extension.
    public var value: UInt64 { base * TS.pcrBaseMultiplier + UInt64(`extension`) }

    /// The PCR wraps after 2^33 × 300 ticks (about 26.5 hours).
    public static let modulus: UInt64 = (1 << 33) * TS.pcrBaseMultiplier

    /// Ticks from `earlier` to `self`, across one wrap.
    public func ticks(since earlier: PCR) -> UInt64 {
        value >= earlier.value ? value - earlier.value : value + Self.modulus - earlier.value
    }

    public static func < (lhs: PCR, rhs: PCR) -> Bool { lhs.value < rhs.value }

    /// Reads the 6 PCR bytes at `offset`.
    @inlinable
    static func read(_ b: UnsafeRawBufferPointer, at offset: Int) -> PCR {
        let base = UInt64(b[offset]) << 25 | UInt64(b[offset + 1]) << 17 | UInt64(b[offset + 2]) << 9
            | UInt64(b[offset + 3]) << 1 | UInt64(b[offset + 4] >> 7)
        let ext = UInt16(b[offset + 4] & 0x01) << 8 | UInt16(b[offset + 5])
        return PCR(base: base, extension: ext)
    }

    func encode(into out: inout [UInt8]) {
        out.append(UInt8((base >> 25) & 0xFF))
        out.append(UInt8((base >> 17) & 0xFF))
        out.append(UInt8((base >> 9) & 0xFF))
        out.append(UInt8((base >> 1) & 0xFF))
        out.append(UInt8((base & 1) << 7) | 0x7E | UInt8(`extension` >> 8))
        out.append(UInt8(`extension` & 0xFF))
    }
}

/// The adaptation field (ISO/IEC 13818-1 §2.4.3.4): discontinuity and random-access
/// flags, PCR/OPCR, splice countdown, private data and stuffing. Parsed fields the
/// monitor needs; the rest (adaptation_field_extension) is kept as raw bytes.
public struct AdaptationField: Sendable, Hashable {
    public var discontinuityIndicator: Bool = false
    public var randomAccessIndicator: Bool = false
    public var elementaryStreamPriorityIndicator: Bool = false
    public var pcr: PCR?
    public var opcr: PCR?
    public var spliceCountdown: Int8?
    public var transportPrivateData: [UInt8]?
    /// adaptation_field_extension bytes after their length byte, kept as they are.
    public var adaptationFieldExtension: [UInt8]?
    /// The 0xFF stuffing bytes at the end of the field.
    public var stuffingCount: Int = 0

    public init(
        discontinuityIndicator: Bool = false, randomAccessIndicator: Bool = false, pcr: PCR? = nil,
        stuffingCount: Int = 0
    ) {
        self.discontinuityIndicator = discontinuityIndicator
        self.randomAccessIndicator = randomAccessIndicator
        self.pcr = pcr
        self.stuffingCount = stuffingCount
    }

    /// Parses the adaptation field of a whole 188-byte packet; nil when the packet has none
    /// or its length overruns the packet or its own flags.
    public init?(packet b: UnsafeRawBufferPointer) {
        guard b.count >= TS.packetSize, (b[3] >> 4) & 0x02 != 0 else { return nil }
        let length = Int(b[4])
        let hasPayload = (b[3] >> 4) & 0x01 != 0
        // 0–182 with a payload, exactly 183 without (a 0 length is legal: one stuffing byte).
        guard length <= (hasPayload ? 182 : 183) else { return nil }
        let end = 5 + length
        guard length > 0 else { return }
        let flags = b[5]
        forceFlagsByte = true
        discontinuityIndicator = flags & 0x80 != 0
        randomAccessIndicator = flags & 0x40 != 0
        elementaryStreamPriorityIndicator = flags & 0x20 != 0
        var i = 6
        if flags & 0x10 != 0 {
            guard i + 6 <= end else { return nil }
            pcr = PCR.read(b, at: i)
            i += 6
        }
        if flags & 0x08 != 0 {
            guard i + 6 <= end else { return nil }
            opcr = PCR.read(b, at: i)
            i += 6
        }
        if flags & 0x04 != 0 {
            guard i + 1 <= end else { return nil }
            spliceCountdown = Int8(bitPattern: b[i])
            i += 1
        }
        if flags & 0x02 != 0 {
            guard i + 1 <= end else { return nil }
            let n = Int(b[i])
            guard i + 1 + n <= end else { return nil }
            transportPrivateData = Array(b[(i + 1)..<(i + 1 + n)])
            i += 1 + n
        }
        if flags & 0x01 != 0 {
            guard i + 1 <= end else { return nil }
            let n = Int(b[i])
            guard i + 1 + n <= end else { return nil }
            adaptationFieldExtension = Array(b[(i + 1)..<(i + 1 + n)])
            i += 1 + n
        }
        stuffingCount = end - i
    }

    /// Reads only the PCR of a packet, without building the field: the fast path for bit-rate analysis.
    @inlinable
    public static func pcr(packet b: UnsafeRawBufferPointer) -> PCR? {
        guard b.count >= TS.packetSize, (b[3] >> 4) & 0x02 != 0, b[4] >= 7, b[4] <= 183, b[5] & 0x10 != 0 else {
            return nil
        }
        return PCR.read(b, at: 6)
    }

    /// Reads only discontinuity_indicator of a packet.
    @inlinable
    public static func discontinuityIndicator(packet b: UnsafeRawBufferPointer) -> Bool {
        b.count >= TS.packetSize && (b[3] >> 4) & 0x02 != 0 && b[4] > 0 && b[5] & 0x80 != 0
    }

    private var hasFlagsByte: Bool {
        discontinuityIndicator || randomAccessIndicator || elementaryStreamPriorityIndicator || pcr != nil
            || opcr != nil || spliceCountdown != nil || transportPrivateData != nil || adaptationFieldExtension != nil
            || stuffingCount > 0 || forceFlagsByte
    }

    /// adaptation_field_length: the bytes after the length byte.
    public var adaptationFieldLength: Int {
        guard hasFlagsByte else { return 0 }
        var n = 1
        if pcr != nil { n += 6 }
        if opcr != nil { n += 6 }
        if spliceCountdown != nil { n += 1 }
        if let data = transportPrivateData { n += 1 + data.count }
        if let data = adaptationFieldExtension { n += 1 + data.count }
        return n + stuffingCount
    }

    /// The bytes the field takes in a packet, its length byte included.
    public var encodedSize: Int { 1 + adaptationFieldLength }

    /// Adds stuffing so the field takes `size` bytes (when it can; never shrinks).
    public mutating func padTo(encodedSize size: Int) {
        guard size > encodedSize else { return }
        if !hasFlagsByte {
            // Length byte only so far: the flags byte comes first, then stuffing.
            if size == 1 { return }
            forceFlagsByte = true
            stuffingCount = size - 2
            return
        }
        stuffingCount += size - encodedSize
    }

    /// Set when the field must carry a flags byte with nothing else (a 2-byte field).
    var forceFlagsByte = false

    /// Appends the field, length byte first.
    public func encode(into out: inout [UInt8]) {
        let length = adaptationFieldLength
        out.append(UInt8(truncatingIfNeeded: length))
        guard length > 0 else { return }
        var flags: UInt8 = 0
        if discontinuityIndicator { flags |= 0x80 }
        if randomAccessIndicator { flags |= 0x40 }
        if elementaryStreamPriorityIndicator { flags |= 0x20 }
        if pcr != nil { flags |= 0x10 }
        if opcr != nil { flags |= 0x08 }
        if spliceCountdown != nil { flags |= 0x04 }
        if transportPrivateData != nil { flags |= 0x02 }
        if adaptationFieldExtension != nil { flags |= 0x01 }
        out.append(flags)
        pcr?.encode(into: &out)
        opcr?.encode(into: &out)
        if let spliceCountdown { out.append(UInt8(bitPattern: spliceCountdown)) }
        if let data = transportPrivateData {
            out.append(UInt8(truncatingIfNeeded: data.count))
            out.append(contentsOf: data)
        }
        if let data = adaptationFieldExtension {
            out.append(UInt8(truncatingIfNeeded: data.count))
            out.append(contentsOf: data)
        }
        for _ in 0..<stuffingCount { out.append(0xFF) }
    }
}
