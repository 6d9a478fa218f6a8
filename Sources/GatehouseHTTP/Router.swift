import Foundation
import GatehouseCore

/// Maps method and path to a handler, enforces each route's access rule, and turns thrown
/// errors into JSON error responses (through `HTTPError.init(mapping:)`).
///
/// Patterns are literal segments and `{name}` parameters: `/devices/{id}/entitlements`.
/// Where two patterns match, the one with a literal segment earlier wins, so
/// `/devices/search` beats `/devices/{id}`. `HEAD` is answered by the `GET` route
/// (libmicrohttpd drops the body). Unknown paths get 404, a known path with another
/// method 405 with `Allow`.
public struct Router: Sendable {
    /// A route handler. It runs on a libmicrohttpd worker thread and may block (database,
    /// bus): see `HTTPServer`. Throw `HTTPError` for full control over the answer, or
    /// any error for the standard mapping.
    public typealias Handler = @Sendable (HTTPRequest) throws -> HTTPResponse

    /// Who may call a route.
    public enum Access: Sendable, Equatable {
        /// No token needed (health, readiness, metrics, the OpenAPI document).
        case `public`
        /// A bearer token with this scope.
        case requires(Scope)
    }

    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    struct Route: Sendable {
        var method: HTTPMethod
        var pattern: String
        var segments: [Segment]
        var access: Access
        var handler: Handler
    }

    private var routes: [Route] = []
    private let authenticator: (any TokenAuthenticator)?
    private let logger: Logger
    /// `Retry-After` of the 503 a handler's "retry later" error (`.unavailable`) becomes.
    public var retryAfterSeconds = HTTPError.defaultRetryAfterSeconds

    /// - Parameters:
    ///   - authenticator: checks bearer tokens; nil means every non-public route answers 401
    ///     (fail closed rather than open when tokens are not configured).
    ///   - logger: receives the detail of unexpected errors (the caller sees only a request id).
    public init(authenticator: (any TokenAuthenticator)?, logger: Logger) {
        self.authenticator = authenticator
        self.logger = logger
    }

    /// Adds a route.
    /// - Important: the pattern is code, not input: a malformed pattern (not starting with
    ///   `/`, an empty or duplicate `{}` name) stops the program.
    public mutating func add(_ method: HTTPMethod, _ pattern: String, access: Access, _ handler: @escaping Handler) {
        precondition(pattern.hasPrefix("/"), "route pattern must start with '/': \(pattern)")
        var names: Set<String> = []
        let segments: [Segment] = pattern.split(separator: "/").map { part in
            if part.hasPrefix("{") && part.hasSuffix("}") {
                let name = String(part.dropFirst().dropLast())
                precondition(!name.isEmpty && names.insert(name).inserted, "bad parameter in route pattern \(pattern)")
                return .parameter(name)
            }
            return .literal(String(part))
        }
        routes.append(Route(method: method, pattern: pattern, segments: segments, access: access, handler: handler))
    }

    public mutating func get(_ pattern: String, access: Access, _ handler: @escaping Handler) {
        add(.get, pattern, access: access, handler)
    }
    public mutating func post(_ pattern: String, access: Access, _ handler: @escaping Handler) {
        add(.post, pattern, access: access, handler)
    }
    public mutating func put(_ pattern: String, access: Access, _ handler: @escaping Handler) {
        add(.put, pattern, access: access, handler)
    }
    public mutating func delete(_ pattern: String, access: Access, _ handler: @escaping Handler) {
        add(.delete, pattern, access: access, handler)
    }

    /// Adds a route whose handler is async (it awaits the store or the bus).
    ///
    /// The libmicrohttpd worker thread blocks while a `Task` runs the handler. That is safe
    /// because these are libmicrohttpd's own threads, never the cooperative pool's, and
    /// the handler never needs a libmicrohttpd thread to finish; the cost is one worker
    /// held per request in flight, exactly as for a blocking synchronous handler.
    public mutating func add(
        _ method: HTTPMethod, _ pattern: String, access: Access,
        _ handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse
    ) {
        add(method, pattern, access: access) { request in try AsyncBridge.wait { try await handler(request) } }
    }

