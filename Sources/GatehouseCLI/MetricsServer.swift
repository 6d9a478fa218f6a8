import GatehouseCore
import GatehouseHTTP

/// A small HTTP server with `/metrics` and `/healthz` only, for services that run
/// without the API (the monitor, deployed alone).
struct MetricsServer {
    let registry: MetricsRegistry
    let address: String
    let logger: Logger

    struct Service: GatehouseService {
        let name = "metrics-http"
        let server: HTTPServer
        func run() async throws { try await server.run() }
    }

    func make() throws -> Service {
        var router = Router(authenticator: nil, logger: logger)
        router.add(.get, "/metrics", access: .public) { [registry] _ in
            .text(registry.render(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.add(.get, "/healthz", access: .public) { _ in .json(bytes: Array(#"{"status":"ok"}"#.utf8)) }
        var configuration = HTTPServerConfiguration(address: try HTTPServerAddress.parse(address))
        configuration.threadCount = 1
        return Service(server: HTTPServer(configuration: configuration, logger: logger.with(label: "http"), handler: router.handler))
    }
}
