import GatehouseCore
import GatehouseHTTP

/// The API as a service: the HTTP server plus the periodic token reload, until cancelled.
public struct APIServer: GatehouseService {
    public let name = "api"
    public let server: HTTPServer
    let tokens: StoredTokenAuthenticator
    let logger: Logger

    public init(service: APIService, httpConfiguration: HTTPServerConfiguration, tokens: StoredTokenAuthenticator,
        logger: Logger)
    {
        let router = service.makeRouter(authenticator: tokens)
        let metrics = service.metrics
        let handler = router.handler
        let responses = LabeledCounters<Int>(
            metrics, "gatehouse_http_responses_total", help: "HTTP responses by status code", label: "code")
        self.server = HTTPServer(configuration: httpConfiguration, logger: logger) { request in
            let response = handler(request)
            guard let deferred = response.deferred else {
                responses(response.status.code).increment()
                return response
            }
            // A write's real status is known once its commit is: count that one.
            let counted = DeferredResponse()
            deferred.whenResolved { answer in
                responses(answer.status.code).increment()
                counted.resolve(answer)
            }
            return .deferred(counted)
        }
        self.tokens = tokens
        self.logger = logger
    }

    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(2))
                    do { try await tokens.refresh() } catch {
                        logger.warning("api.token_refresh_failed", ["error": String(describing: error)])
                    }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}
