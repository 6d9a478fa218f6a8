import GatehouseCore

/// Everything the playout needs before it opens a socket, validated once when loaded
/// (TSDuck keeps a receiver's settings apart from its I/O; so do we).
///
/// Every property has a default, documented here and in docs/playout.md.
public struct PlayoutConfiguration: Sendable, Equatable {
    /// What to send when no EMM is due.
    public enum Fill: String, Sendable, Equatable {
        /// Repeat the live EMM whose next repetition is nearest, early; null packets when
        /// nothing is live. Constant rate, and boxes that just tuned in learn sooner. Default.
        case earlyRepeats = "repeat"
        /// Null packets (PID 0x1FFF): constant rate, repetition exactly on each EMM's interval.
        case nullPackets = "null"
        /// Nothing: the stream rate follows the load (still never above the budget).
        case none = "none"
    }

    /// The multicast group and port. `GATEHOUSE_EMM_GROUP`, default `239.255.42.42:5000`
    /// (IPv4 organisation-local scope, RFC 2365). IPv6 as `[ff15::4242]:5000`.
    public var group: SocketAddress
    /// Interface to send on: an IPv4 address, an IPv6 address or an interface name.
    /// `GATEHOUSE_MULTICAST_INTERFACE`, default `127.0.0.1` (IPv4) / `lo` (IPv6 group).
    public var interface: String
    /// IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS. `GATEHOUSE_MULTICAST_TTL`, default 1 (never routed).
    public var ttl: Int
    /// Optional source address to bind before sending (`GATEHOUSE_EMM_SOURCE`, default unset).
    public var sourceAddress: String?
    /// The TS bit rate of the EMM stream, 188-byte packets × 8, CAT and null packets
    /// included, UDP/IP/RTP headers excluded. `GATEHOUSE_EMM_BITRATE`, default 100 000 bit/s.
    public var bitRate: Int
    /// The EMM PID the CAT announces. `GATEHOUSE_EMM_PID`, default 0x0100 (256).
    public var emmPID: UInt16
    /// CA_system_id in the CAT's CA_descriptor. `GATEHOUSE_CA_SYSTEM_ID`, default 0x4AE1
    /// (a value used here for tests and private deployments; a real operator uses the id
    /// DVB allocated to its CAS vendor, ETSI TS 101 162).
    public var caSystemID: UInt16
    /// How often the CAT is sent. `GATEHOUSE_CAT_INTERVAL_MS`, default 500, at most 1000.
    public var catIntervalMilliseconds: Int
    /// Wrap each datagram in RTP (v2, PT 33). `GATEHOUSE_RTP`, default false (raw UDP/TS).
    public var isRTPEnabled: Bool
    /// How often the store is polled for new EMMs. `GATEHOUSE_PLAYOUT_POLL_MS`, default 200.
    public var pollIntervalMilliseconds: Int
    /// How often send_count/last_sent_at are written back. `GATEHOUSE_PLAYOUT_WRITEBACK_MS`,
    /// default 5000; 0 disables the write-back.
    public var writeBackIntervalMilliseconds: Int
    /// What fills spare capacity. `GATEHOUSE_PLAYOUT_FILL` (`repeat`, `null`, `none`), default `repeat`.
    public var fill: Fill
    /// TS packets per UDP datagram. Always 7 (1316 bytes, what multiplexers expect); a
    /// partial datagram is completed with null packets.
    public var packetsPerDatagram: Int
    /// Rows fetched per query when loading. Default 5000.
    public var loadPageSize: Int

    public init(
        group: SocketAddress = PlayoutConfiguration.defaultGroup, interface: String = "127.0.0.1", ttl: Int = 1,
        sourceAddress: String? = nil, bitRate: Int = 100_000, emmPID: UInt16 = 0x0100, caSystemID: UInt16 = 0x4AE1,
        catIntervalMilliseconds: Int = 500, isRTPEnabled: Bool = false, pollIntervalMilliseconds: Int = 200,
        writeBackIntervalMilliseconds: Int = 5000, fill: Fill = .earlyRepeats, packetsPerDatagram: Int = 7,
        loadPageSize: Int = 5000
    ) {
        self.group = group
        self.interface = interface
        self.ttl = ttl
        self.sourceAddress = sourceAddress
        self.bitRate = bitRate
        self.emmPID = emmPID
        self.caSystemID = caSystemID
        self.catIntervalMilliseconds = catIntervalMilliseconds
        self.isRTPEnabled = isRTPEnabled
        self.pollIntervalMilliseconds = pollIntervalMilliseconds
        self.writeBackIntervalMilliseconds = writeBackIntervalMilliseconds
        self.fill = fill
        self.packetsPerDatagram = packetsPerDatagram
        self.loadPageSize = loadPageSize
    }

    /// 239.255.42.42:5000.
    public static let defaultGroup = SocketAddress(host: "239.255.42.42", port: 5000, family: .ipv4)

    /// The lowest and highest accepted bit rates: one datagram a second, and far above any
    /// multiplexer's EMM input (they commonly cap at 3 Mbit/s).
    public static let bitRateRange = 10_528...100_000_000

