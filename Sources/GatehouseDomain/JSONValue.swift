import Foundation

/// A parsed JSON document, kept as values so request validation can name the exact
/// field that is wrong (a `Decodable` model only says "data corrupted").
public enum JSONValue: Sendable, Equatable, Decodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Decodes any JSON value. `parseObject` no longer goes through this (it tried five
    /// types in turn for every value); it stays for callers that embed a `JSONValue` in a
    /// `Decodable` type, and as the reference the parser is tested against.
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
    ///
    /// A strict RFC 8259 parser over the bytes (`JSONScanner`); a leading UTF-8 byte order
    /// mark is skipped, as `JSONDecoder` did. Compared with the `JSONDecoder` it replaced it
    /// also refuses trailing commas, nesting deeper than 64, text that is UTF-16 or UTF-32
    /// rather than UTF-8, and a key that appears twice in one object (a repeated key would
    /// silently mean one of two values; the API refused it after parsing anyway).
    /// - Throws: `ValidationError` with field `body` when the bytes are not one JSON object,
    ///   or with the key as the field when a key appears twice in one object.
    public static func parseObject(_ bytes: [UInt8]) throws(ValidationError) -> [String: JSONValue] {
        guard !bytes.isEmpty else { throw ValidationError(field: "body", "the request needs a JSON object body") }
        let parsed: Result<JSONValue, JSONSyntaxError>? = bytes.withUnsafeBufferPointer { buffer in
            guard UTF8Validation.isValid(buffer) else { return nil }
            let hasByteOrderMark = buffer.count >= 3 && buffer[0] == 0xEF && buffer[1] == 0xBB && buffer[2] == 0xBF
            var scanner = JSONScanner(buffer, from: hasByteOrderMark ? 3 : 0)
            return Result { () throws(JSONSyntaxError) in
                let value = try scanner.readValue()
                scanner.skipWhitespace()
                guard scanner.isAtEnd else { throw .invalid }
                guard case .object = value, let key = scanner.firstDuplicateKey else { return value }
                throw .duplicateKey(key)
            }
        }
        switch parsed {
        case nil: throw ValidationError(field: "body", "the body is not valid UTF-8")
        case .failure(.tooDeep)?:
            throw ValidationError(field: "body", "the body nests arrays and objects more than \(JSONScanner.maximumDepth) deep")
        case .failure(.duplicateKey(let key))?:
            // The message starts with the key, as the API's own check worded it before.
            throw ValidationError(field: key, "\(key) appears more than once in one object")
        case .failure(.invalid)?: throw ValidationError(field: "body", "the body is not valid JSON")
        case .success(.object(let object))?: return object
        case .success?: throw ValidationError(field: "body", "the body must be a JSON object")
        }
    }

    /// Renders compact JSON with sorted keys (stable output for hashing and tests).
    public var rendered: String { String(decoding: renderedBytes, as: UTF8.self) }

    /// `rendered` as UTF-8 bytes, for a response body without the detour through a String.
    public var renderedBytes: [UInt8] {
        var writer = JSONByteWriter(capacity: 256)
        writer.appendRendered(self)
        return writer.bytes
    }
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
