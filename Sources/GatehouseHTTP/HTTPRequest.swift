import Foundation
import GatehouseCore
import Synchronization

/// One HTTP request as the application sees it: fully received (the body is at most
/// the configured limit), decoded, and tagged with the request id every response carries.
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    /// The path, still percent-encoded, without the query string.
    public var path: String
    /// The decoded path segments; route patterns match against these.
    public var pathSegments: [String]
    /// Query items in order, decoded (`+` is a space).
    public var queryItems: [(name: String, value: String)]
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// The client's numeric IP address, when libmicrohttpd knows it.
    public var remoteAddress: String?
    /// Echoed from a sane `X-Request-Id` header, or generated.
    public var requestID: String
    /// Values of `{name}` segments in the matched route pattern (set by `Router`).
    public var pathParameters: [String: String] = [:]
    /// Who called, when the matched route required a token (set by `Router`).
    public var caller: AuthenticatedCaller?

    public init(
        method: HTTPMethod, target: String, headers: HTTPHeaders = [:], body: [UInt8] = [],
        remoteAddress: String? = nil, requestID: String = RequestID.generate()
    ) {
        let parsed = RequestTarget(raw: target)
        self.method = method
        self.path = parsed.rawPath
        self.pathSegments = parsed.segments
        self.queryItems = parsed.queryItems
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
        self.requestID = requestID
    }

    /// The first value of query parameter `name`.
    public func query(_ name: String) -> String? { queryItems.first { $0.name == name }?.value }

    /// The first values of all query parameters by name.
    public var queryParameters: [String: String] {
        var result: [String: String] = [:]
        for item in queryItems where result[item.name] == nil { result[item.name] = item.value }
        return result
    }

    /// Decodes the body as JSON into `type`.
    /// - Throws: `HTTPError` 415 when the content type is not JSON, 400 when the body is
    ///   not valid JSON, 422 naming the field when a value is missing or of the wrong type.
    public func decodeJSON<T: Decodable>(_ type: T.Type, using decoder: JSONDecoder = JSONDecoder())
        throws(HTTPError) -> T
    {
        if let contentType = headers["Content-Type"]?.lowercased(),
            !(contentType.hasPrefix("application/json") || contentType.contains("+json"))
        {
            throw HTTPError(
                .unsupportedMediaType, code: .unsupportedMediaType,
                message: "send the body as application/json")
        }
        do {
            return try decoder.decode(T.self, from: Data(body))
        } catch let error as DecodingError {
            throw HTTPError(decoding: error)
        } catch {
            throw HTTPError(.badRequest, code: .invalidInput, message: "the body is not valid JSON")
        }
    }
}

extension HTTPError {
    /// Turns a `DecodingError` into a caller-facing error that names the field, without
    /// echoing any of the body (it may carry key material).
    init(decoding error: DecodingError) {
        func fieldPath(_ path: [any CodingKey]) -> String? {
            let parts = path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            guard !parts.isEmpty else { return nil }
            return parts.reduce("") { result, part in
                part.hasPrefix("[") || result.isEmpty ? result + part : result + "." + part
            }
        }
        switch error {
        case .keyNotFound(let key, let context):
            let field = fieldPath(context.codingPath + [key])
            self.init(.unprocessableContent, code: .invalidInput, message: "a required field is missing", field: field)
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            self.init(
                .unprocessableContent, code: .invalidInput, message: "a field has the wrong type",
                field: fieldPath(context.codingPath))
        case .dataCorrupted(let context) where !context.codingPath.isEmpty:
            self.init(
                .unprocessableContent, code: .invalidInput, message: "a field has an invalid value",
                field: fieldPath(context.codingPath))
        default:
            self.init(.badRequest, code: .invalidInput, message: "the body is not valid JSON")
        }
    }
}

/// Request ids: what a client may send, and what we generate otherwise.
public enum RequestID {
    /// A new id: 32 lowercase hex digits, a random per-process prefix then a counter.
    /// Unique without a system call per request (it correlates log lines and responses;
    /// it is not a secret).
    public static func generate() -> String {
        let sequence = counter.add(1, ordering: .relaxed).newValue
        var bytes = [UInt8](repeating: 0, count: 32)
        writeHex(processPrefix, into: &bytes, at: 0)
        writeHex(sequence, into: &bytes, at: 16)
        return String(decoding: bytes, as: UTF8.self)
    }

    private static let processPrefix: UInt64 = {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()
    private static let counter = Atomic<UInt64>(0)

    private static func writeHex(_ value: UInt64, into bytes: inout [UInt8], at offset: Int) {
        let digits: StaticString = "0123456789abcdef"
        var v = value
        for index in stride(from: offset + 15, through: offset, by: -1) {
            bytes[index] = digits.utf8Start[Int(v & 0xF)]
            v >>= 4
        }
    }

    /// Whether a client-sent id is safe to echo into headers and logs: 1 to 128 of
    /// `A-Z a-z 0-9 - _ . :` (nothing that could split a header or a log line).
    public static func isSane(_ value: String) -> Bool {
        guard (1...128).contains(value.utf8.count) else { return false }
        return value.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: ":"):
                true
            default: false
            }
        }
    }
}
