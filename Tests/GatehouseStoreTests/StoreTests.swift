import Foundation
import GatehouseCore
import Synchronization
import Testing

@testable import GatehouseStore

/// The store cases, each run against SQLite (a temporary file) and a real MariaDB
/// (`GATEHOUSE_TEST_MYSQL_URL`). Serialized: the MariaDB cases share one database.
@Suite(.serialized)
struct StoreTests {
    @Test(arguments: Backend.allCases)
    func migrationsApplyOnceAndRecordVersions(_ backend: Backend) async throws {
        try await withEmptyDatabase(backend) { db in
            let migrator = Migrator(logger: StoreTestEnvironment.logger())
            #expect(try await migrator.currentVersion(of: db) == 0)
            let first = try await migrator.migrate(db)
            let versions = Schema.migrations.map(\.version)
            #expect(versions == Array(1...Schema.latestVersion))
            #expect(first == MigrationReport(applied: versions, version: Schema.latestVersion))
            let second = try await migrator.migrate(db)
            #expect(second == MigrationReport(applied: [], version: Schema.latestVersion))
            #expect(try await migrator.currentVersion(of: db) == Schema.latestVersion)

            let recorded = try await db.read { c in
                try c.query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
            }
            #expect(recorded.count == versions.count)
            #expect(try recorded.map { try $0.int("version") } == versions)
            #expect(try recorded[0].text("name") == "initial schema")
            #expect(try recorded[0].int64("applied_at") > 1_700_000_000_000)

            // Every table of schema v1 exists and takes a row.
            let tables = [
                "devices", "device_keys", "entitlements", "generate_osm", "emms", "requests", "outbox", "audit_log",
                "api_tokens",
            ]
            for table in tables { #expect(try await countRows(db, table) == 0) }
            try await db.transaction { c in
                let now: SQLValue = .int64(1_750_000_000_000)
                try c.execute(
                    "INSERT INTO devices (device_id, created_at, updated_at) VALUES (?, ?, ?)", "stb-1", now, now)
                try c.execute(
                    "INSERT INTO device_keys (device_id, version, wrapped_key, kcv, created_at) VALUES (?, ?, ?, ?, ?)",
                    "stb-1", 1, .blob([0x00, 0xA6, 0x00]), "1A2B3C", now)
                try c.execute(
                    "INSERT INTO entitlements (device_id, product_id, starts_at, ends_at, request_id, created_at) "
                        + "VALUES (?, ?, ?, ?, ?, ?)", "stb-1", 65535, now, now, "req-1", now)
                try c.execute(
                    "INSERT INTO generate_osm (request_id, target_kind, device_id, text, duration_ms, starts_at, "
                        + "expires_at, created_at) VALUES (?, 'all', NULL, ?, ?, ?, ?, ?)", "req-2", "Héllo ✓", 5000,
                    now,
                    now, now)
                try c.execute(
                    "INSERT INTO emms (device_id, request_id, kind, table_id, sequence, section, first_send_at, "
                        + "repeat_interval_ms, expires_at, urgent, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    "stb-1", "req-1", "entitlement", 0x82, 1, .blob([0x82, 0x00, 0x01]), now, 1000, now, SQLValue(true),
                    now)
                try c.execute(
                    "INSERT INTO requests (request_id, kind, idempotency_key, body_hash, status, accepted_at) "
                        + "VALUES (?, ?, ?, ?, 'accepted', ?)", "req-1", "add_entitlement", nil, "ab12", now)
                try c.execute(
                    "INSERT INTO outbox (request_id, partition_key, payload, created_at) VALUES (?, ?, ?, ?)", "req-1",
                    "stb-1", .blob([1, 2, 3]), now)
                try c.execute(
                    "INSERT INTO audit_log (at, actor, action, device_id) VALUES (?, ?, ?, ?)", now, "sms", "register",
                    "stb-1")
                try c.execute(
                    "INSERT INTO api_tokens (name, token_hash, scopes, created_at) VALUES (?, ?, ?, ?)", "sms", "h1",
                    "read,write", now)
            }
            for table in tables { #expect(try await countRows(db, table) == 1, "\(table)") }
        }
    }

    @Test(arguments: Backend.allCases)
    func refusesASchemaNewerThanTheCode(_ backend: Backend) async throws {
        try await withEmptyDatabase(backend) { db in
            let migrator = Migrator(logger: StoreTestEnvironment.logger())
            try await migrator.migrate(db)
            try await db.withConnection { c in
                try c.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)")
            }
            let error = await #expect(throws: GatehouseError.self) { try await migrator.migrate(db) }
            #expect(error?.code == .database)
            #expect(error?.message.contains("version 999") == true)
            #expect(error?.message.contains("newer Gatehouse") == true)
        }
    }

    @Test(arguments: Backend.allCases)
    func everyValueTypeRoundTrips(_ backend: Backend) async throws {
        try await withEmptyDatabase(backend) { db in
            var random = SystemRandomNumberGenerator()
            let big = (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &random) }
            let samples: [(SQLValue, SQLValue, SQLValue, SQLValue)] = [
                (.int64(Int64.max), .double(3.25), .text("plain"), .blob([0x00])),
                (.int64(Int64.min), .double(-1e300), .text("Héllo ✓ 日本語 🎉"), .blob([0x00, 0xFF, 0x00, 0x7F, 0x00])),
                (.int64(0), .double(0.1), .text(""), .blob([])),
                (
                    .int64(-1), .double(1e-300),
                    .text("nul\u{0}inside and a long tail " + String(repeating: "é", count: 3000)), .blob(big)
                ),
                (.null, .null, .null, .null),
            ]
            let ids = try await db.transaction { c in
                try createValuesTable(c)
                return try samples.map { sample in
                    try c.execute(
                        "INSERT INTO t_values (i, d, s, b) VALUES (?, ?, ?, ?)", sample.0, sample.1, sample.2, sample.3
                    )
                    .lastInsertID
                }
            }
            #expect(Set(ids).count == samples.count)
            #expect(ids.allSatisfy { $0 > 0 })
            let rows = try await db.read { c in try c.query("SELECT id, i, d, s, b FROM t_values ORDER BY id") }
            #expect(rows.count == samples.count)
            for (row, sample) in zip(rows, samples) {
                #expect(row["i"] == sample.0)
                #expect(row["d"] == sample.1)
                #expect(row["s"] == sample.2)
                #expect(row["b"] == sample.3)
                #expect(row[3] == sample.2)  // by index as well as by name
            }
            #expect(try rows[0].int64("i") == Int64.max)
            #expect(try rows[1].text("s") == "Héllo ✓ 日本語 🎉")
            #expect(try rows[3].blob("b") == big)
            #expect(try rows[4].textOrNil("s") == nil)
            #expect(throws: GatehouseError.self) { try rows[4].int64("i") }
            #expect(throws: GatehouseError.self) { try rows[0].value("missing") }

            // A parameter in a WHERE clause, and an UPDATE's affected rows.
            let updated = try await db.withConnection { c in
                try c.execute("UPDATE t_values SET d = ? WHERE b = ?", .double(2.5), .blob([0x00]))
            }
            #expect(updated.affectedRows == 1)
            // Unchanged values still count as matched on both drivers.
            let same = try await db.withConnection { c in
                try c.execute("UPDATE t_values SET d = ? WHERE b = ?", .double(2.5), .blob([0x00]))
            }
            #expect(same.affectedRows == 1)
        }
    }

