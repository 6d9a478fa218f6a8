import Foundation
import GatehouseCore
import Testing

@testable import GatehouseStore

/// MariaDB-only behaviour: reconnecting, URL parsing, and keeping the password out of
/// every message. An extension of `StoreTests` so it shares that suite's serialization:
/// the shared cases drop every table of the MariaDB test database.
extension StoreTests {
    /// A one-connection pool, so the connection the server kills is the one used next.
    private func openSingleConnectionPool(_ logger: Logger = StoreTestEnvironment.logger()) async throws
        -> MariaDBDatabase
    {
        var configuration = try MariaDBConfiguration(url: try StoreTestEnvironment.mariaDBURL())
        configuration.maxConnections = 1
        return try await MariaDBDatabase.open(configuration, logger: logger)
    }

    private func kill(_ threadID: Int64) async throws {
        let admin = try await MariaDBDatabase.open(url: try StoreTestEnvironment.mariaDBURL(), logger: .disabled)
        try await admin.withConnection { c in try c.execute("KILL CONNECTION ?", .int64(threadID)) }
        await admin.close()
    }

    private func connectionID(_ db: MariaDBDatabase) async throws -> Int64 {
        try await db.withConnection { c in try c.queryFirst("SELECT CONNECTION_ID() AS id")!.int64("id") }
    }

    @Test func mariaDBReconnectsAfterTheServerKillsTheConnection() async throws {
        let sink = MemorySink()
        let db = try await openSingleConnectionPool(StoreTestEnvironment.logger(sink))
        defer { Task { await db.close() } }
        let before = try await connectionID(db)
        try await kill(before)
        // Outside a transaction the next read reconnects and succeeds.
        let after = try await connectionID(db)
        #expect(after != before)

        // A write after a kill goes through too (the server dropped the connection before
        // the command arrived, so running it on a new connection is safe).
        try await kill(after)
        try await db.withConnection { c in
            try c.execute("CREATE TABLE IF NOT EXISTS t_reconnect (n BIGINT NOT NULL)")
            try c.execute("DELETE FROM t_reconnect")
        }
        try await kill(try await connectionID(db))
        let insert = try await db.withConnection { c in try c.execute("INSERT INTO t_reconnect (n) VALUES (?)", 7) }
        #expect(insert.affectedRows == 1)
        #expect(try await countRows(db, "t_reconnect") == 1)
        #expect(sink.lines.contains { $0.contains("mariadb reconnected") })
        #expect(!sink.lines.contains { $0.contains(":gatehouse@") })
    }

