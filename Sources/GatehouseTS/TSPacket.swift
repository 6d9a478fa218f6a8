/// One MPEG-2 transport packet: exactly its 188 bytes, with accessors named after the
/// spec fields (ISO/IEC 13818-1 §2.4.3.2). Hot paths that must not allocate read the
/// same fields from a raw buffer through `TSPacketHeader` and `AdaptationField`.
public struct TSPacket: Sendable, Hashable {
    /// The 188 bytes on the wire; always exactly `TS.packetSize` long.
    public private(set) var bytes: [UInt8]

    /// Takes exactly 188 bytes that start with the sync byte.
    /// - Throws: `TSPacketError.wrongSize` or `.missingSyncByte`.
    public init(bytes: some Collection<UInt8>) throws(TSPacketError) {
        let array = Array(bytes)
        guard array.count == TS.packetSize else { throw .wrongSize(array.count) }
        guard array[0] == TS.syncByte else { throw .missingSyncByte(found: array[0]) }
        self.bytes = array
    }

    /// Builds a packet from its header fields, an optional adaptation field and a payload.
    ///
    /// When the payload is shorter than the room left, the rest is filled according to
    /// `stuffing`: `.adaptationField` grows (or adds) the adaptation field with 0xFF
    /// stuffing bytes, as PES packets need; `.payload` appends 0xFF after the payload, as
    /// PSI/private sections use (0xFF where a table_id is expected ends the packet).
    /// - Throws: `TSPacketError.payloadTooLarge` when header, adaptation field and payload exceed 188 bytes,
    ///   `.invalidField` when a field is out of range.
    public init(
        pid: UInt16, payloadUnitStartIndicator: Bool = false, continuityCounter: UInt8,
        transportErrorIndicator: Bool = false, transportPriority: Bool = false,
        transportScramblingControl: UInt8 = 0, adaptationField: AdaptationField? = nil,
        payload: some Collection<UInt8>, stuffing: Stuffing = .payload
    ) throws(TSPacketError) {
        guard pid <= TS.PID.maximum else { throw .invalidField("PID \(pid) exceeds 0x1FFF") }
        guard continuityCounter < 16 else { throw .invalidField("continuity_counter \(continuityCounter) exceeds 15") }
        guard transportScramblingControl < 4 else {
            throw .invalidField("transport_scrambling_control \(transportScramblingControl) exceeds 3")
        }
        let payloadCount = payload.count
        var field = adaptationField
        var fieldSize = field?.encodedSize ?? 0
        let room = TS.maximumPayloadSize - fieldSize
        guard payloadCount <= room else { throw .payloadTooLarge(payloadCount, room: room) }
        if stuffing == .adaptationField && payloadCount < room {
            var grown = field ?? AdaptationField()
            grown.padTo(encodedSize: fieldSize + room - payloadCount)
            field = grown
            fieldSize = grown.encodedSize
        }
        var out = [UInt8]()
        out.reserveCapacity(TS.packetSize)
        out.append(TS.syncByte)
        out.append((transportErrorIndicator ? 0x80 : 0) | (payloadUnitStartIndicator ? 0x40 : 0)
            | (transportPriority ? 0x20 : 0) | UInt8(pid >> 8))
        out.append(UInt8(pid & 0xFF))
        let hasPayload = payloadCount > 0 || field == nil
        let afc: UInt8 = (field != nil ? 2 : 0) | (hasPayload ? 1 : 0)
        out.append(transportScramblingControl << 6 | afc << 4 | continuityCounter)
        if let field { field.encode(into: &out) }
        out.append(contentsOf: payload)
        while out.count < TS.packetSize { out.append(TS.stuffingByte) }
        self.bytes = out
    }

    /// How `init(pid:…)` fills a packet whose payload is short.
    public enum Stuffing: Sendable, Equatable {
        /// 0xFF bytes after the payload (PSI and private sections).
        case payload
        /// Stuffing bytes inside the adaptation field (PES).
        case adaptationField
    }

    /// The parsed 4-byte header.
    public var header: TSPacketHeader { bytes.withUnsafeBytes { TSPacketHeader($0) } }

    public var syncByte: UInt8 { bytes[0] }
    public var transportErrorIndicator: Bool { bytes[1] & 0x80 != 0 }
    public var payloadUnitStartIndicator: Bool { bytes[1] & 0x40 != 0 }
    public var transportPriority: Bool { bytes[1] & 0x20 != 0 }
    public var pid: UInt16 { UInt16(bytes[1] & 0x1F) << 8 | UInt16(bytes[2]) }
    public var transportScramblingControl: UInt8 { bytes[3] >> 6 }
    /// 1: payload only, 2: adaptation field only, 3: both, 0: reserved.
    public var adaptationFieldControl: UInt8 { (bytes[3] >> 4) & 0x03 }
    public var continuityCounter: UInt8 { bytes[3] & 0x0F }
    public var hasAdaptationField: Bool { adaptationFieldControl & 0x02 != 0 }
    public var hasPayload: Bool { adaptationFieldControl & 0x01 != 0 }

