import Foundation
import GatehouseCore
import GatehouseStore

/// The two stores every store-backed suite runs against.
public enum StoreKind: String, Sendable, CaseIterable {
    case sqlite, mariadb
}

/// Fresh, migrated databases for tests: a temp SQLite file, or a private database on
/// the MariaDB server that `scripts/test.sh` starts (`GATEHOUSE_TEST_MYSQL_URL`).
public enum TestDatabases {
    public struct Handle: Sendable {
        public let url: String
        public let database: any SQLDatabase
        let cleanup: @Sendable () async -> Void
        public func close() async {
            await database.close()
            await cleanup()
        }
    }

    /// The MariaDB URL, or a failure telling how to start the server (never a skip:
    /// CI always runs the MariaDB cases).
    public static func mariaDBURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["GATEHOUSE_TEST_MYSQL_URL"], !url.isEmpty else {
            throw GatehouseError(.configuration,
                "GATEHOUSE_TEST_MYSQL_URL is not set: run the tests with scripts/test.sh, or start MariaDB with "
                    + "`scripts/mariadb.sh start /tmp/gh-mariadb 33306` and export the URL it prints")
        }
        return url
    }

    /// A new empty database of `kind`, migrated to the latest schema.
    public static func make(_ kind: StoreKind, logger: Logger = .disabled) async throws -> Handle {
        switch kind {
        case .sqlite:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-test-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let url = "sqlite:\(dir.path)/test.db"
            let database = try await Database.open(url: url, logger: logger)
            _ = try await Migrator(logger: logger).migrate(database)
            return Handle(url: url, database: database) { try? FileManager.default.removeItem(at: dir) }
        case .mariadb:
            let base = try mariaDBURL()
            let name = "gatehouse_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
            let admin = try await Database.open(url: base, logger: logger)
            try await admin.withConnection { connection in
                try connection.execute("CREATE DATABASE \(name) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", [])
            }
            guard let slash = base.lastIndex(of: "/") else { throw GatehouseError(.configuration, "bad test MariaDB URL") }
            var url = String(base[..<slash]) + "/" + name
            if let query = base.firstIndex(of: "?") { url += String(base[query...]) }
            let database = try await Database.open(url: url, logger: logger)
            _ = try await Migrator(logger: logger).migrate(database)
            return Handle(url: url, database: database) {
                try? await admin.withConnection { connection in try connection.execute("DROP DATABASE \(name)", []) }
                await admin.close()
            }
        }
    }
}
