/// The RTP fixed header and what follows it (RFC 3550 §5.1), as MPEG-2 TS over RTP
/// (RFC 2250) uses it: the monitor needs the sequence number to count lost datagrams.
public struct RTPHeader: Sendable, Hashable {
    public var version: UInt8
    public var padding: Bool
    public var hasExtension: Bool
    /// CC: how many 32-bit CSRC identifiers follow the fixed header.
    public var csrcCount: UInt8
    public var marker: Bool
    /// PT: 33 is MP2T; dynamic types (96–127) are also seen.
    public var payloadType: UInt8
    public var sequenceNumber: UInt16
    public var timestamp: UInt32
    public var ssrc: UInt32
    /// Bytes before the payload: fixed header, CSRCs and extension.
    public var headerLength: Int
    /// Bytes of padding at the end of the datagram (0 without the P bit).
    public var paddingLength: Int
}

/// What a UDP datagram carries.
public enum DatagramEncapsulation: Sendable, Hashable {
    /// n × 188 bytes of TS, sync byte at every 188-byte offset.
    case rawTS
    /// An RTP header, then TS packets.
    case rtp(RTPHeader)
}

/// A datagram with its TS packets located.
public struct DecodedDatagram: Sendable, Hashable {
    public var encapsulation: DatagramEncapsulation
    /// Where the TS packets lie in the datagram (a multiple of 188 bytes).
    public var transportStreamRange: Range<Int>
    public var packetCount: Int { transportStreamRange.count / TS.packetSize }
    /// The RTP header, if any.
    public var rtp: RTPHeader? {
        if case .rtp(let header) = encapsulation { return header }
        return nil
    }
}

/// Tells raw UDP/TS from RTP/TS and strips the RTP header.
///
/// Rules (the same as TSDuck's ip input, written down in docs/transport-stream.md):
/// 1. raw TS: the length is a non-zero multiple of 188 and every 188-byte slot starts with 0x47;
/// 2. otherwise RTP: at least 12 bytes, version 2; the header is 12 + 4 × CC bytes, plus
///    4 + 4 × length when X is set; with P the last byte gives the padding length; what remains
///    must be a non-zero multiple of 188 bytes, each starting with 0x47. Any payload type is
///    accepted when the payload is TS (33 is the registered one).
public enum TSDatagram {
    /// Locates the TS packets in a datagram.
    /// - Throws: `DatagramError` saying why it is neither raw TS nor RTP/TS.
    public static func decode(_ datagram: UnsafeRawBufferPointer) throws(DatagramError) -> DecodedDatagram {
        let n = datagram.count
        guard n > 0 else { throw .empty }
        if n % TS.packetSize == 0 && hasSyncBytes(datagram, from: 0, count: n / TS.packetSize) {
            return DecodedDatagram(encapsulation: .rawTS, transportStreamRange: 0..<n)
        }
        guard n >= TS.rtpFixedHeaderSize else { throw .notTransportStream(length: n) }
        let version = datagram[0] >> 6
        guard version == 2 else {
            throw datagram[0] == TS.syncByte ? .notTransportStream(length: n) : .unsupportedRTPVersion(version)
        }
        let padding = datagram[0] & 0x20 != 0
        let hasExtension = datagram[0] & 0x10 != 0
        let csrcCount = datagram[0] & 0x0F
        var headerLength = TS.rtpFixedHeaderSize + 4 * Int(csrcCount)
        if hasExtension {
            guard headerLength + 4 <= n else { throw .truncatedRTPHeader(length: n) }
            let words = Int(datagram[headerLength + 2]) << 8 | Int(datagram[headerLength + 3])
            headerLength += 4 + 4 * words
        }
        guard headerLength <= n else { throw .truncatedRTPHeader(length: n) }
        var paddingLength = 0
        if padding {
            paddingLength = Int(datagram[n - 1])
            guard paddingLength >= 1, headerLength + paddingLength <= n else { throw .invalidRTPPadding(paddingLength) }
        }
        let payloadLength = n - headerLength - paddingLength
        guard payloadLength > 0, payloadLength % TS.packetSize == 0,
            hasSyncBytes(datagram, from: headerLength, count: payloadLength / TS.packetSize)
        else { throw .rtpPayloadNotTransportStream(payloadLength: payloadLength) }
        let header = RTPHeader(
            version: version, padding: padding, hasExtension: hasExtension, csrcCount: csrcCount,
            marker: datagram[1] & 0x80 != 0, payloadType: datagram[1] & 0x7F,
            sequenceNumber: UInt16(datagram[2]) << 8 | UInt16(datagram[3]),
            timestamp: UInt32(datagram[4]) << 24 | UInt32(datagram[5]) << 16 | UInt32(datagram[6]) << 8
                | UInt32(datagram[7]),
            ssrc: UInt32(datagram[8]) << 24 | UInt32(datagram[9]) << 16 | UInt32(datagram[10]) << 8
                | UInt32(datagram[11]),
            headerLength: headerLength, paddingLength: paddingLength)
        return DecodedDatagram(encapsulation: .rtp(header), transportStreamRange: headerLength..<(headerLength + payloadLength))
    }