    /// The router as the server's handler.
    public var handler: @Sendable (HTTPRequest) -> HTTPResponse {
        let router = self
        return { router.respond(to: $0) }
    }

    /// Routes, authenticates and runs the handler; never throws, every failure is a JSON error.
    public func respond(to request: HTTPRequest) -> HTTPResponse {
        var request = request
        let candidates = routes.compactMap { route in match(route, request.pathSegments).map { (route, $0) } }
        guard !candidates.isEmpty else {
            return HTTPError(.notFound, code: .routeNotFound, message: "no endpoint at this path")
                .response(requestID: request.requestID)
        }
        let lookup = request.method == .head ? HTTPMethod.get : request.method
        guard
            let (route, parameters) = candidates.filter({ $0.0.method == lookup }).min(by: {
                isMoreSpecific($0.0, $1.0)
            })
        else {
            var allowed = Set(candidates.map(\.0.method.rawValue))
            if allowed.contains("GET") { allowed.insert("HEAD") }
            let allow = allowed.sorted().joined(separator: ", ")
            return HTTPError(
                .methodNotAllowed, code: .methodNotAllowed,
                message: "\(request.method.rawValue) is not allowed here; use \(allow)", headers: ["Allow": allow]
            )
            .response(requestID: request.requestID)
        }
        request.pathParameters = parameters
        if case .requires(let scope) = route.access {
            guard let token = Router.bearerToken(request.headers),
                let caller = authenticator?.authenticate(token: token)
            else {
                return HTTPError.unauthenticated.response(requestID: request.requestID)
            }
            guard caller.has(scope) else {
                return HTTPError.forbidden(scope: scope).response(requestID: request.requestID)
            }
            request.caller = caller
        }
        do {
            return try route.handler(request)
        } catch {
            return HTTPError.answer(
                to: error, requestID: request.requestID, route: route.pattern, logger: logger,
                retryAfterSeconds: retryAfterSeconds)
        }
    }

    /// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
    static func bearerToken(_ headers: HTTPHeaders) -> String? {
        guard let value = headers["Authorization"] else { return nil }
        // Byte-level: this runs for every authenticated request.
        let bytes = Array(value.utf8)
        let isBlank = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
        var index = bytes.startIndex
        while index < bytes.endIndex, isBlank(bytes[index]) { index += 1 }
        let schemeStart = index
        while index < bytes.endIndex, !isBlank(bytes[index]) { index += 1 }
        guard HTTPHeaders.namesMatch(String(decoding: bytes[schemeStart..<index], as: UTF8.self), "bearer") else {
            return nil
        }
        while index < bytes.endIndex, isBlank(bytes[index]) { index += 1 }
        var end = bytes.endIndex
        while end > index, isBlank(bytes[end - 1]) { end -= 1 }
        return index < end ? String(decoding: bytes[index..<end], as: UTF8.self) : nil
    }

    private func match(_ route: Route, _ segments: [String]) -> [String: String]? {
        guard route.segments.count == segments.count else { return nil }
        // Literals first, so a route that does not match allocates nothing.
        for (pattern, value) in zip(route.segments, segments) {
            if case .literal(let literal) = pattern, literal != value { return nil }
        }
        var parameters: [String: String] = [:]
        for (pattern, value) in zip(route.segments, segments) {
            switch pattern {
            case .literal(let literal): guard literal == value else { return nil }
            case .parameter(let name): parameters[name] = value
            }
        }
        return parameters
    }

    /// Whether `lhs` has a literal segment at the first position where the two differ in kind.
    private func isMoreSpecific(_ lhs: Route, _ rhs: Route) -> Bool {
        for (left, right) in zip(lhs.segments, rhs.segments) {
            switch (left, right) {
            case (.literal, .parameter): return true
            case (.parameter, .literal): return false
            default: continue
            }
        }
        return false
    }
}
