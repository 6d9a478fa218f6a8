import Foundation
import GatehouseAPI
import GatehouseCore
import GatehouseHTTP
import GatehouseStore

/// What the service commands share once settings are read: the logger, the open and
/// migrated database, the KEK, the metrics registry.
struct Bootstrap: Sendable {
    let settings: Settings
    let logger: Logger
    let database: any SQLDatabase
    let metrics: MetricsRegistry

    static func make(_ settings: Settings, context: CommandContext) async throws -> Bootstrap {
        var logger = context.logger
        logger.minimumLevel = settings.logLevel
        if settings.isEmbeddedDatabase {
            try FileManager.default.createDirectory(atPath: settings.dataDirectory, withIntermediateDirectories: true)
        }
        let database = try await Database.open(url: settings.databaseURL, logger: logger)
        if settings.autoMigrate {
            let report = try await Migrator(logger: logger).migrate(database)
            if !report.applied.isEmpty {
                logger.notice("store.migrated", ["db.version": String(report.version)])
            }
        }
        return Bootstrap(settings: settings, logger: logger, database: database, metrics: MetricsRegistry())
    }

    /// The KEK; `serve` makes one on first start, the other services need it to exist.
    func kek(createIfMissing: Bool) throws -> KeyEncryptionKey {
        try KeyEncryptionKey.load(path: settings.kekFile, createIfMissing: createIfMissing, logger: logger)
    }

    func apiServer(kek: KeyEncryptionKey, extraMetrics: [MetricsRegistry] = []) async throws -> APIServer {
        let http = try HTTPServerConfiguration.load(from: settings.source)
        let api = APIService(
            database: database, kek: kek, configuration: try APIConfiguration.load(from: settings.source),
            publisher: try await inTransactionPublisher(busSettings()), metrics: metrics,
            extraMetrics: extraMetrics, logger: logger.with(label: "api"))
        let tokens = try await StoredTokenAuthenticator(tokens: APITokens(database: database))
        return APIServer(service: api, httpConfiguration: http, tokens: tokens, logger: logger.with(label: "http"))
    }
}

/// Reads `--config` and the environment; returns the settings and the other arguments.
func loadSettings(_ arguments: [String]) throws -> (Settings, [String]) {
    let (config, rest) = try extractConfigOption(arguments)
    return (try Settings.load(configFile: config), rest)
}
