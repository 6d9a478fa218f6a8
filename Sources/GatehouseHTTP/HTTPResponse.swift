import Foundation
import GatehouseCore

/// What the application answers: a status, header fields and the body bytes.
/// The server adds `Content-Length`, `Date` and `X-Request-Id` itself.
public struct HTTPResponse: Sendable, Equatable {
    public var status: HTTPStatus
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Fields added to this request's access-log line (`http.request`), so a handler can
    /// record what it did (the request id it accepted) without a log line of its own.
    /// Never put secrets here.
    public var accessLog: [String: String] = [:]
    /// Set by `deferred(_:)`: the real answer comes later through this object.
    public var deferred: DeferredResponse?

    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// An answer the handler will give later (`DeferredResponse.resolve`), from any thread:
    /// the server parks the connection meanwhile without holding a thread.
    public static func deferred(_ deferred: DeferredResponse) -> HTTPResponse {
        var response = HTTPResponse()
        response.deferred = deferred
        return response
    }

    /// This response, or the answer it defers to (waiting for it): for callers of a router
    /// that are not the server.
    public func resolved() -> HTTPResponse { deferred?.wait() ?? self }

    /// A JSON response from bytes the caller already encoded.
    public static func json(status: HTTPStatus = .ok, bytes: [UInt8], headers: HTTPHeaders = [:]) -> HTTPResponse {
        var headers = headers
        headers.set("Content-Type", "application/json")
        return HTTPResponse(status: status, headers: headers, body: bytes)
    }

    /// A JSON response encoding `value` with sorted keys (stable output for clients and tests).
    /// - Throws: `GatehouseError.internal` when the value cannot be encoded (a programming error,
    ///   answered as a 500 by the router).
    public static func json<T: Encodable>(_ value: T, status: HTTPStatus = .ok, headers: HTTPHeaders = [:])
        throws(GatehouseError) -> HTTPResponse
    {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        do {
            return json(status: status, bytes: Array(try encoder.encode(value)), headers: headers)
        } catch {
            throw GatehouseError(.internal, "cannot encode the response as JSON: \(error)")
        }
    }

    /// A plain-text response (metrics, health checks).
    public static func text(_ text: String, status: HTTPStatus = .ok, contentType: String = "text/plain; charset=utf-8")
        -> HTTPResponse
    {
        HTTPResponse(status: status, headers: ["Content-Type": contentType], body: Array(text.utf8))
    }
}
