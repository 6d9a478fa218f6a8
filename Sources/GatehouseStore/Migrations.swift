import Foundation
import GatehouseCore

/// One versioned schema change, with its statements per dialect.
///
/// Write each statement so it can run twice (`IF NOT EXISTS`): MariaDB commits DDL
/// implicitly, so a migration that fails half-way there is finished by running it again.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sqlite: [String]
    public let mariadb: [String]

    public init(version: Int, name: String, sqlite: [String], mariadb: [String]) {
        self.version = version
        self.name = name
        self.sqlite = sqlite
        self.mariadb = mariadb
    }

    /// The same statements on both databases.
    public init(version: Int, name: String, statements: [String]) {
        self.init(version: version, name: name, sqlite: statements, mariadb: statements)
    }

    func statements(for dialect: SQLDialect) -> [String] { dialect == .sqlite ? sqlite : mariadb }
}

/// What `Migrator.migrate` did.
public struct MigrationReport: Sendable, Equatable {
    /// Versions applied by this run, in order (empty when the schema was current).
    public var applied: [Int]
    /// The schema version after the run.
    public var version: Int
}

/// Brings a database to the newest schema this build knows, recording each applied
/// version in `schema_migrations` (version, name, applied_at in ms since the epoch).
///
/// Each migration and its `schema_migrations` row commit together on SQLite (one
/// `BEGIN IMMEDIATE` transaction, which also keeps two processes from migrating at once).
/// MariaDB cannot roll back DDL; there a named lock (`GET_LOCK`) serialises migrating
/// processes, and a migration's row is written after its last statement succeeds.
public struct Migrator: Sendable {
    public let migrations: [Migration]
    private let logger: Logger

    /// - Precondition: versions are positive and strictly increasing.
    public init(migrations: [Migration] = Schema.migrations, logger: Logger) {
        precondition(migrations.first.map { $0.version > 0 } ?? true, "migration versions start at 1")
        precondition(
            zip(migrations, migrations.dropFirst()).allSatisfy { $0.version < $1.version },
            "migration versions must increase")
        self.migrations = migrations
        self.logger = logger
    }

    /// The newest version this build knows.
    public var latestVersion: Int { migrations.last?.version ?? 0 }

    static let createTable = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT NOT NULL PRIMARY KEY,
            name VARCHAR(200) NOT NULL,
            applied_at BIGINT NOT NULL
        )
        """

    /// The version recorded in the database (0 for an empty database).
    public func currentVersion(of database: any SQLDatabase) async throws -> Int {
        try await database.withConnection { connection in
            try connection.execute(Self.createTable + Self.tableOptions(connection.dialect), [])
            return try Self.recordedVersion(connection)
        }
    }

    /// Applies every migration newer than the database's version, in order.
    /// - Throws: `GatehouseError.database` when the database already has a version newer than
    ///   this build knows (an older binary must not write to a newer schema), or the error of
    ///   the first statement that fails (later migrations are not attempted).
    @discardableResult
    public func migrate(_ database: any SQLDatabase) async throws -> MigrationReport {
        let migrations = self.migrations
        let latest = latestVersion
        let logger = self.logger
        return try await database.withConnection { connection in
            let dialect = connection.dialect
            guard let control = connection as? any TransactionalConnection else {
                throw GatehouseError(.internal, "migrations need a driver connection")
            }
            try connection.execute(Self.createTable + Self.tableOptions(dialect), [])
            if dialect == .mariadb {
                let locked = try connection.queryFirst("SELECT GET_LOCK('gatehouse.migrate', 60) AS locked")
                guard try locked?.int64OrNil("locked") == 1 else {
                    throw GatehouseError(.unavailable, "another process has been migrating this database for 60 s")
                }
            }
            defer {
                if dialect == .mariadb { _ = try? connection.query("SELECT RELEASE_LOCK('gatehouse.migrate')") }
            }
            var applied: [Int] = []
            var version = try Self.recordedVersion(connection)
            try Self.refuseNewer(version, latest: latest)
            for migration in migrations where migration.version > version {
                let apply = {
                    // Re-read under the lock: another process may have applied it meanwhile.
                    let current = try Self.recordedVersion(connection)
                    try Self.refuseNewer(current, latest: latest)
                    guard current < migration.version else { return false }
                    for statement in migration.statements(for: dialect) { try connection.execute(statement, []) }
                    try connection.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        [.int64(Int64(migration.version)), .text(migration.name), .int64(Self.nowMilliseconds())])
                    return true
                }
                let didApply = dialect == .sqlite ? try control.runTransaction(.write, apply) : try apply()
                if didApply {
                    applied.append(migration.version)
                    logger.notice(
                        "schema migration applied",
                        ["db.migration.version": String(migration.version), "db.migration.name": migration.name])
                }
                version = migration.version
            }
            return MigrationReport(applied: applied, version: max(version, try Self.recordedVersion(connection)))
        }
    }

    private static func recordedVersion(_ connection: any SQLConnection) throws -> Int {
        Int(
            try connection.queryFirst("SELECT MAX(version) AS version FROM schema_migrations")?.int64OrNil("version")
                ?? 0)
    }

    private static func refuseNewer(_ version: Int, latest: Int) throws {
        guard version <= latest else {
            throw GatehouseError(
                .database,
                "the database schema is at version \(version) but this build of Gatehouse knows versions up to "
                    + "\(latest): run a newer Gatehouse (or restore a backup that matches this one)")
        }
    }

    static func tableOptions(_ dialect: SQLDialect) -> String {
        dialect == .mariadb ? " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin" : ""
    }

    static func nowMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }
}