    /// Reads the settings above from `source`.
    /// - Throws: `GatehouseError.configuration` naming the setting and what it expects.
    public static func load(from source: ConfigSource) throws -> PlayoutConfiguration {
        var c = PlayoutConfiguration()
        if let text = source.string("GATEHOUSE_EMM_GROUP") {
            c.group = try SocketAddress.parse(text, setting: "GATEHOUSE_EMM_GROUP")
            guard c.group.isMulticast else {
                throw GatehouseError(
                    .configuration, "GATEHOUSE_EMM_GROUP=\(text): not a multicast address (224.0.0.0/4 or ff00::/8)")
            }
        }
        c.interface = source.string(
            "GATEHOUSE_MULTICAST_INTERFACE", default: c.group.family == .ipv6 ? "lo" : "127.0.0.1")
        c.ttl = try source.int("GATEHOUSE_MULTICAST_TTL", default: 1, in: 0...255)
        c.sourceAddress = source.string("GATEHOUSE_EMM_SOURCE")
        if let s = c.sourceAddress, SocketAddress.family(ofHost: s) != c.group.family {
            throw GatehouseError(
                .configuration, "GATEHOUSE_EMM_SOURCE=\(s): expected an \(c.group.family) address like the group")
        }
        c.bitRate = try source.int("GATEHOUSE_EMM_BITRATE", default: 100_000, in: bitRateRange)
        c.emmPID = UInt16(try intOrHex(source, "GATEHOUSE_EMM_PID", default: 0x0100, in: 0x0020...0x1FFE))
        c.caSystemID = UInt16(try intOrHex(source, "GATEHOUSE_CA_SYSTEM_ID", default: 0x4AE1, in: 0x0001...0xFFFF))
        c.catIntervalMilliseconds = try source.int("GATEHOUSE_CAT_INTERVAL_MS", default: 500, in: 10...1000)
        c.isRTPEnabled = try source.bool("GATEHOUSE_RTP", default: false)
        c.pollIntervalMilliseconds = try source.int("GATEHOUSE_PLAYOUT_POLL_MS", default: 200, in: 10...60_000)
        c.writeBackIntervalMilliseconds = try source.int(
            "GATEHOUSE_PLAYOUT_WRITEBACK_MS", default: 5000, in: 0...3_600_000)
        if let text = source.string("GATEHOUSE_PLAYOUT_FILL") {
            guard let fill = Fill(rawValue: text.lowercased()) else {
                throw GatehouseError(.configuration, "GATEHOUSE_PLAYOUT_FILL=\(text): expected repeat, null or none")
            }
            c.fill = fill
        }
        return c
    }

    /// A PID or id written in decimal or as 0x-prefixed hex.
    static func intOrHex(_ source: ConfigSource, _ key: String, default value: Int, in range: ClosedRange<Int>) throws
        -> Int
    {
        guard let text = source.string(key) else { return value }
        let lower = text.lowercased()
        let parsed = lower.hasPrefix("0x") ? Int(lower.dropFirst(2), radix: 16) : Int(lower)
        guard let parsed, range.contains(parsed) else {
            throw GatehouseError(
                .configuration,
                "\(key)=\(text): expected a number (decimal or 0x hex) in 0x\(String(range.lowerBound, radix: 16))...0x\(String(range.upperBound, radix: 16))"
            )
        }
        return parsed
    }
}

/// A host and port, as `ADDR:PORT` or `[IPv6]:PORT`.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: String, Sendable, Hashable, CustomStringConvertible {
        case ipv4 = "IPv4"
        case ipv6 = "IPv6"
        public var description: String { rawValue }
    }

    public var host: String
    public var port: UInt16
    public var family: Family

    public init(host: String, port: UInt16, family: Family) {
        self.host = host
        self.port = port
        self.family = family
    }

    public var description: String { family == .ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// 224.0.0.0/4 or ff00::/8.
    public var isMulticast: Bool {
        switch family {
        case .ipv4:
            guard let first = host.split(separator: ".").first, let byte = Int(first) else { return false }
            return (224...239).contains(byte)
        case .ipv6: return host.lowercased().hasPrefix("ff")
        }
    }

    /// Parses `ADDR:PORT` or `[ADDR]:PORT`.
    /// - Throws: `GatehouseError.configuration` naming `setting`.
    public static func parse(_ text: String, setting: String) throws -> SocketAddress {
        let bad = GatehouseError(.configuration, "\(setting)=\(text): expected ADDR:PORT (IPv4) or [ADDR]:PORT (IPv6)")
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw bad }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw bad }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw bad }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText), port > 0 else { throw bad }
        let hostString = String(host)
        guard let family = family(ofHost: hostString) else { throw bad }
        return SocketAddress(host: hostString, port: port, family: family)
    }

    /// The family of a numeric address, or nil when it is neither.
    static func family(ofHost host: String) -> Family? {
        if IPAddress.ipv4(host) != nil { return .ipv4 }
        if IPAddress.ipv6(host) != nil { return .ipv6 }
        return nil
    }
}
