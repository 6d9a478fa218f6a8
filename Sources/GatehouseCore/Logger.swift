import Foundation
import Synchronization

/// Severity of a log line, ordered from the most verbose to the most severe.
public enum LogLevel: Int, Sendable, Comparable, CustomStringConvertible {
    case trace, debug, info, notice, warning, error, critical

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch self {
        case .trace: "trace"
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        case .critical: "critical"
        }
    }

    /// Parses `trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical` (case-insensitive).
    public init?(name: String) {
        switch name.lowercased() {
        case "trace": self = .trace
        case "debug": self = .debug
        case "info": self = .info
        case "notice": self = .notice
        case "warning", "warn": self = .warning
        case "error": self = .error
        case "critical": self = .critical
        default: return nil
        }
    }
}

/// Where log lines go. Implementations must be safe to call from any thread.
public protocol LogSink: Sendable {
    func write(_ line: String)
}

/// Writes each line to standard error, one `write(2)` per line so lines never interleave.
public struct StandardErrorSink: LogSink {
    public init() {}
    public func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(2, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }
}

/// Keeps lines in memory; for tests that check what was (and was not) logged.
public final class MemorySink: LogSink {
    private let storage = Mutex<[String]>([])
    public init() {}
    public func write(_ line: String) { storage.withLock { $0.append(line) } }
    public var lines: [String] { storage.withLock { $0 } }
}

/// A structured logger: one JSON object a line with `ts`, `level`, `label`, `msg` and
/// dot-named metadata. Libraries receive a logger; they never create their own.
///
/// - Important: the message should be a constant; variable data goes in metadata.
///   Never put key material in either: there is no scrubbing here.
public struct Logger: Sendable {
    public var label: String
    public var minimumLevel: LogLevel
    public var metadata: [String: String]
    private let sink: any LogSink

    public init(label: String, minimumLevel: LogLevel = .info, sink: any LogSink = StandardErrorSink(),
        metadata: [String: String] = [:])
    {
        self.label = label
        self.minimumLevel = minimumLevel
        self.sink = sink
        self.metadata = metadata
    }

    /// A logger that drops everything (for benchmarks and tools that print their own output).
    public static var disabled: Logger { Logger(label: "disabled", minimumLevel: .critical, sink: NullSink()) }

    /// A copy with another label, keeping the sink, level and metadata.
    public func with(label: String) -> Logger {
        var copy = self
        copy.label = label
        return copy
    }

    public func isEnabled(_ level: LogLevel) -> Bool { level >= minimumLevel }

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String,
        _ extra: @autoclosure () -> [String: String] = [:])
    {
        guard level >= minimumLevel else { return }
        // Extra metadata wins over the logger's; the four head fields win over both.
        var fields = extra()
        for (key, value) in metadata where fields[key] == nil { fields[key] = value }
        var line = JSONLine.Writer(capacity: 256)
        line.field("ts", Logger.timestamp())
        line.field("level", level.description)
        line.field("label", label)
        line.field("msg", message())
        for key in fields.keys.sorted() where !JSONLine.headKeys.contains(key) { line.field(key, fields[key]!) }
        sink.write(line.finish())
    }

    public func trace(_ m: @autoclosure () -> String, _ md: @autoclosure () -> [String: String] = [:]) {
        log(.trace, m(), md())
    }
    public func debug(_ m: @autoclosure () -> String, _ md: @autoclosure () -> [String: String] = [:]) {
        log(.debug, m(), md())
    }
    public func info(_ m: @autoclosure () -> String, _ md: @autoclosure () -> [String: String] = [:]) {
        log(.info, m(), md())
    }
    public func notice(_ m: @autoclosure () -> String, _ md: @autoclosure () -> [String: String] = [:]) {
        log(.notice, m(), md())
    }
    public func warning(_ m: @autoclosure () -> String, _ md: @autoclosure () -> [String: String] = [:]) {
        log(.warning, m(), md())
    }
    public func error(_ m: @autoclosure () -> String, _ md: @autoclosure () -> [String: String] = [:]) {
        log(.error, m(), md())
    }

    /// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), written digit by digit: this runs for
    /// every log line, including the access log of every HTTP request.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = time_t(now.tv_sec)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = Int(now.tv_nsec) / 1_000_000
        var bytes = [UInt8](repeating: 0, count: 24)
        func put(_ value: Int, at offset: Int, width: Int) {
            var v = value
            for i in stride(from: offset + width - 1, through: offset, by: -1) {
                bytes[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            }
        }
        put(Int(parts.tm_year) + 1900, at: 0, width: 4)
        bytes[4] = UInt8(ascii: "-")
        put(Int(parts.tm_mon) + 1, at: 5, width: 2)
        bytes[7] = UInt8(ascii: "-")
        put(Int(parts.tm_mday), at: 8, width: 2)
        bytes[10] = UInt8(ascii: "T")
        put(Int(parts.tm_hour), at: 11, width: 2)
        bytes[13] = UInt8(ascii: ":")
        put(Int(parts.tm_min), at: 14, width: 2)
        bytes[16] = UInt8(ascii: ":")
        put(Int(parts.tm_sec), at: 17, width: 2)
        bytes[19] = UInt8(ascii: ".")
        put(millis, at: 20, width: 3)
        bytes[23] = UInt8(ascii: "Z")
        return String(decoding: bytes, as: UTF8.self)
    }
}

struct NullSink: LogSink {
    func write(_ line: String) {}
}

/// Minimal, allocation-light JSON encoding of a flat string map with stable key order.
public enum JSONLine {
    /// Keys written first, in this order; the rest follow sorted so lines are easy to diff.
    static let headKeys: Set<String> = ["ts", "level", "label", "msg"]
    private static let headOrder = ["ts", "level", "label", "msg"]

    public static func encode(_ object: [String: String]) -> String {
        var line = Writer(capacity: 256)
        for key in headOrder { if let value = object[key] { line.field(key, value) } }
        for key in object.keys.sorted() where !headKeys.contains(key) { line.field(key, object[key]!) }
        return line.finish()
    }

    /// A JSON string literal for `s`, escaping quotes, backslashes and control characters.
    public static func quote(_ s: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 2)
        appendQuoted(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `s` as a JSON string literal. Runs of bytes that need no escape are copied
    /// whole; only `"`, `\\` and bytes below 0x20 are escaped (UTF-8 passes through).
    public static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = s
        text.withUTF8 { bytes in
            var runStart = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                guard byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                runStart = index + 1
                switch byte {
                case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                default:
                    let digits = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [
                        UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                        digits[Int(byte >> 4)], digits[Int(byte & 0x0F)],
                    ])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<bytes.count]))
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Builds one flat JSON object field by field into a byte buffer.
    struct Writer {
        private var bytes: [UInt8]

        init(capacity: Int) {
            bytes = [UInt8(ascii: "{")]
            bytes.reserveCapacity(capacity)
        }

        mutating func field(_ key: String, _ value: String) {
            if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
            JSONLine.appendQuoted(key, to: &bytes)
            bytes.append(UInt8(ascii: ":"))
            JSONLine.appendQuoted(value, to: &bytes)
        }

        mutating func finish() -> String {
            bytes.append(UInt8(ascii: "}"))
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