    /// The adaptation field, or nil when there is none or it is malformed.
    public var adaptationField: AdaptationField? {
        bytes.withUnsafeBytes { AdaptationField(packet: $0) }
    }

    /// Where the payload lies in `bytes`; nil when there is none or the adaptation field overruns the packet.
    public var payloadRange: Range<Int>? {
        bytes.withUnsafeBytes { TSPacketHeader.payloadRange(packet: $0) }
    }

    /// The payload bytes (empty when there is none).
    public var payload: ArraySlice<UInt8> {
        guard let range = payloadRange else { return [] }
        return bytes[range]
    }

    /// Sets the continuity counter (0–15; higher bits are ignored).
    public mutating func setContinuityCounter(_ value: UInt8) {
        bytes[3] = (bytes[3] & 0xF0) | (value & 0x0F)
    }

    /// Splits `data` (n × 188 bytes) into packets.
    /// - Throws: `TSPacketError` for the first packet that is not one.
    public static func packets(in data: some Collection<UInt8>) throws(TSPacketError) -> [TSPacket] {
        let array = Array(data)
        guard array.count % TS.packetSize == 0 else { throw .wrongSize(array.count % TS.packetSize) }
        var out: [TSPacket] = []
        out.reserveCapacity(array.count / TS.packetSize)
        var offset = 0
        while offset < array.count {
            out.append(try TSPacket(bytes: array[offset..<(offset + TS.packetSize)]))
            offset += TS.packetSize
        }
        return out
    }
}

/// The 4-byte transport packet header, read without copying (ISO/IEC 13818-1 Table 2-2).
public struct TSPacketHeader: Sendable, Hashable {
    public var syncByte: UInt8
    public var transportErrorIndicator: Bool
    public var payloadUnitStartIndicator: Bool
    public var transportPriority: Bool
    public var pid: UInt16
    public var transportScramblingControl: UInt8
    public var adaptationFieldControl: UInt8
    public var continuityCounter: UInt8

    /// Reads the header from the first 4 bytes of `packet`.
    /// - Precondition: `packet.count >= 4` (callers hold whole packets).
    @inlinable
    public init(_ packet: UnsafeRawBufferPointer) {
        let b1 = packet[1], b3 = packet[3]
        syncByte = packet[0]
        transportErrorIndicator = b1 & 0x80 != 0
        payloadUnitStartIndicator = b1 & 0x40 != 0
        transportPriority = b1 & 0x20 != 0
        pid = UInt16(b1 & 0x1F) << 8 | UInt16(packet[2])
        transportScramblingControl = b3 >> 6
        adaptationFieldControl = (b3 >> 4) & 0x03
        continuityCounter = b3 & 0x0F
    }

    public var hasAdaptationField: Bool { adaptationFieldControl & 0x02 != 0 }
    public var hasPayload: Bool { adaptationFieldControl & 0x01 != 0 }

    /// Where the payload lies in a 188-byte packet; nil when there is none or the adaptation field overruns.
    @inlinable
    public static func payloadRange(packet: UnsafeRawBufferPointer) -> Range<Int>? {
        guard packet.count >= TS.packetSize else { return nil }
        let afc = (packet[3] >> 4) & 0x03
        guard afc & 0x01 != 0 else { return nil }
        var start = TS.headerSize
        if afc & 0x02 != 0 {
            start += 1 + Int(packet[4])
            guard start <= TS.packetSize else { return nil }
        }
        return start..<TS.packetSize
    }
}

/// Why bytes are not a transport packet.
public enum TSPacketError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongSize(Int)
    case missingSyncByte(found: UInt8)
    case payloadTooLarge(Int, room: Int)
    case invalidField(String)

    public var description: String {
        switch self {
        case .wrongSize(let size): "a transport packet is 188 bytes, got \(size)"
        case .missingSyncByte(let found):
            "transport packet does not start with sync byte 0x47 (found 0x\(String(found, radix: 16, uppercase: true)))"
        case .payloadTooLarge(let size, let room): "payload of \(size) bytes does not fit the \(room) bytes left in the packet"
        case .invalidField(let what): "invalid packet field: \(what)"
        }
    }
}
