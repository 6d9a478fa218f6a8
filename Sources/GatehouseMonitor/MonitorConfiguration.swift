import Foundation
import GatehouseCore
import GatehouseCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// A multicast group and UDP port, as `GATEHOUSE_EMM_GROUP` spells it: `239.255.42.42:5000`
/// or `[ff15::42]:5000`.
public struct MulticastGroup: Sendable, Hashable, CustomStringConvertible {
    /// The group address in its textual form (no brackets).
    public var address: String
    public var port: UInt16
    public var isIPv6: Bool

    /// - Throws: `GatehouseError(.configuration)` naming `setting` when the text is not
    ///   `ADDR:PORT` with a multicast address and a port in 1…65535.
    public init(parsing text: String, setting: String = "GATEHOUSE_EMM_GROUP") throws {
        let fail = { (why: String) in
            GatehouseError(.configuration, "\(setting)=\(text): \(why) (expected ADDR:PORT, e.g. 239.255.42.42:5000)")
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw fail("an IPv6 group must be written [ADDR]:PORT")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw fail("no port") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText), port > 0 else { throw fail("port must be 1...65535") }
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, String(host), &v4) == 1 {
            let first = UInt32(bigEndian: v4.s_addr) >> 24
            guard (224...239).contains(first) else { throw fail("\(host) is not a multicast address (224.0.0.0/4)") }
            isIPv6 = false
        } else if inet_pton(AF_INET6, String(host), &v6) == 1 {
            let first = withUnsafeBytes(of: &v6) { $0[0] }
            guard first == 0xFF else { throw fail("\(host) is not an IPv6 multicast address (ff00::/8)") }
            isIPv6 = true
        } else {
            throw fail("\(host) is not an IP address")
        }
        self.address = String(host)
        self.port = port
    }

    public var description: String { isIPv6 ? "[\(address)]:\(port)" : "\(address):\(port)" }
}

/// A device key the monitor decrypts with: configured, or read from the store.
public struct MonitorDeviceKey: Sendable, Equatable {
    public var deviceID: String
    public var key: SymmetricKey
    /// The key version EMMs must carry; nil accepts any version (a configured key whose
    /// version the operator did not give).
    public var keyVersion: UInt16?

    public init(deviceID: String, key: SymmetricKey, keyVersion: UInt16? = nil) {
        self.deviceID = deviceID
        self.key = key
        self.keyVersion = keyVersion
    }
}

/// Everything the monitor needs, validated once, before any socket is opened.
///
/// Settings (environment or config file), with their defaults:
///
/// | setting | default | meaning |
/// |---|---|---|
/// | `GATEHOUSE_EMM_GROUP` | `239.255.42.42:5000` | multicast group and port to join (same default as the playout) |
/// | `GATEHOUSE_MULTICAST_INTERFACE` | `127.0.0.1` | interface address or name (`lo`) to join on |
/// | `GATEHOUSE_MONITOR_SOURCE` | unset | source address for a source-specific join (SSM) |
/// | `GATEHOUSE_EMM_PIDS` | none | EMM PIDs to watch besides those the CAT announces (`0x0100,257`) |
/// | `GATEHOUSE_MONITOR_WINDOW_SECONDS` | 10 | the long bandwidth window (1…3600) |
/// | `GATEHOUSE_MONITOR_RCVBUF` | 4194304 | SO_RCVBUF requested, bytes |
/// | `GATEHOUSE_EMM_BITRATE` | 100000 | allocated EMM bandwidth, bit/s (budget guard) |
/// | `GATEHOUSE_MONITOR_BUDGET_WARN_RATIO` | 0.9 | budget guard fires at this share of the allocation |
/// | `GATEHOUSE_PUSHGATEWAY_URL` | unset (no push) | `http://host:port` of a Pushgateway |
/// | `GATEHOUSE_PUSH_INTERVAL_SECONDS` | 5 | push period |
/// | `GATEHOUSE_PUSH_JOB` | `gatehouse_monitor` | `job` of the grouping key |
/// | `GATEHOUSE_INSTANCE` | host name | `instance` of the grouping key |
/// | `GATEHOUSE_MONITOR_KEYS` | none | `dev1=HEX,dev2@3=HEX` (`@N` pins key version N) |
/// | `GATEHOUSE_MONITOR_KEYS_FILE` | unset | file of `device_id hexkey [version]` lines |
/// | `GATEHOUSE_MONITOR_KEYS_REFRESH_SECONDS` | 60 | how often keys are re-read from the store |
/// | `GATEHOUSE_MONITOR_RULES_FILE` | unset | JSON conditions and actions (docs/monitor.md) |
public struct MonitorConfiguration: Sendable {
    /// Multicast group to join. Default `239.255.42.42:5000`.
    public var group: MulticastGroup
    /// Interface address (IPv4) or name to join on. Default `127.0.0.1` (loopback).
    public var interface: String = "127.0.0.1"
    /// Source address for a source-specific (SSM) join; nil joins any source.
    public var source: String?
    /// EMM PIDs watched in addition to those the CAT announces.
    public var extraEMMPIDs: [UInt16] = []
    /// The long bandwidth window in seconds (the short one is always 1 s). Default 10.
    public var windowSeconds: Int = 10
    /// SO_RCVBUF asked for; the kernel may grant less (reported in the log and a metric). Default 4 MiB.
    public var receiveBufferBytes: Int = 4 << 20
    /// Allocated EMM bandwidth in bit/s. Default 100000.
    public var emmBitRate: Int = 100_000
    /// The budget guard fires when the measured EMM rate reaches this share of `emmBitRate`. Default 0.9.
    public var budgetWarningRatio: Double = 0.9
    /// Pushgateway base URL; nil: no push.
    public var pushgatewayURL: String?
    /// Seconds between pushes. Default 5.
    public var pushIntervalSeconds: Double = 5
    /// Grouping key `job`. Default `gatehouse_monitor`.
    public var pushJob: String = "gatehouse_monitor"
    /// Grouping key `instance`. Default the host name.
    public var instance: String
    /// Seconds before a push attempt gives up. Default 2.
    public var pushTimeoutSeconds: Double = 2
    /// Attempts per push (and per delete) before the push is given up. Default 3.
    public var pushAttempts: Int = 3
    /// Keys given in the configuration (never logged).
    public var keys: [MonitorDeviceKey] = []
    /// Seconds between key reloads from the store (when a store is given). Default 60.
    public var keysRefreshSeconds: Double = 60
    /// Conditions and actions.
    public var rules: MonitorRules = MonitorRules()
    /// Replay window per device (`ReplayGuard(window:)`); 64 so carousel repeats count as
    /// repeats rather than as replays.
    public var replayWindow: Int = 64

