import GatehouseCore

/// Settings of the API service beyond the HTTP server's own.
public struct APIConfiguration: Sendable {
    /// `GATEHOUSE_OUTBOX_LIMIT`: when more accepted requests than this wait to be
    /// published, writes answer 503 with `Retry-After` instead of growing the backlog.
    /// Default 100,000.
    public var outboxBacklogLimit = 100_000
    /// `GATEHOUSE_RETRY_AFTER`: seconds suggested to a caller refused for backlog. Default 5.
    public var retryAfterSeconds = 5
    /// Largest page a list endpoint returns. Default 500.
    public var maximumPageSize = 500

    public init() {}

    public static func load(from source: ConfigSource) throws -> APIConfiguration {
        var configuration = APIConfiguration()
        configuration.outboxBacklogLimit = try source.int("GATEHOUSE_OUTBOX_LIMIT", default: 100_000, in: 1...100_000_000)
        configuration.retryAfterSeconds = try source.int("GATEHOUSE_RETRY_AFTER", default: 5, in: 1...3600)
        return configuration
    }
}
