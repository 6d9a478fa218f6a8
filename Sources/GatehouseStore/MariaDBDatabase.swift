import GatehouseCore

/// The distributed store: a pool of MariaDB (or MySQL) connections over Connector/C, with
/// InnoDB transactions and server-side prepared statements.
public final class MariaDBDatabase: SQLDatabase {
    public let configuration: MariaDBConfiguration
    private let pool: ConnectionPool<MariaDBConnection>

    public var dialect: SQLDialect { .mariadb }

    private init(configuration: MariaDBConfiguration, pool: ConnectionPool<MariaDBConnection>) {
        self.configuration = configuration
        self.pool = pool
    }

    /// Connects once now, so a wrong address, user, password or database fails here;
    /// further connections open on demand up to `maxConnections`.
    /// - Throws: `GatehouseError` `.configuration` (access denied, unknown database),
    ///   `.unavailable` (server unreachable) or `.database`; never with the password.
    public static func open(_ configuration: MariaDBConfiguration, logger: Logger) async throws -> MariaDBDatabase {
        let pool = ConnectionPool<MariaDBConnection>(name: "mariadb", maxSize: max(1, configuration.maxConnections)) {
            try MariaDBConnection.make(configuration: configuration, logger: logger)
        }
        _ = try await pool.withConnection { _ in 0 }
        logger.info(
            "mariadb database open",
            ["db.url": configuration.redactedURL, "db.pool": String(configuration.maxConnections)])
        return MariaDBDatabase(configuration: configuration, pool: pool)
    }

    /// Opens from a `mysql://user:password@host:port/database` URL.
    public static func open(url: String, logger: Logger) async throws -> MariaDBDatabase {
        try await open(MariaDBConfiguration(url: url), logger: logger)
    }

    @discardableResult

    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) throws -> T)
        async throws -> T
    {
        try await pool.withConnection { connection in try body(connection) }
    }

    @discardableResult

    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) throws -> T)
        async throws -> T
    {
        try await pool.withConnection { connection in
            try connection.runTransaction(.write) { try body(connection) }
        }
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) throws -> T) async throws -> T {
        try await pool.withConnection { connection in
            try connection.runTransaction(.readOnly) { try body(connection) }
        }
    }

    public func transactionBlocking<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try pool.withConnectionBlocking { connection in
            try connection.runTransaction(.write) { try body(connection) }
        }
    }

    public func readBlocking<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try pool.withConnectionBlocking { connection in
            try connection.runTransaction(.readOnly) { try body(connection) }
        }
    }

    public func close() async { await pool.close() }
}

/// Opens the store a `GATEHOUSE_DATABASE_URL` names.
public enum Database {
    /// `sqlite:PATH` (or `sqlite://PATH`) opens the embedded store; `mysql://…` or
    /// `mariadb://…` a MariaDB pool.
    /// - Throws: `GatehouseError.configuration` for an unknown scheme (the URL is shown
    ///   with its password redacted), or whatever opening the database throws.
    public static func open(url: String, logger: Logger) async throws -> any SQLDatabase {
        if url.hasPrefix("mysql://") || url.hasPrefix("mariadb://") {
            return try await MariaDBDatabase.open(url: url, logger: logger)
        }
        if url.hasPrefix("sqlite:") {
            var path = url.dropFirst("sqlite:".count)
            if path.hasPrefix("//") { path = path.dropFirst(2) }
            guard !path.isEmpty else {
                throw GatehouseError(.configuration, "database URL \(url): expected sqlite:PATH")
            }
            return try await SQLiteDatabase.open(.init(path: String(path)), logger: logger)
        }
        throw GatehouseError(
            .configuration,
            "database URL \(MariaDBConfiguration.redact(url)): expected sqlite:PATH or mysql://user:password@host:port/db"
        )
    }
}
