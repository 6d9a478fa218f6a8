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
        var object: [String: String] = metadata
        for (key, value) in extra() { object[key] = value }
        object["ts"] = Logger.timestamp()
        object["level"] = level.description
        object["label"] = label
        object["msg"] = message()
        sink.write(JSONLine.encode(object))
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

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = time_t(now.tv_sec)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = Int(now.tv_nsec) / 1_000_000
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }
}

struct NullSink: LogSink {
    func write(_ line: String) {}
}

/// Minimal, allocation-light JSON encoding of a flat string map with stable key order.
public enum JSONLine {
    public static func encode(_ object: [String: String]) -> String {
        // ts, level, label, msg first; the rest sorted so lines are easy to diff.
        let head = ["ts", "level", "label", "msg"]
        var out = "{"
        var first = true
        func append(_ key: String, _ value: String) {
            if !first { out += "," }
            first = false
            out += quote(key)
            out += ":"
            out += quote(value)
        }
        for key in head { if let value = object[key] { append(key, value) } }
        for key in object.keys.sorted() where !head.contains(key) { append(key, object[key]!) }
        out += "}"
        return out
    }

    /// A JSON string literal for `s`, escaping quotes, backslashes and control characters.
    public static func quote(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return out
    }
}
