import Foundation
import GatehouseCore

/// A parsed JSON document, kept as values so request validation can name the exact
/// field that is wrong (a `Decodable` model only says "data corrupted").
public enum JSONValue: Sendable, Equatable, Decodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// Parses a request body.
    /// - Throws: `ValidationError` with field `body` when the bytes are not one JSON object.
    public static func parseObject(_ bytes: [UInt8]) throws(ValidationError) -> [String: JSONValue] {
        guard !bytes.isEmpty else { throw ValidationError(field: "body", "the request needs a JSON object body") }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw ValidationError(field: "body", "the body is not valid UTF-8")
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw ValidationError(field: "body", "the body is not valid JSON")
        }
        guard case .object(let object) = value else {
            throw ValidationError(field: "body", "the body must be a JSON object")
        }
        return object
    }

    /// Renders compact JSON with sorted keys (stable output for hashing and tests).
    public var rendered: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n):
            if n.rounded() == n, abs(n) < 1e15 { return String(Int64(n)) }
            return String(n)
        case .string(let s): return JSONLineQuote.quote(s)
        case .array(let items): return "[" + items.map(\.rendered).joined(separator: ",") + "]"
        case .object(let fields):
            return "{" + fields.keys.sorted().map { JSONLineQuote.quote($0) + ":" + fields[$0]!.rendered }
                .joined(separator: ",") + "}"
        }
    }
}

enum JSONLineQuote {
    static func quote(_ s: String) -> String { JSONLine.quote(s) }
}

/// A request field that is missing or wrong. The HTTP layer answers it as a 4xx JSON
/// error naming `field`; nothing is stored.
public struct ValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String
    public init(field: String, _ message: String) {
        self.field = field
        self.message = message
    }
    public var description: String { "\(field): \(message)" }
}

/// Typed access to the fields of a JSON object, each failure naming the field.
public struct FieldReader: Sendable {
    public let object: [String: JSONValue]
    public init(_ object: [String: JSONValue]) { self.object = object }

    public func has(_ key: String) -> Bool {
        if let value = object[key], value != .null { return true }
        return false
    }

    public func string(_ key: String) throws(ValidationError) -> String? {
        switch object[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: throw ValidationError(field: key, "must be a string")
        }
    }

    public func requiredString(_ key: String) throws(ValidationError) -> String {
        guard let value = try string(key) else { throw ValidationError(field: key, "is required") }
        return value
    }

    public func integer(_ key: String, in range: ClosedRange<Int64>) throws(ValidationError) -> Int64? {
        switch object[key] {
        case nil, .null?: return nil
        case .number(let n)?:
            // Below 2^63 in magnitude first: converting a larger Double to Int64 traps.
            guard n.rounded() == n, abs(n) < 9.2e18, n >= Double(range.lowerBound), n <= Double(range.upperBound) else {
                throw ValidationError(field: key, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return Int64(n)
        default: throw ValidationError(field: key, "must be a number")
        }
    }

    public func bool(_ key: String) throws(ValidationError) -> Bool? {
        switch object[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        default: throw ValidationError(field: key, "must be true or false")
        }
    }

    public func stringArray(_ key: String) throws(ValidationError) -> [String]? {
        switch object[key] {
        case nil, .null?: return nil
        case .array(let items)?:
            var out: [String] = []
            for (index, item) in items.enumerated() {
                guard case .string(let s) = item else { throw ValidationError(field: "\(key)[\(index)]", "must be a string") }
                out.append(s)
            }
            return out
        default: throw ValidationError(field: key, "must be an array of strings")
        }
    }

    public func object(_ key: String) throws(ValidationError) -> FieldReader? {
        switch object[key] {
        case nil, .null?: return nil
        case .object(let fields)?: return FieldReader(fields)
        default: throw ValidationError(field: key, "must be an object")
        }
    }

    /// Refuses fields the endpoint does not know, so a typo is not silently ignored.
    public func rejectUnknown(allowed: Set<String>) throws(ValidationError) {
        for key in object.keys.sorted() where !allowed.contains(key) {
            throw ValidationError(field: key, "is not a field of this request")
        }
    }
}