    @Test(arguments: Backend.allCases)
    func uniqueViolationIsAConflict(_ backend: Backend) async throws {
        try await withEmptyDatabase(backend) { db in
            try await Migrator(logger: StoreTestEnvironment.logger()).migrate(db)
            let insertDevice = "INSERT INTO devices (device_id, created_at, updated_at) VALUES (?, 0, 0)"
            try await db.withConnection { c in try c.execute(insertDevice, "stb-1") }
            let duplicate = await #expect(throws: GatehouseError.self) {
                try await db.withConnection { c in try c.execute(insertDevice, "stb-1") }
            }
            #expect(duplicate?.code == .conflict)

            let insertRequest =
                "INSERT INTO requests (request_id, kind, idempotency_key, body_hash, accepted_at) VALUES (?, 'x', ?, 'h', 0)"
            try await db.withConnection { c in try c.execute(insertRequest, "r1", "secret-idempotency-key") }
            let sameKey = await #expect(throws: GatehouseError.self) {
                try await db.transaction { c in try c.execute(insertRequest, "r2", "secret-idempotency-key") }
            }
            #expect(sameKey?.code == .conflict)
            // The duplicate value itself is not echoed (it may be a token hash or a key).
            #expect(sameKey?.message.contains("secret-idempotency-key") == false)
            // Two NULL idempotency keys are not a conflict.
            try await db.withConnection { c in
                try c.execute(insertRequest, "r3", nil)
                try c.execute(insertRequest, "r4", nil)
            }