    /// A server that refuses writes for a while (read-only during a failover) or cuts a
    /// statement off is an outage to wait out, not a fault of the statement: callers retry
    /// `.unavailable` and give up on `.database`.
    @Test func mariaDBReadOnlyAndStatementTimeoutsAreOutages() async throws {
        let db = try await openSingleConnectionPool()
        defer { Task { await db.close() } }
        try await db.withConnection { c in try c.execute("CREATE TABLE IF NOT EXISTS t_outage (n BIGINT NOT NULL)") }
        let readOnly = await #expect(throws: GatehouseError.self) {
            try await db.withConnection { c in
                try c.execute("SET SESSION TRANSACTION READ ONLY")
                defer { _ = try? c.execute("SET SESSION TRANSACTION READ WRITE") }
                try c.execute("START TRANSACTION")
                defer { _ = try? c.execute("ROLLBACK") }
                try c.execute("INSERT INTO t_outage (n) VALUES (1)")
            }
        }
        #expect(readOnly?.code == .unavailable && readOnly?.nativeCode == 1792)
        let timedOut = await #expect(throws: GatehouseError.self) {
            try await db.withConnection { c in
                try c.execute("SET SESSION max_statement_time = 0.05")
                defer { _ = try? c.execute("SET SESSION max_statement_time = 0") }
                // A billion MD5s from the sequence engine: cut off after 50 ms.
                _ = try c.query("SELECT COUNT(*) AS n FROM seq_1_to_1000000000 WHERE MD5(seq) = 'gatehouse'")
            }
        }
        #expect(timedOut?.code == .unavailable && timedOut?.nativeCode == 1969, "\(String(describing: timedOut))")
        #expect(try await countRows(db, "t_outage") == 0)
    }

    @Test func mariaDBAKilledTransactionFailsAndTheNextOneWorks() async throws {
        let db = try await openSingleConnectionPool()
        defer { Task { await db.close() } }
        try await db.withConnection { c in
            try c.execute("CREATE TABLE IF NOT EXISTS t_killed (n BIGINT NOT NULL)")
            try c.execute("DELETE FROM t_killed")
        }
        let id = try await connectionID(db)
        let admin = try await MariaDBDatabase.open(url: try StoreTestEnvironment.mariaDBURL(), logger: .disabled)
        defer { Task { await admin.close() } }
        let error = await #expect(throws: GatehouseError.self) {
            try await db.transaction { c in
                try c.execute("INSERT INTO t_killed (n) VALUES (1)")
                // Kill from another connection while this transaction is open.
                let semaphore = DispatchSemaphore(value: 0)
                Task {
                    _ = try? await admin.withConnection { a in try a.execute("KILL CONNECTION ?", .int64(id)) }
                    semaphore.signal()
                }
                semaphore.wait()
                try c.execute("INSERT INTO t_killed (n) VALUES (2)")
            }
        }
        #expect(error?.code == .unavailable)
        try await db.transaction { c in try c.execute("INSERT INTO t_killed (n) VALUES (3)") }
        let values = try await db.read { c in try c.query("SELECT n FROM t_killed ORDER BY n").map { try $0.int64("n") }
        }
        #expect(values == [3])
    }

    @Test func mariaDBBadURLsGiveClearErrorsWithoutThePassword() async throws {
        let secret = "s3cr3t-P@ss"
        let cases = [
            "mysql://gatehouse:\(secret)@127.0.0.1:notaport/db",
            "mysql://gatehouse:\(secret)@127.0.0.1:3306",
            "mysql://gatehouse:\(secret)@127.0.0.1:3306/db?colour=blue",
            "mysql://gatehouse:\(secret)%zz@127.0.0.1:3306/db",
            "postgres://gatehouse:\(secret)@127.0.0.1/db",
        ]
        for url in cases {
            let error = await #expect(throws: GatehouseError.self) {
                _ = try await Database.open(url: url, logger: .disabled)
            }
            #expect(error?.code == .configuration, "\(url)")
            #expect(error?.description.contains(secret) == false)
            #expect(error?.description.contains("s3cr3t") == false)
        }

        // A wrong password against the real server: access denied, password nowhere.
        var configuration = try MariaDBConfiguration(url: try StoreTestEnvironment.mariaDBURL())
        configuration.password = secret
        let sink = MemorySink()
        let denied = await #expect(throws: GatehouseError.self) {
            _ = try await MariaDBDatabase.open(configuration, logger: StoreTestEnvironment.logger(sink))
        }
        #expect(denied?.code == .configuration)
        #expect(denied?.nativeCode == 1045)
        #expect(denied?.description.contains("s3cr3t") == false)
        #expect(!sink.lines.contains { $0.contains("s3cr3t") })
        #expect(!configuration.description.contains("s3cr3t"))
        var dumped = ""
        dump(configuration, to: &dumped)
        #expect(!dumped.contains("s3cr3t"))

        // Nothing listens on port 1: unavailable.
        let unreachable = await #expect(throws: GatehouseError.self) {
            _ = try await MariaDBDatabase.open(
                url: "mysql://u:\(secret)@127.0.0.1:1/db?connect_timeout=2", logger: .disabled)
        }
        #expect(unreachable?.code == .unavailable)
        #expect(unreachable?.description.contains("s3cr3t") == false)
    }

    @Test func mariaDBUrlsArePercentDecoded() throws {
        let c = try MariaDBConfiguration(url: "mysql://us%40er:p%3A%2Fss@[::1]:3307/d%62?pool=3&connect_timeout=9")
        #expect(c.user == "us@er")
        #expect(c.password == "p:/ss")
        #expect(c.host == "::1")
        #expect(c.port == 3307)
        #expect(c.database == "db")
        #expect(c.maxConnections == 3)
        #expect(c.connectTimeoutSeconds == 9)
        #expect(c.redactedURL == "mysql://us@er:***@::1:3307/db")

        let socket = try MariaDBConfiguration(url: "mariadb://root@localhost/gh?socket=/tmp/gh-mariadb/mariadb.sock")
        #expect(socket.unixSocket == "/tmp/gh-mariadb/mariadb.sock")
        #expect(socket.password == "")
        #expect(socket.port == 3306)
    }
}
