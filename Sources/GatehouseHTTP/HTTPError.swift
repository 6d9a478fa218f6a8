import GatehouseCore

extension GatehouseError.Code {
    /// The caller is authenticated but its token lacks the scope the route needs (403).
    public static let forbidden = GatehouseError.Code("forbidden")
    /// The request body is over the configured limit (413).
    public static let payloadTooLarge = GatehouseError.Code("payload_too_large")
    /// No route has this path (404 with this code, so clients can tell it from a missing resource).
    public static let routeNotFound = GatehouseError.Code("route_not_found")
    /// The path exists but not for this method (405).
    public static let methodNotAllowed = GatehouseError.Code("method_not_allowed")
    /// The body is not in a media type the route accepts (415).
    public static let unsupportedMediaType = GatehouseError.Code("unsupported_media_type")
}

/// An error ready to be answered: the status, the code and message shown to the caller,
/// the offending field if any, and extra header fields (`Allow`, `Retry-After`,
/// `WWW-Authenticate`). Route handlers may throw it for full control; any other error
/// goes through `HTTPError.init(mapping:)`, the one place errors become statuses.
public struct HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: HTTPStatus
    public var code: GatehouseError.Code
    /// Safe to show to the caller: no secrets, no internals.
    public var message: String
    /// The request field at fault (`device_id`, `entitlement.end`), when there is one.
    public var field: String?
    public var headers: HTTPHeaders

    public init(
        _ status: HTTPStatus, code: GatehouseError.Code, message: String, field: String? = nil,
        headers: HTTPHeaders = [:]
    ) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    /// How long a client should wait before retrying after a 503, in seconds.
    public static let defaultRetryAfterSeconds = 5

    /// A 400 (no field: the request is malformed) or 422 (a named field has a bad value).
    public static func invalidInput(_ message: String, field: String? = nil) -> HTTPError {
        HTTPError(
            field == nil ? .badRequest : .unprocessableContent, code: .invalidInput, message: message,
            field: field)
    }

    public static func notFound(_ message: String) -> HTTPError {
        HTTPError(.notFound, code: .notFound, message: message)
    }

    /// A 503 with `Retry-After`.
    public static func unavailable(_ message: String, retryAfterSeconds: Int = defaultRetryAfterSeconds) -> HTTPError {
        HTTPError(
            .serviceUnavailable, code: .unavailable, message: message,
            headers: ["Retry-After": String(retryAfterSeconds)])
    }

    /// The 401 every authentication failure gets; one message, so it tells an attacker
    /// nothing about which tokens exist.
    public static let unauthenticated = HTTPError(
        .unauthorized, code: .authentication,
        message: "send a valid API token as 'Authorization: Bearer <token>'",
        headers: ["WWW-Authenticate": "Bearer realm=\"gatehouse\""])

    /// A 403 naming the scope the route needs.
    public static func forbidden(scope: Scope) -> HTTPError {
        HTTPError(
            .forbidden, code: .forbidden, message: "this token lacks the '\(scope.rawValue)' scope",
            headers: [
                "WWW-Authenticate":
                    "Bearer realm=\"gatehouse\", error=\"insufficient_scope\", scope=\"\(scope.rawValue)\""
            ])
    }

    /// The 413 for a body over `limit` bytes.
    public static func payloadTooLarge(limit: Int) -> HTTPError {
        HTTPError(
            .payloadTooLarge, code: .payloadTooLarge,
            message: "the request body is larger than the limit of \(limit) bytes")
    }

    /// The answer to an error we did not expect: a 500 that says only to quote the request id.
    public static let internalError = HTTPError(
        .internalServerError, code: .internal,
        message: "internal error; the request id identifies the details in the server log")

    /// Maps any error to what the caller sees, in one place:
    ///
    /// | error | status |
    /// |---|---|
    /// | `HTTPError` | its own |
    /// | `invalid_input` | 400 |
    /// | `not_found` | 404 |
    /// | `conflict` | 409 |
    /// | `authentication` | 401 with `WWW-Authenticate: Bearer` |
    /// | `forbidden` | 403 |
    /// | `payload_too_large` | 413 |
    /// | `unavailable` | 503 with `Retry-After: retryAfterSeconds` |
    /// | anything else | 500; `isInternal` is true and the caller must log the detail |
    public init(mapping error: any Error, retryAfterSeconds: Int = defaultRetryAfterSeconds) {
        if let error = error as? HTTPError {
            self = error
            return
        }
        guard let error = error as? GatehouseError else {
            self = .internalError
            return
        }
        switch error.code {
        case .invalidInput: self = .invalidInput(error.message)
        case .notFound: self = .notFound(error.message)
        case .conflict: self = HTTPError(.conflict, code: .conflict, message: error.message)
        case .authentication: self = .unauthenticated
        case .forbidden: self = HTTPError(.forbidden, code: .forbidden, message: error.message)
        case .payloadTooLarge: self = HTTPError(.payloadTooLarge, code: .payloadTooLarge, message: error.message)
        case .unsupportedMediaType:
            self = HTTPError(.unsupportedMediaType, code: .unsupportedMediaType, message: error.message)
        case .unavailable: self = .unavailable(error.message, retryAfterSeconds: retryAfterSeconds)
        default: self = .internalError
        }
    }

    /// The answer to a request whose handler failed with `error` (thrown, or reported later
    /// to a `DeferredResponse`): mapped as above; the detail of a 500 goes to `logger` only,
    /// with the request id and `route`, never to the client.
    public static func answer(
        to error: any Error, requestID: String, route: String, logger: Logger,
        retryAfterSeconds: Int = defaultRetryAfterSeconds
    ) -> HTTPResponse {
        let mapped = HTTPError(mapping: error, retryAfterSeconds: retryAfterSeconds)
        if mapped.isInternal {
            // The detail may name internals (SQL, file paths): log only, never answer it.
            logger.error(
                "http.handler_failed",
                ["http.request_id": requestID, "http.route": route, "error": String(describing: error)])
        }
        return mapped.response(requestID: requestID)
    }

    /// Whether this is the generic 500 whose detail belongs only in the log.
    public var isInternal: Bool { status.code >= 500 && code == .internal }

    /// The response: `{"error": {"code", "message", "field"?, "request_id"}}` plus the
    /// extra header fields. The server adds `X-Request-Id`.
    public func response(requestID: String) -> HTTPResponse {
        var json = "{\"error\":{\"code\":" + JSONLine.quote(code.name) + ",\"message\":" + JSONLine.quote(message)
        if let field { json += ",\"field\":" + JSONLine.quote(field) }
        json += ",\"request_id\":" + JSONLine.quote(requestID) + "}}"
        return .json(status: status, bytes: Array(json.utf8), headers: headers)
    }
}
