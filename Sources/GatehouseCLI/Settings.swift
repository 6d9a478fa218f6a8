import Foundation
import GatehouseCore

/// The settings every service shares, from `GATEHOUSE_*` variables over an optional
/// `--config FILE`. See docs/configuration.md for the full table.
public struct Settings: Sendable {
    /// `GATEHOUSE_DATA_DIR`: where the embedded database and the KEK live. Default `./gatehouse-data`.
    public var dataDirectory: String
    /// `GATEHOUSE_DATABASE_URL`: `sqlite:PATH` or `mysql://user:pass@host:port/db`.
    /// Default `sqlite:<data dir>/gatehouse.db`.
    public var databaseURL: String
    /// `GATEHOUSE_KEK_FILE`: the key-encryption key. Default `<data dir>/kek.hex`.
    public var kekFile: String
    /// `GATEHOUSE_BUS_URL`: `embedded` (default) or `kafka://host:port[,host:port]`.
    public var busURL: String
    /// `GATEHOUSE_LOG_LEVEL`: trace, debug, info (default), notice, warning, error.
    public var logLevel: LogLevel
    /// `GATEHOUSE_AUTO_MIGRATE`: apply schema migrations at start. Default true.
    public var autoMigrate: Bool
    public let source: ConfigSource

    public static func load(configFile: String?, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> Settings
    {
        let source = try ConfigSource.load(file: configFile, environment: environment)
        let dataDirectory = source.string("GATEHOUSE_DATA_DIR", default: "./gatehouse-data")
        let levelName = source.string("GATEHOUSE_LOG_LEVEL", default: "info")
        guard let level = LogLevel(name: levelName) else {
            throw GatehouseError(.configuration, "GATEHOUSE_LOG_LEVEL=\(levelName): use trace, debug, info, notice, warning or error")
        }
        return Settings(
            dataDirectory: dataDirectory,
            databaseURL: source.string("GATEHOUSE_DATABASE_URL", default: "sqlite:\(dataDirectory)/gatehouse.db"),
            kekFile: source.string("GATEHOUSE_KEK_FILE", default: "\(dataDirectory)/kek.hex"),
            busURL: source.string("GATEHOUSE_BUS_URL", default: "embedded"),
            logLevel: level,
            autoMigrate: try source.bool("GATEHOUSE_AUTO_MIGRATE", default: true),
            source: source)
    }

    /// Whether the database is the embedded SQLite file (so the data directory must exist).
    public var isEmbeddedDatabase: Bool { databaseURL.hasPrefix("sqlite:") }
}

/// Splits `--config FILE` (and `--config=FILE`) off an argument list.
func extractConfigOption(_ arguments: [String]) throws -> (config: String?, rest: [String]) {
    var rest: [String] = []
    var config: String?
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        if argument == "--config" {
            guard index + 1 < arguments.count else { throw UsageError("--config needs a file") }
            config = arguments[index + 1]
            index += 2
            continue
        }
        if argument.hasPrefix("--config=") {
            config = String(argument.dropFirst("--config=".count))
        } else {
            rest.append(argument)
        }
        index += 1
    }
    return (config, rest)
}