    /// Locates the TS packets in a datagram held in an array.
    public static func decode(_ datagram: [UInt8]) throws(DatagramError) -> DecodedDatagram {
        let result = datagram.withUnsafeBytes { raw in Result { () throws(DatagramError) in try decode(raw) } }
        return try result.get()
    }

    /// The TS bytes of a datagram, RTP header and padding removed.
    public static func transportStream(of datagram: [UInt8]) throws(DatagramError) -> ArraySlice<UInt8> {
        datagram[try decode(datagram).transportStreamRange]
    }

    private static func hasSyncBytes(_ d: UnsafeRawBufferPointer, from start: Int, count: Int) -> Bool {
        guard count > 0 else { return false }
        for k in 0..<count where d[start + k * TS.packetSize] != TS.syncByte { return false }
        return true
    }
}

/// Why a datagram is neither raw TS nor RTP/TS.
public enum DatagramError: Error, Sendable, Hashable, CustomStringConvertible {
    case empty
    case notTransportStream(length: Int)
    case unsupportedRTPVersion(UInt8)
    case truncatedRTPHeader(length: Int)
    case invalidRTPPadding(Int)
    case rtpPayloadNotTransportStream(payloadLength: Int)

    public var description: String {
        switch self {
        case .empty: "empty datagram"
        case .notTransportStream(let n): "datagram of \(n) bytes is neither TS (n × 188, sync 0x47) nor RTP"
        case .unsupportedRTPVersion(let v): "RTP version \(v) is not supported (only 2)"
        case .truncatedRTPHeader(let n): "RTP header runs past the \(n)-byte datagram"
        case .invalidRTPPadding(let p): "RTP padding length \(p) is impossible"
        case .rtpPayloadNotTransportStream(let n): "RTP payload of \(n) bytes is not whole TS packets"
        }
    }
}

/// Counts lost RTP datagrams from sequence numbers (16-bit, wrapping).
public struct RTPSequenceTracker: Sendable, Hashable {
    /// The last sequence number in order.
    public private(set) var lastSequenceNumber: UInt16?
    /// Datagrams missing so far (a jump of n counts n − 1).
    public private(set) var lostDatagrams = 0
    /// Datagrams with a sequence number seen just before (duplicates) or behind (late, reordered).
    public private(set) var outOfOrderDatagrams = 0
    public private(set) var receivedDatagrams = 0

    /// Jumps larger than this are taken as a sender restart, not a loss. Default 1000.
    public var restartThreshold: Int

    public init(restartThreshold: Int = 1000) { self.restartThreshold = restartThreshold }

    /// Records one datagram. - Returns: the datagrams lost just before it (0 in sequence).
    @discardableResult
    public mutating func record(_ sequenceNumber: UInt16) -> Int {
        receivedDatagrams += 1
        guard let last = lastSequenceNumber else {
            lastSequenceNumber = sequenceNumber
            return 0
        }
        let delta = Int(sequenceNumber &- last)  // 0…65535, forward distance
        if delta == 1 {
            lastSequenceNumber = sequenceNumber
            return 0
        }
        if delta == 0 || delta > 0x8000 {
            outOfOrderDatagrams += 1
            return 0
        }
        lastSequenceNumber = sequenceNumber
        guard delta <= restartThreshold else { return 0 }
        lostDatagrams += delta - 1
        return delta - 1
    }
}
