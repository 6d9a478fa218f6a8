import Foundation

/// Where settings come from: the process environment, over an optional config file
/// that uses the same keys (`KEY=VALUE` lines, `#` comments). The environment wins,
/// so one variable can override a file shipped with a deployment.
public struct ConfigSource: Sendable {
    public private(set) var values: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, fileValues: [String: String] = [:])
    {
        var merged = fileValues
        for (key, value) in environment where key.hasPrefix("GATEHOUSE_") { merged[key] = value }
        self.values = merged
    }

    /// Reads `path` as a config file and layers `environment` over it.
    /// - Throws: `GatehouseError.configuration` naming the file and line when a line is malformed.
    public static func load(file path: String?, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> ConfigSource
    {
        guard let path else { return ConfigSource(environment: environment) }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw GatehouseError(.configuration, "cannot read config file \(path): check the path and permissions")
        }
        return ConfigSource(environment: environment, fileValues: try parse(text, origin: path))
    }

    /// Parses `KEY=VALUE` lines; blank lines and lines starting with `#` are ignored,
    /// a value may be wrapped in double quotes.
    public static func parse(_ text: String, origin: String) throws -> [String: String] {
        var result: [String: String] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw GatehouseError(.configuration, "\(origin):\(index + 1): expected KEY=VALUE")
            }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
            }
            guard key.hasPrefix("GATEHOUSE_") else {
                throw GatehouseError(.configuration, "\(origin):\(index + 1): unknown setting \(key) (settings start with GATEHOUSE_)")
            }
            result[key] = value
        }
        return result
    }

    public func string(_ key: String) -> String? { values[key].flatMap { $0.isEmpty ? nil : $0 } }

    public func string(_ key: String, default value: String) -> String { string(key) ?? value }

    /// An integer setting within `range`.
    /// - Throws: `GatehouseError.configuration` naming the setting when it is not a whole number in range.
    public func int(_ key: String, default value: Int, in range: ClosedRange<Int> = Int.min...Int.max) throws -> Int {
        guard let text = string(key) else { return value }
        guard let parsed = Int(text), range.contains(parsed) else {
            throw GatehouseError(.configuration, "\(key)=\(text): expected a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return parsed
    }

    /// A number of seconds (may be fractional), at least zero.
    public func seconds(_ key: String, default value: Double) throws -> Double {
        guard let text = string(key) else { return value }
        guard let parsed = Double(text), parsed >= 0, parsed.isFinite else {
            throw GatehouseError(.configuration, "\(key)=\(text): expected a number of seconds, zero or more")
        }
        return parsed
    }

    public func bool(_ key: String, default value: Bool) throws -> Bool {
        guard let text = string(key)?.lowercased() else { return value }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw GatehouseError(.configuration, "\(key)=\(text): expected true or false")
        }
    }
}