    public static let defaultGroup = "239.255.42.42:5000"

    public init(group: MulticastGroup? = nil, instance: String? = nil) {
        self.group = group ?? (try! MulticastGroup(parsing: Self.defaultGroup))
        self.instance = instance ?? SystemCall.hostName()
    }

    /// Reads and validates every monitor setting.
    /// - Throws: `GatehouseError(.configuration)` naming the setting (never repeating a key).
    public static func load(from source: ConfigSource) throws -> MonitorConfiguration {
        var c = MonitorConfiguration(
            group: try MulticastGroup(parsing: source.string("GATEHOUSE_EMM_GROUP", default: defaultGroup)),
            instance: source.string("GATEHOUSE_INSTANCE"))
        c.interface = source.string("GATEHOUSE_MULTICAST_INTERFACE", default: "127.0.0.1")
        if let s = source.string("GATEHOUSE_MONITOR_SOURCE") {
            var v4 = in_addr()
            var v6 = in6_addr()
            guard inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1 else {
                throw GatehouseError(.configuration, "GATEHOUSE_MONITOR_SOURCE=\(s): expected a unicast IP address")
            }
            c.source = s
        }
        if let text = source.string("GATEHOUSE_EMM_PIDS") {
            c.extraEMMPIDs = try text.split(separator: ",").map { part in
                let t = part.trimmingCharacters(in: .whitespaces)
                guard let pid = parsePID(t) else {
                    throw GatehouseError(
                        .configuration,
                        "GATEHOUSE_EMM_PIDS=\(text): \(t) is not a PID (0...8190, decimal or 0x hex)")
                }
                return pid
            }
        }
        c.windowSeconds = try source.int("GATEHOUSE_MONITOR_WINDOW_SECONDS", default: 10, in: 1...3600)
        c.receiveBufferBytes = try source.int("GATEHOUSE_MONITOR_RCVBUF", default: 4 << 20, in: 65536...(1 << 30))
        c.emmBitRate = try source.int("GATEHOUSE_EMM_BITRATE", default: 100_000, in: 1...1_000_000_000)
        if let r = source.string("GATEHOUSE_MONITOR_BUDGET_WARN_RATIO") {
            guard let v = Double(r), v > 0, v <= 2 else {
                throw GatehouseError(
                    .configuration,
                    "GATEHOUSE_MONITOR_BUDGET_WARN_RATIO=\(r): expected a number in (0, 2], e.g. 0.9")
            }
            c.budgetWarningRatio = v
        }
        if let url = source.string("GATEHOUSE_PUSHGATEWAY_URL") {
            do { _ = try HTTPURL(parsing: url) } catch {
                throw GatehouseError(
                    .configuration,
                    "GATEHOUSE_PUSHGATEWAY_URL=\(url): expected http://HOST:PORT (https is not supported here)")
            }
            c.pushgatewayURL = url
        }
        c.pushIntervalSeconds = try source.seconds("GATEHOUSE_PUSH_INTERVAL_SECONDS", default: 5)
        guard c.pushIntervalSeconds >= 0.1 else {
            throw GatehouseError(.configuration, "GATEHOUSE_PUSH_INTERVAL_SECONDS: expected at least 0.1")
        }
        c.pushJob = source.string("GATEHOUSE_PUSH_JOB", default: "gatehouse_monitor")
        c.keysRefreshSeconds = try source.seconds("GATEHOUSE_MONITOR_KEYS_REFRESH_SECONDS", default: 60)
        if let list = source.string("GATEHOUSE_MONITOR_KEYS") {
            c.keys += try parseKeyList(list)
        }
        if let path = source.string("GATEHOUSE_MONITOR_KEYS_FILE") {
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
            else {
                throw GatehouseError(.configuration, "GATEHOUSE_MONITOR_KEYS_FILE=\(path): cannot read the file")
            }
            c.keys += try parseKeyFile(text, origin: path)
        }
        if let path = source.string("GATEHOUSE_MONITOR_RULES_FILE") {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw GatehouseError(.configuration, "GATEHOUSE_MONITOR_RULES_FILE=\(path): cannot read the file")
            }
            c.rules = try MonitorRules(json: data, origin: "GATEHOUSE_MONITOR_RULES_FILE=\(path)")
        }
        return c
    }

    static func parsePID(_ text: String) -> UInt16? {
        let value: Int?
        if text.lowercased().hasPrefix("0x") { value = Int(text.dropFirst(2), radix: 16) } else { value = Int(text) }
        guard let value, (0...0x1FFE).contains(value) else { return nil }
        return UInt16(value)
    }

    /// `dev1=HEX,dev2@3=HEX`. Errors name the device, never the key.
    static func parseKeyList(_ text: String) throws -> [MonitorDeviceKey] {
        try text.split(separator: ",").map { entry in
            guard let eq = entry.firstIndex(of: "=") else {
                throw GatehouseError(
                    .configuration,
                    "GATEHOUSE_MONITOR_KEYS: an entry has no '=': expected device_id=hexkey[,…]")
            }
            return try makeKey(
                String(entry[..<eq]).trimmingCharacters(in: .whitespaces),
                String(entry[entry.index(after: eq)...]).trimmingCharacters(in: .whitespaces), version: nil,
                setting: "GATEHOUSE_MONITOR_KEYS")
        }
    }

    /// `device_id hexkey [version]` lines; `#` comments and blank lines ignored.
    static func parseKeyFile(_ text: String, origin: String) throws -> [MonitorDeviceKey] {
        var out: [MonitorDeviceKey] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            let setting = "GATEHOUSE_MONITOR_KEYS_FILE=\(origin) line \(index + 1)"
            guard fields.count == 2 || fields.count == 3 else {
                throw GatehouseError(.configuration, "\(setting): expected `device_id hexkey [version]`")
            }
            var version: UInt16?
            if fields.count == 3 {
                guard let v = UInt16(fields[2]) else {
                    throw GatehouseError(.configuration, "\(setting): key version must be 0...65535")
                }
                version = v
            }
            out.append(try makeKey(fields[0], fields[1], version: version, setting: setting))
        }
        return out
    }

    private static func makeKey(_ idText: String, _ hex: String, version: UInt16?, setting: String) throws
        -> MonitorDeviceKey
    {
        var deviceID = idText
        var keyVersion = version
        if let at = idText.lastIndex(of: "@") {
            deviceID = String(idText[..<at])
            guard let v = UInt16(idText[idText.index(after: at)...]) else {
                throw GatehouseError(
                    .configuration, "\(setting): device \(deviceID): key version after @ must be 0...65535")
            }
            keyVersion = v
        }
        guard !deviceID.isEmpty, deviceID.utf8.count <= 64 else {
            throw GatehouseError(.configuration, "\(setting): a device id must be 1 to 64 bytes")
        }
        do {
            return MonitorDeviceKey(deviceID: deviceID, key: try SymmetricKey(hex: hex), keyVersion: keyVersion)
        } catch {
            throw GatehouseError(
                .configuration,
                "\(setting): device \(deviceID): the key must be 32 or 64 hex digits (AES-128/256)")
        }
    }
}