            // Other constraints are bad input, not conflicts.
            let orphan = await #expect(throws: GatehouseError.self) {
                try await db.withConnection { c in
                    try c.execute(
                        "INSERT INTO device_keys (device_id, version, wrapped_key, kcv, created_at) VALUES (?, 1, ?, 'k', 0)",
                        "no-such-device", .blob([1]))
                }
            }
            #expect(orphan?.code == .invalidInput)
            let badStatus = await #expect(throws: GatehouseError.self) {
                try await db.withConnection { c in
                    try c.execute(
                        "INSERT INTO devices (device_id, status, created_at, updated_at) VALUES ('x', 'lost', 0, 0)")
                }
            }
            #expect(badStatus?.code == .invalidInput)
        }
    }

    @Test(arguments: Backend.allCases)
    func transactionRollsBackOnThrow(_ backend: Backend) async throws {
        try await withEmptyDatabase(backend) { db in
            try await Migrator(logger: StoreTestEnvironment.logger()).migrate(db)
            await #expect(throws: Deliberate.self) {
                try await db.transaction { c in
                    try c.execute("INSERT INTO devices (device_id, created_at, updated_at) VALUES ('a', 0, 0)")
                    try c.execute("INSERT INTO audit_log (at, actor, action) VALUES (0, 'test', 'x')")
                    #expect(c.isInTransaction)
                    throw Deliberate()
                }
            }
            // A database error part-way through undoes the earlier statements too.
            await #expect(throws: GatehouseError.self) {
                try await db.transaction { c in
                    try c.execute("INSERT INTO devices (device_id, created_at, updated_at) VALUES ('b', 0, 0)")
                    try c.execute("INSERT INTO devices (device_id, created_at, updated_at) VALUES ('b', 0, 0)")
                }
            }
            #expect(try await countRows(db, "devices") == 0)
            #expect(try await countRows(db, "audit_log") == 0)
            // The connection is back in autocommit mode and usable.
            let open = try await db.withConnection { c in c.isInTransaction }
            #expect(open == false)
            try await db.transaction { c in
                try c.execute("INSERT INTO devices (device_id, created_at, updated_at) VALUES ('c', 0, 0)")
            }
            #expect(try await countRows(db, "devices") == 1)
        }
    }

    @Test(arguments: Backend.allCases)
    func concurrentWritersAllLandExactlyOnce(_ backend: Backend) async throws {
        try await withEmptyDatabase(backend) { db in
            try await Migrator(logger: StoreTestEnvironment.logger()).migrate(db)
            let tasks = 8
            let perTask = 200
            let ids = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        var ids: [Int64] = []
                        for i in 0..<perTask {
                            let id = try await db.transaction { c in
                                try c.execute(
                                    "INSERT INTO outbox (request_id, partition_key, payload, created_at) VALUES (?, ?, ?, ?)",
                                    .text("t\(task)-\(i)"), .text("dev-\(task)"),
                                    .blob([UInt8(task), 0, UInt8(i & 0xFF)]),
                                    .int64(Int64(i))
                                ).lastInsertID
                            }
                            ids.append(id)
                        }
                        return ids
                    }
                }
                var all: [Int64] = []
                for try await ids in group { all += ids }
                return all
            }
            #expect(ids.count == tasks * perTask)
            #expect(Set(ids).count == tasks * perTask)
            let rows = try await db.read { c in
                try c.query("SELECT COUNT(*) AS n, COUNT(DISTINCT request_id) AS d FROM outbox")
            }
            #expect(try rows[0].int64("n") == Int64(tasks * perTask))
            #expect(try rows[0].int64("d") == Int64(tasks * perTask))
            // Each writer's rows are in id order: one device's commands keep their order.
            let perDevice = try await db.read { c in
                try c.query("SELECT request_id FROM outbox WHERE partition_key = ? ORDER BY id", "dev-3")
            }
            #expect(try perDevice.map { try $0.text("request_id") } == (0..<perTask).map { "t3-\($0)" })
        }
    }

    @Test(arguments: Backend.allCases)
    func preparedStatementsAreReused(_ backend: Backend) async throws {
        try await withEmptyDatabase(backend) { db in
            try await Migrator(logger: StoreTestEnvironment.logger()).migrate(db)
            let counts = try await db.withConnection { c in
                let before = c.preparedStatementCount
                for i in 0..<50 {
                    try c.execute(
                        "INSERT INTO audit_log (at, actor, action) VALUES (?, 'test', 'reuse')", .int64(Int64(i)))
                }
                let afterInserts = c.preparedStatementCount
                for _ in 0..<50 { _ = try c.query("SELECT COUNT(*) AS n FROM audit_log WHERE action = ?", "reuse") }
                return (before, afterInserts, c.preparedStatementCount)
            }
            #expect(counts.1 == counts.0 + 1)
            #expect(counts.2 == counts.0 + 2)
            #expect(try await countRows(db, "audit_log") == 50)
        }
    }

    @Test(arguments: Backend.allCases)
    func readsSeeCommittedDataOnly(_ backend: Backend) async throws {
        try await withEmptyDatabase(backend) { db in
            try await Migrator(logger: StoreTestEnvironment.logger()).migrate(db)
            // A read transaction refuses writes on both drivers.
            await #expect(throws: GatehouseError.self) {
                try await db.read { c in try c.execute("INSERT INTO audit_log (at, actor, action) VALUES (0, 'r', 'x')")
                }
            }
            #expect(try await countRows(db, "audit_log") == 0)
        }
    }

    /// SQLite's column names are cached with each prepared statement; a schema change that
    /// renames a column under a cached `SELECT *` must show the new name, not the cached one.
    /// (SQLite only: MariaDB Connector/C keeps a prepared statement's result metadata from
    /// prepare time, so there a cached `SELECT *` still shows the old names after an ALTER;
    /// no Gatehouse query selects `*` across a migration.)
    @Test(arguments: [Backend.sqlite])
    func cachedColumnNamesFollowASchemaChange(_ backend: Backend) async throws {
        try await withEmptyDatabase(backend) { db in
            try await db.withConnection { connection in
                try connection.execute("CREATE TABLE rename_probe (a INTEGER)", [])
                try connection.execute("INSERT INTO rename_probe (a) VALUES (7)", [])
                for _ in 0..<2 {
                    let row = try #require(try connection.queryFirst("SELECT * FROM rename_probe"))
                    #expect(try row.int("a") == 7)
                }
                try connection.execute("ALTER TABLE rename_probe RENAME COLUMN a TO b", [])
                let renamed = try #require(try connection.queryFirst("SELECT * FROM rename_probe"))
                #expect(try renamed.int("b") == 7)
                #expect(throws: GatehouseError.self) { _ = try renamed.int("a") }
                try connection.execute("ALTER TABLE rename_probe ADD COLUMN c INTEGER", [])
                let widened = try #require(try connection.queryFirst("SELECT * FROM rename_probe"))
                #expect(try widened.int("b") == 7)
                #expect(widened.columns.names == ["b", "c"])
            }
        }
    }
}
