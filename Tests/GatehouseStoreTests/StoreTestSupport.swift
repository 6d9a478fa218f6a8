import Foundation
import GatehouseCore
import Testing

@testable import GatehouseStore

/// The two drivers every shared store case runs against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case mariadb

    var testDescription: String { rawValue }
}

enum StoreTestEnvironment {
    static let urlVariable = "GATEHOUSE_TEST_MYSQL_URL"

    static let howToStart = """
        \(urlVariable) is not set, so the MariaDB store tests cannot run (they fail rather than skip: \
        CI always provides a server). Start a private server and export its URL:
            scripts/mariadb.sh start /tmp/gh-mariadb 33306
            export \(urlVariable)=mysql://gatehouse:gatehouse@127.0.0.1:33306/gatehouse_test
        """

    /// The MariaDB URL, or a recorded failure that says how to start the server.
    static func mariaDBURL(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        guard let url = ProcessInfo.processInfo.environment[urlVariable], !url.isEmpty else {
            Issue.record(Comment(rawValue: howToStart), sourceLocation: sourceLocation)
            throw GatehouseError(.configuration, "\(urlVariable) is not set")
        }
        return url
    }

    static func logger(_ sink: MemorySink = MemorySink()) -> Logger {
        Logger(label: "store-test", minimumLevel: .trace, sink: sink)
    }
}

/// Opens an empty database of `backend` (a new SQLite file, or the MariaDB test database
/// with every table dropped), runs `body`, closes it and removes what it made.
func withEmptyDatabase(
    _ backend: Backend, logger: Logger = StoreTestEnvironment.logger(),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (any SQLDatabase) async throws -> Void
) async throws {
    switch backend {
    case .sqlite:
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try await SQLiteDatabase.open(
            .init(path: dir.appendingPathComponent("test.sqlite").path), logger: logger)
        do {
            try await body(db)
        } catch {
            await db.close()
            throw error
        }
        await db.close()
    case .mariadb:
        let url = try StoreTestEnvironment.mariaDBURL(sourceLocation: sourceLocation)
        let db = try await MariaDBDatabase.open(url: url, logger: logger)
        do {
            try await dropAllTables(db)
            try await body(db)
        } catch {
            await db.close()
            throw error
        }
        await db.close()
    }
}

/// The shared MariaDB test database starts every case empty (the suite runs serialized).
func dropAllTables(_ db: any SQLDatabase) async throws {
    try await db.withConnection { connection in
        let rows = try connection.query(
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE()")
        try connection.execute("SET SESSION foreign_key_checks = 0")
        for row in rows {
            let name = try row.text("name")
            precondition(name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" })
            try connection.execute("DROP TABLE IF EXISTS `\(name)`")
        }
        try connection.execute("SET SESSION foreign_key_checks = 1")
    }
}

/// A failure a test throws on purpose from inside a transaction.
struct Deliberate: Error, Equatable {}

func countRows(_ db: any SQLDatabase, _ table: String) async throws -> Int64 {
    try await db.read { connection in
        try connection.queryFirst("SELECT COUNT(*) AS n FROM \(table)")!.int64("n")
    }
}

/// A table with one nullable column per storage class, in the dialect's spelling.
func createValuesTable(_ connection: any SQLConnection) throws {
    let sql =
        connection.dialect == .sqlite
        ? "CREATE TABLE t_values (id INTEGER PRIMARY KEY AUTOINCREMENT, i BIGINT NULL, d DOUBLE NULL, s TEXT NULL, b BLOB NULL)"
        : "CREATE TABLE t_values (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, i BIGINT NULL, d DOUBLE NULL, "
            + "s MEDIUMTEXT NULL, b MEDIUMBLOB NULL)" + Migrator.tableOptions(.mariadb)
    try connection.execute(sql)
}
